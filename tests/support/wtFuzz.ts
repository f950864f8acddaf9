/**
 * Fuzzing the WebTorrent message parser (src/protocol/wtMessage.ts) and the reply writers
 * (src/protocol/wtReply.ts), shared by tests/protocol_wtMessage_test.ts and bench/fuzz_long.ts.
 *
 * Messages start from the shapes real clients send and are broken at the object level (a field
 * dropped or replaced by a random JSON value, offers replaced by junk) and at the text level
 * (fuzz.ts `mutateText`). An oracle written from the README's rules, not from the parser, says
 * what the parser must make of each one, and `checkWtMessage` compares the two field by field.
 */
import { fuzzLoop, mutateText, oddChar, type Rng, shown } from "./fuzz.ts";
import {
  EVENT_COMPLETED,
  EVENT_NONE,
  EVENT_STARTED,
  EVENT_STOPPED,
} from "../../src/protocol/events.ts";
import {
  binaryIdString,
  parseWtMessage,
  WT_ANNOUNCE,
  WT_ANSWER,
  WT_SCRAPE,
  WtRequest,
} from "../../src/protocol/wtMessage.ts";

/** A realistic loopback SDP (~530 bytes), as webtorrent 3.0.21 over node-datachannel sends. */
export const SAMPLE_SDP = "v=0\r\no=rtc 2745541815 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
  "a=group:BUNDLE 0\r\na=group:LS 0\r\na=msid-semantic:WMS *\r\na=setup:actpass\r\n" +
  "a=ice-ufrag:Kq3v\r\na=ice-pwd:4Vw6kq2c0Jx7mXzYhQmLcS\r\na=ice-options:ice2,trickle\r\n" +
  "a=fingerprint:sha-256 3C:9A:41:0F:6E:22:B8:7D:11:AF:95:5B:C0:7E:48:2D:A3:6F:0C:" +
  "94:E1:5D:28:B7:4A:93:C6:0E:1F:72:D8:35\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" +
  "c=IN IP4 127.0.0.1\r\na=mid:0\r\na=sendrecv\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n" +
  "a=candidate:1 1 UDP 2122317823 127.0.0.1 50532 typ host\r\na=end-of-candidates\r\n";

/** A random binary id: 20 characters U+0000–U+00FF, often with the awkward ones. */
export function randomBinaryId(rng: Rng): string {
  let s = "";
  for (let i = 0; i < 20; i++) {
    s += String.fromCharCode(
      rng.chance(0.3) ? rng.pick([0, 0x0a, 0x22, 0x5c, 0x7f, 0x80, 0xff]) : rng.int(256),
    );
  }
  return s;
}

/** A random JSON value of small depth. */
export function randomJson(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 6 : 8)) {
    case 0:
      return null;
    case 1:
      return rng.pick([0, -1, 1.5, 2 ** 53, 1e308, -0, 20, 65536]);
    case 2:
      return rng.chance(0.5);
    case 3:
      return randomBinaryId(rng).slice(0, rng.range(18, 21));
    case 4: {
      let s = "";
      for (let n = rng.int(25); n > 0; n--) s += oddChar(rng);
      return s;
    }
    case 5:
      return rng.pick(["announce", "scrape", "started", "update", "offer", "answer", ""]);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let n = rng.int(4); n > 0; n--) {
        o[rng.pick(["type", "sdp", "offer_id", "offer", "x", "__proto__"])] = randomJson(
          rng,
          depth + 1,
        );
      }
      return o;
    }
  }
}

function offer(rng: Rng): Record<string, unknown> {
  return { offer: { type: "offer", sdp: SAMPLE_SDP }, offer_id: randomBinaryId(rng) };
}

