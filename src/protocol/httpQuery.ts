/**
 * Parses the query strings of HTTP announce and scrape requests.
 *
 * The query is read char code by char code and percent-decoded straight into byte arrays, because
 * info_hash and peer_id are arbitrary binary and must never pass through a text decoder. Nothing is
 * allocated per call: results land in a reused `AnnounceQuery` (or a caller buffer for scrape), and
 * failures are constant reason strings meant for a bencoded "failure reason".
 *
 * Policy decisions worth knowing:
 * - Parameter names are compared raw (an escaped name such as `info%5Fhash` is an unknown name).
 * - A raw char outside printable ASCII (control chars, DEL, anything >= 0x80) is an error: a client
 *   must escape binary, and accepting raw Latin-1 would make the bytes depend on how the server
 *   turned the request line into a string.
 * - Every value is checked for valid escapes, including ignored and unknown parameters.
 * - uploaded, downloaded and left are optional; a missing `left` counts as a leecher.
 * - A repeated info_hash or peer_id is an error; any other repeated parameter: the last one wins.
 */

import { EVENT_COMPLETED, EVENT_NONE, EVENT_STARTED, EVENT_STOPPED } from "./events.ts";

/** Most info hashes one HTTP scrape may ask for. */
export const MAX_HTTP_SCRAPE_HASHES = 64;

/** Longest `key` value accepted (it is ignored, but an absurd one hints at abuse). */
export const MAX_KEY_BYTES = 100;

/** Largest numwant reported; bigger requests are clamped, not refused. */
export const MAX_NUMWANT = 0x7fffffff;

/** The announce parameters the tracker cares about; one object is reused for every request. */
export class AnnounceQuery {
  infoHash = new Uint8Array(20);
  peerId = new Uint8Array(20);
  port = 0;
  uploaded = 0;
  downloaded = 0;
  /** Bytes left; 0 when the parameter was missing. Use `leftIsZero` to tell seeders. */
  left = 0;
  /** True only when `left` was given and is zero: the peer is a seeder. */
  leftIsZero = false;
  /** BEP 15 numbering (events.ts). */
  event = 0;
  /** -1 = not given. */
  numwant = -1;
  compact = 1;
  hasPeerId = false;
}

/**
 * The second result of the value readers below: where the value they read stopped, at its
 * terminating '&' or the end of the query. The caller passes one in and reads it right after the
 * call; a parse reuses one object (`valueEnd`) for all its values, so nothing is allocated.
 */
class ValueEnd {
  index = 0;
}

const valueEnd = new ValueEnd();

const BAD_ESCAPE = -2;
const BAD_CHAR = -3;

/**
 * Hex digit values by char code, -1 for anything else. It spans every UTF-16 code unit so any
 * charCodeAt result indexes it in bounds (a table read beats the compare chain in the escape loop).
 */
const HEX = new Int8Array(0x10000).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;

function encodingFailure(code: number): string {
  return code === BAD_CHAR ? "invalid character in query" : "invalid percent-encoding";
}

/**
 * Percent-decodes the value starting at `p` (up to the next '&' or the end) into `dest` at
 * `destOffset`, writing at most `capacity` bytes. Returns the full decoded length (which may exceed
 * `capacity`) or BAD_ESCAPE / BAD_CHAR, and where the value ended in `end`.
 */
function decodeValue(
  query: string,
  p: number,
  dest: Uint8Array,
  destOffset: number,
  capacity: number,
  end: ValueEnd,
): number {
  const n = query.length;
  let length = 0;
  while (p < n) {
    let c = query.charCodeAt(p);
    if (c === 38) break; // '&'
    if (c === 37) { // '%'
      if (p + 2 >= n) return BAD_ESCAPE;
      const hi = HEX[query.charCodeAt(p + 1)];
      const lo = HEX[query.charCodeAt(p + 2)];
      if ((hi | lo) < 0) return BAD_ESCAPE;
      c = (hi << 4) | lo;
      p += 3;
    } else {
      if (c < 0x20 || c >= 0x7f) return BAD_CHAR;
      if (c === 43) c = 32; // '+' is a space in form encoding
      p++;
    }
    if (length < capacity) dest[destOffset + length] = c;
    length++;
  }
  end.index = p;
  return length;
}

