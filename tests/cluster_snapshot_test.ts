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
  SECRET,
  sleep,
  stopAll,
  type TestNode,
  waitFor,
} from "./support/clusterNodes.ts";
import type { SnapshotOptions } from "../src/cluster/snapshotStore.ts";
import {
  ChunkWriter,
  encodeManifest,
  MAX_CHUNK_BYTES,
  MAX_MANIFEST_BYTES,
  sealChunk,
  SnapshotMacs,
} from "../src/cluster/snapshotFormat.ts";
import { newSnapshotRejects, type SnapshotRejects } from "../src/cluster/clusterCounters.ts";
import { crc32 } from "../src/hash/crc32.ts";
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
      assert.ok(
        length < a.sync.counters.published,
        `${length} of ${a.sync.counters.published} kept`,
      );
      assert.ok(a.sync.counters.snapshots.written >= 2);

      // c joins now: the fill is only in the snapshot.
      const c = makeNode("c", redis.url, { snapshots: QUICK });
      nodes.push(c);
      await c.sync.start();
      assert.equal(c.store.peerMap.size, 3000, "every peer, at once");
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
      // Nothing changes now: no snapshot is written again (they follow the streams' growth),
      // once the last changes (within the second before the latest position) are behind one.
      await sleep(3000);
      const written = a.sync.counters.snapshots.written + c.sync.counters.snapshots.written;
      await sleep(1500);
      assert.equal(a.sync.counters.snapshots.written + c.sync.counters.snapshots.written, written);
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
      await waitFor("b has a's first peers", () => b.store.peerMap.size === 300);

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
      assert.equal(b.store.peerMap.size, 3000);
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
      assert.equal(c.store.peerMap.size, 2000);
      assert.equal(c.store.snapshot(), a.store.snapshot());
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

/** A one-chunk snapshot of shard 0 holding one peer, sealed as `name`'s with `secret`. */
function forgedSnapshot(name: string, secret: Uint8Array, version: number, chunkVersion = version) {
  const macs = new SnapshotMacs(secret, name);
  const chunks: Uint8Array[] = [];
  const writer = new ChunkWriter(0, chunkVersion, MAX_CHUNK_BYTES, (chunk) => chunks.push(chunk));
  writer.begin(EXTRA_HASH, 0, 0, 0);
  writer.family(0);
  writer.peer(ipv4(999), 0, 9999, true, 1);
  writer.end();
  writer.finish();
  const chunk = chunks[0].slice();
  sealChunk(chunk, Date.now(), macs);
  const manifest = encodeManifest({
    shard: 0,
    version,
    chunks: 1,
    chunkBytes: chunk.length,
    peers: 1,
    position: { ms: 0, seq: 0 },
    previous: { ms: 0, seq: 0 },
    startedAtMs: Date.now(),
    finishedAtMs: Date.now(),
    writer: new Uint8Array(8).fill(7),
    nodeId: "forger",
  }, macs);
  return { chunk, manifest };
}

const EXTRA_HASH = infoHash(77);
const OTHER_SECRET = new TextEncoder().encode("another cluster's secret, same name");

/** A copy of `bytes` with the byte at `at` flipped. */
function flip(bytes: Uint8Array, at: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] ^= 0x5a;
  return copy;
}

/** Reseals a changed chunk's checksum (not its MAC). */
function fixCrc(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, crc32(bytes, 8));
  return bytes;
}

