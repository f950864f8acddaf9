/**
 * Dense sorted peer lists: the layout of lists of 17 to about 2000 peers (classes.ts's dense
 * classes). A list's `count` records fill the first `count` places of its block with no gaps,
 * sorted by (address as unsigned words, port), so a peer is found by binary search (no hashing,
 * nothing an attacker can aim at), inserted and removed by moving the records after it one place
 * (a memmove of at most 2102 records: 17 KB for IPv4), and expired in one compacting pass.
 * With no load factor a list costs its 8 (IPv4) or 20 (IPv6) bytes a peer plus the class's
 * slack (classes grow 1.0625x): opentracker's sorted vectors, without their 2x growth.
 *
 * What this file relies on, and nothing else (so that a new peer family with records of the same
 * shape works unchanged): a record is `recordWords` u32 words in a Uint32Array, its key words
 * first (big-endian address words; any number of them) and its tail last, `port << PORT_SHIFT |
 * flags`, never 0 for a stored peer; a key is a `SortKey` (address0..address3 as int32, and the port).
 */
import { PORT_SHIFT, RECORD_WORDS_V4 } from "./layout.ts";

/** A peer's key as peerKey.ts's PeerKey holds it: address words as int32, and the port. */
export interface SortKey {
  readonly address0: number;
  readonly address1: number;
  readonly address2: number;
  readonly address3: number;
  readonly port: number;
}

/** XORed into a u32 word, makes its unsigned order the signed order of the int32 result. */
const SIGN = 0x80000000 | 0;

/** Orders the record at pool[record..] against `key`: negative, 0 (the same peer) or positive. */
function compareToKey(
  pool: Uint32Array,
  record: number,
  recordWords: number,
  key: SortKey,
): number {
  let a = pool[record] ^ SIGN;
  let k = key.address0 ^ SIGN;
  if (a !== k) return a < k ? -1 : 1;
  if (recordWords !== RECORD_WORDS_V4) {
    a = pool[record + 1] ^ SIGN;
    k = key.address1 ^ SIGN;
    if (a !== k) return a < k ? -1 : 1;
    a = pool[record + 2] ^ SIGN;
    k = key.address2 ^ SIGN;
    if (a !== k) return a < k ? -1 : 1;
    a = pool[record + 3] ^ SIGN;
    k = key.address3 ^ SIGN;
    if (a !== k) return a < k ? -1 : 1;
  }
  return (pool[record + recordWords - 1] >>> PORT_SHIFT) - key.port;
}

/** Orders two records (of `a` at `ra` and `b` at `rb`) by key: negative, 0 or positive. */
function compareRecords(
  a: Uint32Array,
  ra: number,
  b: Uint32Array,
  rb: number,
  recordWords: number,
): number {
  const keyWords = recordWords - 1;
  for (let w = 0; w < keyWords; w++) {
    const x = a[ra + w] ^ SIGN;
    const y = b[rb + w] ^ SIGN;
    if (x !== y) return x < y ? -1 : 1;
  }
  return (a[ra + keyWords] >>> PORT_SHIFT) - (b[rb + keyWords] >>> PORT_SHIFT);
}

/**
 * The index of `key` among the `count` sorted records at pool[records..], or `~index` of where it
 * would be inserted.
 */
export function findSorted(
  pool: Uint32Array,
  records: number,
  count: number,
  recordWords: number,
  key: SortKey,
): number {
  let lo = 0;
  let hi = count;
  if (recordWords === RECORD_WORDS_V4) {
    // The IPv4 case inline: one address word and the port.
    const address = key.address0 ^ SIGN;
    const port = key.port;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const record = records + 2 * mid;
      const a = pool[record] ^ SIGN;
      if (a < address || (a === address && pool[record + 1] >>> PORT_SHIFT < port)) lo = mid + 1;
      else hi = mid;
    }
    if (lo < count) {
      const record = records + 2 * lo;
      if ((pool[record] ^ SIGN) === address && pool[record + 1] >>> PORT_SHIFT === port) return lo;
    }
    return ~lo;
  }
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareToKey(pool, records + mid * recordWords, recordWords, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < count && compareToKey(pool, records + lo * recordWords, recordWords, key) === 0) {
    return lo;
  }
  return ~lo;
}

/** Moves records [i, count) one place up, leaving place i to be written (count < capacity). */
export function openGap(
  pool: Uint32Array,
  records: number,
  count: number,
  recordWords: number,
  i: number,
): void {
  if (i < count) {
    pool.copyWithin(
      records + (i + 1) * recordWords,
      records + i * recordWords,
      records + count * recordWords,
    );
  }
}

/** Removes record i of `count`: the records after it move one place down, the last is zeroed. */
export function closeGap(
  pool: Uint32Array,
  records: number,
  count: number,
  recordWords: number,
  i: number,
): void {
  const end = records + count * recordWords;
  pool.copyWithin(records + i * recordWords, records + (i + 1) * recordWords, end);
  pool.fill(0, end - recordWords, end);
}

/**
 * Sorts the `count` records at pool[records..] (a list just moved into a dense class from an
 * unsorted one: a short linear list or a set). Bottom-up merge sort through `scratch`, which must
 * hold count * recordWords words; O(n log n) for the 2000 records a dense list holds at most.
 */
export function sortRecords(
  pool: Uint32Array,
  records: number,
  count: number,
  recordWords: number,
  scratch: Uint32Array,
): void {
  let source = pool;
  let sourceAt = records;
  let target = scratch;
  let targetAt = 0;
  for (let width = 1; width < count; width *= 2) {
    for (let lo = 0; lo < count; lo += 2 * width) {
      const mid = Math.min(lo + width, count);
      const hi = Math.min(lo + 2 * width, count);
      let i = lo;
      let j = mid;
      let out = targetAt + lo * recordWords;
      while (i < mid || j < hi) {
        const takeLeft = j >= hi ||
          (i < mid && compareRecords(
                source,
                sourceAt + i * recordWords,
                source,
                sourceAt + j * recordWords,
                recordWords,
              ) <= 0);
        const from = sourceAt + (takeLeft ? i++ : j++) * recordWords;
        for (let w = 0; w < recordWords; w++) target[out + w] = source[from + w];
        out += recordWords;
      }
    }
    const swap = source;
    const swapAt = sourceAt;
    source = target;
    sourceAt = targetAt;
    target = swap;
    targetAt = swapAt;
  }
  if (source !== pool) pool.set(source.subarray(sourceAt, sourceAt + count * recordWords), records);
}

/** Whether the `count` records at pool[records..] ascend strictly by key (invariant checks). */
export function isSorted(
  pool: Uint32Array,
  records: number,
  count: number,
  recordWords: number,
): boolean {
  for (let i = 1; i < count; i++) {
    const a = records + (i - 1) * recordWords;
    if (compareRecords(pool, a, pool, a + recordWords, recordWords) >= 0) return false;
  }
  return true;
}
