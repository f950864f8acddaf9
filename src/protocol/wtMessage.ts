/**
 * WebTorrent tracker requests (JSON text messages over a WebSocket, as the `webtorrent` and
 * `bittorrent-tracker` clients send them; shapes in ../shared/notes/webtorrent.md): one message in,
 * a typed request (an announce, an answer to an offer, a scrape) or a failure reason out. Pure.
 *
 * The message is read as bytes (jsonScan.ts), with no object or string made per message: the JSON
 * syntax is checked as JSON.parse would (any nesting depth, walked without recursion), the fields
 * that matter are found as byte ranges, ids are decoded into the request's own arrays, and an
 * SDP stays where it is: the request says where its JSON string lies in the message, and the
 * frame that forwards it copies those bytes. The message is at most MAX_WT_MESSAGE bytes and
 * valid UTF-8 (the frame reader's caps and checks).
 *
 * Rules (aquatic_ws's, which bittorrent-tracker lacks; README → WebTorrent):
 * - The message is an object with `action` "announce" or "scrape".
 * - `info_hash`, `peer_id`, `offer_id`, `to_peer_id` are "binary strings": exactly 20 characters,
 *   each U+0000–U+00FF (one byte each).
 * - An announce carrying an `answer` (not null) is an answer to an offer: it needs `to_peer_id`,
 *   `offer_id` and `answer: { type: "answer", sdp }`; its other fields (event, offers, …) are
 *   ignored, as real answers carry none.
 * - Otherwise an announce: `event` absent, "started", "stopped", "completed" or "update" (same as
 *   absent); `uploaded`, `downloaded` absent or numbers ≥ 0; `left` absent or null (unknown: a
 *   magnet leecher) or a number ≥ 0; `numwant` absent or a number ≥ 0; `offers` absent or an array.
 *   Only its first MAX_OFFERS entries are read (the rest are only checked to be JSON), and each of
 *   those must be `{ offer_id, offer: { type: "offer", sdp } }`: one bad offer (null, not an
 *   object, a wrong type, an SDP over MAX_SDP) refuses the whole announce, as aquatic_ws does,
 *   rather than forwarding part of what the client meant (bittorrent-tracker crashes on
 *   `offers: [null]`).
 * - A scrape's `info_hash` is one binary string or a list of 1 to MAX_WT_SCRAPE of them.
 * - Unknown fields are ignored; a field given twice counts as its last value (as JSON.parse).
 *   Numbers are JSON numbers, never strings.
 * On a failure, `action` and `infoHash` (`hasInfoHash`) hold what could be read of the message,
 * so that the error reply can carry them: the client drops any reply without its info_hash.
 */
import {
  type AnnounceEvent,
  EVENT_COMPLETED,
  EVENT_NONE,
  EVENT_STARTED,
  EVENT_STOPPED,
} from "./events.ts";
import {
  forgetStrings,
  isArray,
  isObject,
  isString,
  isWord,
  readNumber,
  readObject,
  readOneByteString,
  skipValue,
  skipWhitespace,
  stringEquals,
  stringUnits,
} from "./jsonScan.ts";

const NO_MESSAGE = new Uint8Array(0);

/** Longest message parsed, in bytes (the frame reader's cap). */
export const MAX_WT_MESSAGE = 65536;
/** Offers read from one announce. */
export const MAX_OFFERS = 10;
/** Longest SDP in an offer or answer, in UTF-16 units. */
export const MAX_SDP = 16384;
/** Most info hashes in one scrape. */
export const MAX_WT_SCRAPE = 64;
/** Bytes of an id (info_hash, peer_id, offer_id). */
export const ID_BYTES = 20;

export const WT_ANNOUNCE = 1;
export const WT_ANSWER = 2;
export const WT_SCRAPE = 3;
export type WtKind = 0 | 1 | 2 | 3;

export type WtAction = "announce" | "scrape";

/** One parsed request, reused: fields not belonging to `kind` hold stale values. */
export class WtRequest {
  kind: WtKind = 0;
  /** The action to answer with, also after a failure ("announce" when it was unreadable). */
  action: WtAction = "announce";
  /** Whether `infoHash` holds the message's (first) info hash, also after a failure. */
  hasInfoHash = false;
  readonly infoHash = new Uint8Array(ID_BYTES);
  readonly peerId = new Uint8Array(ID_BYTES);
  /** The message parsed (the SDPs are ranges of it): valid while it is handled. */
  message: Uint8Array = NO_MESSAGE;

