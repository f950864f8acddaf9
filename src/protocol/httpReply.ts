/**
 * Writes bencoded HTTP tracker replies (announce, scrape, failure) into caller-owned buffers.
 *
 * Dictionary keys are emitted in raw byte order as bencode requires; the constant key runs are
 * encoded once at module load and copied, integers are written with a digit loop, so a reply costs
 * no allocation. Every writer returns the number of bytes written and throws (a bug, not a bad
 * request) if the buffer is too small for its documented maximum.
 */

import { MAX_HTTP_SCRAPE_HASHES } from "./httpQuery.ts";
import { ascii, copyBytes } from "./asciiBytes.ts";

const COMPLETE = ascii("d8:completei");
const DOWNLOADED = ascii("e10:downloadedi");
const EXTERNAL_IP = ascii("e11:external ip");
const INCOMPLETE = ascii("10:incompletei");
const INCOMPLETE_AFTER_INT = ascii("e10:incompletei");
const INTERVAL = ascii("e8:intervali");
const MIN_INTERVAL = ascii("e12:min intervali");
const PEERS = ascii("e5:peers");
const PEERS6 = ascii("e5:peers0:6:peers6");
const FAILURE = ascii("d14:failure reason");
const FILES = ascii("d5:filesd");
const FILE_KEY = ascii("20:");
const FILE_COMPLETE = ascii("d8:completei");
const FILE_DOWNLOADED = ascii("e10:downloadedi");
const FILE_INCOMPLETE = ascii("e10:incompletei");

/** Longest bencoded integer we write: a sign and 16 digits cover every safe integer. */
const MAX_INT_LENGTH = 17;

/**
 * Writes `value` in decimal at `at`; returns the offset after it. Fractions are truncated and
 * non-finite values written as 0, so a caller bug cannot produce invalid bencode.
 */
export function writeDecimal(out: Uint8Array, at: number, value: number): number {
  if (value >= 0 && value <= 0x7fffffff) {
    // The common case (counts, intervals, lengths) stays in small-integer arithmetic.
    let v = value | 0;
    let digits = 1;
    for (let t = v; t >= 10; t = (t / 10) | 0) digits++;
    const end = at + digits;
    for (let i = end - 1; i >= at; i--) {
      const q = (v / 10) | 0;
      out[i] = 48 + v - q * 10;
      v = q;
    }
    return end;
  }
  if (!Number.isFinite(value)) {
    out[at] = 48;
    return at + 1;
  }
  value = Math.trunc(value);
  if (value < 0) {
    out[at++] = 45;
    value = -value;
  }
  if (value > Number.MAX_SAFE_INTEGER) value = Number.MAX_SAFE_INTEGER; // keeps MAX_INT_LENGTH true
  let digits = 1;
  for (let t = value; t >= 10; t = Math.floor(t / 10)) digits++;
  const end = at + digits;
  for (let i = end - 1; i >= at; i--) {
    const q = Math.floor(value / 10);
    out[i] = 48 + (value - q * 10);
    value = q;
  }
  return end;
}

/** Writes `<length>:` for a bencoded string. */
function stringLength(out: Uint8Array, at: number, length: number): number {
  at = writeDecimal(out, at, length);
  out[at] = 58; // ':'
  return at + 1;
}

/** Upper bound of `writeAnnounceReply`'s output for `peersLength` bytes of peers. */
export function maxAnnounceReplyLength(peersLength: number): number {
  return COMPLETE.length + DOWNLOADED.length + EXTERNAL_IP.length + 3 + 16 +
    INCOMPLETE_AFTER_INT.length + INTERVAL.length + MIN_INTERVAL.length + PEERS6.length +
    5 * MAX_INT_LENGTH + 2 * MAX_INT_LENGTH + 1 + peersLength + 1;
}

/**
 * Writes a compact announce reply. `peers` holds `peersLength` bytes of 6-byte (family 4) or
 * 18-byte (family 6) entries; IPv6 requesters get an empty `peers` plus `peers6` (BEP 7).
 * `externalIp` (BEP 24) is the requester's address when `externalIpLength` is 4 or 16; pass
 * null / 0 to omit it.
 */
