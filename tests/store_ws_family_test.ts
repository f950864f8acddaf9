/**
 * The store's WebSocket peer family (FAMILY_WS): counted with the others everywhere, never shown
 * to IPv4 or IPv6 requesters, expired by its own timeout, sampled for offers without the
 * requester, other seeders (for a seeder) or peers held for other cluster nodes.
 */

import assert from "node:assert/strict";
import { FAMILY_WS, SwarmTable, WS_REMOTE_BIT } from "../src/store/swarmTable.ts";
import { assertInvariants } from "../src/store/invariants.ts";
import { CLASS_CAPACITY, FIRST_SET_CLASS, LINEAR_CLASSES } from "../src/store/classes.ts";
import { CLASS_SHIFT, COUNT_MASK, LIST_META, ROW_WORDS, ROW_WS } from "../src/store/layout.ts";

const NONE = 0, COMPLETED = 1, STARTED = 2, STOPPED = 3;
const hash = new Uint8Array(20).fill(7);
const out = new Uint8Array(18 * 64);

/** A WebSocket peer's "address": its 4-byte entry number (big-endian). */
function entry(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

function ws(
  table: SwarmTable,
  n: number,
  event: number,
  seeder: boolean,
  now: number,
  numwant = 0,
  generation = 1,
): number {
  return table.announce(
    hash,
    0,
    FAMILY_WS,
    entry(n),
    0,
    generation,
    event,
    seeder,
    numwant,
    now,
    out,
    0,
  );
}

function ip4(table: SwarmTable, n: number, event: number, seeder: boolean, now: number): number {
  return table.announce(
    hash,
    0,
    4,
    Uint8Array.of(10, 0, 0, n),
    0,
    6881,
    event,
    seeder,
    50,
    now,
    out,
    0,
  );
}

function sampled(written: number): number[] {
  const entries: number[] = [];
  for (let i = 0; i < written; i++) {
    const at = i * 6;
    entries.push(((out[at] << 24) | (out[at + 1] << 16) | (out[at + 2] << 8) | out[at + 3]) >>> 0);
  }
  return entries.sort((a, b) => a - b);
}

Deno.test("WebSocket peers count with the others but never appear in IPv4 or IPv6 lists", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  ws(table, 1, STARTED, false, 1);
  ws(table, 2, COMPLETED, true, 1);
  ip4(table, 1, STARTED, false, 1);
  // The IPv4 requester sees the one other IPv4 peer only (itself skipped: none).
  assert.equal(ip4(table, 2, STARTED, true, 2), 1);
  assert.deepEqual([...out.subarray(0, 4)], [10, 0, 0, 1]);
  assert.deepEqual([table.result.complete, table.result.incomplete, table.result.downloaded], [
    2,
    2,
    1,
  ]);
  assert.deepEqual([table.peersWs, table.seedersWs, table.peers4, table.peers, table.seeders], [
    2,
    1,
    2,
    4,
    2,
  ]);
  table.scrape(hash, 0);
  assert.deepEqual([table.result.complete, table.result.incomplete], [2, 2]);
  assertInvariants(table);
});

Deno.test("a WebSocket announce samples this node's other WebSocket peers only", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  for (let n = 1; n <= 5; n++) ws(table, n, STARTED, false, 1);
  ip4(table, 9, STARTED, false, 1);
  // A peer held for another cluster node: counted, never offered to.
  ws(table, WS_REMOTE_BIT | 77, STARTED, false, 1);
  assert.equal(table.peersWs, 6);
  const written = ws(table, 3, NONE, false, 2, 10);
  assert.deepEqual(sampled(written), [1, 2, 4, 5]);
  // A seeder's offers go to leechers only.
  ws(table, 4, COMPLETED, true, 3);
  assert.deepEqual(sampled(ws(table, 5, COMPLETED, true, 3, 10)), [1, 2, 3]);
  assertInvariants(table);
});

Deno.test("a stopped WebSocket peer leaves, and the last one takes the torrent with it", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  ws(table, 1, STARTED, false, 1);
  ws(table, 2, STARTED, false, 1);
  ws(table, 1, STOPPED, false, 2);
  assert.equal(table.peersWs, 1);
  ws(table, 2, STOPPED, false, 2);
  assert.equal(table.torrents, 0);
  // The generation is part of the key: an old generation's stop removes nothing.
  ws(table, 3, STARTED, false, 3, 0, 5);
  ws(table, 3, STOPPED, false, 3, 0, 4);
  assert.equal(table.peersWs, 1);
  assertInvariants(table);
});

Deno.test("WebSocket peers expire by their own timeout", () => {
  const table = new SwarmTable({ peerTimeout: 1000, wsPeerTimeout: 10 });
  ws(table, 1, STARTED, false, 1);
  ip4(table, 1, STARTED, false, 1);
  table.cleanAll(12);
  assert.deepEqual([table.peersWs, table.peers4], [0, 1]);
  table.cleanAll(1002);
  assert.equal(table.torrents, 0);
  assertInvariants(table);
});