  // announce
  event: AnnounceEvent = EVENT_NONE;
  uploaded = 0;
  downloaded = 0;
  /** Bytes left, or -1 when the client does not know (`left` null or absent): a leecher. */
  left = -1;
  /** numwant as sent, or -1 when absent. */
  numwant = -1;
  offerCount = 0;
  /** Offer i's id at [20 i, 20 i + 20). */
  readonly offerIds = new Uint8Array(MAX_OFFERS * ID_BYTES);
  /** Offer i's SDP: its JSON string (quotes and escapes as sent) at message[start i, end i). */
  readonly offerSdpStarts = new Int32Array(MAX_OFFERS);
  readonly offerSdpEnds = new Int32Array(MAX_OFFERS);

  // answer
  readonly toPeerId = new Uint8Array(ID_BYTES);
  readonly offerId = new Uint8Array(ID_BYTES);
  /** The answer's SDP: its JSON string at message[answerSdpStart, answerSdpEnd). */
  answerSdpStart = 0;
  answerSdpEnd = 0;

  // scrape
  scrapeCount = 0;
  /** Hash i at [20 i, 20 i + 20). */
  readonly scrapeHashes = new Uint8Array(MAX_WT_SCRAPE * ID_BYTES);
}

/**
 * Copies a binary string (20 characters, each ≤ U+00FF) into out[o, o + 20); false, leaving out
 * partly written, if `value` is anything else.
 */
export function readBinaryId(value: unknown, out: Uint8Array, o: number): boolean {
  if (typeof value !== "string" || value.length !== ID_BYTES) return false;
  for (let i = 0; i < ID_BYTES; i++) {
    const c = value.charCodeAt(i);
    if (c > 0xff) return false;
    out[o + i] = c;
  }
  return true;
}

/** The binary string of bytes[o, o + 20): one character per byte. */
export function binaryIdString(bytes: Uint8Array, o = 0): string {
  return String.fromCharCode(
    bytes[o],
    bytes[o + 1],
    bytes[o + 2],
    bytes[o + 3],
    bytes[o + 4],
    bytes[o + 5],
    bytes[o + 6],
    bytes[o + 7],
    bytes[o + 8],
    bytes[o + 9],
    bytes[o + 10],
    bytes[o + 11],
    bytes[o + 12],
    bytes[o + 13],
    bytes[o + 14],
    bytes[o + 15],
    bytes[o + 16],
    bytes[o + 17],
    bytes[o + 18],
    bytes[o + 19],
  );
}

// Fields, by where their values are kept (0: a field no rule reads).
const F_ACTION = 1;
const F_INFO_HASH = 2;
const F_PEER_ID = 3;
const F_ANSWER = 4;
const F_TO_PEER_ID = 5;
const F_OFFER_ID = 6;
const F_OFFERS = 7;
const F_EVENT = 8;
const F_UPLOADED = 9;
const F_DOWNLOADED = 10;
const F_LEFT = 11;
const F_NUMWANT = 12;
const F_OFFER = 13;
const F_TYPE = 14;
const F_SDP = 15;
const FIELDS = 16;
const FIELD_NAMES = [
  "",
  "action",
  "info_hash",
  "peer_id",
  "answer",
  "to_peer_id",
  "offer_id",
  "offers",
  "event",
  "uploaded",
  "downloaded",
  "left",
  "numwant",
  "offer",
  "type",
  "sdp",
];

/** FIELD_NAMES as bytes, and the fields by the length of their names. */
const FIELD_BYTES = FIELD_NAMES.map((name) => Uint8Array.from(name, (c) => c.charCodeAt(0)));
const FIELDS_BY_LENGTH: number[][] = [];
for (let f = 1; f < FIELDS; f++) (FIELDS_BY_LENGTH[FIELD_NAMES[f].length] ??= []).push(f);

/** Which field the key token b[start, end) names (escaped spellings too), or 0. */
function fieldOf(b: Uint8Array, start: number, end: number): number {
  const length = end - start - 2;
  let plain = true;
  for (let i = start + 1; i < end - 1 && plain; i++) plain = b[i] !== 0x5c && b[i] < 0x80;
  if (plain) {
    // Spelled plainly (as every client does), a key is a name of its length, byte for byte.
    const candidates = FIELDS_BY_LENGTH[length];
    if (candidates === undefined) return 0;
    for (let c = 0; c < candidates.length; c++) {
      const name = FIELD_BYTES[candidates[c]];
      let k = 0;
      while (k < length && b[start + 1 + k] === name[k]) k++;
      if (k === length) return candidates[c];
    }
    return 0;
  }
  // Escaped (rare): longer than the name it spells.
  for (let f = 1; f < FIELDS; f++) {
    if (FIELD_NAMES[f].length < length && stringEquals(b, start, end, FIELD_NAMES[f])) return f;
  }
  return 0;
}

