/**
 * Minimal bencode (BEP 3) for tests: encode values to build .torrent files and announce
 * replies, decode tracker replies to check them. Strings decode to bytes (`Uint8Array`), since
 * BitTorrent byte strings are often binary (`peers`, `files` keys); `text()` reads one as UTF-8.
 * Tests only, so it favours clarity over speed.
 */

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

/** Decodes one complete bencode value; throws on malformed input or trailing bytes. */
export function bdecode(bytes: Uint8Array): Decoded {
  const cursor = { at: 0 };
  const value = decodeAt(bytes, cursor);
  if (cursor.at !== bytes.length) {
    throw new SyntaxError(`bdecode: ${bytes.length - cursor.at} trailing bytes`);
  }
  return value;
}

function decodeAt(bytes: Uint8Array, cursor: { at: number }): Decoded {
  const lead = bytes[cursor.at];
  if (lead === 0x69 /* i */) {
    const end = bytes.indexOf(0x65, /* e */ cursor.at);
    if (end < 0) throw new SyntaxError("bdecode: unterminated integer");
    const digits = latin1(bytes.subarray(cursor.at + 1, end));
    if (!/^(0|-?[1-9][0-9]*)$/.test(digits)) throw new SyntaxError(`bdecode: bad int ${digits}`);
    cursor.at = end + 1;
    return Number(digits);
  }
  if (lead === 0x6c /* l */) {
    cursor.at++;
    const list: Decoded[] = [];
    while (bytes[cursor.at] !== 0x65) {
      if (cursor.at >= bytes.length) throw new SyntaxError("bdecode: unterminated list");
      list.push(decodeAt(bytes, cursor));
    }
    cursor.at++;
    return list;
  }
  if (lead === 0x64 /* d */) {
    cursor.at++;
    const dict: { [key: string]: Decoded } = {};
    while (bytes[cursor.at] !== 0x65) {
      if (cursor.at >= bytes.length) throw new SyntaxError("bdecode: unterminated dict");
      const key = decodeAt(bytes, cursor);
      if (!(key instanceof Uint8Array)) throw new SyntaxError("bdecode: dict key not a string");
      dict[latin1(key)] = decodeAt(bytes, cursor);
    }
    cursor.at++;
    return dict;
  }
  const colon = bytes.indexOf(0x3a, /* : */ cursor.at);
  const digits = colon < 0 ? "" : latin1(bytes.subarray(cursor.at, colon));
  if (!/^(0|[1-9][0-9]*)$/.test(digits)) {
    throw new SyntaxError(`bdecode: unexpected byte ${lead} at ${cursor.at}`);
  }
  const start = colon + 1;
  const end = start + Number(digits);
  if (end > bytes.length) throw new SyntaxError("bdecode: string past the end");
  cursor.at = end;
  return bytes.slice(start, end);
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
