/**
 * SwarmTable: otter's peer store, the tracker's hot core.
 *
 * Torrents live in one open-addressing table (linear probing, backward-shift deletion, no
 * tombstones) of ROW_WORDS-word rows in a Uint32Array; a row's home slot comes from keyed
 * HalfSipHash-1-3 of its info hash, so outsiders cannot aim many torrents at one probe run.
 * Each row points at one peer-list block per address family. Blocks live in per-family,
 * per-capacity-class pools (see classes.ts) that are kept dense: freeing a block moves the pool's
 * last block into the hole and repoints that block's owner row, so pools never fragment and
 * shrink when mostly empty. Short lists are scanned; longer ones are open-addressing sets keyed
 * by a keyed hash of (address, port), so a 100k-peer swarm still finds a peer in O(1).
 *
 * Peer records carry a 15-bit time stamp (seconds mod 32768). clean() therefore has to look at
 * every record within 32768 - peerTimeout seconds of its stamp; see CLEAN_BUDGET for the bound
 * and how clean() enforces it.
 *
 * Nothing here allocates per announce: inputs are bytes plus offsets, peers are written into the
 * caller's buffer, counts go into the reused `result`, and per-call scratch lives in fields.
 *
 * Caps (`maxTorrents`, `maxPeers`) bound memory whatever clients send: past a cap a new torrent
 * or peer is refused, or (`whenFull: "evict"`) the least recently announced torrents are evicted
 * to make room, chosen by sampling (see EVICTION_SAMPLES). Refreshes and stops of stored peers
 * always work. Below the caps the checks cost one comparison per announce.
 */

import { hashBytes, hashWords, randomKey } from "../hash/halfSipHash.ts";
import {
  CLASS_CAPACITY,
  CLASS_COUNT,
  CLASS_MAX,
  CLASS_MIN,
  classFor,
  LINEAR_CLASSES,
} from "./classes.ts";
import {
  BLOCK_HEADER_WORDS,
  CLASS_SHIFT,
  COUNT_MASK,
  COUNTER_PEERS4,
  COUNTER_PEERS6,
  COUNTER_SEEDERS4,
  COUNTER_SEEDERS6,
  COUNTER_TORRENTS,
  COUNTER_WORDS,
  LIST_BLOCK,
  LIST_META,
  LIST_SEEDERS,
  PORT_SHIFT,
  rangeOf,
  RECORD_WORDS_V4,
  RECORD_WORDS_V6,
  ROW_DOWNLOADED,
  ROW_LAST_ACTIVITY,
  ROW_V4,
  ROW_V6,
  ROW_WORDS,
  SEEDER_BIT,
  TIME_MASK,
  TIME_PERIOD,
} from "./layout.ts";
import { allocGrowableWords, allocWords, NO_WORDS, resizeWords } from "./memory.ts";

export interface SwarmTableOptions {
  /** Seconds a peer lives without re-announcing. Must be <= 16000 (15-bit time stamps). */
  peerTimeout: number;
  /** Seconds a peerless torrent with downloaded > 0 is kept after its last activity (86400). */
  keepDownloadedFor?: number;
  /** uint32 source for peer sampling; default: xorshift32 seeded from crypto. */
  random?: () => number;
  /** 2-word HalfSipHash key; default randomKey(). */
  hashKey?: Uint32Array;
  /** Most torrents held at once (default: no cap). */
  maxTorrents?: number;
  /** Most peers held at once, both families together (default: no cap). */
  maxPeers?: number;
  /**
   * What a new torrent or peer past a cap gets: "refuse" (default) stores nothing and announce()
   * returns -1; "evict" drops the least recently announced torrents (approximately) to make room.
   */
  whenFull?: "refuse" | "evict";
}

/** `AnnounceResult.refused` bits: which cap a refused announce hit. */
export const REFUSED_TORRENTS = 1;
export const REFUSED_PEERS = 2;

/** The failure text both protocols send for a refused announce (`refused` bits). */
export function refusedReason(refused: number): string {
  return (refused & REFUSED_TORRENTS) !== 0
    ? "tracker is full: too many torrents"
    : "tracker is full: too many peers";
}

export class AnnounceResult {
  complete = 0;
  incomplete = 0;
  downloaded = 0;
  /**
   * Set when announce() returns -1: REFUSED_TORRENTS and/or REFUSED_PEERS. Stale otherwise (not
   * reset per announce, to keep the hot path as it was).
   */
  refused = 0;
}

/** Read-only handle on the raw arrays, for the invariant checker and diagnostics. */
export interface SwarmTableView {
  rows: Uint32Array;
  capacity: number;
  /** Pool of family f (0 = IPv4, 1 = IPv6) and class c at index f * CLASS_COUNT + c. */
  pools: readonly Uint32Array[];
  /** Blocks in use per pool, same indexing. */
  poolUsed: Uint32Array;
  counters: Uint32Array;
  hashKey: Uint32Array;
}

/**
 * Slots the server should pass to clean() every CLEAN_INTERVAL_MS: 40960 slots a second, so a
 * full pass over a table holding 1M torrents (about 1.6M slots) takes about 40 s, up to ~80 s
 * while most of it expires. Besides the slot budget a step stops after WORK_PER_SLOT * budget
 * work units (records looked at, removals, shifted rows), finishing a huge list over several
 * steps. It also gives back at most 2 MB of pool memory, and shrinks the table at the end of a
 * pass only if the table has at most SHRINK_SCAN_LIMIT slots or no torrents (the rehash scans
 * every old slot); cleanAll() shrinks any table. Measured with 1M peers stored
 * (bench/store_bench.ts report, on a shared 2-vCPU VM at load 5-7): p99 under 4 ms and max
 * under 10 ms of process CPU per step, including steps where half or all of the peers expire.
 *
 * Time stamp bound: records carry lastSeen mod 32768, so each one must be examined within
 * 32768 - peerTimeout seconds (>= 16768 s, as peerTimeout <= 16000) of its last announce, or its
 * age wraps and it looks fresh. A pass visits every record it finds in place; a record can miss
 * one pass only when a table resize or a list rebuild moves it under the cursor, so the
 * requirement is 2 * pass length < 32768 - peerTimeout: at most 160 s against 16768 s here. As
 * a safety net clean() ignores its budget and finishes the pass once that pass has been running
 * for (32768 - peerTimeout) / 4 seconds.
 */
export const CLEAN_BUDGET = 1024;
export const CLEAN_INTERVAL_MS = 25;

const EVENT_COMPLETED = 1;
const EVENT_STOPPED = 3;

const MIN_CAPACITY = 64;
const MAX_LOAD = 0.8;
const GROWTH = 1.5;
/** Shrink the table at the end of a clean pass when it is this empty. */
const SHRINK_LOAD = 0.2;
/** Work units per budget slot: one per slot or record looked at, DELETE_WORK per removal. */
const WORK_PER_SLOT = 32;
const DELETE_WORK = 16;
/** clean() leaves shrinking lists larger than this to announces, to keep clean steps short. */
const CLEAN_REBUILD_LIMIT = 1 << 15;
/** A seeder asking for leechers in a big set walks at most this many slots. */
const SEEDER_WALK_LIMIT = 4096;
const MAX_PEER_TIMEOUT = 16000;
/** Pools start at (and are not shrunk below) about this many words. */
const MIN_POOL_WORDS = 4096;
/**
 * Giving pool pages back costs ~1 ms per 2 MB here, so it is rationed: announces earn
 * TRIM_EARNED words of allowance each (up to TRIM_WORDS, 2 MB), a freed block may trim its pool
 * by up to FREE_TRIM_WORDS (256 KB) of it, and each clean step may spend TRIM_WORDS.
 */
