/**
 * The store's caps (`maxTorrents`, `maxPeers`) and what happens past them: refusal at exactly the
 * cap, refreshes and stops that keep working, eviction that keeps the counts within the caps,
 * prefers old torrents and never takes the requester's, and restores that stop at the caps.
 */

import assert from "node:assert/strict";
import {
  CLEAN_BUDGET,
  REFUSED_PEERS,
  REFUSED_TORRENTS,
  refusedReason,
  SwarmTable,
  type SwarmTableOptions,
} from "../src/store/swarmTable.ts";
import { assertInvariants } from "../src/store/invariants.ts";

const NONE = 0, COMPLETED = 1, STARTED = 2, STOPPED = 3;

function hashOf(n: number): Uint8Array {
  const ih = new Uint8Array(20);
  new DataView(ih.buffer).setUint32(0, n);
  ih[19] = 0xc4;
  return ih;
}
function v4(n: number): Uint8Array {
  return Uint8Array.of(10, n >> 16, n >> 8, n);
}
function v6(n: number): Uint8Array {
  const b = new Uint8Array(16);
  b.set([0x20, 0x01, 0x0d, 0xb8]);
  b[13] = n >> 16;
  b[14] = n >> 8;
  b[15] = n;
  return b;
}

/** Deterministic uint32 source, so sampling-dependent tests do not flake. */
function seeded(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/**
 * A table with a fixed hash key as well as a seeded random: eviction samples slots, and which
 * torrents the samples hit depends on where the key put them, so with a random key the eviction
 * tests would check a different draw each run (the refresh test lost a refreshed torrent in about
 * 1 % of random keys, as sampling may).
 */
function table(options: Partial<SwarmTableOptions>): SwarmTable {
  return new SwarmTable({
    peerTimeout: 1000,
    random: seeded(7),
    hashKey: Uint32Array.of(0x243f6a88, 0x85a308d3),
    ...options,
  });
}

const out = new Uint8Array(18 * 200);

function announce(
  t: SwarmTable,
  torrent: number,
  peer: number,
  now: number,
  event = STARTED,
  seeder = false,
  family: 4 | 6 = 4,
): number {
  return t.announce(
    hashOf(torrent),
    0,
    family,
    family === 4 ? v4(peer) : v6(peer),
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

function peers(t: SwarmTable): number {
  return t.peers4 + t.peers6;
}

Deno.test("without caps nothing is refused; bad caps are construction errors", () => {
  const t = new SwarmTable({ peerTimeout: 100 });
  assert.equal(t.maxTorrents, Infinity);
  assert.equal(t.maxPeers, Infinity);
  for (let i = 0; i < 1000; i++) assert.ok(announce(t, i, i, 1) >= 0);
  assert.equal(t.torrents, 1000);
  assert.throws(() => new SwarmTable({ peerTimeout: 100, maxTorrents: 0 }), RangeError);
  assert.throws(() => new SwarmTable({ peerTimeout: 100, maxPeers: NaN }), RangeError);
});

Deno.test("refuse: the torrent at exactly the cap is stored, the next one is not", () => {
  const t = table({ maxTorrents: 100 });
  for (let i = 0; i < 100; i++) assert.equal(announce(t, i, i, 1), 0, `torrent ${i}`);
  assert.equal(t.torrents, 100);
  assert.equal(announce(t, 100, 100, 2), -1);
  assert.equal(t.result.refused, REFUSED_TORRENTS);
  assert.deepEqual([t.result.complete, t.result.incomplete, t.result.downloaded], [0, 0, 0]);
  assert.equal(refusedReason(t.result.refused), "tracker is full: too many torrents");
  assert.equal(t.torrents, 100);
  assert.equal(peers(t), 100);
  assert.equal(t.scrape(hashOf(100), 0), false);
  assert.equal(t.refusedTorrents, 1);
  assert.equal(t.refusedPeers, 0);
  // A new peer of a stored torrent is fine: the torrent cap counts torrents only.
  assert.equal(announce(t, 5, 1000, 2), 1);
  assert.equal(t.torrents, 100);
  // A stopped announce of an unknown torrent is not a refusal: it stores nothing anyway.
  assert.equal(announce(t, 200, 1, 2, STOPPED), 0);
  assert.equal(t.refusedTorrents, 1);
  // Room again after a torrent goes away.
  announce(t, 7, 7, 3, STOPPED);
  assert.equal(t.torrents, 99);
  assert.equal(announce(t, 100, 100, 3), 0);
  assert.equal(t.torrents, 100);
  assertInvariants(t);
});

Deno.test("refuse: the peer at exactly the cap is stored, the next new one is not", () => {
  const t = table({ maxPeers: 50 });
  for (let i = 0; i < 50; i++) assert.ok(announce(t, i % 5, i, 1) >= 0, `peer ${i}`);
  assert.equal(peers(t), 50);
  // A new peer in a stored torrent, and a new torrent (which brings a new peer).
  assert.equal(announce(t, 0, 50, 2), -1);
  assert.equal(t.result.refused, REFUSED_PEERS);
  assert.equal(refusedReason(t.result.refused), "tracker is full: too many peers");
  assert.equal(announce(t, 99, 51, 2), -1);
  assert.equal(t.result.refused, REFUSED_PEERS);
  // The same address in the other family is another peer.
  assert.equal(announce(t, 0, 0, 2, STARTED, false, 6), -1);
  assert.equal(t.refusedPeers, 3);
  assert.equal(t.refusedTorrents, 0);
  assert.equal(peers(t), 50);
  assert.equal(t.torrents, 5);
  assert.equal(t.scrape(hashOf(99), 0), false);
  assertInvariants(t);
});

Deno.test("refuse: both caps reached at once names the torrent cap", () => {
  const t = table({ maxTorrents: 4, maxPeers: 4 });
  for (let i = 0; i < 4; i++) announce(t, i, i, 1);
  assert.equal(announce(t, 9, 9, 2), -1);
  assert.equal(t.result.refused, REFUSED_TORRENTS | REFUSED_PEERS);
  assert.equal(refusedReason(t.result.refused), "tracker is full: too many torrents");
  assert.equal(t.refusedTorrents, 1);
  assert.equal(t.refusedPeers, 0);
});

Deno.test("refuse: refreshes, completions and stops of stored peers work when full", () => {
  const t = table({ maxTorrents: 10, maxPeers: 20 });
  for (let i = 0; i < 20; i++) announce(t, i % 10, i, 1);
  assert.deepEqual([t.torrents, peers(t)], [10, 20]);
  // Refresh: a reply with the torrent's other peer and its counts.
  assert.equal(announce(t, 3, 3, 5, NONE), 1);
  assert.deepEqual([t.result.complete, t.result.incomplete], [0, 2]);
  // Completion: the leecher becomes a seeder and downloaded counts it.
  assert.equal(announce(t, 3, 13, 6, COMPLETED, true), 1);
  assert.deepEqual([t.result.complete, t.result.incomplete, t.result.downloaded], [1, 1, 1]);
  // A refresh keeps the torrent's last activity current.
  assert.equal(t.slotLastActivity(findSlot(t, 3)), 6);
  // Stop: the peer goes, and that makes room for a new one.
  assert.equal(announce(t, 4, 4, 7, STOPPED), 0);
  assert.equal(peers(t), 19);
  assert.equal(announce(t, 4, 100, 8), 1);
  assert.equal(announce(t, 4, 101, 8), -1);
  // Stopping the last peers of a torrent frees it: room for a new torrent.
  announce(t, 9, 9, 9, STOPPED);
  announce(t, 9, 19, 9, STOPPED);
  assert.equal(t.torrents, 9);
  assert.equal(announce(t, 50, 50, 9), 0);
  assert.equal(t.torrents, 10);
  assert.equal(t.refusedTorrents + t.refusedPeers, 1);
  assertInvariants(t);
});

/** The slot holding a torrent (tests only; walks the table). */
function findSlot(t: SwarmTable, torrent: number): number {
  const want = hashOf(torrent).join();
  const ih = new Uint8Array(20);
  for (let s = 0; s < t.slotCount; s++) {
    if (!t.slotInUse(s)) continue;
    t.copyInfoHash(s, ih, 0);
    if (ih.join() === want) return s;
  }
  return -1;
}

Deno.test("evict: a flood of new torrents keeps the count at the cap", () => {
  const t = table({ maxTorrents: 1000, whenFull: "evict" });
  for (let i = 0; i < 5000; i++) {
    assert.equal(announce(t, i, i, 1 + (i >> 4)), 0, `torrent ${i}`);
    assert.ok(t.torrents <= 1000);
    assert.ok(t.scrape(hashOf(i), 0), `torrent ${i} served`);
    if (i % 997 === 0) assertInvariants(t);
  }
  assert.equal(t.torrents, 1000);
  assert.equal(t.evictedTorrents, 4000);
  assert.equal(t.refusedTorrents, 0);
  assertInvariants(t);
});

Deno.test("evict: victims are old torrents, rarely recent ones", () => {
  const t = table({ maxTorrents: 1000, whenFull: "evict", random: seeded(12345) });
  // Torrent i last announced at second i + 1.
  for (let i = 0; i < 1000; i++) announce(t, i, i, i + 1);
  for (let i = 0; i < 100; i++) announce(t, 5000 + i, i, 2000);
  assert.equal(t.evictedTorrents, 100);
  let evictedOldQuarter = 0;
  let evictedNewHalf = 0;
  for (let i = 0; i < 1000; i++) {
    if (t.scrape(hashOf(i), 0)) continue;
    if (i < 250) evictedOldQuarter++;
    if (i >= 500) evictedNewHalf++;
  }
  // With 16 samples a victim is in the oldest quarter with probability 1 - 0.75^16 = 99%.
  assert.ok(evictedOldQuarter >= 90, `only ${evictedOldQuarter} of 100 victims were old`);
  assert.ok(evictedNewHalf <= 1, `${evictedNewHalf} victims from the newer half`);
  for (let i = 0; i < 100; i++) assert.ok(t.scrape(hashOf(5000 + i), 0));
  assertInvariants(t);
});

Deno.test("evict: while the table is being resized, victims come from both tables", () => {
  // The table grows at 876 torrents (1094 -> 1641 slots): the cap of 900 is reached while most
  // rows are still in the old table, so samples and victims come from both tables.
  const t = table({ maxTorrents: 900, whenFull: "evict", random: seeded(4321) });
  for (let i = 0; i < 900; i++) announce(t, i, i, 1 + i);
  assert.ok(t.resizing, "the cap is reached during a resize");
  let evictedDuringResize = 0;
  for (let i = 0; i < 300; i++) {
    const resizing = t.resizing;
    announce(t, 10_000 + i, i, 5000);
    if (resizing) evictedDuringResize++;
    assert.equal(t.torrents, 900);
    assertInvariants(t);
  }
  assert.ok(!t.resizing, "the resize ends meanwhile");
  assert.ok(evictedDuringResize > 50, `${evictedDuringResize} evictions during the resize`);
  assert.equal(t.evictedTorrents, 300);
  // Victims are the old ones (announced at 1..900): few from the newer half (late in the flood
  // the oldest left are near the middle, so a few are expected; 2-9 in 40 runs with random keys).
  let evictedNewHalf = 0;
  for (let i = 450; i < 900; i++) if (!t.scrape(hashOf(i), 0)) evictedNewHalf++;
  assert.ok(evictedNewHalf <= 20, `${evictedNewHalf} victims from the newer half`);
  for (let i = 0; i < 300; i++) assert.ok(t.scrape(hashOf(10_000 + i), 0));
});

Deno.test("evict: a refresh makes a torrent recent again, so it survives", () => {
  const t = table({ maxTorrents: 200, whenFull: "evict", random: seeded(99) });
  for (let i = 0; i < 200; i++) announce(t, i, i, 1);
  // Torrents 0..19 announce again later; the others stay at second 1.
  for (let i = 0; i < 20; i++) announce(t, i, i, 100, NONE);
  for (let i = 0; i < 100; i++) announce(t, 1000 + i, i, 200);
  assert.equal(t.evictedTorrents, 100);
  for (let i = 0; i < 20; i++) assert.ok(t.scrape(hashOf(i), 0), `refreshed torrent ${i} kept`);
});

Deno.test("evict: the peer cap evicts whole torrents, never the requester's", () => {
  const t = table({ maxPeers: 10, whenFull: "evict" });
  for (let i = 0; i < 9; i++) announce(t, 1, i, 10);
  announce(t, 2, 100, 5); // older than torrent 1
  assert.equal(peers(t), 10);
  // New peer in torrent 1: torrent 2 is the only other one, so it goes.
  assert.equal(announce(t, 1, 9, 20), 9);
  assert.equal(t.scrape(hashOf(2), 0), false);
  assert.equal(t.evictedTorrents, 1);
  assert.deepEqual([t.torrents, peers(t)], [1, 10]);
  // Only the requester's own torrent is left: refused, and it keeps every peer.
  assert.equal(announce(t, 1, 10, 21), -1);
  assert.equal(t.result.refused, REFUSED_PEERS);
  assert.equal(t.refusedPeers, 1);
  assert.ok(t.scrape(hashOf(1), 0));
  assert.equal(t.result.incomplete, 10);
  // A new torrent evicts torrent 1 (all ten peers) to make room for its one.
  assert.equal(announce(t, 3, 200, 22), 0);
  assert.deepEqual([t.torrents, peers(t), t.evictedTorrents], [1, 1, 2]);
  assertInvariants(t);
});

Deno.test("evict: the requester's torrent survives even when it is the oldest", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const t = table({ maxPeers: 300, whenFull: "evict", random: seeded(seed) });
    // Torrent 0 (the requester) is the oldest and largest.
    for (let i = 0; i < 100; i++) announce(t, 0, i, 1);
    for (let i = 0; i < 200; i++) announce(t, 1 + (i >> 1), 1000 + i, 2 + i);
    for (let i = 0; i < 50; i++) {
      // Refreshing torrent 0's first peer would also make it recent; new peers only.
      assert.ok(announce(t, 0, 100 + i, 1000 + i) >= 0, `seed ${seed}, peer ${i}`);
      assert.ok(peers(t) <= 300);
    }
    assert.ok(t.scrape(hashOf(0), 0));
    assert.equal(t.result.incomplete, 150);
    assertInvariants(t);
  }
});

Deno.test("evict: both families, seeders and completions are accounted for", () => {
  const t = table({ maxTorrents: 50, maxPeers: 120, whenFull: "evict", random: seeded(3) });
  const random = seeded(11);
  for (let step = 0; step < 20_000; step++) {
    const torrent = random() % 400;
    const peer = random() % 8;
    const family = (random() & 1) === 0 ? 4 : 6;
    const r = random() % 10;
    const event = r === 0 ? STOPPED : r === 1 ? COMPLETED : r < 4 ? STARTED : NONE;
    const n = announce(t, torrent, peer, 1 + (step >> 5), event, r === 1 || r === 5, family);
    assert.ok(n >= -1);
    assert.ok(t.torrents <= 50 && peers(t) <= 120, `step ${step}`);
    if (step % 2000 === 0) assertInvariants(t);
  }
  assert.ok(t.evictedTorrents > 0);
  assertInvariants(t);
});

Deno.test("evict: eviction during a clean pass paused inside a big list keeps the table sound", () => {
  const t = table({ maxTorrents: 40, whenFull: "evict", random: seeded(5) });
  const address = new Uint8Array(4);
  // Big swarms, so clean steps with a tiny budget pause inside a list.
  for (let torrent = 0; torrent < 40; torrent++) {
    for (let i = 0; i < 3000; i++) {
      address[0] = 10;
      address[1] = torrent;
      address[2] = i >> 8;
      address[3] = i;
      t.announce(hashOf(torrent), 0, 4, address, 0, 6881, STARTED, false, 0, 1, out, 0);
    }
  }
  let now = 2;
  for (let round = 0; round < 400; round++) {
    t.clean(now, 1);
    announce(t, 1000 + round, round, now);
    if (round % 50 === 0) assertInvariants(t);
    now++;
  }
  assert.equal(t.torrents, 40);
  assert.ok(t.evictedTorrents >= 400);
  // Everything old expires once the timeout has passed: nothing was lost to the cursor.
  t.cleanAll(now + 2000);
  assert.deepEqual([t.torrents, peers(t)], [0, 0]);
  assertInvariants(t);
});

Deno.test("clean steps and evictions interleaved over a long run keep counts exact", () => {
  const t = table({ maxTorrents: 300, maxPeers: 2000, whenFull: "evict", random: seeded(21) });
  const random = seeded(77);
  let now = 1;
  for (let step = 0; step < 60_000; step++) {
    if (step % 100 === 0) {
      now++;
      t.clean(now, CLEAN_BUDGET >> 6);
    }
    const big = random() % 4 === 0;
    const torrent = big ? random() % 5 : 10 + (random() % 5000);
    announce(t, torrent, random() % (big ? 4000 : 3), now);
    assert.ok(t.torrents <= 300 && peers(t) <= 2000);
    if (step % 10_000 === 0) assertInvariants(t);
  }
  assertInvariants(t);
});

Deno.test("restore stops at the caps, skips the rest and never evicts", () => {
  const t = table({ maxTorrents: 3, maxPeers: 5, whenFull: "evict" });
  let kept = 0;
  for (let torrent = 0; torrent < 5; torrent++) {
    for (let peer = 0; peer < 2; peer++) {
      if (t.restorePeer(hashOf(torrent), 0, 4, v4(peer), 0, 6881, false, 1)) kept++;
    }
  }
  // Torrents 0 and 1 with two peers each, torrent 2 with one: the peer cap; then none fit.
  assert.equal(kept, 5);
  assert.deepEqual([t.torrents, peers(t)], [3, 5]);
  assert.equal(t.restoreSkipped, 5);
  assert.equal(t.evictedTorrents, 0);
  // A peer already stored may still be restored (a newer record replaces it).
  assert.ok(t.restorePeer(hashOf(0), 0, 4, v4(0), 0, 6881, true, 2));
  assert.equal(t.seeders4, 1);
  // A peerless torrent for its downloaded count, past the torrent cap: skipped.
  t.setDownloaded(hashOf(9), 0, 5, 2);
  assert.equal(t.scrape(hashOf(9), 0), false);
  assert.equal(t.restoreSkipped, 6);
  // ... and one that exists just gets its count.
  t.setDownloaded(hashOf(1), 0, 5, 2);
  assert.ok(t.scrape(hashOf(1), 0));
  assert.equal(t.result.downloaded, 5);
  assertInvariants(t);
});
