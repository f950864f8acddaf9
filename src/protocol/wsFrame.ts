/**
 * RFC 6455 frames, server side: an incremental reader of client frames and writers of server
 * frames. Pure: bytes in, events and close codes out; no sockets, no timers.
 *
 * `WsFrameReader` is a state machine fed the bytes of one connection in whatever chunks they
 * arrive (a header or a UTF-8 sequence may be split anywhere). `next()` returns an event number:
 * a complete text message, a ping, a pong, a close, a failure (with the close code to send), or
 * "needs more input". A bad client is an event, never an exception. What it refuses:
 * - 1002 (protocol error): RSV bits set (no extension is negotiated), an unknown opcode, a frame
 *   without the MASK bit, a length not in its shortest form or with the 64-bit high bit set, a
 *   fragmented or over-125-byte control frame, a continuation with no message started, a new data
 *   frame inside a fragmented message, a close frame of 1 byte or with a code not allowed on the wire.
 * - 1003: binary messages (otter speaks JSON text only), from the first frame's header.
 * - 1007: a text message or close reason that is not UTF-8, at the first bad byte; a character
 *   split across fragments is carried over.
 * - 1009: a frame over `maxFrameBytes` or a message over `maxMessageBytes`, from the header,
 *   before any of the payload is buffered.
 * Once it has returned a failure or a close, the reader returns that event again and reads no more.
 *
 * Steady path, no allocation: a frame that arrives whole in one chunk is unmasked in place in the
 * caller's chunk and handed out as a view of it. Only a frame split across chunks, or a
 * fragmented message, is unmasked into the reader's own buffer, which grows by doubling up to
 * the message cap and can be given back with `releaseBuffer()` when the connection goes idle.
 * A server with many connections passes a `ReassemblyPool`, so those buffers are reused rather
 * than made and dropped per split message. Control payloads that are split go to a 125-byte
 * buffer made on first use.
 */
import { UTF8_COMPLETE, UTF8_INVALID, utf8Step } from "./utf8.ts";

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_UNSUPPORTED_DATA = 1003;
/** Reported for a close frame with no payload; never sent. */
export const CLOSE_NO_STATUS = 1005;
export const CLOSE_INVALID_DATA = 1007;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL_ERROR = 1011;

/** All input is consumed and nothing is complete: feed the next chunk. */
export const WS_NEED_MORE = 0;
/** A complete text message, valid UTF-8: `message` (bytes) or `text()` (decoded once). */
export const WS_TEXT = 1;
/** A ping: answer with a pong carrying `payload`. */
export const WS_PING = 2;
/** A pong: `payload`. */
export const WS_PONG = 3;
/** The client closes: `closeCode` (CLOSE_NO_STATUS when it gave none) and `closeReason`. */
export const WS_CLOSE = 4;
/** The client broke the protocol: close the connection with `failCode`. */
export const WS_FAIL = 5;

export type WsEvent = 0 | 1 | 2 | 3 | 4 | 5;

/** Where a reader takes reassembly buffers from and gives them back to. */
export interface ReassemblyPool {
  /** A buffer of at least `bytes`. */
  takeReassembly(bytes: number): Uint8Array;
  giveReassembly(buffer: Uint8Array): void;
}

/**
 * 64 KiB per message, as aquatic_ws: a real announce with 10 offers of ~530-byte SDPs is ~7 KiB,
 * and bittorrent-tracker's 100 MiB is a memory hazard.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 65536;
/** Largest control frame payload (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** Longest server frame header: 2 bytes and a 64-bit length (no mask). */
export const MAX_SERVER_HEADER = 10;

const EMPTY = new Uint8Array(0);
const MIN_BUFFER = 1024;
// ignoreBOM keeps a leading U+FEFF as text (a TextDecoder drops it by default), the same on both
// paths below; in JSON it is then a syntax error, as it should be.
// (A fatal TextDecoder would validate too, but in Deno 2.9 it runs no faster than utf8Step, and
// then the non-fatal decode is ~8x faster than the fatal one.)
const utf8Text = new TextDecoder("utf-8", { ignoreBOM: true });

