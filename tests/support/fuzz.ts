/**
 * Fuzzing toolkit shared by the fuzz tests and bench/fuzz_long.ts: a seeded PRNG, byte and text
 * mutators, a strict bencode decoder (npm:bencode for replies read off sockets), and oracles
 * that say what otter must answer to a UDP datagram or an HTTP request and check a reply
 * against that.
 *
 * Everything is deterministic from one seed (`fuzzSeed`: OTTER_FUZZ_SEED or a fixed default), so
 * a failure printed with its seed and input number can be replayed. The oracles are written from
 * the protocol rules of docs/protocols.md, not from otter's code, so they can disagree with it.
 */
import {
  ERROR_ANNOUNCE_TOO_SHORT,
  ERROR_CONNECTION_ID,
  ERROR_INVALID_EVENT,
  ERROR_INVALID_PORT,
  ERROR_SCRAPE_EMPTY,
  ERROR_SCRAPE_LENGTH,
  ERROR_SCRAPE_TOO_MANY,
  ERROR_UNKNOWN_ACTION,
} from "../../src/protocol/udpPacket.ts";
import { ACCESS_DENIED_REASON } from "../../src/policy/accessList.ts";
import { bdecode, type Decoded } from "./bencode.ts";

// ------------------------------------------------------------------ seeds and the PRNG

/** The run's seed: OTTER_FUZZ_SEED (decimal or 0x hex) if set, else `fallback`. */
export function fuzzSeed(fallback: number): number {
  const text = Deno.env.get("OTTER_FUZZ_SEED");
  if (text === undefined || text.trim() === "") return fallback >>> 0;
  const n = Number(text.trim());
  if (!Number.isFinite(n)) throw new Error(`OTTER_FUZZ_SEED must be a number, got '${text}'`);
  return n >>> 0;
}

/** sfc32, seeded through splitmix32: fast, 32-bit, good enough statistics for fuzzing. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const split = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = split();
    this.#b = split();
    this.#c = split();
    this.#d = split();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A uniform u32. */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in 0..n-1 (n ≤ 2^32). */
  int(n: number): number {
    return Math.floor((this.next() / 4294967296) * n);
  }

  /** Uniform in lo..hi inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p * 4294967296;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Fills bytes [offset, offset + length) of `out` with random bytes. */
  fill(out: Uint8Array, offset: number, length: number): void {
    const end = Math.min(out.length, offset + length);
    for (let i = offset; i < end; i++) out[i] = this.next() & 0xff;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.fill(out, 0, length);
    return out;
  }

  /** A small count, biased toward the low end (most mutations stack only a few edits). */
  small(max: number): number {
    return Math.min(max, 1 + Math.floor(-Math.log2(1 - this.next() / 4294967296 + 1e-12)));
  }
}

/**
 * Runs `body(i)` until `maxInputs` ran or, once `minInputs` have, `ms` passed; returns how many
 * ran. The floor keeps a loaded machine's run as thorough as the test needs (it only takes longer);
 * the clock lets a fast one do more.
 */
export function fuzzLoop(
  ms: number,
  maxInputs: number,
  body: (i: number) => void,
  minInputs = 0,
): number {
  const deadline = performance.now() + ms;
  let i = 0;
  while (i < maxInputs) {
    // performance.now() is cheap but not free: look at the clock every 64 inputs.
    if ((i & 63) === 0 && i >= minInputs && performance.now() > deadline) break;
    body(i);
    i++;
  }
  return i;
}

export function hex(bytes: Uint8Array, max = 256): string {
  let s = "";
  const n = Math.min(bytes.length, max);
  for (let i = 0; i < n; i++) s += bytes[i].toString(16).padStart(2, "0");
  return bytes.length > max ? `${s}… (${bytes.length} bytes)` : s;
}

/** `text` cut for an error message, with control chars made visible. */
export function shown(text: string, max = 300): string {
  const json = JSON.stringify(text.length > max ? text.slice(0, max) : text);
  return text.length > max ? `${json}… (${text.length} chars)` : json;
}

// ------------------------------------------------------------------ mutators

