/**
 * HalfSipHash-1-3 with a 64-bit secret key and 32-bit output.
 *
 * Everything keyed by attacker-chosen bytes (info hashes, peer addresses, UDP connection ids)
 * goes through this function: with a random per-process key, nobody outside the process can
 * craft inputs that collide, so open-addressing tables keep short probe runs. It works on
 * 32-bit words only, so it stays in V8's fast integer paths and allocates nothing.
 */

/** A fresh random 64-bit key as two 32-bit words. */
export function randomKey(): Uint32Array {
  return crypto.getRandomValues(new Uint32Array(2));
}

let v0 = 0, v1 = 0, v2 = 0, v3 = 0;

function start(k0: number, k1: number): void {
  v0 = k0 | 0;
  v1 = k1 | 0;
  v2 = 0x6c796765 ^ k0;
  v3 = 0x74656462 ^ k1;
}

function round(): void {
  v0 = (v0 + v1) | 0;
  v1 = (v1 << 5) | (v1 >>> 27);
  v1 ^= v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = (v3 << 8) | (v3 >>> 24);
  v3 ^= v2;
  v0 = (v0 + v3) | 0;
  v3 = (v3 << 7) | (v3 >>> 25);
  v3 ^= v0;
  v2 = (v2 + v1) | 0;
  v1 = (v1 << 13) | (v1 >>> 19);
  v1 ^= v2;
  v2 = (v2 << 16) | (v2 >>> 16);
}

function absorb(m: number): void {
  v3 ^= m;
  round();
  v0 ^= m;
}

function finish(byteLength: number): number {
  absorb((byteLength << 24) | 0);
  v2 ^= 0xff;
  round();
  round();
  round();
  return (v1 ^ v3) >>> 0;
}

/** Reads a little-endian u32 from any byte offset. */
function word(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}

/**
 * Hashes `length` bytes of `bytes` from `offset`; `length` must be a multiple of 4
 * (info hashes are 20 bytes, IPv6 addresses 16, IPv4 addresses 4).
 */
export function hashBytes(
  k0: number,
  k1: number,
  bytes: Uint8Array,
  offset: number,
  length: number,
): number {
  start(k0, k1);
  for (let o = offset, end = offset + length; o < end; o += 4) absorb(word(bytes, o));
  return finish(length);
}

/** Hashes up to four 32-bit words given as numbers (unused trailing words are skipped). */
export function hashWords(
  k0: number,
  k1: number,
  count: number,
  w0: number,
  w1 = 0,
  w2 = 0,
  w3 = 0,
): number {
  start(k0, k1);
  absorb(w0 | 0);
  if (count > 1) absorb(w1 | 0);
  if (count > 2) absorb(w2 | 0);
  if (count > 3) absorb(w3 | 0);
  return finish(count * 4);
}
