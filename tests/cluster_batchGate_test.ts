/**
 * What the cluster sync lets in from its stream, entry by entry: shape and size, own batches,
 * checksum, MAC, age from the authenticated publish time, and sequence (replays).
 */
import assert from "node:assert/strict";
import {
  markLate,
  MAX_BATCH_BYTES,
  setPublishTime,
  setSequence,
  writeChecksum,
} from "../src/cluster/changeBatch.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { BatchMac } from "../src/cluster/batchMac.ts";
import { BatchGate, type GateCounters } from "../src/cluster/batchGate.ts";
import { OversizedValue, SkippedElements } from "../src/cluster/streamReader.ts";

const SECRET = new TextEncoder().encode("a cluster secret of some length");
const OTHER = new TextEncoder().encode("another cluster secret, not ours");
const NOW = 1_795_595_585_309;
const FIELD = new TextEncoder().encode("b");

function counters(): GateCounters {
  return {
    rejected: { malformed: 0, oversized: 0, bad_mac: 0, replayed: 0 },
    staleBatches: 0,
    ownBatches: 0,
    gaps: 0,
  };
}

/** A node's recorder and its sealing, as the sync publishes. */
class Origin {
  readonly recorder: ChangeRecorder;
  readonly mac: BatchMac;
  constructor(nodeId: string, secret: Uint8Array | null) {
    this.recorder = new ChangeRecorder(nodeId, 64, 64);
    this.mac = new BatchMac(secret, "test");
  }
  #sequence = 0;
  batch(publishedMs = NOW, port = 6881): Uint8Array {
    const hash = new Uint8Array(20).fill(port & 0xff);
    this.recorder.record(1, hash, 0, 4, Uint8Array.of(10, 0, 0, 1), 0, port, false);
    const batch = this.recorder.take()!;
    setSequence(batch, ++this.#sequence);
    setPublishTime(batch, publishedMs);
    this.mac.seal(batch);
    return batch;
  }
}

function makeGate(secret: Uint8Array | null, instance: Uint8Array = new Uint8Array(8)) {
  const logs: string[] = [];
  const count = counters();
  const gate = new BatchGate(new BatchMac(secret, "test"), instance, 300, count, (line) => {
    logs.push(line);
  });
  return { gate, logs, count };
}

Deno.test("an authentic batch is admitted with its age from the publish time", () => {
  const { gate, count, logs } = makeGate(SECRET);
  const origin = new Origin("a", SECRET);
  const batch = origin.batch(NOW - 12_400);
  const admitted = gate.admit("1-0", [FIELD, batch], NOW);
  assert.ok(admitted.apply);
  assert.equal(admitted.batch, batch);
  assert.equal(admitted.age, 12);
  assert.equal(admitted.own, false);
  assert.deepEqual(count, counters());
  assert.deepEqual(logs, []);
});

Deno.test("wrong shapes are malformed, big values oversized (logged once), neither applied", () => {
  const { gate, count, logs } = makeGate(SECRET);
  const good = new Origin("a", SECRET).batch();
  const malformed = [
    null,
    "text",
    [FIELD],
    [FIELD, good, FIELD, good],
    [FIELD, good, new SkippedElements(2)],
    [new TextEncoder().encode("x"), good],
    [FIELD, null],
    [FIELD, 12],
    [FIELD, good.subarray(0, 30)],
  ];
  for (const fields of malformed) assert.ok(!gate.admit("1-0", fields, NOW).apply);
  assert.equal(count.rejected.malformed, malformed.length);
  for (const value of [new OversizedValue(600_000_000), new Uint8Array(MAX_BATCH_BYTES + 1)]) {
    assert.ok(!gate.admit("2-0", [FIELD, value], NOW).apply);
  }
  assert.equal(count.rejected.oversized, 2);
  assert.deepEqual(logs, [
    `cluster: refusing stream entries over ${MAX_BATCH_BYTES} bytes, unread (the first: ` +
    `600000000 bytes, entry 2-0); counted as rejected, reason "oversized"`,
  ]);
});

Deno.test("a batch without our MAC is refused and counted; one line per claimed node", () => {
  const { gate, count, logs } = makeGate(SECRET);
  const stranger = new Origin("b", OTHER);
  const unsigned = new Origin('c\n"x', null);
  for (let i = 0; i < 5; i++) {
    assert.ok(!gate.admit("1-0", [FIELD, stranger.batch()], NOW).apply);
    assert.ok(!gate.admit("1-1", [FIELD, unsigned.batch()], NOW).apply);
  }
  // Forged from an authentic batch: records changed, checksum recomputed.
  const forged = new Origin("a", SECRET).batch();
  forged[forged.length - 1] ^= 1;
  writeChecksum(forged);
  assert.ok(!gate.admit("1-2", [FIELD, forged], NOW).apply);
  assert.equal(count.rejected.bad_mac, 11);
  assert.deepEqual(
    logs.map((line) => /^cluster: refusing batches from node "([^"]*)"/.exec(line)?.[1]),
    [
      "b",
      "c??x",
      "a",
    ],
  );
  assert.match(logs[0], /fail authentication .*reason "bad_mac"$/);
  // Without a secret the same batches pass.
  const insecure = makeGate(null);
  assert.ok(insecure.gate.admit("1-0", [FIELD, stranger.batch()], NOW).apply);
  assert.ok(insecure.gate.admit("1-1", [FIELD, unsigned.batch()], NOW).apply);
});