Deno.test({
  name: "a snapshot manifest or chunk that is truncated, damaged, forged, oversized, misplaced " +
    "or another cluster's is refused, counted by reason, and never applied",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const raw = await rawClient(redis.url);
    // a publishes three peers on its stream and never writes a snapshot itself.
    const a = makeNode("a", redis.url, { snapshots: { tickMs: 3_600_000 } });
    const nodes = [a];
    const good = forgedSnapshot("test", SECRET, 5);
    const cases: [string, keyof SnapshotRejects | null, Uint8Array, Uint8Array][] = [
      ["sound (the control: applied)", null, good.manifest, good.chunk],
      [
        "manifest of another cluster",
        "bad_mac",
        forgedSnapshot("other", SECRET, 5).manifest,
        good.chunk,
      ],
      [
        "manifest under another secret",
        "bad_mac",
        forgedSnapshot("test", OTHER_SECRET, 5).manifest,
        good.chunk,
      ],
      ["manifest damaged", "malformed", flip(good.manifest, 30), good.chunk],
      ["manifest truncated", "malformed", good.manifest.slice(0, 100), good.chunk],
      ["manifest oversized", "oversized", new Uint8Array(MAX_MANIFEST_BYTES + 1), good.chunk],
      [
        "chunk of another cluster",
        "bad_mac",
        good.manifest,
        forgedSnapshot("other", SECRET, 5).chunk,
      ],
      ["chunk forged (checksum fixed)", "bad_mac", good.manifest, fixCrc(flip(good.chunk, 60))],
      ["chunk damaged", "malformed", good.manifest, flip(good.chunk, 60)],
      ["chunk truncated", "malformed", good.manifest, good.chunk.slice(0, good.chunk.length - 3)],
      ["chunk oversized", "oversized", good.manifest, new Uint8Array(MAX_CHUNK_BYTES + 100)],
      [
        "chunk of another version",
        "mismatched",
        good.manifest,
        forgedSnapshot("test", SECRET, 5, 4).chunk,
      ],
    ];
    try {
      await a.sync.start();
      for (let n = 0; n < 3; n++) announce(a, infoHash(n), ipv4(n), 1000 + n, 2, false);
      await waitFor(
        "published",
        () => a.sync.recorder.pending === 0 && a.sync.counters.published > 0,
      );
      for (const [what, reason, manifest, chunk] of cases) {
        await raw.sendCommand(["SET", KEYS.manifest(0), Buffer.from(manifest)]);
        await raw.sendCommand(["SET", KEYS.chunk(0, 5, 0), Buffer.from(chunk)]);
        const joiner = makeNode(`j${nodes.length}`, redis.url, {
          snapshots: { tickMs: 3_600_000 },
        });
        nodes.push(joiner);
        await joiner.sync.start();
        const rejected = joiner.sync.counters.snapshotRejected;
        const extra = joiner.store.counts(EXTRA_HASH).complete;
        if (reason === null) {
          assert.equal(joiner.sync.counters.snapshots.loaded, 1, what);
          assert.equal(extra, 1, `${what}: its peer applied`);
          assert.deepEqual(rejected, newSnapshotRejects(), what);
        } else {
          assert.equal(joiner.sync.counters.snapshots.loaded, 0, what);
          assert.equal(extra, 0, `${what}: nothing of it applied`);
          assert.deepEqual(rejected, { ...newSnapshotRejects(), [reason]: 1 }, what);
          assert.ok(joiner.logs.some((line) => /refusing snapshot/.test(line)), what);
        }
        // The streams, read from their start, gave it a's peers either way.
        await waitFor(`${what}: a's peers`, () => joiner.store.peerMap.size === 3 + extra);
        await joiner.sync.stop();
      }
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

/** An announce as the servers make it: stored, then published if the rule says so. */
function serverAnnounce(node: TestNode, hash: Uint8Array, address: Uint8Array, port: number) {
  node.store.announce(
    hash,
    0,
    4,
    address,
    0,
    port,
    0,
    false,
    0,
    node.clock.now,
    new Uint8Array(0),
    0,
  );
  node.sync.changes.announced(
    0,
    hash,
    0,
    4,
    address,
    0,
    port,
    false,
    node.store.result.previous,
    node.clock.now,
  );
}

Deno.test({
  name: "Redis restarted empty: nodes notice, write what they hold to a new snapshot at once, " +
    "publish each peer again at its next announce, and a node joining afterwards has it all",
  ignore: !haveRedis,
  async fn() {
    let redis = new RedisServer();
    await redis.start();
    await using proxy = new RedisProxy(redis.port);
    const x = makeNode("x", proxy.url, { snapshots: QUICK });
    const y = makeNode("y", proxy.url, { snapshots: QUICK });
    const nodes = [x, y];
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      await fill(x, 500);
      for (let n = 0; n < 100; n++) announce(y, infoHash(30), ipv4(5000 + n), 5000 + n, 2, true);
      await waitFor(
        "x and y agree",
        () => x.store.peerMap.size === 600 && x.store.snapshot() === y.store.snapshot(),
      );

      // Redis goes, and an empty one comes in its place.
      proxy.down();
      await redis.stop();
      redis = new RedisServer();
      await redis.start();
      const written = x.sync.counters.snapshots.written + y.sync.counters.snapshots.written;
      proxy.up(redis.port);
      await waitFor(
        "both noticed",
        () =>
          nodes.every((node) =>
            node.sync.counters.redisResets === 1 && node.sync.counters.state === "connected"
          ),
      );
      await waitFor(
        "a new snapshot",
        () => x.sync.counters.snapshots.written + y.sync.counters.snapshots.written > written,
      );

      // Every peer is published once more at its next announce, even one that changed nothing
      // (after the second Redis came back in: announces within it are published every time).
      await waitFor("a second later", () => x.clock.now >= x.sync.changes.republishBefore);
      const published = x.sync.counters.publishedChanges;
      const suppressed = x.sync.counters.suppressedRefreshes;
      serverAnnounce(x, infoHash(1), ipv4(1), 2);
      serverAnnounce(x, infoHash(1), ipv4(1), 2);
      await waitFor("published", () => x.sync.counters.publishedChanges === published + 1);
      assert.equal(x.sync.counters.suppressedRefreshes, suppressed + 1, "then suppressed again");

      // z, joining now, loads what x and y held from the new snapshot.
      const z = makeNode("z", redis.url, { snapshots: QUICK });
      nodes.push(z);
      await z.sync.start();
      assert.equal(z.sync.counters.snapshots.loaded, 1);
      assert.equal(z.store.peerMap.size, 600);
      await waitFor("z agrees", () => z.store.snapshot() === x.store.snapshot());
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "after a burst and then only a trickle of changes, the streams let go of the burst " +
    "within a few snapshot intervals",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const raw = await rawClient(redis.url);
    // Snapshots at least 2 s apart: the burst ends between the first and the second.
    const a = makeNode("a", redis.url, { snapshots: { minIntervalMs: 2000, tickMs: 50 } });
    const nodes = [a];
    try {
      await a.sync.start();
      await fill(a, 10_000);
      const [, burstEnd] = await streamEnds(raw, a.sync.streamKey);
      // A trickle (one change every 100 ms) keeps publishing, far too little to make a snapshot
      // due by its own growth within the test; the burst must go anyway.
      // XADD trims with MINID ~, whole stream nodes (100 entries) at a time: the node holding the
      // burst's last entries goes once the trickle has filled it, ~10 s idle, more when loaded.
      let trimmed = false;
      const deadline = performance.now() + 60_000;
      for (let n = 0; !trimmed; n++) {
        if (performance.now() > deadline) {
          throw new Error(
            `the burst is still in the stream (${a.sync.counters.snapshots.written} written)`,
          );
        }
        announce(a, infoHash(50), ipv4(20_000 + (n % 50)), 1, 0, n % 2 === 0);
        await sleep(100);
        trimmed = compareStreamIds((await streamEnds(raw, a.sync.streamKey))[0], burstEnd) > 0;
      }
      assert.ok(a.sync.counters.snapshots.written >= 3);
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});