Deno.test("the peer cap counts WebSocket peers", () => {
  const table = new SwarmTable({ peerTimeout: 100, maxPeers: 2 });
  assert.equal(ws(table, 1, STARTED, false, 1), 0);
  assert.equal(ip4(table, 1, STARTED, false, 1), 0);
  assert.equal(ws(table, 2, STARTED, false, 1), -1);
  assert.equal(table.refusedPeers, 1);
  assertInvariants(table);
});

Deno.test("a dropped torrent takes its WebSocket peers out of the counts", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  for (let n = 1; n <= 20; n++) ws(table, n, STARTED, n % 2 === 0, 1);
  assert.deepEqual([table.peersWs, table.seedersWs], [20, 10]);
  assert.equal(table.dropTorrentAt(findSlot(table)), 20);
  assert.deepEqual([table.peersWs, table.seedersWs, table.torrents], [0, 0, 0]);
  assertInvariants(table);
});

function findSlot(table: SwarmTable): number {
  for (let slot = 0; slot < table.slotCount; slot++) if (table.slotInUse(slot)) return slot;
  return -1;
}

Deno.test("a big WebSocket swarm (a keyed set) survives growth, sampling and expiry", () => {
  const table = new SwarmTable({ peerTimeout: 1000, wsPeerTimeout: 50 });
  for (let n = 1; n <= 3000; n++) ws(table, n, STARTED, false, n < 1500 ? 1 : 40);
  // Table rows move while other torrents come and go: the WebSocket list's block follows.
  for (let t = 0; t < 200; t++) {
    const other = new Uint8Array(20).fill(t + 20);
    table.announce(other, 0, 4, Uint8Array.of(10, 0, 0, 1), 0, 6881, STARTED, false, 0, 40, out, 0);
  }
  assert.equal(new Set(sampled(ws(table, 2000, NONE, false, 40, 10))).size, 10);
  table.cleanAll(60);
  assert.equal(table.peersWs, 1501);
  assertInvariants(table);
});

Deno.test("with offers across nodes, another node's WebSocket peers are sampled too", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  table.wsOffersAcrossNodes = true;
  const remote77 = (WS_REMOTE_BIT | 77) >>> 0;
  const remote78 = (WS_REMOTE_BIT | 78) >>> 0;
  ws(table, 1, STARTED, false, 1);
  ws(table, remote77, STARTED, false, 1);
  ws(table, remote78, STARTED, true, 1);
  assert.deepEqual(sampled(ws(table, 2, STARTED, false, 2, 10)), [1, remote77, remote78]);
  // A seeder's offers still go to leechers only, wherever they are.
  assert.deepEqual(sampled(ws(table, 3, COMPLETED, true, 3, 10)), [1, 2, remote77]);
  assertInvariants(table);
});

Deno.test("a WebSocket swarm of hundreds is a dense sorted list; offers reach local peers only", () => {
  const table = new SwarmTable({ peerTimeout: 1000, wsPeerTimeout: 50 });
  // 150 of this node's peers and 150 held for other nodes (WS_REMOTE_BIT: addresses above 2^31).
  for (let n = 1; n <= 150; n++) {
    ws(table, n, STARTED, false, 10);
    ws(table, (n | WS_REMOTE_BIT) >>> 0, STARTED, false, 10);
  }
  const view = table.view();
  let meta = 0;
  for (let slot = 0; slot < view.capacity && meta === 0; slot++) {
    meta = view.rows[slot * ROW_WORDS + ROW_WS + LIST_META];
  }
  const sizeClass = meta >>> CLASS_SHIFT;
  assert.equal(meta & COUNT_MASK, 300);
  // Dense, not a set: no load factor, so the block is within one 1.0625x class of the count.
  assert.ok(sizeClass >= LINEAR_CLASSES && sizeClass < FIRST_SET_CLASS, `class ${sizeClass}`);
  assert.ok(CLASS_CAPACITY[sizeClass] <= Math.ceil(300 * 1.0625) + 1);
  assertInvariants(table); // checks the dense list's order, remote entries included
  const offers = sampled(ws(table, 7, NONE, false, 20, 50));
  assert.equal(new Set(offers).size, 50);
  for (const e of offers) assert.ok(e !== 7 && e >= 1 && e <= 150, `offer to ${e}`);
  // Stops from both halves keep it sorted and complete; expiry empties it.
  for (let n = 1; n <= 150; n += 3) {
    ws(table, n, STOPPED, false, 20);
    ws(table, (n | WS_REMOTE_BIT) >>> 0, STOPPED, false, 20);
  }
  assert.equal(table.peersWs, 200);
  assertInvariants(table);
  table.cleanAll(100);
  assert.equal(table.peersWs, 0);
  assert.equal(table.torrents, 0);
  assertInvariants(table);
});
