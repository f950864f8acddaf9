/**
 * A strict, slow bencode decoder for tests only: checks that writers produce canonical bencode
 * (sorted, unique dictionary keys; no leading zeros; nothing trailing).
 */

export type Bencoded = number | Uint8Array | Bencoded[] | Map<string, Bencoded>;

/** Latin-1 view of bytes, so binary keys survive as strings one char per byte. */
export function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** Bytes of a Latin-1 string (each char must be < 256). */
export function bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) throw new Error("not latin-1");
    out[i] = c;
  }
  return out;
}

export function decodeBencode(data: Uint8Array): Bencoded {
  let pos = 0;
  const fail = (why: string): never => {
    throw new Error(`bad bencode at ${pos}: ${why}`);
  };
  const readInt = (terminator: number): number => {
    const start = pos;
    if (data[pos] === 45) pos++;
    const digitsStart = pos;
    while (pos < data.length && data[pos] >= 48 && data[pos] <= 57) pos++;
    if (pos === digitsStart) fail("no digits");
    if (data[digitsStart] === 48 && pos - digitsStart > 1) fail("leading zero");
    if (data[start] === 45 && data[digitsStart] === 48) fail("negative zero");
    if (data[pos] !== terminator) fail("bad integer terminator");
    const value = Number(latin1(data.subarray(start, pos)));
    pos++;
    return value;
  };
  const value = (): Bencoded => {
    if (pos >= data.length) fail("truncated");
    const c = data[pos];
    if (c === 105) { // i
      pos++;
      return readInt(101);
    }
    if (c === 108) { // l
      pos++;
      const list: Bencoded[] = [];
      while (data[pos] !== 101) list.push(value());
      pos++;
      return list;
    }
    if (c === 100) { // d
      pos++;
      const dict = new Map<string, Bencoded>();
      let previous: string | null = null;
      while (data[pos] !== 101) {
        if (pos >= data.length) fail("truncated dict");
        const key = value();
        if (!(key instanceof Uint8Array)) fail("non-string key");
        const k = latin1(key as Uint8Array);
        if (previous !== null && !(previous < k)) fail(`key order: ${previous} then ${k}`);
        previous = k;
        dict.set(k, value());
      }
      pos++;
      return dict;
    }
    if (c >= 48 && c <= 57) {
      const n = readInt(58);
      if (pos + n > data.length) fail("string past end");
      const s = data.slice(pos, pos + n);
      pos += n;
      return s;
    }
    return fail("unknown type");
  };
  const result = value();
  if (pos !== data.length) fail("trailing bytes");
  return result;
}