/** u32 values that sit on boundaries somebody's code may get wrong. */
export const INTERESTING_U32: readonly number[] = [
  0,
  1,
  2,
  3,
  4,
  5,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0x80000001,
  0xfffffffe,
  0xffffffff,
  0x417,
  0x27101980,
];

/** Datagram lengths around BEP 15's fixed sizes. */
export const INTERESTING_LENGTHS: readonly number[] = [
  0,
  1,
  8,
  15,
  16,
  17,
  20,
  35,
  36,
  37,
  56,
  97,
  98,
  99,
  100,
  116,
  117,
  1496,
  1497,
  1516,
];

export function putU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = value >>> 16;
  out[offset + 2] = value >>> 8;
  out[offset + 3] = value;
}

export function getU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) |
    bytes[offset + 3]) >>> 0;
}

/** Field offsets of BEP 15 requests where a mutated u32 hurts most. */
const FIELD_OFFSETS = [0, 4, 8, 12, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 94];

/**
 * One random edit of bytes [0, length) of `buf`, in place; returns the new length (≤ buf.length).
 * Edits: bit flip, random byte, boundary u32 at any or a field offset, truncation, extension,
 * deletion, duplication, overwrite by another slice, a boundary length.
 */
export function mutateBytes(rng: Rng, buf: Uint8Array, length: number): number {
  const cap = buf.length;
  switch (rng.int(10)) {
    case 0:
      if (length > 0) buf[rng.int(length)] ^= 1 << rng.int(8);
      return length;
    case 1:
      if (length > 0) buf[rng.int(length)] = rng.next() & 0xff;
      return length;
    case 2: {
      if (length < 4) return length;
      putU32(buf, rng.int(length - 3), rng.pick(INTERESTING_U32));
      return length;
    }
    case 3: {
      const o = rng.pick(FIELD_OFFSETS);
      if (o + 4 > length) return length;
      putU32(buf, o, rng.pick(INTERESTING_U32));
      return length;
    }
    case 4:
      return rng.int(length + 1);
    case 5: {
      const add = Math.min(cap - length, rng.small(12) * rng.range(1, 24));
      rng.fill(buf, length, add);
      return length + add;
    }
    case 6: {
      if (length === 0) return 0;
      const at = rng.int(length);
      const n = Math.min(length - at, rng.range(1, 24));
      buf.copyWithin(at, at + n, length);
      return length - n;
    }
    case 7: {
      if (length === 0) return 0;
      const at = rng.int(length);
      const n = Math.min(length - at, rng.range(1, 40), cap - length);
      if (n <= 0) return length;
      buf.copyWithin(at + n, at, length); // [at, at + n) now appears twice
      return length + n;
    }
    case 8: {
      if (length < 2) return length;
      const from = rng.int(length);
      const to = rng.int(length);
      const n = Math.min(length - from, length - to, rng.range(1, 20));
      buf.copyWithin(to, from, from + n);
      return length;
    }
    default: {
      const n = Math.min(cap, rng.pick(INTERESTING_LENGTHS));
      if (n > length) rng.fill(buf, length, n - length);
      return n;
    }
  }
}

/** One random UTF-16 code unit or pair from a class that parsers tend to trip on. */
export function oddChar(rng: Rng): string {
  switch (rng.int(8)) {
    case 0:
      return String.fromCharCode(rng.int(0x20)); // control
    case 1:
      return String.fromCharCode(0x7f + rng.int(0x21)); // DEL and C1
    case 2:
      return String.fromCharCode(0xa0 + rng.int(0x60)); // Latin-1
    case 3:
      return String.fromCharCode(0xd800 + rng.int(0x800)); // lone surrogate
    case 4:
      return String.fromCodePoint(0x10000 + rng.int(0x100000)); // astral pair
    case 5:
      return String.fromCharCode(0x100 + rng.int(0xd700)); // other BMP
    case 6:
      return rng.pick(["\uFEFF", "\uFFFD", "\uFFFF", "\u2028", "\u0000", "\r", "\n", "\t"]);
    default:
      return String.fromCharCode(0x20 + rng.int(0x5f)); // printable ASCII
  }
}

