/**
 * The FFI UDP fast path over real loopback sockets: sender addresses (v4, v6, dual-stack), bursts,
 * oversized datagrams, silent and failing handlers, SO_REUSEPORT, bind errors, close, the
 * support check without --allow-ffi, and both fast paths under ffi scoped to glibc's paths. Clients
 * are Deno.listenDatagram sockets; every wait has a deadline.
 */

import assert from "node:assert/strict";
import { FastUdpSocket, fastUdpSupport, parseIpLiteral } from "../src/servers/udp/udpFastSocket.ts";
import { type DatagramHandler, REPLY_CAPACITY } from "../src/servers/udp/udpBatchArena.ts";
import { LIBC_PATHS } from "../src/os/libc.ts";
import { ipv6Missing } from "./support/ipv6.ts";

const supported = fastUdpSupport().ok;
const ignore = !supported;
/** Whether glibc is at one of the paths a scoped grant names (else only unscoped ffi finds it). */
const libcAtKnownPath = LIBC_PATHS.some((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

const ignoreIpv6 = ignore || ipv6Missing !== null;

/** Replies `[family, port (2 bytes), address (4 or 16 bytes), ...payload]`; marker first bytes
 *  0x00 → no reply, 0xEE → throws, 0xBB → invalid length. */
class EchoHandler implements DatagramHandler {
  calls = 0;
  handle(
    packet: Uint8Array,
    length: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    out: Uint8Array,
  ): number {
    this.calls++;
    if (length > 0 && packet[0] === 0x00) return 0;
    if (length > 0 && packet[0] === 0xee) throw new Error("handler bug on purpose");
    if (length > 0 && packet[0] === 0xbb) return REPLY_CAPACITY + 1;
    const addressLength = family === 4 ? 4 : 16;
    out[0] = family;
    out[1] = port >> 8;
    out[2] = port & 0xff;
    out.set(address.subarray(addressOffset, addressOffset + addressLength), 3);
    out.set(packet.subarray(0, length), 3 + addressLength);
    return 3 + addressLength + length;
  }
}

interface Echo {
  family: number;
  port: number;
  address: string;
  payload: Uint8Array;
}

function decodeEcho(reply: Uint8Array): Echo {
  const family = reply[0];
  const addressLength = family === 4 ? 4 : 16;
  const addressBytes = reply.subarray(3, 3 + addressLength);
  const address = family === 4 ? addressBytes.join(".") : Array.from(
    { length: 8 },
    (_, i) => ((addressBytes[2 * i] << 8) | addressBytes[2 * i + 1]).toString(16),
  ).join(":");
  return {
    family,
    port: (reply[1] << 8) | reply[2],
    address,
    payload: reply.slice(3 + addressLength),
  };
}

function client(hostname: string): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

function localPort(conn: Deno.DatagramConn): number {
  return (conn.addr as Deno.NetAddr).port;
}

/** The next datagram, or undefined after `ms`. Leaves a receive pending on timeout, so call it
 *  again only after a datagram arrived; closing the conn ends the pending one. */
async function receiveWithin(
  conn: Deno.DatagramConn,
  ms: number,
): Promise<Uint8Array | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    const result = await Promise.race([conn.receive(), timeout]);
    return result === undefined ? undefined : result[0];
  } finally {
    clearTimeout(timer);
  }
}

async function exchange(
  conn: Deno.DatagramConn,
  hostname: string,
  port: number,
  payload: Uint8Array,
): Promise<Echo> {
  await conn.send(payload, { transport: "udp", hostname, port });
  const reply = await receiveWithin(conn, 2000);
  assert.ok(reply !== undefined, `no reply from ${hostname}:${port}`);
  return decodeEcho(reply);
}

