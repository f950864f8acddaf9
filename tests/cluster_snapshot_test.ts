/**
 * Snapshots over a real redis-server (snapshotStore.ts): the streams are trimmed to the previous
 * snapshot's position, so a node that joins after the fill was trimmed away loads the snapshot
 * and the streams' tail and serves the whole swarm; a node that comes back after its place was
 * trimmed away finds the gap and loads the snapshot over its store; a writer that dies before
 * its swap leaves the previous snapshot usable; a snapshot that is truncated, forged, oversized,
 * misplaced or another cluster's is refused, counted, and never applied.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import { createClient } from "npm:@redis/client@6.3.1";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { RedisProxy } from "./support/redisProxy.ts";
import {
  announce,
  infoHash,
  ipv4,
  KEYS,
  makeNode,
  stopAll,
  type TestNode,
  waitFor,
} from "./support/clusterNodes.ts";
import type { SnapshotOptions } from "../src/cluster/snapshotStore.ts";
import { compareStreamIds } from "../src/cluster/redisCommands.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_snapshot_test: skipped, no redis-server binary on PATH");

/** Snapshots as often as a test can wait for: due when the streams grew, 300 ms apart at least. */
const QUICK: SnapshotOptions = { minIntervalMs: 300, tickMs: 50, chunkBytes: 4096 };

/** A plain client for what the tests look at and write in Redis. */
interface Raw {
  sendCommand(args: (string | Buffer)[]): Promise<unknown>;
  destroy(): void;
}

async function rawClient(url: string): Promise<Raw> {
  const raw = createClient({ url, RESP: 2 });
  raw.on("error", () => {});
  await raw.connect();
  return raw as unknown as Raw;
}

/** The id of the first and of the last entry of a stream ("0-0" if it is empty or gone). */
async function streamEnds(raw: Raw, key: string): Promise<[string, string]> {
  const first = await raw.sendCommand(["XRANGE", key, "-", "+", "COUNT", "1"]) as [string][];
  const last = await raw.sendCommand(["XREVRANGE", key, "+", "-", "COUNT", "1"]) as [string][];
  return [first[0]?.[0] ?? "0-0", last[0]?.[0] ?? "0-0"];
}

/** Announces `count` peers (ports 1..count) over 20 torrents on `node`, in rounds of 250. */
async function fill(node: TestNode, count: number, from = 0): Promise<void> {
  for (let n = from; n < from + count; n++) {
    announce(node, infoHash(n % 20), ipv4(n), 1 + n, 2, false);
    if (n % 250 === 249) await waitFor("round taken", () => node.sync.recorder.pending === 0);
  }
  await waitFor("fill published", () => node.sync.recorder.pending === 0);
}

/**
 * Flips the seeder flag of the first `count` peers of a fill on `node` round after round until
 * `done()`: changes that grow the streams (so snapshots fall due) without adding peers.
 */
