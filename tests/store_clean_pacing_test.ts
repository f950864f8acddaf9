/**
 * Expiry paced by time (`SwarmTable.cleanFor`, what the server's clean timer calls): a pass over
 * the table takes about CLEAN_PASS_MS of elapsed time whatever the table's size or its swarms'
 * sizes, no step does more than a CLEAN_BUDGET step, peers still expire within the timeout plus a
 * pass, and an empty store costs nothing. Time is simulated: each step is told 25 ms went by.
 */
import assert from "node:assert/strict";
import {
  CLEAN_BUDGET,
  CLEAN_INTERVAL_MS,
  CLEAN_PASS_MS,
  SwarmTable,
} from "../src/store/swarmTable.ts";
import { assertInvariants } from "../src/store/invariants.ts";

const out = new Uint8Array(64);

function hashOf(n: number): Uint8Array {
  const ih = new Uint8Array(20);
  new DataView(ih.buffer).setUint32(0, n);
  ih[19] = 0x5a;
  return ih;
}

function fill(table: SwarmTable, torrents: number, peersEach: number, now: number): void {
  const address = new Uint8Array(4);
  for (let t = 0; t < torrents; t++) {
    for (let p = 0; p < peersEach; p++) {
      new DataView(address.buffer).setUint32(0, 0x0a000000 + p);
      table.announce(hashOf(t), 0, 4, address, 0, 6881, 2, false, 0, now, out, 0);
    }
  }
  table.finishResize();
}

/** Elapsed ms of simulated 25-ms steps from one completed pass to the next. */
function passLength(table: SwarmTable, now: number): number {
  const limit = 20 * CLEAN_PASS_MS;
  let elapsed = 0;
  const first = table.cleanPasses + 1;
  while (table.cleanPasses < first && elapsed < limit) {
    table.cleanFor(now, CLEAN_INTERVAL_MS);
    elapsed += CLEAN_INTERVAL_MS;
  }
  const start = elapsed;
  while (table.cleanPasses < first + 1 && elapsed < limit) {
    table.cleanFor(now, CLEAN_INTERVAL_MS);
    elapsed += CLEAN_INTERVAL_MS;
  }
  return elapsed - start;
}

for (const [torrents, peersEach] of [[150_000, 1], [40, 5000], [3000, 1]]) {
  Deno.test(`paced cleaning: ${torrents} torrents x ${peersEach} peers, a pass takes about CLEAN_PASS_MS or less`, () => {
    const table = new SwarmTable({ peerTimeout: 3600 });
    fill(table, torrents, peersEach, 10);
    const ms = passLength(table, 20);
    // Big tables pace by slots, big swarms by the work of their records: either way about a
    // minute. A small table visits at least 64 slots a step: a pass in seconds.
    const small = table.slotCount < 64 * CLEAN_PASS_MS / CLEAN_INTERVAL_MS && peersEach === 1;
    assert.ok(
      ms >= (small ? 0 : 0.8 * CLEAN_PASS_MS) && ms <= 1.3 * CLEAN_PASS_MS,
      `a pass took ${ms} ms of simulated time (${table.slotCount} slots)`,
    );
    if (small) assert.ok(ms <= 10_000, `a small table's pass took ${ms} ms`);
    assert.equal(table.peers4, torrents * peersEach, "nothing expired");
    assertInvariants(table);
  });
}

Deno.test("paced cleaning: a step never does more than a CLEAN_BUDGET step, however late", () => {
  const table = new SwarmTable({ peerTimeout: 3600 });
  fill(table, 50000, 1, 10);
  // Ten minutes since the last step (a stopped process, a debugger): still one bounded step.
  assert.ok(table.cleanFor(20, 600_000) <= CLEAN_BUDGET);
  assert.ok(table.cleanFor(20, 600_000) <= CLEAN_BUDGET);
});

Deno.test("paced cleaning: peers expire within the timeout plus two passes, not before", () => {
  const timeout = 120;
  const table = new SwarmTable({ peerTimeout: timeout });
  fill(table, 20000, 1, 1);
  let elapsed = 0;
  const now = () => 1 + Math.floor(elapsed / 1000);
  while (now() <= 1 + timeout) {
    table.cleanFor(now(), CLEAN_INTERVAL_MS);
    elapsed += CLEAN_INTERVAL_MS;
  }
  assert.equal(table.peers4, 20000, "no peer expires within its timeout");
  // The pass running when they expire may have passed their slots already: the next one takes
  // them, however many leave at once (removals are not paced).
  while (table.peers4 > 0 && now() <= 1 + timeout + 2 * CLEAN_PASS_MS / 1000) {
    table.cleanFor(now(), CLEAN_INTERVAL_MS);
    elapsed += CLEAN_INTERVAL_MS;
  }
  assert.equal(table.peers4, 0, `peers left at ${now()} s`);
  assertInvariants(table);
});

Deno.test("paced cleaning: an empty store is idle and a step on it does nothing", () => {
  const table = new SwarmTable({ peerTimeout: 60 });
  assert.ok(table.idle);
  assert.equal(table.cleanFor(5, CLEAN_INTERVAL_MS), 0);
  assert.equal(table.cleanPasses, 0);
  fill(table, 100, 1, 5);
  assert.ok(!table.idle);
  // Everything expires; the steps delete the torrents, give the table and pools back, then rest.
  let steps = 0;
  while (!table.idle && steps < 100_000) {
    table.cleanFor(100, CLEAN_INTERVAL_MS);
    steps++;
  }
  assert.ok(table.idle, "idle again once everything expired");
  assert.equal(table.torrents, 0);
  assert.ok(table.slotCount <= 64, `the table shrank back (${table.slotCount} slots)`);
  const passes = table.cleanPasses;
  assert.equal(table.cleanFor(100, CLEAN_INTERVAL_MS), 0);
  assert.equal(table.cleanPasses, passes, "an idle step does nothing");
  assertInvariants(table);
});
