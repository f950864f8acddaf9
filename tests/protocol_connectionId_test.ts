import assert from "node:assert/strict";
import { ConnectionIds } from "../src/protocol/connectionId.ts";

const KEY = new Uint32Array([0x03020100, 0x07060504]);
const V4 = new Uint8Array([127, 0, 0, 1]);
const V6 = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function issued(ids: ConnectionIds, now: number, family: 4 | 6, addr: Uint8Array) {
  const id = new Uint8Array(8);
  ids.issue(now, family, addr, 0, id, 0);
  return id;
}

for (const [family, addr] of [[4, V4], [6, V6]] as const) {
  Deno.test(`connection ids, IPv${family}: valid, expired, future`, () => {
    const ids = new ConnectionIds(KEY);
    const id = issued(ids, 1000, family, addr);
    assert.deepEqual(id.subarray(0, 4), new Uint8Array([0, 0, 0x03, 0xe8]), "time, big-endian");
    assert.ok(ids.check(1000, family, addr, 0, id, 0));
    assert.ok(ids.check(1000 + 600, family, addr, 0, id, 0), "lifetime + grace");
    assert.ok(!ids.check(1000 + 601, family, addr, 0, id, 0), "expired");
    assert.ok(ids.check(995, family, addr, 0, id, 0), "5 s of clock skew");
    assert.ok(!ids.check(994, family, addr, 0, id, 0), "from the future");
    assert.deepEqual(issued(ids, 1000, family, addr), id, "deterministic");
  });

  Deno.test(`connection ids, IPv${family}: bound to address, key and every bit`, () => {
    const ids = new ConnectionIds(KEY);
    const id = issued(ids, 50, family, addr);
    for (let i = 0; i < addr.length; i++) {
      const other = addr.slice();
      other[i] ^= 1;
      assert.ok(!ids.check(50, family, other, 0, id, 0), `address byte ${i}`);
    }
    for (let bit = 0; bit < 64; bit++) {
      const bad = id.slice();
      bad[bit >> 3] ^= 0x80 >> (bit & 7);
      assert.ok(!ids.check(50, family, addr, 0, bad, 0), `bit ${bit}`);
    }
    const otherKey = new ConnectionIds(new Uint32Array([0x03020100, 0x07060505]));
    assert.ok(!otherKey.check(50, family, addr, 0, id, 0), "another process's key");
  });
}

Deno.test("connection ids: families are separate; offsets are honoured", () => {
  const ids = new ConnectionIds(KEY);
  // An IPv6 address whose first 4 bytes equal the IPv4 one must not share ids with it.
  const v6 = new Uint8Array(16);
  v6.set(V4);
  const id4 = issued(ids, 10, 4, V4);
  assert.ok(!ids.check(10, 6, v6, 0, id4, 0));
  const id6 = issued(ids, 10, 6, v6);
  assert.ok(!ids.check(10, 4, V4, 0, id6, 0));
  assert.notDeepEqual(id4, id6);

  const packet = new Uint8Array(40);
  const addr = new Uint8Array(30);
  addr.set(V6, 7);
  ids.issue(77, 6, addr, 7, packet, 13);
  assert.ok(ids.check(77, 6, V6, 0, packet, 13));
  assert.deepEqual(packet.subarray(13, 21), issued(ids, 77, 6, V6));
});

Deno.test("connection ids: custom lifetime and grace", () => {
  const ids = new ConnectionIds(KEY, 60, 0);
  const id = issued(ids, 100, 4, V4);
  assert.ok(ids.check(160, 4, V4, 0, id, 0));
  assert.ok(!ids.check(161, 4, V4, 0, id, 0));
});

Deno.test("connection ids: different addresses get different ids", () => {
  const ids = new ConnectionIds(KEY);
  const seen = new Set<string>();
  const addr = new Uint8Array(4);
  for (let i = 0; i < 4000; i++) {
    addr[3] = i & 0xff;
    addr[2] = i >> 8;
    seen.add(issued(ids, 5, 4, addr).join());
  }
  assert.equal(seen.size, 4000); // fixed key: no 32-bit collision among these 4000
});
