/**
 * The torrent table: one open-addressing table (linear probing, backward-shift deletion, no
 * tombstones) of ROW_WORDS-word rows in a Uint32Array (layout.ts). A row's home slot comes from
 * keyed HalfSipHash-1-3 of its info hash, so outsiders cannot aim many torrents at one probe run.
 * The table grows by GROWTH once over MAX_LOAD; the cleaner shrinks it at the end of a pass.
 *
 * Rows move: deletion's backward shift moves later rows of a probe run down into the hole, a
 * resize moves every row. Each move repoints the row's blocks (BlockPools.repointOwners). A resize
 * is reported to `onResize` (the cleaner rescales its position) and counted in `resizes`, so a
 * slot walk that paused can tell its slot numbers went stale.
 *
 * Eviction (whenFull "evict") is Redis-style approximated LRU: `oldestSampled` looks at
 * EVICTION_SAMPLES random occupied slots and names the one announced least recently. No list to
 * keep in order and nothing allocated; the victim is older than a random torrent with probability
 * 16/17 on average, and it is among the newer half of all torrents with probability 2^-16 (every
 * sample would have to be).
 */
import { hashBytes } from "../hash/halfSipHash.ts";
import { CLASS_COUNT } from "./classes.ts";
import {
  CLASS_SHIFT,
  COUNT_MASK,
  COUNTER_TORRENTS,
  FAMILY_COUNT,
  familyAt,
  LIST_BLOCK,
  LIST_META,
  LIST_SEEDERS,
  listOf,
  peersCounterOf,
  rangeOf,
  ROW_LAST_ACTIVITY,
  ROW_WORDS,
  seedersCounterOf,
} from "./layout.ts";
import { allocGrowableWords, resizeWords } from "./memory.ts";
import type { BlockPools } from "./blockPools.ts";

const MIN_CAPACITY = 64;
const MAX_LOAD = 0.8;
const GROWTH = 1.5;
/** `shrinkIfSparse` shrinks a table this empty. */
const SHRINK_LOAD = 0.2;
const EVICTION_SAMPLES = 16;

