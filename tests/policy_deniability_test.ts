import assert from "node:assert/strict";
import { DeniabilityMixer } from "../src/policy/deniability.ts";

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

/**
 * Reserved IPv4 space, written out independently of the module: none of it may be generated.
 * Real test peers live in 10/8 and fd00::/8, so a generated peer is told apart by its address.
 */
const RESERVED_V4: [string, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
];

function v4Number(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function reservedV4(b: Uint8Array, o: number): string | null {
  const a = v4Number(b, o);
  for (const [text, bits] of RESERVED_V4) {
    const net = v4Number(Uint8Array.from(text.split(".").map(Number)), 0);
    if (Math.floor(a / 2 ** (32 - bits)) === Math.floor(net / 2 ** (32 - bits))) {
      return `${text}/${bits}`;
    }
  }
  return null;
}

/** Special IPv6 ranges inside 2000::/3 as [first 32 bits, prefix bits ≤ 32]. */
const SPECIAL_V6: [number, number][] = [
  [0x20010000, 23], // IETF protocol assignments (Teredo, ORCHID, benchmarking, ...)
  [0x20010db8, 32], // documentation
  [0x20020000, 16], // 6to4
  [0x3fff0000, 20], // documentation (RFC 9637)
];

function v6Problem(b: Uint8Array, o: number): string | null {
  const w0 = v4Number(b, o);
  if (w0 >>> 29 !== 1) return "outside 2000::/3";
  for (const [net, bits] of SPECIAL_V6) {
    if (w0 >>> (32 - bits) === net >>> (32 - bits)) return `in special ${net.toString(16)}/${bits}`;
  }
  if (![0x240, 0x260, 0x280, 0x2a0, 0x2c0].includes(w0 >>> 20)) return "outside the RIR /12s";
  if (b.subarray(o + 8, o + 16).every((x) => x === 0)) return "all-zero interface id";
  return null;
}

/** A compact list of `count` real peers (10.0.x.y or fd00::x) in a buffer with room to spare. */
function realPeers(family: 4 | 6, count: number, room: number, offset = 0): Uint8Array {
  const entry = family === 4 ? 6 : 18;
  const buf = new Uint8Array(offset + room * entry + 8).fill(0xaa);
  for (let i = 0; i < count; i++) {
    const at = offset + i * entry;
    if (family === 4) {
      buf.set([10, 0, i >> 8, i & 255], at);
    } else {
      buf.fill(0, at, at + 16);
      buf[at] = 0xfd;
      buf[at + 14] = i >> 8;
      buf[at + 15] = i & 255;
    }
    buf[at + entry - 2] = 0x1a;
    buf[at + entry - 1] = 0xe1; // port 6881
  }
  return buf;
}

function isReal(family: 4 | 6, buf: Uint8Array, at: number): boolean {
  return family === 4 ? buf[at] === 10 : buf[at] === 0xfd;
}

function realIndex(family: 4 | 6, buf: Uint8Array, at: number): number {
  return family === 4 ? (buf[at + 2] << 8) | buf[at + 3] : (buf[at + 14] << 8) | buf[at + 15];
}

/** Checks one mixed list; returns the positions of the generated peers. */
function checkList(
  family: 4 | 6,
  buf: Uint8Array,
  offset: number,
  before: number,
  after: number,
  added: number,
): number[] {
  const entry = family === 4 ? 6 : 18;
  const fakes: number[] = [];
  const seen = new Set<string>();
  let lastReal = -1;
  for (let i = 0; i < after; i++) {
    const at = offset + i * entry;
    const key = Array.from(buf.subarray(at, at + entry - 2)).join(",");
    assert.ok(!seen.has(key), `address repeated at position ${i}`);
    seen.add(key);
    if (isReal(family, buf, at)) {
      // Real peers keep their relative order and their ports.
      const index = realIndex(family, buf, at);
      assert.ok(index > lastReal && index < before, `real peer ${index} out of order`);
      lastReal = index;
      assert.equal((buf[at + entry - 2] << 8) | buf[at + entry - 1], 6881);
      continue;
    }
    fakes.push(i);
    const problem = family === 4 ? reservedV4(buf, at) : v6Problem(buf, at);
    assert.equal(problem, null, `generated address ${i}: ${problem}`);
    if (family === 4) assert.ok(buf[at + 3] >= 1 && buf[at + 3] <= 254, "last octet");
    const port = (buf[at + entry - 2] << 8) | buf[at + entry - 1];
    assert.ok(port >= 1024 && port <= 65535, `port ${port}`);
  }
  assert.equal(fakes.length, added, "lastAdded counts the generated peers shown");
  assert.ok(after - fakes.length >= 1, "at least one real peer stays");
  return fakes;
}

Deno.test("deniability: probability 0 never mixes, 1 always does", () => {
  const never = new DeniabilityMixer(0, 5, seeded(1));
  const always = new DeniabilityMixer(1, 5, seeded(2));
  for (let t = 0; t < 1000; t++) {
    const a = realPeers(4, 10, 50);
    assert.equal(never.mix(4, a, 0, 10, 50), 10);
    assert.equal(never.lastAdded, 0);
    const b = realPeers(4, 10, 50);
    const n = always.mix(4, b, 0, 10, 50);
    assert.ok(always.lastAdded >= 1 && always.lastAdded <= 5);
    assert.equal(n, 10 + always.lastAdded);
  }
});

Deno.test("deniability: probability respected over 10k trials, fake counts uniform in 1..N", () => {
  for (const p of [0.05, 0.3, 0.5, 0.9]) {
    const mixer = new DeniabilityMixer(p, 4, seeded(Math.round(p * 1000)));
    let mixed = 0;
    const perCount = [0, 0, 0, 0, 0];
    const trials = 10000;
    for (let t = 0; t < trials; t++) {
      const buf = realPeers(4, 20, 50);
      mixer.mix(4, buf, 0, 20, 50);
      if (mixer.lastAdded > 0) mixed++;
      perCount[mixer.lastAdded]++;
    }
    // Five standard deviations of the binomial: fails only on a real bias.
    const tolerance = 5 * Math.sqrt(trials * p * (1 - p));
    assert.ok(Math.abs(mixed - trials * p) < tolerance, `p=${p}: ${mixed} of ${trials} mixed`);
    for (let k = 1; k <= 4; k++) {
      const expected = mixed / 4;
      assert.ok(
        Math.abs(perCount[k] - expected) < 5 * Math.sqrt(expected),
        `p=${p}: ${perCount[k]} replies with ${k} fakes, expected about ${expected}`,
      );
    }
  }
});

Deno.test("deniability: generated IPv4 and IPv6 peers are public, distinct and well-formed", () => {
  for (const family of [4, 6] as const) {
    const mixer = new DeniabilityMixer(1, 8, seeded(family * 31));
    const entry = family === 4 ? 6 : 18;
    let fakes = 0;
    for (let t = 0; t < 3000; t++) {
      const count = 1 + (t % 40);
      const numwant = count + (t % 7);
      const offset = t % 3 === 0 ? 20 : 0; // behind a reply header, as the UDP server writes it
      const buf = realPeers(family, count, numwant, offset);
      const tail = buf.slice(offset + numwant * entry);
      const head = buf.slice(0, offset);
      const n = mixer.mix(family, buf, offset, count, numwant);
      assert.ok(n >= count && n <= numwant, `count ${n} for ${count} real, numwant ${numwant}`);
      fakes += checkList(family, buf, offset, count, n, mixer.lastAdded).length;
      assert.deepEqual(buf.slice(offset + numwant * entry), tail, "wrote past numwant entries");
      assert.deepEqual(buf.slice(0, offset), head, "wrote before offset");
    }
    assert.ok(fakes > 3000, `${fakes} fakes`);
  }
});

Deno.test("deniability: covers public space broadly (first octets, /12 blocks, ports)", () => {
  const mixer = new DeniabilityMixer(1, 1, seeded(5));
  const firstOctets = new Set<number>();
  let lowPorts = 0, highPorts = 0;
  for (let t = 0; t < 20000; t++) {
    const buf = realPeers(4, 1, 2);
    mixer.mix(4, buf, 0, 1, 2);
    const at = isReal(4, buf, 0) ? 6 : 0;
    firstOctets.add(buf[at]);
    const port = (buf[at + 4] << 8) | buf[at + 5];
    if (port < 2048) lowPorts++;
    if (port > 64511) highPorts++;
  }
  // First octets 0..223 minus 0, 10 and 127 are possible (100, 169, 172, 192, 198 and 203 in part).
  assert.equal(firstOctets.size, 221);
  assert.ok(!firstOctets.has(0) && !firstOctets.has(10) && !firstOctets.has(127));
  assert.ok(lowPorts > 100 && highPorts > 100, `ports ${lowPorts} low, ${highPorts} high`);
  const blocks = new Set<number>();
  const mixer6 = new DeniabilityMixer(1, 1, seeded(6));
  for (let t = 0; t < 1000; t++) {
    const buf = realPeers(6, 1, 2);
    mixer6.mix(6, buf, 0, 1, 2);
    const at = isReal(6, buf, 0) ? 18 : 0;
    blocks.add((buf[at] << 4) | (buf[at + 1] >> 4));
  }
  assert.deepEqual([...blocks].sort(), [0x240, 0x260, 0x280, 0x2a0, 0x2c0]);
});

Deno.test("deniability: inserts while under numwant, then replaces, keeping one real peer", () => {
  const mixer = new DeniabilityMixer(1, 10, seeded(11));
  for (let t = 0; t < 2000; t++) {
    // Full list: every fake replaces a real peer, up to count - 1 of them.
    const full = realPeers(4, 5, 5);
    assert.equal(mixer.mix(4, full, 0, 5, 5), 5);
    assert.ok(mixer.lastAdded >= 1 && mixer.lastAdded <= 4);
    checkList(4, full, 0, 5, 5, mixer.lastAdded);
    // A single real peer at numwant 1 cannot be mixed without losing the swarm.
    const single = realPeers(4, 1, 1);
    assert.equal(mixer.mix(4, single, 0, 1, 1), 1);
    assert.equal(mixer.lastAdded, 0);
    assert.ok(isReal(4, single, 0));
    // Two slots free, up to ten wanted: two inserted, the rest replace.
    const partial = realPeers(6, 4, 6);
    const n = mixer.mix(6, partial, 0, 4, 6);
    const wanted = mixer.lastAdded;
    assert.ok(n === 4 + Math.min(2, wanted));
    checkList(6, partial, 0, 4, n, wanted);
  }
});

Deno.test("deniability: never touches empty lists; respects the buffer's room", () => {
  const mixer = new DeniabilityMixer(1, 5, seeded(12));
  const empty = realPeers(4, 0, 10);
  const copy = empty.slice();
  assert.equal(mixer.mix(4, empty, 0, 0, 10), 0);
  assert.equal(mixer.lastAdded, 0);
  assert.deepEqual(empty, copy);
  // numwant says 50 but the buffer holds exactly 3 entries after the offset.
  for (let t = 0; t < 200; t++) {
    const buf = new Uint8Array(8 + 3 * 6);
    buf.set(realPeers(4, 2, 2).subarray(0, 12), 8);
    const n = mixer.mix(4, buf, 8, 2, 50);
    assert.ok(n <= 3);
    checkList(4, buf, 8, 2, n, mixer.lastAdded);
  }
});

Deno.test("deniability: fakes do not repeat addresses even from a tiny random source", () => {
  // Values are only 0 or 2^31, so a generated IPv4 address is one of four; without the
  // distinctness retry a quarter of two-fake replies would repeat one.
  const coin = seeded(13);
  const mixer = new DeniabilityMixer(1, 2, () => (coin() & 1) * 0x80000000);
  let repeats = 0;
  let mixes = 0;
  for (let t = 0; t < 2000; t++) {
    const buf = realPeers(4, 3, 10);
    const n = mixer.mix(4, buf, 0, 3, 10);
    if (mixer.lastAdded === 2) mixes++;
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const key = Array.from(buf.subarray(i * 6, i * 6 + 4)).join(".");
      if (seen.has(key)) repeats++;
      seen.add(key);
    }
  }
  assert.ok(mixes > 500, `${mixes} two-fake replies`);
  assert.equal(repeats, 0);
});

