/**
 * Recounts a SwarmTable from its raw arrays and lists every broken invariant.
 *
 * For tests, fuzzing and hardening only (it allocates freely and is O(store)): it re-derives
 * probe runs, list contents, seeders, block ownership and the live counters, so any drift
 * between the incremental bookkeeping and the data shows up as a readable message.
 */

import { hashBytes } from "../hash/halfSipHash.ts";
import { hash2Words, hash4Words } from "../hash/halfSipHashWords.ts";
import {
  CLASS_CAPACITY,
  CLASS_COUNT,
  CLASS_MAX,
  FIRST_SET_CLASS,
  LINEAR_CLASSES,
} from "./classes.ts";
import { isSorted } from "./denseLists.ts";
import {
  BLOCK_HEADER_WORDS,
  CLASS_SHIFT,
  COUNT_MASK,
  COUNTER_PEERS4,
  COUNTER_PEERS6,
  COUNTER_PEERS_WS,
  COUNTER_SEEDERS4,
  COUNTER_SEEDERS6,
  COUNTER_SEEDERS_WS,
  COUNTER_TORRENTS,
  FAMILY_COUNT,
  familyAt,
  LIST_BLOCK,
  LIST_META,
  LIST_SEEDERS,
  listOf,
  PORT_SHIFT,
  rangeOf,
  RECORD_WORDS_V4,
  recordWordsOf,
  ROW_DOWNLOADED,
  ROW_LAST_ACTIVITY,
  ROW_V4,
  ROW_V6,
  ROW_WORDS,
  ROW_WS,
  SEEDER_BIT,
} from "./layout.ts";
import type { SwarmTable } from "./swarmTable.ts";

