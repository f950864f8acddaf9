/**
 * Capacity classes of peer-list blocks, in three layouts.
 *
 * Lists of up to 16 peers are scanned linearly: a scan of 16 records is cheaper than hashing the
 * peer or a binary search, and exact-ish sizes (1..8, 10, 12, 14, 16) waste little, which matters
 * because most swarms are small. Lists of 17 to about 2000 peers are dense sorted arrays
 * (denseLists.ts): no load factor, capacities growing by 1.0625x, so a list of n peers occupies
 * n..1.0625n records (and up to one class more after shrinking), about 8.25 bytes an IPv4 peer.
 * Longer lists are open-addressing sets filled to at most 7/8, their capacities growing by 1.25x
 * up to 64k records and by 2x beyond: inserting into a sorted array moves half of it, which past about
 * two thousand records costs more than hashing. Each class has its own pool, so blocks of one pool
 * are all the same size.
 */

const LINEAR_CAPACITIES = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16];
export const LINEAR_CLASSES = LINEAR_CAPACITIES.length;
/**
 * Dense classes go up to the first capacity of at least this many records: a join or a leave
 * moves half the list on average, at most 17 KB for IPv4 (callgrind: a join and a stop in a
 * 1000-peer list cost 7.4k instructions against 10.8k in a set, in a 3500-peer one 21k against
 * 7.7k).
 */
const DENSE_LIMIT = 2048;
/** Largest set capacity; a list that is full at this size stops accepting new peers. */
export const MAX_LIST_CAPACITY = 1 << 24;

const capacities: number[] = [...LINEAR_CAPACITIES];
for (let c = 17; capacities.at(-1)! < DENSE_LIMIT; c = Math.max(c + 1, Math.ceil(c * 1.0625))) {
  capacities.push(c);
}
/** Classes from LINEAR_CLASSES up to this one (excluded) are dense sorted lists; from it, sets. */
export const FIRST_SET_CLASS = capacities.length;
// The sets' capacities as they were before dense lists: from 20 by 1.25x, those whose 7/8
// holds more than the largest dense class.
for (let c = 20; c <= MAX_LIST_CAPACITY; c = c < 65536 ? Math.ceil(c * 1.25) : c * 2) {
  if (Math.floor(c * 7 / 8) > capacities[FIRST_SET_CLASS - 1]) capacities.push(c);
}

export const CLASS_COUNT = capacities.length;
/** Records per block. */
export const CLASS_CAPACITY: Int32Array = Int32Array.from(capacities);
/** Most peers a block of the class may hold. */
export const CLASS_MAX: Int32Array = Int32Array.from(
  capacities,
  (cap, c) => c < FIRST_SET_CLASS ? cap : Math.floor(cap * 7 / 8),
);
/**
 * A list with fewer peers than this moves to a smaller class (where it still has room for one
 * more): a hysteresis of about one class, so alternating joins and leaves do not move it back
 * and forth.
 */
export const CLASS_MIN: Int32Array = Int32Array.from(capacities, (_, c) => {
  if (c === 0) return 1;
  if (c < LINEAR_CLASSES) return capacities[c - 1];
  if (c === LINEAR_CLASSES) return capacities[c - 2];
  return CLASS_MAX[c - 2] + 1;
});

if (CLASS_COUNT > 128) throw new Error("capacity classes do not fit the 7 class bits");

/** The smallest class that can hold `n` peers, or -1 if none can. */
export function classFor(n: number): number {
  for (let c = 0; c < CLASS_COUNT; c++) if (CLASS_MAX[c] >= n) return c;
  return -1;
}
