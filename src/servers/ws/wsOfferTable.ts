/**
 * Pending offers: each offer otter forwarded, so that an answer is relayed only to the peer that
 * made the offer, only by the peer it was sent to, and only within OFFER_TTL seconds. An answer
 * with no such record (unsolicited, late, already answered, from the wrong peer) is refused.
 *
 * A ring of records in typed arrays, oldest overwritten first, with a chained hash index keyed by
 * HalfSipHash (random key) of the offer_id and the receiving entry. The ring grows by doubling
 * while its oldest record is still pending, up to MAX_PENDING_OFFERS; past that the oldest
 * pending offer is dropped (counted in `evicted`), so memory stays bounded whatever clients send:
 * at most MAX_PENDING_OFFERS × 40 bytes (~10 MB).
 */
import { hashBytes, randomKey } from "../../hash/halfSipHash.ts";

/** Seconds an offer waits for its answer (aquatic_ws's 120 s; clients give up after 50 s). */
export const OFFER_TTL = 120;
/** Most pending offers held. */
export const MAX_PENDING_OFFERS = 1 << 18;

const ID = 20;
const NONE = -1;
const INITIAL = 1024;

export class WsOfferTable {
  /** Pending offers dropped to make room before their answer came or their time ran out. */
  evicted = 0;
  /** Records held: pending, or past their time and not yet overwritten. */
  held = 0;
  /** The offering entry and its generation of the record `find` last found. */
  offerer = 0;
  offererGeneration = 0;
  readonly #max: number;
  #offerIds = new Uint8Array(INITIAL * ID);
  #target = new Int32Array(INITIAL);
  #targetGeneration = new Uint16Array(INITIAL);
  #offerer = new Int32Array(INITIAL);
  #offererGeneration = new Uint16Array(INITIAL);
  /** When the offer was sent (the store's seconds, ≥ 1); 0: no record. */
  #time = new Uint32Array(INITIAL);
  #chain = new Int32Array(INITIAL);
  #buckets = new Int32Array(INITIAL).fill(NONE);
  /** Where the next record goes; the oldest record is there too once the ring is full. */
  #head = 0;
  readonly #k0: number;
  readonly #k1: number;
  readonly #key = new Uint8Array(ID + 4);

  constructor(maxPending = MAX_PENDING_OFFERS, hashKey: Uint32Array = randomKey()) {
    this.#max = Math.max(INITIAL, maxPending);
    this.#k0 = hashKey[0] | 0;
    this.#k1 = hashKey[1] | 0;
  }

  /** Records that offer offerIds[at, at + 20) of `offerer` was sent to `target`, at `now`. */
  add(
    offerIds: Uint8Array,
    at: number,
    target: number,
    targetGeneration: number,
    offerer: number,
    offererGeneration: number,
    now: number,
  ): void {
    let r = this.#head;
    if (this.#time[r] !== 0) {
      if (now - this.#time[r] <= OFFER_TTL) {
        if (this.#time.length < this.#max) {
          this.#grow();
          r = this.#head;
        } else {
          this.evicted++;
          this.#unlink(r);
        }
      } else {
        this.#unlink(r);
      }
    }
    this.#head = r + 1 === this.#time.length ? 0 : r + 1;
    this.#offerIds.set(offerIds.subarray(at, at + ID), r * ID);
    this.#target[r] = target;
    this.#targetGeneration[r] = targetGeneration;
    this.#offerer[r] = offerer;
    this.#offererGeneration[r] = offererGeneration;
    this.#time[r] = now > 0 ? now : 1;
    this.held++;
    const bucket = this.#bucketOf(this.#offerIds, r * ID, target);
    this.#chain[r] = this.#buckets[bucket];
    this.#buckets[bucket] = r;
  }

  /**
   * The pending record of offer offerIds[at, at + 20) sent to `target` (with its generation) no
   * more than OFFER_TTL seconds before `now`, or -1; its offerer goes to `offerer` and
   * `offererGeneration`.
   */
  find(
    offerIds: Uint8Array,
    at: number,
    target: number,
    targetGeneration: number,
    now: number,
  ): number {
    let r = this.#buckets[this.#bucketOf(offerIds, at, target)];
    while (r !== NONE) {
      if (
        this.#target[r] === target && this.#targetGeneration[r] === targetGeneration &&
        now - this.#time[r] <= OFFER_TTL && sameId(this.#offerIds, r * ID, offerIds, at)
      ) {
        this.offerer = this.#offerer[r];
        this.offererGeneration = this.#offererGeneration[r];
        return r;
      }
      r = this.#chain[r];
    }
    return NONE;
  }

  /** Forgets record `r` (its offer was answered). */
  remove(r: number): void {
    this.#unlink(r);
  }

  get byteSize(): number {
    return this.#offerIds.byteLength + this.#time.length * 20 + this.#buckets.byteLength;
  }

  #unlink(r: number): void {
    const bucket = this.#bucketOf(this.#offerIds, r * ID, this.#target[r]);
    let link = this.#buckets[bucket];
    if (link === r) {
      this.#buckets[bucket] = this.#chain[r];
    } else {
      while (this.#chain[link] !== r) link = this.#chain[link];
      this.#chain[link] = this.#chain[r];
    }
    this.#time[r] = 0;
    this.held--;
  }

  #bucketOf(offerIds: Uint8Array, at: number, target: number): number {
    const key = this.#key;
    for (let i = 0; i < ID; i++) key[i] = offerIds[at + i];
    key[ID] = target;
    key[ID + 1] = target >>> 8;
    key[ID + 2] = target >>> 16;
    key[ID + 3] = target >>> 24;
    return hashBytes(this.#k0, this.#k1, key, 0, ID + 4) & (this.#buckets.length - 1);
  }

  /** Doubles the ring, keeping the records oldest first from index 0. */
  #grow(): void {
    const old = this.#time.length;
    const size = Math.min(old * 2, this.#max);
    const offerIds = new Uint8Array(size * ID);
    const target = new Int32Array(size);
    const targetGeneration = new Uint16Array(size);
    const offerer = new Int32Array(size);
    const offererGeneration = new Uint16Array(size);
    const time = new Uint32Array(size);
    let n = 0;
    for (let k = 0; k < old; k++) {
      const r = (this.#head + k) % old;
      if (this.#time[r] === 0) continue;
      offerIds.set(this.#offerIds.subarray(r * ID, r * ID + ID), n * ID);
      target[n] = this.#target[r];
      targetGeneration[n] = this.#targetGeneration[r];
      offerer[n] = this.#offerer[r];
      offererGeneration[n] = this.#offererGeneration[r];
      time[n] = this.#time[r];
      n++;
    }
    this.#offerIds = offerIds;
    this.#target = target;
    this.#targetGeneration = targetGeneration;
    this.#offerer = offerer;
    this.#offererGeneration = offererGeneration;
    this.#time = time;
    this.#chain = new Int32Array(size);
    this.#buckets = new Int32Array(size).fill(NONE);
    for (let r = 0; r < n; r++) {
      const bucket = this.#bucketOf(offerIds, r * ID, target[r]);
      this.#chain[r] = this.#buckets[bucket];
      this.#buckets[bucket] = r;
    }
    this.#head = n;
  }
}

function sameId(a: Uint8Array, at: number, b: Uint8Array, bt: number): boolean {
  for (let i = 0; i < ID; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}
