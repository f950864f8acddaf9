/**
 * The WebSocket server's buffer pools (servers/ws/wsBuffers.ts): a buffer is sized to the need
 * (the next power of two from 1 KiB), not the largest size, so that a burst of small frames to
 * many connections takes little memory; given back, it is reused; each size keeps a bounded pool.
 */
import assert from "node:assert/strict";
import { BUFFER_BYTES, WsBuffers } from "../src/servers/ws/wsBuffers.ts";

Deno.test("a buffer is the next power of two from 1 KiB of the need, and reused once given back", () => {
  const buffers = new WsBuffers();
  assert.equal(buffers.take(1).length, 1024);
  assert.equal(buffers.take(1024).length, 1024);
  assert.equal(buffers.take(1025).length, 2048);
  const offer = buffers.take(3700); // an offer's worst case
  assert.equal(offer.length, 4096);
  assert.equal(buffers.take(BUFFER_BYTES).length, BUFFER_BYTES);
  assert.equal(
    buffers.take(BUFFER_BYTES + 1).length,
    BUFFER_BYTES + 1,
    "over the pooled sizes: made",
  );
  assert.equal(buffers.taken, 6);
  buffers.give(offer);
  assert.equal(buffers.taken, 5);
  assert.equal(buffers.take(4000), offer, "the same buffer again");
});

Deno.test("each size keeps at most 1 MiB of free buffers; reassembly buffers share the pools", () => {
  const buffers = new WsBuffers();
  const taken = Array.from({ length: 100 }, () => buffers.take(BUFFER_BYTES));
  for (const buffer of taken) buffers.give(buffer);
  assert.equal(buffers.taken, 0);
  const again = new Set(Array.from({ length: 100 }, () => buffers.take(BUFFER_BYTES)));
  const kept = taken.filter((buffer) => again.has(buffer)).length;
  assert.equal(kept, (1 << 20) / BUFFER_BYTES, "64 of 16 KiB kept, the rest dropped");

  const split = buffers.takeReassembly(5000);
  assert.equal(split.length, 8192);
  buffers.giveReassembly(split);
  assert.equal(buffers.take(8192), split);
  buffers.giveReassembly(new Uint8Array(3000)); // not a pooled size: dropped
  assert.notEqual(buffers.take(3000).length, 3000);
});