const TRIM_WORDS = 1 << 19;
const FREE_TRIM_WORDS = 1 << 16;
const TRIM_EARNED = 64;
/** clean() shrinks a table only up to this size (the rehash scans every old slot); cleanAll any. */
const SHRINK_SCAN_LIMIT = 1 << 18;
/**
 * Eviction is Redis-style approximated LRU: it looks at this many random occupied slots and
 * evicts the one announced least recently. No list to keep in order and nothing allocated; the
 * victim is older than a random torrent with probability 16/17 on average, and it is among the
 * newer half of all torrents with probability 2^-16 (every sample would have to be).
 */
const EVICTION_SAMPLES = 16;
/**
 * Most torrents one announce may evict; past it the announce is refused. Only the peer cap can
 * need more than one (a victim holds few peers or none), so this bounds an announce's cost.
 */
const MAX_EVICTIONS = 64;

/** A cap option: a positive whole number, or Infinity when not given. */
function capOption(name: string, value: number | undefined): number {
  if (value === undefined) return Infinity;
  if (!(value >= 1)) throw new RangeError(`${name} must be at least 1, got ${value}`);
  return Math.floor(value);
}

function xorshift32(): () => number {
  let s = crypto.getRandomValues(new Uint32Array(1))[0] | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** Words per block for each pool (family-major). */
const BLOCK_WORDS = Int32Array.from(
  { length: 2 * CLASS_COUNT },
  (_, i) =>
    BLOCK_HEADER_WORDS +
    CLASS_CAPACITY[i % CLASS_COUNT] * (i < CLASS_COUNT ? RECORD_WORDS_V4 : RECORD_WORDS_V6),
);

export class SwarmTable {
  readonly result: AnnounceResult = new AnnounceResult();

  readonly #k0: number;
  readonly #k1: number;
  readonly #hashKey: Uint32Array;
  readonly #random: () => number;
  readonly #peerTimeout: number;
  readonly #keepDownloadedFor: number;
  readonly #maxPassSeconds: number;
  readonly #torrentCap: number;
  readonly #peerCap: number;
  readonly #evict: boolean;
  #refusedTorrents = 0;
  #refusedPeers = 0;
  #evicted = 0;
  #restoreSkipped = 0;
  #resizes = 0;

  #rows: Uint32Array;
  #rowBytes: Uint8Array;
  #capacity: number;
  #growAt: number;
  readonly #pools: Uint32Array[];
  readonly #poolUsed: Uint32Array;
  readonly #counters: Uint32Array;

  /** Latest `now` seen; restore and iteration use it to turn 15-bit stamps back into times. */
  #latest = 1;
  /**
   * Clean passes walk the table downwards from an empty slot, so the rows a backward-shift
   * deletion moves (those above the hole, up to the next empty slot) are always ones the pass
   * has already visited: nothing is skipped and nothing needs a second look.
   */
  #cursor = 0;
  /** Slots left to visit in the current pass (0: start a new pass). */
  #passLeft = 0;
  /** Where a clean step stopped inside a big set: family (0/1), record, records left. */
  #cleanFamily = 0;
  #cleanRecord = 0;
  #cleanLeft = 0;
  #passStart = 0;
  #passes = 0;
  #slotFinished = true;
  #trimCursor = 0;
  #trimAllowance = TRIM_WORDS;
  #work = 0;

  // Scratch for the key being worked on.
  #i0 = 0;
  #i1 = 0;
  #i2 = 0;
  #i3 = 0;
  #i4 = 0;
  #a0 = 0;
  #a1 = 0;
  #a2 = 0;
  #a3 = 0;
  #port = 0;
  #peerHash = 0;
  #peerHashValid = false;
  #emptySlot = 0;
  #emptyRecord = 0;
  readonly #addressScratch = new Uint8Array(16);

  constructor(options: SwarmTableOptions) {
    const timeout = options.peerTimeout;
    if (!(timeout >= 1 && timeout <= MAX_PEER_TIMEOUT)) {
      throw new RangeError(`peerTimeout must be in 1..${MAX_PEER_TIMEOUT}, got ${timeout}`);
    }
    this.#peerTimeout = Math.floor(timeout);
    this.#keepDownloadedFor = options.keepDownloadedFor ?? 86400;
    this.#maxPassSeconds = Math.floor((TIME_PERIOD - this.#peerTimeout) / 4);
    this.#random = options.random ?? xorshift32();
    const key = options.hashKey ?? randomKey();
    this.#hashKey = Uint32Array.from(key);
    this.#k0 = key[0] | 0;
    this.#k1 = key[1] | 0;
    this.#torrentCap = capOption("maxTorrents", options.maxTorrents);
    this.#peerCap = capOption("maxPeers", options.maxPeers);
    this.#evict = options.whenFull === "evict";
    this.#capacity = MIN_CAPACITY;
    this.#growAt = Math.floor(MIN_CAPACITY * MAX_LOAD);
    this.#rows = allocGrowableWords(MIN_CAPACITY * ROW_WORDS);
    this.#rowBytes = new Uint8Array(this.#rows.buffer);
    this.#pools = Array.from({ length: 2 * CLASS_COUNT }, () => NO_WORDS);
    this.#poolUsed = allocWords(2 * CLASS_COUNT);
    this.#counters = allocWords(COUNTER_WORDS);
  }

  // ---------------------------------------------------------------- public API

  /**
   * Applies one announce and writes up to `numwant` compact peers (6 bytes for family 4:
   * address + port big-endian; 18 for 6) of the requester's family into out[outOffset..]; out
   * must have room for them. Returns the number of peers written. `result` gets the torrent's
   * counts after applying the announce. Events: 0 none, 1 completed, 2 started, 3 stopped;
   * `seeder` is left == 0. Returns -1, storing nothing, when a new torrent or peer is refused
   * at a cap (`result.refused` says which); with whenFull "evict" that only happens if evicting
   * MAX_EVICTIONS torrents (never the requester's) did not make room.
   */
  announce(
    infoHash: Uint8Array,
    hashOffset: number,
    family: 4 | 6,
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
    if (this.#trimAllowance < TRIM_WORDS) this.#trimAllowance += TRIM_EARNED;
    this.#readInfoHash(infoHash, hashOffset);
    const hash = hashBytes(this.#k0, this.#k1, infoHash, hashOffset, 20);
    let slot = this.#findTorrent(hash);
    this.#readAddress(family, address, addressOffset, port);
    const counters = this.#counters;
    if (slot < 0) {
      if (event === EVENT_STOPPED) return this.#zeroResult();
      if (
        counters[COUNTER_TORRENTS] >= this.#torrentCap ||
        counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] >= this.#peerCap
      ) {
        if (this.#makeRoom(hash, -1) === -2) return -1;
      }
      slot = this.#insertTorrent(hash);
    } else if (
      counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] >= this.#peerCap &&
      event !== EVENT_STOPPED && !this.#hasScratchPeer(slot, family)
    ) {
      slot = this.#makeRoom(hash, slot);
      if (slot === -2) return -1;
    }
    const rows = this.#rows;
    const o = slot * ROW_WORDS;
    rows[o + ROW_LAST_ACTIVITY] = now > 1 ? now : 1;
    let written = 0;
    if (event === EVENT_STOPPED) {
      this.#removePeer(slot, family);
      if (rows[o + ROW_V4 + LIST_META] === 0 && rows[o + ROW_V6 + LIST_META] === 0) {
        if (rows[o + ROW_DOWNLOADED] === 0) {
          this.#deleteTorrent(slot);
          return this.#zeroResult();
        }
      }
    } else {
      const self = this.#upsertPeer(
        slot,
        family,
        seeder,
        event === EVENT_COMPLETED,
        now & TIME_MASK,
        false,
      );
      if (numwant > 0) written = this.#sample(slot, family, self, seeder, numwant, out, outOffset);
    }
    this.#fillResult(o);
    return written;
  }

  /** Fills result with the torrent's counts; returns false (and zeros) if the torrent is unknown. */
  scrape(infoHash: Uint8Array, hashOffset: number): boolean {
    this.#readInfoHash(infoHash, hashOffset);
    const slot = this.#findTorrent(hashBytes(this.#k0, this.#k1, infoHash, hashOffset, 20));
    if (slot < 0) {
      this.#zeroResult();
      return false;
    }
    this.#fillResult(slot * ROW_WORDS);
    return true;
  }

  /**
   * Incremental expiry: visits up to `budget` torrent slots from a moving cursor (fewer if a
   * step's work limit runs out), removing peers silent for more than peerTimeout and freeing
   * torrents the rules let go. Returns slots visited. Call with CLEAN_BUDGET every
   * CLEAN_INTERVAL_MS.
   */
  clean(now: number, budget: number): number {
    if (now > this.#latest) this.#latest = now;
    let workLimit = budget * WORK_PER_SLOT;
    // Falling behind the time-stamp bound: finish this pass whatever it costs.
    const finishPass = this.#passLeft > 0 && now - this.#passStart > this.#maxPassSeconds;
    if (finishPass) workLimit = Infinity;
    if (this.#trimAllowance < TRIM_WORDS) this.#trimAllowance = TRIM_WORDS;
    this.#work = 0;
    let visited = 0;
    while ((finishPass || visited < budget) && this.#work < workLimit) {
      if (this.#passLeft <= 0) this.#startPass(now);
      visited++;
      this.#cleanSlot(this.#cursor, now, workLimit);
      if (!this.#slotFinished) break;
      this.#stepCursor();
      if (this.#passLeft <= 0) {
        this.#endPass(now, false);
        if (finishPass) break;
      }
    }
    this.#trimPools();
    return visited;
  }

  /** A full pass over every slot, at any cost (tests, shutdown, state save). */
  cleanAll(now: number): void {
    if (now > this.#latest) this.#latest = now;
    this.#trimAllowance = Infinity;
    this.#startPass(now);
    while (this.#passLeft > 0) {
      this.#work = 0;
      this.#cleanSlot(this.#cursor, now, Infinity);
      this.#stepCursor();
    }
    this.#endPass(now, true);
    this.#trimPools();
    this.#trimAllowance = TRIM_WORDS;
  }

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
  /** Completed clean passes (cursor wrap-arounds), for tests and stats. */
  get cleanPasses(): number {
    return this.#passes;
  }
  /** Announces refused because the torrent cap was reached (a new torrent at maxTorrents). */
  get refusedTorrents(): number {
    return this.#refusedTorrents;
  }
  /** Announces refused because of the peer cap alone (a new peer at maxPeers). */
  get refusedPeers(): number {
    return this.#refusedPeers;
  }
  /** Torrents evicted to make room (whenFull "evict"). */
  get evictedTorrents(): number {
    return this.#evicted;
  }
  /** Peers restorePeer skipped, and peerless torrents setDownloaded skipped, at a cap. */
  get restoreSkipped(): number {
    return this.#restoreSkipped;
  }
  /** The caps in force (Infinity: none). */
  get maxTorrents(): number {
    return this.#torrentCap;
  }
  get maxPeers(): number {
    return this.#peerCap;
  }

  /** Number of torrent slots; iterate 0..slotCount-1 with slotInUse (not hot). */
  get slotCount(): number {
    return this.#capacity;
  }

  slotInUse(slot: number): boolean {
    return this.#rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0;
  }

  copyInfoHash(slot: number, out: Uint8Array, offset: number): void {
    const bytes = this.#rowBytes;
    const from = slot * ROW_WORDS * 4;
    for (let i = 0; i < 20; i++) out[offset + i] = bytes[from + i];
  }

  /**
   * Drops the torrent at `slot` with all its peers, as if it had never been announced; returns
   * how many peers it had (0 for an empty slot). Deletion's backward shift may move a row of a higher slot, up
   * to the next empty one, into `slot`: a walk that must see every row goes down from an empty
   * slot (accessPurge.ts).
   */
  dropTorrentAt(slot: number): number {
    if (!this.slotInUse(slot)) return 0;
    return this.#dropRow(slot);
  }

  /** Counts table resizes: a slot walk that paused must start over when it changed. */
  get resizes(): number {
    return this.#resizes;
  }

  /** The slot's last activity time (0 for an empty slot), for the state file. */
  slotLastActivity(slot: number): number {
    return this.#rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY];
  }

  slotCounts(slot: number): void {
    if (!this.slotInUse(slot)) this.#zeroResult();
    else this.#fillResult(slot * ROW_WORDS);
  }

  /**
   * Calls fn for each stored peer of the slot's list; the address bytes are reused scratch and
   * lastSeen is rebuilt from the 15-bit stamp. fn must not modify the table.
   */
  forEachPeer(
    slot: number,
    family: 4 | 6,
    fn: (
      address: Uint8Array,
      addressOffset: number,
      port: number,
      seeder: boolean,
      lastSeen: number,
    ) => void,
  ): void {
    const o = slot * ROW_WORDS + (family === 4 ? ROW_V4 : ROW_V6);
    const meta = this.#rows[o + LIST_META];
    if (meta === 0) return;
    const count = meta & COUNT_MASK;
    const c = meta >>> CLASS_SHIFT;
    const pi = (family === 4 ? 0 : CLASS_COUNT) + c;
    const pool = this.#pools[pi];
    const R = family === 4 ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
    const base = this.#rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
    const n = c < LINEAR_CLASSES ? count : CLASS_CAPACITY[c];
    const scratch = this.#addressScratch;
    const latest = this.#latest;
    for (let i = 0; i < n; i++) {
      const p = base + i * R;
      const tail = pool[p + R - 1];
      if (tail === 0) continue;
      for (let w = 0; w < R - 1; w++) {
        const word = pool[p + w];
        scratch[4 * w] = word >>> 24;
        scratch[4 * w + 1] = word >>> 16;
        scratch[4 * w + 2] = word >>> 8;
        scratch[4 * w + 3] = word;
      }
      fn(
        scratch,
        0,
        tail >>> PORT_SHIFT,
        (tail & SEEDER_BIT) !== 0,
        latest - ((latest - tail) & TIME_MASK),
      );
    }
  }

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
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
    lastSeen: number,
  ): boolean {
    if (lastSeen > this.#latest) this.#latest = lastSeen;
    if (this.#latest - lastSeen > this.#peerTimeout || (port & 0xffff) === 0) return false;
    if (this.#trimAllowance < TRIM_WORDS) this.#trimAllowance += TRIM_EARNED;
    this.#readInfoHash(infoHash, hashOffset);
    const hash = hashBytes(this.#k0, this.#k1, infoHash, hashOffset, 20);
    let slot = this.#findTorrent(hash);
    this.#readAddress(family, address, addressOffset, port);
    const counters = this.#counters;
    const peersFull = counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] >= this.#peerCap;
    if (slot < 0) {
      if (peersFull || counters[COUNTER_TORRENTS] >= this.#torrentCap) {
        this.#restoreSkipped++;
        return false;
      }
      slot = this.#insertTorrent(hash);
    } else if (peersFull && !this.#hasScratchPeer(slot, family)) {
      this.#restoreSkipped++;
      return false;
    }
    const o = slot * ROW_WORDS;
    const active = lastSeen > 1 ? lastSeen : 1;
    if (this.#rows[o + ROW_LAST_ACTIVITY] < active) this.#rows[o + ROW_LAST_ACTIVITY] = active;
    return this.#upsertPeer(slot, family, seeder, false, lastSeen & TIME_MASK, true) >= 0;
  }

  /**
   * Sets a torrent's downloaded count, creating a peerless torrent if needed (state restore);
   * a new one past the torrent cap is skipped (counted in `restoreSkipped`).
   */
  setDownloaded(infoHash: Uint8Array, hashOffset: number, downloaded: number, now: number): void {
    if (now > this.#latest) this.#latest = now;
    this.#readInfoHash(infoHash, hashOffset);
    const hash = hashBytes(this.#k0, this.#k1, infoHash, hashOffset, 20);
    let slot = this.#findTorrent(hash);
    if (slot < 0) {
      if (downloaded <= 0) return;
      if (this.#counters[COUNTER_TORRENTS] >= this.#torrentCap) {
        this.#restoreSkipped++;
        return;
      }
      slot = this.#insertTorrent(hash);
    }
    const rows = this.#rows;
    const o = slot * ROW_WORDS;
    rows[o + ROW_DOWNLOADED] = downloaded;
    rows[o + ROW_LAST_ACTIVITY] = now > 1 ? now : 1;
    if (
      rows[o + ROW_DOWNLOADED] === 0 && rows[o + ROW_V4 + LIST_META] === 0 &&
      rows[o + ROW_V6 + LIST_META] === 0
    ) {
      this.#deleteTorrent(slot);
    }
  }

  /** Longest probe run in the torrent table (diagnostic). */
  maxProbeLength(): number {
    const rows = this.#rows;
    const cap = this.#capacity;
    let longest = 0;
    for (let s = 0; s < cap; s++) {
      if (rows[s * ROW_WORDS + ROW_LAST_ACTIVITY] === 0) continue;
      const length = (s - this.#homeOfRow(s) + cap) % cap + 1;
      if (length > longest) longest = length;
    }
    return longest;
  }

  /** Bytes held by all typed arrays of the store. */
  get byteSize(): number {
    let bytes = this.#rows.byteLength + this.#poolUsed.byteLength + this.#counters.byteLength;
    for (const pool of this.#pools) bytes += pool.byteLength;
    return bytes;
  }

  /** The raw arrays, for the invariant checker and diagnostics; valid until the next call. */
  view(): SwarmTableView {
    return {
      rows: this.#rows,
      capacity: this.#capacity,
      pools: this.#pools,
      poolUsed: this.#poolUsed,
      counters: this.#counters,
      hashKey: this.#hashKey,
    };
  }

  // ---------------------------------------------------------------- keys

  #readInfoHash(b: Uint8Array, o: number): void {
    this.#i0 = (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
    this.#i1 = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24)) >>> 0;
    this.#i2 = (b[o + 8] | (b[o + 9] << 8) | (b[o + 10] << 16) | (b[o + 11] << 24)) >>> 0;
    this.#i3 = (b[o + 12] | (b[o + 13] << 8) | (b[o + 14] << 16) | (b[o + 15] << 24)) >>> 0;
    this.#i4 = (b[o + 16] | (b[o + 17] << 8) | (b[o + 18] << 16) | (b[o + 19] << 24)) >>> 0;
  }

  #readAddress(family: 4 | 6, b: Uint8Array, o: number, port: number): void {
    this.#a0 = ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
    if (family === 6) {
      this.#a1 = ((b[o + 4] << 24) | (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7]) >>> 0;
      this.#a2 = ((b[o + 8] << 24) | (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]) >>> 0;
      this.#a3 = ((b[o + 12] << 24) | (b[o + 13] << 16) | (b[o + 14] << 8) | b[o + 15]) >>> 0;
    }
    this.#port = port & 0xffff;
    this.#peerHashValid = false;
  }

  /** Keyed hash of the scratch peer key, computed once per call. */
  #scratchPeerHash(R: number): number {
    if (!this.#peerHashValid) {
      this.#peerHash = R === RECORD_WORDS_V4
        ? hashWords(this.#k0, this.#k1, 2, this.#a0, this.#port)
        : hashWords(
          this.#k0,
          this.#k1,
          2,
          hashWords(this.#k0, this.#k1, 4, this.#a0, this.#a1, this.#a2, this.#a3),
          this.#port,
        );
      this.#peerHashValid = true;
    }
    return this.#peerHash;
  }

  /** Keyed hash of a stored record, equal to #scratchPeerHash for the same peer. */
  #recordHash(pool: Uint32Array, p: number, R: number): number {
    const port = pool[p + R - 1] >>> PORT_SHIFT;
    if (R === RECORD_WORDS_V4) return hashWords(this.#k0, this.#k1, 2, pool[p], port);
    return hashWords(
      this.#k0,
      this.#k1,
      2,
      hashWords(this.#k0, this.#k1, 4, pool[p], pool[p + 1], pool[p + 2], pool[p + 3]),
      port,
    );
  }

  // ---------------------------------------------------------------- torrent table

  /** The slot holding the scratch info hash, or -1 with #emptySlot set to where it would go. */
  #findTorrent(hash: number): number {
    const rows = this.#rows;
    const cap = this.#capacity;
    const i0 = this.#i0;
    let s = rangeOf(hash, cap);
    for (;;) {
      const o = s * ROW_WORDS;
      if (rows[o + ROW_LAST_ACTIVITY] === 0) {
        this.#emptySlot = s;
        return -1;
      }
      if (
        rows[o] === i0 && rows[o + 1] === this.#i1 && rows[o + 2] === this.#i2 &&
        rows[o + 3] === this.#i3 && rows[o + 4] === this.#i4
      ) return s;
      if (++s === cap) s = 0;
    }
  }

  /** Creates a row for the scratch info hash (not present) and returns its slot. */
  #insertTorrent(hash: number): number {
    if (this.#counters[COUNTER_TORRENTS] + 1 > this.#growAt) {
      this.#resize(Math.ceil(this.#capacity * GROWTH));
      this.#findTorrent(hash);
    }
    const s = this.#emptySlot;
    const rows = this.#rows;
    const o = s * ROW_WORDS;
    rows[o] = this.#i0;
    rows[o + 1] = this.#i1;
    rows[o + 2] = this.#i2;
    rows[o + 3] = this.#i3;
    rows[o + 4] = this.#i4;
    rows[o + ROW_LAST_ACTIVITY] = 1;
    this.#counters[COUNTER_TORRENTS]++;
    return s;
  }

  #homeOfRow(s: number): number {
    return rangeOf(
      hashBytes(this.#k0, this.#k1, this.#rowBytes, s * ROW_WORDS * 4, 20),
      this.#capacity,
    );
  }

  /** Removes a peerless row by backward shift. */
  #deleteTorrent(slot: number): void {
    const rows = this.#rows;
    const cap = this.#capacity;
    let hole = slot;
    let j = slot;
    for (;;) {
      if (++j === cap) j = 0;
      const oj = j * ROW_WORDS;
      if (rows[oj + ROW_LAST_ACTIVITY] === 0) break;
      const home = this.#homeOfRow(j);
      this.#work += 2;
      if ((j - home + cap) % cap >= (j - hole + cap) % cap) {
        rows.copyWithin(hole * ROW_WORDS, oj, oj + ROW_WORDS);
        this.#repointBlocks(hole);
        hole = j;
      }
    }
    rows.fill(0, hole * ROW_WORDS, hole * ROW_WORDS + ROW_WORDS);
    this.#counters[COUNTER_TORRENTS]--;
  }

  /** Points the owner word of the row's blocks at its (new) slot. */
  #repointBlocks(slot: number): void {
    const rows = this.#rows;
    const o = slot * ROW_WORDS;
    let meta = rows[o + ROW_V4 + LIST_META];
    if (meta !== 0) {
      const pi = meta >>> CLASS_SHIFT;
      this.#pools[pi][rows[o + ROW_V4 + LIST_BLOCK] * BLOCK_WORDS[pi]] = slot;
    }
    meta = rows[o + ROW_V6 + LIST_META];
    if (meta !== 0) {
      const pi = CLASS_COUNT + (meta >>> CLASS_SHIFT);
      this.#pools[pi][rows[o + ROW_V6 + LIST_BLOCK] * BLOCK_WORDS[pi]] = slot;
    }
  }

  #resize(newCapacity: number): void {
    this.#resizes++;
    const old = this.#rows;
    const oldBytes = this.#rowBytes;
    const oldCapacity = this.#capacity;
    const rows = allocGrowableWords(newCapacity * ROW_WORDS);
    this.#rows = rows;
    this.#rowBytes = new Uint8Array(rows.buffer);
    this.#capacity = newCapacity;
    this.#growAt = Math.floor(newCapacity * MAX_LOAD);
    // An empty table has nothing to move (the common shrink after everything expired).
    const moving = this.#counters[COUNTER_TORRENTS] > 0 ? oldCapacity : 0;
    for (let s = 0; s < moving; s++) {
      const os = s * ROW_WORDS;
      if (old[os + ROW_LAST_ACTIVITY] === 0) continue;
      let t = rangeOf(hashBytes(this.#k0, this.#k1, oldBytes, os * 4, 20), newCapacity);
      while (rows[t * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) if (++t === newCapacity) t = 0;
      const ot = t * ROW_WORDS;
      for (let w = 0; w < ROW_WORDS; w++) rows[ot + w] = old[os + w];
      this.#repointBlocks(t);
    }
    // Rows keep their place in hash order, so scaling keeps the pass roughly where it was; rows
    // it misses are visited next pass.
    this.#cursor = Math.min(newCapacity - 1, Math.floor(this.#cursor * newCapacity / oldCapacity));
    this.#passLeft = Math.min(newCapacity, Math.ceil(this.#passLeft * newCapacity / oldCapacity));
    this.#cleanFamily = 0;
    this.#cleanRecord = 0;
    this.#cleanLeft = 0;
    // Hand the old generation's pages back now rather than at the next major GC: after a fast
    // fill of 1M torrents it is tens of MB that RSS would otherwise carry for seconds.
    resizeWords(old, 0);
  }

  #fillResult(o: number): void {
    const rows = this.#rows;
    const seeders = rows[o + ROW_V4 + LIST_SEEDERS] + rows[o + ROW_V6 + LIST_SEEDERS];
    const peers = (rows[o + ROW_V4 + LIST_META] & COUNT_MASK) +
      (rows[o + ROW_V6 + LIST_META] & COUNT_MASK);
    const result = this.result;
    result.complete = seeders;
    result.incomplete = peers - seeders;
    result.downloaded = rows[o + ROW_DOWNLOADED];
  }

  #zeroResult(): number {
    const result = this.result;
    result.complete = 0;
    result.incomplete = 0;
    result.downloaded = 0;
    return 0;
  }

  // ---------------------------------------------------------------- caps

  /** Whether the scratch peer is stored in the slot's list of its family. */
  #hasScratchPeer(slot: number, family: 4 | 6): boolean {
    const o = slot * ROW_WORDS + (family === 4 ? ROW_V4 : ROW_V6);
    const meta = this.#rows[o + LIST_META];
    if (meta === 0) return false;
    const c = meta >>> CLASS_SHIFT;
    const pi = (family === 4 ? 0 : CLASS_COUNT) + c;
    const base = this.#rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
    const R = family === 4 ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
    return this.#findPeer(this.#pools[pi], base, c, meta & COUNT_MASK, R) >= 0;
  }

  /**
   * A new peer (in the torrent at `slot`, or in a new torrent when slot is -1) hit a cap. Evicts
   * the oldest of sampled torrents, never the one at `slot`, until there is room, if the policy
   * says so. Returns the requester's slot (rows move when others are deleted; for a new torrent
   * -1, with #emptySlot fresh for #insertTorrent), or -2 after counting a refusal in `result`.
   */
  #makeRoom(hash: number, slot: number): number {
    const counters = this.#counters;
    let evictions = 0;
    for (;;) {
      let full = 0;
      if (slot < 0 && counters[COUNTER_TORRENTS] >= this.#torrentCap) full |= REFUSED_TORRENTS;
      if (counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] >= this.#peerCap) {
        full |= REFUSED_PEERS;
      }
      if (full === 0) break;
      const victim = this.#evict && evictions < MAX_EVICTIONS ? this.#oldestSampled(slot) : -1;
      if (victim < 0) {
        if ((full & REFUSED_TORRENTS) !== 0) this.#refusedTorrents++;
        else this.#refusedPeers++;
        this.#zeroResult();
        this.result.refused = full;
        return -2;
      }
      this.#evictTorrent(victim);
      evictions++;
      slot = this.#findTorrent(hash);
    }
    return slot;
  }

  /**
   * Of EVICTION_SAMPLES random occupied slots other than `exclude`, the least recently active;
   * -1 if no other torrent exists. A sample is the first occupied slot at or after a random slot:
   * a step or two at the table's usual 20-80 % load; longer only in a table left sparse by mass
   * expiry, which the end of the clean pass shrinks.
   */
  #oldestSampled(exclude: number): number {
    const torrents = this.#counters[COUNTER_TORRENTS];
    if (torrents === 0 || (torrents === 1 && exclude >= 0)) return -1;
    const rows = this.#rows;
    const cap = this.#capacity;
    let best = -1;
    let bestTime = Infinity;
    for (let k = 0; k < EVICTION_SAMPLES; k++) {
      let s = rangeOf(this.#random() >>> 0, cap);
      while (rows[s * ROW_WORDS + ROW_LAST_ACTIVITY] === 0 || s === exclude) {
        if (++s === cap) s = 0;
      }
      const time = rows[s * ROW_WORDS + ROW_LAST_ACTIVITY];
      if (time < bestTime) {
        best = s;
        bestTime = time;
      }
    }
    return best;
  }

  /** Evicts a torrent to make room (whenFull "evict"). */
  #evictTorrent(slot: number): void {
    this.#dropRow(slot);
    this.#evicted++;
  }

  /** Drops the torrent at `slot` with all its peers; returns how many peers it had. */
  #dropRow(slot: number): number {
    const rows = this.#rows;
    const o = slot * ROW_WORDS;
    let peers = 0;
    for (let f = 0; f < 2; f++) {
      const F = o + (f === 0 ? ROW_V4 : ROW_V6);
      const meta = rows[F + LIST_META];
      if (meta === 0) continue;
      peers += meta & COUNT_MASK;
      this.#counters[f === 0 ? COUNTER_PEERS4 : COUNTER_PEERS6] -= meta & COUNT_MASK;
      this.#counters[f === 0 ? COUNTER_SEEDERS4 : COUNTER_SEEDERS6] -= rows[F + LIST_SEEDERS];
      this.#freeBlock(f * CLASS_COUNT + (meta >>> CLASS_SHIFT), rows[F + LIST_BLOCK]);
      rows[F + LIST_BLOCK] = 0;
      rows[F + LIST_META] = 0;
      rows[F + LIST_SEEDERS] = 0;
    }
    // A clean step paused inside a list of the row at the cursor must not resume in whatever
    // row the deletion's backward shift puts there.
    const cursorRow = this.#cursor * ROW_WORDS;
    const w0 = rows[cursorRow];
    const w1 = rows[cursorRow + 1];
    this.#deleteTorrent(slot);
    if (this.#rows[cursorRow] !== w0 || this.#rows[cursorRow + 1] !== w1) {
      this.#cleanFamily = 0;
      this.#cleanLeft = 0;
    }
    return peers;
  }

  // ---------------------------------------------------------------- block pools

  /** Takes a zeroed block from pool `pi` for the row at `owner`. */
  #allocBlock(pi: number, owner: number): number {
    const bw = BLOCK_WORDS[pi];
    const used = this.#poolUsed[pi];
    let pool = this.#pools[pi];
    if ((used + 1) * bw > pool.length) {
      const blocks = Math.max(
        used + 1,
        Math.ceil((pool.length / bw) * GROWTH),
        Math.floor(MIN_POOL_WORDS / bw),
      );
      pool = pool === NO_WORDS ? allocGrowableWords(blocks * bw) : resizeWords(pool, blocks * bw);
      this.#pools[pi] = pool;
    }
    const start = used * bw;
    pool[start] = owner;
    // Dense pools leave stale words past their end; records must start empty.
    pool.fill(0, start + 1, start + bw);
    this.#poolUsed[pi] = used + 1;
    return used;
  }

  /** Returns block `b` to pool `pi`, moving the pool's last block into its place. */
  #freeBlock(pi: number, b: number): void {
    const bw = BLOCK_WORDS[pi];
    const last = this.#poolUsed[pi] - 1;
    const pool = this.#pools[pi];
    if (b !== last) {
      pool.copyWithin(b * bw, last * bw, last * bw + bw);
      const owner = pool[b * bw];
      this.#rows[owner * ROW_WORDS + (pi < CLASS_COUNT ? ROW_V4 : ROW_V6) + LIST_BLOCK] = b;
    }
    this.#poolUsed[pi] = last;
    if (this.#trimAllowance > 0) {
      this.#trimAllowance -= this.#trimPool(pi, Math.min(this.#trimAllowance, FREE_TRIM_WORDS));
    }
  }

  /**
   * Gives back the unused tail of pool `pi` if it is at most a quarter full, down to twice its
   * use, releasing at most `words` words. Returns the words released.
   */
  #trimPool(pi: number, words: number): number {
    const pool = this.#pools[pi];
    const used = this.#poolUsed[pi] * BLOCK_WORDS[pi];
    if (used * 4 > pool.length || pool.length <= MIN_POOL_WORDS) return 0;
    const length = Math.max(used * 2, MIN_POOL_WORDS, pool.length - words);
    const released = pool.length - length;
    resizeWords(pool, length);
    return released;
  }

  /** Spends the trim allowance on sparse pools, round-robin. */
  #trimPools(): void {
    for (let n = 0; n < this.#pools.length && this.#trimAllowance > 0; n++) {
      const pi = this.#trimCursor;
      this.#trimCursor = pi + 1 === this.#pools.length ? 0 : pi + 1;
      this.#trimAllowance -= this.#trimPool(pi, this.#trimAllowance);
    }
  }

  /** Moves the row's list of one family into a block of class `to`. */
  #moveList(slot: number, F: number, fp: number, R: number, to: number): void {
    const rows = this.#rows;
    const o = slot * ROW_WORDS + F;
    const meta = rows[o + LIST_META];
    const count = meta & COUNT_MASK;
    const from = meta >>> CLASS_SHIFT;
    const fromPi = fp + from;
    const toPi = fp + to;
    const fromBlock = rows[o + LIST_BLOCK];
    const toBlock = this.#allocBlock(toPi, slot);
    const src = this.#pools[fromPi];
    const dst = this.#pools[toPi];
    const srcBase = fromBlock * BLOCK_WORDS[fromPi] + BLOCK_HEADER_WORDS;
    const dstBase = toBlock * BLOCK_WORDS[toPi] + BLOCK_HEADER_WORDS;
    const n = from < LINEAR_CLASSES ? count : CLASS_CAPACITY[from];
    const toCap = CLASS_CAPACITY[to];
    const toSet = to >= LINEAR_CLASSES;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const p = srcBase + i * R;
      if (src[p + R - 1] === 0) continue;
      let d: number;
      if (toSet) {
        let j = rangeOf(this.#recordHash(src, p, R), toCap);
        while (dst[dstBase + j * R + R - 1] !== 0) if (++j === toCap) j = 0;
        d = dstBase + j * R;
      } else {
        d = dstBase + k++ * R;
      }
      for (let w = 0; w < R; w++) dst[d + w] = src[p + w];
    }
    rows[o + LIST_BLOCK] = toBlock;
    rows[o + LIST_META] = (count | (to << CLASS_SHIFT)) >>> 0;
    this.#freeBlock(fromPi, fromBlock);
  }

  // ---------------------------------------------------------------- peer lists

  /**
   * Index of the scratch peer in a list, or -1 with #emptyRecord set to where it would go
   * (the end of a linear list, the first empty slot of its probe run in a set).
   */
  #findPeer(pool: Uint32Array, base: number, c: number, count: number, R: number): number {
    const a0 = this.#a0;
    const port = this.#port;
    if (c < LINEAR_CLASSES) {
      for (let i = 0, p = base; i < count; i++, p += R) {
        if (
          pool[p] === a0 && pool[p + R - 1] >>> PORT_SHIFT === port &&
          (R === RECORD_WORDS_V4 || this.#sameV6Tail(pool, p))
        ) return i;
      }
      this.#emptyRecord = count;
      return -1;
    }
    const cap = CLASS_CAPACITY[c];
    let i = rangeOf(this.#scratchPeerHash(R), cap);
    for (;;) {
      const p = base + i * R;
      const tail = pool[p + R - 1];
      if (tail === 0) {
        this.#emptyRecord = i;
        return -1;
      }
      if (
        pool[p] === a0 && tail >>> PORT_SHIFT === port &&
        (R === RECORD_WORDS_V4 || this.#sameV6Tail(pool, p))
      ) return i;
      if (++i === cap) i = 0;
    }
  }

  #sameV6Tail(pool: Uint32Array, p: number): boolean {
    return pool[p + 1] === this.#a1 && pool[p + 2] === this.#a2 && pool[p + 3] === this.#a3;
  }

  /**
   * Inserts or refreshes the scratch peer; returns its record index, or -1 if its list is at the
   * largest class and full (the peer is then not stored).
   */
  #upsertPeer(
    slot: number,
    family: 4 | 6,
    seeder: boolean,
    completed: boolean,
    stamp: number,
    onlyIfNewer: boolean,
  ): number {
    const F = family === 4 ? ROW_V4 : ROW_V6;
    const fp = family === 4 ? 0 : CLASS_COUNT;
    const R = family === 4 ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
    const rows = this.#rows;
    const o = slot * ROW_WORDS + F;
    const tail = ((this.#port << PORT_SHIFT) | (seeder ? SEEDER_BIT : 0) | stamp) >>> 0;
    const meta = rows[o + LIST_META];
    let count = meta & COUNT_MASK;
    let c = meta >>> CLASS_SHIFT;
    let i: number;
    if (count === 0) {
      c = 0;
      rows[o + LIST_BLOCK] = this.#allocBlock(fp, slot);
      i = 0;
    } else {
      let pi = fp + c;
      let pool = this.#pools[pi];
      let base = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
      i = this.#findPeer(pool, base, c, count, R);
      if (i >= 0) {
        const p = base + i * R + R - 1;
        const old = pool[p];
        if (
          onlyIfNewer && ((this.#latest - old) & TIME_MASK) < ((this.#latest - stamp) & TIME_MASK)
        ) {
          return i;
        }
        pool[p] = tail;
        const wasSeeder = (old & SEEDER_BIT) !== 0;
        if (wasSeeder !== seeder) this.#addSeeders(o, family, seeder ? 1 : -1);
        if (completed && seeder && !wasSeeder) rows[slot * ROW_WORDS + ROW_DOWNLOADED]++;
        if (count < CLASS_MIN[c]) {
          // Shrinks that clean() left to announces (huge lists); moving invalidates i.
          this.#moveList(slot, F, fp, R, classFor(count + 1));
          c = rows[o + LIST_META] >>> CLASS_SHIFT;
          pi = fp + c;
          pool = this.#pools[pi];
          base = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
          i = this.#findPeer(pool, base, c, count, R);
        }
        return i;
      }
      i = this.#emptyRecord;
      if (count >= CLASS_MAX[c]) {
        const to = classFor(count + 1);
        if (to < 0) return -1;
        this.#moveList(slot, F, fp, R, to);
        c = to;
        pi = fp + c;
        pool = this.#pools[pi];
        base = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
        if (c < LINEAR_CLASSES) {
          i = count;
        } else {
          const cap = CLASS_CAPACITY[c];
          i = rangeOf(this.#scratchPeerHash(R), cap);
          while (pool[base + i * R + R - 1] !== 0) if (++i === cap) i = 0;
        }
      }
    }
    const pi = fp + c;
    const pool = this.#pools[pi];
    const p = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS + i * R;
    pool[p] = this.#a0;
    if (R === RECORD_WORDS_V6) {
      pool[p + 1] = this.#a1;
      pool[p + 2] = this.#a2;
      pool[p + 3] = this.#a3;
    }
    pool[p + R - 1] = tail;
    count++;
    rows[o + LIST_META] = (count | (c << CLASS_SHIFT)) >>> 0;
    this.#counters[family === 4 ? COUNTER_PEERS4 : COUNTER_PEERS6]++;
    if (seeder) {
      this.#addSeeders(o, family, 1);
      if (completed) rows[slot * ROW_WORDS + ROW_DOWNLOADED]++;
    }
    return i;
  }

  #addSeeders(o: number, family: 4 | 6, delta: number): void {
    this.#rows[o + LIST_SEEDERS] += delta;
    this.#counters[family === 4 ? COUNTER_SEEDERS4 : COUNTER_SEEDERS6] += delta;
  }

  /** Removes the scratch peer from the row's list if present. */
  #removePeer(slot: number, family: 4 | 6): void {
    const F = family === 4 ? ROW_V4 : ROW_V6;
    const fp = family === 4 ? 0 : CLASS_COUNT;
    const R = family === 4 ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
    const rows = this.#rows;
    const o = slot * ROW_WORDS + F;
    const meta = rows[o + LIST_META];
    if (meta === 0) return;
    const count = meta & COUNT_MASK;
    const c = meta >>> CLASS_SHIFT;
    const pi = fp + c;
    const pool = this.#pools[pi];
    const base = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
    const i = this.#findPeer(pool, base, c, count, R);
    if (i < 0) return;
    if ((pool[base + i * R + R - 1] & SEEDER_BIT) !== 0) this.#addSeeders(o, family, -1);
    this.#removeRecord(pool, base, c, count, R, i);
    this.#counters[family === 4 ? COUNTER_PEERS4 : COUNTER_PEERS6]--;
    this.#listShrunk(slot, F, fp, R, count - 1, c, Infinity);
  }

  /** Deletes record i (linear: last record fills the hole; set: backward shift). */
  #removeRecord(
    pool: Uint32Array,
    base: number,
    c: number,
    count: number,
    R: number,
    i: number,
  ): void {
    if (c < LINEAR_CLASSES) {
      const last = base + (count - 1) * R;
      const p = base + i * R;
      for (let w = 0; w < R; w++) {
        pool[p + w] = pool[last + w];
        pool[last + w] = 0;
      }
      return;
    }
    const cap = CLASS_CAPACITY[c];
    let hole = i;
    let j = i;
    for (;;) {
      if (++j === cap) j = 0;
      const pj = base + j * R;
      if (pool[pj + R - 1] === 0) break;
      const home = rangeOf(this.#recordHash(pool, pj, R), cap);
      if ((j - home + cap) % cap >= (j - hole + cap) % cap) {
        pool.copyWithin(base + hole * R, pj, pj + R);
        hole = j;
      }
      this.#work += 1;
    }
    pool.fill(0, base + hole * R, base + hole * R + R);
  }

  /**
   * Stores a list's new count after removals: frees the block when empty, moves the list to a
   * smaller class when sparse (unless the rebuild would exceed `rebuildLimit` records).
   */
  #listShrunk(
    slot: number,
    F: number,
    fp: number,
    R: number,
    count: number,
    c: number,
    rebuildLimit: number,
  ): void {
    const rows = this.#rows;
    const o = slot * ROW_WORDS + F;
    if (count === 0) {
      this.#freeBlock(fp + c, rows[o + LIST_BLOCK]);
      rows[o + LIST_BLOCK] = 0;
      rows[o + LIST_META] = 0;
      rows[o + LIST_SEEDERS] = 0;
      return;
    }
    rows[o + LIST_META] = (count | (c << CLASS_SHIFT)) >>> 0;
    if (count < CLASS_MIN[c] && count <= rebuildLimit) {
      this.#work += count * DELETE_WORK;
      this.#moveList(slot, F, fp, R, classFor(count + 1));
    }
  }

  /**
   * Writes up to numwant peers of the list, starting at a random record and walking on with
   * wrap-around; skips the requester (record `self`) and, for a seeder, other seeders.
   */
  #sample(
    slot: number,
    family: 4 | 6,
    self: number,
    seeder: boolean,
    numwant: number,
    out: Uint8Array,
    outOffset: number,
  ): number {
    const F = family === 4 ? ROW_V4 : ROW_V6;
    const R = family === 4 ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
    const rows = this.#rows;
    const o = slot * ROW_WORDS + F;
    const meta = rows[o + LIST_META];
    const count = meta & COUNT_MASK;
    const eligible = seeder ? count - rows[o + LIST_SEEDERS] : count - (self >= 0 ? 1 : 0);
    if (eligible <= 0) return 0;
    const want = numwant < eligible ? numwant : eligible;
    const c = meta >>> CLASS_SHIFT;
    const pi = (family === 4 ? 0 : CLASS_COUNT) + c;
    const pool = this.#pools[pi];
    const base = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
    const n = c < LINEAR_CLASSES ? count : CLASS_CAPACITY[c];
    let steps = seeder && n > SEEDER_WALK_LIMIT ? SEEDER_WALK_LIMIT : n;
    let i = rangeOf(this.#random() >>> 0, n);
    let written = 0;
    let q = outOffset;
    const skip = seeder ? SEEDER_BIT : 0;
    if (R === RECORD_WORDS_V4) {
      for (let p = base + i * 2; steps > 0; steps--) {
        const tail = pool[p + 1];
        if (tail !== 0 && i !== self && (tail & skip) === 0) {
          const word = pool[p];
          out[q] = word >>> 24;
          out[q + 1] = word >>> 16;
          out[q + 2] = word >>> 8;
          out[q + 3] = word;
          out[q + 4] = tail >>> 24;
          out[q + 5] = tail >>> 16;
          q += 6;
          if (++written === want) break;
        }
        p += 2;
        if (++i === n) {
          i = 0;
          p = base;
        }
      }
      return written;
    }
    for (; steps > 0; steps--) {
      const p = base + i * R;
      const tail = pool[p + R - 1];
      if (tail !== 0 && i !== self && (tail & skip) === 0) {
        for (let w = 0; w < R - 1; w++) {
          const word = pool[p + w];
          out[q] = word >>> 24;
          out[q + 1] = word >>> 16;
          out[q + 2] = word >>> 8;
          out[q + 3] = word;
          q += 4;
        }
        out[q] = tail >>> 24;
        out[q + 1] = tail >>> 16;
        q += 2;
        if (++written === want) break;
      }
      if (++i === n) i = 0;
    }
    return written;
  }

  // ---------------------------------------------------------------- cleaning

  /**
   * Expires one slot's peers, resuming inside a big set where the last step stopped, and frees
   * the torrent if the rules say so. Sets #slotFinished to false if the work limit ran out
   * inside a list.
   */
  #cleanSlot(slot: number, now: number, workLimit: number): void {
    this.#slotFinished = true;
    this.#work += 1;
    const rows = this.#rows;
    const o = slot * ROW_WORDS;
    if (rows[o + ROW_LAST_ACTIVITY] === 0) return;
    if (this.#cleanFamily === 0) {
      if (rows[o + ROW_V4 + LIST_META] !== 0) {
        this.#cleanList(slot, ROW_V4, 0, RECORD_WORDS_V4, now, workLimit);
        if (!this.#slotFinished) return;
      }
      this.#cleanFamily = 1;
      this.#cleanLeft = 0;
    }
    if (rows[o + ROW_V6 + LIST_META] !== 0) {
      this.#cleanList(slot, ROW_V6, CLASS_COUNT, RECORD_WORDS_V6, now, workLimit);
      if (!this.#slotFinished) return;
    }
    if (rows[o + ROW_V4 + LIST_META] === 0 && rows[o + ROW_V6 + LIST_META] === 0) {
      if (
        rows[o + ROW_DOWNLOADED] === 0 ||
        now - rows[o + ROW_LAST_ACTIVITY] > this.#keepDownloadedFor
      ) {
        this.#deleteTorrent(slot);
        this.#work += DELETE_WORK;
      }
    }
  }

  /** Moves the cursor one slot down (wrapping) and forgets any position inside a list. */
  #stepCursor(): void {
    this.#cursor = this.#cursor === 0 ? this.#capacity - 1 : this.#cursor - 1;
    this.#passLeft--;
    this.#cleanFamily = 0;
    this.#cleanLeft = 0;
  }

  #cleanList(slot: number, F: number, fp: number, R: number, now: number, workLimit: number) {
    const rows = this.#rows;
    const o = slot * ROW_WORDS + F;
    const meta = rows[o + LIST_META];
    let count = meta & COUNT_MASK;
    const c = meta >>> CLASS_SHIFT;
    const pi = fp + c;
    const pool = this.#pools[pi];
    const base = rows[o + LIST_BLOCK] * BLOCK_WORDS[pi] + BLOCK_HEADER_WORDS;
    const timeout = this.#peerTimeout;
    let seedersGone = 0;
    const before = count;
    if (c < LINEAR_CLASSES) {
      // Backwards, so the last record moved into a hole has already been looked at.
      for (let i = count - 1; i >= 0; i--) {
        const tail = pool[base + i * R + R - 1];
        if (((now - tail) & TIME_MASK) > timeout) {
          if ((tail & SEEDER_BIT) !== 0) seedersGone++;
          this.#removeRecord(pool, base, c, count, R, i);
          count--;
        }
      }
      this.#work += before;
    } else {
      // Downwards from an empty slot, like the table pass: a removal's backward shift only
      // moves records already looked at. A paused walk resumes where it stopped.
      const cap = CLASS_CAPACITY[c];
      let i = this.#cleanRecord;
      let left = this.#cleanLeft;
      if (left === 0 || i >= cap) {
        let empty = 0;
        while (pool[base + empty * R + R - 1] !== 0) empty++;
        i = empty === 0 ? cap - 1 : empty - 1;
        left = cap - 1;
      }
      for (; left > 0; left--) {
        if (this.#work >= workLimit) {
          this.#slotFinished = false;
          break;
        }
        this.#work += 1;
        const tail = pool[base + i * R + R - 1];
        if (tail !== 0 && ((now - tail) & TIME_MASK) > timeout) {
          if ((tail & SEEDER_BIT) !== 0) seedersGone++;
          this.#removeRecord(pool, base, c, count, R, i);
          this.#work += DELETE_WORK;
          if (--count === 0) break;
        }
        i = i === 0 ? cap - 1 : i - 1;
      }
      this.#cleanRecord = i;
      this.#cleanLeft = left;
    }
    const removed = before - count;
    if (removed === 0) return;
    const family = F === ROW_V4 ? 4 : 6;
    if (seedersGone !== 0) this.#addSeeders(o, family, -seedersGone);
    this.#counters[family === 4 ? COUNTER_PEERS4 : COUNTER_PEERS6] -= removed;
    if (count === 0 || this.#slotFinished) {
      this.#listShrunk(slot, F, fp, R, count, c, CLEAN_REBUILD_LIMIT);
    } else {
      rows[o + LIST_META] = (count | (c << CLASS_SHIFT)) >>> 0;
    }
  }

  /** Starts a pass just below an empty slot (there always is one: load <= MAX_LOAD). */
  #startPass(now: number): void {
    const rows = this.#rows;
    let empty = 0;
    while (rows[empty * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) empty++;
    this.#cursor = empty === 0 ? this.#capacity - 1 : empty - 1;
    this.#passLeft = this.#capacity;
    this.#cleanFamily = 0;
    this.#cleanLeft = 0;
    this.#passStart = now;
  }

  /** Ends a pass; shrinks a mostly empty table if that is cheap enough (or `anyCost`). */
  #endPass(now: number, anyCost: boolean): void {
    this.#passes++;
    this.#passLeft = 0;
    this.#passStart = now;
    const torrents = this.#counters[COUNTER_TORRENTS];
    const cheap = anyCost || torrents === 0 || this.#capacity <= SHRINK_SCAN_LIMIT;
    if (cheap && this.#capacity > MIN_CAPACITY && torrents < this.#capacity * SHRINK_LOAD) {
      this.#resize(Math.max(MIN_CAPACITY, Math.ceil(torrents / (MAX_LOAD / GROWTH))));
      this.#passLeft = 0;
    }
  }
}
