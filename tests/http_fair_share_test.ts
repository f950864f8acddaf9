/**
 * One client cannot take the HTTP server, over real sockets: an address gets at most
 * --max-connections-per-ip connections (trusted proxies exempt; refusals counted apart) while
 * another address is still served; a reply read below --min-send-rate is cut in bounded time
 * though each piece of it is taken in time, while a client reading faster gets all of it; and a
 * client that does not take its replies holds only their unsent bytes, not a pooled buffer.
 * The defaults' arithmetic: a 21 MB full scrape read at 1 MB/s completes.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/config/config.ts";
import { addressKey, ConnectionsPerAddress } from "../src/policy/connectionsPerAddress.ts";
import { sendDeadline } from "../src/servers/http/slowReply.ts";
import { startOtter } from "./support/otterProcess.ts";
import { RawClient } from "./support/rawHttp.ts";
import { startWire } from "./support/wireServer.ts";

const HASH = "%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78";

function announce(port: number, extra = ""): string {
  return `GET /announce?info_hash=${HASH}&peer_id=-OT0001-${
    String(port).padStart(12, "0")
  }&port=${port}&left=10${extra} HTTP/1.1\r\nHost: t\r\n\r\n`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function eventually(condition: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** GET `url` with curl from 127.0.0.2 (it binds that address): what curl prints. */
async function curlFrom127002(url: string, options: string[] = []): Promise<string> {
  const { stdout } = await new Deno.Command("curl", {
    args: ["-s", "--max-time", "5", "--interface", "127.0.0.2", ...options, url],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout);
}

/** An announce from 127.0.0.2: the HTTP status, or 0 if refused. */
async function announceFrom127002(port: number): Promise<number> {
  const url = `http://127.0.0.1:${port}/announce?info_hash=${HASH}&peer_id=-OT0001-000000009999` +
    "&port=9999&left=1";
  return Number(await curlFrom127002(url, ["-o", "/dev/null", "-w", "%{http_code}"])) || 0;
}

Deno.test("fair share: addresses are IPv4 addresses and IPv6 /64s; entries only while open", () => {
  const a = new Uint8Array(16);
  const b = new Uint8Array(16);
  a.set([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0xaa, 0, 0, 0, 0, 0, 0, 1]);
  b.set([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0xbb, 0xcc, 0, 0, 0, 0, 0, 9]);
  assert.equal(addressKey(6, a), addressKey(6, b));
  b[7] = 3;
  assert.notEqual(addressKey(6, a), addressKey(6, b));
  assert.notEqual(
    addressKey(4, Uint8Array.of(10, 0, 0, 1)),
    addressKey(4, Uint8Array.of(10, 0, 0, 2)),
  );
  assert.equal(addressKey(4, Uint8Array.of(255, 255, 255, 255)), 0xffffffff);

  const open = new ConnectionsPerAddress();
  assert.equal(open.tryOpen(1, 2), true);
  assert.equal(open.tryOpen(1, 2), true);
  assert.equal(open.tryOpen(1, 2), false);
  assert.equal(open.tryOpen("x", 2), true);
  assert.equal(open.addresses, 2);
  open.close(1);
  assert.equal(open.tryOpen(1, 2), true);
  open.close(1);
  open.close(1);
  open.close("x");
  assert.equal(open.addresses, 0);
});

Deno.test("fair share: one address gets --max-connections-per-ip, another is still served", async () => {
  await using wire = startWire([], { maxConnections: 50, maxConnectionsPerIp: 3 });
  const held: RawClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const client = await wire.connect();
      held.push(client);
      await client.send(announce(7000 + i));
      assert.equal((await client.response()).status, 200);
    }
    // The fourth from 127.0.0.1 is closed unanswered, and counted as a per-address refusal.
    await using extra = await wire.connect();
    await extra.send(announce(7010)).catch(() => {});
    assert.equal(await extra.closesWithin(2000), true);
    assert.equal(extra.pending, 0);
    assert.equal(wire.server.counters.refusedPerIp, 1);
    assert.equal(wire.server.counters.refused, 0);
    // 127.0.0.2 is served meanwhile.
    assert.equal(await announceFrom127002(wire.port), 200);
    // A slot given back serves 127.0.0.1 again.
    held.shift()!.close();
    assert.ok(await eventually(() => wire.server.connections === 2));
    const again = await wire.connect();
    held.push(again);
    await again.send(announce(7020));
    assert.equal((await again.response()).status, 200);
  } finally {
    for (const client of held) client.close();
  }
  // Every entry goes with its address's last connection.
  assert.ok(await eventually(() => wire.server.connections === 0));
  assert.equal(wire.http.connectionsPerAddress.addresses, 0);
});