Deno.test("deniability: default crypto source and argument checks", () => {
  const mixer = new DeniabilityMixer(1, 3);
  for (let t = 0; t < 500; t++) {
    const buf = realPeers(6, 10, 20);
    const n = mixer.mix(6, buf, 0, 10, 20);
    checkList(6, buf, 0, 10, n, mixer.lastAdded);
  }
  assert.throws(() => new DeniabilityMixer(-0.1, 1), RangeError);
  assert.throws(() => new DeniabilityMixer(1.5, 1), RangeError);
  assert.throws(() => new DeniabilityMixer(NaN, 1), RangeError);
  assert.throws(() => new DeniabilityMixer(0.5, 0), RangeError);
  assert.throws(() => new DeniabilityMixer(0.5, 2.5), RangeError);
});

Deno.test("deniability: insert and replace positions are uniform over the list", () => {
  const mixer = new DeniabilityMixer(1, 1, seeded(14));
  const inserted = new Array(6).fill(0);
  const replaced = new Array(5).fill(0);
  const trials = 12000;
  for (let t = 0; t < trials; t++) {
    const grow = realPeers(4, 5, 10);
    const n = mixer.mix(4, grow, 0, 5, 10);
    inserted[checkList(4, grow, 0, 5, n, mixer.lastAdded)[0]]++;
    const full = realPeers(4, 5, 5);
    mixer.mix(4, full, 0, 5, 5);
    replaced[checkList(4, full, 0, 5, 5, mixer.lastAdded)[0]]++;
  }
  for (const counts of [inserted, replaced]) {
    const expected = trials / counts.length;
    for (const c of counts) {
      assert.ok(Math.abs(c - expected) < 5 * Math.sqrt(expected), `positions ${counts}`);
    }
  }
});