/** Problems found, at most `limit` of them; an empty array means the table is consistent. */
export function checkInvariants(table: SwarmTable, limit = 20): string[] {
  const problems: string[] = [];
  const report = (message: string) => {
    if (problems.length < limit) problems.push(message);
  };
  const { rows, capacity, oldRows, oldCapacity, pools, poolUsed, counters, hashKey } = table
    .view();
  const k0 = hashKey[0] | 0;
  const k1 = hashKey[1] | 0;
  if (rows.length !== capacity * ROW_WORDS) {
    report(`rows hold ${rows.length} words, not ${capacity} rows`);
  }
  if (oldRows.length !== oldCapacity * ROW_WORDS) {
    report(`old rows hold ${oldRows.length} words, not ${oldCapacity} rows`);
  }

  const infoHashes = new Set<string>();
  const blocksSeen = pools.map(() => new Set<number>());
  let torrents = 0;
  const peers = [0, 0, 0];
  const seeders = [0, 0, 0];

  // During a resize both tables hold rows: each must be a valid table on its own, an info hash
  // must be in only one of them, and each block's owner word names its row's slot in its table.
  const tables = [
    { rows, capacity, label: "" },
    { rows: oldRows, capacity: oldCapacity, label: "old " },
  ];
  for (const { rows, capacity, label } of tables) {
    const rowBytes = new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
    for (let s = 0; s < capacity; s++) {
      const o = s * ROW_WORDS;
      if (rows[o + ROW_LAST_ACTIVITY] === 0) {
        for (let w = 0; w < ROW_WORDS; w++) {
          if (rows[o + w] !== 0) {
            report(`${label}empty slot ${s} has nonzero word ${w}`);
            break;
          }
        }
        continue;
      }
      torrents++;
      const key = Array.from(rows.subarray(o, o + 5), (w) => w.toString(16)).join(":");
      if (infoHashes.has(key)) report(`${label}slot ${s}: duplicate info hash ${key}`);
      infoHashes.add(key);
      // Linear probing: every slot from the home slot up to this one is occupied.
      const home = rangeOf(hashBytes(k0, k1, rowBytes, o * 4, 20), capacity);
      for (let t = home; t !== s; t = t + 1 === capacity ? 0 : t + 1) {
        if (rows[t * ROW_WORDS + ROW_LAST_ACTIVITY] === 0) {
          report(`${label}slot ${s}: probe run from home ${home} has a hole at ${t}`);
          break;
        }
      }

      for (let f = 0; f < FAMILY_COUNT; f++) {
        const F = o + listOf(familyAt(f));
        const R = recordWordsOf(familyAt(f));
        const meta = rows[F + LIST_META];
        const count = meta & COUNT_MASK;
        const c = meta >>> CLASS_SHIFT;
        const where = `${label}slot ${s} ${["IPv4", "IPv6", "WebSocket"][f]}`;
        if (count === 0) {
          if (meta !== 0 || rows[F + LIST_BLOCK] !== 0 || rows[F + LIST_SEEDERS] !== 0) {
            report(`${where}: empty list with meta ${meta} block ${rows[F + LIST_BLOCK]}`);
          }
          continue;
        }
        if (c >= CLASS_COUNT) {
          report(`${where}: bad class ${c}`);
          continue;
        }
        if (count > CLASS_MAX[c]) report(`${where}: ${count} peers exceed class ${c}`);
        const pi = f * CLASS_COUNT + c;
        const b = rows[F + LIST_BLOCK];
        if (b >= poolUsed[pi]) {
          report(`${where}: block ${b} beyond pool ${pi} use ${poolUsed[pi]}`);
          continue;
        }
        if (blocksSeen[pi].has(b)) report(`${where}: block ${b} of pool ${pi} shared`);
        blocksSeen[pi].add(b);
        const pool = pools[pi];
        const blockWords = BLOCK_HEADER_WORDS + CLASS_CAPACITY[c] * R;
        const start = b * blockWords;
        if (pool[start] !== s) report(`${where}: block ${b} owner is ${pool[start]}`);
        const base = start + BLOCK_HEADER_WORDS;
        const cap = CLASS_CAPACITY[c];
        const isSet = c >= FIRST_SET_CLASS;
        if (c >= LINEAR_CLASSES && !isSet && !isSorted(pool, base, Math.min(count, cap), R)) {
          report(`${where}: dense list of class ${c} not sorted`);
        }
        const keys = new Set<string>();
        let found = 0;
        let seeds = 0;
        for (let i = 0; i < cap; i++) {
          const p = base + i * R;
          const tail = pool[p + R - 1];
          if (tail === 0) {
            if (!isSet && i < count) report(`${where}: linear record ${i} empty`);
            continue;
          }
          if (!isSet && i >= count) {
            report(`${where}: linear record ${i} beyond count ${count} not cleared`);
            continue;
          }
          found++;
          if (tail & SEEDER_BIT) seeds++;
          const port = tail >>> PORT_SHIFT;
          if (port === 0) report(`${where}: record ${i} has port 0`);
          const peerKey = Array.from(pool.subarray(p, p + R - 1)).join(".") + "/" + port;
          if (keys.has(peerKey)) report(`${where}: duplicate peer ${peerKey}`);
          keys.add(peerKey);
          if (isSet) {
            const h = R === RECORD_WORDS_V4 ? hash2Words(k0, k1, pool[p], port) : hash2Words(
              k0,
              k1,
              hash4Words(k0, k1, pool[p], pool[p + 1], pool[p + 2], pool[p + 3]),
              port,
            );
            const home = rangeOf(h, cap);
            for (let t = home; t !== i; t = t + 1 === cap ? 0 : t + 1) {
              if (pool[base + t * R + R - 1] === 0) {
                report(`${where}: peer ${peerKey} unreachable from its home ${home}`);
                break;
              }
            }
          }
        }
        if (found !== count) report(`${where}: ${found} records, count says ${count}`);
        if (seeds !== rows[F + LIST_SEEDERS]) {
          report(`${where}: ${seeds} seeders, row says ${rows[F + LIST_SEEDERS]}`);
        }
        peers[f] += found;
        seeders[f] += seeds;
      }
      if (
        rows[o + ROW_V4 + LIST_META] === 0 && rows[o + ROW_V6 + LIST_META] === 0 &&
        rows[o + ROW_WS + LIST_META] === 0 && rows[o + ROW_DOWNLOADED] === 0
      ) report(`${label}slot ${s}: peerless torrent with downloaded 0 kept`);
    }
  }

  for (let pi = 0; pi < pools.length; pi++) {
    if (blocksSeen[pi].size !== poolUsed[pi]) {
      report(`pool ${pi}: ${poolUsed[pi]} blocks in use, ${blocksSeen[pi].size} owned`);
    }
  }
  const expect = (name: string, actual: number, wanted: number) => {
    if (actual !== wanted) report(`counter ${name} is ${actual}, recount ${wanted}`);
  };
  expect("torrents", counters[COUNTER_TORRENTS], torrents);
  expect("peers4", counters[COUNTER_PEERS4], peers[0]);
  expect("peers6", counters[COUNTER_PEERS6], peers[1]);
  expect("seeders4", counters[COUNTER_SEEDERS4], seeders[0]);
  expect("seeders6", counters[COUNTER_SEEDERS6], seeders[1]);
  expect("peersWs", counters[COUNTER_PEERS_WS], peers[2]);
  expect("seedersWs", counters[COUNTER_SEEDERS_WS], seeders[2]);
  // New torrents go to the new table only, so it must have room for all of them.
  if (torrents > capacity * 0.95) report(`table overfull: ${torrents} in ${capacity}`);
  if (oldCapacity > 0 && !table.resizing) report("old table kept after its resize ended");
  if (oldCapacity === 0 && table.resizing) report("resizing without an old table");
  return problems;
}