Deno.test("a batch applied once is refused as replayed; stale ones are skipped", () => {
  const { gate, count } = makeGate(SECRET);
  const origin = new Origin("a", SECRET);
  const first = origin.batch(NOW - 1000);
  const second = origin.batch(NOW - 500);
  assert.ok(gate.admit("1-0", [FIELD, first], NOW).apply);
  assert.ok(gate.admit("1-1", [FIELD, second], NOW).apply);
  // The same bytes added to the stream again, under new ids.
  assert.ok(!gate.admit("2-0", [FIELD, first], NOW + 10_000).apply);
  assert.ok(!gate.admit("2-1", [FIELD, second.slice()], NOW + 10_000).apply);
  assert.equal(count.rejected.replayed, 2);
  // Once older than the peer timeout (300 s) by its publish time, a batch is stale.
  assert.ok(!gate.admit("3-0", [FIELD, first], NOW + 300_000).apply);
  assert.equal(count.staleBatches, 1);
  const old = origin.batch(NOW - 300_000);
  assert.ok(!gate.admit("3-1", [FIELD, old], NOW).apply);
  assert.equal(count.staleBatches, 2);
  // A new origin (a restarted node) starts its own sequence.
  assert.ok(gate.admit("4-0", [FIELD, new Origin("a", SECRET).batch()], NOW).apply);
  assert.equal(count.rejected.replayed, 2);
});

Deno.test("a sequence that skips numbers is applied and counted as a gap; shards count apart", () => {
  const { gate, count } = makeGate(SECRET);
  const origin = new Origin("a", SECRET);
  const batches = [1, 2, 3, 4].map(() => origin.batch());
  assert.ok(gate.admit("1-0", [FIELD, batches[0]], NOW).apply);
  assert.ok(gate.admit("1-2", [FIELD, batches[2]], NOW).apply);
  assert.equal(count.gaps, 1);
  assert.ok(!gate.admit("1-3", [FIELD, batches[1]], NOW).apply, "too late: replayed");
  assert.equal(count.rejected.replayed, 1);
  // A batch of shard 0 read from shard 1's stream is refused; shard 1's own sequence is apart.
  assert.ok(!gate.admit("1-4", [FIELD, batches[3]], NOW, 1).apply);
  assert.equal(count.rejected.malformed, 1);
});

Deno.test("own batches are skipped unless late; late ones are checked like any other", () => {
  const origin = new Origin("me", SECRET);
  const { gate, count } = makeGate(SECRET, origin.recorder.instance);
  assert.ok(!gate.admit("1-0", [FIELD, origin.batch()], NOW).apply);
  assert.equal(count.ownBatches, 1);
  const late = origin.batch();
  markLate(late, 3, true);
  origin.mac.seal(late);
  const admitted = gate.admit("1-1", [FIELD, late], NOW);
  assert.ok(admitted.apply && admitted.own);
  assert.equal(admitted.age, 3);
  assert.ok(!gate.admit("1-2", [FIELD, late], NOW).apply, "applied once");
  assert.equal(count.rejected.replayed, 1);
});