const H_FIRST = 0;
const H_SECOND = 1;
const H_LENGTH = 2;
const H_MASK = 3;
const H_PAYLOAD = 4;
const H_DONE = 5;

/** May `code` appear in a close frame? 1000-1003, 1007-1014 (IANA), 3000-4999 (RFC 6455 §7.4). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** Word-at-a-time unmasking reads the mask as a little-endian u32; big-endian hosts go bytewise. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
/** Below this, setting up word views costs more than it saves. */
const WORD_UNMASK_MIN = 64;

/** XORs n bytes of src from `from` into dst at `to` with the mask, starting at mask byte `phase`. */
function unmask(
  src: Uint8Array,
  from: number,
  dst: Uint8Array,
  to: number,
  n: number,
  mask: number,
  phase: number,
): void {
  // Rotate the mask so that its byte `phase` comes first: byte i then takes m's byte i & 3.
  const m = phase === 0 ? mask : ((mask << (phase * 8)) | (mask >>> (32 - phase * 8))) >>> 0;
  let i = 0;
  const align = (src.byteOffset + from) & 3;
  if (LITTLE_ENDIAN && n >= WORD_UNMASK_MIN && align === ((dst.byteOffset + to) & 3)) {
    // 4 bytes per step through i32 views (int32 loads stay small integers in V8) of the aligned middle (~6x faster than bytewise).
    const head = (4 - align) & 3;
    for (; i < head; i++) dst[to + i] = src[from + i] ^ (m >>> (24 - 8 * i)) & 0xff;
    const words = (n - head) >>> 2;
    const r = head === 0 ? m : ((m << (head * 8)) | (m >>> (32 - head * 8))) >>> 0;
    const le = (r >>> 24) | ((r >>> 8) & 0xff00) | ((r << 8) & 0xff0000) | (r << 24);
    const s32 = new Int32Array(src.buffer, src.byteOffset + from + head, words);
    const d32 = src === dst && from === to
      ? s32
      : new Int32Array(dst.buffer, dst.byteOffset + to + head, words);
    for (let w = 0; w < words; w++) d32[w] = s32[w] ^ le;
    i = head + words * 4;
  }
  const m0 = m >>> 24;
  const m1 = (m >>> 16) & 0xff;
  const m2 = (m >>> 8) & 0xff;
  const m3 = m & 0xff;
  for (; i + 4 <= n; i += 4) {
    dst[to + i] = src[from + i] ^ m0;
    dst[to + i + 1] = src[from + i + 1] ^ m1;
    dst[to + i + 2] = src[from + i + 2] ^ m2;
    dst[to + i + 3] = src[from + i + 3] ^ m3;
  }
  for (; i < n; i++) dst[to + i] = src[from + i] ^ (m >>> (24 - 8 * (i & 3))) & 0xff;
}

export class WsFrameReader {
  readonly maxMessageBytes: number;
  readonly maxFrameBytes: number;

  /** WS_TEXT: the message, valid until the next `next()` or `feed()`. */
  message: Uint8Array = EMPTY;
  /** WS_PING, WS_PONG: the payload (≤ 125 bytes), valid until the next `next()` or `feed()`. */
  payload: Uint8Array = EMPTY;
  /** WS_CLOSE: the client's code, or CLOSE_NO_STATUS. */
  closeCode = 0;
  /** WS_CLOSE: the client's reason, valid UTF-8 (maybe empty). */
  closeReason: Uint8Array = EMPTY;
  /** WS_FAIL: the close code to send (1002, 1003, 1007 or 1009). */
  failCode = 0;

  #input: Uint8Array = EMPTY;
  #at = 0;
  #end = 0;

