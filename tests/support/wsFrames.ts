/**
 * WebSocket frames from the client's side, for tests and fuzzing of src/protocol/wsFrame.ts:
 * a builder of client frames (masked, or deliberately wrong), a reference decoder that reads a
 * whole byte string at once, written from RFC 6455 rather than from otter's incremental reader,
 * a driver that feeds the reader in given chunks and lists its events, and a generator of random
 * frame streams. The reference and the reader must agree event for event on every input and
 * every way of cutting it into chunks.
 *
 * Where one header breaks several rules, the first in byte order decides the close code: RSV bits,
 * the opcode (unknown; a control frame without FIN; a continuation with no message; a data frame
 * inside a message; binary → 1003), the MASK bit, a control length over 125, the 64-bit high bit,
 * a length not in its shortest form, then (header complete) frame and message size (1009).
 */
import { fuzzLoop, hex, type Rng } from "./fuzz.ts";
import {
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOO_BIG,
  CLOSE_UNSUPPORTED_DATA,
  WS_CLOSE,
  WS_FAIL,
  WS_NEED_MORE,
  WS_PING,
  WS_PONG,
  WS_TEXT,
  WsFrameReader,
} from "../../src/protocol/wsFrame.ts";

const encoder = new TextEncoder();

export interface FrameOptions {
  fin?: boolean;
  /** RSV1-3 as bits 0x40, 0x20, 0x10. */
  rsv?: number;
  /** The 4-byte masking key as a u32; null sends the frame unmasked. */
  mask?: number | null;
  /** Force the extended length form: 0 (7-bit), 2 (16-bit) or 8 (64-bit), shortest if absent. */
  lengthBytes?: 0 | 2 | 8;
  /** Declared length, if it should differ from the payload's (for header-only frames). */
  declared?: number;
}

/** One client frame: header, masking key and the masked payload. */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: FrameOptions = {},
): Uint8Array {
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  const length = options.declared ?? data.length;
  const form = options.lengthBytes ?? (length < 126 ? 0 : length <= 0xffff ? 2 : 8);
  const mask = options.mask === undefined ? 0x37fa213d : options.mask;
  const header: number[] = [(options.fin === false ? 0 : 0x80) | (options.rsv ?? 0) | opcode];
  const maskBit = mask === null ? 0 : 0x80;
  if (form === 0) header.push(maskBit | length);
  else if (form === 2) header.push(maskBit | 126, length >>> 8, length & 0xff);
  else {
    header.push(maskBit | 127);
    const high = Math.floor(length / 0x100000000);
    for (let shift = 24; shift >= 0; shift -= 8) header.push((high >>> shift) & 0xff);
    for (let shift = 24; shift >= 0; shift -= 8) header.push((length >>> shift) & 0xff);
  }
  if (mask !== null) {
    header.push(mask >>> 24, (mask >>> 16) & 0xff, (mask >>> 8) & 0xff, mask & 0xff);
  }
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  for (let i = 0; i < data.length; i++) {
    const key = mask === null ? 0 : (mask >>> (24 - 8 * (i & 3))) & 0xff;
    out[header.length + i] = data[i] ^ key;
  }
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An event, comparable with deepEqual. Payloads are hex, texts as decoded. */
export type FrameEvent =
  | { kind: "text"; text: string }
  | { kind: "ping" | "pong"; hex: string }
  | { kind: "close"; code: number; reason: string }
  | { kind: "fail"; code: number }
  | { kind: "more" };

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Feeds `bytes` to `reader` cut at `cuts` (ascending offsets) and lists its events. */
export function readerEvents(
  reader: WsFrameReader,
  bytes: Uint8Array,
  cuts: readonly number[] = [],
): FrameEvent[] {
  const events: FrameEvent[] = [];
  // The reader unmasks in place: give it a copy, as a socket would give it fresh bytes.
  const input = bytes.slice();
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < input.length), input.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    reader.feed(input, bounds[k], bounds[k + 1]);
    for (;;) {
      const event = reader.next();
      if (event === WS_NEED_MORE) break;
      if (event === WS_TEXT) events.push({ kind: "text", text: reader.text() });
      else if (event === WS_PING) events.push({ kind: "ping", hex: hexOf(reader.payload) });
      else if (event === WS_PONG) events.push({ kind: "pong", hex: hexOf(reader.payload) });
      else if (event === WS_CLOSE) {
        events.push({
          kind: "close",
          code: reader.closeCode,
          reason: new TextDecoder().decode(reader.closeReason),
        });
        return events;
      } else if (event === WS_FAIL) {
        events.push({ kind: "fail", code: reader.failCode });
        return events;
      }
    }
  }
  events.push({ kind: "more" });
  return events;
}

