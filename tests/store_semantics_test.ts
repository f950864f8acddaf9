/**
 * Example-based tests of the store's announce, expiry and restore rules, one rule per test.
 */

import assert from "node:assert/strict";
import { CLEAN_BUDGET, previousAge, previousSeeder, SwarmTable } from "../src/store/swarmTable.ts";
import { assertInvariants } from "../src/store/invariants.ts";

const NONE = 0, COMPLETED = 1, STARTED = 2, STOPPED = 3;

function hashOf(n: number): Uint8Array {
  const ih = new Uint8Array(20);
  new DataView(ih.buffer).setUint32(0, n);
  ih[19] = 0x5a;
  return ih;
}
function v4(n: number): Uint8Array {
  return Uint8Array.of(192, 0, 2 + (n >> 8), n & 255);
}
function v6(n: number): Uint8Array {
  const b = new Uint8Array(16);
  b.set([0x20, 0x01, 0x0d, 0xb8]);
  b[14] = n >> 8;
  b[15] = n & 255;
  return b;
}

const out = new Uint8Array(18 * 200);

function announce(
  table: SwarmTable,
  torrent: number,
  family: 4 | 6,
  peer: number,
  event: number,
  seeder: boolean,
  now: number,
  numwant = 50,
  port = 6881,
): number {
  const address = family === 4 ? v4(peer) : v6(peer);
  return table.announce(
    hashOf(torrent),
    0,
    family,
    address,
    0,
    port,
    event,
    seeder,
    numwant,
    now,
    out,
    0,
  );
}

function counts(table: SwarmTable): [number, number, number] {
  return [table.result.complete, table.result.incomplete, table.result.downloaded];
}

Deno.test("a stopped announce for an unknown torrent creates nothing", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  assert.equal(announce(table, 1, 4, 1, STOPPED, false, 5), 0);
  assert.deepEqual(counts(table), [0, 0, 0]);
  assert.equal(table.torrents, 0);
  assert.equal(table.scrape(hashOf(1), 0), false);
});

Deno.test("IPv4 and IPv6 peers are kept apart; requesters get their own family only", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  for (let i = 0; i < 5; i++) announce(table, 1, 4, i, STARTED, false, 1, 0);
  for (let i = 0; i < 3; i++) announce(table, 1, 6, i, STARTED, i === 0, 1, 0);
  assert.deepEqual([table.peers4, table.peers6, table.seeders6], [5, 3, 1]);
  // Same bytes at the start of both address kinds must not be confused.
  assert.equal(announce(table, 1, 6, 99, STARTED, false, 2, 50), 3);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(out.subarray(i * 18, i * 18 + 4), v6(0).subarray(0, 4));
  }
  assert.equal(announce(table, 1, 4, 99, STARTED, false, 2, 50), 5);
  assert.deepEqual(counts(table), [1, 9, 0]);
  assertInvariants(table);
});

Deno.test("the same address with another port is another peer", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  announce(table, 1, 4, 7, STARTED, false, 1, 0, 1000);
  announce(table, 1, 4, 7, STARTED, false, 1, 0, 1001);
  assert.equal(table.peers4, 2);
  assert.equal(announce(table, 1, 4, 7, NONE, false, 2, 10, 1000), 1);
  assert.deepEqual(out.subarray(0, 6), Uint8Array.of(192, 0, 2, 7, 1001 >> 8, 1001 & 255));
});

Deno.test("downloaded counts each peer's completion once", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  announce(table, 1, 4, 1, STARTED, false, 1);
  announce(table, 1, 4, 1, COMPLETED, true, 2);
  announce(table, 1, 4, 1, COMPLETED, true, 3); // repeated completed: already a seeder
  announce(table, 1, 4, 2, COMPLETED, false, 3); // completed while still leeching: not counted
  announce(table, 1, 4, 3, COMPLETED, true, 3); // first sighting, already complete: counted
  announce(table, 1, 4, 4, STARTED, true, 3); // seeder without completed: not counted
  assert.deepEqual(counts(table), [3, 1, 2]);
  // A seeder turning leecher and completing again counts again.
  announce(table, 1, 4, 1, NONE, false, 4);
  announce(table, 1, 4, 1, COMPLETED, true, 5);
  assert.deepEqual(counts(table), [3, 1, 3]);
});

Deno.test("seeders get no seeders; nobody gets themselves; numwant 0 gets none", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  for (let i = 0; i < 20; i++) announce(table, 1, 4, i, STARTED, i % 4 === 0, 1, 0);
  assert.equal(announce(table, 1, 4, 0, NONE, true, 2, 200), 15);
  for (let k = 0; k < 15; k++) assert.notEqual(out[k * 6 + 3] % 4, 0, "a seeder was returned");
  assert.equal(announce(table, 1, 4, 1, NONE, false, 2, 200), 19);
  for (let k = 0; k < 19; k++) assert.notEqual(out[k * 6 + 3], 1, "requester got itself");
  assert.equal(announce(table, 1, 4, 1, NONE, false, 2, 0), 0);
  assert.equal(announce(table, 1, 4, 1, NONE, false, 2, 7), 7);
});

