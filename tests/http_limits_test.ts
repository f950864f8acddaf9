/**
 * The HTTP server's resource bounds over real sockets: a client sending half a head (slowloris),
 * or trickling bytes, or nothing, is cut after the header timeout; an idle keep-alive connection
 * after the idle timeout; connections beyond the cap are closed at once and new ones served once
 * others have gone; heads over 8 KiB get 414/431 and a close. Then the same flags on a real otter
 * process, to check that --max-connections, --header-timeout and --idle-timeout reach the server.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { RawClient } from "./support/rawHttp.ts";
import { startWire } from "./support/wireServer.ts";

const HASH = "%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78";
const ANNOUNCE = `/announce?info_hash=${HASH}&peer_id=-OT0001-000000000001&port=6881`;

function get(path: string, headers = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: t\r\n${headers}\r\n`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 20 ms for up to `ms`; false if it never held. */
async function eventually(condition: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

Deno.test("limits: half a head, a trickle, or silence is cut after the header timeout", async () => {
  await using wire = startWire([], { headerTimeoutMs: 1000, idleTimeoutMs: 30_000 });
  const started = performance.now();
  await using half = await wire.connect();
  await half.send("GET /announce?info_hash=" + HASH + " HTTP/1.1\r\nHost: t\r\nUser-Ag");
  await using silent = await wire.connect();
  await using trickle = await wire.connect();
  // A byte every 200 ms keeps data flowing but never finishes the head.
  const request = get(ANNOUNCE);
  let sent = 0;
  let trickleCut = -1;
  while (performance.now() - started < 4000 && trickleCut < 0) {
    try {
      await trickle.send(request[sent++ % (request.length - 4)]);
    } catch {
      trickleCut = performance.now() - started;
      break;
    }
    if (await trickle.closesWithin(200)) trickleCut = performance.now() - started;
  }
  assert.ok(trickleCut >= 700 && trickleCut < 3000, `trickle cut after ${trickleCut} ms`);
  assert.equal(await half.closesWithin(2000), true);
  assert.equal(await silent.closesWithin(2000), true);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 4500, `cut after ${elapsed} ms`);
  assert.ok(wire.server.counters.timedOut >= 3);
  // A prompt client is still served.
  await using prompt = await wire.connect();
  await prompt.send(get(ANNOUNCE));
  assert.equal((await prompt.response()).status, 200);
});

Deno.test("limits: an idle keep-alive connection is closed after the idle timeout", async () => {
  await using wire = startWire([], { headerTimeoutMs: 5000, idleTimeoutMs: 1000 });
  await using client = await wire.connect();
  await client.send(get(ANNOUNCE));
  assert.equal((await client.response()).status, 200);
  const answered = performance.now();
  // Still open at half the timeout, and usable; that request restarts the idle clock.
  assert.equal(await client.closesWithin(500), false);
  await client.send(get(ANNOUNCE));
  assert.equal((await client.response()).status, 200);
  const again = performance.now();
  assert.equal(await client.closesWithin(3000), true);
  const idle = performance.now() - again;
  assert.ok(idle >= 700 && idle < 3000, `closed after ${idle} ms idle`);
  assert.ok(performance.now() - answered > 1200);
});

Deno.test("limits: connections over the cap are closed at once; freed slots serve again", async () => {
  const cap = 5;
  await using wire = startWire([], { maxConnections: cap });
  const held: RawClient[] = [];
  try {
    for (let i = 0; i < cap; i++) {
      const client = await wire.connect();
      held.push(client);
      await client.send(get(ANNOUNCE));
      assert.equal((await client.response()).status, 200);
    }
    assert.equal(wire.server.connections, cap);
    const extra: RawClient[] = [];
    for (let i = 0; i < 3; i++) extra.push(await wire.connect());
    for (const client of extra) {
      // Closed without a reply (writing may already fail with a reset).
      await client.send(get(ANNOUNCE)).catch(() => {});
      assert.equal(await client.closesWithin(2000), true);
      client.close();
    }
    assert.equal(wire.server.counters.refused, 3);
    // The held ones still work.
    await held[0].send(get(ANNOUNCE));
    assert.equal((await held[0].response()).status, 200);
    // Free two slots: two new clients are served.
    held.shift()!.close();
    held.shift()!.close();
    assert.ok(await eventually(() => wire.server.connections === cap - 2));
    for (let i = 0; i < 2; i++) {
      const client = await wire.connect();
      held.push(client);
      await client.send(get(ANNOUNCE));
      assert.equal((await client.response()).status, 200);
    }
    assert.equal(wire.server.connections, cap);
  } finally {
    for (const client of held) client.close();
  }
});

Deno.test("limits: heads over 8 KiB get 414 or 431 and a close; 8 KiB fits", async () => {
  await using wire = startWire();
  {
    await using client = await wire.connect();
    await client.send(get(`${ANNOUNCE}&key=${"a".repeat(9000)}`));
    const r = await client.response();
    assert.equal(r.status, 414);
    assert.equal(r.headers.get("connection"), "close");
    assert.equal(await client.closesWithin(2000), true);
  }
  {
    await using client = await wire.connect();
    await client.send(get(ANNOUNCE, `X-Filler: ${"b".repeat(9000)}\r\n`));
    const r = await client.response();
    assert.equal(r.status, 431);
    assert.equal(await client.closesWithin(2000), true);
  }
  {
    // Many small headers add up: still 431, sent in pieces.
    await using client = await wire.connect();
    await client.send(`GET ${ANNOUNCE} HTTP/1.1\r\n`);
    for (let i = 0; i < 100; i++) {
      await client.send(`X-Filler-${i}: ${"c".repeat(90)}\r\n`).catch(() => {});
    }
    const r = await client.response();
    assert.equal(r.status, 431);
  }
  {
    // A head of exactly 8192 bytes is served, on a connection that first had a short request.
    await using client = await wire.connect();
    await client.send(get(ANNOUNCE));
    assert.equal((await client.response()).status, 200);
    const base = get(ANNOUNCE, "X-Filler: \r\n");
    await client.send(get(ANNOUNCE, `X-Filler: ${"d".repeat(8192 - base.length)}\r\n`));
    assert.equal((await client.response()).status, 200);
    await client.send(get(ANNOUNCE));
    assert.equal((await client.response()).status, 200);
  }
});

Deno.test("limits: --max-connections, --header-timeout and --idle-timeout reach otter's HTTP server", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-connections",
    "2",
    "--header-timeout",
    "1",
    "--idle-timeout",
    "2",
  ]);
  const port = Number(new URL(otter.http[0]).port);
  await using a = await RawClient.connect(port);
  await a.send(get(ANNOUNCE));
  assert.equal((await a.response()).status, 200);
  const answered = performance.now();
  await using b = await RawClient.connect(port);
  await b.send("GET /ann");
  await sleep(100);
  // The third is over the cap.
  await using c = await RawClient.connect(port);
  assert.equal(await c.closesWithin(2000), true);
  // b sent half a head: cut after about 1 s; a is idle: cut after about 2 s.
  assert.equal(await b.closesWithin(3000), true);
  assert.equal(await a.closesWithin(5000), true);
  const idle = performance.now() - answered;
  assert.ok(idle >= 1500 && idle < 4500, `idle connection closed after ${idle} ms`);
});
