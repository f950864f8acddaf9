import assert from "node:assert/strict";
import { CidrSet } from "../src/policy/cidr.ts";
import { parseIpAddress } from "../src/protocol/ipAddress.ts";
import { formatV6 } from "./support/ipText.ts";

/** Seeded xorshift32: uint32 values, reproducible across runs. */
function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

function bytesOf(text: string): [4 | 6, Uint8Array] {
  const out = new Uint8Array(16);
  const family = parseIpAddress(text, out);
  assert.notEqual(family, 0, text);
  return [family as 4 | 6, out];
}

function inSet(set: CidrSet, text: string): boolean {
  const [family, out] = bytesOf(text);
  return set.contains(family, out, 0);
}

Deno.test("CidrSet.parse: accepted and refused entries", () => {
  assert.equal(CidrSet.parse([]).size, 0);
  assert.equal(
    CidrSet.parse(["127.0.0.0/8", "::1/128", "10.0.0.1", " 192.168.0.0/16 ", "[::1]/128"]).size,
    5,
  );
  for (
    const bad of [
      "",
      " ",
      "/8",
      "10.0.0.0/",
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/-1",
      "10.0.0.0/08",
      "10.0.0.0/8/8",
      "10.0.0.0/ 8",
      "10.0.0.0/8a",
      "10.0.0/8",
      "localhost",
      "1::2::3/64",
      "[10.0.0.1]/32",
    ]
  ) {
    assert.throws(() => CidrSet.parse(["127.0.0.1", bad]), { message: `invalid CIDR '${bad}'` });
  }
});