Deno.test("a stopped peer is removed and a torrent without peers or downloads is freed", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  announce(table, 1, 4, 1, STARTED, false, 1);
  announce(table, 1, 6, 1, STARTED, true, 1);
  assert.equal(announce(table, 1, 6, 1, STOPPED, true, 2), 0);
  assert.deepEqual(counts(table), [0, 1, 0]);
  announce(table, 1, 4, 1, STOPPED, false, 3);
  assert.deepEqual(counts(table), [0, 0, 0]);
  assert.equal(table.torrents, 0);
  assertInvariants(table);
});

Deno.test("peers expire after peerTimeout; downloaded torrents are kept keepDownloadedFor", () => {
  const table = new SwarmTable({ peerTimeout: 100, keepDownloadedFor: 1000 });
  announce(table, 1, 4, 1, COMPLETED, true, 10); // downloaded 1
  announce(table, 2, 4, 1, STARTED, false, 10); // downloaded 0
  table.cleanAll(110);
  assert.equal(table.peers4, 2, "age 100 is not yet older than peerTimeout");
  table.cleanAll(111);
  assert.equal(table.peers4, 0);
  assert.equal(table.torrents, 1, "only the torrent with downloads is kept");
  assert.ok(table.scrape(hashOf(1), 0));
  assert.deepEqual(counts(table), [0, 0, 1]);
  table.cleanAll(1010);
  assert.equal(table.torrents, 1, "kept until keepDownloadedFor after the last announce");
  table.cleanAll(1011);
  assert.equal(table.torrents, 0);
  assertInvariants(table);
});

Deno.test("setDownloaded restores a peerless torrent and 0 frees it", () => {
  const table = new SwarmTable({ peerTimeout: 100, keepDownloadedFor: 50 });
  table.setDownloaded(hashOf(3), 0, 0, 5);
  assert.equal(table.torrents, 0);
  table.setDownloaded(hashOf(3), 0, 42, 5);
  assert.ok(table.scrape(hashOf(3), 0));
  assert.deepEqual(counts(table), [0, 0, 42]);
  table.setDownloaded(hashOf(3), 0, 0, 6);
  assert.equal(table.torrents, 0);
  table.setDownloaded(hashOf(4), 0, 1, 6);
  table.cleanAll(56);
  assert.equal(table.torrents, 1);
  table.cleanAll(57);
  assert.equal(table.torrents, 0);
});

Deno.test("restorePeer and forEachPeer round-trip peers with their last-seen times", () => {
  const table = new SwarmTable({ peerTimeout: 1000 });
  table.restorePeer(hashOf(1), 0, 4, v4(1), 0, 1111, true, 500);
  table.restorePeer(hashOf(1), 0, 6, v6(2), 0, 2222, false, 900);
  table.restorePeer(hashOf(1), 0, 4, v4(3), 0, 3333, false, -50); // older than process start
  table.restorePeer(hashOf(1), 0, 4, v4(4), 0, 4444, false, -101); // expired relative to 900
  table.restorePeer(hashOf(1), 0, 4, v4(1), 0, 1111, false, 400); // older than stored: ignored
  assert.deepEqual([table.peers4, table.peers6, table.seeders4], [2, 1, 1]);
  const seen: string[] = [];
  for (let slot = 0; slot < table.slotCount; slot++) {
    if (!table.slotInUse(slot)) continue;
    assert.equal(table.slotLastActivity(slot), 900);
    for (const family of [4, 6] as const) {
      table.forEachPeer(slot, family, (address, offset, port, seeder, lastSeen) => {
        const bytes = Array.from(address.subarray(offset, offset + (family === 4 ? 4 : 16)));
        seen.push(`${bytes.join(".")} ${port} ${seeder} ${lastSeen}`);
      });
    }
  }
  assert.deepEqual(seen.sort(), [
    "192.0.2.1 1111 true 500",
    "192.0.2.3 3333 false -50",
    `${Array.from(v6(2)).join(".")} 2222 false 900`,
  ]);
  assertInvariants(table);
});

Deno.test("time stamps survive the 15-bit wrap when clean keeps up", () => {
  const table = new SwarmTable({ peerTimeout: 2700 });
  let now = 30000;
  announce(table, 1, 4, 1, STARTED, false, now);
  for (; now < 140000; now += 1000) {
    announce(table, 1, 4, 2, NONE, false, now, 0); // peer 2 keeps announcing, peer 1 went silent
    table.clean(now, CLEAN_BUDGET);
    if (now >= 32701) assert.equal(table.peers4, 1, `peer 1 should have expired by ${now}`);
  }
  assert.equal(table.peers4, 1);
  assert.equal(announce(table, 1, 4, 3, NONE, false, now, 5), 1);
});

