/**
 * Snapshots of the cluster's swarms in Redis, per shard: written by one node at a time as the
 * streams behind them grow, loaded by a node that joins (format: snapshotFormat.ts). With them
 * the streams only need to hold what came after the previous snapshot, so Redis holds about two
 * snapshots and a short tail, whatever the announce rate (docs/cluster-design.md → Short stream
 * and snapshot).
 *
 * Writing, checked by every node each tick, per shard: a snapshot is due when the shard has none
 * (or only one that fails its checks) and this node holds peers, when the streams have grown by a
 * quarter of the snapshot's bytes since its position, or hold more than half of it since the
 * position they are trimmed to (a burst followed by quiet), or when it is older than half a peer
 * timeout; never sooner than `minIntervalMs` (or 20 times the last walk's time, or twice its wall
 * time) after the current one. The streams' bytes are this node's (read and published), sampled
 * each tick against Redis's clock, so growth is measured from a snapshot's position, whoever wrote
 * it. The writer takes the shard's lease (SET NX PX: the others leave it), numbers the snapshot
 * (INCR), notes its reader's position, walks the store in slices (announces keep flowing) writing
 * each chunk as it fills (snapshotWalk.ts), and swaps the manifest in with a script that checks it
 * still holds the lease. The chunks of the snapshot it replaced expire after a grace, so a node
 * loading that one can finish. A writer that dies before the swap leaves the previous manifest and
 * its chunks in place; its own chunks expire.
 *
 * Trimming: each node trims its streams of shard s to the position of the snapshot the current
 * one replaced (or a peer timeout back, whichever is later), so a node still loading either
 * snapshot finds the stream entries after it.
 *
 * Loading, before the listeners open: per shard the manifest, then each chunk, read with GETRANGE
 * (never more than a chunk's or a manifest's limit comes into memory, whatever the key holds) and
 * checked whole before it is applied (snapshotApply.ts); refused ones are counted by reason. A
 * missing chunk means a newer snapshot replaced it: start again from the new manifest (3 tries),
 * else read the shard's streams from their start. The shard's reader then starts at the snapshot's
 * position.
 */
import { Buffer } from "node:buffer";
import type { AccessPolicy } from "../policy/accessList.ts";
import type { SwarmTable } from "../store/swarmTable.ts";
import type { WsPeerKeys } from "./wsPeerKeys.ts";
import type { ClusterKeys } from "./clusterKeys.ts";
import type { ClusterCounters } from "./clusterCounters.ts";
import type { RedisLink } from "./redisLink.ts";
import type { ShardReader } from "./shardReader.ts";
import { errorLine } from "./redisCommands.ts";
import {
  checkChunk,
  decodeManifest,
  encodeManifest,
  idOf,
  type Manifest,
  MAX_CHUNK_BYTES,
  MAX_MANIFEST_BYTES,
  positionOf,
  type SnapshotMacs,
} from "./snapshotFormat.ts";
import { SnapshotApplier } from "./snapshotApply.ts";
import { walkShard } from "./snapshotWalk.ts";

export interface SnapshotOptions {
  /** Least time between two snapshots of a shard, in ms. Default 30000. */
  minIntervalMs?: number;
  /** Bytes per chunk (at most MAX_CHUNK_BYTES, the default). */
  chunkBytes?: number;
  /** How often a node looks at the manifests, in ms. Default 1000. */
  tickMs?: number;
  /** Called before the swap of each snapshot written (tests: a writer that dies there). */
  beforeSwap?: (shard: number) => Promise<void>;
}

const LOAD_TRIES = 3;
/** Byte samples kept per shard (one a tick: over two hours at the default tick). */
const MAX_SAMPLES = 8192;

/**
 * The swap: if the lease still holds our instance, the new manifest replaces the current one
 * (with its expiry) and the lease is given up. KEYS: manifest, lease; ARGV: instance, manifest,
 * its expiry in ms. Returns 1 if swapped.
 */
const SWAP_SCRIPT = `if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1`;
/** Gives up the lease if it is still ours. KEYS: lease; ARGV: instance. */
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

export interface SnapshotStoreOptions {
  keys: ClusterKeys;
  /** This node's instance, as the lease's value (16 hex digits) and its 8 bytes. */
  instance: string;
  instanceBytes: Uint8Array;
  nodeId: string;
  macs: SnapshotMacs;
  store: SwarmTable;
  clock: { now: number };
  access: AccessPolicy | null;
  peerTimeout: number;
  /** Seconds a silent WebSocket peer lives (--ws-peer-timeout). */
  wsPeerTimeout: number;
  /** The keys this node's WebSocket peers are published under (wsPeerKeys.ts). */
  wsKeys: WsPeerKeys;
  counters: ClusterCounters;
  log: (line: string) => void;
  options: SnapshotOptions;
}