  #phase = H_FIRST;
  #final: WsEvent = WS_NEED_MORE;
  /** Current frame: FIN, opcode, declared length, extension bytes left, mask, bytes left. */
  #fin = false;
  #opcode = 0;
  #length = 0;
  /** The 7-bit length of the second header byte: 126 or 127 announce a 16- or 64-bit length. */
  #lengthCode = 0;
  #lengthBytes = 0;
  #maskBytes = 0;
  #mask = 0;
  #left = 0;

  /** OP_TEXT while a fragmented message is in progress, else 0. */
  #messageOpcode = 0;
  #messageLength = 0;
  #utf8 = UTF8_COMPLETE;
  #buffer: Uint8Array = EMPTY;
  /** The last message as a string, once `text()` decoded it. */
  #text: string | null = null;
  #control: Uint8Array | null = null;
  #controlLength = 0;

  readonly #pool: ReassemblyPool | null;

  constructor(
    maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
    maxFrameBytes = maxMessageBytes,
    pool: ReassemblyPool | null = null,
  ) {
    this.maxMessageBytes = maxMessageBytes;
    this.maxFrameBytes = Math.min(maxFrameBytes, maxMessageBytes);
    this.#pool = pool;
  }

  /**
   * Hands the reader the next bytes, input[start, end). Call only after `next()` returned
   * WS_NEED_MORE (the previous chunk is used up). The reader unmasks payloads in place in
   * `input` and may return views of it, so the caller keeps it unchanged until then.
   */
  feed(input: Uint8Array, start = 0, end = input.length): void {
    this.#input = input;
    this.#at = start;
    this.#end = end;
  }

  /** True while bytes of a frame or a fragmented message are held (the client owes us more). */
  get midMessage(): boolean {
    return this.#phase !== H_FIRST || this.#messageOpcode !== 0;
  }

  /** Payload bytes of the frame in progress still to come (0 between frames): the next read's size. */
  get payloadLeft(): number {
    return this.#phase === H_PAYLOAD ? this.#left : 0;
  }

