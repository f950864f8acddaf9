/**
 * The TCP fast path (src/servers/tcp: a listener and connections over libc and epoll) on its own,
 * over real loopback sockets with Deno's own client sockets at the other end: reads, writes,
 * end of stream and half-close, a reset while a read waits, a client that stops reading (writes
 * wait for room, partially), IPv6 and port 0, many idle sockets with no descriptor leaked, and
 * closing with reads and accepts still waiting. The HTTP and WebSocket tests run on this path by
 * default (their harnesses take `--tcp-io`); tcp_io_test.ts runs a representative set both ways.
 */
import assert from "node:assert/strict";
import { FastTcpListener, fastTcpSupport } from "../src/servers/tcp/tcpFastListener.ts";
import type { FastTcpConn } from "../src/servers/tcp/tcpFastConn.ts";

const ignore = !fastTcpSupport().ok;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

/** Rejects after `ms`: every wait in these tests is bounded. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether `promise` is still pending after the event loop has had a few turns. */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return !settled;
}

async function pair(
  listener: FastTcpListener,
  hostname = "127.0.0.1",
): Promise<{ client: Deno.TcpConn; server: FastTcpConn }> {
  const accepted = listener.accept();
  const client = await Deno.connect({ hostname, port: listener.addr.port });
  const server = await within(accepted, 10_000, "accept");
  return { client, server };
}

async function readAll(conn: { read(p: Uint8Array): Promise<number | null> }): Promise<string> {
  const chunk = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = await within(conn.read(chunk), 10_000, "read");
    if (n === null) return text;
    text += decoder.decode(chunk.subarray(0, n));
  }
}

Deno.test({ name: "tcp fast: port 0 is read back; bytes both ways", ignore }, async () => {
  const listener = FastTcpListener.listen("127.0.0.1", 0);
  assert.notEqual(listener.addr.port, 0);
  assert.equal(listener.addr.hostname, "127.0.0.1");
  const { client, server } = await pair(listener);
  assert.equal(server.remoteAddr.hostname, "127.0.0.1");
  assert.equal(server.remoteAddr.port, client.localAddr.port);
  assert.equal(server.localAddr.port, listener.addr.port);
  // A read waiting before anything arrives gets the bytes when they do.
  const buffer = new Uint8Array(64);
  const read = server.read(buffer);
  await client.write(encoder.encode("hello"));
  const n = await within(read, 10_000, "parked read");
  assert.equal(decoder.decode(buffer.subarray(0, n!)), "hello");
  assert.equal(await server.write(encoder.encode("world")), 5);
  const back = new Uint8Array(64);
  const m = await client.read(back);
  assert.equal(decoder.decode(back.subarray(0, m!)), "world");
  server.close();
  client.close();
  listener.close();
  await within(listener.drained, 10_000, "drained");
});

Deno.test({ name: "tcp fast: IPv6 ::1 and the dual-stack ::", ignore }, async () => {
  for (const [bind, connect, peer] of [["::1", "::1", "::1"], ["::", "127.0.0.1", null]]) {
    let listener: FastTcpListener;
    try {
      listener = FastTcpListener.listen(bind!, 0);
    } catch (error) {
      if (/family not supported|Cannot assign/i.test(String(error))) return; // no IPv6 here
      throw error;
    }
    assert.equal(listener.addr.hostname, bind);
    const { client, server } = await pair(listener, connect!);
    // A v4 client of a dual-stack socket shows as Deno shows it: ::ffff:a.b.c.d.
    assert.equal(server.remoteAddr.hostname, peer ?? "::ffff:127.0.0.1");
    await client.write(encoder.encode("x"));
    const buffer = new Uint8Array(8);
    assert.equal(await within(server.read(buffer), 10_000, "read"), 1);
    client.close();
    server.close();
    listener.close();
    await within(listener.drained, 10_000, "drained");
  }
});

Deno.test({ name: "tcp fast: a port in use throws AddrInUse, like Deno.listen", ignore }, () => {
  const first = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () => FastTcpListener.listen("127.0.0.1", first.addr.port),
      Deno.errors.AddrInUse,
    );
  } finally {
    first.close();
  }
});

