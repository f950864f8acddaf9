/**
 * Applies a checked snapshot chunk (snapshotFormat.ts) to the local store, as snapshotStore.ts
 * loads a shard's snapshot. Each peer is restored as it was when the chunk was taken, aged by the
 * time since on Redis's clock (rounded up, so a joiner may drop a peer up to a second before its
 * origin does, never keep one longer); one as old as a peer timeout is skipped. A torrent's
 * downloaded count is raised to the snapshot's when that is larger (completions this node counted
 * itself are in neither or both). Torrents this node's access list forbids are skipped and their
 * peers counted.
 *
 * WebSocket peers: another node's is held with WS_REMOTE_BIT set (never offered to from here),
 * whatever the chunk says; one of this node's own, as another node saw it, is skipped, since it
 * is held under its local key already.
 */
import type { AccessPolicy } from "../policy/accessList.ts";
import { FAMILY_WS, type SwarmTable, WS_REMOTE_BIT } from "../store/swarmTable.ts";
import type { ClusterCounters } from "./clusterCounters.ts";
import {
  chunkTakenAt,
  readChunk,
  type SnapshotPeer,
  type SnapshotTorrent,
} from "./snapshotFormat.ts";
import { readWord, writeWord, type WsPeerKeys } from "./wsPeerKeys.ts";

export interface SnapshotApplierOptions {
  store: SwarmTable;
  /** The tracker clock: whole seconds since start. */
  clock: { now: number };
  access: AccessPolicy | null;
  counters: ClusterCounters;
  peerTimeout: number;
  /** Seconds a silent WebSocket peer lives (--ws-peer-timeout). */
  wsPeerTimeout: number;
  /** The keys this node's WebSocket peers are published under (wsPeerKeys.ts). */
  wsKeys: WsPeerKeys;
}

export class SnapshotApplier {
  readonly #o: SnapshotApplierOptions;
  /** The chunk being applied, for the callbacks: the clock, its age, a forbidden torrent. */
  #applyNow = 0;
  #applyAge = 0;
  #applySkip = false;
  /** A remote WebSocket peer's address word, WS_REMOTE_BIT set. */
  readonly #wsWord = new Uint8Array(4);

  constructor(options: SnapshotApplierOptions) {
    this.#o = options;
  }

  /** Applies a checked chunk, `redisNowMs` being Redis's clock now. */
  apply(chunk: Uint8Array, redisNowMs: number): void {
    this.#applyNow = this.#o.clock.now;
    // Whole seconds since the walk, rounded up: a joiner may drop a peer up to a second before
    // its origin does, never keep one longer (as batches, stale at a peer timeout).
    this.#applyAge = Math.max(0, Math.ceil((redisNowMs - chunkTakenAt(chunk)) / 1000));
    readChunk(chunk, this.#onTorrent, this.#onPeer);
  }

  readonly #onTorrent: SnapshotTorrent = (hash, hashAt, downloaded, idle, peers) => {
    const { access, store, counters } = this.#o;
    this.#applySkip = access !== null && !access.allows(hash, hashAt);
    if (this.#applySkip) {
      counters.forbidden += peers;
      return;
    }
    if (downloaded === 0) return;
    // The larger count wins: completions this node counted itself are in neither or both.
    store.scrape(hash, hashAt);
    if (store.result.downloaded < downloaded && (peers > 0 || idle < 86400)) {
      store.setDownloaded(hash, hashAt, downloaded, this.#applyNow - idle - this.#applyAge);
    }
  };

  readonly #onPeer: SnapshotPeer = (hash, hashAt, family, address, at, port, seeder, age) => {
    if (this.#applySkip) return;
    const o = this.#o;
    if (family === FAMILY_WS) {
      if (age + this.#applyAge >= o.wsPeerTimeout) return;
      // Another node's WebSocket peer: held as such (never offered to from here) whatever the
      // chunk says, and one of this node's own, as another node saw it, not held twice.
      const word = (readWord(address, at) | WS_REMOTE_BIT) >>> 0;
      if (o.wsKeys.isOwn(word, port, hash, hashAt)) return;
      writeWord(this.#wsWord, 0, word);
      address = this.#wsWord;
      at = 0;
    } else if (age + this.#applyAge >= o.peerTimeout) {
      return;
    }
    const lastSeen = this.#applyNow - age - this.#applyAge;
    o.store.restorePeer(hash, hashAt, family, address, at, port, seeder, lastSeen);
  };
}