/**
 * Longest run of occupied records in any peer set (a list long enough to be an open-addressing
 * set), counted around the end; 0 when no list is a set. No lookup or insert in a set probes
 * further, so this says "finding a peer stays O(1) in a big swarm" without a clock, as
 * `SwarmTable.maxProbeLength` does for torrents.
 */
export function longestPeerRun(table: SwarmTable): number {
  const view = table.view();
  const pools = view.pools;
  let longest = 0;
  const tables = [
    { rows: view.rows, capacity: view.capacity },
    { rows: view.oldRows, capacity: view.oldCapacity },
  ];
  for (const { rows, capacity } of tables) {
    for (let s = 0; s < capacity; s++) {
      const o = s * ROW_WORDS;
      if (rows[o + ROW_LAST_ACTIVITY] === 0) continue;
      for (let f = 0; f < FAMILY_COUNT; f++) {
        const F = o + listOf(familyAt(f));
        const R = recordWordsOf(familyAt(f));
        const c = rows[F + LIST_META] >>> CLASS_SHIFT;
        if ((rows[F + LIST_META] & COUNT_MASK) === 0 || c < FIRST_SET_CLASS) continue;
        const cap = CLASS_CAPACITY[c];
        const base = rows[F + LIST_BLOCK] * (BLOCK_HEADER_WORDS + cap * R) + BLOCK_HEADER_WORDS;
        const pool = pools[f * CLASS_COUNT + c];
        const used = (i: number) => pool[base + (i % cap) * R + R - 1] !== 0;
        let empty = 0;
        while (empty < cap && used(empty)) empty++;
        if (empty === cap) { // a full set (the 7/8 fill limit forbids it)
          longest = Math.max(longest, cap);
          continue;
        }
        let run = 0;
        for (let i = empty + 1; i <= empty + cap; i++) {
          run = used(i) ? run + 1 : 0;
          if (run > longest) longest = run;
        }
      }
    }
  }
  return longest;
}

/** Throws with every problem found; convenient in tests. */
export function assertInvariants(table: SwarmTable): void {
  const problems = checkInvariants(table);
  if (problems.length > 0) throw new Error("store invariants broken:\n  " + problems.join("\n  "));
}