/**
 * One random edit of `text`: insert a dictionary piece or an odd char, delete or duplicate a
 * range, truncate, blow a range up to thousands of chars, break an escape.
 */
export function mutateText(rng: Rng, text: string, pieces: readonly string[]): string {
  const n = text.length;
  const at = rng.int(n + 1);
  switch (rng.int(10)) {
    case 0:
    case 1:
      return text.slice(0, at) + rng.pick(pieces) + text.slice(at);
    case 2:
      return text.slice(0, at) + oddChar(rng) + text.slice(at);
    case 3: {
      const end = Math.min(n, at + rng.range(1, 16));
      return text.slice(0, at) + text.slice(end);
    }
    case 4: {
      const end = Math.min(n, at + rng.range(1, 40));
      return text.slice(0, end) + text.slice(at, end) + text.slice(end);
    }
    case 5:
      return text.slice(0, at);
    case 6: {
      const end = Math.min(n, at + rng.range(1, 8));
      const times = rng.pick([10, 100, 1000, 3000]);
      return text.slice(0, end) + text.slice(at, end).repeat(times) + text.slice(end);
    }
    case 7:
      return text.slice(0, at) + rng.pick(["%", "%4", "%g0", "%0", "%%", "%u0041"]) +
        text.slice(at);
    case 8: {
      if (n === 0) return rng.pick(pieces);
      const i = rng.int(n);
      return text.slice(0, i) + oddChar(rng) + text.slice(i + 1);
    }
    default: {
      const end = Math.min(n, at + rng.range(1, 12));
      return text.slice(0, at) + rng.pick(pieces) + text.slice(end);
    }
  }
}

// ------------------------------------------------------------------ strict bencode

/** A decoded value: ints as numbers, strings as byte views, dictionaries keyed by latin1 text. */
export type BValue = number | Uint8Array | BValue[] | Map<string, BValue>;

const MAX_DEPTH = 32;

/**
 * Decodes exactly one canonical bencode value filling all of `bytes`; throws SyntaxError on
 * anything else: trailing bytes, leading zeros, `-0`, unsorted or repeated dictionary keys,
 * lengths past the end, nesting deeper than 32. Strings are views into `bytes`.
 */
export function decodeBencodeStrict(bytes: Uint8Array): BValue {
  const cursor = { at: 0 };
  const value = decodeAt(bytes, cursor, 0);
  if (cursor.at !== bytes.length) {
    throw new SyntaxError(`${bytes.length - cursor.at} bytes after the value`);
  }
  return value;
}

/**
 * What `decodeBencodeStrict` gives, read by npm:bencode instead (support/bencode.ts `bdecode`,
 * canonical replies only): for replies read off sockets. The in-process fuzzers keep the
 * hand-written decoder, about ten times faster over their millions of inputs.
 */
export function decodeBencodeOracle(bytes: Uint8Array): BValue {
  return asBValue(bdecode(bytes));
}

