/**
 * The peer lists of a torrent, one per peer family (IPv4, IPv6, WebSocket: layout.ts), each in
 * one block of its family's pool of the list's capacity class (classes.ts). Lists of up to 16
 * peers are scanned linearly; lists of up to about 2000 are dense sorted arrays (denseLists.ts);
 * longer ones are open-addressing sets (linear probing, backward-shift deletion) keyed by a keyed
 * hash of (address, port), so a 100k-peer swarm still finds a peer in O(1). A list that outgrows
 * its block or shrinks well below it moves to a block of the class that fits (`#moveList`).
 * Linear and dense lists keep their records in the first `count` places of the block. WebSocket
 * records have the IPv4 shape (entry number, generation as port), so they use all three layouts
 * unchanged: denseLists.ts relies only on that shape.
 *
 * A row's list fields (LIST_BLOCK, LIST_META, LIST_SEEDERS) sit at `row + familyList`, where
 * familyList is ROW_V4, ROW_V6 or ROW_WS; the family's pools start at index `familyPool`
 * (`poolBaseOf`); its records are `recordWords` long (RECORD_WORDS_V4, or _V6 for IPv6).
 *
 * The peer being worked on is a `PeerKey` (peerKey.ts), read once per call from the caller's bytes
 * and passed to every function that needs it; its keyed hash is computed at most once per key.
 */
import { hash2Words, hash4Words } from "../hash/halfSipHashWords.ts";
import {
  CLASS_CAPACITY,
  CLASS_MAX,
  CLASS_MIN,
  classFor,
  FIRST_SET_CLASS,
  LINEAR_CLASSES,
} from "./classes.ts";
import { closeGap, findSorted, openGap, sortRecords } from "./denseLists.ts";
import {
  CLASS_SHIFT,
  COUNT_MASK,
  LIST_BLOCK,
  LIST_META,
  LIST_SEEDERS,
  listOf,
  type PeerFamily,
  peersCounterOf,
  PORT_SHIFT,
  rangeOf,
  RECORD_WORDS_V4,
  RECORD_WORDS_V6,
  recordWordsOf,
  ROW_DOWNLOADED,
  ROW_WORDS,
  SEEDER_BIT,
  seedersCounterOf,
  TIME_MASK,
} from "./layout.ts";
import { type BlockPools, poolBaseOf, recordsOf } from "./blockPools.ts";
import type { TorrentTable } from "./torrentTable.ts";
import type { PeerKey } from "./peerKey.ts";

/** What `upsert` does with a stored record younger than the one it is given. */
export const OLDER_REPLACES = 0;
export const OLDER_SKIPPED = 1;
export const OLDER_KEEPS_STAMP = 2;

/** Work units (the cleaner's budget) a removal costs beyond the records it looks at. */
export const DELETE_WORK = 16;

/**
 * Where `upsert` reports the peer's record tail before it wrote (see layout.ts: port, seeder
 * flag, 15-bit stamp), or 0 when the list did not hold the peer: the cluster sync decides from it
 * whether an announce changed anything (announceResult.ts `previousAge`, `previousSeeder`).
 */
export interface UpsertReport {
  previous: number;
}

/** Called for each stored peer: its address (reused bytes), port, seeder flag and last time seen. */
export type PeerVisitor = (
  address: Uint8Array,
  addressOffset: number,
  port: number,
  seeder: boolean,
  lastSeen: number,
) => void;

export class PeerSets {
  readonly #table: TorrentTable;
  readonly #pools: BlockPools;
  /** `#pools.words`, the same array for the store's life. */
  readonly #poolWords: Uint32Array[];
  readonly #counters: Uint32Array;
  readonly #k0: number;
  readonly #k1: number;
  /** Room to sort a list moved into a dense class (allocated at the first such move). */
  #sortScratch: Uint32Array = new Uint32Array(0);
  readonly #report: UpsertReport;