/** Opens, serves `handler`, runs `body`, and always closes (bounded by the poll timeout). */
async function withServer(
  hostname: string,
  handler: DatagramHandler,
  body: (socket: FastUdpSocket) => Promise<void>,
): Promise<void> {
  const socket = FastUdpSocket.open(hostname, 0);
  const served = socket.serve(handler);
  try {
    await body(socket);
  } finally {
    await socket.close();
    await served;
  }
}

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("parseIpLiteral: literal IPv4 and IPv6 only", () => {
  assert.deepEqual(parseIpLiteral("127.0.0.1"), { family: 4, bytes: bytes(127, 0, 0, 1) });
  assert.deepEqual(parseIpLiteral("0.0.0.0"), { family: 4, bytes: bytes(0, 0, 0, 0) });
  const loop6 = new Uint8Array(16);
  loop6[15] = 1;
  assert.deepEqual(parseIpLiteral("::1"), { family: 6, bytes: loop6 });
  assert.deepEqual(parseIpLiteral("[::1]"), { family: 6, bytes: loop6 });
  assert.deepEqual(parseIpLiteral("0:0:0:0:0:0:0:1"), { family: 6, bytes: loop6 });
  assert.deepEqual(parseIpLiteral("::"), { family: 6, bytes: new Uint8Array(16) });
  assert.deepEqual(
    parseIpLiteral("::ffff:10.1.2.3")?.bytes,
    bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3),
  );
  assert.deepEqual(
    parseIpLiteral("2001:db8::8:800:200c:417a")?.bytes,
    bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 8, 8, 0, 0x20, 0x0c, 0x41, 0x7a),
  );
  for (
    const bad of [
      "localhost",
      "",
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "1.2.3.4.5",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::8",
      "12345::",
      "fe80::1%lo",
      "1.2.3.4::",
      "g::1",
    ]
  ) {
    assert.equal(parseIpLiteral(bad), undefined, bad);
  }
});

Deno.test("fastUdpSupport: ok here (Linux, glibc, --allow-ffi)", () => {
  if (Deno.build.os === "linux" && ["x86_64", "aarch64"].includes(Deno.build.arch)) {
    assert.deepEqual(fastUdpSupport(), { ok: true });
  } else {
    const support = fastUdpSupport();
    assert.equal(support.ok, false);
  }
});