Deno.test("clean finishes a pass that has fallen behind the time-stamp bound", () => {
  const table = new SwarmTable({ peerTimeout: 16000 });
  for (let t = 0; t < 500; t++) announce(table, t, 4, 1, STARTED, false, 1, 0);
  table.finishResize(); // a step during a resize moves rows instead of visiting slots
  table.clean(2, 1);
  assert.equal(table.peers4, 500);
  const passes = table.cleanPasses;
  const slots = table.slotCount;
  // (32768 - 16000) / 4 = 4192 s without a finished pass: the next step finishes the pass,
  // whatever its budget (slot 0 was already visited in this pass, at time 2).
  const visited = table.clean(20000, 1);
  assert.ok(visited >= slots - 1, `visited ${visited} of ${slots}`);
  assert.equal(table.cleanPasses, passes + 1);
  assert.ok(table.peers4 <= 1, `${table.peers4} peers left`);
  // The one peer a finished pass may leave (its slot depends on the random hash key) goes within
  // the next pass of budget-1 steps, after the shrink the finished pass started (its steps move
  // rows of the old table, 4 a step, instead of visiting slots): bounded by the old table's size.
  for (let step = 0; step <= 2 * slots && table.peers4 > 0; step++) table.clean(20001, 1);
  assert.equal(table.peers4, 0);
});

Deno.test("clean respects its budget and finishes passes", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  for (let t = 0; t < 1000; t++) announce(table, t, 4, 1, STARTED, false, 1, 0);
  const passes = table.cleanPasses;
  let visited = 0;
  for (let step = 0; step < 10000 && table.cleanPasses === passes; step++) {
    const v = table.clean(50, 16);
    assert.ok(v <= 16);
    visited += v;
  }
  assert.equal(table.cleanPasses, passes + 1);
  assert.ok(visited >= table.slotCount);
  assert.equal(table.peers4, 1000, "nothing expired yet");
});

Deno.test("port 0 (a caller bug) stores nothing and corrupts nothing", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  announce(table, 1, 4, 1, STARTED, true, 1, 0);
  assert.equal(announce(table, 1, 4, 2, STARTED, false, 1, 50, 0), 0);
  assert.deepEqual(counts(table), [1, 0, 0]);
  assert.equal(announce(table, 2, 6, 2, STARTED, false, 1, 50, 0), 0);
  table.restorePeer(hashOf(3), 0, 4, v4(1), 0, 0, false, 1);
  assert.deepEqual([table.torrents, table.peers4, table.peers6], [1, 1, 0]);
  assertInvariants(table);
});

Deno.test("bad peerTimeout is a construction error", () => {
  assert.throws(() => new SwarmTable({ peerTimeout: 16001 }), RangeError);
  assert.throws(() => new SwarmTable({ peerTimeout: 0 }), RangeError);
});

Deno.test("byteSize tracks the arrays and shrinks back after everything expires", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  const empty = table.byteSize;
  for (let t = 0; t < 5000; t++) {
    for (let p = 0; p < 3; p++) announce(table, t, 4, p, STARTED, false, 1, 0);
  }
  const full = table.byteSize;
  assert.ok(full > empty + 5000 * 3 * 8, `${full} bytes`);
  table.cleanAll(200);
  table.cleanAll(200);
  assert.equal(table.torrents, 0);
  assert.ok(table.byteSize < full / 8, `${table.byteSize} bytes after expiry`);
  assertInvariants(table);
});

Deno.test("an announce reports the peer's previous stamp and seeder flag, -1 when not held", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  const previous = () => table.result.previous;
  for (const family of [4, 6] as const) {
    // New peer: not held.
    announce(table, 1, family, 1, STARTED, false, 10);
    assert.equal(previousAge(previous(), 10), -1);
    // Refreshed 7 s later, same flag.
    announce(table, 1, family, 1, NONE, false, 17);
    assert.equal(previousAge(previous(), 17), 7);
    assert.equal(previousSeeder(previous()), false);
    // Flag flipped: the previous flag is the leecher's.
    announce(table, 1, family, 1, COMPLETED, true, 20);
    assert.equal(previousAge(previous(), 20), 3);
    assert.equal(previousSeeder(previous()), false);
    announce(table, 1, family, 1, NONE, true, 20);
    assert.equal(previousAge(previous(), 20), 0);
    assert.equal(previousSeeder(previous()), true);
    // Stopped, then back: not held.
    announce(table, 1, family, 1, STOPPED, true, 21);
    announce(table, 1, family, 1, NONE, true, 22);
    assert.equal(previousAge(previous(), 22), -1);
    // Expired and cleaned, then back: not held.
    table.cleanAll(200);
    announce(table, 1, family, 1, NONE, true, 200);
    assert.equal(previousAge(previous(), 200), -1);
    // In a set (long list), not only in a scanned one.
    for (let p = 2; p < 40; p++) announce(table, 1, family, p, NONE, false, 200);
    announce(table, 1, family, 30, NONE, true, 230);
    assert.equal(previousAge(previous(), 230), 30);
    assert.equal(previousSeeder(previous()), false);
  }
  // Ages are taken modulo the 15-bit stamp period.
  announce(table, 2, 4, 1, NONE, false, 32760);
  announce(table, 2, 4, 1, NONE, false, 32775);
  assert.equal(previousAge(previous(), 32775), 15);
});