  constructor(
    table: TorrentTable,
    pools: BlockPools,
    counters: Uint32Array,
    hashKey: Uint32Array,
    report: UpsertReport,
  ) {
    this.#report = report;
    this.#table = table;
    this.#pools = pools;
    this.#poolWords = pools.words;
    this.#counters = counters;
    this.#k0 = hashKey[0] | 0;
    this.#k1 = hashKey[1] | 0;
  }

  /**
   * The index of `key` in a list of `count` peers of class `sizeClass` whose records start at
   * pool[records..], or, when it is not there, `~index` of where it would go: the end of a linear
   * list, its place in a dense one, the first empty record of its probe run in a set (a negative
   * number).
   */
  find(
    pool: Uint32Array,
    records: number,
    sizeClass: number,
    count: number,
    recordWords: number,
    key: PeerKey,
  ): number {
    // The key's first word and port in locals: the scans compare them to every record.
    const address0 = key.address0;
    const port = key.port;
    if (sizeClass < LINEAR_CLASSES) {
      for (let i = 0, record = records; i < count; i++, record += recordWords) {
        if (
          (pool[record] | 0) === address0 &&
          pool[record + recordWords - 1] >>> PORT_SHIFT === port &&
          (recordWords === RECORD_WORDS_V4 || key.sameV6Tail(pool, record))
        ) return i;
      }
      return ~count;
    }
    if (sizeClass < FIRST_SET_CLASS) return findSorted(pool, records, count, recordWords, key);
    const capacity = CLASS_CAPACITY[sizeClass];
    let i = rangeOf(key.hash(recordWords), capacity);
    for (;;) {
      const record = records + i * recordWords;
      const tail = pool[record + recordWords - 1];
      if (tail === 0) return ~i;
      if (
        (pool[record] | 0) === address0 && tail >>> PORT_SHIFT === port &&
        (recordWords === RECORD_WORDS_V4 || key.sameV6Tail(pool, record))
      ) return i;
      if (++i === capacity) i = 0;
    }
  }

  /** Whether `key` is stored in the list of `family` of the torrent at `slot`. */
  contains(slot: number, family: PeerFamily, key: PeerKey): boolean {
    const rows = this.#table.rows;
    const list = slot * ROW_WORDS + listOf(family);
    const meta = rows[list + LIST_META];
    if (meta === 0) return false;
    const sizeClass = meta >>> CLASS_SHIFT;
    const poolIndex = poolBaseOf(family) + sizeClass;
    const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
    const recordWords = recordWordsOf(family);
    const pool = this.#poolWords[poolIndex];
    return this.find(pool, records, sizeClass, meta & COUNT_MASK, recordWords, key) >= 0;
  }

