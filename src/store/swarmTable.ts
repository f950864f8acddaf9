/**
 * SwarmTable: otter's peer store, the tracker's hot core, and the one face the rest of otter sees.
 * Its parts, one idea per file:
 * - torrentTable.ts: the torrents, an open-addressing table keyed by HalfSipHash of the info hash
 *   (probing, backward-shift deletion, resize), and the sampling that picks eviction victims;
 * - blockPools.ts: the dense per-family, per-class pools that hold the peer lists;
 * - peerSets.ts: a torrent's peer list per family, scanned when short and a keyed set when long;
 * - peerSample.ts: the peers an announce reply shows;
 * - swarmCleaner.ts: expiry in small steps;
 * - storeCaps.ts: `maxTorrents` and `maxPeers`, and refusing or evicting at them;
 * - storeRestore.ts: peers and counts restored (state file, snapshots) or refreshed (cluster);
 * - announceResult.ts: the counts an announce or scrape reports besides its peers.
 *
 * Nothing here allocates per announce: inputs are bytes plus offsets, peers are written into the
 * caller's buffer, and counts go into the reused `result`. What one call works on is passed
 * explicitly: the info hash as bytes, the peer as a reused `PeerKey` read once per call; lookups
 * return the slot or record found, or `~` the place it would go.
 */

import { randomKey } from "../hash/halfSipHash.ts";
import {
  COUNTER_PEERS4,
  COUNTER_PEERS6,
  COUNTER_PEERS_WS,
  COUNTER_SEEDERS4,
  COUNTER_SEEDERS6,
  COUNTER_SEEDERS_WS,
  COUNTER_TORRENTS,
  COUNTER_WORDS,
  FAMILY_WS,
  LIST_META,
  type PeerFamily,
  ROW_DOWNLOADED,
  ROW_LAST_ACTIVITY,
  ROW_V4,
  ROW_V6,
  ROW_WORDS,
  ROW_WS,
  TIME_MASK,
} from "./layout.ts";
import { allocWords } from "./memory.ts";
import { BlockPools } from "./blockPools.ts";
import { TorrentKey, TorrentTable } from "./torrentTable.ts";
import {
  OLDER_KEEPS_STAMP,
  OLDER_REPLACES,
  OLDER_SKIPPED,
  PeerSets,
  type PeerVisitor,
} from "./peerSets.ts";
import { PeerKey } from "./peerKey.ts";
import { samplePeers, sampleWsPeers } from "./peerSample.ts";
import { SwarmCleaner } from "./swarmCleaner.ts";
import { type CapOptions, NO_ROOM, StoreCaps } from "./storeCaps.ts";
import { StoreRestore } from "./storeRestore.ts";
import { AnnounceResult } from "./announceResult.ts";

export { CLEAN_BUDGET, CLEAN_INTERVAL_MS, CLEAN_PASS_MS } from "./swarmCleaner.ts";
export { AnnounceResult, previousAge, previousSeeder } from "./announceResult.ts";
export { REFUSED_PEERS, REFUSED_TORRENTS, refusedReason } from "./storeCaps.ts";
export type { PeerVisitor };
export { FAMILY_WS, type PeerFamily, WS_REMOTE_BIT } from "./layout.ts";

export interface SwarmTableOptions extends CapOptions {
  /** Seconds a peer lives without re-announcing. Must be <= 16000 (15-bit time stamps). */
  peerTimeout: number;
  /** The same for WebSocket peers (FAMILY_WS); default `peerTimeout`. */
  wsPeerTimeout?: number;
  /** Seconds a peerless torrent with downloaded > 0 is kept after its last activity (86400). */
  keepDownloadedFor?: number;
  /** 32-bit random source (int32 or uint32) for sampling; default: xorshift32 seeded from crypto. */
  random?: () => number;
  /** 2-word HalfSipHash key; default randomKey(). */
  hashKey?: Uint32Array;
}

/** Read-only handle on the raw arrays, for the invariant checker and diagnostics. */
export interface SwarmTableView {
  rows: Uint32Array;
  capacity: number;
  /** During a resize, the old table still being emptied and its size (else empty and 0). */
  oldRows: Uint32Array;
  oldCapacity: number;
  /** Pool of family f (0 IPv4, 1 IPv6, 2 WebSocket) and class c at index f * CLASS_COUNT + c. */
  pools: readonly Uint32Array[];
  /** Blocks in use per pool, same indexing. */
  poolUsed: Uint32Array;
  counters: Uint32Array;
  hashKey: Uint32Array;
}