Deno.test("CidrSet.contains: boundaries of common prefixes", () => {
  const s = CidrSet.parse(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1/128"]);
  assert.ok(inSet(s, "10.0.0.0"));
  assert.ok(inSet(s, "10.255.255.255"));
  assert.ok(!inSet(s, "9.255.255.255"));
  assert.ok(!inSet(s, "11.0.0.0"));
  assert.ok(inSet(s, "192.168.1.7"));
  assert.ok(!inSet(s, "192.168.1.6"));
  assert.ok(!inSet(s, "192.168.1.8"));
  assert.ok(inSet(s, "2001:db8::"));
  assert.ok(inSet(s, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  assert.ok(!inSet(s, "2001:db9::"));
  assert.ok(!inSet(s, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
  assert.ok(inSet(s, "::1"));
  assert.ok(!inSet(s, "::2"));
  assert.ok(!inSet(s, "::"));
  // Families do not leak into each other.
  assert.ok(!inSet(s, "::a00:1")); // ::10.0.0.1 (IPv4-compatible) is IPv6
  assert.ok(!inSet(CidrSet.parse(["::1"]), "0.0.0.1"));

  const all4 = CidrSet.parse(["0.0.0.0/0"]);
  assert.ok(inSet(all4, "0.0.0.0") && inSet(all4, "255.255.255.255"));
  assert.ok(!inSet(all4, "::1"));
  const all6 = CidrSet.parse(["::/0"]);
  assert.ok(inSet(all6, "::") && inSet(all6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));

  const slash7 = CidrSet.parse(["fc00::/7", "8.0.0.0/7"]);
  assert.ok(inSet(slash7, "fc00::") && inSet(slash7, "fdff:ffff::1"));
  assert.ok(!inSet(slash7, "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") && !inSet(slash7, "fe00::"));
  assert.ok(inSet(slash7, "8.0.0.0") && inSet(slash7, "9.255.255.255"));
  assert.ok(!inSet(slash7, "7.255.255.255") && !inSet(slash7, "10.0.0.0"));

  const slash9 = CidrSet.parse(["10.128.0.0/9", "2001:db8:8000::/33"]);
  assert.ok(inSet(slash9, "10.128.0.0") && inSet(slash9, "10.255.255.255"));
  assert.ok(!inSet(slash9, "10.127.255.255") && !inSet(slash9, "11.0.0.0"));
  assert.ok(inSet(slash9, "2001:db8:8000::") && inSet(slash9, "2001:db8:ffff::1"));
  assert.ok(!inSet(slash9, "2001:db8:7fff:ffff::"));

  const slash32 = CidrSet.parse(["1.2.3.4/32", "2001:db8::/64", "2001:db8:0:1::/127"]);
  assert.ok(inSet(slash32, "1.2.3.4") && !inSet(slash32, "1.2.3.5"));
  assert.ok(inSet(slash32, "2001:db8::ffff:ffff:ffff:ffff") && !inSet(slash32, "2001:db8:0:2::"));
  assert.ok(inSet(slash32, "2001:db8:0:1::1") && !inSet(slash32, "2001:db8:0:1::2"));
});

Deno.test("CidrSet: host bits are masked, offsets are honoured", () => {
  const s = CidrSet.parse(["10.1.2.3/8", "2001:db8::1/32"]);
  assert.ok(inSet(s, "10.200.0.1"));
  assert.ok(inSet(s, "2001:db8:1::"));
  const buf = new Uint8Array([9, 9, 9, 10, 200, 0, 1, 9]);
  assert.ok(s.contains(4, buf, 3));
  assert.ok(!s.contains(4, buf, 2));
  const wide = new Uint8Array(40);
  wide.set(bytesOf("2001:db8:5::9")[1], 17);
  assert.ok(s.contains(6, wide, 17));
  assert.ok(!s.contains(6, wide, 16));
});

Deno.test("CidrSet: IPv4-mapped space", () => {
  const mapped = CidrSet.parse(["::ffff:10.0.0.0/104"]);
  assert.ok(inSet(mapped, "10.9.8.7"));
  assert.ok(inSet(mapped, "::ffff:10.9.8.7")); // parses to family 4 anyway
  assert.ok(!inSet(mapped, "11.0.0.0"));
  // A raw mapped address passed as family 6 is still checked as IPv4.
  const raw = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 1, 2, 3]);
  assert.ok(mapped.contains(6, raw, 0));
  assert.ok(CidrSet.parse(["10.0.0.0/8"]).contains(6, raw, 0));

  assert.ok(inSet(CidrSet.parse(["::ffff:0:0/96"]), "1.2.3.4"));
  assert.ok(!inSet(CidrSet.parse(["::ffff:0:0/96"]), "::1"));
  assert.ok(inSet(CidrSet.parse(["::ffff:1.2.3.4"]), "1.2.3.4"));
  assert.ok(!inSet(CidrSet.parse(["::ffff:1.2.3.4"]), "1.2.3.5"));
  // An IPv6 net that covers the whole mapped space covers IPv4; one that does not, does not.
  assert.ok(inSet(CidrSet.parse(["::/0"]), "8.8.8.8"));
  assert.ok(inSet(CidrSet.parse(["::/80"]), "8.8.8.8"));
  assert.ok(!inSet(CidrSet.parse(["::/96"]), "8.8.8.8"));
  assert.ok(!inSet(CidrSet.parse(["2000::/3"]), "8.8.8.8"));
  assert.ok(!inSet(CidrSet.parse(["::ffff:0:0/97"]), "128.0.0.1"));
  assert.ok(inSet(CidrSet.parse(["::ffff:0:0/97"]), "127.0.0.1"));
});

/** Reference membership with BigInt, written independently of the module's word masks. */
function refContains(net: bigint, bits: number, width: number, address: bigint): boolean {
  const shift = BigInt(width - bits);
  return (net >> shift) === (address >> shift);
}

function toBig(bytes: Uint8Array, length: number): bigint {
  let v = 0n;
  for (let i = 0; i < length; i++) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

function formatBytes(bytes: Uint8Array, family: 4 | 6): string {
  return family === 4
    ? Array.from(bytes.subarray(0, 4)).join(".")
    : formatV6(Array.from(bytes), true);
}

Deno.test("CidrSet.contains agrees with a BigInt reference (property)", () => {
  const random = seeded(2024);
  for (let round = 0; round < 300; round++) {
    const family: 4 | 6 = random() & 1 ? 4 : 6;
    const width = family === 4 ? 32 : 128;
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = random() & 255;
    // Keep random IPv6 nets out of the mapped space, which has its own test.
    if (family === 6) bytes[0] |= 0x20;
    const bits = random() % (width + 1);
    const set = CidrSet.parse([`${formatBytes(bytes, family)}/${bits}`]);
    const net = toBig(bytes, width / 8);
    for (let k = 0; k < 200; k++) {
      const address = new Uint8Array(bytes);
      // Flip one bit near the prefix boundary half of the time, a random byte otherwise.
      if (k & 1) {
        const bit = Math.max(0, Math.min(width - 1, bits - 2 + (random() % 4)));
        address[bit >> 3] ^= 0x80 >> (bit & 7);
      } else {
        address[random() % (width / 8)] = random() & 255;
      }
      if (family === 6) address[0] |= 0x20;
      const expected = refContains(net, bits, width, toBig(address, width / 8));
      assert.equal(set.contains(family, address, 0), expected, `${formatBytes(address, family)}`);
    }
  }
});
