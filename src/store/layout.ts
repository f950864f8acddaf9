/**
 * Word layouts shared by the swarm table and its invariant checker.
 *
 * Torrent row (ROW_WORDS u32 words, open-addressing slot):
 *   0..4  info hash, read as little-endian words (so the row's bytes are the info hash's bytes)
 *   5     last activity (`now` of the last announce / restore / setDownloaded); 0 marks an empty slot
 *   6     downloaded (completed count)
 *   7..9  IPv4 peer list: block index, meta (count | class << CLASS_SHIFT), seeders
 *   10..12 IPv6 peer list: same
 *
 * Peer-list block (in the pool of its family and capacity class):
 *   word 0 owner slot (row index, kept current when rows move), then `capacity` records.
 * Peer record: address words (big-endian u32: 1 for IPv4, 4 for IPv6), then a tail word
 *   port << 16 | seeder << 15 | (lastSeen mod 32768). Port is never 0, so tail 0 marks an empty record.
 */

export const ROW_WORDS = 13;
export const ROW_LAST_ACTIVITY = 5;
export const ROW_DOWNLOADED = 6;
export const ROW_V4 = 7;
export const ROW_V6 = 10;
/** Offsets inside a row's per-family triple. */
export const LIST_BLOCK = 0;
export const LIST_META = 1;
export const LIST_SEEDERS = 2;

export const CLASS_SHIFT = 25;
export const COUNT_MASK = (1 << CLASS_SHIFT) - 1;

export const RECORD_WORDS_V4 = 2;
export const RECORD_WORDS_V6 = 5;
export const BLOCK_HEADER_WORDS = 1;

export const PORT_SHIFT = 16;
export const SEEDER_BIT = 0x8000;
export const TIME_MASK = 0x7fff;
/** The 15-bit time stamp period: a record must be examined within this many seconds of its stamp. */
export const TIME_PERIOD = 0x8000;

/** Indices into the store's counter array. */
export const COUNTER_TORRENTS = 0;
export const COUNTER_PEERS4 = 1;
export const COUNTER_PEERS6 = 2;
export const COUNTER_SEEDERS4 = 3;
export const COUNTER_SEEDERS6 = 4;
export const COUNTER_WORDS = 5;

/**
 * Maps a 32-bit hash (int32 or uint32: the hashes are int32, see halfSipHashWords.ts) onto [0, n)
 * by multiply-shift (Lemire's range reduction), so tables and sets can have any size, not only
 * powers of two. Exact enough in doubles for n < 2^27: the result is deterministic and always < n,
 * which is all open addressing needs.
 */
export function rangeOf(hash: number, n: number): number {
  return ((hash >>> 0) * n * 2.3283064365386963e-10) >>> 0;
}