Deno.test("fair share: --max-connections-per-ip reaches otter's HTTP server and /metrics", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-connections-per-ip",
    "2",
  ]);
  const port = Number(new URL(otter.http[0]).port);
  await using a = await RawClient.connect(port);
  await using b = await RawClient.connect(port);
  for (const client of [a, b]) {
    await client.send(announce(7200));
    assert.equal((await client.response()).status, 200);
  }
  await using c = await RawClient.connect(port);
  await c.send(announce(7201)).catch(() => {});
  assert.equal(await c.closesWithin(2000), true);
  const metrics = await curlFrom127002(`http://127.0.0.1:${port}/metrics`);
  assert.match(metrics, /^otter_http_connections_refused_total\{reason="per_ip"\} 1$/m);
  assert.match(metrics, /^otter_http_connections_refused_total\{reason="max_connections"\} 0$/m);
});

Deno.test("fair share: a --trust-proxy proxy is held to --max-connections only", async () => {
  await using wire = startWire(["--trust-proxy", "127.0.0.1"], {
    maxConnections: 50,
    maxConnectionsPerIp: 2,
  });
  const held: RawClient[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const client = await wire.connect();
      held.push(client);
      await client.send(announce(7100 + i));
      assert.equal((await client.response()).status, 200);
    }
    assert.equal(wire.server.counters.refusedPerIp, 0);
    assert.equal(wire.http.connectionsPerAddress.addresses, 0);
  } finally {
    for (const client of held) client.close();
  }
});

/** A route answering `bytes` zero bytes with a Content-Length, in 64 KiB pieces. */
function bigBody(bytes: number): () => Response {
  const piece = new Uint8Array(65536);
  return () => {
    let left = bytes;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (left <= 0) return controller.close();
        const n = Math.min(left, piece.length);
        left -= n;
        controller.enqueue(n === piece.length ? piece : piece.subarray(0, n));
      },
    }, { highWaterMark: 0 });
    return new Response(body, { headers: { "content-length": String(bytes) } });
  };
}

/**
 * Reads GET /big (Connection: close) on a fresh connection at `rate` bytes a second on average
 * until the server closes it, `stop()` says so, or `ms` pass: the bytes received (head included).
 */
