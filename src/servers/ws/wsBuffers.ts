/**
 * The WebSocket server's memory, pooled so that an idle connection holds almost nothing and a
 * busy one allocates nothing per message:
 * - a small read buffer per connection (SMALL_READ bytes), a view into a shared slab, always
 *   held, since Deno needs a buffer for the read that waits on every open socket; untouched
 *   pages of a slab cost no RSS, so only what was read into counts;
 * - pooled buffers in powers of two from MIN_BUFFER to BUFFER_BYTES, taken for a read when a
 *   message is in progress or the small buffer came back full (so a burst is read in large
 *   pieces), and for the frames queued to a client while they wait to be written; given back as
 *   soon as the read or the write is done. Sized to the need (an offer's worst case is ~4 KiB,
 *   the rest of an announce ~3 KiB), not all of BUFFER_BYTES: when 10,000 connections get an
 *   offer in the same turn, each holds a buffer until its write is done, and what a burst took
 *   from malloc stays in the process after it (glibc keeps small freed blocks);
 * - pooled reassembly buffers for the frame reader (a message split across reads), by size.
 * Each size keeps at most POOL_BYTES of buffers.
 */

/** Bytes of a connection's own read buffer: most single messages (an answer, a small announce). */
export const SMALL_READ = 1024;
/** Bytes of the largest pooled read or write buffer. */
export const BUFFER_BYTES = 16384;
/** Bytes of the smallest pooled buffer: 1 KiB << size class. */
const MIN_SHIFT = 10;
/** Size classes: 1 KiB to 64 KiB (the reassembly cap, the message cap). */
const CLASSES = 7;
const SLAB_VIEWS = 64;
/** Bytes of free buffers each size class keeps (so at most 7 MiB in all). */
const POOL_BYTES = 1 << 20;

/** The size class of a buffer of at least `bytes` (bytes ≤ 64 KiB). */
function classOf(bytes: number): number {
  let sizeClass = 0;
  while ((1 << (MIN_SHIFT + sizeClass)) < bytes) sizeClass++;
  return sizeClass;
}

export class WsBuffers {
  /** Pooled buffers handed out and not yet given back (tests, stats). */
  taken = 0;
  readonly #small: Uint8Array[] = [];
  /** Free buffers by size class: 1 KiB << class. */
  readonly #free: Uint8Array[][] = Array.from({ length: CLASSES }, () => []);

  /** A small read buffer for a new connection. */
  takeSmall(): Uint8Array {
    if (this.#small.length === 0) {
      const slab = new ArrayBuffer(SLAB_VIEWS * SMALL_READ);
      for (let i = SLAB_VIEWS - 1; i >= 0; i--) {
        this.#small.push(new Uint8Array(slab, i * SMALL_READ, SMALL_READ));
      }
    }
    return this.#small.pop()!;
  }

  /** Takes back a closed connection's small buffer (kept: slabs are shared). */
  giveSmall(buffer: Uint8Array): void {
    this.#small.push(buffer);
  }

  /**
   * A buffer of at least `bytes`: a pooled one of the next power of two from 1 KiB, or, over
   * BUFFER_BYTES, a new one of that size.
   */
  take(bytes = BUFFER_BYTES): Uint8Array {
    this.taken++;
    if (bytes > BUFFER_BYTES) return new Uint8Array(bytes);
    return this.#pooled(bytes);
  }

  /** Takes back a buffer from `take` (a larger one is dropped). */
  give(buffer: Uint8Array): void {
    this.taken--;
    if (buffer.length <= BUFFER_BYTES) this.#keep(buffer);
  }

  /** A reassembly buffer of at least `bytes` (a power of two from 1 KiB, at most 64 KiB). */
  takeReassembly(bytes: number): Uint8Array {
    return this.#pooled(bytes);
  }

  giveReassembly(buffer: Uint8Array): void {
    this.#keep(buffer);
  }

  #pooled(bytes: number): Uint8Array {
    const sizeClass = classOf(bytes);
    return this.#free[sizeClass].pop() ?? new Uint8Array(1 << (MIN_SHIFT + sizeClass));
  }

  #keep(buffer: Uint8Array): void {
    const sizeClass = classOf(buffer.length);
    if (sizeClass >= CLASSES || buffer.length !== 1 << (MIN_SHIFT + sizeClass)) return;
    const free = this.#free[sizeClass];
    if ((free.length + 1) * buffer.length <= POOL_BYTES) free.push(buffer);
  }
}
