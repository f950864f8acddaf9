/** Change batches: recording, the wire format, and rejection of every kind of bad batch. */
import assert from "node:assert/strict";
import { crc32 } from "../src/hash/crc32.ts";
import {
  batchDelay,
  batchIsFrom,
  batchIsLate,
  batchIsQueued,
  batchPublishTime,
  batchRecordCount,
  batchSequence,
  batchShard,
  checkBatch,
  decodeBatch,
  encodeNodeId,
  HEADER_SIZE,
  markLate,
  MAX_BATCH_BYTES,
  MAX_BATCH_RECORDS,
  OP_ANNOUNCE,
  OP_COMPLETED,
  OP_STOPPED,
  opForEvent,
  RECORD_SIZE_V4,
  RECORD_SIZE_V6,
  setPublishTime,
  setSequence,
  shardOf,
  writeChecksum,
} from "../src/cluster/changeBatch.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { FAMILY_WS, type PeerFamily } from "../src/store/swarmTable.ts";

interface Change {
  op: number;
  hash: number[];
  family: PeerFamily;
  address: number[];
  port: number;
  seeder: boolean;
}

function decodeAll(
  bytes: Uint8Array,
): { result: ReturnType<typeof decodeBatch>; changes: Change[] } {
  const changes: Change[] = [];
  const result = decodeBatch(
    bytes,
    (op, hash, hashAt, family, address, addressAt, port, seeder) => {
      changes.push({
        op,
        hash: [...hash.subarray(hashAt, hashAt + 20)],
        family,
        address: [...address.subarray(addressAt, addressAt + (family === 6 ? 16 : 4))],
        port,
        seeder,
      });
    },
  );
  return { result, changes };
}

function hashOf(seed: number): number[] {
  return Array.from({ length: 20 }, (_, i) => (seed * 31 + i * 7) & 0xff);
}

function randomChange(random: () => number): Change {
  const draw = random();
  const family = draw < 0.4 ? 4 : draw < 0.8 ? 6 : FAMILY_WS;
  return {
    op: 1 + Math.floor(random() * 3),
    hash: Array.from({ length: 20 }, () => Math.floor(random() * 256)),
    family,
    address: Array.from({ length: family === 6 ? 16 : 4 }, () => Math.floor(random() * 256)),
    port: Math.floor(random() * 65536),
    seeder: random() < 0.5,
  };
}

/** Records a change, reading it from inside larger arrays to exercise the offsets. */
function recordChange(recorder: ChangeRecorder, change: Change): void {
  const hash = new Uint8Array(25);
  hash.set(change.hash, 3);
  const address = new Uint8Array(21);
  address.set(change.address, 5);
  recorder.record(change.op, hash, 3, change.family, address, 5, change.port, change.seeder);
}

/** A small deterministic generator, so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INSTANCE_A = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
/** Where the node id length sits in the header. */
const ID_LENGTH_AT = HEADER_SIZE - 1;

function sampleBatch(): { bytes: Uint8Array; changes: Change[] } {
  const recorder = new ChangeRecorder("node-a", 16, 16, INSTANCE_A);
  const changes: Change[] = [
    {
      op: OP_ANNOUNCE,
      hash: hashOf(1),
      family: 4,
      address: [10, 0, 0, 1],
      port: 6881,
      seeder: false,
    },
    {
      op: OP_COMPLETED,
      hash: hashOf(2),
      family: 6,
      address: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
      port: 51413,
      seeder: true,
    },
    {
      op: OP_STOPPED,
      hash: hashOf(1),
      family: 4,
      address: [10, 0, 0, 1],
      port: 6881,
      seeder: false,
    },
  ];
  for (const change of changes) recordChange(recorder, change);
  return { bytes: recorder.take()!, changes };
}

/** Recomputes the checksum, so a test reaches the checks behind it. */
function reseal(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, crc32(bytes, 8));
  return bytes;
}

Deno.test("crc32 matches the IEEE check value and a bytewise reference", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  const reference = (bytes: Uint8Array, start: number, end: number) => {
    let c = 0xffffffff;
    for (let i = start; i < end; i++) {
      c ^= bytes[i];
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    return (c ^ 0xffffffff) >>> 0;
  };
  const random = prng(5);
  const bytes = Uint8Array.from({ length: 300 }, () => Math.floor(random() * 256));
  for (let start = 0; start < 20; start++) {
    for (let end = start; end <= 300; end += 1 + (end % 7)) {
      assert.equal(crc32(bytes, start, end), reference(bytes, start, end), `${start}..${end}`);
    }
  }
});

Deno.test("opForEvent maps BEP 15 events to change ops", () => {
  assert.equal(opForEvent(0), OP_ANNOUNCE);
  assert.equal(opForEvent(2), OP_ANNOUNCE);
  assert.equal(opForEvent(1), OP_COMPLETED);
  assert.equal(opForEvent(3), OP_STOPPED);
});