/** Like `decodeValue` but only validates and measures the value. */
function skipValue(query: string, p: number, end: ValueEnd): number {
  const n = query.length;
  let length = 0;
  while (p < n) {
    const c = query.charCodeAt(p);
    if (c === 38) break;
    if (c === 37) {
      if (
        p + 2 >= n || (HEX[query.charCodeAt(p + 1)] | HEX[query.charCodeAt(p + 2)]) < 0
      ) {
        return BAD_ESCAPE;
      }
      p += 3;
    } else {
      if (c < 0x20 || c >= 0x7f) return BAD_CHAR;
      p++;
    }
    length++;
  }
  end.index = p;
  return length;
}

const NOT_A_NUMBER = -1;

/**
 * Reads the non-negative decimal value starting at `p`, saturating at `clamp`. Returns it, or
 * NOT_A_NUMBER (empty, a non-digit, more than `maxDigits` digits), BAD_ESCAPE or BAD_CHAR, and
 * where the value ended in `end`. Escaped digits are accepted like raw ones.
 */
function decodeNumber(
  query: string,
  p: number,
  maxDigits: number,
  clamp: number,
  end: ValueEnd,
): number {
  const n = query.length;
  let value = 0;
  let digits = 0;
  while (p < n) {
    let c = query.charCodeAt(p);
    if (c === 38) break;
    if (c === 37) {
      if (p + 2 >= n) return BAD_ESCAPE;
      const hi = HEX[query.charCodeAt(p + 1)];
      const lo = HEX[query.charCodeAt(p + 2)];
      if ((hi | lo) < 0) return BAD_ESCAPE;
      c = (hi << 4) | lo;
      p += 3;
    } else {
      if (c < 0x20 || c >= 0x7f) return BAD_CHAR;
      p++;
    }
    if (c < 48 || c > 57 || ++digits > maxDigits) {
      // The rest of the value still decides between "not a number" and an encoding failure.
      const rest = skipValue(query, p, end);
      return rest < 0 ? rest : NOT_A_NUMBER;
    }
    value = value * 10 + (c - 48);
    if (value > clamp) value = clamp;
  }
  end.index = p;
  return digits === 0 ? NOT_A_NUMBER : value;
}

function codes(name: string): Uint8Array {
  return Uint8Array.from(name, (c) => c.charCodeAt(0));
}

// Names as byte arrays: reading a typed array is cheaper than charCodeAt on a literal.
const N_INFO_HASH = codes("info_hash");
const N_PEER_ID = codes("peer_id");
const N_PORT = codes("port");
const N_UPLOADED = codes("uploaded");
const N_DOWNLOADED = codes("downloaded");
const N_LEFT = codes("left");
const N_EVENT = codes("event");
const N_NUMWANT = codes("numwant");
const N_COMPACT = codes("compact");
const N_KEY = codes("key");

/** True if query[start, end) is exactly `name`. */
function nameIsExactly(query: string, start: number, end: number, name: Uint8Array): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (query.charCodeAt(start + i) !== name[i]) return false;
  }
  return true;
}

const P_UNKNOWN = 0;
const P_INFO_HASH = 1;
const P_PEER_ID = 2;
const P_PORT = 3;
const P_UPLOADED = 4;
const P_DOWNLOADED = 5;
const P_LEFT = 6;
const P_EVENT = 7;
const P_NUMWANT = 8;
const P_COMPACT = 9;
const P_KEY = 10;