Deno.test({ name: "tcp fast: end of stream, and half-close both ways", ignore }, async () => {
  const listener = FastTcpListener.listen("127.0.0.1", 0);
  const { client, server } = await pair(listener);
  // The client half-closes: the server reads its bytes, then null, and can still answer. Both
  // arrive, and the poller reports them, before the server reads: its first read takes the bytes
  // (fewer than it asked for), and the end must still be read after them, with no new edge.
  await client.write(encoder.encode("request"));
  await client.closeWrite();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(await readAll(server), "request");
  assert.equal(await server.read(new Uint8Array(8)), null, "the end stays the end");
  await server.write(encoder.encode("reply"));
  // The server half-closes: the client reads to the end.
  await server.closeWrite();
  assert.equal(await readAll(client), "reply");
  server.close();
  client.close();
  listener.close();
  await within(listener.drained, 10_000, "drained");
});

/** A client in a Python process that connects, then resets (SO_LINGER 0) when told to. */
const RESETTER = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
sys.stdin.readline()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset", flush=True)
`;

Deno.test({ name: "tcp fast: a reset while a read waits rejects it", ignore }, async () => {
  const listener = FastTcpListener.listen("127.0.0.1", 0);
  const accepted = listener.accept();
  const child = new Deno.Command("python3", {
    args: ["-c", RESETTER, String(listener.addr.port)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const server = await within(accepted, 10_000, "accept");
  assert.match((await lines.read()).value ?? "", /connected/);
  const read = server.read(new Uint8Array(64));
  assert.ok(await stillPending(read), "nothing was sent: the read waits");
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode("go\n"));
  await writer.close();
  await assert.rejects(within(read, 10_000, "reset read"), Deno.errors.ConnectionReset);
  // The error was the read's; what follows is the end, and a write fails.
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 10; i++) await server.write(new Uint8Array(1024));
    })(),
    (e) => e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset,
  );
  while (!(await lines.read()).done);
  await child.status;
  server.close();
  listener.close();
  await within(listener.drained, 10_000, "drained");
});

Deno.test(
  { name: "tcp fast: a client that stops reading: writes wait for room", ignore },
  async () => {
    const listener = FastTcpListener.listen("127.0.0.1", 0);
    const { client, server } = await pair(listener);
    const block = new Uint8Array(256 * 1024).fill(0x61);
    let sent = 0;
    let partial = false;
    let waiting: Promise<number> | null = null;
    // Fill the kernel's buffers: writes take what fits, then one waits.
    for (let i = 0; i < 1000 && waiting === null; i++) {
      const write = server.write(block);
      if (await stillPending(write)) waiting = write;
      else {
        const n = await write;
        if (n < block.length) partial = true;
        sent += n;
      }
    }
    assert.ok(waiting !== null, "a write waits once the client's buffers are full");
    assert.ok(partial || sent > 0);
    // The client reads: the waiting write goes on, and every byte arrives.
    let received = 0;
    const chunk = new Uint8Array(65536);
    const reading = (async () => {
      for (;;) {
        const n = await client.read(chunk);
        if (n === null) return;
        received += n;
      }
    })();
    sent += await within(waiting!, 10_000, "write after the client read");
    await server.closeWrite();
    await within(reading, 10_000, "client reads to the end");
    assert.equal(received, sent);
    server.close();
    client.close();
    listener.close();
    await within(listener.drained, 10_000, "drained");
  },
);

Deno.test(
  { name: "tcp fast: close rejects what waits, is idempotent, leaks no fd", ignore },
  async () => {
    const before = openFds();
    const listener = FastTcpListener.listen("127.0.0.1", 0);
    const { client, server } = await pair(listener);
    const read = server.read(new Uint8Array(64));
    const accept = listener.accept();
    server.close();
    server.close();
    await assert.rejects(read, Deno.errors.Interrupted);
    await assert.rejects(server.read(new Uint8Array(1)), Deno.errors.BadResource);
    await assert.rejects(server.write(new Uint8Array(1)), Deno.errors.BadResource);
    listener.close();
    listener.close();
    await assert.rejects(accept, Deno.errors.BadResource);
    // The client sees the server's close.
    assert.equal(await within(client.read(new Uint8Array(8)), 10_000, "client EOF"), null);
    client.close();
    await within(listener.drained, 10_000, "drained");
    assert.equal(openFds(), before);
  },
);

Deno.test(
  {
    name:
      "tcp fast: 10,000 idle sockets (or what the open-files limit allows) open and close, no fd leaked",
    ignore,
  },
  async () => {
    const COUNT = 10_000;
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const soft = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 0);
    const count = Math.min(COUNT, Math.floor((soft - openFds() - 200) / 2));
    assert.ok(count >= 1000, `open files limit ${soft} too low`);
    const before = openFds();
    const listener = FastTcpListener.listen("127.0.0.1", 0);
    const servers: FastTcpConn[] = [];
    const clients: Deno.TcpConn[] = [];
    const reads: Promise<number | null>[] = [];
    const accepting = (async () => {
      while (servers.length < count) {
        const conn = await listener.accept();
        servers.push(conn);
        // Every one idle with a read waiting, as the servers hold them.
        reads.push(conn.read(new Uint8Array(16)));
      }
    })();
    for (let i = 0; i < count; i += 250) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 250); j++) {
        batch.push(Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
      }
      clients.push(...await Promise.all(batch));
    }
    await within(accepting, 60_000, "all accepted");
    // The listener, its epoll and eventfd, and both ends of every connection.
    assert.equal(openFds(), before + 3 + 2 * count);
    // The clients close: every waiting read ends with null.
    for (const client of clients) client.close();
    const ends = await within(Promise.all(reads), 60_000, "all reads end");
    assert.ok(ends.every((n) => n === null));
    for (const server of servers) server.close();
    listener.close();
    await within(listener.drained, 10_000, "drained");
    assert.equal(openFds(), before);
  },
);

Deno.test({
  name: "tcp fast: closing the listener first; the loop ends with the last connection",
  ignore,
}, async () => {
  const listener = FastTcpListener.listen("127.0.0.1", 0);
  const { client, server } = await pair(listener);
  let drained = false;
  listener.drained.then(() => drained = true);
  listener.close();
  // A connection accepted before still works while it is open.
  const read = server.read(new Uint8Array(8));
  await client.write(encoder.encode("ok"));
  assert.equal(await within(read, 10_000, "read after the listener closed"), 2);
  assert.equal(drained, false);
  server.close();
  client.close();
  await within(listener.drained, 10_000, "drained");
});

/** A client in a Python process that writes as fast as it can until its stdin closes (at most
 *  20 s), then says whether it was stopped or gave up. */
const FLOODER = `
import socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
stop = threading.Event()
def until_stdin_closes():
    sys.stdin.read()
    stop.set()
