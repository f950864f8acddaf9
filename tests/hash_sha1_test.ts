/**
 * src/hash/sha1.ts: FIPS 180-4's example digests, and the same digest as node:crypto for every
 * length from 0 to 300 bytes (every padding case: 55, 56 and 64 bytes, one to five blocks) and
 * for random messages.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha1 } from "../src/hash/sha1.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("sha1: FIPS 180-4 / RFC 3174 examples", () => {
  assert.equal(hex(sha1(text(""))), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(hex(sha1(text("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(
    hex(sha1(text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
  assert.equal(
    hex(sha1(new Uint8Array(1_000_000).fill(0x61))),
    "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
  );
});

Deno.test("sha1: the same digest as node:crypto for every length to 300 and random messages", () => {
  let seed = 0x2545f491;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) | 0) >>> 24;
  for (let length = 0; length <= 300; length++) {
    for (let round = 0; round < 3; round++) {
      const message = new Uint8Array(length);
      for (let i = 0; i < length; i++) message[i] = round === 0 ? 0xff : random();
      const expected = createHash("sha1").update(message).digest("hex");
      assert.equal(hex(sha1(message)), expected, `length ${length}, round ${round}`);
    }
  }
});
