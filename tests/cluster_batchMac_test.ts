/** Batch authentication: the tag is HMAC-SHA256 over everything a receiver reads, under the secret. */
import assert from "node:assert/strict";
import {
  checkBatch,
  CRC_START,
  markLate,
  setPublishTime,
  TAG_AT,
  TAG_SIZE,
  writeChecksum,
} from "../src/cluster/changeBatch.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { BatchMac } from "../src/cluster/batchMac.ts";

const SECRET = new TextEncoder().encode("correct horse battery staple 42");

function sampleBatch(): Uint8Array {
  const recorder = new ChangeRecorder("node-a", 16, 16);
  const hash = Uint8Array.from({ length: 20 }, (_, i) => i * 7);
  recorder.record(1, hash, 0, 4, Uint8Array.of(10, 0, 0, 1), 0, 6881, false);
  recorder.record(3, hash, 0, 6, new Uint8Array(16).fill(0x20), 0, 51413, true);
  const batch = recorder.take()!;
  setPublishTime(batch, 1_795_595_585_309);
  return batch;
}

/** The tag computed independently, with WebCrypto, over the same bytes. */
async function referenceTag(key: Uint8Array, clusterName: string, batch: Uint8Array) {
  const context = new TextEncoder().encode(`otter cluster batch v3\0${clusterName}\0`);
  const message = new Uint8Array(context.length + batch.length - CRC_START - TAG_SIZE);
  message.set(context);
  message.set(batch.subarray(CRC_START, TAG_AT), context.length);
  message.set(batch.subarray(TAG_AT + TAG_SIZE), context.length + TAG_AT - CRC_START);
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    key.slice(),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const full = new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, message));
  return full.subarray(0, TAG_SIZE);
}

Deno.test("seal writes HMAC-SHA256 (first 16 bytes) over the batch, then a valid checksum", async () => {
  const batch = sampleBatch();
  const mac = new BatchMac(SECRET, "prod");
  assert.ok(mac.authenticated);
  mac.seal(batch);
  assert.equal(checkBatch(batch), null);
  assert.deepEqual(
    batch.subarray(TAG_AT, TAG_AT + TAG_SIZE),
    await referenceTag(SECRET, "prod", batch),
  );
  assert.ok(mac.verify(batch));
});

Deno.test("a tag does not verify under another secret or another cluster name", () => {
  const batch = sampleBatch();
  new BatchMac(SECRET, "prod").seal(batch);
  const other = new TextEncoder().encode("correct horse battery staple 43");
  assert.ok(!new BatchMac(other, "prod").verify(batch));
  assert.ok(!new BatchMac(SECRET, "staging").verify(batch));
  // A batch sealed without a secret carries a zero tag, which a keyed receiver refuses.
  const unsigned = sampleBatch();
  new BatchMac(null, "prod").seal(unsigned);
  assert.equal(checkBatch(unsigned), null);
  assert.ok(unsigned.subarray(TAG_AT, TAG_AT + TAG_SIZE).every((b) => b === 0));
  assert.ok(!new BatchMac(SECRET, "prod").verify(unsigned));
  // Without a secret nothing is checked.
  assert.ok(!new BatchMac(null, "prod").authenticated);
  assert.ok(new BatchMac(null, "prod").verify(batch));
});

Deno.test("changing any byte the receiver reads, checksum recomputed, fails the tag", () => {
  const mac = new BatchMac(SECRET, "prod");
  const batch = sampleBatch();
  mac.seal(batch);
  for (let at = CRC_START; at < batch.length; at++) {
    for (const bit of [0x01, 0x80]) {
      const copy = batch.slice();
      copy[at] ^= bit;
      writeChecksum(copy);
      assert.ok(!mac.verify(copy), `byte ${at} bit ${bit}`);
    }
  }
  assert.ok(!mac.verify(batch.subarray(0, 20)), "shorter than a header");
});

Deno.test("marking a batch late and stamping it need a new seal", () => {
  const mac = new BatchMac(SECRET, "prod");
  const batch = sampleBatch();
  mac.seal(batch);
  markLate(batch, 5, true);
  writeChecksum(batch);
  assert.ok(!mac.verify(batch));
  mac.seal(batch);
  assert.ok(mac.verify(batch));
  setPublishTime(batch, 1_795_595_600_000);
  writeChecksum(batch);
  assert.ok(!mac.verify(batch));
  mac.seal(batch);
  assert.ok(mac.verify(batch));
});

Deno.test("the key is copied: changing the caller's array later changes nothing", () => {
  const key = SECRET.slice();
  const mac = new BatchMac(key, "prod");
  const batch = sampleBatch();
  mac.seal(batch);
  key.fill(0);
  assert.ok(mac.verify(batch));
});