// Where each field's value lies: the message's fields, one offer's or the answer's, and an
// offer's `offer`. Reused: parsing is synchronous.
const topStarts = new Int32Array(FIELDS);
const topEnds = new Int32Array(FIELDS);
const innerStarts = new Int32Array(FIELDS);
const innerEnds = new Int32Array(FIELDS);
const sdpStarts = new Int32Array(FIELDS);
const sdpEnds = new Int32Array(FIELDS);

/** A JSON number ≥ 0 at the field, or `fallback` when absent; NaN when present and anything else. */
function count(b: Uint8Array, f: number, fallback: number): number {
  const start = topStarts[f];
  if (start < 0) return fallback;
  const value = readNumber(b, start, topEnds[f]);
  return value >= 0 && value <= Number.MAX_SAFE_INTEGER ? value : NaN;
}

/**
 * Checks `{ type, sdp }` at b[start, end) (the field's value, -1 when absent): null when it holds
 * an SDP of the type, its token's range then in sdpStarts/sdpEnds[F_SDP]; else the failure reason.
 */
function sdpOf(b: Uint8Array, start: number, end: number, type: "offer" | "answer"): string | null {
  if (!isObject(b, start)) return `${type} is not an object`;
  readObject(b, start, end, fieldOf, sdpStarts, sdpEnds);
  if (!stringEquals(b, sdpStarts[F_TYPE], sdpEnds[F_TYPE], type)) {
    return `${type} type is not "${type}"`;
  }
  const sdp = sdpStarts[F_SDP];
  if (!isString(b, sdp)) return `${type} sdp is not a string`;
  // Units are at most bytes: only a long one needs counting.
  const sdpEnd = sdpEnds[F_SDP];
  if (sdpEnd - sdp - 2 > MAX_SDP && stringUnits(b, sdp, sdpEnd) > MAX_SDP) {
    return `${type} sdp over ${MAX_SDP} characters`;
  }
  return null;
}

/**
 * Parses one text message, the UTF-8 bytes `message`, into `out`. Returns null when `out` holds a
 * request of `out.kind`, or the failure reason to send (with `out.action` and `out.infoHash` for
 * the reply). `out.message` is `message` then: the SDPs are ranges of it.
 */
export function parseWtMessage(message: Uint8Array, out: WtRequest): string | null {
  out.kind = 0;
  out.action = "announce";
  out.hasInfoHash = false;
  out.message = message;
  if (message.length > MAX_WT_MESSAGE) return "message too long";
  forgetStrings(message);
  const failure = parseMessage(message, out);
  forgetStrings(NO_MESSAGE); // holds no view of the read buffer the message is in
  return failure;
}

function parseMessage(b: Uint8Array, out: WtRequest): string | null {
  const end = b.length;
  const start = skipWhitespace(b, 0, end);
  const valueEnd = isObject(b, start)
    ? readObject(b, start, end, fieldOf, topStarts, topEnds)
    : skipValue(b, start, end);
  if (valueEnd < 0 || skipWhitespace(b, valueEnd, end) !== end) return "message is not JSON";
  if (!isObject(b, start)) return "message is not a JSON object";
  const action = topStarts[F_ACTION];
  const actionEnd = topEnds[F_ACTION];
  if (stringEquals(b, action, actionEnd, "scrape")) {
    out.action = "scrape";
    return parseScrape(b, out);
  }
  if (!stringEquals(b, action, actionEnd, "announce")) return "unknown action";
  out.hasInfoHash = readId(b, F_INFO_HASH, out.infoHash, 0);
  if (!out.hasInfoHash) return "invalid info_hash";
  if (!readId(b, F_PEER_ID, out.peerId, 0)) return "invalid peer_id";
  const answer = topStarts[F_ANSWER];
  if (answer >= 0 && !isWord(b, answer, topEnds[F_ANSWER], "null")) return parseAnswer(b, out);
  return parseAnnounce(b, out);
}

/** Reads the message's field `f` as a binary id into out[o, o + 20). */
function readId(b: Uint8Array, f: number, out: Uint8Array, o: number): boolean {
  return readOneByteString(b, topStarts[f], topEnds[f], out, o, ID_BYTES);
}

function parseAnswer(b: Uint8Array, out: WtRequest): string | null {
  if (!readId(b, F_TO_PEER_ID, out.toPeerId, 0)) return "invalid to_peer_id";
  if (!readId(b, F_OFFER_ID, out.offerId, 0)) return "invalid offer_id";
  const failure = sdpOf(b, topStarts[F_ANSWER], topEnds[F_ANSWER], "answer");
  if (failure !== null) return failure;
  out.answerSdpStart = sdpStarts[F_SDP];
  out.answerSdpEnd = sdpEnds[F_SDP];
  out.kind = WT_ANSWER;
  return null;
}

