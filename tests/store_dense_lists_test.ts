/**
 * Dense sorted peer lists (lists of 17 to a few thousand peers, src/store/denseLists.ts): a list
 * costs its records and at most a class's slack (no load factor), stays sorted and complete
 * through growth from a linear list into a dense one and on into a set and back down, through
 * stops and through expiry's compacting pass, with addresses on both sides of 2^31 and IPv6; its
 * samples are distinct members, never the requester, no seeders for a seeder.
 */
import assert from "node:assert/strict";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { assertInvariants } from "../src/store/invariants.ts";
import { CLASS_CAPACITY, FIRST_SET_CLASS, LINEAR_CLASSES } from "../src/store/classes.ts";
import { CLASS_SHIFT, COUNT_MASK, ROW_V4, ROW_V6, ROW_WORDS } from "../src/store/layout.ts";

const NONE = 0, STARTED = 2, STOPPED = 3;
const out = new Uint8Array(18 * 300);
const IH = new Uint8Array(20).fill(7);

/** Peer n's address: spread over the whole address space (both sides of 2^31) and 4 ports. */
function peer(n: number, family: 4 | 6, address: Uint8Array): number {
  const word = Math.imul(n + 1, 0x9e3779b1) >>> 0;
  address.fill(0);
  const at = family === 4 ? 0 : 12;
  address[at] = word >>> 24;
  address[at + 1] = word >>> 16;
  address[at + 2] = word >>> 8;
  address[at + 3] = word;
  if (family === 6) address[0] = 0x20;
  return 1 + (n & 3) * 20000;
}

function announce(
  table: SwarmTable,
  n: number,
  family: 4 | 6,
  event: number,
  now: number,
  seeder = false,
  numwant = 0,
): number {
  const address = new Uint8Array(16);
  const port = peer(n, family, address);
  return table.announce(IH, 0, family, address, 0, port, event, seeder, numwant, now, out, 0);
}

/** The torrent's list of `family`: its class and count, read from the raw row. */
function listOf(table: SwarmTable, family: 4 | 6): { sizeClass: number; count: number } {
  const view = table.view();
  for (let slot = 0; slot < view.capacity; slot++) {
    const meta = view.rows[slot * ROW_WORDS + (family === 4 ? ROW_V4 : ROW_V6) + 1];
    if (meta !== 0) return { sizeClass: meta >>> CLASS_SHIFT, count: meta & COUNT_MASK };
  }
  return { sizeClass: -1, count: 0 };
}

function peersOf(table: SwarmTable, family: 4 | 6): number {
  return family === 4 ? table.peers4 : table.peers6;
}

Deno.test("a dense list costs its records and at most one class of slack", () => {
  for (const size of [17, 40, 100, 1000, 2000]) {
    const table = new SwarmTable({ peerTimeout: 1000 });
    for (let n = 0; n < size; n++) announce(table, n, 4, STARTED, 1);
    const { sizeClass, count } = listOf(table, 4);
    assert.equal(count, size);
    assert.ok(sizeClass >= LINEAR_CLASSES && sizeClass < FIRST_SET_CLASS, `class ${sizeClass}`);
    // Grown 1.0625x at a time, filled to the last record: an open-addressing set at 7/8 has at
    // least 8/7 records per peer.
    const capacity = CLASS_CAPACITY[sizeClass];
    assert.ok(capacity <= Math.ceil(size * 1.0625) + 1, `${size} peers in ${capacity} records`);
    assertInvariants(table);
  }
});

