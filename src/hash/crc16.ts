/**
 * CRC-16/XMODEM and the Redis Cluster key slot it gives: a key's slot is the CRC of its hash tag
 * (the part between the first `{` and the next `}`, when not empty) or of the whole key, mod
 * 16384. The cluster sync names its keys so that a shard's keys share a tag, and so a slot, and
 * opens its reading connection to that slot's master (clusterKeys.ts, shardReader.ts).
 */

const TABLE = makeTable();

function makeTable(): Uint16Array {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    table[n] = c;
  }
  return table;
}

/** CRC-16/XMODEM (polynomial 0x1021, initial 0, no reflection) of `bytes`. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff];
  }
  return crc;
}

export const SLOTS = 16384;

/** The Redis Cluster slot of `key`, as CLUSTER KEYSLOT says it. */
export function keySlot(key: string): number {
  const open = key.indexOf("{");
  let hashed = key;
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  return crc16(new TextEncoder().encode(hashed)) % SLOTS;
}