Deno.test("a batch round-trips every field, in order", () => {
  const { bytes, changes } = sampleBatch();
  assert.equal(bytes.length, HEADER_SIZE + 6 + 2 * RECORD_SIZE_V4 + RECORD_SIZE_V6);
  assert.equal(checkBatch(bytes), null);
  assert.equal(batchRecordCount(bytes), 3);
  assert.equal(batchDelay(bytes), 0);
  assert.ok(!batchIsLate(bytes));
  assert.equal(batchSequence(bytes), 0, "given when first published");
  assert.equal(batchShard(bytes), 0);
  assert.equal(batchPublishTime(bytes), 0);
  const decoded = decodeAll(bytes);
  assert.deepEqual(decoded.result, { nodeId: "node-a", count: 3 });
  assert.deepEqual(decoded.changes, changes);
});

Deno.test("a WebSocket change is an IPv4-sized record of family code 2", () => {
  const recorder = new ChangeRecorder("node-w", 4, 4, INSTANCE_A);
  const change: Change = {
    op: OP_ANNOUNCE,
    hash: hashOf(3),
    family: FAMILY_WS,
    address: [0x80, 1, 2, 3],
    port: 77,
    seeder: true,
  };
  recordChange(recorder, change);
  const bytes = recorder.take()!;
  assert.equal(bytes.length, HEADER_SIZE + 6 + RECORD_SIZE_V4);
  // op, seeder (bit 2), family code 2 in bits 3-5.
  assert.equal(bytes[HEADER_SIZE + 6], OP_ANNOUNCE | 0x04 | (2 << 3));
  assert.deepEqual(decodeAll(bytes).changes, [change]);
});

Deno.test("random batches round-trip", () => {
  const random = prng(7);
  for (let round = 0; round < 200; round++) {
    const recorder = new ChangeRecorder("n" + round, 512, 512);
    const changes = Array.from(
      { length: 1 + Math.floor(random() * 300) },
      () => randomChange(random),
    );
    for (const change of changes) recordChange(recorder, change);
    const bytes = recorder.take()!;
    const decoded = decodeAll(bytes);
    assert.deepEqual(decoded.result, { nodeId: "n" + round, count: changes.length });
    assert.deepEqual(decoded.changes, changes);
    assert.equal(recorder.take(), null);
  }
});

Deno.test("take returns null when nothing is pending, and splits at maxBatchRecords", () => {
  const recorder = new ChangeRecorder("node", 100, 4);
  assert.equal(recorder.take(), null);
  const random = prng(3);
  const changes = Array.from({ length: 10 }, () => randomChange(random));
  for (const change of changes) recordChange(recorder, change);
  assert.equal(recorder.pending, 10);
  const seen: Change[] = [];
  const counts: number[] = [];
  for (let batch = recorder.take(); batch !== null; batch = recorder.take()) {
    const decoded = decodeAll(batch);
    assert.ok(!("error" in decoded.result));
    counts.push(decoded.changes.length);
    seen.push(...decoded.changes);
  }
  assert.deepEqual(counts, [4, 4, 2]);
  assert.deepEqual(seen, changes);
  assert.equal(recorder.pending, 0);
  assert.equal(recorder.dropped, 0);
});

Deno.test("a full ring drops the oldest changes and counts them", () => {
  const recorder = new ChangeRecorder("node", 8, 100);
  const random = prng(11);
  const changes = Array.from({ length: 21 }, () => randomChange(random));
  for (const change of changes) recordChange(recorder, change);
  assert.equal(recorder.pending, 8);
  assert.equal(recorder.dropped, 13);
  assert.deepEqual(decodeAll(recorder.take()!).changes, changes.slice(13));
  // The ring wraps cleanly after a take.
  for (const change of changes.slice(0, 5)) recordChange(recorder, change);
  assert.deepEqual(decodeAll(recorder.take()!).changes, changes.slice(0, 5));
});

Deno.test("the recorder rejects bad node ids and sizes", () => {
  assert.throws(() => new ChangeRecorder(""), RangeError);
  assert.throws(() => new ChangeRecorder("x".repeat(65)), RangeError);
  assert.throws(() => new ChangeRecorder("node", 0), RangeError);
  assert.equal(encodeNodeId("x".repeat(64))?.length, 64);
  assert.equal(encodeNodeId(""), null);
});

Deno.test("setSequence gives a batch its number; the checksum must follow", () => {
  const { bytes } = sampleBatch();
  setSequence(bytes, 0xfffffffe);
  assert.equal(batchSequence(bytes), 0xfffffffe);
  assert.equal(checkBatch(bytes), "checksum mismatch");
  writeChecksum(bytes);
  assert.equal(checkBatch(bytes), null);
});