/** A message of one of the shapes real clients send. */
export function realisticMessage(rng: Rng): Record<string, unknown> {
  const info_hash = randomBinaryId(rng);
  const peer_id = randomBinaryId(rng);
  switch (rng.int(4)) {
    case 0: {
      const n = rng.int(6);
      return {
        numwant: n,
        uploaded: 0,
        downloaded: rng.int(1000),
        left: rng.chance(0.3) ? null : rng.int(1 << 30),
        event: rng.pick(["started", undefined, "update"]),
        action: "announce",
        info_hash,
        peer_id,
        offers: Array.from({ length: n }, () => offer(rng)),
      };
    }
    case 1:
      return {
        uploaded: rng.int(1000),
        downloaded: 0,
        left: 0,
        event: rng.pick(["completed", "stopped"]),
        action: "announce",
        info_hash,
        peer_id,
      };
    case 2:
      return {
        action: "announce",
        info_hash,
        peer_id,
        to_peer_id: randomBinaryId(rng),
        answer: { type: "answer", sdp: SAMPLE_SDP.replace("actpass", "active") },
        offer_id: randomBinaryId(rng),
      };
    default:
      return {
        action: "scrape",
        info_hash: rng.chance(0.5)
          ? info_hash
          : Array.from({ length: rng.range(1, 3) }, () => randomBinaryId(rng)),
      };
  }
}

const PIECES = [
  '"',
  "\\",
  "\\u0000",
  "\\ud800",
  "null",
  ",",
  "{",
  "}",
  "[",
  "]",
  ":",
  '"announce"',
];

/** A message text: realistic, broken at the object level, at the text level, or both. */
export function randomWtText(rng: Rng): string {
  const message = realisticMessage(rng);
  const keys = Object.keys(message);
  for (let edits = rng.int(3); edits > 0; edits--) {
    const key = rng.chance(0.8) ? rng.pick(keys) : rng.pick(["to_peer_id", "answer", "numwant"]);
    if (rng.chance(0.3)) delete message[key];
    else message[key] = randomJson(rng);
  }
  if (rng.chance(0.1) && Array.isArray(message.offers)) {
    const n = rng.pick([11, 1000]);
    message.offers = Array.from({ length: n }, (_, i) => i < 10 ? offer(rng) : randomJson(rng));
  }
  if (rng.chance(0.05)) {
    message.offers = [{
      offer_id: randomBinaryId(rng),
      offer: { type: "offer", sdp: "s".repeat(16385) },
    }];
  }
  let text = JSON.stringify(message);
  if (rng.chance(0.05)) text = JSON.stringify(randomJson(rng));
  for (let edits = rng.chance(0.5) ? 0 : rng.small(3); edits > 0; edits--) {
    text = mutateText(rng, text, PIECES);
  }
  return text;
}

/** What the parser must make of a message: the README's WebTorrent rules. */
export type WtExpect =
  | { kind: "fail" }
  | { kind: "announce"; event: number; left: number; offers: [string, string][] }
  | { kind: "answer"; toPeerId: string; offerId: string; sdp: string }
  | { kind: "scrape"; hashes: string[] };

/** Anything but U+0100 and above, 20 times. */
const BINARY_ID = /^[^\u0100-\uffff]{20}$/;
const isId = (v: unknown): v is string => typeof v === "string" && BINARY_ID.test(v);
const isCount = (v: unknown) =>
  v === undefined || (typeof v === "number" && v >= 0 && v <= Number.MAX_SAFE_INTEGER);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);
const sdp = (v: unknown, type: string): string | null =>
  isPlainObject(v) && v.type === type && typeof v.sdp === "string" && v.sdp.length <= 16384
    ? v.sdp
    : null;

