/**
 * What authenticating cluster batches costs (batchMac.ts: HMAC-SHA256 via node:crypto):
 *
 *   deno bench --allow-all bench/cluster_mac_bench.ts
 *
 * seal (tag + checksum) and verify of a batch of 1, 64 and 4096 IPv4 changes. A node seals each
 * batch it publishes once (a flush every 200 ms takes one batch per 4096 changes) and verifies
 * each batch it reads, so the cost per change is the figure over the change count.
 */
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { BatchMac } from "../src/cluster/batchMac.ts";

const mac = new BatchMac(new TextEncoder().encode("a bench secret of some length"), "bench");

function batchOf(changes: number): Uint8Array {
  const recorder = new ChangeRecorder("bench-node", changes, changes);
  const hash = new Uint8Array(20).fill(7);
  for (let i = 0; i < changes; i++) {
    recorder.record(1, hash, 0, 4, Uint8Array.of(10, 0, i >> 8, i), 0, 6881, false);
  }
  const batch = recorder.take()!;
  mac.seal(batch);
  return batch;
}

for (const changes of [1, 64, 4096]) {
  const batch = batchOf(changes);
  Deno.bench(`seal a batch of ${changes} changes (${batch.length} bytes)`, () => {
    mac.seal(batch);
  });
  Deno.bench(`verify a batch of ${changes} changes`, () => {
    if (!mac.verify(batch)) throw new Error("does not verify");
  });
}
