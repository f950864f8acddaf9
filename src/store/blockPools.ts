/**
 * The peer-list block pools: one per peer family (IPv4, IPv6, WebSocket) and capacity class (classes.ts), each a
 * growable Uint32Array of same-sized blocks. A block's first word is the slot of the torrent row
 * that owns it. Pools are kept dense: freeing a block moves the pool's last block into the hole and
 * repoints that block's owner row, so pools never fragment and shrink when mostly empty.
 *
 * Giving pool pages back costs ~1 ms per 2 MB here, so it is rationed by an allowance: announces
 * earn TRIM_EARNED words each (up to TRIM_WORDS, 2 MB), a freed block may trim its pool by up to
 * FREE_TRIM_WORDS (256 KB) of it, and each clean step may spend TRIM_WORDS.
 */
import { CLASS_CAPACITY, CLASS_COUNT } from "./classes.ts";
import {
  BLOCK_HEADER_WORDS,
  CLASS_SHIFT,
  FAMILY_COUNT,
  familyAt,
  LIST_BLOCK,
  LIST_META,
  listOf,
  type PeerFamily,
  recordWordsOf,
  ROW_WORDS,
} from "./layout.ts";
import { allocGrowableWords, allocWords, NO_WORDS, resizeWords } from "./memory.ts";

/** Words per block of each pool (family-major: IPv4's classes, then IPv6's, then WebSocket's). */
export const BLOCK_WORDS = Int32Array.from(
  { length: FAMILY_COUNT * CLASS_COUNT },
  (_, i) =>
    BLOCK_HEADER_WORDS +
    CLASS_CAPACITY[i % CLASS_COUNT] * recordWordsOf(familyAt(Math.floor(i / CLASS_COUNT))),
);

/** The index of `family`'s first pool (class 0). */
export function poolBaseOf(family: PeerFamily): number {
  return family === 4 ? 0 : family === 6 ? CLASS_COUNT : 2 * CLASS_COUNT;
}

/** Word offset, in its pool, of the first record of block `block` of pool `poolIndex`. */
export function recordsOf(poolIndex: number, block: number): number {
  return block * BLOCK_WORDS[poolIndex] + BLOCK_HEADER_WORDS;
}

/** Whether the row list at rows[list..] holds block `block` of pool `poolIndex`. */
function ownsBlock(rows: Uint32Array, list: number, poolIndex: number, block: number): boolean {
  if (list + LIST_META >= rows.length) return false;
  const meta = rows[list + LIST_META];
  return meta !== 0 && rows[list + LIST_BLOCK] === block &&
    meta >>> CLASS_SHIFT === poolIndex % CLASS_COUNT;
}

/** A pool that must grow grows by this factor. */
const POOL_GROWTH = 1.5;
/** Pools start at (and, unless empty, are not shrunk below) about this many words. */
const MIN_POOL_WORDS = 4096;
/** The trim allowance's ceiling, and what a clean step may spend. */
export const TRIM_WORDS = 1 << 19;
const FREE_TRIM_WORDS = 1 << 16;
const TRIM_EARNED = 64;

export class BlockPools {
  /** Each pool's words: family f (0 IPv4, 1 IPv6, 2 WebSocket), class c at f * CLASS_COUNT + c. */
  readonly words: Uint32Array[] = Array.from(
    { length: FAMILY_COUNT * CLASS_COUNT },
    () => NO_WORDS,
  );
  /** Blocks in use per pool, same indexing. */
  readonly used: Uint32Array = allocWords(FAMILY_COUNT * CLASS_COUNT);
  /** Pool words that may still be given back now (see the header). */
  trimAllowance = TRIM_WORDS;
  /**
   * During a torrent-table resize, the old table's rows (NO_WORDS otherwise): a block's owner may
   * still be a row there, at the slot its owner word names (torrentTable.ts).
   */
  movingRows: Uint32Array = NO_WORDS;
  /** The pool the next round-robin trim starts at. */
  #trimCursor = 0;

  /** An announce earns a little trim allowance. */
  earnTrim(): void {
    if (this.trimAllowance < TRIM_WORDS) this.trimAllowance += TRIM_EARNED;
  }

