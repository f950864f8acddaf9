/**
 * CRC-32, the checksum of the state file and of cluster change batches: it catches truncation
 * and corruption (not tampering). Slicing-by-8 tables make it about 1.5 ns per byte.
 */

/**
 * Slicing-by-8 tables: entry 256 * k + n is the CRC of byte n followed by k zero bytes. Built at
 * the first checksum, not at import: the loop that builds them gets hot enough for TurboFan, and
 * the first optimizing compile of a process touches the deno binary's compiler code (up to 3 MB of
 * an idle otter's RSS: docs/performance.md → Idle RSS), which a tracker without a state file or a
 * cluster does not need until it has traffic.
 */
let crcTables: Int32Array | undefined;

function makeCrcTables(): Int32Array {
  const tables = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    tables[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const previous = tables[256 * (k - 1) + n];
      tables[256 * k + n] = (previous >>> 8) ^ tables[previous & 0xff];
    }
  }
  return tables;
}

/**
 * CRC-32 (IEEE 802.3, as in zlib and gzip) of `bytes[start, end)`, as an unsigned number;
 * pass a previous result as `crc` to continue over the next piece of a longer input.
 */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  const t = crcTables ??= makeCrcTables();
  let c = ~crc;
  let i = start;
  // Eight bytes per step: about four times faster than one table lookup per byte.
  for (const last = end - 8; i <= last; i += 8) {
    const a = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^ t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