function validCloseCode(code: number): boolean {
  if (code < 1000 || code >= 5000) return false;
  if (code >= 3000) return true;
  return [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014].includes(code);
}

/** Is `bytes` valid UTF-8, or (`prefix`) the start of some valid UTF-8? */
function utf8Ok(bytes: Uint8Array, prefix: boolean): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: prefix });
    return true;
  } catch {
    return false;
  }
}

/** What RFC 6455 (and otter's caps) make of `bytes` read as one whole stream from a client. */
export function referenceEvents(
  bytes: Uint8Array,
  maxMessage: number,
  maxFrame = maxMessage,
): FrameEvent[] {
  const events: FrameEvent[] = [];
  const fail = (code: number) => {
    events.push({ kind: "fail", code });
    return events;
  };
  const more = () => {
    events.push({ kind: "more" });
    return events;
  };
  let message: number[] | null = null; // the text message in progress
  let at = 0;
  for (;;) {
    if (at >= bytes.length) return more();
    const b0 = bytes[at];
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const control = opcode >= 8;
    if (b0 & 0x70) return fail(CLOSE_PROTOCOL_ERROR);
    if (![0, 1, 2, 8, 9, 10].includes(opcode)) return fail(CLOSE_PROTOCOL_ERROR);
    if (control && !fin) return fail(CLOSE_PROTOCOL_ERROR);
    if (opcode === 0 && message === null) return fail(CLOSE_PROTOCOL_ERROR);
    if ((opcode === 1 || opcode === 2) && message !== null) return fail(CLOSE_PROTOCOL_ERROR);
    if (opcode === 2) return fail(CLOSE_UNSUPPORTED_DATA);
    if (at + 1 >= bytes.length) return more();
    const b1 = bytes[at + 1];
    if (!(b1 & 0x80)) return fail(CLOSE_PROTOCOL_ERROR);
    const code7 = b1 & 0x7f;
    if (control && code7 > 125) return fail(CLOSE_PROTOCOL_ERROR);
    const extra = code7 === 126 ? 2 : code7 === 127 ? 8 : 0;
    let p = at + 2;
    if (extra === 8 && p < bytes.length && bytes[p] & 0x80) return fail(CLOSE_PROTOCOL_ERROR);
    if (p + extra > bytes.length) return more();
    let length = code7 < 126 ? code7 : 0;
    for (let i = 0; i < extra; i++) length = length * 256 + bytes[p + i];
    p += extra;
    if (extra === 2 && length < 126) return fail(CLOSE_PROTOCOL_ERROR);
    if (extra === 8 && length < 65536) return fail(CLOSE_PROTOCOL_ERROR);
    if (p + 4 > bytes.length) return more();
    const key = bytes.subarray(p, p + 4);
    p += 4;
    const sofar = opcode === 0 ? message!.length : 0;
    if (!control && (length > Math.min(maxFrame, maxMessage) || sofar + length > maxMessage)) {
      return fail(CLOSE_TOO_BIG);
    }
    const have = Math.min(length, bytes.length - p);
    const payload = new Uint8Array(have);
    for (let i = 0; i < have; i++) payload[i] = bytes[p + i] ^ key[i & 3];
    if (!control) {
      const text: number[] = opcode === 1 ? [] : message!;
      for (const b of payload) text.push(b);
      message = text;
      const complete = have === length && fin;
      if (!utf8Ok(Uint8Array.from(text), !complete)) return fail(CLOSE_INVALID_DATA);
      if (have < length) return more();
      if (fin) {
        events.push({
          kind: "text",
          text: new TextDecoder("utf-8", { ignoreBOM: true }).decode(Uint8Array.from(text)),
        });
        message = null;
      }
    } else {
      if (have < length) return more();
      if (opcode === 9) events.push({ kind: "ping", hex: hexOf(payload) });
      else if (opcode === 10) events.push({ kind: "pong", hex: hexOf(payload) });
      else {
        if (length === 1) return fail(CLOSE_PROTOCOL_ERROR);
        if (length === 0) {
          events.push({ kind: "close", code: CLOSE_NO_STATUS, reason: "" });
          return events;
        }
        const code = (payload[0] << 8) | payload[1];
        if (!validCloseCode(code)) return fail(CLOSE_PROTOCOL_ERROR);
        if (!utf8Ok(payload.subarray(2), false)) return fail(CLOSE_INVALID_DATA);
        events.push({ kind: "close", code, reason: new TextDecoder().decode(payload.subarray(2)) });
        return events;
      }
    }
    at = p + length;
  }
}

