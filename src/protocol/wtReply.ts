/**
 * WebTorrent tracker replies as UTF-8 JSON bytes written into caller-owned buffers (the payload of
 * a WebSocket text frame; wsFrame.ts `writeTextHeaderBefore` puts the header in front): the
 * announce reply, an offer forwarded to another peer, an answer relayed to the offerer, the scrape
 * reply, and errors. Every one carries `action` and `info_hash`, since a client drops any message
 * without its info_hash (one socket serves many torrents).
 *
 * Strings are escaped exactly as JSON.stringify does (so `TextEncoder(JSON.stringify(x))` is the
 * test oracle): `"` `\` and control characters escaped, a lone surrogate as \uXXXX, everything
 * else as UTF-8, so a binary id's bytes ≥ 0x80 become 2-byte UTF-8 characters that the client's
 * JSON.parse turns back into the same one-byte characters. An SDP is the exception: it is copied
 * as its sender wrote it, a JSON string already (wtMessage.ts checked it), so the receiver's
 * JSON.parse reads the same text. No allocation: constant key runs are encoded once, numbers by
 * `writeDecimal`. Each writer throws (a bug, not a bad request) when the buffer cannot hold its
 * worst case, which `wt*MaxLength` give.
 */
import { writeDecimal } from "./httpReply.ts";
import { ID_BYTES } from "./wtMessage.ts";
import { ascii, copyBytes } from "./asciiBytes.ts";

const ANNOUNCE_HASH = ascii('{"action":"announce","info_hash":');
const SCRAPE_FILES = ascii('{"action":"scrape","files":{');
const SCRAPE_HASH = ascii('{"action":"scrape","info_hash":');
const COMPLETE = ascii(',"complete":');
const INCOMPLETE = ascii(',"incomplete":');
const INTERVAL = ascii(',"interval":');
const PEER_ID = ascii(',"peer_id":');
const OFFER_ID = ascii(',"offer_id":');
const OFFER = ascii(',"offer":{"type":"offer","sdp":');
const ANSWER = ascii(',"answer":{"type":"answer","sdp":');
const FAILURE = ascii(',"failure reason":');
const FILE_COMPLETE = ascii(':{"complete":');
const FILE_DOWNLOADED = ascii(',"downloaded":');
const FLAGS = ascii('},"flags":{"min_request_interval":');
const ACTION_ANNOUNCE = ascii('{"action":"announce"');
const ACTION_SCRAPE = ascii('{"action":"scrape"');
const INFO_HASH = ascii(',"info_hash":');
const HEX = ascii("0123456789abcdef");

/** Longest escaped form of one UTF-16 unit: \u00XX or a lone surrogate's \uXXXX. */
const MAX_BYTES_PER_UNIT = 6;
/** A quoted binary id: 20 characters of at most 6 bytes each. */
const MAX_ID_JSON = 2 + ID_BYTES * MAX_BYTES_PER_UNIT;
/** A number written by writeDecimal. */
const MAX_NUMBER = 17;

function need(out: Uint8Array, o: number, bytes: number): void {
  if (o + bytes > out.length) throw new RangeError(`reply needs up to ${bytes} bytes`);
}

/** Writes the escape of ASCII code c < 0x80 that JSON needs, or c itself; returns the end. */
function writeAsciiUnit(out: Uint8Array, o: number, c: number): number {
  if (c >= 0x20 && c !== 0x22 && c !== 0x5c) {
    out[o] = c;
    return o + 1;
  }
  out[o] = 0x5c; // backslash
  switch (c) {
    case 0x22:
    case 0x5c:
      out[o + 1] = c;
      return o + 2;
    case 0x08:
      out[o + 1] = 0x62; // b
      return o + 2;
    case 0x09:
      out[o + 1] = 0x74; // t
      return o + 2;
    case 0x0a:
      out[o + 1] = 0x6e; // n
      return o + 2;
    case 0x0c:
      out[o + 1] = 0x66; // f
      return o + 2;
    case 0x0d:
      out[o + 1] = 0x72; // r
      return o + 2;
    default:
      return writeUnicodeEscape(out, o, c);
  }
}

/** \uXXXX with lower-case hex (as JSON.stringify), the backslash already at out[o]. */
function writeUnicodeEscape(out: Uint8Array, o: number, c: number): number {
  out[o] = 0x5c;
  out[o + 1] = 0x75; // u
  out[o + 2] = HEX[(c >>> 12) & 15];
  out[o + 3] = HEX[(c >>> 8) & 15];
  out[o + 4] = HEX[(c >>> 4) & 15];
  out[o + 5] = HEX[c & 15];
  return o + 6;
}

/** Strings longer than this (SDPs) are escaped by JSON.stringify and encoded natively. */
const NATIVE_FROM = 64;
const utf8 = new TextEncoder();

