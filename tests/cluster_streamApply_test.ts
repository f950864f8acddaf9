/**
 * Applying what is read from the stream to a real SwarmTable (src/cluster/streamApply.ts): a late
 * or replayed refresh never moves a peer's stamp back, but its seeder flag is applied, so flags
 * still end as the stream's last word.
 */
import assert from "node:assert/strict";
import { markLate, setPublishTime, setSequence } from "../src/cluster/changeBatch.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { BatchMac } from "../src/cluster/batchMac.ts";
import { BatchGate } from "../src/cluster/batchGate.ts";
import { StreamApplier } from "../src/cluster/streamApply.ts";
import { newClusterCounters } from "../src/cluster/clusterCounters.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";

const SECRET = new TextEncoder().encode("a cluster secret of some length");
const NOW_MS = 1_795_595_585_309;
const FIELD = new TextEncoder().encode("b");
const HASH = new Uint8Array(20).fill(7);
const ADDRESS = Uint8Array.of(10, 0, 0, 1);

function lastSeenOf(store: SwarmTable): { lastSeen: number; seeder: boolean }[] {
  const seen: { lastSeen: number; seeder: boolean }[] = [];
  for (let slot = 0; slot < store.slotCount; slot++) {
    if (!store.slotInUse(slot)) continue;
    store.forEachPeer(slot, 4, (_a, _o, _p, seeder, lastSeen) => seen.push({ lastSeen, seeder }));
  }
  return seen;
}

Deno.test("a refresh older than the stored one keeps the newer stamp and takes the flag", () => {
  const store = new SwarmTable({ peerTimeout: 3000 });
  const clock = { now: 1000 };
  const counters = newClusterCounters();
  const mac = new BatchMac(SECRET, "test");
  const gate = new BatchGate(mac, new Uint8Array(8), 3000, counters, () => {});
  const applier = new StreamApplier(gate, store, null, clock, counters, () => {});
  // This node saw the peer just now, as a leecher.
  store.announce(HASH, 0, 4, ADDRESS, 0, 6881, 2, false, 0, clock.now, new Uint8Array(0), 0);
  // Another node's refresh that waited 100 s in its queue (an outage) arrives after: a seeder.
  const origin = new ChangeRecorder("b", 16, 16);
  origin.record(1, HASH, 0, 4, ADDRESS, 0, 6881, true);
  const batch = origin.take()!;
  setSequence(batch, 1);
  markLate(batch, 100, true);
  setPublishTime(batch, NOW_MS);
  mac.seal(batch);
  applier.applyEntry("1-1", [FIELD, batch], NOW_MS, 0);
  assert.equal(counters.applied, 1);
  // Before: the store's announce set the stamp to 900 (1000 - 100 s), 100 s older than known.
  assert.deepEqual(lastSeenOf(store), [{ lastSeen: 1000, seeder: true }]);
  assert.equal(store.seeders4, 1);

  // A newer one moves the stamp forward, as before.
  clock.now = 1050;
  origin.record(1, HASH, 0, 4, ADDRESS, 0, 6881, false);
  const fresh = origin.take()!;
  setSequence(fresh, 2);
  setPublishTime(fresh, NOW_MS);
  mac.seal(fresh);
  applier.applyEntry("1-2", [FIELD, fresh], NOW_MS, 0);
  assert.deepEqual(lastSeenOf(store), [{ lastSeen: 1050, seeder: false }]);
  assert.equal(store.seeders4, 0);
});