const EVENTS = ["update", "started", "stopped", "completed"];
const EVENT_CODES: AnnounceEvent[] = [EVENT_NONE, EVENT_STARTED, EVENT_STOPPED, EVENT_COMPLETED];

function parseAnnounce(b: Uint8Array, out: WtRequest): string | null {
  const event = topStarts[F_EVENT];
  if (event < 0) {
    out.event = EVENT_NONE;
  } else {
    let e = 0;
    while (e < EVENTS.length && !stringEquals(b, event, topEnds[F_EVENT], EVENTS[e])) e++;
    if (e === EVENTS.length) return "invalid event";
    out.event = EVENT_CODES[e];
  }
  out.uploaded = count(b, F_UPLOADED, 0);
  if (Number.isNaN(out.uploaded)) return "invalid uploaded";
  out.downloaded = count(b, F_DOWNLOADED, 0);
  if (Number.isNaN(out.downloaded)) return "invalid downloaded";
  out.left = isWord(b, topStarts[F_LEFT], topEnds[F_LEFT], "null") ? -1 : count(b, F_LEFT, -1);
  if (Number.isNaN(out.left)) return "invalid left";
  out.numwant = count(b, F_NUMWANT, -1);
  if (Number.isNaN(out.numwant)) return "invalid numwant";

  out.offerCount = 0;
  let i = topStarts[F_OFFERS];
  if (i >= 0) {
    if (!isArray(b, i)) return "offers is not an array";
    const end = topEnds[F_OFFERS];
    i = skipWhitespace(b, i + 1, end);
    let n = 0;
    // The array is valid JSON (checked with the message): walk its first MAX_OFFERS entries.
    while (b[i] !== 0x5d && n < MAX_OFFERS) {
      const offerEnd = skipValue(b, i, end);
      if (!isObject(b, i)) return "an offer is not an object";
      readObject(b, i, offerEnd, fieldOf, innerStarts, innerEnds);
      if (
        !readOneByteString(
          b,
          innerStarts[F_OFFER_ID],
          innerEnds[F_OFFER_ID],
          out.offerIds,
          n * ID_BYTES,
          ID_BYTES,
        )
      ) {
        return "invalid offer_id";
      }
      const failure = sdpOf(b, innerStarts[F_OFFER], innerEnds[F_OFFER], "offer");
      if (failure !== null) return failure;
      out.offerSdpStarts[n] = sdpStarts[F_SDP];
      out.offerSdpEnds[n] = sdpEnds[F_SDP];
      n++;
      i = skipWhitespace(b, offerEnd, end);
      if (b[i] === 0x2c) i = skipWhitespace(b, i + 1, end);
    }
    out.offerCount = n;
  }
  out.kind = WT_ANNOUNCE;
  return null;
}

function parseScrape(b: Uint8Array, out: WtRequest): string | null {
  let i = topStarts[F_INFO_HASH];
  if (isString(b, i)) {
    out.hasInfoHash = readId(b, F_INFO_HASH, out.infoHash, 0);
    if (!out.hasInfoHash) return "invalid info_hash";
    out.scrapeHashes.set(out.infoHash);
    out.scrapeCount = 1;
    out.kind = WT_SCRAPE;
    return null;
  }
  // No full scrape over WebSocket (as aquatic_ws): a list of at least one hash is needed.
  if (!isArray(b, i)) return "scrape needs info_hash";
  const end = topEnds[F_INFO_HASH];
  i = skipWhitespace(b, i + 1, end);
  let n = 0;
  let valid = true;
  // Counted to the end first (a list over MAX_WT_SCRAPE is refused as such), read as it goes.
  while (b[i] !== 0x5d) {
    const hashEnd = skipValue(b, i, end);
    if (n < MAX_WT_SCRAPE && valid) {
      valid = readOneByteString(b, i, hashEnd, out.scrapeHashes, n * ID_BYTES, ID_BYTES);
    }
    n++;
    i = skipWhitespace(b, hashEnd, end);
    if (b[i] === 0x2c) i = skipWhitespace(b, i + 1, end);
  }
  if (n === 0) return "scrape needs info_hash";
  if (n > MAX_WT_SCRAPE) return `scrape of over ${MAX_WT_SCRAPE} info_hash`;
  if (!valid) return "invalid info_hash";
  out.infoHash.set(out.scrapeHashes.subarray(0, ID_BYTES));
  out.hasInfoHash = true;
  out.scrapeCount = n;
  out.kind = WT_SCRAPE;
  return null;
}