  /** Drops the reassembly buffer if no message is in progress (an idle connection keeps ~0 bytes). */
  releaseBuffer(): void {
    if (this.#messageOpcode === 0 && this.#phase === H_FIRST) this.#dropBuffer();
  }

  /** Gives the reassembly buffer back whatever state the reader is in (the connection closed). */
  dispose(): void {
    this.#dropBuffer();
    this.message = EMPTY;
  }

  #dropBuffer(): void {
    if (this.#buffer !== EMPTY) this.#pool?.giveReassembly(this.#buffer);
    this.#buffer = EMPTY;
  }

  /** The message of the last WS_TEXT as a string. */
  text(): string {
    return this.#text ??= utf8Text.decode(this.message);
  }

  /** Reads on from the fed input to the next event. */
  next(): WsEvent {
    if (this.#phase === H_DONE) return this.#final;
    const input = this.#input;
    while (this.#at < this.#end || (this.#phase === H_PAYLOAD && this.#left === 0)) {
      if (this.#phase !== H_PAYLOAD) {
        const failed = this.#headerByte(input[this.#at++]);
        if (failed !== 0) return this.#fail(failed);
        continue;
      }
      const event = this.#opcode >= OP_CLOSE ? this.#controlPayload() : this.#dataPayload();
      if (event !== WS_NEED_MORE) return event;
    }
    // The chunk is used up (a split frame's bytes are in #buffer): keep no view of it nor the
    // last message, so that an idle connection does not hold its last read buffer (a pooled
    // one, maybe) and its last message's text until its next read.
    this.#input = EMPTY;
    this.#at = this.#end = 0;
    this.message = EMPTY;
    this.payload = EMPTY;
    this.#text = null;
    return WS_NEED_MORE;
  }

  #fail(code: number): WsEvent {
    this.failCode = code;
    this.#phase = H_DONE;
    this.#final = WS_FAIL;
    return WS_FAIL;
  }

  /** Takes one header byte; returns 0 or the close code of a failure. */
  #headerByte(b: number): number {
    switch (this.#phase) {
      case H_FIRST: {
        if ((b & 0x70) !== 0) return CLOSE_PROTOCOL_ERROR;
        const opcode = b & 0x0f;
        this.#fin = (b & 0x80) !== 0;
        this.#opcode = opcode;
        if (opcode >= OP_CLOSE) {
          if (opcode > OP_PONG) return CLOSE_PROTOCOL_ERROR;
          if (!this.#fin) return CLOSE_PROTOCOL_ERROR;
        } else if (opcode === OP_CONTINUATION) {
          if (this.#messageOpcode === 0) return CLOSE_PROTOCOL_ERROR;
        } else {
          if (opcode > OP_BINARY) return CLOSE_PROTOCOL_ERROR;
          if (this.#messageOpcode !== 0) return CLOSE_PROTOCOL_ERROR;
          if (opcode === OP_BINARY) return CLOSE_UNSUPPORTED_DATA;
        }
        this.#phase = H_SECOND;
        return 0;
      }
      case H_SECOND: {
        if ((b & 0x80) === 0) return CLOSE_PROTOCOL_ERROR; // client frames must be masked
        const length = b & 0x7f;
        if (this.#opcode >= OP_CLOSE && length > MAX_CONTROL_PAYLOAD) return CLOSE_PROTOCOL_ERROR;
        this.#length = length < 126 ? length : 0;
        this.#lengthCode = length;
        this.#lengthBytes = length < 126 ? 0 : length === 126 ? 2 : 8;
        this.#maskBytes = 4;
        this.#mask = 0;
        this.#phase = length < 126 ? H_MASK : H_LENGTH;
        return 0;
      }
      case H_LENGTH: {
        if (this.#lengthBytes === 8 && (b & 0x80) !== 0) return CLOSE_PROTOCOL_ERROR;
        this.#length = this.#length * 256 + b;
        if (--this.#lengthBytes > 0) return 0;
        // Shortest form only (RFC 6455 §5.2 "the minimal number of bytes MUST be used"): no
        // client sends another, and one length per frame size keeps the checks simple.
        const shortest = this.#lengthCode === 126 ? 126 : 0x10000;
        if (this.#length < shortest) return CLOSE_PROTOCOL_ERROR;
        this.#phase = H_MASK;
        return 0;
      }
      default: { // H_MASK
        this.#mask = ((this.#mask << 8) | b) >>> 0;
        if (--this.#maskBytes > 0) return 0;
        return this.#startPayload();
      }
    }
  }

  /** The header is complete: size checks, then on to the payload. */
  #startPayload(): number {
    const length = this.#length;
    if (this.#opcode < OP_CLOSE) {
      if (length > this.maxFrameBytes) return CLOSE_TOO_BIG;
      if (this.#messageLength + length > this.maxMessageBytes) return CLOSE_TOO_BIG;
      if (this.#opcode === OP_TEXT) {
        this.#messageOpcode = OP_TEXT;
        this.#messageLength = 0;
        this.#utf8 = UTF8_COMPLETE;
      }
    } else {
      this.#controlLength = 0;
    }
    this.#left = length;
    this.#phase = H_PAYLOAD;
    return 0;
  }

  #dataPayload(): WsEvent {
    const input = this.#input;
    const at = this.#at;
    const available = Math.min(this.#left, this.#end - at);
    const offset = this.#length - this.#left; // payload bytes of this frame already taken
    if (
      this.#fin && offset === 0 && available === this.#length && this.#messageLength === 0
    ) {
      // The whole message is one frame, whole in this chunk: unmask in place, no copy.
      unmask(input, at, input, at, available, this.#mask, 0);
      this.#at = at + available;
      this.#left = 0;
      if (utf8Step(input, at, at + available, UTF8_COMPLETE) !== UTF8_COMPLETE) {
        return this.#fail(CLOSE_INVALID_DATA);
      }
      this.message = input.subarray(at, at + available);
      this.#text = null;
      this.#endFrame();
      this.#messageOpcode = 0;
      return WS_TEXT;
    }
    if (available > 0) {
      const to = this.#messageLength;
      this.#reserve(to + this.#left);
      unmask(input, at, this.#buffer, to, available, this.#mask, offset & 3);
      this.#at = at + available;
      this.#left -= available;
      this.#messageLength = to + available;
      this.#utf8 = utf8Step(this.#buffer, to, to + available, this.#utf8);
      if (this.#utf8 === UTF8_INVALID) return this.#fail(CLOSE_INVALID_DATA);
    }
    if (this.#left > 0) return WS_NEED_MORE;
    this.#endFrame();
    if (!this.#fin) return WS_NEED_MORE;
    if (this.#utf8 !== UTF8_COMPLETE) return this.#fail(CLOSE_INVALID_DATA);
    this.message = this.#buffer.subarray(0, this.#messageLength);
    this.#text = null;
    this.#messageOpcode = 0;
    this.#messageLength = 0;
    return WS_TEXT;
  }

  #controlPayload(): WsEvent {
    const input = this.#input;
    const at = this.#at;
    const available = Math.min(this.#left, this.#end - at);
    let payload: Uint8Array;
    if (this.#left === this.#length && available === this.#length) {
      unmask(input, at, input, at, available, this.#mask, 0);
      payload = input.subarray(at, at + available);
    } else {
      const control = this.#control ??= new Uint8Array(MAX_CONTROL_PAYLOAD);
      unmask(
        input,
        at,
        control,
        this.#controlLength,
        available,
        this.#mask,
        this.#controlLength & 3,
      );
      this.#controlLength += available;
      payload = control.subarray(0, this.#controlLength);
    }
    this.#at = at + available;
    this.#left -= available;
    if (this.#left > 0) return WS_NEED_MORE;
    this.#endFrame();
    if (this.#opcode === OP_PING || this.#opcode === OP_PONG) {
      this.payload = payload;
      return this.#opcode === OP_PING ? WS_PING : WS_PONG;
    }
    return this.#closeFrame(payload);
  }

  #closeFrame(payload: Uint8Array): WsEvent {
    if (payload.length === 1) return this.#fail(CLOSE_PROTOCOL_ERROR);
    if (payload.length === 0) {
      this.closeCode = CLOSE_NO_STATUS;
      this.closeReason = EMPTY;
    } else {
      const code = (payload[0] << 8) | payload[1];
      if (!isValidCloseCode(code)) return this.#fail(CLOSE_PROTOCOL_ERROR);
      if (utf8Step(payload, 2, payload.length, UTF8_COMPLETE) !== UTF8_COMPLETE) {
        return this.#fail(CLOSE_INVALID_DATA);
      }
      this.closeCode = code;
      this.closeReason = payload.subarray(2);
    }
    this.#phase = H_DONE;
    this.#final = WS_CLOSE;
    return WS_CLOSE;
  }

  #endFrame(): void {
    this.#phase = H_FIRST;
  }

  /** Makes the buffer hold at least `bytes` (≤ the message cap), keeping what it holds. */
  #reserve(bytes: number): void {
    if (this.#buffer.length >= bytes) return;
    let size = Math.max(MIN_BUFFER, this.#buffer.length * 2);
    while (size < bytes) size *= 2;
    size = Math.min(size, this.maxMessageBytes);
    const grown = this.#pool !== null ? this.#pool.takeReassembly(size) : new Uint8Array(size);
    grown.set(this.#buffer.subarray(0, this.#messageLength));
    this.#dropBuffer();
    this.#buffer = grown;
  }
}

// ------------------------------------------------------------------ server frames (unmasked)

const encoder = new TextEncoder();

/** Bytes of a server frame header for a payload of `length` bytes: 2, 4 or 10. */
export function frameHeaderLength(length: number): number {
  return length < 126 ? 2 : length <= 0xffff ? 4 : MAX_SERVER_HEADER;
}

/** Writes a final (FIN), unmasked frame header at out[o]; returns the offset after it. */
export function writeFrameHeader(
  out: Uint8Array,
  o: number,
  opcode: number,
  length: number,
): number {
  const size = frameHeaderLength(length);
  if (o + size > out.length) throw new RangeError("frame header does not fit");
  out[o] = 0x80 | opcode;
  if (size === 2) {
    out[o + 1] = length;
  } else if (size === 4) {
    out[o + 1] = 126;
    out[o + 2] = length >>> 8;
    out[o + 3] = length & 0xff;
  } else {
    out[o + 1] = 127;
    const high = Math.floor(length / 0x100000000);
    out[o + 2] = 0;
    out[o + 3] = 0;
    out[o + 4] = (high >>> 8) & 0xff;
    out[o + 5] = high & 0xff;
    out[o + 6] = length >>> 24;
    out[o + 7] = (length >>> 16) & 0xff;
    out[o + 8] = (length >>> 8) & 0xff;
    out[o + 9] = length & 0xff;
  }
  return o + size;
}

/**
 * Writes a text frame header ending right before out[payloadStart], for a payload already written
 * at out[payloadStart, payloadStart + length); returns where the frame starts. Leave
 * MAX_SERVER_HEADER bytes free before the payload to encode a reply with no copy.
 */
export function writeTextHeaderBefore(
  out: Uint8Array,
  payloadStart: number,
  length: number,
): number {
  const start = payloadStart - frameHeaderLength(length);
  if (start < 0) throw new RangeError("no room for the frame header");
  writeFrameHeader(out, start, OP_TEXT, length);
  return start;
}

/** Writes a text frame of payload[start, end) at out[o]; returns the offset after it. */
export function writeTextFrame(
  out: Uint8Array,
  o: number,
  payload: Uint8Array,
  start = 0,
  end = payload.length,
): number {
  const at = writeFrameHeader(out, o, OP_TEXT, end - start);
  if (at + end - start > out.length) throw new RangeError("text frame does not fit");
  out.set(payload.subarray(start, end), at);
  return at + end - start;
}

/** Writes a pong echoing a ping's payload (≤ 125 bytes) at out[o]; returns the offset after it. */
export function writePongFrame(out: Uint8Array, o: number, payload: Uint8Array): number {
  if (payload.length > MAX_CONTROL_PAYLOAD) throw new RangeError("pong payload over 125 bytes");
  const at = writeFrameHeader(out, o, OP_PONG, payload.length);
  if (at + payload.length > out.length) throw new RangeError("pong frame does not fit");
  out.set(payload, at);
  return at + payload.length;
}

/**
 * Writes a close frame at out[o]; returns the offset after it (at most 127 bytes on). `code` 0
 * writes no payload; otherwise the code and `reason`, cut at a character boundary to fit 125.
 */
export function writeCloseFrame(out: Uint8Array, o: number, code: number, reason = ""): number {
  if (o + 2 + MAX_CONTROL_PAYLOAD > out.length) throw new RangeError("close frame may not fit");
  if (code === 0) return writeFrameHeader(out, o, OP_CLOSE, 0);
  // encodeInto stops before a character that does not fit, so the reason stays valid UTF-8.
  const { written } = encoder.encodeInto(reason, out.subarray(o + 4, o + 2 + MAX_CONTROL_PAYLOAD));
  writeFrameHeader(out, o, OP_CLOSE, 2 + written);
  out[o + 2] = code >>> 8;
  out[o + 3] = code & 0xff;
  return o + 4 + written;
}