/** Identifies a parameter by its name's length and first char, then confirms the whole name. */
function parameterOf(query: string, start: number, end: number): number {
  const first = query.charCodeAt(start);
  let candidate = P_UNKNOWN;
  let name = N_KEY;
  switch (end - start) {
    case 3:
      if (first === 107) candidate = P_KEY, name = N_KEY;
      break;
    case 4:
      if (first === 112) candidate = P_PORT, name = N_PORT;
      else if (first === 108) candidate = P_LEFT, name = N_LEFT;
      break;
    case 5:
      if (first === 101) candidate = P_EVENT, name = N_EVENT;
      break;
    case 7:
      if (first === 112) candidate = P_PEER_ID, name = N_PEER_ID;
      else if (first === 110) candidate = P_NUMWANT, name = N_NUMWANT;
      else if (first === 99) candidate = P_COMPACT, name = N_COMPACT;
      break;
    case 8:
      if (first === 117) candidate = P_UPLOADED, name = N_UPLOADED;
      break;
    case 9:
      if (first === 105) candidate = P_INFO_HASH, name = N_INFO_HASH;
      break;
    case 10:
      if (first === 100) candidate = P_DOWNLOADED, name = N_DOWNLOADED;
      break;
  }
  return candidate !== P_UNKNOWN && nameIsExactly(query, start, end, name) ? candidate : P_UNKNOWN;
}

/** Index just past the name starting at `p` (at its '=' or '&' or the end), or BAD_CHAR. */
function nameEnd(query: string, p: number): number {
  const n = query.length;
  while (p < n) {
    const c = query.charCodeAt(p);
    if (c === 61 || c === 38) break;
    if (c < 0x20 || c >= 0x7f) return BAD_CHAR;
    p++;
  }
  return p;
}

const eventScratch = new Uint8Array(9);

function eventMatches(length: number, name: string): boolean {
  if (length !== name.length) return false;
  for (let i = 0; i < length; i++) if (eventScratch[i] !== name.charCodeAt(i)) return false;
  return true;
}

/** Maps a decoded event value to BEP 15 numbering, or -1. "empty" and "paused" mean none. */
function eventOf(length: number): number {
  if (length === 0) return EVENT_NONE;
  if (length > eventScratch.length) return -1;
  if (eventMatches(length, "started")) return EVENT_STARTED;
  if (eventMatches(length, "completed")) return EVENT_COMPLETED;
  if (eventMatches(length, "stopped")) return EVENT_STOPPED;
  if (eventMatches(length, "paused") || eventMatches(length, "empty")) return EVENT_NONE;
  return -1;
}

/**
 * Reads the value at `p` of one parameter into `into`; returns a failure reason or null, and where
 * the value ended in `end`.
 */
function readAnnounceValue(
  query: string,
  p: number,
  parameter: number,
  into: AnnounceQuery,
  end: ValueEnd,
): string | null {
  let r: number;
  switch (parameter) {
    case P_INFO_HASH:
      r = decodeValue(query, p, into.infoHash, 0, 20, end);
      if (r < 0) return encodingFailure(r);
      return r === 20 ? null : "info_hash must be 20 bytes";
    case P_PEER_ID:
      r = decodeValue(query, p, into.peerId, 0, 20, end);
      if (r < 0) return encodingFailure(r);
      return r === 20 ? null : "peer_id must be 20 bytes";
    case P_PORT:
      r = decodeNumber(query, p, 5, 99999, end);
      if (r < NOT_A_NUMBER) return encodingFailure(r);
      if (r < 1 || r > 65535) return "invalid port";
      into.port = r;
      return null;
    case P_UPLOADED:
      r = decodeNumber(query, p, 20, Infinity, end);
      if (r < 0) return r === NOT_A_NUMBER ? "invalid uploaded" : encodingFailure(r);
      into.uploaded = r;
      return null;
    case P_DOWNLOADED:
      r = decodeNumber(query, p, 20, Infinity, end);
      if (r < 0) return r === NOT_A_NUMBER ? "invalid downloaded" : encodingFailure(r);
      into.downloaded = r;
      return null;
    case P_LEFT:
      r = decodeNumber(query, p, 20, Infinity, end);
      if (r < 0) return r === NOT_A_NUMBER ? "invalid left" : encodingFailure(r);
      into.left = r;
      into.leftIsZero = r === 0;
      return null;
    case P_EVENT:
      r = decodeValue(query, p, eventScratch, 0, eventScratch.length, end);
      if (r < 0) return encodingFailure(r);
      r = eventOf(r);
      if (r < 0) return "invalid event";
      into.event = r;
      return null;
    case P_NUMWANT:
      r = decodeNumber(query, p, Infinity, MAX_NUMWANT, end);
      if (r < 0) return r === NOT_A_NUMBER ? "invalid numwant" : encodingFailure(r);
      into.numwant = r;
      return null;
    case P_COMPACT:
      r = decodeNumber(query, p, 1, 9, end);
      if (r < NOT_A_NUMBER) return encodingFailure(r);
      if (r === 0) return "this tracker sends compact peer lists only (compact=1)";
      if (r !== 1) return "invalid compact";
      into.compact = 1;
      return null;
    case P_KEY:
      r = skipValue(query, p, end);
      if (r < 0) return encodingFailure(r);
      return r > MAX_KEY_BYTES ? "key is too long" : null;
    default:
      r = skipValue(query, p, end);
      return r < 0 ? encodingFailure(r) : null;
  }
}

