/**
 * Peers for an announce reply: up to numwant compact peers of the requester's family, taken from a
 * random record of its list onward with wrap-around, so every peer is as likely to be shown and
 * nothing is shuffled or allocated. The requester itself is skipped, and so are other seeders when
 * the requester is a seeder (it has nothing to get from them). A seeder in a huge list walks at
 * most SEEDER_WALK_LIMIT records: a swarm of seeders must not make every seeder's announce scan
 * it all.
 *
 * Compact form: 6 bytes for IPv4 (address, port, big-endian), 18 for IPv6. WebSocket peers
 * (`sampleWsPeers`, the peers an announce's offers go to) come in the IPv4 form too: for this
 * node's own, their entry number and generation; for another node's (WS_REMOTE_BIT), the key that
 * node publishes them by, when offers are relayed between nodes.
 */
import { CLASS_CAPACITY, CLASS_COUNT, FIRST_SET_CLASS } from "./classes.ts";
import {
  CLASS_SHIFT,
  COUNT_MASK,
  LIST_BLOCK,
  LIST_META,
  LIST_SEEDERS,
  rangeOf,
  RECORD_WORDS_V4,
  RECORD_WORDS_V6,
  ROW_V4,
  ROW_V6,
  ROW_WORDS,
  ROW_WS,
  SEEDER_BIT,
  WS_REMOTE_BIT,
} from "./layout.ts";
import { recordsOf } from "./blockPools.ts";

/** A seeder asking for leechers in a big set walks at most this many records. */
const SEEDER_WALK_LIMIT = 4096;

/**
 * Writes up to `numwant` peers of the list of `family` of the torrent at `slot` into
 * out[outOffset..], skipping record `self` (the requester's, or -1) and, for a `seeder`, other
 * seeders. Returns the number written.
 */
export function samplePeers(
  rows: Uint32Array,
  pools: readonly Uint32Array[],
  slot: number,
  family: 4 | 6,
  self: number,
  seeder: boolean,
  numwant: number,
  random: () => number,
  out: Uint8Array,
  outOffset: number,
): number {
  const recordWords = family === 4 ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
  const list = slot * ROW_WORDS + (family === 4 ? ROW_V4 : ROW_V6);
  const meta = rows[list + LIST_META];
  const count = meta & COUNT_MASK;
  const eligible = seeder ? count - rows[list + LIST_SEEDERS] : count - (self >= 0 ? 1 : 0);
  if (eligible <= 0) return 0;
  const want = numwant < eligible ? numwant : eligible;
  const sizeClass = meta >>> CLASS_SHIFT;
  const poolIndex = (family === 4 ? 0 : CLASS_COUNT) + sizeClass;
  const pool = pools[poolIndex];
  const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
  // Linear and dense lists fill their first `count` records; sets are walked over their capacity.
  const slots = sizeClass < FIRST_SET_CLASS ? count : CLASS_CAPACITY[sizeClass];
  let steps = seeder && slots > SEEDER_WALK_LIMIT ? SEEDER_WALK_LIMIT : slots;
  let i = rangeOf(random() >>> 0, slots);
  let written = 0;
  let at = outOffset;
  const skip = seeder ? SEEDER_BIT : 0;
  if (recordWords === RECORD_WORDS_V4) {
    for (let record = records + i * 2; steps > 0; steps--) {
      const tail = pool[record + 1];
      if (tail !== 0 && i !== self && (tail & skip) === 0) {
        const word = pool[record];
        out[at] = word >>> 24;
        out[at + 1] = word >>> 16;
        out[at + 2] = word >>> 8;
        out[at + 3] = word;
        out[at + 4] = tail >>> 24;
        out[at + 5] = tail >>> 16;
        at += 6;
        if (++written === want) break;
      }
      record += 2;
      if (++i === slots) {
        i = 0;
        record = records;
      }
    }
    return written;
  }
  for (; steps > 0; steps--) {
    const record = records + i * recordWords;
    const tail = pool[record + recordWords - 1];
    if (tail !== 0 && i !== self && (tail & skip) === 0) {
      for (let w = 0; w < recordWords - 1; w++) {
        const word = pool[record + w];
        out[at] = word >>> 24;
        out[at + 1] = word >>> 16;
        out[at + 2] = word >>> 8;
        out[at + 3] = word;
        at += 4;
      }
      out[at] = tail >>> 24;
      out[at + 1] = tail >>> 16;
      at += 2;
      if (++written === want) break;
    }
    if (++i === slots) i = 0;
  }
  return written;
}

/**
 * Writes up to `numwant` WebSocket peers of the torrent at `slot` into out[outOffset..] in the
 * 6-byte form, skipping record `self`, for a `seeder` other seeders, and with `localOnly` the
 * peers other nodes hold (WS_REMOTE_BIT: reachable only if offers are relayed between nodes); as
 * `samplePeers`, from a random record on. Skipped peers are passed as they are met, and every walk
 * (not only a seeder's) stops after SEEDER_WALK_LIMIT records, so a big swarm held mostly by other
 * nodes costs a bounded walk and may yield fewer than `numwant`. Returns the number written.
 */
export function sampleWsPeers(
  rows: Uint32Array,
  pools: readonly Uint32Array[],
  slot: number,
  self: number,
  seeder: boolean,
  localOnly: boolean,
  numwant: number,
  random: () => number,
  out: Uint8Array,
  outOffset: number,
): number {
  const list = slot * ROW_WORDS + ROW_WS;
  const meta = rows[list + LIST_META];
  const count = meta & COUNT_MASK;
  const eligible = seeder ? count - rows[list + LIST_SEEDERS] : count - (self >= 0 ? 1 : 0);
  if (eligible <= 0) return 0;
  const want = numwant < eligible ? numwant : eligible;
  const sizeClass = meta >>> CLASS_SHIFT;
  const poolIndex = 2 * CLASS_COUNT + sizeClass;
  const pool = pools[poolIndex];
  const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
  const slots = sizeClass < FIRST_SET_CLASS ? count : CLASS_CAPACITY[sizeClass];
  let steps = slots > SEEDER_WALK_LIMIT ? SEEDER_WALK_LIMIT : slots;
  let i = rangeOf(random() >>> 0, slots);
  let written = 0;
  let at = outOffset;
  const skip = seeder ? SEEDER_BIT : 0;
  const skipWord = localOnly ? WS_REMOTE_BIT : 0;
  for (let record = records + i * RECORD_WORDS_V4; steps > 0; steps--) {
    const tail = pool[record + 1];
    const word = pool[record];
    if (tail !== 0 && i !== self && (tail & skip) === 0 && (word & skipWord) === 0) {
      out[at] = word >>> 24;
      out[at + 1] = word >>> 16;
      out[at + 2] = word >>> 8;
      out[at + 3] = word;
      out[at + 4] = tail >>> 24;
      out[at + 5] = tail >>> 16;
      at += 6;
      if (++written === want) break;
    }
    record += RECORD_WORDS_V4;
    if (++i === slots) {
      i = 0;
      record = records;
    }
  }
  return written;
}