  /**
   * Inserts or refreshes `key` in the torrent at `slot` with the tail fields given (`stamp` is
   * the 15-bit time); counts a completion when `completed` turns a leecher into a seeder. With
   * `older` saying what a stored record younger than `stamp` (ages taken at `latest`) does:
   * OLDER_REPLACES it (announces), OLDER_SKIPPED: it is kept as it is (restores), OLDER_KEEPS_STAMP:
   * it keeps its stamp and takes the new seeder flag (refreshes learned from the cluster).
   * Reports the record's tail before the call (0 for a new peer) in the report given at
   * construction. Returns the peer's record index, or -1 if its list is at the largest class and full (the peer
   * is then not stored).
   */
  upsert(
    slot: number,
    family: PeerFamily,
    key: PeerKey,
    seeder: boolean,
    completed: boolean,
    stamp: number,
    older: number,
    latest: number,
  ): number {
    const poolWords = this.#poolWords;
    const familyList = listOf(family);
    const familyPool = poolBaseOf(family);
    const recordWords = recordWordsOf(family);
    const pools = this.#pools;
    const rows = this.#table.rows;
    const row = slot * ROW_WORDS;
    const list = row + familyList;
    let tail = ((key.port << PORT_SHIFT) | (seeder ? SEEDER_BIT : 0) | stamp) >>> 0;
    const meta = rows[list + LIST_META];
    let count = meta & COUNT_MASK;
    let sizeClass = meta >>> CLASS_SHIFT;
    let i: number;
    if (count === 0) {
      sizeClass = 0;
      rows[list + LIST_BLOCK] = pools.alloc(familyPool, slot);
      i = 0;
    } else {
      let poolIndex = familyPool + sizeClass;
      let pool = poolWords[poolIndex];
      let records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
      const found = this.find(pool, records, sizeClass, count, recordWords, key);
      if (found >= 0) {
        const tailAt = records + found * recordWords + recordWords - 1;
        const old = pool[tailAt];
        this.#report.previous = old;
        if (
          older !== OLDER_REPLACES && ((latest - old) & TIME_MASK) < ((latest - stamp) & TIME_MASK)
        ) {
          if (older === OLDER_SKIPPED) return found;
          tail = ((tail & ~TIME_MASK) | (old & TIME_MASK)) >>> 0;
        }
        pool[tailAt] = tail;
        const wasSeeder = (old & SEEDER_BIT) !== 0;
        if (wasSeeder !== seeder) this.addSeeders(list, family, seeder ? 1 : -1);
        if (completed && seeder && !wasSeeder) rows[row + ROW_DOWNLOADED]++;
        if (count >= CLASS_MIN[sizeClass]) return found;
        // A shrink that clean() left to announces (huge lists); moving invalidates the index.
        this.#moveList(slot, familyList, familyPool, recordWords, classFor(count + 1));
        sizeClass = rows[list + LIST_META] >>> CLASS_SHIFT;
        poolIndex = familyPool + sizeClass;
        records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
        return this.find(poolWords[poolIndex], records, sizeClass, count, recordWords, key);
      }
      i = ~found;
      if (count >= CLASS_MAX[sizeClass]) {
        const to = classFor(count + 1);
        if (to < 0) {
          this.#report.previous = 0;
          return -1;
        }
        this.#moveList(slot, familyList, familyPool, recordWords, to);
        sizeClass = to;
        poolIndex = familyPool + sizeClass;
        pool = poolWords[poolIndex];
        records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
        if (sizeClass < LINEAR_CLASSES) {
          i = count;
        } else if (sizeClass < FIRST_SET_CLASS) {
          // Its place again: a list that was linear has just been sorted.
          i = ~findSorted(pool, records, count, recordWords, key);
        } else {
          const capacity = CLASS_CAPACITY[sizeClass];
          i = rangeOf(key.hash(recordWords), capacity);
          while (pool[records + i * recordWords + recordWords - 1] !== 0) {
            if (++i === capacity) i = 0;
          }
        }
      }
    }
    this.#report.previous = 0;
    const poolIndex = familyPool + sizeClass;
    const pool = poolWords[poolIndex];
    const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
    if (sizeClass >= LINEAR_CLASSES && sizeClass < FIRST_SET_CLASS) {
      openGap(pool, records, count, recordWords, i);
    }
    const record = records + i * recordWords;
    pool[record] = key.address0;
    if (recordWords === RECORD_WORDS_V6) {
      pool[record + 1] = key.address1;
      pool[record + 2] = key.address2;
      pool[record + 3] = key.address3;
    }
    pool[record + recordWords - 1] = tail;
    count++;
    rows[list + LIST_META] = (count | (sizeClass << CLASS_SHIFT)) >>> 0;
    this.#counters[peersCounterOf(family)]++;
    if (seeder) {
      this.addSeeders(list, family, 1);
      if (completed) rows[row + ROW_DOWNLOADED]++;
    }
    return i;
  }

  /** Removes `key` from the list of `family` of the torrent at `slot`, if it is there. */
  remove(slot: number, family: PeerFamily, key: PeerKey): void {
    const familyList = listOf(family);
    const familyPool = poolBaseOf(family);
    const recordWords = recordWordsOf(family);
    const rows = this.#table.rows;
    const list = slot * ROW_WORDS + familyList;
    const meta = rows[list + LIST_META];
    if (meta === 0) return;
    const count = meta & COUNT_MASK;
    const sizeClass = meta >>> CLASS_SHIFT;
    const poolIndex = familyPool + sizeClass;
    const pool = this.#poolWords[poolIndex];
    const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
    const i = this.find(pool, records, sizeClass, count, recordWords, key);
    if (i < 0) return;
    if ((pool[records + i * recordWords + recordWords - 1] & SEEDER_BIT) !== 0) {
      this.addSeeders(list, family, -1);
    }
    this.removeRecord(pool, records, sizeClass, count, recordWords, i);
    this.#counters[peersCounterOf(family)]--;
    this.listShrunk(slot, familyList, familyPool, recordWords, count - 1, sizeClass, Infinity);
  }

