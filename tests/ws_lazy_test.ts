/**
 * src/servers/ws/lazyWsServer.ts, over real sockets: the WebSocket server is not loaded until the
 * first upgrade, which is answered (101, then a WebTorrent announce) as any later one; sockets
 * upgraded while it loads count against --max-ws-connections and are served in the order they
 * came; a stop during the load closes them and gives their per-address slots back; refusals
 * counted before the load stay counted after it.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { Tracker } from "../src/servers/tracker.ts";
import { HttpTracker } from "../src/servers/http/httpTracker.ts";
import { HttpWireServer } from "../src/servers/http/httpWire.ts";
import { DEFAULT_MAX_QUEUED_BYTES, LazyWsServer } from "../src/servers/ws/lazyWsServer.ts";
import { WsPeerKeys } from "../src/cluster/wsPeerKeys.ts";
import { acceptFor } from "../src/protocol/wsHandshake.ts";
import { addressKey } from "../src/policy/connectionsPerAddress.ts";
import { UPGRADE_BAD } from "../src/observe/wsCounters.ts";
import { announce, id, WsClient } from "./support/wsHarness.ts";

interface Wired extends AsyncDisposable {
  lazy: LazyWsServer;
  http: HttpTracker;
  port: number;
}

/** startTracker's wiring of the WebSocket server, with `maxConnections`. */
function wire(maxConnections = 100): Wired {
  const parsed = parseCommandLine(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  if (parsed.kind !== "run") throw new Error("flags do not run");
  const config = parsed.config;
  const clock = new Clock();
  clock.update();
  clock.start();
  const store = new SwarmTable({
    peerTimeout: config.peerTimeout,
    wsPeerTimeout: config.wsPeerTimeout,
    maxTorrents: config.maxTorrents,
    maxPeers: config.maxPeers,
    whenFull: config.whenFull,
  });
  const tracker = new Tracker(store, clock, config);
  const http = new HttpTracker(tracker);
  const lazy = new LazyWsServer(
    tracker,
    {
      maxConnections,
      interval: config.wsInterval,
      messageTimeoutMs: 10_000,
      maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES,
    },
    http.connectionsPerAddress,
    () => {},
    new WsPeerKeys(),
  );
  http.upgrades = lazy;
  const server = HttpWireServer.listen("127.0.0.1", 0, http, {
    maxConnections: 1000,
    maxConnectionsPerIp: 0,
    headerTimeoutMs: 10_000,
    idleTimeoutMs: 30_000,
    minSendRate: 65536,
  });
  return {
    lazy,
    http,
    port: server.addr.port,
    [Symbol.asyncDispose]: async () => {
      await Promise.all([server.shutdown(), lazy.shutdown()]);
      clock.stop();
    },
  };
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const LOOPBACK = { family: 4 as const, address: new Uint8Array([127, 0, 0, 1, ...new Array(12)]) };

/** `n` server-side sockets of fresh TCP connections, and their clients. */
async function socketPairs(n: number): Promise<{ server: Deno.TcpConn; client: WsClient }[]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const client = await WsClient.raw(listener.addr.port);
    pairs.push({ server: await listener.accept(), client });
  }
  return pairs;
}

Deno.test("lazy ws: the first upgrade loads the server and is answered like any other", async () => {
  await using wired = wire();
  assert.equal(wired.lazy.loaded, null, "not loaded at start");
  // A bad upgrade before the load is counted, and stays counted once the server has the counters.
  const bad = await WsClient.raw(wired.port);
  await bad.send(`GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n`);
  assert.match(await bad.readHead(), /^HTTP\/1\.1 400 /);
  bad.conn.close();
  assert.equal(wired.lazy.loaded, null, "a refused upgrade loads nothing");

  await using first = await WsClient.open(wired.port);
  await first.json(announce(id("h"), id("a"), { event: "started", left: 100 }));
  const reply = await first.message();
  assert.equal(reply.action, "announce");
  assert.equal(reply.incomplete, 1);
  assert.notEqual(wired.lazy.loaded, null, "loaded by the first upgrade");
  await using second = await WsClient.open(wired.port);
  await second.json(announce(id("h"), id("b"), { event: "started", left: 100 }));
  assert.equal((await second.message()).incomplete, 2);
  const counters = wired.lazy.loaded!.counters;
  assert.equal(counters, wired.lazy.counters, "the counters from the start");
  assert.equal(counters.open, 2);
  assert.equal(counters.upgradesRefused[UPGRADE_BAD], 1);
});

Deno.test("lazy ws: sockets upgraded during the load count as open and are served in order", async () => {
  await using wired = wire(2);
  const pairs = await socketPairs(2);
  for (const { server } of pairs) {
    assert.ok(!wired.lazy.full);
    wired.lazy.adopt(server, new Uint8Array(0), acceptFor(KEY), LOOPBACK, null);
  }
  assert.equal(wired.lazy.loaded, null, "still loading");
  assert.ok(wired.lazy.full, "two waiting fill --max-ws-connections 2");
  await wired.lazy.load();
  for (const [i, { client }] of pairs.entries()) {
    const head = await client.readHead();
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.ok(head.includes(`Sec-WebSocket-Accept: ${acceptFor(KEY)}\r\n`), head);
    await client.json(announce(id("h"), id("p", i), { event: "started", left: 1 }));
    assert.equal((await client.message()).action, "announce");
  }
  assert.equal(wired.lazy.counters.open, 2);
  assert.ok(wired.lazy.full);
  for (const { client } of pairs) client.conn.close();
});

Deno.test("lazy ws: a stop during the load closes the waiting sockets and frees their slots", async () => {
  await using wired = wire();
  const [{ server, client }] = await socketPairs(1);
  const key = addressKey(4, LOOPBACK.address);
  const perAddress = wired.http.connectionsPerAddress;
  assert.ok(perAddress.tryOpen(key, 10));
  wired.lazy.adopt(server, new Uint8Array(0), acceptFor(KEY), LOOPBACK, key);
  await wired.lazy.shutdown();
  assert.equal(await client.readHead(), "", "closed without a 101");
  assert.deepEqual(await client.frame(), { kind: "eof" });
  assert.equal(perAddress.openFrom(key), 0, "the per-address slot is given back");
  assert.ok(wired.lazy.full, "no upgrade taken once stopping");
  client.conn.close();
});
