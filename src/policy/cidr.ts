/**
 * CIDR sets for `--stats-from` and `--trust-proxy`. `contains` runs per request (the socket peer,
 * X-Forwarded-For hops), so it compares 32-bit words against precomputed masks and allocates
 * nothing. Addresses are read by protocol/ipAddress.ts, with its rules; an IPv4-mapped IPv6 address
 * is IPv4 here as everywhere in otter, and a CIDR written in the mapped space
 * (`::ffff:10.0.0.0/104`) is the IPv4 CIDR `10.0.0.0/8`.
 *
 * Rules chosen where texts are ambiguous:
 * - A CIDR with host bits set (`10.1.2.3/8`) is accepted and means its network (`10.0.0.0/8`).
 * - An IPv6 CIDR that covers all of `::ffff:0:0/96` (such as `::/0`) also covers all of IPv4.
 */
import { ipv4Mapped, isIpv4Mapped, parseIpAddress } from "../protocol/ipAddress.ts";

function int32BE(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/** The mask of the top `bits` bits of a 32-bit word, as a signed int32 (bits may be <0 or >32). */
function maskWord(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return -1;
  return -1 << (32 - bits);
}

function fail(entry: string): never {
  throw new Error(`invalid CIDR '${entry}'`);
}

/** A set of IPv4 and IPv6 networks; membership is a linear scan, fine for operator-sized lists. */
export class CidrSet {
  /** IPv4 entries as [network, mask] int32 pairs. */
  readonly #v4: Int32Array;
  /** IPv6 entries as [4 network words, 4 mask words]. */
  readonly #v6: Int32Array;

  private constructor(v4: number[], v6: number[]) {
    this.#v4 = Int32Array.from(v4);
    this.#v6 = Int32Array.from(v6);
  }

  /** Entries held after normalisation (an IPv6 net that covers all IPv4 also adds 0.0.0.0/0). */
  get size(): number {
    return this.#v4.length / 2 + this.#v6.length / 8;
  }

  /**
   * Parses "127.0.0.0/8", "::1/128", "10.0.0.1" (a host), "[::1]/128", "::ffff:10.0.0.0/104" (the
   * IPv4 net 10.0.0.0/8). Throws `Error("invalid CIDR 'x'")` on a bad entry.
   */
  static parse(list: readonly string[]): CidrSet {
    const v4: number[] = [];
    const v6: number[] = [];
    const bytes = new Uint8Array(16);
    for (const entry of list) {
      const text = entry.trim();
      const slash = text.indexOf("/");
      const addressText = slash < 0 ? text : text.slice(0, slash);
      const textIsV6 = addressText.includes(":");
      const maxBits = textIsV6 ? 128 : 32;
      let bits = maxBits;
      if (slash >= 0) {
        const bitsText = text.slice(slash + 1);
        if (!/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) fail(entry);
        bits = Number(bitsText);
        if (bits > maxBits) fail(entry);
      }
      const family = parseIpAddress(addressText, bytes);
      if (family === 0) fail(entry);
      if (!textIsV6) {
        const mask = maskWord(bits);
        v4.push(int32BE(bytes, 0) & mask, mask);
        continue;
      }
      // Written in the mapped space: rebuild the 16 bytes before masking.
      if (family === 4) ipv4Mapped(bytes);
      const masks = [maskWord(bits), maskWord(bits - 32), maskWord(bits - 64), maskWord(bits - 96)];
      const net = [0, 1, 2, 3].map((k) => int32BE(bytes, k * 4) & masks[k]);
      // Does this network reach into ::ffff:0:0/96, the home of IPv4 addresses?
      const mapped = [0, 0, 0xffff, 0];
      const coversMapped = bits <= 96 && [0, 1, 2].every((k) => (mapped[k] & masks[k]) === net[k]);
      const insideMapped = bits > 96 && net[0] === 0 && net[1] === 0 && net[2] === 0xffff;
      if (insideMapped) {
        v4.push(net[3], masks[3]);
        continue;
      }
      v6.push(...net, ...masks);
      if (coversMapped) v4.push(0, 0);
    }
    return new CidrSet(v4, v6);
  }

  /** Is the address (4 or 16 bytes at offset, network order) inside one of the networks? */
  contains(family: 4 | 6, address: Uint8Array, offset: number): boolean {
    if (family === 6 && isIpv4Mapped(address, offset)) {
      family = 4;
      offset += 12;
    }
    if (family === 4) {
      const v4 = this.#v4;
      const w = int32BE(address, offset);
      for (let i = 0; i < v4.length; i += 2) {
        if ((w & v4[i + 1]) === v4[i]) return true;
      }
      return false;
    }
    const v6 = this.#v6;
    if (v6.length === 0) return false;
    const w0 = int32BE(address, offset);
    const w1 = int32BE(address, offset + 4);
    const w2 = int32BE(address, offset + 8);
    const w3 = int32BE(address, offset + 12);
    for (let i = 0; i < v6.length; i += 8) {
      if (
        (w0 & v6[i + 4]) === v6[i] && (w1 & v6[i + 5]) === v6[i + 1] &&
        (w2 & v6[i + 6]) === v6[i + 2] && (w3 & v6[i + 7]) === v6[i + 3]
      ) return true;
    }
    return false;
  }
}