/** Info hash bytes b[at .. at+4] as the little-endian row word that holds them. */
function rowWord(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

export class TorrentTable {
  /** The rows; replaced by a resize, so read it after any call that may insert. */
  rows: Uint32Array;
  /** The same memory as bytes: a row's first 20 bytes are its info hash. */
  rowBytes: Uint8Array;
  capacity: number;
  /** Resizes so far. */
  resizes = 0;
  #growAt: number;
  readonly #k0: number;
  readonly #k1: number;
  readonly #pools: BlockPools;
  readonly #counters: Uint32Array;
  readonly #onResize: (oldCapacity: number, newCapacity: number) => void;

  constructor(
    hashKey: Uint32Array,
    pools: BlockPools,
    counters: Uint32Array,
    onResize: (oldCapacity: number, newCapacity: number) => void,
  ) {
    this.#k0 = hashKey[0] | 0;
    this.#k1 = hashKey[1] | 0;
    this.#pools = pools;
    this.#counters = counters;
    this.#onResize = onResize;
    this.capacity = MIN_CAPACITY;
    this.#growAt = Math.floor(MIN_CAPACITY * MAX_LOAD);
    this.rows = allocGrowableWords(MIN_CAPACITY * ROW_WORDS);
    this.rowBytes = new Uint8Array(this.rows.buffer);
  }

  /** The keyed hash of the info hash at infoHash[at .. at+20], which places its row. */
  hashOf(infoHash: Uint8Array, at: number): number {
    return hashBytes(this.#k0, this.#k1, infoHash, at, 20);
  }

  /**
   * The slot holding the info hash at infoHash[at..] (whose `hashOf` is `hash`), or, when it is
   * not stored, `~slot` of the empty slot where it would go (a negative number).
   */
  find(infoHash: Uint8Array, at: number, hash: number): number {
    const rows = this.rows;
    const capacity = this.capacity;
    const w0 = rowWord(infoHash, at);
    const w1 = rowWord(infoHash, at + 4);
    const w2 = rowWord(infoHash, at + 8);
    const w3 = rowWord(infoHash, at + 12);
    const w4 = rowWord(infoHash, at + 16);
    let slot = rangeOf(hash, capacity);
    for (;;) {
      const row = slot * ROW_WORDS;
      if (rows[row + ROW_LAST_ACTIVITY] === 0) return ~slot;
      if (
        rows[row] === w0 && rows[row + 1] === w1 && rows[row + 2] === w2 &&
        rows[row + 3] === w3 && rows[row + 4] === w4
      ) return slot;
      if (++slot === capacity) slot = 0;
    }
  }

  /**
   * Creates a row for the info hash at infoHash[at..], which `find` just placed at `~found`
   * (growing the table first if it is due), and returns its slot.
   */
  insert(infoHash: Uint8Array, at: number, hash: number, found: number): number {
    if (this.#counters[COUNTER_TORRENTS] + 1 > this.#growAt) {
      this.resize(Math.ceil(this.capacity * GROWTH));
      found = this.find(infoHash, at, hash);
    }
    const slot = ~found;
    const rows = this.rows;
    const row = slot * ROW_WORDS;
    for (let w = 0; w < 5; w++) rows[row + w] = rowWord(infoHash, at + 4 * w);
    rows[row + ROW_LAST_ACTIVITY] = 1;
    this.#counters[COUNTER_TORRENTS]++;
    return slot;
  }

  /** The home slot of the row at `slot`. */
  homeOf(slot: number): number {
    return rangeOf(
      hashBytes(this.#k0, this.#k1, this.rowBytes, slot * ROW_WORDS * 4, 20),
      this.capacity,
    );
  }

  /**
   * Removes the peerless row at `slot` by backward shift. Returns the work done, in the
   * cleaner's units: 2 per row looked at.
   */
  delete(slot: number): number {
    const rows = this.rows;
    const capacity = this.capacity;
    let hole = slot;
    let next = slot;
    let work = 0;
    for (;;) {
      if (++next === capacity) next = 0;
      const row = next * ROW_WORDS;
      if (rows[row + ROW_LAST_ACTIVITY] === 0) break;
      const home = this.homeOf(next);
      work += 2;
      if ((next - home + capacity) % capacity >= (next - hole + capacity) % capacity) {
        rows.copyWithin(hole * ROW_WORDS, row, row + ROW_WORDS);
        this.#pools.repointOwners(rows, hole);
        hole = next;
      }
    }
    rows.fill(0, hole * ROW_WORDS, hole * ROW_WORDS + ROW_WORDS);
    this.#counters[COUNTER_TORRENTS]--;
    return work;
  }

  /** Drops the torrent at `slot` with all its peers; returns how many peers it had. */
  drop(slot: number): number {
    const rows = this.rows;
    const counters = this.#counters;
    const row = slot * ROW_WORDS;
    let peers = 0;
    for (let f = 0; f < FAMILY_COUNT; f++) {
      const family = familyAt(f);
      const list = row + listOf(family);
      const meta = rows[list + LIST_META];
      if (meta === 0) continue;
      peers += meta & COUNT_MASK;
      counters[peersCounterOf(family)] -= meta & COUNT_MASK;
      counters[seedersCounterOf(family)] -= rows[list + LIST_SEEDERS];
      this.#pools.free(
        f * CLASS_COUNT + (meta >>> CLASS_SHIFT),
        rows[list + LIST_BLOCK],
        rows,
      );
      rows[list + LIST_BLOCK] = 0;
      rows[list + LIST_META] = 0;
      rows[list + LIST_SEEDERS] = 0;
    }
    this.delete(slot);
    return peers;
  }

  /** Moves every row into a table of `newCapacity` slots. */
  resize(newCapacity: number): void {
    this.resizes++;
    const old = this.rows;
    const oldBytes = this.rowBytes;
    const oldCapacity = this.capacity;
    const rows = allocGrowableWords(newCapacity * ROW_WORDS);
    this.rows = rows;
    this.rowBytes = new Uint8Array(rows.buffer);
    this.capacity = newCapacity;
    this.#growAt = Math.floor(newCapacity * MAX_LOAD);
    // An empty table has nothing to move (the common shrink after everything expired).
    const moving = this.#counters[COUNTER_TORRENTS] > 0 ? oldCapacity : 0;
    for (let from = 0; from < moving; from++) {
      const oldRow = from * ROW_WORDS;
      if (old[oldRow + ROW_LAST_ACTIVITY] === 0) continue;
      let to = rangeOf(hashBytes(this.#k0, this.#k1, oldBytes, oldRow * 4, 20), newCapacity);
      while (rows[to * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) if (++to === newCapacity) to = 0;
      const row = to * ROW_WORDS;
      for (let w = 0; w < ROW_WORDS; w++) rows[row + w] = old[oldRow + w];
      this.#pools.repointOwners(rows, to);
    }
    this.#onResize(oldCapacity, newCapacity);
    // Hand the old generation's pages back now rather than at the next major GC: after a fast
    // fill of 1M torrents it is tens of MB that RSS would otherwise carry for seconds.
    resizeWords(old, 0);
  }

  /**
   * Shrinks a table that is at most SHRINK_LOAD full to fit its torrents (never below
   * MIN_CAPACITY); returns whether it did.
   */
  shrinkIfSparse(): boolean {
    const torrents = this.#counters[COUNTER_TORRENTS];
    if (this.capacity <= MIN_CAPACITY || torrents >= this.capacity * SHRINK_LOAD) return false;
    this.resize(Math.max(MIN_CAPACITY, Math.ceil(torrents / (MAX_LOAD / GROWTH))));
    return true;
  }

  /** Longest probe run in the table (diagnostic). */
  maxProbeLength(): number {
    const rows = this.rows;
    const capacity = this.capacity;
    let longest = 0;
    for (let slot = 0; slot < capacity; slot++) {
      if (rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY] === 0) continue;
      const length = (slot - this.homeOf(slot) + capacity) % capacity + 1;
      if (length > longest) longest = length;
    }
    return longest;
  }

  /**
   * Of EVICTION_SAMPLES random occupied slots other than `exclude`, the least recently active;
   * -1 if no other torrent exists. A sample is the first occupied slot at or after a random slot:
   * a step or two at the table's usual 20-80 % load; longer only in a table left sparse by mass
   * expiry, which the end of the clean pass shrinks.
   */
  oldestSampled(exclude: number, random: () => number): number {
    const torrents = this.#counters[COUNTER_TORRENTS];
    if (torrents === 0 || (torrents === 1 && exclude >= 0)) return -1;
    const rows = this.rows;
    const capacity = this.capacity;
    let oldest = -1;
    let oldestTime = Infinity;
    for (let k = 0; k < EVICTION_SAMPLES; k++) {
      let slot = rangeOf(random() >>> 0, capacity);
      while (rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY] === 0 || slot === exclude) {
        if (++slot === capacity) slot = 0;
      }
      const time = rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY];
      if (time < oldestTime) {
        oldest = slot;
        oldestTime = time;
      }
    }
    return oldest;
  }
}
