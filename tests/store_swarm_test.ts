/**
 * Big swarms and peer sampling: lookups in a 100k-peer torrent stay O(1) (its peer set has no
 * long probe run), samples are distinct members, and different requesters get different random
 * subsets.
 */

import assert from "node:assert/strict";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { assertInvariants, longestPeerRun } from "../src/store/invariants.ts";

const STARTED = 2, NONE = 0, STOPPED = 3;
/** Longest run of occupied records allowed in a peer set: several times the longest seen with
 * random keys (under 100 at 100k peers); a hash that ignored part of the peer gives thousands. */
const LONGEST_RUN = 1000;

function v4(i: number, out: Uint8Array): Uint8Array {
  out[0] = 10;
  out[1] = i >> 16;
  out[2] = i >> 8;
  out[3] = i;
  return out;
}

function peersOf(out: Uint8Array, count: number, size: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(out.subarray(i * size, i * size + size).join("."));
  return keys;
}

Deno.test("a 100k-peer swarm: fast lookups, distinct samples, clean removal", () => {
  const table = new SwarmTable({ peerTimeout: 1000 });
  const ih = new Uint8Array(20).fill(9);
  const address = new Uint8Array(4);
  const out = new Uint8Array(18 * 200);
  const small = new Uint8Array(20).fill(8);
  for (let i = 0; i < 1000; i++) {
    table.announce(small, 0, 4, v4(i, address), 0, 6881, STARTED, false, 0, 1, out, 0);
  }
  for (let i = 0; i < 100_000; i++) {
    table.announce(ih, 0, 4, v4(i, address), 0, 6881, STARTED, i % 3 === 0, 0, 1, out, 0);
  }
  assert.ok(table.scrape(ih, 0));
  assert.equal(table.result.complete + table.result.incomplete, 100_000);
  assert.equal(table.result.complete, 33_334);

  // Finding a peer stays O(1): no probe in the big swarm's set runs long (what a refresh costs
  // in µs, against a 1k swarm, is measured by bench/swarm_scale_bench.ts).
  const run = longestPeerRun(table);
  assert.ok(run <= LONGEST_RUN, `a run of ${run} occupied records in a 100k swarm`);

  // Samples: distinct peers of the swarm, never the requester, no seeders for a seeder.
  for (let round = 0; round < 50; round++) {
    const seeder = round % 2 === 0;
    const me = seeder ? round * 3 : round * 3 + 1; // keeps every peer's seeder flag as it was
    const n = table.announce(ih, 0, 4, v4(me, address), 0, 6881, NONE, seeder, 200, 3, out, 0);
    assert.equal(n, 200);
    const keys = peersOf(out, n, 6);
    assert.equal(new Set(keys).size, n, "distinct peers");
    for (let k = 0; k < n; k++) {
      const o = k * 6;
      assert.equal(out[o], 10);
      const i = (out[o + 1] << 16) | (out[o + 2] << 8) | out[o + 3];
      assert.ok(i < 100_000 && i !== me, `peer ${i}`);
      if (seeder) assert.notEqual(i % 3, 0, "seeder got a seeder");
    }
  }

  // Half of the swarm leaves: stops are O(1) and the list shrinks.
  const before = table.byteSize;
  for (let i = 0; i < 100_000; i += 2) {
    table.announce(ih, 0, 4, v4(i, address), 0, 6881, STOPPED, false, 0, 4, out, 0);
  }
  for (let i = 2; i < 100_000; i += 4) {
    table.announce(ih, 0, 4, v4(i, address), 0, 6881, STOPPED, false, 0, 4, out, 0);
  }
  assert.ok(table.scrape(ih, 0));
  assert.equal(table.result.complete + table.result.incomplete, 50_000);
  assertInvariants(table);
  assert.ok(table.byteSize <= before, "list did not grow while shrinking");
  table.cleanAll(2000);
  assert.equal(table.torrents, 0);
  assertInvariants(table);
});

Deno.test("an IPv6 swarm of 20k peers samples distinct IPv6 peers", () => {
  const table = new SwarmTable({ peerTimeout: 1000 });
  const ih = new Uint8Array(20).fill(1);
  const address = new Uint8Array(16);
  address.set([0x20, 0x01, 0x0d, 0xb8]);
  const out = new Uint8Array(18 * 100);
  for (let i = 0; i < 20_000; i++) {
    new DataView(address.buffer).setUint32(12, i);
    table.announce(ih, 0, 6, address, 0, 51413, STARTED, false, 0, 1, out, 0);
  }
  const n = table.announce(ih, 0, 6, address, 0, 51413, NONE, false, 100, 2, out, 0);
  assert.equal(n, 100);
  assert.equal(new Set(peersOf(out, n, 18)).size, 100);
  for (let k = 0; k < n; k++) {
    assert.deepEqual(out.subarray(k * 18, k * 18 + 4), Uint8Array.of(0x20, 0x01, 0x0d, 0xb8));
    assert.equal((out[k * 18 + 16] << 8) | out[k * 18 + 17], 51413);
  }
  assertInvariants(table);
});

Deno.test("different requesters usually get different subsets, and every peer gets picked", () => {
  for (const peers of [12, 1000]) {
    const table = new SwarmTable({ peerTimeout: 1000 });
    const ih = new Uint8Array(20).fill(2);
    const address = new Uint8Array(4);
    const out = new Uint8Array(6 * 50);
    for (let i = 0; i < peers; i++) {
      table.announce(ih, 0, 4, v4(i, address), 0, 6881, STARTED, false, 0, 1, out, 0);
    }
    const want = Math.min(5, peers - 2);
    let differing = 0;
    const picked = new Set<string>();
    const trials = peers < 100 ? 200 : 4000; // enough walks to cover every peer
    for (let trial = 0; trial < trials; trial++) {
      let n = table.announce(ih, 0, 4, v4(0, address), 0, 6881, NONE, false, want, 2, out, 0);
      const a = peersOf(out, n, 6).sort().join(",");
      for (const k of peersOf(out, n, 6)) picked.add(k);
      n = table.announce(ih, 0, 4, v4(1, address), 0, 6881, NONE, false, want, 2, out, 0);
      const b = peersOf(out, n, 6).sort().join(",");
      if (a !== b) differing++;
    }
    // Identical subsets need both random starts to coincide: about 1 / list size per trial.
    assert.ok(differing > trials * 0.8, `${peers} peers: ${differing} of ${trials} differ`);
    assert.equal(
      picked.size,
      peers - 1,
      `${peers} peers: every peer but the requester gets picked`,
    );
  }
});
