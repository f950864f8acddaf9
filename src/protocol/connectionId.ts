/**
 * Stateless BEP 15 connection ids.
 *
 * An id is 8 bytes: the issue time (u32 BE, clock seconds) and a keyed HalfSipHash (u32 BE) of that
 * time with the client's address family and address. The tracker keeps no table of issued ids:
 * checking one is recomputing the hash, so a flood of connects costs no memory, and a client
 * cannot forge an id for an address it cannot receive packets at without the secret key.
 *
 * The sender's port is not part of it, as in opentracker and aquatic: libtorrent caches ids per
 * process and tracker address, so a second session in the same process (another local port)
 * announces with the first one's id. Binding to the address keeps the defence against spoofed
 * sources, which cannot receive the id at that address whatever their port.
 */

import { hash3Words, hash6Words } from "../hash/halfSipHashWords.ts";

/** How far an id's time may lie ahead of `now` (seconds) before it is refused. */
const MAX_FUTURE = 5;

export class ConnectionIds {
  readonly #k0: number;
  readonly #k1: number;
  readonly #maxAge: number;

  /**
   * `key` is 2 secret words (see `randomKey`); ids are accepted for `lifetime` seconds (BEP 15 asks
   * for 2 minutes) plus `grace`, because some clients keep using an id well past its lifetime.
   */
  constructor(key: Uint32Array, lifetime = 120, grace = 480) {
    this.#k0 = key[0] | 0;
    this.#k1 = key[1] | 0;
    this.#maxAge = lifetime + grace;
  }

  /** The id's MAC as an int32 (an int32 passed and returned never becomes a heap number). */
  #mac(time: number, family: 4 | 6, address: Uint8Array, at: number): number {
    // The family is hashed too, so an IPv4 address never hashes like an IPv6 one.
    const a0 = (address[at] << 24) | (address[at + 1] << 16) | (address[at + 2] << 8) |
      address[at + 3];
    if (family === 4) return hash3Words(this.#k0, this.#k1, time, a0, family);
    return hash6Words(
      this.#k0,
      this.#k1,
      time,
      a0,
      (address[at + 4] << 24) | (address[at + 5] << 16) | (address[at + 6] << 8) | address[at + 7],
      (address[at + 8] << 24) | (address[at + 9] << 16) | (address[at + 10] << 8) |
        address[at + 11],
      (address[at + 12] << 24) | (address[at + 13] << 16) | (address[at + 14] << 8) |
        address[at + 15],
      family,
    );
  }

  /** Writes 8 bytes at out[outOffset]: u32 BE issue time, u32 BE HalfSipHash(key; time, addr). */
  issue(
    now: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    out: Uint8Array,
    outOffset: number,
  ): void {
    const time = now | 0;
    const mac = this.#mac(time, family, address, addressOffset);
    out[outOffset] = time >>> 24;
    out[outOffset + 1] = time >>> 16;
    out[outOffset + 2] = time >>> 8;
    out[outOffset + 3] = time;
    out[outOffset + 4] = mac >>> 24;
    out[outOffset + 5] = mac >>> 16;
    out[outOffset + 6] = mac >>> 8;
    out[outOffset + 7] = mac;
  }

  /**
   * True if the 8 bytes at packet[offset] were issued to this address (whatever the sender's port),
   * are not older than lifetime + grace and not from the future (over 5 seconds ahead of `now`).
   */
  check(
    now: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    packet: Uint8Array,
    offset: number,
  ): boolean {
    // Read as int32: `now` is far below 2^31, so an id whose time has the top bit set is refused
    // as from the future, and the time passed on is never a heap number.
    const time = (packet[offset] << 24) | (packet[offset + 1] << 16) | (packet[offset + 2] << 8) |
      packet[offset + 3];
    if (time < 0 || time > now + MAX_FUTURE || now - time > this.#maxAge) return false;
    const mac = (packet[offset + 4] << 24) | (packet[offset + 5] << 16) |
      (packet[offset + 6] << 8) | packet[offset + 7];
    return mac === this.#mac(time, family, address, addressOffset);
  }
}