// ------------------------------------------------------------------ random streams

const TEXTS = [
  "",
  "a",
  '{"action":"announce"}',
  "héllo wörld",
  "日本語テキスト",
  "\u{1F600}\u{1F680}",
  "x".repeat(125),
  "y".repeat(126),
  "z".repeat(300),
];

/** Random bytes that are often UTF-8 (to reach the validator's deeper states) and often not. */
function randomPayloadOf(rng: Rng, max: number, clean: boolean): Uint8Array {
  switch (rng.int(clean ? 2 : 4)) {
    case 0:
      return encoder.encode(rng.pick(TEXTS));
    case 1: {
      let s = "";
      for (let n = rng.int(Math.min(max, 40)); n > 0; n--) {
        s += String.fromCodePoint(rng.pick([0x41, 0xe9, 0x800, 0xffff, 0x10000, 0x10ffff]));
      }
      return encoder.encode(s);
    }
    case 2:
      return rng.bytes(rng.int(max + 1));
    default: {
      // Valid UTF-8 with one byte flipped: overlongs, surrogates, stray continuations.
      const bytes = encoder.encode(rng.pick(TEXTS) + "é€\u{1F600}");
      bytes[rng.int(bytes.length)] = rng.pick([
        0x80,
        0xbf,
        0xc0,
        0xc1,
        0xe0,
        0xed,
        0xf4,
        0xf5,
        0xff,
      ]);
      return bytes;
    }
  }
}

/**
 * A random client stream: mostly well-formed frames (texts, fragmented texts with pings between
 * fragments, pings, pongs, closes), with some frames broken in one header field or over the cap.
 */