async function churn(node: TestNode, count: number, done: () => boolean): Promise<void> {
  for (let round = 0; !done(); round++) {
    if (round > 2000) throw new Error("churn: not done after 2000 rounds");
    for (let n = 0; n < count; n++) {
      announce(node, infoHash(n % 20), ipv4(n), 1 + n, 0, round % 2 === 0);
    }
    await waitFor("churn taken", () => node.sync.recorder.pending === 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test({
  name: "a node that joins after the fill was trimmed from the streams loads the snapshot " +
    "and the tail, and serves the whole swarm",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const raw = await rawClient(redis.url);
    const a = makeNode("a", redis.url, { snapshots: QUICK });
    const nodes = [a];
    try {
      await a.sync.start();
      await fill(a, 3000);
      const stream = a.sync.streamKey;
      const [, fillEnd] = await streamEnds(raw, stream);
      // Changes keep coming until the stream no longer holds the fill: two snapshots were
      // written after it, and the streams are trimmed to the older one's position.
      const published = a.sync.counters.published;
      let trimmedPast = false;
      const watch = (async () => {
        while (!trimmedPast) {
          const [first] = await streamEnds(raw, stream);
          trimmedPast = compareStreamIds(first, fillEnd) > 0;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      await churn(a, 200, () => trimmedPast);
      await watch;
      const length = Number(await raw.sendCommand(["XLEN", stream]));
      assert.ok(length < a.sync.counters.published - published, `${length} entries kept`);
      assert.ok(a.sync.counters.snapshots.written >= 2);

      // c joins now: the fill is only in the snapshot.
      const c = makeNode("c", redis.url, { snapshots: QUICK });
      nodes.push(c);
      await c.sync.start();
      assert.equal(c.store.peers.size, 3000, "every peer, at once");
      assert.equal(c.sync.counters.snapshots.loaded, 1);
      await waitFor("c agrees with a", () => c.store.snapshot() === a.store.snapshot());
      assert.deepEqual(c.sync.counters.snapshotRejected, {
        malformed: 0,
        oversized: 0,
        bad_mac: 0,
        mismatched: 0,
      });
      for (let seed = 0; seed < 20; seed++) {
        assert.deepEqual(c.store.counts(infoHash(seed)), a.store.counts(infoHash(seed)));
      }
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

/** Waits while `node` changes peers until its stream's first entry lies past `id`. */
async function churnUntilTrimmedPast(node: TestNode, raw: Raw, id: string): Promise<void> {
  let trimmedPast = false;
  const watch = (async () => {
    while (!trimmedPast) {
      const [first] = await streamEnds(raw, node.sync.streamKey);
      trimmedPast = compareStreamIds(first, id) > 0;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    await churn(node, 200, () => trimmedPast);
  } finally {
    trimmedPast = true;
    await watch;
  }
}

Deno.test({
  name: "a node that comes back after its place in the streams was trimmed away finds the gap " +
    "and loads the snapshot over its store",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const raw = await rawClient(redis.url);
    await using proxy = new RedisProxy(redis.port);
    const a = makeNode("a", redis.url, { snapshots: QUICK });
    const b = makeNode("b", proxy.url, { snapshots: QUICK });
    const nodes = [a, b];
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      await fill(a, 300);
      await waitFor("b has a's first peers", () => b.store.peers.size === 300);

      // b is away while a adds 2700 peers and changes on until they are trimmed from the streams.
      proxy.down();
      await waitFor("b disconnected", () => b.sync.counters.state === "disconnected");
      await fill(a, 2700, 300);
      const [, fillEnd] = await streamEnds(raw, a.sync.streamKey);
      await churnUntilTrimmedPast(a, raw, fillEnd);

      // b comes back: it reads on from its place, finds a's sequence skipping what was trimmed,
      // and loads the snapshot over its store.
      proxy.up();
      await waitFor("b agrees with a", () => b.store.snapshot() === a.store.snapshot());
      assert.equal(b.store.peers.size, 3000);
      assert.ok(b.sync.counters.gaps >= 1, "the gap was seen");
      assert.equal(b.sync.counters.snapshots.loaded, 1);
      assert.ok(b.logs.some((line) => /loaded its snapshot/.test(line)), b.logs.join("\n"));
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a snapshot writer that dies before its swap leaves the previous snapshot usable",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const raw = await rawClient(redis.url);
    let die = false;
    let died = false;
    const a = makeNode("a", redis.url, {
      snapshots: {
        ...QUICK,
        // The writer stops for good once its chunks are written, its manifest not swapped in:
        // what a SIGKILL there leaves in Redis.
        beforeSwap: () => {
          if (!die) return Promise.resolve();
          died = true;
          return new Promise<void>(() => {});
        },
      },
    });
    const nodes = [a];
    try {
      await a.sync.start();
      await fill(a, 2000);
      const written = a.sync.counters.snapshots.written;
      await churn(a, 200, () => a.sync.counters.snapshots.written > written);
      const manifest = await raw.sendCommand(["GET", KEYS.manifest(0)]);
      assert.ok(typeof manifest === "string" && manifest.length > 0);

      die = true;
      await churn(a, 200, () => died);
      await a.sync.stop();
      // The dead writer's chunks are there, its manifest is not: the previous one stands.
      const version = Number(await raw.sendCommand(["GET", KEYS.version(0)]));
      const orphan = await raw.sendCommand(["EXISTS", KEYS.chunk(0, version, 0)]);
      assert.equal(orphan, 1, "the dead writer's first chunk");
      assert.equal(await raw.sendCommand(["GET", KEYS.manifest(0)]), manifest);

      const c = makeNode("c", redis.url, { snapshots: QUICK });
      nodes.push(c);
      await c.sync.start();
      assert.equal(c.sync.counters.snapshots.loaded, 1);
      assert.equal(c.store.peers.size, 2000);
      assert.equal(c.store.snapshot(), a.store.snapshot());
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});
