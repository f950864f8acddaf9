/**
 * The torrent table: one open-addressing table (linear probing, backward-shift deletion, no
 * tombstones) of ROW_WORDS-word rows in a Uint32Array (layout.ts). A row's home slot comes from
 * keyed HalfSipHash-1-3 of its info hash, so outsiders cannot aim many torrents at one probe run.
 * The table grows by GROWTH once over MAX_LOAD; the cleaner shrinks it at the end of a pass.
 *
 * Resizes are incremental, so no announce waits for a whole table to be rehashed (that was 25 ms
 * at 76k torrents, 390 ms at 1.3M). A resize allocates the new table and keeps the old one until
 * every row has moved: each `find` first moves a few rows (MOVE_PER_LOOKUP), each clean step many
 * (`moveRows`), and a lookup that finds its row still in the old table moves it at once, so the
 * slot an announce works on is always in the new table. Inserts go to the new table only. Rows
 * leave the old table downwards from an empty slot, so the row taken is always the last of its
 * probe run and no other row's run is cut (the cleaner's pass walks the same way for the same
 * reason); a row found by a lookup leaves together with the rows after it in its run.
 *
 * While a resize runs, read-only slot walks see one slot space: slots [0, capacity) are the new
 * table's, [capacity, capacity + oldCapacity) the old one's (`rowsOf`, `rowOf`). Walks that pause
 * finish the resize first (`moveRows` in slices) because rows change tables between their slices.
 *
 * Rows move: deletion's backward shift moves later rows of a probe run down into the hole, a
 * resize moves every row. Each move repoints the row's blocks (BlockPools.repointOwners); a block
 * owned by a row still in the old table is found through `BlockPools.movingRows`. The end of a
 * resize is reported to `onResize` (the cleaner rescales its position); its start is counted in
 * `resizes`, so a slot walk that paused can tell its slot numbers went stale.
 *
 * Eviction (whenFull "evict") is Redis-style approximated LRU: `oldestSampled` looks at
 * EVICTION_SAMPLES random occupied slots and names the one announced least recently. No list to
 * keep in order and nothing allocated; the victim is older than a random torrent with probability
 * 16/17 on average, and it is among the newer half of all torrents with probability 2^-16 (every
 * sample would have to be).
 */
import { hash5Words } from "../hash/halfSipHashWords.ts";
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
import { allocGrowableWords, NO_WORDS, resizeWords } from "./memory.ts";
import type { BlockPools } from "./blockPools.ts";

const MIN_CAPACITY = 64;
const MAX_LOAD = 0.8;
const GROWTH = 1.5;
/** `shrinkIfSparse` shrinks a table this empty. */
const SHRINK_LOAD = 0.2;
const EVICTION_SAMPLES = 16;
/**
 * Rows a lookup moves while a resize runs. Growth needs 2 a new torrent to finish before the next
 * one is due (a grown table holds 0.8 of its old size to move and takes 0.4 of it in new torrents
 * before it grows again); 4 leaves a margin, for about a microsecond per lookup during a resize.
 */
const MOVE_PER_LOOKUP = 4;
/** Old-table words a clean step gives back: 8 MB, about 1.3 ms. */
const RELEASE_WORDS = 1 << 21;

/** Info hash bytes b[at .. at+4] as the little-endian row word that holds them, as an int32. */
function rowWord(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24);
}

/**
 * The info hash an announce works on, read once from the caller's bytes: its five row words and
 * its keyed hash, which places its row. Words and hash are int32, so passing them to a call that
 * is not inlined never boxes them. One is reused per call, like PeerKey.
 */
export class TorrentKey {
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;
  w4 = 0;
  hash = 0;
  readonly #k0: number;
  readonly #k1: number;

  constructor(hashKey: Uint32Array) {
    this.#k0 = hashKey[0] | 0;
    this.#k1 = hashKey[1] | 0;
  }

  /** Reads the info hash at infoHash[at .. at+20] and hashes it. */
  read(infoHash: Uint8Array, at: number): void {
    const w0 = rowWord(infoHash, at);
    const w1 = rowWord(infoHash, at + 4);
    const w2 = rowWord(infoHash, at + 8);
    const w3 = rowWord(infoHash, at + 12);
    const w4 = rowWord(infoHash, at + 16);
    this.w0 = w0;
    this.w1 = w1;
    this.w2 = w2;
    this.w3 = w3;
    this.w4 = w4;
    this.hash = hash5Words(this.#k0, this.#k1, w0, w1, w2, w3, w4);
  }
}

export class TorrentTable {
  /** The rows; replaced by a resize, so read it after any call that may insert. */
  rows: Uint32Array;
  capacity: number;
  /** Resizes started so far. */
  resizes = 0;
  #growAt: number;
  /** During a resize: the old table, its size, and rows still in it (else NO_WORDS, 0, 0). */
  #oldRows: Uint32Array = NO_WORDS;
  #oldCapacity = 0;
  #oldCount = 0;
  /** The old slot the resize moves next (downwards), and old slots still to visit. */
  #moveAt = 0;
  #moveLeft = 0;
  /** The last resize's old table, given back in clean steps (NO_WORDS when done). */
  #releasing: Uint32Array = NO_WORDS;
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
  }

