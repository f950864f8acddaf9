/**
 * Writes one shard's snapshot chunks from the local store, as snapshotStore.ts asks when a
 * snapshot is due: a walk over the store's slots in slices (SLICE_WORK a slice, a timer turn in
 * between, so announces keep flowing), each of the shard's torrents with its peers (those younger
 * than the peer timeout) written into chunks (snapshotFormat.ts), each chunk sealed and SET with
 * an expiry as it fills. A table resize that starts while the walk waits moves rows under it: the
 * walk starts over, and after MAX_RESTARTS runs at once, without pausing.
 *
 * WebSocket peers: this node's own (their address word is its tracker's entry) are written under
 * the key they are published by (wsPeerKeys.ts), so they meet their later changes on the node that
 * loads them; other nodes' as held.
 */
import { Buffer } from "node:buffer";
import {
  FAMILY_WS,
  type PeerVisitor,
  type SwarmTable,
  WS_REMOTE_BIT,
} from "../store/swarmTable.ts";
import { settleResize } from "../store/slicer.ts";
import { RECORD_FAMILIES, shardOf } from "./changeBatch.ts";
import type { ClusterKeys } from "./clusterKeys.ts";
import type { RedisLink } from "./redisLink.ts";
import { ChunkWriter, sealChunk, type SnapshotMacs } from "./snapshotFormat.ts";
import { readWord, writeWord, type WsPeerKeys } from "./wsPeerKeys.ts";

/** Work per slice of a walk before the event loop gets a turn: a unit per peer, 8 per torrent. */
const SLICE_WORK = 16384;
const TORRENT_WORK = 8;
/** Table resizes tolerated during one sliced walk before it finishes in one go. */
const MAX_RESTARTS = 3;

/** What a walk reads and where it writes (snapshotStore.ts's options have all of it). */
export interface WalkSource {
  store: SwarmTable;
  keys: ClusterKeys;
  macs: SnapshotMacs;
  /** The tracker clock: whole seconds since start. */
  clock: { now: number };
  peerTimeout: number;
  wsPeerTimeout: number;
  wsKeys: WsPeerKeys;
}

/** The snapshot being written. */
export interface WalkTarget {
  shard: number;
  /** The cluster's shard count: which torrents are the shard's. */
  shards: number;
  version: number;
  chunkBytes: number;
  /** Each chunk's expiry. */
  chunkTtlMs: number;
}

export interface Walked {
  chunks: number;
  /** Bytes of the chunks written. */
  bytes: number;
  peers: number;
  /** The walk's own time, without its pauses, and its time from start to end. */
  cpuMs: number;
  wallMs: number;
}

/** Walks the store in slices, writing the target shard's chunks as they fill. */
export async function walkShard(
  source: WalkSource,
  target: WalkTarget,
  link: RedisLink,
  redisNowMs: () => number,
): Promise<Walked> {
  const { store, keys, macs, peerTimeout, clock } = source;
  const { shard, shards, version, chunkTtlMs } = target;
  const startedAt = performance.now();
  let cpuMs = 0;
  for (let attempt = 0;; attempt++) {
    const pausing = attempt < MAX_RESTARTS;
    // Rows change tables while a paused walk waits: a running resize is finished first, and a
    // new one (slotCount changes) restarts the walk below.
    await settleResize(store, pausing ? () => new Promise((r) => setTimeout(r, 0)) : null);
    const filled: Uint8Array[] = [];
    const writer = new ChunkWriter(shard, version, target.chunkBytes, (c) => filled.push(c));
    let bytes = 0;
    const flush = async () => {
      while (filled.length > 0) {
        const chunk = filled.shift()!;
        sealChunk(chunk, takenAtMs, macs);
        const key = keys.chunk(shard, version, writer.chunks - filled.length - 1);
        const value = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
        await link.send(key, ["SET", key, value, "PX", String(chunkTtlMs)]);
        bytes += chunk.length;
      }
    };
    const hash = new Uint8Array(20);
    const now = clock.now;
    const takenAtMs = redisNowMs();
    const visitor: PeerVisitor = (address, at, port, seeder, seen) => {
      const age = now - seen;
      if (age < peerTimeout) writer.peer(address, at, port, seeder, age);
    };
    // WebSocket peers: this node's own (address word = its tracker's entry) under the key they
    // are published by, so they meet their later changes on the loading node; others' as held.
    const wsKeys = source.wsKeys;
    const wsPeerTimeout = source.wsPeerTimeout;
    const wsWord = new Uint8Array(4);
    const wsVisitor: PeerVisitor = (address, at, port, seeder, seen) => {
      const age = now - seen;
      if (age >= wsPeerTimeout) return;
      const word = readWord(address, at);
      if ((word & WS_REMOTE_BIT) !== 0) {
        writer.peer(address, at, port, seeder, age);
        return;
      }
      writeWord(wsWord, 0, wsKeys.published(word));
      writer.peer(wsWord, 0, wsKeys.tag, seeder, age);
    };
    const capacity = store.slotCount;
    let budget = SLICE_WORK;
    let restarted = false;
    let sliceStart = performance.now();
    for (let slot = 0; slot < capacity; slot++) {
      if (!store.slotInUse(slot)) {
        if (budget <= 0 && pausing) {
          cpuMs += performance.now() - sliceStart;
          await flush();
          await new Promise((resolve) => setTimeout(resolve, 0));
          sliceStart = performance.now();
          if (store.slotCount !== capacity) {
            restarted = true;
            break;
          }
          budget = SLICE_WORK;
        }
        continue;
      }
      store.copyInfoHash(slot, hash, 0);
      if (shardOf(hash, 0, shards) !== shard) continue;
      store.slotCounts(slot);
      const downloaded = store.result.downloaded;
      const activity = store.slotLastActivity(slot);
      writer.begin(hash, 0, downloaded, Math.max(0, now - activity));
      for (let f = 0; f < RECORD_FAMILIES.length; f++) {
        writer.family(f);
        const family = RECORD_FAMILIES[f].family;
        store.forEachPeer(slot, family, family === FAMILY_WS ? wsVisitor : visitor);
      }
      writer.end();
      budget -= TORRENT_WORK + store.result.complete + store.result.incomplete;
    }
    if (restarted) continue;
    writer.finish();
    cpuMs += performance.now() - sliceStart;
    await flush();
    const wallMs = performance.now() - startedAt;
    return { chunks: writer.chunks, bytes, peers: writer.peers, cpuMs, wallMs };
  }
}