export class SnapshotStore {
  readonly #o: SnapshotStoreOptions;
  readonly #applier: SnapshotApplier;
  readonly #minIntervalMs: number;
  readonly #chunkBytes: number;
  /** Each shard's current manifest as last read, null if none (or one refused). */
  #manifests: (Manifest | null)[] = [];
  /**
   * Each shard's stream bytes (read and published) as sampled at each tick, with the time on
   * Redis's clock: how much the streams hold since a snapshot's position is read off them.
   */
  #samples: { ms: number[]; bytes: number[] }[] = [];
  /** The first bytes of the last refused manifest per shard, so each is counted once. */
  #refusedManifest: string[] = [];
  /** The snapshot version last loaded per shard (0: none), so a gap reloads each at most once. */
  #loadedVersion: number[] = [];
  #writing = false;
  #lastWalkMs = 0;
  #lastWalkWallMs = 0;
  #lastWriteMs = 0;

  constructor(options: SnapshotStoreOptions) {
    this.#o = options;
    this.#applier = new SnapshotApplier(options);
    this.#minIntervalMs = options.options.minIntervalMs ?? 30_000;
    this.#chunkBytes = options.options.chunkBytes ?? MAX_CHUNK_BYTES;
  }

  /** How often `tick` is to be called. */
  get tickMs(): number {
    return this.#o.options.tickMs ?? 1000;
  }

