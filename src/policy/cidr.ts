/**
 * IP address text parsing and CIDR sets for `--stats-from` and `--trust-proxy`.
 *
 * Both run per request (the socket peer's hostname, X-Forwarded-For, X-Real-IP), so parsing walks
 * char codes and writes into a caller-owned 16-byte buffer, and `contains` compares 32-bit words
 * against precomputed masks; neither allocates. An IPv4-mapped IPv6 address is IPv4 here as
 * everywhere in otter: `parseIpAddress("::ffff:10.0.0.1")` returns 4, and a CIDR written in the
 * mapped space (`::ffff:10.0.0.0/104`) is the IPv4 CIDR `10.0.0.0/8`.
 *
 * Rules chosen where texts are ambiguous:
 * - IPv4 parts are decimal 0..255 with no leading zeros (`01.2.3.4` is refused, since some
 *   parsers read it as octal), exactly four parts.
 * - IPv6 follows RFC 4291 text forms (one `::`, 1..4 hex digits per group, an IPv4 tail); a zone
 *   id (`fe80::1%eth0`) is accepted and ignored; brackets (`[::1]`) are accepted around IPv6 only.
 * - A CIDR with host bits set (`10.1.2.3/8`) is accepted and means its network (`10.0.0.0/8`).
 * - An IPv6 CIDR that covers all of `::ffff:0:0/96` (such as `::/0`) also covers all of IPv4.
 */

/** Parses `text[start, end)` as dotted-quad IPv4 into out[at .. at+4]. */
function parseV4(text: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let value = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (value > 255) return false;
      digits++;
    } else if (c === 46) {
      if (digits === 0 || parts === 3) return false;
      out[at + parts++] = value;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (digits === 0 || parts !== 3) return false;
  out[at + 3] = value;
  return true;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Parses `text[start, end)` as IPv6 text into out[0..16]. */
function parseV6(text: string, start: number, end: number, out: Uint8Array): boolean {
  let groups = 0;
  let gap = -1;
  let i = start;
  if (end - start < 2) return false;
  if (text.charCodeAt(i) === 58) {
    if (text.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    let value = 0;
    let j = i;
    for (; j < end; j++) {
      const h = hexValue(text.charCodeAt(j));
      if (h < 0) break;
      if (j - i === 4) return false;
      value = value * 16 + h;
    }
    if (j < end && text.charCodeAt(j) === 46) {
      // An IPv4 tail fills the last two groups and must end the text.
      if (groups > 6 || !parseV4(text, i, end, out, groups * 2)) return false;
      groups += 2;
      break;
    }
    if (j === i || groups === 8) return false;
    out[groups * 2] = value >>> 8;
    out[groups * 2 + 1] = value & 255;
    groups++;
    i = j;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = groups;
      i++;
    } else if (i === end) {
      return false; // a single trailing colon
    }
  }
  if (gap < 0) return groups === 8;
  if (groups > 7) return false;
  const tailBytes = (groups - gap) * 2;
  out.copyWithin(16 - tailBytes, gap * 2, groups * 2);
  out.fill(0, gap * 2, 16 - tailBytes);
  return true;
}

function isV4Mapped(b: Uint8Array, o: number): boolean {
  return b[o] === 0 && b[o + 1] === 0 && b[o + 2] === 0 && b[o + 3] === 0 && b[o + 4] === 0 &&
    b[o + 5] === 0 && b[o + 6] === 0 && b[o + 7] === 0 && b[o + 8] === 0 && b[o + 9] === 0 &&
    b[o + 10] === 0xff && b[o + 11] === 0xff;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

/** Parses an address in `text[start, end)`; brackets and a zone id are handled here. */
function parseRange(text: string, start: number, end: number, out: Uint8Array): 0 | 4 | 6 {
  while (start < end && isBlank(text.charCodeAt(start))) start++;
  while (end > start && isBlank(text.charCodeAt(end - 1))) end--;
  let bracketed = false;
  if (start < end && text.charCodeAt(start) === 91) {
    if (text.charCodeAt(end - 1) !== 93) return 0;
    start++;
    end--;
    bracketed = true;
  }
  let colon = false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 58) {
      colon = true;
    } else if (c === 37) {
      // Zone id: only after IPv6 text, never empty; the address itself is what we compare.
      if (!colon || i === end - 1) return 0;
      end = i;
      break;
    }
  }
  if (!colon) return !bracketed && parseV4(text, start, end, out, 0) ? 4 : 0;
  if (!parseV6(text, start, end, out)) return 0;
  if (isV4Mapped(out, 0)) {
    out.copyWithin(0, 12, 16);
    return 4;
  }
  return 6;
}

