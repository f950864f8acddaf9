/**
 * The single place where the store allocates memory.
 *
 * All store state lives in Uint32Arrays obtained here (torrent rows, peer-block pools, counters),
 * never in per-peer or per-torrent JS objects. Keeping allocation in one module means a later
 * change can back every array with a growable SharedArrayBuffer for multi-worker use without
 * touching the table logic.
 *
 * Pools are backed by resizable ArrayBuffers: V8 reserves their address space up front and
 * commits pages as they grow, so growing never copies, untouched capacity costs no RSS, and
 * shrinking hands pages straight back to the OS. (Plain ArrayBuffers come from malloc, which keeps
 * freed pool generations resident; measured, that cost 30-70% extra RSS per peer.)
 */

/** Address space reserved per growable array unless it needs more. */
const RESERVE_BYTES = 2 ** 30;

/** A zeroed fixed-size array of `length` 32-bit words. */
export function allocWords(length: number): Uint32Array {
  return new Uint32Array(length);
}

/** A zeroed array that grows and shrinks in place (see resizeWords). */
export function allocGrowableWords(length: number): Uint32Array {
  const reserve = Math.max(RESERVE_BYTES, length * 8);
  return new Uint32Array(new ArrayBuffer(length * 4, { maxByteLength: reserve }));
}

/**
 * Resizes a growable array to `length` words; words past the old length read as zero. Returns
 * the same array when the reservation allows, otherwise a bigger copy.
 */
export function resizeWords(words: Uint32Array, length: number): Uint32Array {
  const buffer = words.buffer as ArrayBuffer;
  if (length * 4 <= buffer.maxByteLength) {
    buffer.resize(length * 4);
    return words;
  }
  const grown = allocGrowableWords(length);
  grown.set(words);
  return grown;
}

/** A zero-length growable array, shared by every pool that has never held a block. */
export const NO_WORDS: Uint32Array = new Uint32Array(new ArrayBuffer(0, { maxByteLength: 0 }));

// Rows are hashed as bytes straight out of the Uint32Array (torrentTable.ts), which only matches
// hashing the caller's bytes on a little-endian host. Every Deno target is little-endian.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error("otter's store needs a little-endian host");
}
