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

import { hashBytes, hashWords } from "../hash/halfSipHash.ts";

/** How far an id's time may lie ahead of `now` (seconds) before it is refused. */
const MAX_FUTURE = 5;

export class ConnectionIds {
  readonly #k0: number;
  readonly #k1: number;
  readonly #maxAge: number;
  /** time, 16 address bytes, family word: the IPv6 hash input. */
  readonly #scratch = new Uint8Array(24);

  /**
   * `key` is 2 secret words (see `randomKey`); ids are accepted for `lifetime` seconds (BEP 15 asks
   * for 2 minutes) plus `grace`, because some clients keep using an id well past its lifetime.
   */
  constructor(key: Uint32Array, lifetime = 120, grace = 480) {
    this.#k0 = key[0];
    this.#k1 = key[1];
    this.#maxAge = lifetime + grace;
  }

  #mac(time: number, family: 4 | 6, address: Uint8Array, addressOffset: number) {
    // The family is hashed too, so an IPv4 address never hashes like an IPv6 one.
    if (family === 4) {
      const a = (address[addressOffset] << 24) | (address[addressOffset + 1] << 16) |
        (address[addressOffset + 2] << 8) | address[addressOffset + 3];
      return hashWords(this.#k0, this.#k1, 3, time, a, family);
    }
    const s = this.#scratch;
    s[0] = time >>> 24;
    s[1] = time >>> 16;
    s[2] = time >>> 8;
    s[3] = time;
    for (let i = 0; i < 16; i++) s[4 + i] = address[addressOffset + i];
    s[20] = 0;
    s[21] = 0;
    s[22] = 0;
    s[23] = family;
    return hashBytes(this.#k0, this.#k1, s, 0, 24);
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
    const time = now >>> 0;
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
    const time = ((packet[offset] << 24) | (packet[offset + 1] << 16) | (packet[offset + 2] << 8) |
      packet[offset + 3]) >>> 0;
    if (time > now + MAX_FUTURE || now - time > this.#maxAge) return false;
    const mac = ((packet[offset + 4] << 24) | (packet[offset + 5] << 16) |
      (packet[offset + 6] << 8) | packet[offset + 7]) >>> 0;
    return mac === this.#mac(time, family, address, addressOffset);
  }
}