/**
 * Parses an IP address text ("1.2.3.4", "::1", "::ffff:1.2.3.4", "[::1]", "fe80::1%eth0") into
 * `out` (at least 16 bytes): returns 4 with the address in out[0..4], 6 with it in out[0..16], or 0
 * if the text is not an address. IPv4-mapped IPv6 returns 4. Surrounding blanks are ignored.
 */
export function parseIpAddress(text: string, out: Uint8Array): 0 | 4 | 6 {
  return parseRange(text, 0, text.length, out);
}

function digitsOnly(text: string, start: number, end: number): boolean {
  if (end - start < 1 || end - start > 5) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * One entry `value[start, end)` of an X-Forwarded-For list ("1.2.3.4" in "1.2.3.4, 5.6.7.8"),
 * tolerating blanks, quotes and ports ("1.2.3.4:5678", "[::1]:80"). Same result convention as
 * `parseIpAddress`; an empty entry or "unknown" is 0.
 */
export function parseForwardedEntry(
  value: string,
  start: number,
  end: number,
  out: Uint8Array,
): 0 | 4 | 6 {
  while (start < end && isBlank(value.charCodeAt(start))) start++;
  while (end > start && isBlank(value.charCodeAt(end - 1))) end--;
  if (end - start >= 2 && value.charCodeAt(start) === 34 && value.charCodeAt(end - 1) === 34) {
    start++;
    end--;
  }
  if (start === end) return 0;
  if (value.charCodeAt(start) === 91) {
    let close = start + 1;
    while (close < end && value.charCodeAt(close) !== 93) close++;
    if (close === end) return 0;
    if (close + 1 < end) {
      if (value.charCodeAt(close + 1) !== 58 || !digitsOnly(value, close + 2, end)) return 0;
    }
    return parseRange(value, start, close + 1, out);
  }
  let colons = 0;
  let lastColon = -1;
  for (let i = start; i < end; i++) {
    if (value.charCodeAt(i) === 58) {
      colons++;
      lastColon = i;
    }
  }
  if (colons === 1) {
    // IPv4 with a port; a lone colon can never be IPv6.
    if (!digitsOnly(value, lastColon + 1, end)) return 0;
    return parseV4(value, start, lastColon, out, 0) ? 4 : 0;
  }
  return parseRange(value, start, end, out);
}

function word(b: Uint8Array, o: number): number {
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
        v4.push(word(bytes, 0) & mask, mask);
        continue;
      }
      if (family === 4) {
        // Written in the mapped space: rebuild the 16 bytes before masking.
        bytes.copyWithin(12, 0, 4);
        bytes.fill(0, 0, 10);
        bytes[10] = 0xff;
        bytes[11] = 0xff;
      }
      const masks = [maskWord(bits), maskWord(bits - 32), maskWord(bits - 64), maskWord(bits - 96)];
      const net = [0, 1, 2, 3].map((k) => word(bytes, k * 4) & masks[k]);
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
    if (family === 6 && isV4Mapped(address, offset)) {
      family = 4;
      offset += 12;
    }
    if (family === 4) {
      const v4 = this.#v4;
      const w = word(address, offset);
      for (let i = 0; i < v4.length; i += 2) {
        if ((w & v4[i + 1]) === v4[i]) return true;
      }
      return false;
    }
    const v6 = this.#v6;
    if (v6.length === 0) return false;
    const w0 = word(address, offset);
    const w1 = word(address, offset + 4);
    const w2 = word(address, offset + 8);
    const w3 = word(address, offset + 12);
    for (let i = 0; i < v6.length; i += 8) {
      if (
        (w0 & v6[i + 4]) === v6[i] && (w1 & v6[i + 5]) === v6[i + 1] &&
        (w2 & v6[i + 6]) === v6[i + 2] && (w3 & v6[i + 7]) === v6[i + 3]
      ) return true;
    }
    return false;
  }
}