/** Writes `text` as a quoted JSON string in UTF-8; returns the end (≤ o + 2 + 6 × length). */
export function writeJsonString(out: Uint8Array, o: number, text: string): number {
  if (text.length > NATIVE_FROM) {
    // JSON.stringify escapes as the loop below does (it is the oracle), and leaves no lone
    // surrogate for encodeInto; for a 530-character SDP both native calls together took 1.3 µs
    // against the loop's 1.7 µs (one short-lived string more, beside JSON.parse's of the message).
    // The caller reserved 2 + 6 × length bytes, which always holds it.
    return o + utf8.encodeInto(JSON.stringify(text), out.subarray(o)).written;
  }
  out[o++] = 0x22;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      o = writeAsciiUnit(out, o, c);
    } else if (c < 0x800) {
      out[o++] = 0xc0 | (c >>> 6);
      out[o++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      out[o++] = 0xe0 | (c >>> 12);
      out[o++] = 0x80 | ((c >>> 6) & 0x3f);
      out[o++] = 0x80 | (c & 0x3f);
    } else {
      const low = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        out[o++] = 0xf0 | (cp >>> 18);
        out[o++] = 0x80 | ((cp >>> 12) & 0x3f);
        out[o++] = 0x80 | ((cp >>> 6) & 0x3f);
        out[o++] = 0x80 | (cp & 0x3f);
        i++;
      } else {
        o = writeUnicodeEscape(out, o, c); // a lone surrogate, as well-formed JSON.stringify
      }
    }
  }
  out[o++] = 0x22;
  return o;
}

/** Writes bytes[at, at + 20) as a quoted JSON binary string (one character per byte). */
export function writeBinaryId(out: Uint8Array, o: number, bytes: Uint8Array, at = 0): number {
  out[o++] = 0x22;
  for (let i = at; i < at + ID_BYTES; i++) {
    const c = bytes[i];
    if (c < 0x80) {
      o = writeAsciiUnit(out, o, c);
    } else {
      out[o++] = 0xc0 | (c >>> 6);
      out[o++] = 0x80 | (c & 0x3f);
    }
  }
  out[o++] = 0x22;
  return o;
}

/** Worst case of `writeWtAnnounceReply`. */
export const WT_ANNOUNCE_REPLY_MAX = ANNOUNCE_HASH.length + MAX_ID_JSON + COMPLETE.length +
  INCOMPLETE.length + INTERVAL.length + 3 * MAX_NUMBER + 1;

/** `{"action":"announce","info_hash":…,"complete":N,"incomplete":N,"interval":N}` */
export function writeWtAnnounceReply(
  out: Uint8Array,
  o: number,
  infoHash: Uint8Array,
  complete: number,
  incomplete: number,
  interval: number,
): number {
  need(out, o, WT_ANNOUNCE_REPLY_MAX);
  o = copyBytes(out, o, ANNOUNCE_HASH);
  o = writeBinaryId(out, o, infoHash);
  o = writeDecimal(out, copyBytes(out, o, COMPLETE), complete);
  o = writeDecimal(out, copyBytes(out, o, INCOMPLETE), incomplete);
  o = writeDecimal(out, copyBytes(out, o, INTERVAL), interval);
  out[o] = 0x7d;
  return o + 1;
}

/** Worst case of `writeWtOffer` / `writeWtAnswer` for an SDP whose JSON string is `sdpBytes` long. */
export function wtSignalMaxLength(sdpBytes: number): number {
  return ANNOUNCE_HASH.length + 3 * MAX_ID_JSON + PEER_ID.length + OFFER_ID.length +
    Math.max(OFFER.length, ANSWER.length) + sdpBytes + 2;
}

function writeSignal(
  out: Uint8Array,
  o: number,
  infoHash: Uint8Array,
  peerId: Uint8Array,
  offerIds: Uint8Array,
  offerIdAt: number,
  kind: Uint8Array,
  sdp: Uint8Array,
  sdpStart: number,
  sdpEnd: number,
): number {
  need(out, o, wtSignalMaxLength(sdpEnd - sdpStart));
  o = copyBytes(out, o, ANNOUNCE_HASH);
  o = writeBinaryId(out, o, infoHash);
  o = writeBinaryId(out, copyBytes(out, o, PEER_ID), peerId);
  o = writeBinaryId(out, copyBytes(out, o, OFFER_ID), offerIds, offerIdAt);
  o = copyBytes(out, o, kind);
  out.set(sdp.subarray(sdpStart, sdpEnd), o);
  o += sdpEnd - sdpStart;
  out[o++] = 0x7d;
  out[o++] = 0x7d;
  return o;
}