  setShards(shards: number): void {
    if (this.#manifests.length === shards) return;
    this.#manifests = new Array(shards).fill(null);
    this.#samples = Array.from({ length: shards }, () => ({ ms: [], bytes: [] }));
    this.#refusedManifest = new Array(shards).fill("");
    this.#loadedVersion = new Array(shards).fill(0);
  }

  /** Redis lost its data: no snapshot is current. */
  forget(): void {
    this.#manifests.fill(null);
    this.#loadedVersion.fill(0);
  }

  /**
   * Where shard s's streams may be trimmed to (ms on Redis's clock): the position of the
   * snapshot the current one replaced (or the current one's, if a lagging writer made it older),
   * or a peer timeout back, whichever is later.
   */
  trimBeforeMs(shard: number, redisNowMs: number): number {
    const floor = redisNowMs - this.#o.peerTimeout * 1000;
    const manifest = this.#manifests[shard];
    if (manifest == null) return floor;
    return Math.max(floor, Math.min(manifest.previous.ms, manifest.position.ms));
  }

  // ---------------------------------------------------------------- loading

  /**
   * Loads each shard's snapshot into the store and starts its reader at the snapshot's position
   * (or at the streams' start without one). Errors of the connection propagate (the session ends).
   */
  async load(link: RedisLink, readers: ShardReader[], redisNowMs: () => number): Promise<void> {
    for (const reader of readers) {
      const shard = reader.shard;
      let start = "0-0";
      for (let attempt = 0; attempt < LOAD_TRIES; attempt++) {
        const manifest = await this.#readManifest(link, shard);
        if (manifest === null) break;
        const loaded = await this.#loadChunks(link, manifest, redisNowMs);
        if (loaded === "missing") continue;
        if (loaded === "refused") break;
        start = idOf(manifest.position);
        this.#loadedVersion[shard] = manifest.version;
        this.#o.counters.snapshots.loaded++;
        break;
      }
      reader.resetTo(start);
    }
  }

  /**
   * Loads shard s's current snapshot over the store without moving its reader: entries of
   * another node went missing before this node read them (trimmed while it was away), and the
   * snapshot, newer than them, holds what they changed; the reader goes on from where it is, so
   * the stream's last word still wins. (Peers those entries stopped stay until they expire.)
   * Each snapshot version is loaded at most once. Returns whether one was loaded.
   */
  async reload(link: RedisLink, shard: number, redisNowMs: () => number): Promise<boolean> {
    for (let attempt = 0; attempt < LOAD_TRIES; attempt++) {
      const manifest = await this.#readManifest(link, shard);
      if (manifest === null || manifest.version === this.#loadedVersion[shard]) return false;
      const loaded = await this.#loadChunks(link, manifest, redisNowMs);
      if (loaded === "missing") continue;
      this.#loadedVersion[shard] = manifest.version;
      if (loaded === "refused") return false;
      this.#o.counters.snapshots.loaded++;
      this.#o.log(
        `cluster: entries of shard ${shard} were gone before this node read them; loaded its ` +
          `snapshot (${manifest.peers} peers) over the store`,
      );
      return true;
    }
    return false;
  }

  /** Applies a snapshot's chunks; "missing" if one is gone, "refused" if one fails its checks. */
  async #loadChunks(
    link: RedisLink,
    manifest: Manifest,
    redisNowMs: () => number,
  ): Promise<"ok" | "missing" | "refused"> {
    const { keys, macs, counters } = this.#o;
    for (let index = 0; index < manifest.chunks; index++) {
      const key = keys.chunk(manifest.shard, manifest.version, index);
      const chunk = await readBounded(link, key, MAX_CHUNK_BYTES);
      if (chunk.length === 0) return "missing";
      const expected = { shard: manifest.shard, version: manifest.version, index };
      const reason = checkChunk(chunk, expected, macs);
      if (reason !== null) {
        counters.snapshotRejected[reason]++;
        this.#o.log(
          `cluster: refusing snapshot chunk ${key} (${reason}); shard ${manifest.shard} is ` +
            "read from its streams alone",
        );
        return "refused";
      }
      this.#applier.apply(chunk, redisNowMs());
    }
    return "ok";
  }

  /** Shard s's manifest, or null if there is none or it is refused (counted once per value). */
  async #readManifest(link: RedisLink, shard: number): Promise<Manifest | null> {
    const { keys, macs, counters, log } = this.#o;
    const key = keys.manifest(shard);
    const bytes = await readBounded(link, key, MAX_MANIFEST_BYTES);
    if (bytes.length === 0) return null;
    const manifest = decodeManifest(bytes, shard, macs);
    if (typeof manifest !== "string") {
      this.#refusedManifest[shard] = "";
      return manifest;
    }
    const seen = Array.from(bytes.subarray(0, 8)).join(",") + `:${bytes.length}`;
    if (this.#refusedManifest[shard] !== seen) {
      this.#refusedManifest[shard] = seen;
      counters.snapshotRejected[manifest]++;
      log(`cluster: refusing snapshot manifest ${key} (${manifest}); it will be written over`);
    }
    return null;
  }

  // ---------------------------------------------------------------- writing

  /**
   * Looks at each shard's manifest and writes a snapshot where one is due (one at a time). The
   * returned promise settles when that is done; failures are left to the session.
   */
  async tick(
    link: RedisLink,
    readers: ShardReader[],
    redisNowMs: () => number,
    shardBytes: (shard: number) => number,
  ): Promise<void> {
    if (this.#writing) return;
    const counters = this.#o.counters.snapshots;
    let bytes = 0;
    let oldest = 0;
    let due = -1;
    for (const reader of readers) {
      const shard = reader.shard;
      const manifest = await this.#readManifest(link, shard);
      this.#manifests[shard] = manifest;
      this.#sample(shard, redisNowMs(), shardBytes(shard));
      if (manifest !== null) {
        bytes += manifest.chunkBytes;
        oldest = Math.max(oldest, (redisNowMs() - manifest.finishedAtMs) / 1000);
      }
      if (due < 0 && this.#isDue(shard, redisNowMs(), shardBytes(shard), reader)) due = shard;
    }
    counters.bytes = bytes;
    counters.ageSeconds = Math.max(0, Math.floor(oldest));
    if (due >= 0) await this.#write(link, readers[due], redisNowMs);
  }

  /**
   * Notes shard s's stream bytes now, and forgets samples from before what its streams still
   * hold (the older of the two latest snapshots' positions), keeping the last one before it.
   */
  #sample(shard: number, nowMs: number, bytes: number): void {
    const { ms, bytes: at } = this.#samples[shard];
    ms.push(nowMs);
    at.push(bytes);
    const manifest = this.#manifests[shard];
    // Without a snapshot only the latest matters; a bounded count in any case (dropping the
    // oldest can only make a snapshot due sooner).
    const keepFrom = manifest === null
      ? Infinity
      : Math.min(manifest.previous.ms, manifest.position.ms);
    if (ms.length > MAX_SAMPLES) {
      ms.shift();
      at.shift();
    }
    let drop = 0;
    while (drop + 1 < ms.length && ms[drop + 1] <= keepFrom) drop++;
    if (drop > 0) {
      ms.splice(0, drop);
      at.splice(0, drop);
    }
  }

  /** Shard s's stream bytes at `whenMs` (the last sample before it; 0 before the first). */
  #bytesAt(shard: number, whenMs: number): number {
    const { ms, bytes } = this.#samples[shard];
    let found = 0;
    for (let i = 0; i < ms.length && ms[i] <= whenMs; i++) found = bytes[i];
    return found;
  }

  #isDue(shard: number, nowMs: number, bytes: number, reader: ShardReader): boolean {
    if (reader.positionId() === "0-0") return false;
    const manifest = this.#manifests[shard];
    const { store } = this.#o;
    if (manifest === null) {
      return store.peers4 + store.peers6 > 0 && performance.now() - this.#lastWriteMs > 1000;
    }
    const floor = Math.max(this.#minIntervalMs, 20 * this.#lastWalkMs, 2 * this.#lastWalkWallMs);
    const age = nowMs - manifest.finishedAtMs;
    if (age < floor) return false;
    // Streams are trimmed to the previous snapshot's position: what they hold since it is
    // bounded by half a snapshot, so a burst (a fill) followed by quiet is trimmed away by one
    // more snapshot, not after half a peer timeout.
    const grown = bytes - this.#bytesAt(shard, manifest.position.ms);
    const held = bytes - this.#bytesAt(shard, Math.min(manifest.previous.ms, manifest.position.ms));
    return grown > manifest.chunkBytes / 4 || held > manifest.chunkBytes / 2 ||
      age > (this.#o.peerTimeout * 1000) / 2;
  }

  /** Writes shard s's snapshot if this node gets the lease; returns whether it was swapped in. */
  async #write(link: RedisLink, reader: ShardReader, redisNowMs: () => number): Promise<boolean> {
    const { keys, instance, macs, counters, log, options } = this.#o;
    const shard = reader.shard;
    const lease = keys.lease(shard);
    const leaseMs = Math.max(60_000, 3 * this.#lastWalkWallMs);
    const got = await link.send(lease, ["SET", lease, instance, "NX", "PX", String(leaseMs)]);
    if (got === null) return false;
    this.#writing = true;
    this.#lastWriteMs = performance.now();
    let swapped = false;
    try {
      const version = Number(await link.send(keys.version(shard), ["INCR", keys.version(shard)]));
      const position = positionOf(reader.positionId());
      const startedAtMs = redisNowMs();
      const chunkTtlMs = this.#o.peerTimeout * 1000 + 4 * this.#minIntervalMs;
      const walked = await walkShard(
        this.#o,
        {
          shard,
          shards: this.#manifests.length,
          version,
          chunkBytes: this.#chunkBytes,
          chunkTtlMs,
        },
        link,
        redisNowMs,
      );
      this.#lastWalkMs = walked.cpuMs;
      this.#lastWalkWallMs = walked.wallMs;
      const previous = this.#manifests[shard];
      const manifest: Manifest = {
        shard,
        version,
        chunks: walked.chunks,
        chunkBytes: walked.bytes,
        peers: walked.peers,
        position,
        previous: previous?.position ?? { ms: 0, seq: 0 },
        startedAtMs,
        finishedAtMs: redisNowMs(),
        writer: this.#o.instanceBytes,
        nodeId: this.#o.nodeId,
      };
      const encoded = encodeManifest(manifest, macs);
      await options.beforeSwap?.(shard);
      const value = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.length);
      const key = keys.manifest(shard);
      const reply = await link.send(key, [
        "EVAL",
        SWAP_SCRIPT,
        "2",
        key,
        lease,
        instance,
        value,
        String(chunkTtlMs),
      ]);
      swapped = Number(reply) === 1;
      if (!swapped) return false;
      counters.snapshots.written++;
      this.#manifests[shard] = manifest;
      // The replaced snapshot's chunks stay for a grace, for a node loading it now.
      if (previous !== null) {
        const graceMs = String(Math.max(this.#minIntervalMs, 2 * this.#lastWalkWallMs));
        for (let index = 0; index < previous.chunks; index++) {
          const chunk = keys.chunk(shard, previous.version, index);
          await link.send(chunk, ["PEXPIRE", chunk, graceMs]);
        }
      }
      return true;
    } catch (error) {
      log(`cluster: snapshot of shard ${shard} not written (${errorLine(error)})`);
      throw error;
    } finally {
      this.#writing = false;
      if (!swapped) {
        await link.send(lease, ["EVAL", RELEASE_SCRIPT, "1", lease, instance]).catch(() => {});
      }
    }
  }
}

/** A string key's value, at most `limit` bytes of it (GETRANGE): one byte more means oversized. */
async function readBounded(link: RedisLink, key: string, limit: number): Promise<Uint8Array> {
  const reply = await link.send(key, ["GETRANGE", key, "0", String(limit)]);
  if (reply instanceof Uint8Array) return reply;
  if (reply === null) return new Uint8Array(0);
  throw new Error("unexpected GETRANGE reply");
}
