/**
 * IP address text, read and written: otter's one parser of addresses, used wherever one arrives as
 * text (socket peers' hostnames, X-Forwarded-For and X-Real-IP, `--trust-proxy` and `--stats-from`
 * CIDRs, listen addresses, the UDP fast path's bind address).
 *
 * Parsing runs per request, so it walks char codes and writes into a caller-owned 16-byte buffer,
 * allocating nothing. An IPv4-mapped IPv6 address is IPv4 here as everywhere in otter:
 * `parseIpAddress("::ffff:10.0.0.1")` returns 4.
 *
 * Rules chosen where texts are ambiguous:
 * - IPv4 parts are decimal 0..255 with no leading zeros (`01.2.3.4` is refused, since some
 *   parsers read it as octal), exactly four parts.
 * - IPv6 follows RFC 4291 text forms (one `::`, 1..4 hex digits per group, an IPv4 tail); a zone
 *   id (`fe80::1%eth0`) is accepted and ignored (a caller that cannot ignore it, such as a socket
 *   bind, refuses a `%` itself); brackets (`[::1]`) are accepted around IPv6 only.
 * - Blanks around the address are ignored.
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

/** Is the IPv6 address at b[o .. o+16] IPv4-mapped (`::ffff:a.b.c.d`)? */
export function isIpv4Mapped(b: Uint8Array, o: number): boolean {
  return b[o] === 0 && b[o + 1] === 0 && b[o + 2] === 0 && b[o + 3] === 0 && b[o + 4] === 0 &&
    b[o + 5] === 0 && b[o + 6] === 0 && b[o + 7] === 0 && b[o + 8] === 0 && b[o + 9] === 0 &&
    b[o + 10] === 0xff && b[o + 11] === 0xff;
}

function isSpaceOrTab(c: number): boolean {
  return c === 32 || c === 9;
}

/** Parses an address in `text[start, end)`; brackets and a zone id are handled here. */
function parseRange(text: string, start: number, end: number, out: Uint8Array): 0 | 4 | 6 {
  while (start < end && isSpaceOrTab(text.charCodeAt(start))) start++;
  while (end > start && isSpaceOrTab(text.charCodeAt(end - 1))) end--;
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
  if (isIpv4Mapped(out, 0)) {
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
  while (start < end && isSpaceOrTab(value.charCodeAt(start))) start++;
  while (end > start && isSpaceOrTab(value.charCodeAt(end - 1))) end--;
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

/** Turns the IPv4 address in b[0..4] into its IPv4-mapped IPv6 form in b[0..16]. */
export function ipv4Mapped(b: Uint8Array): void {
  b.copyWithin(12, 0, 4);
  b.fill(0, 0, 10);
  b[10] = 0xff;
  b[11] = 0xff;
}

/** An address's text: dotted quad, or IPv6 in lower-case hex with its first run of zero groups as `::`. */
export function formatIpAddress(family: 4 | 6, b: Uint8Array, o = 0): string {
  if (family === 4) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[o + i] << 8) | b[o + i + 1]).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

/** `host:port` for log lines and URLs, an IPv6 host in brackets (once). */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}