  /**
   * Deletes record `i` of a list (linear: the last record fills the hole; dense: the records after
   * it move down; set: backward shift). Returns the work done in the cleaner's units: one per set
   * record looked at, one per 16 dense records moved.
   */
  removeRecord(
    pool: Uint32Array,
    records: number,
    sizeClass: number,
    count: number,
    recordWords: number,
    i: number,
  ): number {
    if (sizeClass < LINEAR_CLASSES) {
      const last = records + (count - 1) * recordWords;
      const record = records + i * recordWords;
      for (let w = 0; w < recordWords; w++) {
        pool[record + w] = pool[last + w];
        pool[last + w] = 0;
      }
      return 0;
    }
    if (sizeClass < FIRST_SET_CLASS) {
      closeGap(pool, records, count, recordWords, i);
      return (count - i) >>> 4;
    }
    const capacity = CLASS_CAPACITY[sizeClass];
    let hole = i;
    let next = i;
    let work = 0;
    for (;;) {
      if (++next === capacity) next = 0;
      const record = records + next * recordWords;
      if (pool[record + recordWords - 1] === 0) break;
      const home = rangeOf(this.#recordHash(pool, record, recordWords), capacity);
      if ((next - home + capacity) % capacity >= (next - hole + capacity) % capacity) {
        pool.copyWithin(records + hole * recordWords, record, record + recordWords);
        hole = next;
      }
      work += 1;
    }
    pool.fill(0, records + hole * recordWords, records + hole * recordWords + recordWords);
    return work;
  }

  /**
   * Stores a list's new `count` after removals: frees the block when empty, moves the list to a
   * smaller class when sparse (unless the rebuild would exceed `rebuildLimit` records). Returns
   * the work done in the cleaner's units.
   */
  listShrunk(
    slot: number,
    familyList: number,
    familyPool: number,
    recordWords: number,
    count: number,
    sizeClass: number,
    rebuildLimit: number,
  ): number {
    const rows = this.#table.rows;
    const list = slot * ROW_WORDS + familyList;
    if (count === 0) {
      this.#pools.free(familyPool + sizeClass, rows[list + LIST_BLOCK], rows);
      rows[list + LIST_BLOCK] = 0;
      rows[list + LIST_META] = 0;
      rows[list + LIST_SEEDERS] = 0;
      return 0;
    }
    rows[list + LIST_META] = (count | (sizeClass << CLASS_SHIFT)) >>> 0;
    if (count >= CLASS_MIN[sizeClass] || count > rebuildLimit) return 0;
    this.#moveList(slot, familyList, familyPool, recordWords, classFor(count + 1));
    return count * DELETE_WORK;
  }

  /**
   * Calls fn for each stored peer of the list of `family` of the torrent row at rows[row..] (a
   * row of either table during a resize); the address bytes are `scratch`, reused, and lastSeen
   * is rebuilt from the 15-bit stamp as the latest time at or before `latest` that has it. fn must
   * not modify the store.
   */
  forEach(
    rows: Uint32Array,
    row: number,
    family: PeerFamily,
    latest: number,
    scratch: Uint8Array,
    fn: PeerVisitor,
  ): void {
    const list = row + listOf(family);
    const meta = rows[list + LIST_META];
    if (meta === 0) return;
    const count = meta & COUNT_MASK;
    const sizeClass = meta >>> CLASS_SHIFT;
    const poolIndex = poolBaseOf(family) + sizeClass;
    const pool = this.#poolWords[poolIndex];
    const recordWords = recordWordsOf(family);
    const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
    const slots = sizeClass < FIRST_SET_CLASS ? count : CLASS_CAPACITY[sizeClass];
    for (let i = 0; i < slots; i++) {
      const record = records + i * recordWords;
      const tail = pool[record + recordWords - 1];
      if (tail === 0) continue;
      for (let w = 0; w < recordWords - 1; w++) {
        const word = pool[record + w];
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

  /** Adds `delta` to the seeders of the list at rows[list..] and to the store's count. */
  addSeeders(list: number, family: PeerFamily, delta: number): void {
    this.#table.rows[list + LIST_SEEDERS] += delta;
    this.#counters[seedersCounterOf(family)] += delta;
  }

  /** The keyed hash of the stored record at pool[record..], equal to its peer's PeerKey.hash. */
  #recordHash(pool: Uint32Array, record: number, recordWords: number): number {
    const port = pool[record + recordWords - 1] >>> PORT_SHIFT;
    const k0 = this.#k0;
    const k1 = this.#k1;
    // Words as int32 (`| 0`): a uint32 argument above 2^31 would be boxed.
    if (recordWords === RECORD_WORDS_V4) return hash2Words(k0, k1, pool[record] | 0, port);
    const a = hash4Words(
      k0,
      k1,
      pool[record] | 0,
      pool[record + 1] | 0,
      pool[record + 2] | 0,
      pool[record + 3] | 0,
    );
    return hash2Words(k0, k1, a, port);
  }

  /** Moves the list of the torrent at `slot` at `familyList` into a block of class `to`. */
  #moveList(
    slot: number,
    familyList: number,
    familyPool: number,
    recordWords: number,
    to: number,
  ): void {
    const poolWords = this.#poolWords;
    const pools = this.#pools;
    const list = slot * ROW_WORDS + familyList;
    const rows = this.#table.rows;
    const meta = rows[list + LIST_META];
    const count = meta & COUNT_MASK;
    const from = meta >>> CLASS_SHIFT;
    const fromPool = familyPool + from;
    const toPool = familyPool + to;
    const fromBlock = rows[list + LIST_BLOCK];
    const toBlock = pools.alloc(toPool, slot);
    const source = poolWords[fromPool];
    const target = poolWords[toPool];
    const sourceRecords = recordsOf(fromPool, fromBlock);
    const targetRecords = recordsOf(toPool, toBlock);
    const slots = from < FIRST_SET_CLASS ? count : CLASS_CAPACITY[from];
    const toCapacity = CLASS_CAPACITY[to];
    const toSet = to >= FIRST_SET_CLASS;
    let next = 0;
    for (let i = 0; i < slots; i++) {
      const record = sourceRecords + i * recordWords;
      if (source[record + recordWords - 1] === 0) continue;
      let at: number;
      if (toSet) {
        let j = rangeOf(this.#recordHash(source, record, recordWords), toCapacity);
        while (target[targetRecords + j * recordWords + recordWords - 1] !== 0) {
          if (++j === toCapacity) j = 0;
        }
        at = targetRecords + j * recordWords;
      } else {
        at = targetRecords + next++ * recordWords;
      }
      for (let w = 0; w < recordWords; w++) target[at + w] = source[record + w];
    }
    // Copied in order, a dense list stays sorted; one that was linear or a set is sorted now.
    const fromDense = from >= LINEAR_CLASSES && from < FIRST_SET_CLASS;
    if (!toSet && to >= LINEAR_CLASSES && !fromDense) {
      if (this.#sortScratch.length < count * recordWords) {
        this.#sortScratch = new Uint32Array(CLASS_CAPACITY[FIRST_SET_CLASS - 1] * recordWords);
      }
      sortRecords(target, targetRecords, count, recordWords, this.#sortScratch);
    }
    rows[list + LIST_BLOCK] = toBlock;
    rows[list + LIST_META] = (count | (to << CLASS_SHIFT)) >>> 0;
    pools.free(fromPool, fromBlock, rows);
  }
}