Deno.test({
  name: "fastUdpSupport: gives a reason without --allow-ffi, and open() refuses clearly",
  async fn() {
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      const module = new URL("../src/servers/udp/udpFastSocket.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { FastUdpSocket, fastUdpSupport } from ${JSON.stringify(module)};
let openError = "";
try { FastUdpSocket.open("127.0.0.1", 0); } catch (e) { openError = String(e); }
console.log(JSON.stringify({ support: fastUdpSupport(), openError }));
`,
      );
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--allow-read", "--allow-net", script],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      const result = JSON.parse(new TextDecoder().decode(output.stdout).trim());
      assert.equal(result.support.ok, false);
      assert.match(result.support.reason, /ffi/);
      assert.ok(!result.support.reason.includes("\n"), "one-line reason");
      assert.match(result.openError, /unavailable.*ffi/);
    } finally {
      await Deno.remove(script);
    }
  },
});

Deno.test({
  name: "--allow-ffi scoped to LIBC_PATHS: one socket and a worker pool echo, errno and its text",
  ignore: ignore || !libcAtKnownPath,
  async fn() {
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      const module = (name: string) =>
        JSON.stringify(new URL(`../src/servers/udp/${name}`, import.meta.url).href);
      // Deno refuses its pointer helpers under a scoped grant: every call below would throw if
      // the fast path still used them (opening, the arenas, errno, steering, the Workers).
      await Deno.writeTextFile(
        script,
        `import { FastUdpSocket } from ${module("udpFastSocket.ts")};
import { UdpWorkerPool } from ${module("udpWorkerPool.ts")};
const handler = {
  handle(packet, length, _family, _address, _offset, _port, out) {
    out.set(packet.subarray(0, length));
    out[0] ^= 0xff;
    return length;
  },
};
async function echo(port) {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let timer;
  try {
    await conn.send(new Uint8Array([1, 2, 3]), { transport: "udp", hostname: "127.0.0.1", port });
    const late = new Promise((resolve) => timer = setTimeout(() => resolve(undefined), 5000));
    const reply = await Promise.race([conn.receive().then(([bytes]) => bytes), late]);
    return reply === undefined ? "no reply" : Array.from(reply);
  } finally {
    clearTimeout(timer);
    conn.close();
  }
}
const result = { unscoped: Deno.permissions.querySync({ name: "ffi" }).state };
const socket = FastUdpSocket.open("127.0.0.1", 0);
const served = socket.serve(handler);
result.port = socket.port;
result.single = await echo(socket.port);
try {
  FastUdpSocket.open("127.0.0.1", socket.port);
} catch (error) {
  result.inUse = { name: error.constructor.name, message: error.message };
}
await socket.close();
await served;
const logged = [];
const pool = UdpWorkerPool.open("127.0.0.1", 0, 2, { log: (line) => logged.push(line) });
const poolServed = pool.serve(handler);
await pool.ready;
result.pool = await echo(pool.port);
result.alive = pool.aliveWorkers;
await pool.close();
await poolServed;
result.logged = logged;
console.log(JSON.stringify(result));
`,
      );
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          "--unstable-net",
          "--allow-read",
          "--allow-net",
          `--allow-ffi=${LIBC_PATHS.join(",")}`,
          script,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      const result = JSON.parse(new TextDecoder().decode(output.stdout).trim());
      assert.notEqual(result.unscoped, "granted", "the child's ffi grant is scoped");
      assert.deepEqual(result.single, [0xfe, 2, 3]);
      // errno read through memcpy, its text through strerror, strlen and memcpy.
      assert.deepEqual(result.inUse, {
        name: "AddrInUse",
        message: `bind UDP 127.0.0.1:${result.port} failed: Address already in use (errno 98)`,
      });
      assert.deepEqual(result.pool, [0xfe, 2, 3]);
      assert.equal(result.alive, 2);
      assert.deepEqual(result.logged, [], "the steering program was attached");
    } finally {
      await Deno.remove(script);
    }
  },
});

Deno.test({
  name: "open: refuses host names and bad ports",
  ignore,
  fn() {
    assert.throws(() => FastUdpSocket.open("localhost", 0), /not a literal IP address/);
    assert.throws(() => FastUdpSocket.open("127.0.0.1", 65536), RangeError);
    assert.throws(() => FastUdpSocket.open("127.0.0.1", -1), RangeError);
  },
});

Deno.test({
  name: "echo over 127.0.0.1: family 4, sender's address and port, right bytes",
  ignore,
  async fn() {
    const handler = new EchoHandler();
    await withServer("127.0.0.1", handler, async (socket) => {
      assert.equal(socket.family, 4);
      assert.ok(socket.port > 0);
      const conn = client("127.0.0.1");
      try {
        const echo = await exchange(conn, "127.0.0.1", socket.port, bytes(1, 2, 3, 250));
        assert.deepEqual(echo, {
          family: 4,
          port: localPort(conn),
          address: "127.0.0.1",
          payload: bytes(1, 2, 3, 250),
        });
        // An empty datagram reaches the handler too.
        const empty = await exchange(conn, "127.0.0.1", socket.port, new Uint8Array(0));
        assert.equal(empty.payload.length, 0);
      } finally {
        conn.close();
      }
      assert.equal(socket.counters.received, 2);
      assert.equal(socket.counters.sent, 2);
    });
  },
});

Deno.test({
  name: "echo over ::1: family 6, sender's address and port",
  ignore: ignoreIpv6,
  async fn() {
    await withServer("::1", new EchoHandler(), async (socket) => {
      assert.equal(socket.family, 6);
      const conn = client("::1");
      try {
        const echo = await exchange(conn, "::1", socket.port, bytes(9, 8, 7));
        assert.deepEqual(echo, {
          family: 6,
          port: localPort(conn),
          address: "0:0:0:0:0:0:0:1",
          payload: bytes(9, 8, 7),
        });
      } finally {
        conn.close();
      }
    });
  },
});

Deno.test({
  name: "dual-stack '::': v4 senders reported as family 4, v6 as 6, each answered",
  ignore: ignoreIpv6,
  async fn() {
    await withServer("::", new EchoHandler(), async (socket) => {
      const v4 = client("127.0.0.1");
      const v6 = client("::1");
      try {
        // Both in flight at once: each reply must go back to its own sender.
        const [fromV4, fromV6] = await Promise.all([
          exchange(v4, "127.0.0.1", socket.port, bytes(4, 4, 4)),
          exchange(v6, "::1", socket.port, bytes(6, 6, 6, 6)),
        ]);
        assert.deepEqual(fromV4, {
          family: 4,
          port: localPort(v4),
          address: "127.0.0.1",
          payload: bytes(4, 4, 4),
        });
        assert.deepEqual(fromV6, {
          family: 6,
          port: localPort(v6),
          address: "0:0:0:0:0:0:0:1",
          payload: bytes(6, 6, 6, 6),
        });
      } finally {
        v4.close();
        v6.close();
      }
    });
  },
});

Deno.test({
  name: "bursts from several clients: every datagram answered or counted, batches > 1",
  ignore,
  async fn() {
    const clients = 4;
    const perClient = 150;
    await withServer("127.0.0.1", new EchoHandler(), async (socket) => {
      const conns = Array.from({ length: clients }, () => client("127.0.0.1"));
      try {
        const replies = conns.map(() => new Set<number>());
        const deadline = Date.now() + 5000;
        const collectors = conns.map(async (conn, c) => {
          while (replies[c].size < perClient) {
            const left = deadline - Date.now();
            if (left <= 0) return;
            const reply = await receiveWithin(conn, left);
            if (reply === undefined) return;
            const echo = decodeEcho(reply);
            assert.equal(echo.port, localPort(conn), "reply went to its sender");
            assert.equal(echo.payload[0], c + 1);
            replies[c].add((echo.payload[1] << 8) | echo.payload[2]);
          }
        });
        // Fire every send without waiting, so datagrams queue up before the server wakes.
        await Promise.all(
          conns.flatMap((conn, c) =>
            Array.from(
              { length: perClient },
              (_, i) =>
                conn.send(bytes(c + 1, i >> 8, i & 0xff, 0x55), {
                  transport: "udp",
                  hostname: "127.0.0.1",
                  port: socket.port,
                }),
            )
          ),
        );
        await Promise.all(collectors);
        const total = clients * perClient;
        const counters = socket.counters;
        const answered = replies.reduce((sum, set) => sum + set.size, 0);
        assert.equal(counters.received, total, "server received every datagram");
        assert.equal(counters.sent + counters.sendDropped, total, "every reply sent or counted");
        assert.equal(answered, counters.sent, "clients got every reply sent");
        assert.ok(
          counters.batches < counters.received,
          `average batch > 1 (batches ${counters.batches}, received ${counters.received})`,
        );
      } finally {
        for (const conn of conns) conn.close();
      }
    });
  },
});

Deno.test({
  name: "oversized datagram ignored, zero-length reply sends nothing, bad handlers survived",
  ignore,
  async fn() {
    const handler = new EchoHandler();
    await withServer("127.0.0.1", handler, async (socket) => {
      const conn = client("127.0.0.1");
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: socket.port };
      try {
        const big = new Uint8Array(3000).fill(7);
        await conn.send(big, to); // truncated by the 2048-byte slot: ignored, handler not called
        await conn.send(bytes(0x00, 1), to); // handler returns 0
        await conn.send(bytes(0xee, 2), to); // handler throws
        await conn.send(bytes(0xbb, 3), to); // handler returns more than REPLY_CAPACITY
        // Datagrams from one socket arrive in order over loopback, so the first reply must be
        // this one if nothing was sent for the four above.
        const echo = await exchange(conn, "127.0.0.1", socket.port, bytes(42));
        assert.deepEqual(echo.payload, bytes(42));
      } finally {
        conn.close();
      }
      const counters = socket.counters;
      assert.equal(counters.received, 5);
      assert.equal(counters.truncated, 1);
      assert.equal(handler.calls, 4);
      assert.equal(counters.handlerErrors, 2);
      assert.equal(counters.sent, 1);
      assert.match(String(socket.lastHandlerError), /reply length 4097/);
    });
  },
});

Deno.test({
  name: "reusePort: two sockets bind one port; without it the port is in use",
  ignore,
  async fn() {
    const first = FastUdpSocket.open("127.0.0.1", 0, { reusePort: true });
    try {
      const second = FastUdpSocket.open("127.0.0.1", first.port, { reusePort: true });
      try {
        assert.equal(second.port, first.port);
        assert.throws(
          () => FastUdpSocket.open("127.0.0.1", first.port),
          Deno.errors.AddrInUse,
        );
        // Both serve: a datagram to the shared port is answered by one of them.
        const servedFirst = first.serve(new EchoHandler());
        const servedSecond = second.serve(new EchoHandler());
        const conn = client("127.0.0.1");
        try {
          const echo = await exchange(conn, "127.0.0.1", first.port, bytes(1));
          assert.deepEqual(echo.payload, bytes(1));
        } finally {
          conn.close();
          await Promise.all([first.close(), second.close()]);
          await Promise.all([servedFirst, servedSecond]);
        }
        assert.equal(first.counters.sent + second.counters.sent, 1);
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
    }
  },
});

Deno.test({
  name: "bind to a port in use fails with a clear error",
  ignore,
  fn() {
    const holder = client("127.0.0.1");
    try {
      assert.throws(
        () => FastUdpSocket.open("127.0.0.1", localPort(holder)),
        (e: unknown) => {
          assert.ok(e instanceof Deno.errors.AddrInUse);
          assert.match(e.message, /bind UDP 127\.0\.0\.1:\d+ failed: Address already in use/);
          return true;
        },
      );
      // 192.0.2.1 (TEST-NET-1) is on no interface here.
      assert.throws(() => FastUdpSocket.open("192.0.2.1", 0), Deno.errors.AddrNotAvailable);
    } finally {
      holder.close();
    }
  },
});

Deno.test({
  name: "close(): returns within 1 s, ends serve(), frees the port; serve after close rejects",
  ignore,
  async fn() {
    const socket = FastUdpSocket.open("127.0.0.1", 0);
    const port = socket.port;
    const served = socket.serve(new EchoHandler());
    await assert.rejects(socket.serve(new EchoHandler()), /already serving/);
    await new Promise((resolve) => setTimeout(resolve, 50)); // a poll is pending now
    const started = performance.now();
    await socket.close();
    await served;
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1000, `close took ${elapsed} ms`);
    await assert.rejects(socket.serve(new EchoHandler()), /closed/);
    await socket.close(); // idempotent

    const again = FastUdpSocket.open("127.0.0.1", port);
    assert.equal(again.port, port);
    await again.close(); // never served: closes at once
    const third = FastUdpSocket.open("127.0.0.1", port);
    await third.close();
  },
});

/** Sends `bursts` bursts of `size` datagrams from another process, `gapUs` apart, and counts the
 *  replies (the socket echoes); the sender runs outside this isolate, so its datagrams arrive while
 *  the fast path blocks in its linger. */
async function burstsFromAnotherProcess(
  port: number,
  bursts: number,
  size: number,
  gapUs: number,
): Promise<number> {
  // A reader thread takes the replies as they come: left queued, they overflow the socket's
  // receive buffer long before the last burst is sent.
  const script = `
import socket, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
got = 0
def read():
    global got
    try:
        while got < ${bursts * size}:
            s.recvfrom(2048)
            got += 1
    except socket.timeout:
        pass
s.bind(("127.0.0.1", 0))
reader = threading.Thread(target=read)
reader.start()
for b in range(${bursts}):
    for i in range(${size}):
        s.sendto(bytes([1, b & 255, i]), ("127.0.0.1", ${port}))
    time.sleep(${gapUs / 1e6})
reader.join()
print(got)
`;
  const output = await new Deno.Command("python3", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return Number(new TextDecoder().decode(output.stdout).trim());
}

Deno.test({
  name: "linger: bursts arriving within lingerUs are answered on this thread; 0 turns it off",
  ignore,
  sanitizeOps: false,
  async fn() {
    for (const lingerUs of [1000, 0]) {
      const socket = FastUdpSocket.open("127.0.0.1", 0, { lingerUs });
      const served = socket.serve(new EchoHandler());
      try {
        // 200 bursts of 4, 100 µs apart: most bursts land inside a 1-ms linger.
        const replies = await burstsFromAnotherProcess(socket.port, 200, 4, 100);
        assert.equal(replies, 800, `lingerUs ${lingerUs}: every datagram answered`);
        if (lingerUs === 0) assert.equal(socket.counters.lingerWakes, 0);
        else assert.ok(socket.counters.lingerWakes > 0, "some bursts answered from a linger");
      } finally {
        await socket.close();
        await served;
      }
    }
  },
});

Deno.test({
  name: "linger: a steady stream does not keep timers from running (budget per event-loop turn)",
  ignore,
  sanitizeOps: false,
  async fn() {
    const socket = FastUdpSocket.open("127.0.0.1", 0, { lingerUs: 1000 });
    const served = socket.serve(new EchoHandler());
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      // 4,000 datagrams about 100 µs apart: without a budget the linger would never hand back.
      const started = performance.now();
      const replies = await burstsFromAnotherProcess(socket.port, 4000, 1, 100);
      const elapsedMs = performance.now() - started;
      assert.equal(replies, 4000);
      assert.ok(socket.counters.lingerWakes > 0);
      // A 5-ms interval over the run: at least a third of its ticks must have fired.
      assert.ok(ticks >= elapsedMs / 5 / 3, `${ticks} ticks in ${elapsedMs.toFixed(0)} ms`);
    } finally {
      clearInterval(timer);
      await socket.close();
      await served;
    }
  },
});
