/**
 * The single place where the store allocates memory.
 *
 * All store state lives in Uint32Arrays obtained here (torrent rows, peer-block pools, counters),
 * never in per-peer or per-torrent JS objects. Keeping allocation in one function means a later
 * change can back every array with a growable SharedArrayBuffer for multi-worker use without
 * touching the table logic. Fresh ArrayBuffers are zero-filled lazily by the OS, so capacity that
 * is reserved but never written costs address space, not resident memory.
 */

/** A zeroed array of `length` 32-bit words. */
export function allocWords(length: number): Uint32Array {
  return new Uint32Array(length);
}

/** A zero-length array, shared by every empty pool. */
export const NO_WORDS: Uint32Array = new Uint32Array(0);

// Rows are hashed as bytes straight out of the Uint32Array (see swarmTable.ts), which only matches
// hashing the caller's bytes on a little-endian host. Every Deno target is little-endian.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error("otter's store needs a little-endian host");
}