Deno.test("takeAll splits changes by shard, in recorded order, at most maxBatchRecords a batch", () => {
  const recorder = new ChangeRecorder("node", 1000, 4);
  const random = prng(5);
  const changes = Array.from({ length: 50 }, () => randomChange(random));
  for (const change of changes) recordChange(recorder, change);
  const shards = 3;
  const batches = recorder.takeAll(shards);
  assert.equal(recorder.pending, 0);
  const byShard: Change[][] = [[], [], []];
  let previousShard = 0;
  for (const batch of batches) {
    assert.equal(checkBatch(batch), null);
    assert.ok(batchRecordCount(batch) <= 4);
    const shard = batchShard(batch);
    assert.ok(shard >= previousShard, "in shard order");
    previousShard = shard;
    for (const change of decodeAll(batch).changes) {
      assert.equal(shardOf(Uint8Array.from(change.hash), 0, shards), shard);
      byShard[shard].push(change);
    }
  }
  for (let shard = 0; shard < shards; shard++) {
    const expected = changes.filter((c) => shardOf(Uint8Array.from(c.hash), 0, shards) === shard);
    assert.deepEqual(byShard[shard], expected);
  }
  assert.deepEqual(recorder.takeAll(shards), []);
  // One shard: the same batches take() gives.
  for (const change of changes.slice(0, 6)) recordChange(recorder, change);
  assert.deepEqual(recorder.takeAll(1).map((b) => batchRecordCount(b)), [4, 2]);
});

Deno.test("the publish time round-trips past 32 bits and needs a new checksum", () => {
  const { bytes, changes } = sampleBatch();
  const ms = 1_795_595_585_309;
  setPublishTime(bytes, ms + 0.7);
  assertRejected(bytes.slice(), "checksum mismatch");
  writeChecksum(bytes);
  assert.equal(batchPublishTime(bytes), ms);
  assert.deepEqual(decodeAll(bytes).changes, changes);
});

Deno.test("a batch of MAX_BATCH_RECORDS IPv6 changes with the longest node id is MAX_BATCH_BYTES", () => {
  const recorder = new ChangeRecorder("x".repeat(64), MAX_BATCH_RECORDS + 1);
  const change = { ...randomChange(prng(1)), family: 6 as const, address: new Array(16).fill(1) };
  for (let i = 0; i < MAX_BATCH_RECORDS + 1; i++) recordChange(recorder, change);
  assert.equal(recorder.take()!.length, MAX_BATCH_BYTES);
  assert.equal(recorder.take()!.length, HEADER_SIZE + 64 + RECORD_SIZE_V6);
  assert.throws(() => new ChangeRecorder("x", 8, MAX_BATCH_RECORDS + 1), RangeError);
});

Deno.test("markLate sets the flag and the delay; the batch is valid once resealed", () => {
  const { bytes, changes } = sampleBatch();
  markLate(bytes, 12.7, false);
  writeChecksum(bytes);
  assert.ok(batchIsLate(bytes));
  assert.ok(!batchIsQueued(bytes));
  assert.equal(batchDelay(bytes), 12);
  assert.deepEqual(decodeAll(bytes).changes, changes);
  markLate(bytes, 1e9, true);
  assert.ok(batchIsQueued(bytes));
  assert.equal(batchDelay(bytes), 65535);
  markLate(bytes, 0, true);
  assert.equal(batchDelay(bytes), 0);
  assert.ok(batchIsLate(bytes));
  assert.equal(checkBatch(bytes), "checksum mismatch");
  writeChecksum(bytes);
  assert.equal(checkBatch(bytes), null);
});

Deno.test("batchIsFrom compares the recorder instance, not the node id", () => {
  const { bytes } = sampleBatch();
  assert.ok(batchIsFrom(bytes, INSTANCE_A));
  assert.ok(!batchIsFrom(bytes, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 9)));
  assert.ok(!batchIsFrom(bytes.subarray(0, HEADER_SIZE - 1), INSTANCE_A));
  // Two recorders with the same node id (a restarted node) differ.
  const first = new ChangeRecorder("same");
  const second = new ChangeRecorder("same");
  assert.notDeepEqual(first.instance, second.instance);
  assert.throws(() => new ChangeRecorder("x", 4, 4, new Uint8Array(7)), RangeError);
});

function assertRejected(bytes: Uint8Array, reason?: string): void {
  let applied = 0;
  const result = decodeBatch(bytes, () => applied++);
  assert.ok("error" in result, "expected an error");
  if (reason !== undefined) assert.equal(result.error, reason);
  assert.equal(applied, 0, "nothing may be applied from a bad batch");
  assert.equal(checkBatch(bytes), result.error);
}

