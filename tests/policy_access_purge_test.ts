/**
 * ForbiddenSwarmPurge (src/policy/accessPurge.ts) in process: after a reload it drops exactly the
 * torrents the new list forbids, with their peers and counts, even while announces add torrents
 * (growing the table), stops delete others (backward shifts) and the cleaner runs between its
 * slices; a reload during a walk is purged for too. SwarmTable.dropTorrentAt keeps the table's
 * invariants.
 */
import assert from "node:assert/strict";
import { AccessPolicy, InfoHashSet } from "../src/policy/accessList.ts";
import { ForbiddenSwarmPurge, type PurgeResult } from "../src/policy/accessPurge.ts";
import { CLEAN_BUDGET, SwarmTable } from "../src/store/swarmTable.ts";
import { assertInvariants } from "../src/store/invariants.ts";

const NO_PEERS = new Uint8Array(0);

/** Distinct info hashes from a counter (a keyed table spreads them anyway). */
function hashOf(n: number): Uint8Array {
  const h = new Uint8Array(20);
  new DataView(h.buffer).setUint32(0, n);
  h[19] = 0x5a;
  return h;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function setOf(ns: number[]): InfoHashSet {
  return InfoHashSet.parse(ns.map((n) => hex(hashOf(n))).join("\n")).set;
}

function address(n: number): Uint8Array {
  return Uint8Array.of(10, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

function announce(store: SwarmTable, torrent: number, peer: number, event = 2, now = 10): void {
  store.announce(
    hashOf(torrent),
    0,
    4,
    address(peer),
    0,
    1000 + (peer & 0x7fff),
    event,
    peer % 3 === 0,
    0,
    now,
    NO_PEERS,
    0,
  );
}

function present(store: SwarmTable, torrent: number): boolean {
  return store.scrape(hashOf(torrent), 0);
}

Deno.test("purge: a blacklist reload drops exactly the newly listed torrents and their peers", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  const policy = new AccessPolicy("black", setOf([]));
  const results: PurgeResult[] = [];
  const purge = new ForbiddenSwarmPurge(store, policy, (r) => results.push(r));
  for (let t = 0; t < 300; t++) {
    for (let p = 0; p < 1 + (t % 4); p++) announce(store, t, t * 8 + p);
  }
  const banned = [3, 17, 100, 101, 299];
  const bannedPeers = banned.reduce((sum, t) => sum + 1 + (t % 4), 0);
  const peersBefore = store.peers4;
  policy.swap(setOf(banned));
  const done = await purge.purge();
  assert.equal(done.torrents, banned.length);
  assert.equal(done.peers, bannedPeers);
  assert.deepEqual(results, [done]);
  assert.equal(store.torrents, 300 - banned.length);
  assert.equal(store.peers4, peersBefore - bannedPeers);
  for (let t = 0; t < 300; t++) {
    assert.equal(present(store, t), !banned.includes(t), `torrent ${t}`);
  }
  assertInvariants(store);

  // Nothing new is forbidden: a second purge finds nothing to do and walks nothing.
  assert.equal((await purge.purge()).torrents, 0);
  // Taken off the blacklist, a dropped torrent stays gone until it is announced again.
  policy.swap(setOf([]));
  assert.equal((await purge.purge()).torrents, 0);
  assert.equal(present(store, 3), false);
});

Deno.test("purge: exact while announces, stops and the cleaner change the table between slices", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  // At least 20 000 torrents, filled up to just below the table's next growth (80 % load).
  let ALL = 0;
  while (ALL < 20_000 || store.torrents < Math.floor(store.slotCount * 0.8) - 500) {
    announce(store, ALL, ALL);
    ALL++;
  }
  const below = (n: number) => Array.from({ length: ALL }, (_, t) => t).filter((t) => t % 7 < n);
  // Blacklist of torrents ≡ 0 mod 7 (already stored when the list came), then a reload adding
  // those ≡ 1 mod 7.
  const policy = new AccessPolicy("black", setOf(below(1)));
  const purge = new ForbiddenSwarmPurge(store, policy, () => {}, 0);
  assert.equal((await purge.purge()).torrents, 0, "the list at start is no reload: no walk");
  policy.swap(setOf(below(2)));
  // Meanwhile, on every timer turn: new torrents (the table grows and resizes), stops of allowed
  // ones (deletions shift rows back over the walk's path), and clean steps.
  const stopped = new Set<number>();
  let next = ALL;
  let turns = 0;
  let mutating = true;
  const resizesBefore = store.resizes;
  const mutator = (async () => {
    while (mutating) {
      turns++;
      for (let k = 0; k < 300; k++, next++) announce(store, next, next, 2, 20);
      for (let k = 0; k < 30; k++) {
        const t = (turns * 977 + k * 131) % ALL;
        if (t % 7 > 1 && !stopped.has(t)) {
          announce(store, t, t, 3, 20);
          stopped.add(t);
        }
      }
      store.clean(20, CLEAN_BUDGET);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  })();
  const done = await purge.purge();
  mutating = false;
  await mutator;
  assert.ok(done.slices > 10, `walked in ${done.slices} slices`);
  assert.ok(turns > 10, `${turns} turns of changes during the walk`);
  assert.ok(store.resizes > resizesBefore, "the table resized during the walk");
  assert.ok(stopped.size > 100, `${stopped.size} stops during the walk`);

  let expected = 0;
  for (let t = 0; t < next; t++) {
    const kept = (t >= ALL || t % 7 > 1) && !stopped.has(t);
    if (kept) expected++;
    assert.equal(present(store, t), kept, `torrent ${t}`);
  }
  assert.equal(store.torrents, expected);
  assert.equal(done.torrents, below(2).length, "every torrent ≡ 0 or 1 mod 7, once");
  assertInvariants(store);
});

Deno.test("purge: a reload during a walk is purged for before the walk's promise resolves", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  for (let t = 0; t < 50_000; t++) announce(store, t, t);
  const policy = new AccessPolicy("black", setOf([]));
  const purge = new ForbiddenSwarmPurge(store, policy, () => {}, 0);
  policy.swap(setOf([1, 2, 3]));
  const running = purge.purge();
  await new Promise((resolve) => setTimeout(resolve, 0));
  policy.swap(setOf([1, 2, 3, 40_000, 49_999]));
  assert.equal(purge.purge(), running, "one walk at a time, shared");
  const done = await running;
  assert.equal(done.torrents, 5);
  for (const t of [1, 2, 3, 40_000, 49_999]) assert.equal(present(store, t), false);
  assert.equal(store.torrents, 50_000 - 5);
});

Deno.test("dropTorrentAt: drops a row with its peers and counters; an empty slot is a no-op", () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  for (let t = 0; t < 200; t++) {
    for (let p = 0; p < 3; p++) announce(store, t, t * 4 + p);
    // Some IPv6 peers too, so both families' pools shrink.
    store.announce(
      hashOf(t),
      0,
      6,
      new Uint8Array(16).fill(t & 255),
      0,
      7000,
      2,
      false,
      0,
      10,
      NO_PEERS,
      0,
    );
  }
  let dropped = 0;
  for (let slot = store.slotCount - 1; slot >= 0 && dropped < 50; slot--) {
    if (!store.slotInUse(slot)) {
      assert.equal(store.dropTorrentAt(slot), 0);
      continue;
    }
    assert.equal(store.dropTorrentAt(slot), 4);
    dropped++;
    assertInvariants(store);
  }
  assert.equal(store.torrents, 150);
  assert.equal(store.peers4, 450);
  assert.equal(store.peers6, 150);
  assert.equal(store.evictedTorrents, 0, "a drop is not an eviction");
});