export function expectWt(text: string): WtExpect {
  const fail = { kind: "fail" } as const;
  if (encoder.encode(text).length > 65536) return fail; // the frame reader's cap, in bytes
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return fail;
  }
  if (!isPlainObject(m)) return fail;
  if (m.action === "scrape") {
    const list = typeof m.info_hash === "string" ? [m.info_hash] : m.info_hash;
    if (!Array.isArray(list) || list.length < 1 || list.length > 64 || !list.every(isId)) {
      return fail;
    }
    return { kind: "scrape", hashes: list };
  }
  if (m.action !== "announce" || !isId(m.info_hash) || !isId(m.peer_id)) return fail;
  if (m.answer !== undefined && m.answer !== null) {
    const answer = sdp(m.answer, "answer");
    if (!isId(m.to_peer_id) || !isId(m.offer_id) || answer === null) return fail;
    return { kind: "answer", toPeerId: m.to_peer_id, offerId: m.offer_id, sdp: answer };
  }
  const events: Record<string, number> = {
    started: EVENT_STARTED,
    stopped: EVENT_STOPPED,
    completed: EVENT_COMPLETED,
    update: EVENT_NONE,
  };
  const event = m.event === undefined ? EVENT_NONE : events[m.event as string];
  if (
    typeof m.event !== "undefined" &&
    (typeof m.event !== "string" || !Object.hasOwn(events, m.event))
  ) {
    return fail;
  }
  if (!isCount(m.uploaded) || !isCount(m.downloaded) || !isCount(m.numwant)) return fail;
  if (m.left !== null && !isCount(m.left)) return fail;
  const offers: [string, string][] = [];
  if (m.offers !== undefined) {
    if (!Array.isArray(m.offers)) return fail;
    for (const o of m.offers.slice(0, 10)) {
      const s = isPlainObject(o) ? sdp(o.offer, "offer") : null;
      if (!isPlainObject(o) || !isId(o.offer_id) || s === null) return fail;
      offers.push([o.offer_id, s]);
    }
  }
  const left = m.left === null || m.left === undefined ? -1 : m.left as number;
  return { kind: "announce", event, left, offers };
}

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF stays (as the server keeps it), and then the text is not JSON.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Parses `text` (as UTF-8, the bytes the frame reader passes on: a lone surrogate becomes U+FFFD)
 * and compares with the oracle; returns a description of a mismatch, or null.
 */
export function checkWtMessage(text: string, request: WtRequest): string | null {
  const bytes = encoder.encode(text);
  text = decoder.decode(bytes);
  let reason: string | null;
  try {
    reason = parseWtMessage(bytes, request);
  } catch (e) {
    return `parser threw ${e} on ${shown(text)}`;
  }
  const want = expectWt(text);
  const id = (bytes: Uint8Array, at = 0) => binaryIdString(bytes, at);
  // An SDP is where it lies in the message, as sent: JSON.parse reads it as the client will.
  const sdpAt = (start: number, end: number) =>
    JSON.parse(decoder.decode(bytes.subarray(start, end)));
  const got = reason !== null ? { kind: "fail" } : request.kind === WT_ANNOUNCE
    ? {
      kind: "announce",
      event: request.event,
      left: request.left,
      offers: Array.from(
        { length: request.offerCount },
        (_, i) => [
          id(request.offerIds, i * 20),
          sdpAt(request.offerSdpStarts[i], request.offerSdpEnds[i]),
        ],
      ),
    }
    : request.kind === WT_ANSWER
    ? {
      kind: "answer",
      toPeerId: id(request.toPeerId),
      offerId: id(request.offerId),
      sdp: sdpAt(request.answerSdpStart, request.answerSdpEnd),
    }
    : request.kind === WT_SCRAPE
    ? {
      kind: "scrape",
      hashes: Array.from({ length: request.scrapeCount }, (_, i) =>
        id(request.scrapeHashes, i * 20)),
    }
    : { kind: `kind ${request.kind}` };
  if (reason !== null && (typeof reason !== "string" || reason.length === 0)) {
    return `empty failure reason for ${shown(text)}`;
  }
  const a = JSON.stringify(got);
  const b = JSON.stringify(want);
  return a === b
    ? null
    : `parser ${shown(a, 200)} but rules say ${shown(b, 200)} for ${shown(text)}`;
}

/**
 * Runs the message fuzzer for `ms` (but at least `minInputs`) or `maxInputs`; returns inputs run,
 * tally of kinds, first failure.
 */
export function fuzzWtMessages(
  rng: Rng,
  ms: number,
  maxInputs: number,
  minInputs = 0,
): { inputs: number; kinds: Map<string, number>; failure: string | null } {
  const request = new WtRequest();
  const kinds = new Map<string, number>();
  let failure: string | null = null;
  const inputs = fuzzLoop(ms, maxInputs, (i) => {
    if (failure !== null) return;
    const text = randomWtText(rng);
    const problem = checkWtMessage(text, request);
    if (problem !== null) failure = `input ${i}: ${problem}`;
    const kind = expectWt(text).kind;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }, minInputs);
  return { inputs, kinds, failure };
}
