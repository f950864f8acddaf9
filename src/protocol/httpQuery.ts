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

// Decoding cursor shared by the helpers below; module state keeps the hot path allocation-free.
let pos = 0;
const END = -1;
const BAD_ESCAPE = -2;
const BAD_CHAR = -3;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** Next decoded byte of the value ending at `end`, or END / BAD_ESCAPE / BAD_CHAR. */
function nextByte(query: string, end: number): number {
  if (pos >= end) return END;
  const c = query.charCodeAt(pos);
  if (c === 37) { // '%'
    if (pos + 3 > end) return BAD_ESCAPE;
    const hi = hexValue(query.charCodeAt(pos + 1));
    const lo = hexValue(query.charCodeAt(pos + 2));
    if (hi < 0 || lo < 0) return BAD_ESCAPE;
    pos += 3;
    return (hi << 4) | lo;
  }
  if (c < 0x20 || c >= 0x7f) return BAD_CHAR;
  pos++;
  return c === 43 ? 32 : c; // '+' is a space in form encoding
}

function decodeFailure(b: number): string {
  return b === BAD_CHAR ? "invalid character in query" : "invalid percent-encoding";
}

// Results of the value readers below, again module state to avoid returning objects.
let decodedLength = 0;
let numberValue = 0;

/**
 * Decodes the value [pos, end) into `dest` at `destOffset`, writing at most `capacity` bytes but
 * counting all of them in `decodedLength`. Returns a failure reason or null.
 */
function decodeValue(
  query: string,
  end: number,
  dest: Uint8Array | null,
  destOffset: number,
  capacity: number,
): string | null {
  let n = 0;
  for (;;) {
    const b = nextByte(query, end);
    if (b < 0) {
      if (b === END) break;
      return decodeFailure(b);
    }
    if (n < capacity && dest !== null) dest[destOffset + n] = b;
    n++;
  }
  decodedLength = n;
  return null;
}

/**
 * Reads a non-negative decimal integer from [pos, end) into `numberValue`, saturating at `clamp`.
 * Returns null, `invalid` for an empty value, a non-digit or more than `maxDigits` digits, or an
 * encoding failure.
 */
function decodeNumber(
  query: string,
  end: number,
  maxDigits: number,
  clamp: number,
  invalid: string,
): string | null {
  let value = 0;
  let digits = 0;
  for (;;) {
    const b = nextByte(query, end);
    if (b < 0) {
      if (b === END) break;
      return decodeFailure(b);
    }
    if (b < 48 || b > 57) return invalid;
    if (++digits > maxDigits) return invalid;
    value = value * 10 + (b - 48);
    if (value > clamp) value = clamp;
  }
  if (digits === 0) return invalid;
  numberValue = value;
  return null;
}

