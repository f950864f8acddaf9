/**
 * The WebSocket server's memory, pooled so that an idle connection holds almost nothing and a
 * busy one allocates nothing per message:
 * - a small read buffer per connection (SMALL_READ bytes), a view into a shared slab, always
 *   held, since Deno needs a buffer for the read that waits on every open socket; untouched
 *   pages of a slab cost no RSS, so only what was read into counts;
 * - pooled BUFFER_BYTES buffers, taken for a read when a message is in progress or the small
 *   buffer came back full (so a burst is read in large pieces), and for the frames queued to a
 *   client while they wait to be written; given back as soon as the read or the write is done;
 * - pooled reassembly buffers for the frame reader (a message split across reads), by size.
 * Each pool keeps at most POOL_LIMIT buffers.
 */

/** Bytes of a connection's own read buffer: most single messages (an answer, a small announce). */
export const SMALL_READ = 1024;
/** Bytes of a pooled read or write buffer. */
export const BUFFER_BYTES = 16384;
const SLAB_VIEWS = 64;
const POOL_LIMIT = 512;
/** Reassembly buffers come in powers of two from 1 KiB. */
const MIN_REASSEMBLY_SHIFT = 10;

export class WsBuffers {
  /** Pooled buffers handed out and not yet given back (tests, stats). */
  taken = 0;
  readonly #small: Uint8Array[] = [];
  readonly #buffers: Uint8Array[] = [];
  /** Reassembly buffers by size class: 1 KiB << class. */
  readonly #reassembly: Uint8Array[][] = [];

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

  /** A buffer of at least `bytes`: a pooled BUFFER_BYTES one, or a new one when larger. */
  take(bytes = BUFFER_BYTES): Uint8Array {
    this.taken++;
    if (bytes > BUFFER_BYTES) return new Uint8Array(bytes);
    return this.#buffers.pop() ?? new Uint8Array(BUFFER_BYTES);
  }

  /** Takes back a buffer from `take` (a larger one, grown by its user, is dropped). */
  give(buffer: Uint8Array): void {
    this.taken--;
    if (buffer.length === BUFFER_BYTES && this.#buffers.length < POOL_LIMIT) {
      this.#buffers.push(buffer);
    }
  }

  /** A reassembly buffer of at least `bytes` (a power of two from 1 KiB). */
  takeReassembly(bytes: number): Uint8Array {
    let sizeClass = 0;
    while ((1 << (MIN_REASSEMBLY_SHIFT + sizeClass)) < bytes) sizeClass++;
    return this.#reassembly[sizeClass]?.pop() ??
      new Uint8Array(1 << (MIN_REASSEMBLY_SHIFT + sizeClass));
  }

  giveReassembly(buffer: Uint8Array): void {
    const sizeClass = Math.log2(buffer.length) - MIN_REASSEMBLY_SHIFT;
    if (!Number.isInteger(sizeClass) || sizeClass < 0) return;
    const pool = this.#reassembly[sizeClass] ??= [];
    if (pool.length < POOL_LIMIT / 8) pool.push(buffer);
  }
}