const EVENT_COMPLETED = 1;
const EVENT_STOPPED = 3;

const MAX_PEER_TIMEOUT = 16000;
/** Rows a `resizeStep` moves: about 1-2 ms of work (each row is a hash and a 64-byte copy). */
const RESIZE_STEP_ROWS = 4096;
/** The default `random`: returns int32 (callers take `>>> 0`), so a call never boxes its result. */
function xorshift32(): () => number {
  let s = crypto.getRandomValues(new Int32Array(1))[0] | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s;
  };
}

export class SwarmTable {
  readonly result: AnnounceResult = new AnnounceResult();
  /**
   * Whether a WebSocket announce's sample (the peers its offers go to) includes peers other
   * cluster nodes hold (WS_REMOTE_BIT), which the cluster then relays offers to; off unless the
   * cluster relays WebTorrent signals (cluster/wtRelay.ts).
   */
  wsOffersAcrossNodes = false;

  readonly #hashKey: Uint32Array;
  readonly #random: () => number;

  readonly #counters: Uint32Array = allocWords(COUNTER_WORDS);
  readonly #pools = new BlockPools();
  readonly #table: TorrentTable;
  readonly #peers: PeerSets;
  readonly #cleaner: SwarmCleaner;
  readonly #caps: StoreCaps;
  readonly #restore: StoreRestore;
  /** The torrent and the peer of the call in progress, read once from the caller's bytes. */
  readonly #torrent: TorrentKey;
  readonly #peer: PeerKey;
  readonly #addressScratch = new Uint8Array(16);

  /** Latest `now` seen; restore and iteration use it to turn 15-bit stamps back into times. */
  #latest = 1;

