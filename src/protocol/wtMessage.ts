/**
 * WebTorrent tracker requests (JSON text messages over a WebSocket, as the `webtorrent` and
 * `bittorrent-tracker` clients send them; shapes in ../shared/notes/webtorrent.md): one message in,
 * a typed request (an announce, an answer to an offer, a scrape) or a failure reason out. Pure.
 *
 * JSON.parse does the syntax (WebTorrent is JSON by nature, and V8's parser is iterative, so deep
 * nesting cannot overflow the stack); the text is capped at MAX_WT_MESSAGE characters before it is
 * parsed. Results go into a reused `WtRequest`, ids as bytes in its own arrays.
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
 *   Only its first MAX_OFFERS entries are read (the rest are ignored unread), and each of those
 *   must be `{ offer_id, offer: { type: "offer", sdp } }`: one bad offer (null, not an object, a
 *   wrong type, an SDP over MAX_SDP) refuses the whole announce, as aquatic_ws does, rather than
 *   forwarding part of what the client meant (bittorrent-tracker crashes on `offers: [null]`).
 * - A scrape's `info_hash` is one binary string or a list of 1 to MAX_WT_SCRAPE of them.
 * - Unknown fields are ignored. Numbers are JSON numbers, never strings.
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

/** Longest message parsed, in UTF-16 units (the frame reader caps messages at 64 KiB of bytes). */
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
  readonly offerSdps: string[] = new Array(MAX_OFFERS).fill("");

  // answer
  readonly toPeerId = new Uint8Array(ID_BYTES);
  readonly offerId = new Uint8Array(ID_BYTES);
  answerSdp = "";

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

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A JSON number ≥ 0, or `fallback` when absent; NaN when present and anything else. */
function count(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  return typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER ? value : NaN;
}

/** The SDP of `{ type, sdp }`, or a failure reason. */
function sdpOf(value: unknown, type: "offer" | "answer"): string | { failure: string } {
  if (!isObject(value)) return { failure: `${type} is not an object` };
  if (value.type !== type) return { failure: `${type} type is not "${type}"` };
  const sdp = value.sdp;
  if (typeof sdp !== "string") return { failure: `${type} sdp is not a string` };
  if (sdp.length > MAX_SDP) return { failure: `${type} sdp over ${MAX_SDP} characters` };
  return sdp;
}

/**
 * Parses one text message into `out`. Returns null when `out` holds a request of `out.kind`, or
 * the failure reason to send (with `out.action` and `out.infoHash` for the reply).
 */
export function parseWtMessage(text: string, out: WtRequest): string | null {
  out.kind = 0;
  out.action = "announce";
  out.hasInfoHash = false;
  if (text.length > MAX_WT_MESSAGE) return "message too long";
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return "message is not JSON";
  }
  if (!isObject(message)) return "message is not a JSON object";
  const action = message.action;
  if (action === "scrape") {
    out.action = "scrape";
    return parseScrape(message, out);
  }
  if (action !== "announce") return "unknown action";
  out.hasInfoHash = readBinaryId(message.info_hash, out.infoHash, 0);
  if (!out.hasInfoHash) return "invalid info_hash";
  if (!readBinaryId(message.peer_id, out.peerId, 0)) return "invalid peer_id";
  const answer = message.answer;
  if (answer !== undefined && answer !== null) return parseAnswer(message, answer, out);
  return parseAnnounce(message, out);
}

function parseAnswer(message: Json, answer: unknown, out: WtRequest): string | null {
  if (!readBinaryId(message.to_peer_id, out.toPeerId, 0)) return "invalid to_peer_id";
  if (!readBinaryId(message.offer_id, out.offerId, 0)) return "invalid offer_id";
  const sdp = sdpOf(answer, "answer");
  if (typeof sdp !== "string") return sdp.failure;
  out.answerSdp = sdp;
  out.kind = WT_ANSWER;
  return null;
}

function parseAnnounce(message: Json, out: WtRequest): string | null {
  switch (message.event) {
    case undefined:
    case "update":
      out.event = EVENT_NONE;
      break;
    case "started":
      out.event = EVENT_STARTED;
      break;
    case "stopped":
      out.event = EVENT_STOPPED;
      break;
    case "completed":
      out.event = EVENT_COMPLETED;
      break;
    default:
      return "invalid event";
  }
  out.uploaded = count(message.uploaded, 0);
  if (Number.isNaN(out.uploaded)) return "invalid uploaded";
  out.downloaded = count(message.downloaded, 0);
  if (Number.isNaN(out.downloaded)) return "invalid downloaded";
  out.left = message.left === null ? -1 : count(message.left, -1);
  if (Number.isNaN(out.left)) return "invalid left";
  out.numwant = count(message.numwant, -1);
  if (Number.isNaN(out.numwant)) return "invalid numwant";

  out.offerCount = 0;
  const offers = message.offers;
  if (offers !== undefined) {
    if (!Array.isArray(offers)) return "offers is not an array";
    const n = Math.min(offers.length, MAX_OFFERS);
    for (let i = 0; i < n; i++) {
      const offer = offers[i];
      if (!isObject(offer)) return "an offer is not an object";
      if (!readBinaryId(offer.offer_id, out.offerIds, i * ID_BYTES)) return "invalid offer_id";
      const sdp = sdpOf(offer.offer, "offer");
      if (typeof sdp !== "string") return sdp.failure;
      out.offerSdps[i] = sdp;
    }
    out.offerCount = n;
  }
  out.kind = WT_ANNOUNCE;
  return null;
}

function parseScrape(message: Json, out: WtRequest): string | null {
  const hashes = message.info_hash;
  if (typeof hashes === "string") {
    out.hasInfoHash = readBinaryId(hashes, out.infoHash, 0);
    if (!out.hasInfoHash) return "invalid info_hash";
    out.scrapeHashes.set(out.infoHash);
    out.scrapeCount = 1;
    out.kind = WT_SCRAPE;
    return null;
  }
  // No full scrape over WebSocket (as aquatic_ws): a list of at least one hash is needed.
  if (!Array.isArray(hashes) || hashes.length === 0) return "scrape needs info_hash";
  if (hashes.length > MAX_WT_SCRAPE) return `scrape of over ${MAX_WT_SCRAPE} info_hash`;
  for (let i = 0; i < hashes.length; i++) {
    if (!readBinaryId(hashes[i], out.scrapeHashes, i * ID_BYTES)) return "invalid info_hash";
  }
  out.infoHash.set(out.scrapeHashes.subarray(0, ID_BYTES));
  out.hasInfoHash = true;
  out.scrapeCount = hashes.length;
  out.kind = WT_SCRAPE;
  return null;
}
