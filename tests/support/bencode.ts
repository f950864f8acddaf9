/**
 * Bencode (BEP 3) for tests: `bencode()` encodes values to build .torrent files and replies;
 * `bdecode()` reads tracker replies with npm:bencode, an oracle written by nobody on this team,
 * and refuses any reply that is not canonical bencode. Strings decode to bytes (`Uint8Array`),
 * since BitTorrent byte strings are often binary (`peers`, `files` keys); `text()` reads one as
 * UTF-8. Tests only, so it favours clarity over speed.
 */
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import npmBencode from "npm:bencode@4.0.1";

/** A bencode value. Dictionaries are plain objects (keys must be UTF-8 text). */
export type BValue = number | bigint | string | Uint8Array | BValue[] | { [key: string]: BValue };

/** A decoded bencode value: byte strings stay bytes, dictionary keys become latin1 strings. */
export type Decoded = number | Uint8Array | Decoded[] | { [key: string]: Decoded };

const utf8 = new TextEncoder();

/** Encodes `value`; dictionary keys are sorted as raw bytes, as BEP 3 requires. */
export function bencode(value: BValue): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  encodeInto(value, parts);
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function encodeInto(value: BValue, parts: Uint8Array[]): void {
  if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isInteger(value)) {
      throw new TypeError(`bencode: not an integer: ${value}`);
    }
    parts.push(utf8.encode(`i${value}e`));
  } else if (typeof value === "string") {
    encodeInto(utf8.encode(value), parts);
  } else if (value instanceof Uint8Array) {
    parts.push(utf8.encode(`${value.length}:`), value);
  } else if (Array.isArray(value)) {
    parts.push(utf8.encode("l"));
    for (const item of value) encodeInto(item, parts);
    parts.push(utf8.encode("e"));
  } else {
    parts.push(utf8.encode("d"));
    const keys = Object.keys(value).map((key) => ({ key, bytes: utf8.encode(key) }));
    keys.sort((a, b) => compareBytes(a.bytes, b.bytes));
    for (const { key, bytes } of keys) {
      encodeInto(bytes, parts);
      encodeInto(value[key], parts);
    }
    parts.push(utf8.encode("e"));
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * Decodes a tracker reply with npm:bencode (webtorrent's decoder, written apart from otter and
 * from these tests) and accepts it only if it is canonical bencode: the value, encoded again
 * (leaves by npm:bencode, dictionary keys sorted as raw bytes), must give back exactly `bytes`.
 * Canonical bencode is unique, so that one comparison refuses everything npm:bencode itself lets
 * through: trailing bytes, leading zeros and `-0`, unsorted or repeated keys, a length past the
 * end. npm:bencode turns a key that is not UTF-8 into its hex text, so a key it gives as an
 * even number of lowercase hex digits may be that text or those bytes; the reading whose
 * encoding occurs in `bytes` is taken, and the comparison proves the choice right.
 */
export function bdecode(bytes: Uint8Array): Decoded {
  let raw: unknown;
  try {
    raw = npmBencode.decode(bytes);
  } catch (error) {
    throw new SyntaxError(`bdecode: npm:bencode refused it: ${(error as Error).message}`);
  }
  if (raw === null) throw new SyntaxError("bdecode: empty input");
  const parts: Uint8Array[] = [];
  const value = canonical(raw, parts, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  const again = concat(parts);
  const at = firstDifference(again, bytes);
  if (at >= 0) {
    throw new SyntaxError(
      `bdecode: not canonical bencode: differs at byte ${at} of ${bytes.length} from ` +
        `${JSON.stringify(latin1(again.subarray(at, at + 24)))}`,
    );
  }
  return value;
}

const LIST = Uint8Array.of(0x6c);
const DICT = Uint8Array.of(0x64);
const END = Uint8Array.of(0x65);
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Appends the canonical encoding of npm:bencode's value to `parts`; returns it as Decoded.
 * `input` is what was decoded, to tell the two readings of a hex-looking key apart. */
function canonical(raw: unknown, parts: Uint8Array[], input: Buffer): Decoded {
  if (typeof raw === "number" || raw instanceof Uint8Array) {
    parts.push(npmBencode.encode(raw));
    return raw;
  }
  if (Array.isArray(raw)) {
    parts.push(LIST);
    const list = raw.map((item) => canonical(item, parts, input));
    parts.push(END);
    return list;
  }
  if (typeof raw === "object" && raw !== null) {
    const entries = Object.entries(raw).map(([key, item]) => ({ key: keyBytes(key, input), item }));
    entries.sort((a, b) => compareBytes(a.key, b.key));
    parts.push(DICT);
    const dict: { [key: string]: Decoded } = {};
    for (const { key, item } of entries) {
      parts.push(npmBencode.encode(key));
      dict[latin1(key)] = canonical(item, parts, input);
    }
    parts.push(END);
    return dict;
  }
  throw new SyntaxError(`bdecode: npm:bencode gave a ${typeof raw}`);
}

/** A key's bytes: npm:bencode gives a UTF-8 key as text and any other key as its hex. */
function keyBytes(key: string, input: Buffer): Uint8Array {
  const text = utf8.encode(key);
  if (key.length === 0 || key.length % 2 !== 0 || !/^[0-9a-f]+$/.test(key)) return text;
  const hexed = Buffer.from(key, "hex");
  try {
    utf8Strict.decode(hexed);
    return text; // UTF-8 bytes would have come as text, not hex
  } catch {
    // Either reading is possible: the text if the input holds it as a key, else the bytes.
    return input.includes(npmBencode.encode(text)) ? text : new Uint8Array(hexed);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Index of the first byte where a and b differ (or where the shorter ends), -1 if equal. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Bytes as a latin1 string: one char per byte, so binary keys survive. */
export function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** A decoded byte string as UTF-8 text (for `failure reason` and the like). */
export function text(value: Decoded | undefined): string {
  if (!(value instanceof Uint8Array)) throw new TypeError("bencode: not a byte string");
  return new TextDecoder().decode(value);
}

/** A decoded value as a dictionary; throws if it is not one. */
export function dict(value: Decoded | undefined): Record<string, Decoded> {
  if (typeof value !== "object" || value instanceof Uint8Array || Array.isArray(value)) {
    throw new TypeError("bencode: not a dictionary");
  }
  return value;
}