  constructor(options: SwarmTableOptions) {
    const timeout = options.peerTimeout;
    if (!(timeout >= 1 && timeout <= MAX_PEER_TIMEOUT)) {
      throw new RangeError(`peerTimeout must be in 1..${MAX_PEER_TIMEOUT}, got ${timeout}`);
    }
    const wsTimeout = options.wsPeerTimeout ?? timeout;
    if (!(wsTimeout >= 1 && wsTimeout <= MAX_PEER_TIMEOUT)) {
      throw new RangeError(`wsPeerTimeout must be in 1..${MAX_PEER_TIMEOUT}, got ${wsTimeout}`);
    }
    this.#random = options.random ?? xorshift32();
    this.#hashKey = Uint32Array.from(options.hashKey ?? randomKey());
    this.#table = new TorrentTable(
      this.#hashKey,
      this.#pools,
      this.#counters,
      (oldCapacity, newCapacity) => this.#cleaner.tableResized(oldCapacity, newCapacity),
    );
    this.#peers = new PeerSets(
      this.#table,
      this.#pools,
      this.#counters,
      this.#hashKey,
      this.result,
    );
    this.#cleaner = new SwarmCleaner(
      this.#table,
      this.#pools,
      this.#peers,
      this.#counters,
      Math.floor(timeout),
      Math.floor(wsTimeout),
      options.keepDownloadedFor ?? 86400,
    );
    this.#caps = new StoreCaps(options, this.#table, this.#counters, this.#random);
    this.#torrent = new TorrentKey(this.#hashKey);
    this.#peer = new PeerKey(this.#hashKey);
    this.#restore = new StoreRestore(
      this.#table,
      this.#pools,
      this.#peers,
      this.#caps,
      this.#counters,
      Math.floor(timeout),
      this.#torrent,
      this.#peer,
    );
  }

  // ---------------------------------------------------------------- announces and scrapes

  /**
   * Applies one announce and writes up to `numwant` compact peers (6 bytes for family 4:
   * address + port big-endian; 18 for 6) of the requester's family into out[outOffset..]; out
   * must have room for them. For FAMILY_WS (a WebSocket peer: `address` its 4-byte entry number,
   * `port` the entry's generation) the peers written are the swarm's other WebSocket peers, in
   * the same 6-byte form (the ones its offers go to): this node's, and with `wsOffersAcrossNodes`
   * other nodes' too. Returns the number of peers written. `result` gets the torrent's counts after
   * applying the announce. Events: 0 none, 1 completed, 2 started, 3 stopped;
   * `seeder` is left == 0. Returns -1, storing nothing, when a new torrent or peer is refused
   * at a cap (`result.refused` says which); with whenFull "evict" that only happens if evicting
   * MAX_EVICTIONS torrents (never the requester's) did not make room.
   */
  announce(
    infoHash: Uint8Array,
    hashOffset: number,
    family: PeerFamily,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    event: number,
    seeder: boolean,
    numwant: number,
    now: number,
    out: Uint8Array,
    outOffset: number,
  ): number {
    if (now > this.#latest) this.#latest = now;
    // Port 0 marks empty records; callers reject it, so one arriving here is a caller bug that
    // must not corrupt the table: store nothing, answer like a scrape.
    if ((port & 0xffff) === 0) event = EVENT_STOPPED;
    this.#pools.earnTrim();
    const table = this.#table;
    const torrent = this.#torrent;
    torrent.read(infoHash, hashOffset);
    let slot = table.find(torrent);
    const peer = this.#peer;
    peer.read(family, address, addressOffset, port);
    const caps = this.#caps;
    if (slot < 0) {
      if (event === EVENT_STOPPED) return this.result.zero();
      if (caps.newTorrentFull()) {
        slot = caps.makeRoom(torrent, slot, this.result);
        if (slot === NO_ROOM) {
          this.result.zero();
          return -1;
        }
      }
      slot = table.insert(torrent, slot);
    } else if (
      caps.peersFull() && event !== EVENT_STOPPED && !this.#peers.contains(slot, family, peer)
    ) {
      slot = caps.makeRoom(torrent, slot, this.result);
      if (slot === NO_ROOM) {
        this.result.zero();
        return -1;
      }
    }
    const rows = table.rows;
    const row = slot * ROW_WORDS;
    rows[row + ROW_LAST_ACTIVITY] = now > 1 ? now : 1;
    let written = 0;
    if (event === EVENT_STOPPED) {
      this.#peers.remove(slot, family, peer);
      if (
        rows[row + ROW_V4 + LIST_META] === 0 && rows[row + ROW_V6 + LIST_META] === 0 &&
        rows[row + ROW_WS + LIST_META] === 0
      ) {
        if (rows[row + ROW_DOWNLOADED] === 0) {
          table.delete(slot);
          return this.result.zero();
        }
      }
    } else {
      const self = this.#peers.upsert(
        slot,
        family,
        peer,
        seeder,
        event === EVENT_COMPLETED,
        now & TIME_MASK,
        OLDER_REPLACES,
        this.#latest,
      );
      if (numwant > 0) {
        written = family === FAMILY_WS
          ? sampleWsPeers(
            table.rows,
            this.#pools.words,
            slot,
            self,
            seeder,
            !this.wsOffersAcrossNodes,
            numwant,
            this.#random,
            out,
            outOffset,
          )
          : samplePeers(
            table.rows,
            this.#pools.words,
            slot,
            family,
            self,
            seeder,
            numwant,
            this.#random,
            out,
            outOffset,
          );
      }
    }
    this.result.fill(table.rows, row);
    return written;
  }

  /**
   * Fills result with the torrent's counts; returns false (and zeros) if the torrent is unknown.
   * Changes nothing (a resize in progress is left as it is).
   */
  scrape(infoHash: Uint8Array, hashOffset: number): boolean {
    const table = this.#table;
    const torrent = this.#torrent;
    torrent.read(infoHash, hashOffset);
    const slot = table.locate(torrent);
    if (slot < 0) {
      this.result.zero();
      return false;
    }
    this.result.fill(table.rowsOf(slot), table.rowOf(slot));
    return true;
  }

  // ---------------------------------------------------------------- expiry

  /**
   * Incremental expiry: visits up to `budget` torrent slots from a moving cursor (fewer if a
   * step's work limit runs out), removing peers silent for more than peerTimeout and freeing
   * torrents the rules let go. Returns slots visited. A fixed step (tests, benches); the
   * server's timer calls `cleanFor`, which paces steps like this one by time.
   */
  clean(now: number, budget: number): number {
    if (now > this.#latest) this.#latest = now;
    return this.#cleaner.clean(now, budget);
  }

  /**
   * Expiry paced by time (what the server's clean timer calls): `elapsedMs` since the last call
   * earns that share of a CLEAN_PASS_MS pass over the table, so a pass takes about a minute
   * whatever the table's size and each step stays within a CLEAN_BUDGET step. Returns slots
   * visited; returns at once when the store is empty and has nothing to give back.
   */
  cleanFor(now: number, elapsedMs: number): number {
    if (now > this.#latest) this.#latest = now;
    return this.#cleaner.cleanFor(now, elapsedMs);
  }

  /** Whether the store holds nothing and has no work pending: the clean timer may sleep longer. */
  get idle(): boolean {
    const table = this.#table;
    return this.#counters[COUNTER_TORRENTS] === 0 && !table.resizing && !table.releasing &&
      !table.sparse;
  }

  /** A full pass over every slot, at any cost (tests, shutdown, state save). */
  cleanAll(now: number): void {
    if (now > this.#latest) this.#latest = now;
    this.#cleaner.cleanAll(now);
  }

  // ---------------------------------------------------------------- figures

  get torrents(): number {
    return this.#counters[COUNTER_TORRENTS];
  }
  get peers4(): number {
    return this.#counters[COUNTER_PEERS4];
  }
  get peers6(): number {
    return this.#counters[COUNTER_PEERS6];
  }
  get seeders4(): number {
    return this.#counters[COUNTER_SEEDERS4];
  }
  get seeders6(): number {
    return this.#counters[COUNTER_SEEDERS6];
  }
  /** WebSocket peers held, this node's and other cluster nodes' (FAMILY_WS). */
  get peersWs(): number {
    return this.#counters[COUNTER_PEERS_WS];
  }
  get seedersWs(): number {
    return this.#counters[COUNTER_SEEDERS_WS];
  }
  /** Peers of every family. */
  get peers(): number {
    const counters = this.#counters;
    return counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] + counters[COUNTER_PEERS_WS];
  }
  /** Seeders of every family. */
  get seeders(): number {
    const counters = this.#counters;
    return counters[COUNTER_SEEDERS4] + counters[COUNTER_SEEDERS6] +
      counters[COUNTER_SEEDERS_WS];
  }
  /** Completed clean passes (cursor wrap-arounds), for tests and stats. */
  get cleanPasses(): number {
    return this.#cleaner.passes;
  }
  /** Announces refused because the torrent cap was reached (a new torrent at maxTorrents). */
  get refusedTorrents(): number {
    return this.#caps.refusedTorrents;
  }
  /** Announces refused because of the peer cap alone (a new peer at maxPeers). */
  get refusedPeers(): number {
    return this.#caps.refusedPeers;
  }
  /** Torrents evicted to make room (whenFull "evict"). */
  get evictedTorrents(): number {
    return this.#caps.evictedTorrents;
  }
  /** Peers restorePeer skipped, and peerless torrents setDownloaded skipped, at a cap. */
  get restoreSkipped(): number {
    return this.#restore.skipped;
  }
  /** The caps in force (Infinity: none). */
  get maxTorrents(): number {
    return this.#caps.maxTorrents;
  }
  get maxPeers(): number {
    return this.#caps.maxPeers;
  }
  /** Counts table resizes started: a slot walk that paused must start over when it changed. */
  get resizes(): number {
    return this.#table.resizes;
  }
  /**
   * Whether a torrent-table resize is moving rows (torrentTable.ts). Slot walks that pause finish
   * it first, with `resizeStep` between pauses: rows change tables while a walk waits.
   */
  get resizing(): boolean {
    return this.#table.resizing;
  }
  /** Moves up to RESIZE_STEP_ROWS rows of a running resize (about 1-2 ms); returns whether it is
   *  still running. */
  resizeStep(): boolean {
    this.#table.moveRows(RESIZE_STEP_ROWS);
    return this.#table.resizing;
  }
  /** Finishes a running resize at once, whatever it costs (tests, shutdown, unsliced walks). */
  finishResize(): void {
    if (this.#table.resizing) this.#table.moveRows(Infinity);
    this.#table.releaseStep(true);
  }
  /** Longest probe run in the torrent table (diagnostic). */
  maxProbeLength(): number {
    return this.#table.maxProbeLength();
  }
  /** Bytes held by all typed arrays of the store. */
  get byteSize(): number {
    return this.#table.byteSize + this.#pools.byteSize + this.#counters.byteLength;
  }

  // ---------------------------------------------------------------- slot walks (not hot)

  /**
   * Number of torrent slots; iterate 0..slotCount-1 with slotInUse (not hot). During a resize
   * the old table's slots follow the new one's: the reads below see every torrent exactly once,
   * as long as nothing announces in between (a walk that pauses finishes the resize first).
   */
  get slotCount(): number {
    return this.#table.slotCount;
  }

  slotInUse(slot: number): boolean {
    return this.#table.rowsOf(slot)[this.#table.rowOf(slot) + ROW_LAST_ACTIVITY] !== 0;
  }

  copyInfoHash(slot: number, out: Uint8Array, offset: number): void {
    const rows = this.#table.rowsOf(slot);
    const row = this.#table.rowOf(slot);
    for (let w = 0; w < 5; w++) {
      const word = rows[row + w];
      const at = offset + 4 * w;
      out[at] = word;
      out[at + 1] = word >>> 8;
      out[at + 2] = word >>> 16;
      out[at + 3] = word >>> 24;
    }
  }

  /** The slot's last activity time (0 for an empty slot), for the state file. */
  slotLastActivity(slot: number): number {
    return this.#table.rowsOf(slot)[this.#table.rowOf(slot) + ROW_LAST_ACTIVITY];
  }

  slotCounts(slot: number): void {
    if (!this.slotInUse(slot)) this.result.zero();
    else this.result.fill(this.#table.rowsOf(slot), this.#table.rowOf(slot));
  }

  /**
   * Drops the torrent at `slot` with all its peers, as if it had never been announced; returns
   * how many peers it had (0 for an empty slot). Deletion's backward shift may move a row of a
   * higher slot, up to the next empty one, into `slot`: a walk that must see every row goes down
   * from an empty slot (accessPurge.ts).
   */
  dropTorrentAt(slot: number): number {
    if (!this.slotInUse(slot)) return 0;
    return this.#table.drop(this.#table.currentSlot(slot));
  }

  /**
   * Calls fn for each stored peer of the slot's list; the address bytes are reused scratch and
   * lastSeen is rebuilt from the 15-bit stamp. fn must not modify the table.
   */
  forEachPeer(slot: number, family: PeerFamily, fn: PeerVisitor): void {
    const table = this.#table;
    const rows = table.rowsOf(slot);
    this.#peers.forEach(rows, table.rowOf(slot), family, this.#latest, this.#addressScratch, fn);
  }

  // ---------------------------------------------------------------- restore (storeRestore.ts)

  /**
   * Restores a peer as it was (warm restart / cluster sync). A peer already older than
   * peerTimeout is skipped; an existing record is replaced only by a newer one. Does not touch
   * downloaded. A new torrent or peer past a cap is skipped (never evicting: what is restored is
   * older than what clients announce later) and counted in `restoreSkipped`; returns whether the
   * peer was kept.
   */
  restorePeer(
    infoHash: Uint8Array,
    hashOffset: number,
    family: PeerFamily,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
    lastSeen: number,
  ): boolean {
    if (lastSeen > this.#latest) this.#latest = lastSeen;
    return this.#restore.peer(
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      seeder,
      lastSeen,
      this.#latest,
      OLDER_SKIPPED,
    );
  }

  /**
   * Applies a refresh learned from another node (cluster sync): the peer takes `seeder`, and
   * `lastSeen` unless the stored stamp is newer, so a late or replayed change never makes a peer
   * look older than this node knows it, while flags follow the order changes are applied in.
   * Skips as restorePeer does (too old, at a cap); returns whether the peer is held.
   */
  refreshPeer(
    infoHash: Uint8Array,
    hashOffset: number,
    family: PeerFamily,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
    lastSeen: number,
  ): boolean {
    if (lastSeen > this.#latest) this.#latest = lastSeen;
    return this.#restore.peer(
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      seeder,
      lastSeen,
      this.#latest,
      OLDER_KEEPS_STAMP,
    );
  }

  /**
   * Sets a torrent's downloaded count, creating a peerless torrent if needed (state restore);
   * a new one past the torrent cap is skipped (counted in `restoreSkipped`).
   */
  setDownloaded(infoHash: Uint8Array, hashOffset: number, downloaded: number, now: number): void {
    if (now > this.#latest) this.#latest = now;
    this.#restore.downloaded(infoHash, hashOffset, downloaded, now);
  }

  /** The raw arrays, for the invariant checker and diagnostics; valid until the next call. */
  view(): SwarmTableView {
    return {
      rows: this.#table.rows,
      capacity: this.#table.capacity,
      oldRows: this.#table.oldRows,
      oldCapacity: this.#table.oldCapacity,
      pools: this.#pools.words,
      poolUsed: this.#pools.used,
      counters: this.#counters,
      hashKey: this.#hashKey,
    };
  }
}
