/**
 * The peer a store call works on, as record words: read once per call from the caller's bytes
 * (SwarmTable's announce, restore and refresh), then passed to every peer-list function that needs
 * it (peerSets.ts). Its keyed hash, which places it in a long list's set, is computed at most once
 * per read, and only when a set is searched.
 */
import { hash2Words, hash4Words } from "../hash/halfSipHashWords.ts";
import { type PeerFamily, RECORD_WORDS_V4 } from "./layout.ts";

/**
 * One peer's key as record words: its address (big-endian words, held as int32 so that passing
 * them to a call that is not inlined never boxes them) and port. Reused per call.
 */
export class PeerKey {
  address0 = 0;
  address1 = 0;
  address2 = 0;
  address3 = 0;
  port = 0;
  readonly #k0: number;
  readonly #k1: number;
  #hash = 0;
  #hashKnown = false;

  constructor(hashKey: Uint32Array) {
    this.#k0 = hashKey[0] | 0;
    this.#k1 = hashKey[1] | 0;
  }

  /** Reads the peer at b[at..] (16 bytes for family 6, else 4) with its port. */
  read(family: PeerFamily, b: Uint8Array, at: number, port: number): void {
    this.address0 = (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
    if (family === 6) {
      this.address1 = (b[at + 4] << 24) | (b[at + 5] << 16) | (b[at + 6] << 8) | b[at + 7];
      this.address2 = (b[at + 8] << 24) | (b[at + 9] << 16) | (b[at + 10] << 8) | b[at + 11];
      this.address3 = (b[at + 12] << 24) | (b[at + 13] << 16) | (b[at + 14] << 8) | b[at + 15];
    }
    this.port = port & 0xffff;
    this.#hashKnown = false;
  }

  /** The keyed hash (int32) that places this peer in a set, computed once per `read`. */
  hash(recordWords: number): number {
    if (!this.#hashKnown) {
      this.#hash = recordWords === RECORD_WORDS_V4
        ? hash2Words(this.#k0, this.#k1, this.address0, this.port)
        : hash2Words(
          this.#k0,
          this.#k1,
          hash4Words(
            this.#k0,
            this.#k1,
            this.address0,
            this.address1,
            this.address2,
            this.address3,
          ),
          this.port,
        );
      this.#hashKnown = true;
    }
    return this.#hash;
  }

  /** Whether the IPv6 record at pool[record..], whose first word matched, holds this address. */
  sameV6Tail(pool: Uint32Array, record: number): boolean {
    return (pool[record + 1] | 0) === this.address1 && (pool[record + 2] | 0) === this.address2 &&
      (pool[record + 3] | 0) === this.address3;
  }
}