/** True if query[start, end) is exactly `name` (an ASCII literal). */
function nameIs(query: string, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (query.charCodeAt(start + i) !== name.charCodeAt(i)) return false;
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

function parameterOf(query: string, start: number, end: number): number {
  switch (end - start) {
    case 3:
      return nameIs(query, start, end, "key") ? P_KEY : P_UNKNOWN;
    case 4:
      if (nameIs(query, start, end, "port")) return P_PORT;
      return nameIs(query, start, end, "left") ? P_LEFT : P_UNKNOWN;
    case 5:
      return nameIs(query, start, end, "event") ? P_EVENT : P_UNKNOWN;
    case 7:
      if (nameIs(query, start, end, "peer_id")) return P_PEER_ID;
      if (nameIs(query, start, end, "numwant")) return P_NUMWANT;
      return nameIs(query, start, end, "compact") ? P_COMPACT : P_UNKNOWN;
    case 8:
      return nameIs(query, start, end, "uploaded") ? P_UPLOADED : P_UNKNOWN;
    case 9:
      return nameIs(query, start, end, "info_hash") ? P_INFO_HASH : P_UNKNOWN;
    case 10:
      return nameIs(query, start, end, "downloaded") ? P_DOWNLOADED : P_UNKNOWN;
    default:
      return P_UNKNOWN;
  }
}

// Bounds of the parameter found by nextParameter; valueStart === -1 means "no '='".
let nameStart = 0;
let nameEnd = 0;
let valueStart = 0;
let valueEnd = 0;

/**
 * Finds the next `name[=value]` segment from `pos`, leaving pos after its '&'. Returns false at the
 * end of the query or a failure reason for a bad char in the name (values are checked when read).
 */
function nextParameter(query: string): boolean | string {
  const n = query.length;
  while (pos < n && query.charCodeAt(pos) === 38) pos++; // skip empty segments
  if (pos >= n) return false;
  nameStart = pos;
  let c = 0;
  while (pos < n && (c = query.charCodeAt(pos)) !== 61 && c !== 38) {
    if (c < 0x20 || c >= 0x7f) return "invalid character in query";
    pos++;
  }
  nameEnd = pos;
  if (pos < n && c === 61) {
    valueStart = ++pos;
    while (pos < n && query.charCodeAt(pos) !== 38) pos++;
    valueEnd = pos;
  } else {
    valueStart = valueEnd = pos;
  }
  pos = valueEnd + 1;
  return true;
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
  if (eventMatches(length, "started")) return EVENT_STARTED;
  if (eventMatches(length, "completed")) return EVENT_COMPLETED;
  if (eventMatches(length, "stopped")) return EVENT_STOPPED;
  if (eventMatches(length, "paused") || eventMatches(length, "empty")) return EVENT_NONE;
  return -1;
}

/** Reads one parameter's value (already located) into `into`; returns a failure reason or null. */
function readAnnounceValue(query: string, parameter: number, into: AnnounceQuery): string | null {
  // Each reader decodes from valueStart; the segment cursor is restored by the caller.
  pos = valueStart;
  const end = valueEnd;
  let failure: string | null;
  switch (parameter) {
    case P_INFO_HASH:
      failure = decodeValue(query, end, into.infoHash, 0, 20);
      if (failure === null && decodedLength !== 20) return "info_hash must be 20 bytes";
      return failure;
    case P_PEER_ID:
      failure = decodeValue(query, end, into.peerId, 0, 20);
      if (failure === null && decodedLength !== 20) return "peer_id must be 20 bytes";
      return failure;
    case P_PORT:
      failure = decodeNumber(query, end, 5, 99999, "invalid port");
      if (failure !== null) return failure;
      if (numberValue < 1 || numberValue > 65535) return "invalid port";
      into.port = numberValue;
      return null;
    case P_UPLOADED:
      failure = decodeNumber(query, end, 20, Infinity, "invalid uploaded");
      if (failure === null) into.uploaded = numberValue;
      return failure;
    case P_DOWNLOADED:
      failure = decodeNumber(query, end, 20, Infinity, "invalid downloaded");
      if (failure === null) into.downloaded = numberValue;
      return failure;
    case P_LEFT:
      failure = decodeNumber(query, end, 20, Infinity, "invalid left");
      if (failure === null) {
        into.left = numberValue;
        into.leftIsZero = numberValue === 0;
      }
      return failure;
    case P_EVENT: {
      failure = decodeValue(query, end, eventScratch, 0, eventScratch.length);
      if (failure !== null) return failure;
      const event = decodedLength > eventScratch.length ? -1 : eventOf(decodedLength);
      if (event < 0) return "invalid event";
      into.event = event;
      return null;
    }
    case P_NUMWANT:
      failure = decodeNumber(query, end, Infinity, MAX_NUMWANT, "invalid numwant");
      if (failure === null) into.numwant = numberValue;
      return failure;
    case P_COMPACT:
      failure = decodeNumber(query, end, 1, 9, "invalid compact");
      if (failure !== null) return failure;
      if (numberValue === 0) return "this tracker sends compact peer lists only (compact=1)";
      if (numberValue !== 1) return "invalid compact";
      into.compact = 1;
      return null;
    case P_KEY:
      failure = decodeValue(query, end, null, 0, 0);
      if (failure === null && decodedLength > MAX_KEY_BYTES) return "key is too long";
      return failure;
    default:
      return decodeValue(query, end, null, 0, 0);
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
  pos = 0;
  for (;;) {
    const found = nextParameter(query);
    if (found === false) break;
    if (found !== true) return found;
    const next = pos;
    const parameter = parameterOf(query, nameStart, nameEnd);
    if (parameter === P_INFO_HASH) {
      if (hasInfoHash) return "duplicate info_hash";
      hasInfoHash = true;
    } else if (parameter === P_PEER_ID) {
      if (into.hasPeerId) return "duplicate peer_id";
      into.hasPeerId = true;
    } else if (parameter === P_PORT) {
      hasPort = true;
    }
    const failure = readAnnounceValue(query, parameter, into);
    if (failure !== null) return failure;
    pos = next;
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
  pos = 0;
  for (;;) {
    const found = nextParameter(query);
    if (found === false) break;
    if (found !== true) return found;
    const next = pos;
    pos = valueStart;
    if (nameIs(query, nameStart, nameEnd, "info_hash")) {
      if (count === MAX_HTTP_SCRAPE_HASHES) return "too many info hashes (max 64)";
      const failure = decodeValue(query, valueEnd, out, count * 20, 20);
      if (failure !== null) return failure;
      if (decodedLength !== 20) return "info_hash must be 20 bytes";
      count++;
    } else {
      const failure = decodeValue(query, valueEnd, null, 0, 0);
      if (failure !== null) return failure;
    }
    pos = next;
  }
  return count;
}
