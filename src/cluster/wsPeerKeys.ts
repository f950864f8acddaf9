/**
 * The keys under which a node publishes its WebSocket (WebTorrent) peers to the cluster. Locally
 * the store holds such a peer under its entry in the WebSocket tracker's peer table (address word
 * = entry, port = the entry's generation); other nodes need a key that
 * - differs from every other node's keys, so two nodes' entries never meet in a third's store;
 * - names the node that holds the peer's socket, so an offer for it can be sent there; and
 * - lets that node find the entry again from the key alone.
 *
 * So the key is: address word = WS_REMOTE_BIT | a keyed bijection of the entry number over 31
 * bits (random keys per process, so entry numbers, which every node hands out from 0, do not line
 * up between nodes), port = this process's tag (random, 1..65535). The tag names the node's offer
 * channel; two nodes may draw the same tag (about n² / 131072 for n nodes), which only sends
 * their offers to both: each node takes an offer only for a live entry of its own in that torrent
 * (`owns`), which another node's key decodes to with odds of about its entries / 2^31.
 *
 * The bijection (xor, odd multiplier, xorshift, odd multiplier, xor, all mod 2^31) is not a
 * cipher: it only has to scatter entries; nothing secret rests on it.
 */
import { WS_REMOTE_BIT } from "../store/layout.ts";

const MASK = 0x7fffffff;

/** The multiplicative inverse of an odd number modulo 2^31. */
function inverseOdd(odd: number): number {
  let inverse = odd;
  // Newton's iteration doubles the correct low bits each round: 3, 6, 12, 24, 48.
  for (let i = 0; i < 5; i++) inverse = Math.imul(inverse, 2 - Math.imul(odd, inverse));
  return inverse & MASK;
}

export class WsPeerKeys {
  /** This process's tag, the port of every key it publishes (1..65535). */
  readonly tag: number;
  readonly #k0: number;
  readonly #k1: number;
  readonly #m0: number;
  readonly #m1: number;
  readonly #i0: number;
  readonly #i1: number;
  /**
   * Whether `entry` is a live entry of this node's WebSocket tracker for the torrent at
   * hash[hashAt..]; the tracker sets it. Until then (a node without WebSocket) nothing is owned.
   */
  owns: (entry: number, hash: Uint8Array, hashAt: number) => boolean = () => false;

  /** `random` gives uint32s; crypto's by default. */
  constructor(random: () => number = () => crypto.getRandomValues(new Uint32Array(1))[0]) {
    this.tag = (random() % 0xffff) + 1;
    this.#k0 = random() & MASK;
    this.#k1 = random() & MASK;
    this.#m0 = (random() | 1) & MASK;
    this.#m1 = (random() | 1) & MASK;
    this.#i0 = inverseOdd(this.#m0);
    this.#i1 = inverseOdd(this.#m1);
  }

  /** The address word (WS_REMOTE_BIT set) that entry `entry` is published under. */
  published(entry: number): number {
    let x = (entry ^ this.#k0) & MASK;
    x = Math.imul(x, this.#m0) & MASK;
    x ^= x >>> 16;
    x = Math.imul(x, this.#m1) & MASK;
    x ^= this.#k1;
    return (x | WS_REMOTE_BIT) >>> 0;
  }

  /** The entry a published address word names (`published`'s inverse, WS_REMOTE_BIT ignored). */
  entryOf(word: number): number {
    let x = (word ^ this.#k1) & MASK;
    x = Math.imul(x, this.#i1) & MASK;
    x ^= x >>> 16; // its own inverse: the shift is over half of 31 bits
    x = Math.imul(x, this.#i0) & MASK;
    return (x ^ this.#k0) & MASK;
  }

  /**
   * Whether a published key (address word, port) names a live peer of this node in the torrent
   * at hash[hashAt..]: its own peer, read back from another node's snapshot, or an offer's target.
   */
  isOwn(word: number, port: number, hash: Uint8Array, hashAt: number): boolean {
    return port === this.tag && this.owns(this.entryOf(word), hash, hashAt);
  }
}

/** An address word read big-endian from bytes[at..at + 4]. */
export function readWord(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** Writes an address word big-endian into bytes[at..at + 4]. */
export function writeWord(bytes: Uint8Array, at: number, word: number): void {
  bytes[at] = word >>> 24;
  bytes[at + 1] = word >>> 16;
  bytes[at + 2] = word >>> 8;
  bytes[at + 3] = word;
}