export function writeAnnounceReply(
  out: Uint8Array,
  complete: number,
  downloaded: number,
  incomplete: number,
  interval: number,
  minInterval: number,
  family: 4 | 6,
  peers: Uint8Array,
  peersLength: number,
  externalIp: Uint8Array | null,
  externalIpOffset: number,
  externalIpLength: number,
): number {
  if (out.length < maxAnnounceReplyLength(peersLength)) {
    throw new RangeError("announce reply buffer too small");
  }
  let at = copyBytes(out, 0, COMPLETE);
  at = writeDecimal(out, at, complete);
  at = copyBytes(out, at, DOWNLOADED);
  at = writeDecimal(out, at, downloaded);
  if (externalIp !== null && (externalIpLength === 4 || externalIpLength === 16)) {
    at = copyBytes(out, at, EXTERNAL_IP);
    at = stringLength(out, at, externalIpLength);
    for (let i = 0; i < externalIpLength; i++) out[at + i] = externalIp[externalIpOffset + i];
    at += externalIpLength;
    at = copyBytes(out, at, INCOMPLETE);
  } else {
    at = copyBytes(out, at, INCOMPLETE_AFTER_INT);
  }
  at = writeDecimal(out, at, incomplete);
  at = copyBytes(out, at, INTERVAL);
  at = writeDecimal(out, at, interval);
  at = copyBytes(out, at, MIN_INTERVAL);
  at = writeDecimal(out, at, minInterval);
  at = copyBytes(out, at, family === 6 ? PEERS6 : PEERS);
  at = stringLength(out, at, peersLength);
  if (peersLength === peers.length) {
    out.set(peers, at);
  } else {
    for (let i = 0; i < peersLength; i++) out[at + i] = peers[i];
  }
  at += peersLength;
  out[at] = 101; // 'e'
  return at + 1;
}

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function writeUtf8(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[at++] = c;
    } else if (c < 0x800) {
      out[at++] = 0xc0 | (c >> 6);
      out[at++] = 0x80 | (c & 63);
    } else {
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[at++] = 0xf0 | (c >> 18);
          out[at++] = 0x80 | ((c >> 12) & 63);
          out[at++] = 0x80 | ((c >> 6) & 63);
          out[at++] = 0x80 | (c & 63);
          continue;
        }
      }
      // Lone surrogates are written as U+FFFD, like TextEncoder does.
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd;
      out[at++] = 0xe0 | (c >> 12);
      out[at++] = 0x80 | ((c >> 6) & 63);
      out[at++] = 0x80 | (c & 63);
    }
  }
  return at;
}

/** Length `writeFailure` will produce for `reason`. */
export function failureLength(reason: string): number {
  const n = utf8Length(reason);
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  return FAILURE.length + digits + 1 + n + 1;
}

/** Writes `d14:failure reason<n>:<reason>e` (reason UTF-8 encoded). */
export function writeFailure(out: Uint8Array, reason: string): number {
  const n = utf8Length(reason);
  if (out.length < FAILURE.length + MAX_INT_LENGTH + 1 + n + 1) {
    throw new RangeError("failure reply buffer too small");
  }
  let at = copyBytes(out, 0, FAILURE);
  at = stringLength(out, at, n);
  at = writeUtf8(out, at, reason);
  out[at] = 101;
  return at + 1;
}

/** Bytes one `files` entry takes at most (three u32 counts). */
const MAX_SCRAPE_ENTRY_LENGTH = FILE_KEY.length + 20 + FILE_COMPLETE.length +
  FILE_DOWNLOADED.length + FILE_INCOMPLETE.length + 3 * 10 + 2;

/** Upper bound of a scrape reply with `count` entries (counts up to 2^32 - 1). */
export function maxScrapeReplyLength(count: number): number {
  return FILES.length + count * MAX_SCRAPE_ENTRY_LENGTH + 2;
}

