/**
 * `--rate-limit N/s`: a token bucket per source address for UDP requests, so one sender (or one
 * spoofed flood aimed at a victim's address) gets at most N requests a second through, after a
 * burst of N. A limited datagram is dropped without a reply, so the limit cannot be used to make
 * otter send anything either. Off (0) by default; SIGHUP can change it.
 *
 * The bucket is kept in GCRA form (the "virtual scheduling" equivalent of a token bucket): one
 * number per source, its theoretical arrival time (TAT). Each allowed request pushes TAT by
 * 1/N s; a request is refused while TAT would run more than the burst (N requests = 1 s) ahead of
 * now. TAT <= now means the bucket is full, which is exactly the state of a source never seen, so
 * such a slot can be handed to another source without losing anything.
 *
 * Units and choices:
 * - IPv4 sources are limited per address. IPv6 sources are limited per /64: one host normally owns
 *   a whole /64 (SLAAC, privacy addresses), so per-address buckets would let it rotate through
 *   2^64 addresses to escape the limit.
 * - Burst N (one second's worth): a client that announces many torrents at once (connect +
 *   announce each) gets through as long as it averages N/s.
 * - Memory is fixed: `slots` buckets (default 2^18, 3 MiB: a u32 tag and an f64 TAT each),
 *   allocated when the limit is first turned on, nothing per packet. A source hashes (HalfSipHash,
 *   random per-process key, so outsiders cannot aim collisions) to a set of two slots; it takes
 *   its own slot, else one whose bucket is full again, else it shares the fuller of the two with
 *   their owner (counted as `shared`). So a source is never reset by a flood of others, and a
 *   flood of more sources than slots stays bounded in total; the price is that under such a flood
 *   (over ~2^18 sources active within one second) a colliding source may share a bucket and be
 *   limited together with another. Two sources with the same 32-bit hash always share one.
 * - Time: performance.now() is read once per synchronous run of datagrams (a microtask marks the
 *   reading stale when the run ends), so a batch of 64 costs one reading and no timer is needed.
 *   Time read a little early only refills later; it never lets more through.
 */
import { hashBytes, randomKey } from "../hash/halfSipHash.ts";

export const RATE_LIMIT_SLOTS = 1 << 18;

export interface RateLimiterOptions {
  /** Bucket slots, a power of two >= 2; default RATE_LIMIT_SLOTS. */
  slots?: number;
  /** HalfSipHash key; default random. */
  key?: Uint32Array;
}

export class RateLimiter {
  /** The limit is on; the hot path checks this before calling `allow`. */
  enabled = false;
  /** Datagrams refused since start. */
  limited = 0;
  /** Datagrams charged to another source's bucket because both slots of their set were busy. */
  shared = 0;
  #perSecond = 0;
  #intervalMs = 0;
  #toleranceMs = 0;
  readonly #slots: number;
  readonly #setMask: number;
  readonly #k0: number;
  readonly #k1: number;
  #tags: Uint32Array | null = null;
  #tat: Float64Array | null = null;
  /** performance.now() read for the current synchronous run of datagrams. */
  #nowMs = 0;
  #nowFresh = false;
  readonly #markStale = () => {
    this.#nowFresh = false;
  };

  constructor(perSecond: number, options: RateLimiterOptions = {}) {
    const slots = options.slots ?? RATE_LIMIT_SLOTS;
    if (slots < 2 || (slots & (slots - 1)) !== 0) {
      throw new RangeError(`slots must be a power of two >= 2, got ${slots}`);
    }
    this.#slots = slots;
    this.#setMask = slots / 2 - 1;
    const key = options.key ?? randomKey();
    this.#k0 = key[0];
    this.#k1 = key[1];
    this.setRate(perSecond);
  }

  /** Requests a second allowed per source (0 = off). */
  get perSecond(): number {
    return this.#perSecond;
  }

  /** Changes the limit; 0 turns it off (the table and counters stay for a later turn-on). */
  setRate(perSecond: number): void {
    this.#perSecond = perSecond;
    if (!(perSecond > 0)) {
      this.enabled = false;
      return;
    }
    this.#intervalMs = 1000 / perSecond;
    // Burst of perSecond requests; half an interval of slack absorbs float rounding in the sums.
    this.#toleranceMs = 1000 + this.#intervalMs / 2;
    if (this.#tags === null) {
      this.#tags = new Uint32Array(this.#slots);
      this.#tat = new Float64Array(this.#slots);
    }
    this.enabled = true;
  }

  /** Charges one request from the source to its bucket, now; false: drop it. */
  allow(family: 4 | 6, address: Uint8Array, offset: number): boolean {
    if (!this.#nowFresh) {
      this.#nowMs = performance.now();
      this.#nowFresh = true;
      queueMicrotask(this.#markStale);
    }
    return this.allowAt(family, address, offset, this.#nowMs);
  }

  /** `allow` at time `nowMs` (a performance.now() reading; must not go backwards by much). */
  allowAt(family: 4 | 6, address: Uint8Array, offset: number, nowMs: number): boolean {
    const tags = this.#tags;
    const tat = this.#tat;
    if (!this.enabled || tags === null || tat === null) return true;
    // IPv6: the /64 only (see the header).
    const h = hashBytes(this.#k0, this.#k1, address, offset, family === 4 ? 4 : 8);
    const tag = h === 0 ? 1 : h; // 0 marks a slot never used
    const a = (h & this.#setMask) << 1;
    const b = a + 1;
    let slot: number;
    if (tags[a] === tag) slot = a;
    else if (tags[b] === tag) slot = b;
    else {
      // The smaller TAT is the fuller bucket: the one to take over, or failing that, to share.
      slot = tat[a] <= tat[b] ? a : b;
      if (tat[slot] <= nowMs) tags[slot] = tag;
      else this.shared++;
    }
    const base = tat[slot] > nowMs ? tat[slot] : nowMs;
    const next = base + this.#intervalMs;
    if (next - nowMs > this.#toleranceMs) {
      this.limited++;
      return false;
    }
    tat[slot] = next;
    return true;
  }

  /** Sources (IPv6: /64s) whose bucket is not full, i.e. that sent within about the last second. */
  sources(nowMs = performance.now()): number {
    const tat = this.#tat;
    if (tat === null) return 0;
    let n = 0;
    for (let i = 0; i < tat.length; i++) if (tat[i] > nowMs) n++;
    return n;
  }

  /** Bytes of the bucket table (0 until the limit is first turned on). */
  get byteSize(): number {
    return this.#tags === null ? 0 : this.#tags.byteLength + this.#tat!.byteLength;
  }
}