threading.Thread(target=until_stdin_closes, daemon=True).start()
block = b"x" * (1 << 20)
deadline = time.time() + 20
sent = 0
while not stop.is_set() and time.time() < deadline:
    s.sendall(block)
    sent += 1
    if sent == 4:
        print("flooding", flush=True)
print("stopped" if stop.is_set() else "gave up", flush=True)
s.close()
`;

Deno.test({
  name: "tcp fast: a connection whose reads always find data still lets timers run",
  ignore,
}, async () => {
  // Each read here completes at once (the socket is never empty), so the loop below would run
  // in microtasks for as long as the client writes, starving every timer and op of the process,
  // but for the poller's budget of synchronous completions per wake-up.
  const listener = FastTcpListener.listen("127.0.0.1", 0);
  const accepted = listener.accept();
  const child = new Deno.Command("python3", {
    args: ["-c", FLOODER, String(listener.addr.port)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const server = await within(accepted, 10_000, "accept");
  let bytes = 0;
  const buffer = new Uint8Array(64);
  const reading = (async () => {
    for (;;) {
      const n = await server.read(buffer).catch(() => null);
      if (n === null) return;
      bytes += n;
      // Some work per read (as a server's): the client always writes faster than this takes.
      const until = performance.now() + 0.02;
      while (performance.now() < until);
    }
  })();
  assert.match((await lines.read()).value ?? "", /flooding/);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  // A timer fires while the flood goes on, and not seconds late (starved, it waited as long as
  // the client wrote: 18 s of the client's 20).
  const asked = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 10));
  const late = performance.now() - asked;
  assert.equal(exited, false, "the timer ran only after the client had given up");
  assert.ok(late < 5000, `a 10-ms timer fired after ${Math.round(late)} ms`);
  await child.stdin.close();
  let rest = "";
  for (;;) {
    const { value, done } = await lines.read();
    if (done) break;
    rest += value;
  }
  await status;
  assert.match(rest, /stopped/);
  assert.ok(bytes > 0);
  server.close();
  await within(reading, 10_000, "the read loop ends with the close");
  listener.close();
  await within(listener.drained, 10_000, "drained");
});