/**
 * An offer forwarded to another peer: `{"action":"announce","info_hash":…,"peer_id":<offerer>,
 * "offer_id":…,"offer":{"type":"offer","sdp":…}}`; the offer id at offerIds[offerIdAt], the SDP
 * the JSON string at sdp[sdpStart, sdpEnd).
 */
export function writeWtOffer(
  out: Uint8Array,
  o: number,
  infoHash: Uint8Array,
  offererPeerId: Uint8Array,
  offerIds: Uint8Array,
  offerIdAt: number,
  sdp: Uint8Array,
  sdpStart: number,
  sdpEnd: number,
): number {
  return writeSignal(
    out,
    o,
    infoHash,
    offererPeerId,
    offerIds,
    offerIdAt,
    OFFER,
    sdp,
    sdpStart,
    sdpEnd,
  );
}

/**
 * An answer relayed to the offerer: `{"action":"announce","info_hash":…,"peer_id":<answerer>,
 * "offer_id":…,"answer":{"type":"answer","sdp":…}}`, the SDP the JSON string at
 * sdp[sdpStart, sdpEnd).
 */
export function writeWtAnswer(
  out: Uint8Array,
  o: number,
  infoHash: Uint8Array,
  answererPeerId: Uint8Array,
  offerId: Uint8Array,
  sdp: Uint8Array,
  sdpStart: number,
  sdpEnd: number,
): number {
  return writeSignal(out, o, infoHash, answererPeerId, offerId, 0, ANSWER, sdp, sdpStart, sdpEnd);
}

/** Worst case of `writeWtScrapeReply` for `count` hashes. */
export function wtScrapeReplyMaxLength(count: number): number {
  const file = MAX_ID_JSON + FILE_COMPLETE.length + INCOMPLETE.length + FILE_DOWNLOADED.length +
    3 * MAX_NUMBER + 2;
  return SCRAPE_FILES.length + count * file + FLAGS.length + MAX_NUMBER + 2;
}

function sameId(bytes: Uint8Array, a: number, b: number): boolean {
  for (let i = 0; i < ID_BYTES; i++) if (bytes[a + i] !== bytes[b + i]) return false;
  return true;
}

/**
 * `{"action":"scrape","files":{<hash>:{"complete":N,"incomplete":N,"downloaded":N},…},
 * "flags":{"min_request_interval":N}}`: hash i at hashes[20 i], its counts at
 * counts[3 i] in BEP 15's order, as httpReply's scrape (complete, downloaded, incomplete). A
 * hash repeated in the request is written once.
 */
export function writeWtScrapeReply(
  out: Uint8Array,
  o: number,
  hashes: Uint8Array,
  count: number,
  counts: ArrayLike<number>,
  minRequestInterval: number,
): number {
  need(out, o, wtScrapeReplyMaxLength(count));
  o = copyBytes(out, o, SCRAPE_FILES);
  let first = true;
  for (let i = 0; i < count; i++) {
    let repeated = false;
    for (let j = 0; j < i && !repeated; j++) repeated = sameId(hashes, i * ID_BYTES, j * ID_BYTES);
    if (repeated) continue;
    if (!first) out[o++] = 0x2c;
    first = false;
    o = writeBinaryId(out, o, hashes, i * ID_BYTES);
    o = writeDecimal(out, copyBytes(out, o, FILE_COMPLETE), counts[3 * i]);
    o = writeDecimal(out, copyBytes(out, o, INCOMPLETE), counts[3 * i + 2]);
    o = writeDecimal(out, copyBytes(out, o, FILE_DOWNLOADED), counts[3 * i + 1]);
    out[o++] = 0x7d;
  }
  o = writeDecimal(out, copyBytes(out, o, FLAGS), minRequestInterval);
  out[o++] = 0x7d;
  out[o++] = 0x7d;
  return o;
}

/** Worst case of `writeWtError` for a reason of `reasonLength` UTF-16 units. */
export function wtErrorMaxLength(reasonLength: number): number {
  return SCRAPE_HASH.length + MAX_ID_JSON + FAILURE.length + 2 +
    reasonLength * MAX_BYTES_PER_UNIT + 1;
}

/**
 * `{"action":…,"info_hash":…,"failure reason":…}`; without info_hash when `infoHash` is null
 * (the message had none that could be read: the client will ignore the reply).
 */
export function writeWtError(
  out: Uint8Array,
  o: number,
  action: "announce" | "scrape",
  infoHash: Uint8Array | null,
  reason: string,
): number {
  need(out, o, wtErrorMaxLength(reason.length));
  o = copyBytes(out, o, action === "scrape" ? ACTION_SCRAPE : ACTION_ANNOUNCE);
  if (infoHash !== null) o = writeBinaryId(out, copyBytes(out, o, INFO_HASH), infoHash);
  o = writeJsonString(out, copyBytes(out, o, FAILURE), reason);
  out[o] = 0x7d;
  return o + 1;
}