  /** Takes a zeroed block from pool `poolIndex` for the row at slot `owner`; returns its index. */
  alloc(poolIndex: number, owner: number): number {
    const blockWords = BLOCK_WORDS[poolIndex];
    const used = this.used[poolIndex];
    let pool = this.words[poolIndex];
    if ((used + 1) * blockWords > pool.length) {
      const blocks = Math.max(
        used + 1,
        Math.ceil((pool.length / blockWords) * POOL_GROWTH),
        Math.floor(MIN_POOL_WORDS / blockWords),
      );
      pool = pool === NO_WORDS
        ? allocGrowableWords(blocks * blockWords)
        : resizeWords(pool, blocks * blockWords);
      this.words[poolIndex] = pool;
    }
    const start = used * blockWords;
    pool[start] = owner;
    // Dense pools leave stale words past their end; records must start empty.
    pool.fill(0, start + 1, start + blockWords);
    this.used[poolIndex] = used + 1;
    return used;
  }

  /**
   * Returns block `block` to pool `poolIndex`, moving the pool's last block into its place and
   * repointing that block's owner in `rows`.
   */
  free(poolIndex: number, block: number, rows: Uint32Array): void {
    const blockWords = BLOCK_WORDS[poolIndex];
    const last = this.used[poolIndex] - 1;
    const pool = this.words[poolIndex];
    if (block !== last) {
      pool.copyWithin(block * blockWords, last * blockWords, last * blockWords + blockWords);
      const owner = pool[block * blockWords];
      const list = owner * ROW_WORDS + listOf(familyAt(Math.floor(poolIndex / CLASS_COUNT)));
      // Only one row owns block `last` of this pool: if the row at the owner's slot of `rows`
      // does not, the owner is still in the old table of a resize.
      const owners = this.movingRows.length === 0 || ownsBlock(rows, list, poolIndex, last)
        ? rows
        : this.movingRows;
      owners[list + LIST_BLOCK] = block;
    }
    this.used[poolIndex] = last;
    if (this.trimAllowance > 0) {
      this.trimAllowance -= this.#trimPool(
        poolIndex,
        Math.min(this.trimAllowance, FREE_TRIM_WORDS),
      );
    }
  }

  /** Points the owner word of the blocks of the row at `slot` (just moved there) at `slot`. */
  repointOwners(rows: Uint32Array, slot: number): void {
    const row = slot * ROW_WORDS;
    for (let f = 0; f < FAMILY_COUNT; f++) {
      const list = row + listOf(familyAt(f));
      const meta = rows[list + LIST_META];
      if (meta === 0) continue;
      const poolIndex = f * CLASS_COUNT + (meta >>> CLASS_SHIFT);
      this.words[poolIndex][rows[list + LIST_BLOCK] * BLOCK_WORDS[poolIndex]] = slot;
    }
  }

  /** Spends the trim allowance on sparse pools, round-robin. */
  trimAll(): void {
    const pools = this.words.length;
    for (let n = 0; n < pools && this.trimAllowance > 0; n++) {
      const poolIndex = this.#trimCursor;
      this.#trimCursor = poolIndex + 1 === pools ? 0 : poolIndex + 1;
      this.trimAllowance -= this.#trimPool(poolIndex, this.trimAllowance);
    }
  }

  /** Whether some pool has pages `trimAll` would give back (not hot: a loop over the pools). */
  hasSlack(): boolean {
    for (let poolIndex = 0; poolIndex < this.words.length; poolIndex++) {
      const length = this.words[poolIndex].length;
      const used = this.used[poolIndex] * BLOCK_WORDS[poolIndex];
      if (used * 4 <= length && length > (used === 0 ? 0 : MIN_POOL_WORDS)) return true;
    }
    return false;
  }

  /** Bytes of every pool and the use counts. */
  get byteSize(): number {
    let bytes = this.used.byteLength;
    for (const pool of this.words) bytes += pool.byteLength;
    return bytes;
  }

  /**
   * Gives back the unused tail of pool `poolIndex` if it is at most a quarter full, down to twice
   * its use, releasing at most `words` words; an empty pool goes all the way (a list growing
   * through the dense classes leaves one behind in each). Returns the words released.
   */
  #trimPool(poolIndex: number, words: number): number {
    const pool = this.words[poolIndex];
    const used = this.used[poolIndex] * BLOCK_WORDS[poolIndex];
    const floor = used === 0 ? 0 : MIN_POOL_WORDS;
    if (used * 4 > pool.length || pool.length <= floor) return 0;
    const length = Math.max(used * 2, floor, pool.length - words);
    const released = pool.length - length;
    resizeWords(pool, length);
    return released;
  }
}