  // ---------------------------------------------------------------- lookups and inserts

  /**
   * The slot holding `key`'s info hash, or, when it is not stored, `~slot` of the empty slot where
   * it would go (a negative number). During a resize it first moves a few rows, and a row still in
   * the old table is moved into the new one: the slot returned is always the new table's.
   */
  find(key: TorrentKey): number {
    if (this.#moveLeft > 0) this.moveRows(MOVE_PER_LOOKUP);
    const slot = this.#probe(this.rows, this.capacity, key);
    if (slot >= 0 || this.#oldCount === 0) return slot;
    const old = this.#probe(this.#oldRows, this.#oldCapacity, key);
    return old < 0 ? slot : this.#moveRun(old);
  }

  /**
   * Like `find`, but changes nothing: the slot in the one slot space of the walks (an old-table
   * slot is `capacity + slot`), or -1 when the info hash is not stored.
   */
  locate(key: TorrentKey): number {
    const slot = this.#probe(this.rows, this.capacity, key);
    if (slot >= 0) return slot;
    if (this.#oldCount === 0) return -1;
    const old = this.#probe(this.#oldRows, this.#oldCapacity, key);
    return old < 0 ? -1 : this.capacity + old;
  }

  #probe(rows: Uint32Array, capacity: number, key: TorrentKey): number {
    const w0 = key.w0;
    const w1 = key.w1;
    const w2 = key.w2;
    const w3 = key.w3;
    const w4 = key.w4;
    let slot = rangeOf(key.hash, capacity);
    for (;;) {
      const row = slot * ROW_WORDS;
      if (rows[row + ROW_LAST_ACTIVITY] === 0) return ~slot;
      if (
        (rows[row] | 0) === w0 && (rows[row + 1] | 0) === w1 && (rows[row + 2] | 0) === w2 &&
        (rows[row + 3] | 0) === w3 && (rows[row + 4] | 0) === w4
      ) return slot;
      if (++slot === capacity) slot = 0;
    }
  }

  /**
   * Creates a row for `key`, which `find` just placed at `~found` (growing the table first if it
   * is due), and returns its slot.
   */
  insert(key: TorrentKey, found: number): number {
    if (this.#counters[COUNTER_TORRENTS] + 1 > this.#growAt) {
      this.resize(Math.ceil(this.capacity * GROWTH));
      found = this.find(key);
    }
    const slot = ~found;
    const rows = this.rows;
    const row = slot * ROW_WORDS;
    rows[row] = key.w0;
    rows[row + 1] = key.w1;
    rows[row + 2] = key.w2;
    rows[row + 3] = key.w3;
    rows[row + 4] = key.w4;
    rows[row + ROW_LAST_ACTIVITY] = 1;
    this.#counters[COUNTER_TORRENTS]++;
    return slot;
  }

  /** The keyed hash of the info hash in rows[row..] (row a word offset), as TorrentKey.hash. */
  #rowHash(rows: Uint32Array, row: number): number {
    return hash5Words(
      this.#k0,
      this.#k1,
      rows[row] | 0,
      rows[row + 1] | 0,
      rows[row + 2] | 0,
      rows[row + 3] | 0,
      rows[row + 4] | 0,
    );
  }

  /** The home slot of the row at `slot` (of the new table). */
  homeOf(slot: number): number {
    return rangeOf(this.#rowHash(this.rows, slot * ROW_WORDS), this.capacity);
  }

  // ---------------------------------------------------------------- the one slot space of walks

  /** Slots of the walks' slot space: the new table's, then (during a resize) the old one's. */
  get slotCount(): number {
    return this.capacity + this.#oldCapacity;
  }

  /** The rows array holding slot `slot` of the walks' slot space. */
  rowsOf(slot: number): Uint32Array {
    return slot < this.capacity ? this.rows : this.#oldRows;
  }

  /** The word offset of slot `slot` of the walks' slot space in `rowsOf(slot)`. */
  rowOf(slot: number): number {
    return (slot < this.capacity ? slot : slot - this.capacity) * ROW_WORDS;
  }

  /** A slot of the walks' slot space as a slot of the new table (moving its row there first). */
  currentSlot(slot: number): number {
    return slot < this.capacity ? slot : this.#moveRun(slot - this.capacity);
  }

  // ---------------------------------------------------------------- deletion

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

  // ---------------------------------------------------------------- resizing

  /** Whether a resize is moving rows. */
  get resizing(): boolean {
    return this.#moveLeft > 0;
  }

  /** Rows still in the old table (0 when no resize runs). */
  get oldCount(): number {
    return this.#oldCount;
  }

  /** Bytes of the tables: the new one, the old one during a resize, one being given back. */
  get byteSize(): number {
    return this.rows.byteLength + this.#oldRows.byteLength + this.#releasing.byteLength;
  }

  /** The old table and its size during a resize (NO_WORDS and 0 otherwise), for the checker. */
  get oldRows(): Uint32Array {
    return this.#oldRows;
  }
  get oldCapacity(): number {
    return this.#oldCapacity;
  }

  /**
   * Starts moving every row into a table of `newCapacity` slots (a resize still running is
   * finished first). An empty table is replaced at once.
   */
  resize(newCapacity: number): void {
    if (this.#moveLeft > 0) this.moveRows(Infinity);
    this.resizes++;
    const old = this.rows;
    const oldCapacity = this.capacity;
    this.rows = allocGrowableWords(newCapacity * ROW_WORDS);
    this.capacity = newCapacity;
    this.#growAt = Math.floor(newCapacity * MAX_LOAD);
    const torrents = this.#counters[COUNTER_TORRENTS];
    if (torrents === 0) {
      // Nothing to move (the common shrink after everything expired); a table that held no
      // torrent for a whole pass has few pages to give back.
      resizeWords(old, 0);
      this.#onResize(oldCapacity, newCapacity);
      return;
    }
    this.#oldRows = old;
    this.#oldCapacity = oldCapacity;
    this.#oldCount = torrents;
    this.#pools.movingRows = old;
    // Downwards from just below an empty slot (there always is one: the load stays below 1).
    let empty = 0;
    while (old[empty * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) empty++;
    this.#moveAt = empty === 0 ? oldCapacity - 1 : empty - 1;
    this.#moveLeft = oldCapacity - 1;
  }

  /**
   * Moves up to `budget` rows of a running resize (looking at no more than 4 * budget old slots)
   * and ends the resize when the old table is empty. Returns the rows moved.
   */
  moveRows(budget: number): number {
    const old = this.#oldRows;
    const oldCapacity = this.#oldCapacity;
    let slots = budget * 4;
    let moved = 0;
    while (this.#moveLeft > 0 && moved < budget && slots > 0) {
      const slot = this.#moveAt;
      if (old[slot * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) {
        this.#moveRow(slot);
        moved++;
      }
      slots--;
      this.#moveLeft--;
      this.#moveAt = slot === 0 ? oldCapacity - 1 : slot - 1;
      // Every row may have left early (lookups move runs): nothing is left to look at.
      if (this.#oldCount === 0) this.#moveLeft = 0;
    }
    if (this.#moveLeft === 0) this.#endResize();
    return moved;
  }

  /**
   * Moves the old-table row at `oldSlot` into the new table, with every row after it in its probe
   * run (last first, so no run is cut); returns its new slot.
   */
  #moveRun(oldSlot: number): number {
    const old = this.#oldRows;
    const oldCapacity = this.#oldCapacity;
    let last = oldSlot;
    for (;;) {
      const next = last + 1 === oldCapacity ? 0 : last + 1;
      if (old[next * ROW_WORDS + ROW_LAST_ACTIVITY] === 0) break;
      last = next;
    }
    for (; last !== oldSlot; last = last === 0 ? oldCapacity - 1 : last - 1) this.#moveRow(last);
    const slot = this.#moveRow(oldSlot);
    if (this.#oldCount === 0) {
      this.#moveLeft = 0;
      this.#endResize();
    }
    return slot;
  }

  /** Moves the old-table row at `oldSlot` (the last of its run) into the new table. */
  #moveRow(oldSlot: number): number {
    const old = this.#oldRows;
    const rows = this.rows;
    const capacity = this.capacity;
    const oldRow = oldSlot * ROW_WORDS;
    let to = rangeOf(this.#rowHash(old, oldRow), capacity);
    while (rows[to * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) if (++to === capacity) to = 0;
    const row = to * ROW_WORDS;
    for (let w = 0; w < ROW_WORDS; w++) rows[row + w] = old[oldRow + w];
    old.fill(0, oldRow, oldRow + ROW_WORDS);
    this.#pools.repointOwners(rows, to);
    this.#oldCount--;
    return to;
  }

  #endResize(): void {
    const oldCapacity = this.#oldCapacity;
    // Hand the old table's pages back soon rather than at the next major GC (after a fast fill
    // of 1M torrents it is tens of MB), but in clean steps (`releaseStep`): giving back costs
    // about 0.15 ms a MB here, 17 ms for the 126 MB table of 1.9M torrents.
    if (this.#releasing.length > 0) resizeWords(this.#releasing, 0);
    this.#releasing = this.#oldRows;
    this.#oldRows = NO_WORDS;
    this.#oldCapacity = 0;
    this.#oldCount = 0;
    this.#pools.movingRows = NO_WORDS;
    this.#onResize(oldCapacity, this.capacity);
  }

  /** Whether a resize's old table is still being given back. */
  get releasing(): boolean {
    return this.#releasing.length > 0;
  }

  /**
   * Gives back up to RELEASE_WORDS of the last resize's old table (a clean step calls this);
   * returns whether some is left. `all` gives back everything now.
   */
  releaseStep(all = false): boolean {
    const releasing = this.#releasing;
    if (releasing.length === 0) return false;
    const length = all ? 0 : Math.max(0, releasing.length - RELEASE_WORDS);
    resizeWords(releasing, length);
    if (length === 0) this.#releasing = NO_WORDS;
    return length > 0;
  }

  /**
   * Shrinks a table that is at most SHRINK_LOAD full to fit its torrents (never below
   * MIN_CAPACITY); returns whether it started to.
   */
  shrinkIfSparse(): boolean {
    if (!this.sparse) return false;
    const torrents = this.#counters[COUNTER_TORRENTS];
    this.resize(Math.max(MIN_CAPACITY, Math.ceil(torrents / (MAX_LOAD / GROWTH))));
    return true;
  }

  /** Whether the table is sparse enough for `shrinkIfSparse` to shrink it. */
  get sparse(): boolean {
    return this.#moveLeft === 0 && this.capacity > MIN_CAPACITY &&
      this.#counters[COUNTER_TORRENTS] < this.capacity * SHRINK_LOAD;
  }

  // ---------------------------------------------------------------- diagnostics and eviction

  /** Longest probe run in the table (in either table during a resize; diagnostic). */
  maxProbeLength(): number {
    return Math.max(
      this.#maxProbeIn(this.rows, this.capacity),
      this.#maxProbeIn(this.#oldRows, this.#oldCapacity),
    );
  }

  #maxProbeIn(rows: Uint32Array, capacity: number): number {
    let longest = 0;
    for (let slot = 0; slot < capacity; slot++) {
      const row = slot * ROW_WORDS;
      if (rows[row + ROW_LAST_ACTIVITY] === 0) continue;
      const home = rangeOf(this.#rowHash(rows, row), capacity);
      const length = (slot - home + capacity) % capacity + 1;
      if (length > longest) longest = length;
    }
    return longest;
  }

  /**
   * Of EVICTION_SAMPLES random occupied slots other than `exclude` (a new-table slot), the least
   * recently active, as a new-table slot; -1 if no other torrent exists. A sample is the first
   * occupied slot at or after a random slot: a step or two at the table's usual 20-80 % load;
   * longer only in a table left sparse by mass expiry, which the end of the clean pass shrinks.
   * During a resize each sample is taken from the old or the new table in proportion to the rows
   * each holds, and a victim in the old table is moved to the new one.
   */
  oldestSampled(exclude: number, random: () => number): number {
    const torrents = this.#counters[COUNTER_TORRENTS];
    if (torrents === 0 || (torrents === 1 && exclude >= 0)) return -1;
    const oldCount = this.#oldCount;
    // Rows in the new table other than `exclude`: if none, every sample is an old one.
    const newOthers = torrents - oldCount - (exclude >= 0 ? 1 : 0);
    let oldest = -1;
    let oldestInOld = false;
    let oldestTime = Infinity;
    for (let k = 0; k < EVICTION_SAMPLES; k++) {
      const inOld = oldCount > 0 &&
        (newOthers === 0 || rangeOf(random(), oldCount + newOthers) < oldCount);
      const rows = inOld ? this.#oldRows : this.rows;
      const capacity = inOld ? this.#oldCapacity : this.capacity;
      const skip = inOld ? -1 : exclude;
      let slot = rangeOf(random(), capacity);
      while (rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY] === 0 || slot === skip) {
        if (++slot === capacity) slot = 0;
      }
      const time = rows[slot * ROW_WORDS + ROW_LAST_ACTIVITY];
      if (time < oldestTime) {
        oldest = slot;
        oldestInOld = inOld;
        oldestTime = time;
      }
    }
    return oldestInOld ? this.#moveRun(oldest) : oldest;
  }
}