export function randomFrameStream(rng: Rng, maxMessage: number): Uint8Array {
  const parts: Uint8Array[] = [];
  // Half the streams are well-formed up to an optional close, so that streams of many messages
  // are read to their end; the others break rules anywhere.
  const clean = rng.chance(0.5);
  const randomPayload = (rng: Rng, max: number) => randomPayloadOf(rng, max, clean);
  for (let frames = rng.range(1, 6); frames > 0; frames--) {
    const mask = !clean && rng.chance(0.05) ? null : rng.next();
    const opts: FrameOptions = { mask };
    if (!clean && rng.chance(0.05)) opts.rsv = rng.pick([0x10, 0x20, 0x40]);
    if (!clean && rng.chance(0.05)) opts.lengthBytes = rng.pick([0, 2, 8] as const);
    switch (rng.int(clean ? 5 : 9)) {
      case 0:
      case 1:
      case 2:
        parts.push(clientFrame(1, randomPayload(rng, 300), opts));
        break;
      case 3: {
        const pieces = rng.range(2, 4);
        for (let k = 0; k < pieces; k++) {
          const fin = k === pieces - 1;
          parts.push(clientFrame(k === 0 ? 1 : 0, randomPayload(rng, 60), { ...opts, fin }));
          if (rng.chance(0.3)) parts.push(clientFrame(9, rng.bytes(rng.int(10)), { mask }));
        }
        break;
      }
      case 4:
        parts.push(clientFrame(rng.pick([9, 10]), rng.bytes(rng.int(clean ? 126 : 130)), opts));
        break;
      case 5: {
        const code = rng.pick([1000, 1001, 1004, 1005, 1015, 3000, 4999, 5000, 0]);
        const reason = randomPayload(rng, 20);
        const body = rng.chance(0.1)
          ? rng.bytes(rng.int(2))
          : concat(Uint8Array.of(code >>> 8, code & 0xff), reason);
        parts.push(clientFrame(8, body.subarray(0, 125), opts));
        break;
      }
      case 6:
        parts.push(
          clientFrame(rng.int(16), randomPayload(rng, 30), { ...opts, fin: rng.chance(0.5) }),
        );
        break;
      case 7: // a header announcing more than the cap, and a little of its payload
        parts.push(
          clientFrame(1, rng.bytes(rng.int(20)), {
            ...opts,
            declared: maxMessage + rng.range(-2, 2),
          }).subarray(0, 20),
        );
        break;
      default:
        parts.push(clientFrame(rng.pick([1, 1, 2]), rng.bytes(rng.int(40)), opts));
    }
  }
  if (clean && rng.chance(0.2)) {
    parts.push(clientFrame(8, Uint8Array.of(0x03, 0xe8, 0x62, 0x79, 0x65), { mask: rng.next() }));
  }
  const stream = concat(...parts);
  if (clean) return stream;
  // Sometimes cut the stream short or flip a byte of it.
  if (rng.chance(0.2)) return stream.subarray(0, rng.int(stream.length + 1));
  if (rng.chance(0.2) && stream.length > 0) stream[rng.int(stream.length)] ^= 1 << rng.int(8);
  return stream;
}

/** Random ascending cut points for `length` bytes (sometimes every byte). */
export function randomCuts(rng: Rng, length: number): number[] {
  if (rng.chance(0.1)) return Array.from({ length }, (_, i) => i);
  const cuts: number[] = [];
  for (let n = rng.int(6); n > 0; n--) cuts.push(rng.int(length + 1));
  return cuts.sort((a, b) => a - b);
}

/**
 * Runs the differential frame fuzzer for `ms` (but at least `minInputs`) or `maxInputs`: random
 * streams, random caps, random chunking; returns inputs run, events seen by kind, and the first
 * disagreement (or null).
 */
export function fuzzWsFrames(
  rng: Rng,
  ms: number,
  maxInputs: number,
  minInputs = 0,
): { inputs: number; kinds: Map<string, number>; failure: string | null } {
  const kinds = new Map<string, number>();
  let failure: string | null = null;
  const inputs = fuzzLoop(ms, maxInputs, (i) => {
    if (failure !== null) return;
    const cap = rng.pick([65536, 1000, 200]);
    const stream = randomFrameStream(rng, cap);
    const expected = referenceEvents(stream, cap);
    let got: FrameEvent[];
    try {
      got = readerEvents(new WsFrameReader(cap), stream, randomCuts(rng, stream.length));
    } catch (e) {
      failure = `input ${i} (cap ${cap}): reader threw ${e}: ${hex(stream)}`;
      return;
    }
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      failure = `input ${i} (cap ${cap}): reader ${JSON.stringify(got).slice(0, 300)} but ` +
        `reference ${JSON.stringify(expected).slice(0, 300)} for ${hex(stream)}`;
    }
    for (const e of got) {
      const kind = e.kind === "fail" ? `fail ${e.code}` : e.kind;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
  }, minInputs);
  return { inputs, kinds, failure };
}
