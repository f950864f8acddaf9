/**
 * Capacity classes of peer-list blocks.
 *
 * Lists of up to 16 peers are scanned linearly: a scan of 16 records is cheaper than hashing the
 * peer, and exact-ish sizes (1..8, 10, 12, 14, 16) waste little, which matters because most
 * swarms are small. Larger lists are open-addressing sets filled to at most 7/8, their
 * capacities growing by 1.25x up to 64k records and by 2x beyond, so a list of n peers occupies
 * about 1.15n..1.8n records. Each class has its own pool, so blocks of one pool are all the same
 * size.
 */

const LINEAR_CAPACITIES = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16];
export const LINEAR_CLASSES = LINEAR_CAPACITIES.length;
/** Largest set capacity; a list that is full at this size stops accepting new peers. */
export const MAX_LIST_CAPACITY = 1 << 24;

const capacities: number[] = [...LINEAR_CAPACITIES];
for (let c = 20; c <= MAX_LIST_CAPACITY; c = c < 65536 ? Math.ceil(c * 1.25) : c * 2) {
  capacities.push(c);
}

export const CLASS_COUNT = capacities.length;
/** Records per block. */
export const CLASS_CAPACITY: Int32Array = Int32Array.from(capacities);
/** Most peers a block of the class may hold. */
export const CLASS_MAX: Int32Array = Int32Array.from(
  capacities,
  (cap, c) => c < LINEAR_CLASSES ? cap : Math.floor(cap * 7 / 8),
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

if (CLASS_COUNT > 64) throw new Error("capacity classes do not fit the 6 class bits");

/** The smallest class that can hold `n` peers, or -1 if none can. */
export function classFor(n: number): number {
  for (let c = 0; c < CLASS_COUNT; c++) if (CLASS_MAX[c] >= n) return c;
  return -1;
}
