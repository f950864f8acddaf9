/**
 * Word layouts shared by the swarm table and its invariant checker.
 *
 * Torrent row (ROW_WORDS u32 words, open-addressing slot):
 *   0..4  info hash, read as little-endian words (so the row's bytes are the info hash's bytes)
 *   5     last activity (`now` of the last announce / restore / setDownloaded); 0 marks an empty slot
 *   6     downloaded (completed count)
 *   7..9  IPv4 peer list: block index, meta (count | class << CLASS_SHIFT), seeders
 *   10..12 IPv6 peer list: same
 *   13..15 WebSocket peer list: same (FAMILY_WS; see below)
 *
 * Peer-list block (in the pool of its family and capacity class):
 *   word 0 owner slot (row index, kept current when rows move), then `capacity` records.
 * Peer record: address words (big-endian u32: 1 for IPv4, 4 for IPv6), then a tail word
 *   port << 16 | seeder << 15 | (lastSeen mod 32768). Port is never 0, so tail 0 marks an empty record.
 *
 * WebSocket (WebTorrent) peers are a third family, FAMILY_WS, with IPv4-sized records: they are
 * reachable only through otter's socket to them, so their "address" is not an address but a
 * number the WebSocket tracker gives them (its peer table's entry) and their "port" that entry's
 * generation. A peer another cluster node holds has WS_REMOTE_BIT set in its address word, so
 * offers are never routed to it. Being a family of its own, they count in every count (scrape,
 * caps, downloaded, expiry) and never appear in the IPv4 or IPv6 peer lists.
 */

export const ROW_WORDS = 16;
export const ROW_LAST_ACTIVITY = 5;
export const ROW_DOWNLOADED = 6;
export const ROW_V4 = 7;
export const ROW_V6 = 10;
export const ROW_WS = 13;
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
export const COUNTER_PEERS_WS = 5;
export const COUNTER_SEEDERS_WS = 6;
export const COUNTER_WORDS = 7;

/** The WebSocket peers' family (see the header); 4 and 6 are the IP address families. */
export const FAMILY_WS = 1;
export type PeerFamily = 4 | 6 | typeof FAMILY_WS;
/** Families, in pool order (IPv4, IPv6, WebSocket: `familyAt`). */
export const FAMILY_COUNT = 3;
/** Set in the address word of a WebSocket peer held for another cluster node. */
export const WS_REMOTE_BIT = 0x80000000;

/** The family at place `index` (0, 1, 2). */
export function familyAt(index: number): PeerFamily {
  return index === 0 ? 4 : index === 1 ? 6 : FAMILY_WS;
}

/** Where a row's list of `family` starts (ROW_V4, ROW_V6 or ROW_WS). */
export function listOf(family: PeerFamily): number {
  return family === 4 ? ROW_V4 : family === 6 ? ROW_V6 : ROW_WS;
}

/** Words of a record of `family`: WebSocket records are IPv4-sized. */
export function recordWordsOf(family: PeerFamily): number {
  return family === 6 ? RECORD_WORDS_V6 : RECORD_WORDS_V4;
}

/** The store counter of `family`'s peers. */
export function peersCounterOf(family: PeerFamily): number {
  return family === 4 ? COUNTER_PEERS4 : family === 6 ? COUNTER_PEERS6 : COUNTER_PEERS_WS;
}

/** The store counter of `family`'s seeders. */
export function seedersCounterOf(family: PeerFamily): number {
  return family === 4 ? COUNTER_SEEDERS4 : family === 6 ? COUNTER_SEEDERS6 : COUNTER_SEEDERS_WS;
}

/**
 * Maps a 32-bit hash (int32 or uint32: the hashes are int32, see halfSipHashWords.ts) onto [0, n)
 * by multiply-shift (Lemire's range reduction), so tables and sets can have any size, not only
 * powers of two. Exact enough in doubles for n < 2^27: the result is deterministic and always < n,
 * which is all open addressing needs.
 */
export function rangeOf(hash: number, n: number): number {
  return ((hash >>> 0) * n * 2.3283064365386963e-10) >>> 0;
}