for (const family of [4, 6] as const) {
  Deno.test(`IPv${family}: a list grows linear -> dense -> set and shrinks back, always whole`, () => {
    const table = new SwarmTable({ peerTimeout: 1000 });
    const total = 5000;
    const seen = new Set<number>();
    for (let n = 0; n < total; n++) {
      announce(table, n, family, STARTED, 1, n % 5 === 0);
      const { sizeClass } = listOf(table, family);
      if (!seen.has(sizeClass)) {
        seen.add(sizeClass);
        assertInvariants(table); // sorted while dense, every record where a lookup finds it
      }
    }
    assert.ok([...seen].some((c) => c >= FIRST_SET_CLASS), "became a set");
    assert.equal(peersOf(table, family), total);
    // Every peer is found (a refresh, not a new peer) and the seeders are counted once.
    for (let n = 0; n < total; n += 7) announce(table, n, family, NONE, 2, n % 5 === 0);
    assert.equal(peersOf(table, family), total);
    assert.ok(table.scrape(IH, 0));
    assert.equal(table.result.complete, total / 5);
    // Stops in a scattered order take it down through the dense classes to a linear list.
    const order = Array.from({ length: total }, (_, n) => (n * 2957) % total);
    seen.clear();
    for (let k = 0; k < total - 10; k++) {
      announce(table, order[k], family, STOPPED, 3);
      const { sizeClass } = listOf(table, family);
      if (!seen.has(sizeClass)) {
        seen.add(sizeClass);
        assertInvariants(table);
      }
    }
    assert.equal(peersOf(table, family), 10);
    assert.ok(listOf(table, family).sizeClass < LINEAR_CLASSES, "back to a linear list");
    for (let k = total - 10; k < total; k++) {
      // Still there: a refresh does not add a peer.
      announce(table, order[k], family, NONE, 4);
    }
    assert.equal(peersOf(table, family), 10);
    assertInvariants(table);
  });
}

Deno.test("expiry compacts a dense list in one pass, keeping it sorted", () => {
  const table = new SwarmTable({ peerTimeout: 100 });
  for (let n = 0; n < 2000; n++) announce(table, n, 4, STARTED, n % 2 === 0 ? 1 : 60, n % 3 === 0);
  table.cleanAll(130); // the peers seen at 1 are past the timeout, those seen at 60 are not
  assert.equal(table.peers4, 1000);
  assert.ok(table.scrape(IH, 0));
  let seeders = 0;
  for (let n = 1; n < 2000; n += 2) if (n % 3 === 0) seeders++;
  assert.equal(table.result.complete, seeders);
  assertInvariants(table);
  for (let n = 1; n < 2000; n += 2) announce(table, n, 4, NONE, 131, n % 3 === 0);
  assert.equal(table.peers4, 1000, "the survivors are all found");
});

Deno.test("samples from a dense list: distinct members, never the requester", () => {
  const table = new SwarmTable({ peerTimeout: 1000 });
  const members = new Set<string>();
  const address = new Uint8Array(16);
  for (let n = 0; n < 1000; n++) {
    announce(table, n, 4, STARTED, 1, n % 2 === 0);
    const port = peer(n, 4, address);
    members.add(`${address.subarray(0, 4).join(".")}:${port}:${n % 2 === 0}`);
  }
  assert.ok(listOf(table, 4).sizeClass < FIRST_SET_CLASS);
  for (let round = 0; round < 40; round++) {
    const me = round * 11;
    const seeder = me % 2 === 0;
    const n = announce(table, me, 4, NONE, 2, seeder, 200);
    assert.equal(n, seeder ? 200 : 200);
    const got = new Set<string>();
    peer(me, 4, address);
    const self = address.subarray(0, 4).join(".");
    for (let k = 0; k < n; k++) {
      const o = k * 6;
      const key = `${out.subarray(o, o + 4).join(".")}:${(out[o + 4] << 8) | out[o + 5]}`;
      got.add(key);
      const isSeeder = members.has(`${key}:true`);
      assert.ok(isSeeder || members.has(`${key}:false`), `${key} is a member`);
      if (seeder) assert.ok(!isSeeder, "a seeder got a seeder");
      assert.notEqual(key, `${self}:${peer(me, 4, address)}`, "got itself");
    }
    assert.equal(got.size, n, "distinct");
  }
});

Deno.test("a list grown through the dense classes leaves no pool memory behind in them", () => {
  const table = new SwarmTable({ peerTimeout: 1000 });
  for (let n = 0; n < 2000; n++) announce(table, n, 4, STARTED, 1);
  // Clean steps spend their trim allowance on the pools the list moved out of.
  for (let step = 0; step < 200; step++) table.clean(1, 1024);
  const view = table.view();
  const left: string[] = [];
  for (let pool = 0; pool < view.pools.length; pool++) {
    if (view.poolUsed[pool] === 0 && view.pools[pool].byteLength > 0) {
      left.push(`pool ${pool}: ${view.pools[pool].byteLength} bytes`);
    }
  }
  assert.deepEqual(left, [], "empty pools give all their pages back");
  assertInvariants(table);
});
