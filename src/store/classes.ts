/**
 * Capacity classes of peer-list blocks.
 *
 * Classes 0..7 hold 1..8 records scanned linearly (exact sizes, so short lists waste nothing).
 * Larger classes are open-addressing sets filled to at most 7/8, their capacities growing by
 * 1.25x up to 64k records and by 2x beyond, so a list of n peers occupies about 1.15n..1.8n
 * records. Each class has its own pool, so blocks of one pool are all the same size.
 */

export const LINEAR_CLASSES = 8;
/** Largest set capacity; a list that is full at this size stops accepting new peers. */
export const MAX_LIST_CAPACITY = 1 << 24;

const capacities: number[] = [];
for (let c = 1; c <= LINEAR_CLASSES; c++) capacities.push(c);
for (let c = 12; c <= MAX_LIST_CAPACITY; c = c < 65536 ? Math.ceil(c * 1.25) : c * 2) {
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
/** A list with fewer peers than this moves to a smaller class (hysteresis of about one class). */
export const CLASS_MIN: Int32Array = Int32Array.from(capacities, (cap, c) => {
  if (c < 2) return 1;
  if (c < LINEAR_CLASSES) return cap - 1;
  if (c === LINEAR_CLASSES) return 7;
  return CLASS_MAX[c - 2] + 1;
});

if (CLASS_COUNT > 64) throw new Error("capacity classes do not fit the 6 class bits");

/** The smallest class that can hold `n` peers, or -1 if none can. */
export function classFor(n: number): number {
  for (let c = 0; c < CLASS_COUNT; c++) if (CLASS_MAX[c] >= n) return c;
  return -1;
}
