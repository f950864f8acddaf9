/**
 * HalfSipHash-1-3 with a 64-bit secret key and 32-bit output.
 *
 * Everything keyed by attacker-chosen bytes (info hashes, peer addresses, UDP connection ids)
 * goes through this function or its fixed-length forms over 32-bit words (halfSipHashWords.ts,
 * what the hot path uses): with a random per-process key, nobody outside the process can
 * craft inputs that collide, so open-addressing tables keep short probe runs. It works on
 * 32-bit words only, keeps its state in locals (V8 keeps them in registers; module-level state
 * measured ~30% slower) and allocates nothing.
 */

/** A fresh random 64-bit key as two 32-bit words. */
export function randomKey(): Uint32Array {
  return crypto.getRandomValues(new Uint32Array(2));
}

/** Reads a little-endian 32-bit word (as a signed int32) from any byte offset. */
function int32LE(b: Uint8Array, o: number): number {
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
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  // One SipRound per message block (the "1" of 1-3; the last block is the length byte, inputs
  // being whole words), then three finalization rounds (the "3") with no message, written once.
  const blocks = (length >> 2) + 1;
  for (let i = 0, o = offset; i < blocks + 3; i++, o += 4) {
    let m = 0;
    if (i < blocks) {
      m = i < blocks - 1 ? int32LE(bytes, o) : (length << 24) | 0;
      v3 ^= m;
    } else if (i === blocks) {
      v2 ^= 0xff;
    }
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
    v0 ^= m;
  }
  return (v1 ^ v3) >>> 0;
}