Deno.test("every truncation is rejected", () => {
  const { bytes } = sampleBatch();
  for (let length = 0; length < bytes.length; length++) assertRejected(bytes.slice(0, length));
});

Deno.test("trailing bytes are rejected", () => {
  const { bytes } = sampleBatch();
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assertRejected(longer, "checksum mismatch");
  assertRejected(reseal(longer), "bytes after the last record");
});

Deno.test("every single-bit flip is rejected", () => {
  const { bytes } = sampleBatch();
  for (let at = 0; at < bytes.length; at++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = bytes.slice();
      copy[at] ^= 1 << bit;
      assertRejected(copy);
    }
  }
});

Deno.test("header checks come before the checksum and name the fault", () => {
  const { bytes } = sampleBatch();
  const badMagic = bytes.slice();
  badMagic[0] = 0x58;
  assertRejected(badMagic, "bad magic");
  const version1 = bytes.slice();
  version1[8] = 1;
  assertRejected(reseal(version1), "unsupported version 1");
  const noId = bytes.slice();
  noId[ID_LENGTH_AT] = 0;
  assertRejected(reseal(noId), "bad node id length");
  const longId = bytes.slice();
  longId[ID_LENGTH_AT] = 65;
  assertRejected(reseal(longId), "bad node id length");
  const pastEnd = bytes.slice(0, HEADER_SIZE + 3);
  pastEnd[ID_LENGTH_AT] = 6;
  assertRejected(pastEnd, "truncated node id");
  const flipped = bytes.slice();
  flipped[bytes.length - 1] ^= 1;
  assertRejected(flipped, "checksum mismatch");
  const unknownFlag = bytes.slice();
  unknownFlag[9] = 4;
  assertRejected(reseal(unknownFlag), "unknown batch flags");
});

Deno.test("sealed but inconsistent batches are rejected before anything is applied", () => {
  const { bytes } = sampleBatch();
  const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset);
  const more = bytes.slice();
  view(more).setUint32(12, 4);
  assertRejected(reseal(more), "fewer records than counted");
  const fewer = bytes.slice();
  view(fewer).setUint32(12, 2);
  assertRejected(reseal(fewer), "bytes after the last record");
  const huge = bytes.slice();
  view(huge).setUint32(12, 0xffffffff);
  assertRejected(reseal(huge), "fewer records than counted");
  // Bad flags on the last record: the two good ones before it must not be applied either.
  const lastRecord = bytes.length - RECORD_SIZE_V4;
  const badFlags: [number, string][] = [
    [0x00, "bad record flags"], // no op
    [0x40, "bad record flags"], // a reserved bit
    [0x80, "bad record flags"],
    [0x18 | 0x01, "unknown peer family"], // family code 3: no such row
    [0x08 | 0x01, "truncated record"], // IPv6 in an IPv4 record's room
  ];
  for (const [flags, reason] of badFlags) {
    const copy = bytes.slice();
    copy[lastRecord] = flags;
    assertRejected(reseal(copy), reason);
  }
  const badShard = bytes.slice();
  badShard[52] = 0xff;
  assertRejected(reseal(badShard), "bad shard");
  const badUtf8 = bytes.slice();
  badUtf8[HEADER_SIZE] = 0xff;
  assertRejected(reseal(badUtf8), "node id is not UTF-8");
});

Deno.test("random garbage is rejected without throwing", () => {
  const random = prng(99);
  const { bytes } = sampleBatch();
  for (let round = 0; round < 20000; round++) {
    const length = Math.floor(random() * 200);
    const garbage = new Uint8Array(length);
    for (let i = 0; i < length; i++) garbage[i] = Math.floor(random() * 256);
    // Half the time keep a valid-looking header so the deeper checks see garbage too.
    if (round % 2 === 0 && length >= 10) garbage.set(bytes.subarray(0, 10));
    if (round % 8 === 0 && length >= HEADER_SIZE) {
      garbage[ID_LENGTH_AT] = 1 + (garbage[ID_LENGTH_AT] & 15);
    }
    if (round % 4 === 0 && length >= HEADER_SIZE) reseal(garbage);
    let applied = 0;
    const result = decodeBatch(garbage, () => applied++);
    if ("error" in result) assert.equal(applied, 0);
    else assert.equal(applied, result.count);
  }
  assertRejected(new Uint8Array(0), "truncated header");
  assertRejected(
    new TextEncoder().encode("hello, this is not a batch at all, nor anything like one, really"),
    "bad magic",
  );
});

Deno.test("an empty batch that is well formed decodes to no changes", () => {
  const bytes = sampleBatch().bytes.slice(0, HEADER_SIZE + 6);
  new DataView(bytes.buffer).setUint32(12, 0);
  assert.deepEqual(decodeAll(reseal(bytes)).result, { nodeId: "node-a", count: 0 });
});