async function readPaced(
  port: number,
  rate: number,
  ms: number,
  stop: () => boolean = () => false,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(65536);
  let received = 0;
  const start = performance.now();
  try {
    await conn.write(
      new TextEncoder().encode("GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    );
    while (performance.now() - start < ms && !stop()) {
      const early = received / rate * 1000 - (performance.now() - start);
      if (early > 0) await sleep(early);
      const n = await conn.read(chunk).catch(() => null);
      if (n === null) break;
      received += n;
    }
  } finally {
    conn.close();
  }
  return received;
}

// The kernel takes a few MB of a reply at once and wakes a blocked writer only when about a
// third of its buffer is free again: a reader must drain that within the idle timeout for each
// write to finish in time, hence the 3 s and 1 MiB/s.
const BODY = 32 * 1024 * 1024;
const FLOOR = 4 * 1024 * 1024;
const LIMITS = { idleTimeoutMs: 3000, minSendRate: FLOOR };

Deno.test("fair share: a reply read below --min-send-rate is cut, though every write finishes in time", async () => {
  await using wire = startWire([], LIMITS);
  wire.http.routes.set("/big", bigBody(BODY));
  const counters = wire.server.counters;
  // A quarter of the floor: each write completes within the idle timeout, so only the average
  // rate can end it; read to the end it would take 32 s.
  let cut = false;
  const reading = readPaced(wire.port, 1024 * 1024, 30_000, () => cut);
  const started = performance.now();
  // Meanwhile the connection holds no pooled reply buffer.
  await sleep(1000);
  assert.equal(wire.server.connections, 1);
  assert.equal(wire.server.outBuffersInUse, 0);
  cut = await eventually(() => counters.timedOut > 0, 20_000);
  const seconds = (performance.now() - started) / 1000;
  cut = true;
  const received = await reading;
  assert.ok(seconds < 20, `not cut after ${seconds} s`);
  assert.equal(counters.sendTimeouts, 1, `cut by idle ${counters.idleTimeouts}`);
  assert.ok(received < BODY, `${received} bytes`);
  assert.ok(await eventually(() => wire.server.connections === 0));
});

Deno.test("fair share: a client reading faster than --min-send-rate gets the whole reply", async () => {
  await using wire = startWire([], LIMITS);
  wire.http.routes.set("/big", bigBody(BODY));
  // Twice the floor, as 1 MB/s is to a full scrape under the defaults (next test).
  const received = await readPaced(wire.port, 2 * FLOOR, 30_000);
  assert.ok(received > BODY, `${received} of ${BODY} bytes`);
  assert.equal(wire.server.counters.timedOut, 0);
});

/**
 * When a reply of `bytes`, written in 64 KiB pieces to a client that takes `rate` bytes a second
 * (`stallAfter`: and nothing after that many), is cut by `sendDeadline`, in seconds; Infinity
 * if it completes. The kernel's buffers are left out: they only let pieces go sooner.
 */
function cutAfter(
  bytes: number,
  rate: number,
  idleTimeoutMs: number,
  minSendRate: number,
  stallAfter = Infinity,
): number {
  const piece = 65536;
  for (let queued = piece; queued - piece < bytes; queued += piece) {
    const writeStart = (queued - piece) / rate * 1000;
    const done = queued > stallAfter ? Infinity : Math.min(queued, bytes) / rate * 1000;
    const deadline = sendDeadline(0, writeStart, queued, idleTimeoutMs, minSendRate);
    if (done > deadline) return deadline / 1000;
  }
  return Infinity;
}

Deno.test("fair share: under the default limits a 21 MB full scrape at 1 MB/s completes, slow readers are cut", () => {
  const parsed = parseCommandLine([]);
  assert.equal(parsed.kind, "run");
  const { idleTimeout, minSendRate } = parsed.config;
  const idle = idleTimeout * 1000;
  const gzipScrape = 21_000_000;
  assert.equal(cutAfter(gzipScrape, 1_000_000, idle, minSendRate), Infinity);
  // The plain 70 MB form at 1 MB/s too; and the gzip form at the floor's own rate.
  assert.equal(cutAfter(70_000_000, 1_000_000, idle, minSendRate), Infinity);
  assert.equal(cutAfter(gzipScrape, minSendRate, idle, minSendRate), Infinity);
  // Reading 64 KiB every 29 s (each piece just within the idle timeout) was served for hours.
  const paced = cutAfter(gzipScrape, 65536 / 29, idle, minSendRate);
  assert.ok(paced < 120, `cut after ${paced} s`);
  // A client that stops reading is cut after the idle timeout; one at 1 byte a second too.
  const stalled = cutAfter(gzipScrape, 1_000_000, idle, minSendRate, 4_000_000);
  assert.ok(Math.abs(stalled - (4 + idleTimeout)) < 0.1, `${stalled}`);
  assert.equal(cutAfter(gzipScrape, 1, idle, minSendRate), idleTimeout);
});

Deno.test("fair share: a client that does not take its replies holds their unsent bytes, not a pooled buffer", async () => {
  await using wire = startWire(["--max-numwant", "2000"]);
  // A swarm of 2,000 peers, so each reply below is about 12 KB.
  const address = new Uint8Array(16);
  address.set([127, 0, 0, 1]);
  const client = { family: 4 as const, address, get: () => null };
  for (let port = 1; port <= 2000; port++) {
    const query = `info_hash=${HASH}&peer_id=-OT0001-${String(port).padStart(12, "0")}` +
      `&port=${port}&left=10`;
    assert.ok(wire.http.answerWire(false, query, client) > 0);
  }
  // Four clients each pipeline 800 announces (about 10 MB of replies, more than the kernel
  // buffers) and read nothing.
  const readers = 4;
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < readers; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: wire.port });
      conns.push(conn);
      let requests = "";
      for (let r = 0; r < 800; r++) requests += announce(3000 + i, "&numwant=2000");
      const bytes = new TextEncoder().encode(requests);
      // Not awaited: the server stops reading once its writes wait.
      (async () => {
        let sent = 0;
        while (sent < bytes.length) sent += await conn.write(bytes.subarray(sent));
      })().catch(() => {});
    }
    const counters = wire.server.counters;
    assert.ok(
      await eventually(() => counters.pendingWrites === readers, 10_000),
      `${counters.pendingWrites} writes waiting`,
    );
    await sleep(200);
    assert.equal(counters.pendingWrites, readers);
    assert.equal(wire.server.outBuffersInUse, 0);
    const outCapacity = 2 * (128 + wire.http.wireBody.length);
    assert.ok(counters.pendingWriteBytes > 0);
    assert.ok(counters.pendingWriteBytes <= readers * outCapacity, `${counters.pendingWriteBytes}`);
  } finally {
    for (const conn of conns) conn.close();
  }
  assert.ok(await eventually(() => wire.server.connections === 0));
  assert.equal(wire.server.counters.pendingWrites, 0);
  assert.equal(wire.server.counters.pendingWriteBytes, 0);
  assert.equal(wire.server.outBuffersInUse, 0);
});