function asBValue(value: Decoded): BValue {
  if (typeof value === "number" || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(asBValue);
  return new Map(Object.entries(value).map(([key, item]) => [key, asBValue(item)]));
}

function readDigits(bytes: Uint8Array, at: number, end: number, signed: boolean): number {
  let i = at;
  let negative = false;
  if (signed && bytes[i] === 0x2d) {
    negative = true;
    i++;
  }
  if (i >= end) throw new SyntaxError(`empty number at ${at}`);
  if (bytes[i] === 0x30 && (end - i > 1 || negative)) {
    throw new SyntaxError(`non-canonical number at ${at}`);
  }
  let value = 0;
  for (; i < end; i++) {
    const d = bytes[i] - 0x30;
    if (d < 0 || d > 9) throw new SyntaxError(`bad digit ${bytes[i]} at ${i}`);
    value = value * 10 + d;
  }
  if (value > Number.MAX_SAFE_INTEGER) throw new SyntaxError(`number too large at ${at}`);
  return negative ? -value : value;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function decodeAt(bytes: Uint8Array, cursor: { at: number }, depth: number): BValue {
  if (depth > MAX_DEPTH) throw new SyntaxError("nesting too deep");
  const at = cursor.at;
  if (at >= bytes.length) throw new SyntaxError(`value expected at ${at}, found the end`);
  const lead = bytes[at];
  if (lead === 0x69) { // i
    const end = bytes.indexOf(0x65, at + 1);
    if (end < 0) throw new SyntaxError(`unterminated integer at ${at}`);
    const value = readDigits(bytes, at + 1, end, true);
    cursor.at = end + 1;
    return value;
  }
  if (lead === 0x6c) { // l
    cursor.at = at + 1;
    const list: BValue[] = [];
    while (bytes[cursor.at] !== 0x65) {
      if (cursor.at >= bytes.length) throw new SyntaxError(`unterminated list at ${at}`);
      list.push(decodeAt(bytes, cursor, depth + 1));
    }
    cursor.at++;
    return list;
  }
  if (lead === 0x64) { // d
    cursor.at = at + 1;
    const dict = new Map<string, BValue>();
    let previous: Uint8Array | null = null;
    while (bytes[cursor.at] !== 0x65) {
      if (cursor.at >= bytes.length) throw new SyntaxError(`unterminated dictionary at ${at}`);
      const keyAt = cursor.at;
      const key = decodeAt(bytes, cursor, depth + 1);
      if (!(key instanceof Uint8Array)) throw new SyntaxError(`key at ${keyAt} is not a string`);
      if (previous !== null && compareBytes(previous, key) >= 0) {
        throw new SyntaxError(`key at ${keyAt} is not after the previous key`);
      }
      previous = key;
      dict.set(latin1(key), decodeAt(bytes, cursor, depth + 1));
    }
    cursor.at++;
    return dict;
  }
  if (lead >= 0x30 && lead <= 0x39) {
    const colon = bytes.indexOf(0x3a, at);
    if (colon < 0) throw new SyntaxError(`string length without ':' at ${at}`);
    const length = readDigits(bytes, at, colon, false);
    const start = colon + 1;
    if (start + length > bytes.length) throw new SyntaxError(`string at ${at} runs past the end`);
    cursor.at = start + length;
    return bytes.subarray(start, start + length);
  }
  throw new SyntaxError(`unexpected byte ${lead} at ${at}`);
}

// ------------------------------------------------------------------ UDP oracle

/** What otter must do with one datagram (docs/protocols.md, "UDP (BEP 15)"). */
export type UdpExpect =
  | { kind: "drop" }
  | { kind: "connect" }
  /** An error packet with `message`, cut to `maxLength` bytes in all. */
  | { kind: "error"; message: string; maxLength: number }
  /** An announce reply of at most `numwant` peers (`stopped`: none). */
  | { kind: "announce"; numwant: number; stopped: boolean }
  | { kind: "scrape"; hashes: number };

export interface UdpOracleContext {
  /** Did otter issue the 8 bytes at packet[0] to this sender, and are they still accepted? */
  idValid(packet: Uint8Array): boolean;
  /** Does the access list let the info hash at `offset` through? */
  allows(packet: Uint8Array, offset: number): boolean;
  defaultNumwant: number;
  maxNumwant: number;
  /** otter's UDP reply buffer size (4096). */
  replyCapacity: number;
  family: 4 | 6;
}

/** docs/protocols.md's rules for one datagram of `length` bytes. */
export function expectUdp(packet: Uint8Array, length: number, ctx: UdpOracleContext): UdpExpect {
  if (length < 16) return { kind: "drop" };
  const action = getU32(packet, 8);
  if (action === 0) {
    return getU32(packet, 0) === 0x417 && getU32(packet, 4) === 0x27101980
      ? { kind: "connect" }
      : { kind: "drop" };
  }
  if (action === 3) return { kind: "drop" };
  if (action !== 1 && action !== 2) {
    return { kind: "error", message: ERROR_UNKNOWN_ACTION, maxLength: length };
  }
  if (!ctx.idValid(packet)) {
    return { kind: "error", message: ERROR_CONNECTION_ID, maxLength: length };
  }
  const cap = ctx.replyCapacity;
  if (action === 1) {
    if (length < 98) return { kind: "error", message: ERROR_ANNOUNCE_TOO_SHORT, maxLength: cap };
    const event = getU32(packet, 80);
    if (event > 3) return { kind: "error", message: ERROR_INVALID_EVENT, maxLength: cap };
    if (((packet[96] << 8) | packet[97]) === 0) {
      return { kind: "error", message: ERROR_INVALID_PORT, maxLength: cap };
    }
    if (!ctx.allows(packet, 16)) {
      return { kind: "error", message: ACCESS_DENIED_REASON, maxLength: cap };
    }
    const wanted = getU32(packet, 92) | 0;
    const requested = wanted < 0 ? ctx.defaultNumwant : wanted;
    const room = Math.floor((cap - 20) / (ctx.family === 4 ? 6 : 18));
    return {
      kind: "announce",
      numwant: Math.min(requested, ctx.maxNumwant, room),
      stopped: event === 3,
    };
  }
  const bytes = length - 16;
  if (bytes === 0) return { kind: "error", message: ERROR_SCRAPE_EMPTY, maxLength: cap };
  if (bytes % 20 !== 0) return { kind: "error", message: ERROR_SCRAPE_LENGTH, maxLength: cap };
  if (bytes / 20 > 74) return { kind: "error", message: ERROR_SCRAPE_TOO_MANY, maxLength: cap };
  return { kind: "scrape", hashes: bytes / 20 };
}

export interface UdpReplyLimits {
  /** Configured announce interval; replies jitter it by ±10%. */
  interval: number;
  /** The sender's address bytes (4 or 16) and port, never to be sent back as a peer. */
  address: Uint8Array;
  port: number;
  /** Clock now, when known: a connect reply's id starts with it. */
  now?: number;
}

/** Checks a reply against the expectation; returns what is wrong, or null. */
export function udpReplyProblem(
  packet: Uint8Array,
  length: number,
  reply: Uint8Array,
  replyLength: number,
  expect: UdpExpect,
  ctx: UdpOracleContext,
  limits: UdpReplyLimits,
): string | null {
  if (expect.kind === "drop") {
    return replyLength === 0 ? null : `expected no reply, got ${replyLength} bytes`;
  }
  if (replyLength === 0) return `expected ${expect.kind}, got no reply`;
  if (replyLength > ctx.replyCapacity) return `reply of ${replyLength} bytes overflows`;
  if (replyLength < 8) return `reply of ${replyLength} bytes has no header`;
  const transactionId = getU32(packet, 12);
  if (getU32(reply, 4) !== transactionId) {
    return `transaction id ${getU32(reply, 4)}, request had ${transactionId}`;
  }
  const action = getU32(reply, 0);
  const wantedAction = { connect: 0, announce: 1, scrape: 2, error: 3 }[expect.kind];
  if (action !== wantedAction) {
    const why = action === 3 ? ` (error '${latin1(reply.subarray(8, replyLength))}')` : "";
    return `action ${action}${why}, expected ${wantedAction} (${expect.kind})`;
  }
  switch (expect.kind) {
    case "connect":
      if (replyLength !== 16) return `connect reply of ${replyLength} bytes`;
      if (limits.now !== undefined && getU32(reply, 8) !== limits.now) {
        return `connection id time ${getU32(reply, 8)}, clock says ${limits.now}`;
      }
      return null;
    case "error": {
      const text = latin1(reply.subarray(8, replyLength));
      const wanted = expect.message.slice(0, Math.max(0, expect.maxLength - 8));
      if (text !== wanted) return `error '${text}', expected '${wanted}'`;
      // Anti-amplification: before a valid connection id, never more bytes than were sent.
      if (expect.maxLength === length && replyLength > Math.max(8, length)) {
        return `error reply of ${replyLength} bytes to a ${length}-byte request`;
      }
      return null;
    }
    case "announce": {
      const entry = ctx.family === 4 ? 6 : 18;
      if (replyLength < 20 || (replyLength - 20) % entry !== 0) {
        return `announce reply of ${replyLength} bytes is not 20 + ${entry}n`;
      }
      const peers = (replyLength - 20) / entry;
      if (expect.stopped && peers > 0) return `${peers} peers for a stopped announce`;
      if (peers > expect.numwant) return `${peers} peers, numwant allows ${expect.numwant}`;
      const interval = getU32(reply, 8);
      const i = limits.interval;
      if (interval < Math.floor(i * 0.9) || interval > Math.ceil(i * 1.1)) {
        return `interval ${interval} outside ${i} ± 10%`;
      }
      return peerListProblem(reply, 20, peers, entry, limits.address, limits.port);
    }
    case "scrape":
      if (replyLength !== 8 + 12 * expect.hashes) {
        return `scrape reply of ${replyLength} bytes for ${expect.hashes} hashes`;
      }
      return null;
  }
}

/** Compact peers must be distinct and never the requester itself. */
export function peerListProblem(
  bytes: Uint8Array,
  offset: number,
  count: number,
  entry: number,
  address: Uint8Array,
  port: number,
): string | null {
  const seen = seenPeers;
  seen.clear();
  const addressLength = entry - 2;
  for (let k = 0; k < count; k++) {
    const o = offset + k * entry;
    const peerPort = (bytes[o + addressLength] << 8) | bytes[o + addressLength + 1];
    if (peerPort === 0) return `peer ${k} has port 0`;
    let self = peerPort === port && address.length === addressLength;
    for (let i = 0; self && i < addressLength; i++) self = bytes[o + i] === address[i];
    if (self) return `peer ${k} is the requester itself`;
    const key = peerKey(bytes, o, entry);
    if (seen.has(key)) return `peer ${k} is listed twice`;
    seen.add(key);
  }
  return null;
}

const seenPeers = new Set<number>();

/** A number naming a compact peer: exact for IPv4 (48 bits), a 53-bit hash for IPv6. */
function peerKey(bytes: Uint8Array, o: number, entry: number): number {
  if (entry === 6) return getU32(bytes, o) * 65536 + ((bytes[o + 4] << 8) | bytes[o + 5]);
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < entry; i++) {
    a = Math.imul(a ^ bytes[o + i], 0x01000193);
    b = Math.imul(b + bytes[o + i], 0x9e3779b1) ^ (b >>> 15);
  }
  return (a >>> 0) * 2097152 + ((b >>> 0) & 0x1fffff);
}

// ------------------------------------------------------------------ HTTP oracle

export type HttpRoute = "announce" | "scrape" | "other";

/** docs/protocols.md's routing rules for a request URL (absolute, as Request.url) and method. */
export function expectHttpStatus(
  url: string,
  method: string,
): { status: number; route: HttpRoute } {
  if (url.length > 8192) return { status: 414, route: "other" };
  const slash = url.indexOf("//");
  const pathStart = url.indexOf("/", slash < 0 ? 0 : slash + 2);
  if (pathStart < 0) return { status: 400, route: "other" };
  if (method !== "GET" && method !== "HEAD") return { status: 405, route: "other" };
  const q = url.indexOf("?", pathStart);
  const path = url.slice(pathStart, q < 0 ? url.length : q);
  if (path === "/announce") return { status: 200, route: "announce" };
  if (path === "/scrape") return { status: 200, route: "scrape" };
  return { status: 404, route: "other" };
}

export interface HttpAnnounceLimits {
  family: 4 | 6;
  /** The client's address (4 or 16 bytes) as otter should see it; null when unsure (proxies). */
  address: Uint8Array | null;
  /** The peer port announced, when known, to check the requester is not sent to itself. */
  port: number | null;
  maxPeers: number;
  interval: number;
  minInterval: number;
}

/** What an HTTP tracker body turned out to be, or what is wrong with it. */
export type HttpBody =
  | { kind: "failure"; reason: string }
  | { kind: "announce"; dict: Map<string, BValue>; peers: number }
  | { kind: "scrape"; files: Map<string, Map<string, BValue>> }
  | { kind: "bad"; problem: string };

const ANNOUNCE_KEYS = new Set([
  "complete",
  "downloaded",
  "external ip",
  "incomplete",
  "interval",
  "min interval",
  "peers",
  "peers6",
]);

function isCount(v: BValue | undefined): v is number {
  return typeof v === "number" && v >= 0 && v <= 0xffffffff;
}

/** Decodes (with `decode`) and checks a 200 body from /announce or /scrape. */
export function classifyHttpBody(
  body: Uint8Array,
  route: "announce" | "scrape",
  limits: HttpAnnounceLimits,
  decode: (body: Uint8Array) => BValue = decodeBencodeStrict,
): HttpBody {
  let value: BValue;
  try {
    value = decode(body);
  } catch (e) {
    return { kind: "bad", problem: `not canonical bencode: ${(e as Error).message}` };
  }
  if (!(value instanceof Map)) return { kind: "bad", problem: "not a dictionary" };
  if (value.has("failure reason")) {
    const reason = value.get("failure reason");
    if (value.size !== 1) return { kind: "bad", problem: "failure reason with other keys" };
    if (!(reason instanceof Uint8Array) || reason.length === 0) {
      return { kind: "bad", problem: "failure reason is not a non-empty string" };
    }
    return { kind: "failure", reason: new TextDecoder().decode(reason) };
  }
  if (route === "scrape") {
    const files = value.get("files");
    if (value.size !== 1 || !(files instanceof Map)) {
      return { kind: "bad", problem: `scrape keys ${[...value.keys()]}` };
    }
    for (const [key, entry] of files) {
      if (key.length !== 20) return { kind: "bad", problem: `files key of ${key.length} bytes` };
      if (
        !(entry instanceof Map) || entry.size !== 3 || !isCount(entry.get("complete")) ||
        !isCount(entry.get("downloaded")) || !isCount(entry.get("incomplete"))
      ) return { kind: "bad", problem: "files entry is not {complete, downloaded, incomplete}" };
    }
    return { kind: "scrape", files: files as Map<string, Map<string, BValue>> };
  }
  for (const key of value.keys()) {
    if (!ANNOUNCE_KEYS.has(key)) return { kind: "bad", problem: `unexpected key ${shown(key)}` };
  }
  for (const key of ["complete", "downloaded", "incomplete", "interval", "min interval"]) {
    if (!isCount(value.get(key))) return { kind: "bad", problem: `${key} missing or not a count` };
  }
  const interval = value.get("interval") as number;
  const i = limits.interval;
  if (interval < Math.floor(i * 0.9) || interval > Math.ceil(i * 1.1)) {
    return { kind: "bad", problem: `interval ${interval} outside ${i} ± 10%` };
  }
  if (value.get("min interval") !== limits.minInterval) {
    return { kind: "bad", problem: `min interval ${value.get("min interval")}` };
  }
  const peers = value.get("peers");
  const peers6 = value.get("peers6");
  if (!(peers instanceof Uint8Array)) return { kind: "bad", problem: "peers missing" };
  const entry = limits.family === 4 ? 6 : 18;
  const list = limits.family === 4 ? peers : peers6;
  if (limits.family === 6) {
    if (peers.length !== 0) return { kind: "bad", problem: "IPv6 client got IPv4 peers" };
    if (!(peers6 instanceof Uint8Array)) return { kind: "bad", problem: "peers6 missing" };
  } else if (peers6 !== undefined) {
    return { kind: "bad", problem: "IPv4 client got peers6" };
  }
  const bytes = list as Uint8Array;
  if (bytes.length % entry !== 0) {
    return { kind: "bad", problem: `peer list of ${bytes.length} bytes` };
  }
  const count = bytes.length / entry;
  if (count > limits.maxPeers) {
    return { kind: "bad", problem: `${count} peers, at most ${limits.maxPeers} allowed` };
  }
  const ip = value.get("external ip");
  if (ip !== undefined) {
    if (!(ip instanceof Uint8Array) || ip.length !== (limits.family === 4 ? 4 : 16)) {
      return { kind: "bad", problem: "external ip of the wrong size" };
    }
    if (limits.address !== null && compareBytes(ip, limits.address) !== 0) {
      return { kind: "bad", problem: `external ip ${hex(ip)}, client is ${hex(limits.address)}` };
    }
  }
  if (limits.address !== null && limits.port !== null) {
    const problem = peerListProblem(bytes, 0, count, entry, limits.address, limits.port);
    if (problem !== null) return { kind: "bad", problem };
  }
  return { kind: "announce", dict: value, peers: count };
}