/**
 * Parses the query part of an announce URL (text after '?', may be "") into `into`.
 * Returns null on success or a failure reason sentence for the client.
 */
export function parseAnnounceQuery(query: string, into: AnnounceQuery): string | null {
  into.port = 0;
  into.uploaded = 0;
  into.downloaded = 0;
  into.left = 0;
  into.leftIsZero = false;
  into.event = EVENT_NONE;
  into.numwant = -1;
  into.compact = 1;
  into.hasPeerId = false;
  let hasInfoHash = false;
  let hasPort = false;
  const n = query.length;
  let p = 0;
  while (p < n) {
    if (query.charCodeAt(p) === 38) { // empty segment
      p++;
      continue;
    }
    const end = nameEnd(query, p);
    if (end < 0) return "invalid character in query";
    const parameter = parameterOf(query, p, end);
    if (parameter === P_INFO_HASH) {
      if (hasInfoHash) return "duplicate info_hash";
      hasInfoHash = true;
    } else if (parameter === P_PEER_ID) {
      if (into.hasPeerId) return "duplicate peer_id";
      into.hasPeerId = true;
    } else if (parameter === P_PORT) {
      hasPort = true;
    }
    // A name without '=' has an empty value: the readers stop at once on '&' or the end.
    const failure = readAnnounceValue(
      query,
      end < n && query.charCodeAt(end) === 61 ? end + 1 : end,
      parameter,
      into,
      valueEnd,
    );
    if (failure !== null) return failure;
    p = valueEnd.index + 1;
  }
  if (!hasInfoHash) return "missing info_hash";
  if (!into.hasPeerId) return "missing peer_id";
  if (!hasPort) return "missing port";
  return null;
}

/**
 * Parses a scrape query: writes up to 64 info hashes (20 bytes each, in request order, duplicates
 * kept) into `out`, which must hold 64 * 20 bytes. Returns their count (0 = none given, i.e. a full
 * scrape) or a failure reason. Parameters other than info_hash are checked for encoding and ignored.
 */
export function parseScrapeQuery(query: string, out: Uint8Array): number | string {
  if (out.length < MAX_HTTP_SCRAPE_HASHES * 20) {
    throw new RangeError("scrape hash buffer too small");
  }
  let count = 0;
  const n = query.length;
  let p = 0;
  while (p < n) {
    if (query.charCodeAt(p) === 38) {
      p++;
      continue;
    }
    const end = nameEnd(query, p);
    if (end < 0) return "invalid character in query";
    const value = end < n && query.charCodeAt(end) === 61 ? end + 1 : end;
    if (nameIsExactly(query, p, end, N_INFO_HASH)) {
      if (count === MAX_HTTP_SCRAPE_HASHES) return "too many info hashes (max 64)";
      const r = decodeValue(query, value, out, count * 20, 20, valueEnd);
      if (r < 0) return encodingFailure(r);
      if (r !== 20) return "info_hash must be 20 bytes";
      count++;
    } else {
      const r = skipValue(query, value, valueEnd);
      if (r < 0) return encodingFailure(r);
    }
    p = valueEnd.index + 1;
  }
  return count;
}