/**
 * Streaming scrape writer, for a full scrape the caller builds itself: `writeScrapeStart`, then
 * `writeScrapeFile` per torrent in ascending raw byte order of the hashes without repeats (the
 * caller's duty), then `writeScrapeEnd`. Each returns the offset after what it wrote.
 */
export function writeScrapeStart(out: Uint8Array, at: number): number {
  return copyBytes(out, at, FILES);
}

/** One `<20-byte hash>d8:complete…e` entry of the files dictionary; see `writeScrapeStart`. */
export function writeScrapeFile(
  out: Uint8Array,
  at: number,
  hashes: Uint8Array,
  hashOffset: number,
  complete: number,
  downloaded: number,
  incomplete: number,
): number {
  at = copyBytes(out, at, FILE_KEY);
  for (let i = 0; i < 20; i++) out[at + i] = hashes[hashOffset + i];
  at = copyBytes(out, at + 20, FILE_COMPLETE);
  at = writeDecimal(out, at, complete);
  at = copyBytes(out, at, FILE_DOWNLOADED);
  at = writeDecimal(out, at, downloaded);
  at = copyBytes(out, at, FILE_INCOMPLETE);
  at = writeDecimal(out, at, incomplete);
  out[at] = 101;
  out[at + 1] = 101;
  return at + 2;
}

/** Closes the files dictionary and the reply; see `writeScrapeStart`. */
export function writeScrapeEnd(out: Uint8Array, at: number): number {
  out[at] = 101;
  out[at + 1] = 101;
  return at + 2;
}

const order = new Uint8Array(MAX_HTTP_SCRAPE_HASHES);
/** First 4 bytes of each hash as a big-endian u32: decides most comparisons in one step. */
const sortKeys = new Uint32Array(MAX_HTTP_SCRAPE_HASHES);

/** Compares hashes number a and b of `hashes` as raw bytes (sortKeys must be filled). */
function compareHashes(hashes: Uint8Array, a: number, b: number): number {
  const ka = sortKeys[a];
  const kb = sortKeys[b];
  if (ka !== kb) return ka < kb ? -1 : 1;
  const oa = a * 20;
  const ob = b * 20;
  for (let i = 4; i < 20; i++) {
    const d = hashes[oa + i] - hashes[ob + i];
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Writes a scrape reply for the `count` (≤ 64) hashes packed in `hashes` (20 bytes each, in request
 * order, repeats allowed). `counts` holds three numbers per hash, in the same order:
 * `counts[3i]` complete (seeders), `counts[3i+1]` downloaded, `counts[3i+2]` incomplete (leechers);
 * the caller fills it from the store, zeros for unknown torrents. The files dictionary is sorted by
 * raw bytes and a repeated hash appears once (with its first counts).
 */
export function writeScrapeReply(
  out: Uint8Array,
  hashes: Uint8Array,
  count: number,
  counts: Uint32Array,
): number {
  if (count > MAX_HTTP_SCRAPE_HASHES) throw new RangeError("too many scrape hashes");
  if (out.length < maxScrapeReplyLength(count)) throw new RangeError("scrape buffer too small");
  // Insertion sort of indices: at most 64 items, no allocation, stable (so the first repeat wins).
  for (let i = 0; i < count; i++) {
    const h = i * 20;
    sortKeys[i] =
      ((hashes[h] << 24) | (hashes[h + 1] << 16) | (hashes[h + 2] << 8) | hashes[h + 3]) >>>
      0;
    let j = i;
    while (j > 0 && compareHashes(hashes, order[j - 1], i) > 0) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
  let at = writeScrapeStart(out, 0);
  for (let k = 0; k < count; k++) {
    const i = order[k];
    if (k > 0 && compareHashes(hashes, order[k - 1], i) === 0) continue;
    at = writeScrapeFile(
      out,
      at,
      hashes,
      i * 20,
      counts[3 * i],
      counts[3 * i + 1],
      counts[3 * i + 2],
    );
  }
  return writeScrapeEnd(out, at);
}
