/**
 * Property tests: random workloads against a plain Map-based reference model of the store.
 *
 * Every operation is applied to both; after each one the whole store is read back (scrape,
 * forEachPeer, counters) and compared with the model, and the raw-array invariant checker runs.
 * Incremental clean() steps cannot be predicted exactly (which slots they reach depends on the
 * cursor), so after one the model is reconciled: a peer or torrent may only have vanished if the
 * expiry rules allowed it.
 */

// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@4.10.2";
import assert from "node:assert/strict";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { checkInvariants } from "../src/store/invariants.ts";

const PEER_TIMEOUT = 900;
const KEEP_DOWNLOADED = 2500;
const PORTS = [1, 2, 6881, 65535];
const MAX_NUMWANT = 30;
/**
 * Bounds each property (search and shrinking) in time; running out counts as a failure. Generous:
 * the longest property takes 10-30 s (idle to loaded 2-core machine) for its fixed number of runs.
 */
const TIME_LIMIT = { interruptAfterTimeLimit: 300_000, markInterruptAsFailure: true };

interface ModelPeer {
  seeder: boolean;
  lastSeen: number;
}
interface ModelTorrent {
  peers: [Map<string, ModelPeer>, Map<string, ModelPeer>];
  downloaded: number;
  lastActivity: number;
}

type Op =
  | {
    kind: "announce";
    t: number;
    v6: boolean;
    a: number;
    port: number;
    event: number;
    seeder: boolean;
    numwant: number;
  }
  | { kind: "tick"; dt: number }
  | { kind: "cleanAll" }
  | { kind: "clean"; budget: number }
  | { kind: "scrape"; t: number }
  | { kind: "setDownloaded"; t: number; downloaded: number }
  | {
    kind: "restore";
    t: number;
    v6: boolean;
    a: number;
    port: number;
    seeder: boolean;
    ago: number;
  };

const torrentArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 5 }) },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant("announce" as const),
      t: torrentArb,
      v6: fc.boolean(),
      a: fc.integer({ min: 0, max: 29 }),
      port: fc.constantFrom(...PORTS),
      event: fc.constantFrom(0, 0, 1, 2, 2, 3),
      seeder: fc.boolean(),
      numwant: fc.integer({ min: 0, max: MAX_NUMWANT }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("tick" as const), dt: fc.nat(700) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cleanAll" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("clean" as const),
      budget: fc.integer({ min: 1, max: 40 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("scrape" as const), t: torrentArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("setDownloaded" as const),
      t: torrentArb,
      downloaded: fc.nat(3),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("restore" as const),
      t: torrentArb,
      v6: fc.boolean(),
      a: fc.integer({ min: 0, max: 29 }),
      port: fc.constantFrom(...PORTS),
      seeder: fc.boolean(),
      ago: fc.nat(PEER_TIMEOUT + 200),
    }),
  },
);

function infoHashOf(t: number): Uint8Array {
  // Torrents share all but one byte, to also stress the info hash comparison.
  const ih = new Uint8Array(20).fill(0xab);
  ih[18] = t >> 8;
  ih[19] = t & 255;
  return ih;
}

function addressOf(v6: boolean, a: number): Uint8Array {
  if (!v6) return Uint8Array.of(10, 0, a >> 8, a & 255);
  const b = new Uint8Array(16);
  b.set([0x20, 0x01, 0x0d, 0xb8]);
  b[15] = a; // differs only in the last word from its neighbours
  b[7] = a & 1;
  return b;
}

function hex(bytes: Uint8Array, offset: number, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += bytes[offset + i].toString(16).padStart(2, "0");
  return s;
}

function peerKeyOf(v6: boolean, a: number, port: number): string {
  const addr = addressOf(v6, a);
  return hex(addr, 0, addr.length) + "/" + port;
}

class Model {
  torrents = new Map<number, ModelTorrent>();
  latest = 1;

  torrent(t: number): ModelTorrent | undefined {
    return this.torrents.get(t);
  }

  create(t: number, lastActivity: number): ModelTorrent {
    const torrent: ModelTorrent = {
      peers: [new Map(), new Map()],
      downloaded: 0,
      lastActivity,
    };
    this.torrents.set(t, torrent);
    return torrent;
  }

  static peerless(torrent: ModelTorrent): boolean {
    return torrent.peers[0].size === 0 && torrent.peers[1].size === 0;
  }

  counts(t: number): [number, number, number] {
    const torrent = this.torrents.get(t);
    if (!torrent) return [0, 0, 0];
    let seeders = 0;
    let peers = 0;
    for (const list of torrent.peers) {
      for (const peer of list.values()) {
        peers++;
        if (peer.seeder) seeders++;
      }
    }
    return [seeders, peers - seeders, torrent.downloaded];
  }

  expireAll(now: number): void {
    for (const [t, torrent] of this.torrents) {
      for (const list of torrent.peers) {
        for (const [key, peer] of list) if (now - peer.lastSeen > PEER_TIMEOUT) list.delete(key);
      }
      if (Model.peerless(torrent) && this.freeable(torrent, now)) this.torrents.delete(t);
    }
  }

  freeable(torrent: ModelTorrent, now: number): boolean {
    return torrent.downloaded === 0 || now - torrent.lastActivity > KEEP_DOWNLOADED;
  }
}

interface StoreTorrent {
  peers: [Map<string, ModelPeer>, Map<string, ModelPeer>];
}

/** Reads every torrent and peer back out of the store. */
function readStore(table: SwarmTable): Map<number, StoreTorrent> {
  const seen = new Map<number, StoreTorrent>();
  const ih = new Uint8Array(20);
  for (let slot = 0; slot < table.slotCount; slot++) {
    if (!table.slotInUse(slot)) continue;
    table.copyInfoHash(slot, ih, 0);
    const t = (ih[18] << 8) | ih[19];
    assert.deepEqual(ih, infoHashOf(t), "stored info hash is one the test used");
    assert.ok(!seen.has(t), `torrent ${t} stored twice`);
    const torrent: StoreTorrent = { peers: [new Map(), new Map()] };
    for (const [f, family] of [[0, 4], [1, 6]] as const) {
      table.forEachPeer(slot, family, (address, offset, port, seeder, lastSeen) => {
        const key = hex(address, offset, family === 4 ? 4 : 16) + "/" + port;
        assert.ok(!torrent.peers[f].has(key), `duplicate peer ${key}`);
        torrent.peers[f].set(key, { seeder, lastSeen });
      });
    }
    seen.set(t, torrent);
  }
  return seen;
}

/** Comparisons made while the torrent table was being resized (both tables holding rows). */
let comparedWhileResizing = 0;

function compare(table: SwarmTable, model: Model): void {
  if (table.resizing) comparedWhileResizing++;
  const problems = checkInvariants(table);
  assert.deepEqual(problems, [], "invariants");
  const stored = readStore(table);
  assert.deepEqual([...stored.keys()].sort(), [...model.torrents.keys()].sort(), "torrent set");
  let peers4 = 0, peers6 = 0, seeders4 = 0, seeders6 = 0;
  for (const [t, torrent] of model.torrents) {
    const s = stored.get(t)!;
    for (const f of [0, 1]) {
      const want = new Map([...torrent.peers[f]].sort());
      const got = new Map([...s.peers[f]].sort());
      assert.deepEqual(got, want, `torrent ${t} family ${f === 0 ? 4 : 6} peers`);
      for (const peer of torrent.peers[f].values()) {
        if (f === 0) {
          peers4++;
          if (peer.seeder) seeders4++;
        } else {
          peers6++;
          if (peer.seeder) seeders6++;
        }
      }
    }
    assert.ok(table.scrape(infoHashOf(t), 0), `scrape finds torrent ${t}`);
    const r = table.result;
    assert.deepEqual([r.complete, r.incomplete, r.downloaded], model.counts(t), `counts of ${t}`);
  }
  assert.deepEqual(
    [table.torrents, table.peers4, table.peers6, table.seeders4, table.seeders6],
    [model.torrents.size, peers4, peers6, seeders4, seeders6],
    "live counters",
  );
}

/** After an unpredictable incremental clean, accept exactly the removals the rules allow. */
function reconcile(table: SwarmTable, model: Model, now: number): void {
  const stored = readStore(table);
  for (const [t, torrent] of model.torrents) {
    const s = stored.get(t);
    for (const f of [0, 1]) {
      for (const [key, peer] of torrent.peers[f]) {
        if (s?.peers[f].has(key)) continue;
        assert.ok(now - peer.lastSeen > PEER_TIMEOUT, `live peer ${key} of ${t} vanished`);
        torrent.peers[f].delete(key);
      }
    }
    if (!s) {
      assert.ok(Model.peerless(torrent), `torrent ${t} with live peers vanished`);
      assert.ok(model.freeable(torrent, now), `torrent ${t} freed too early`);
      model.torrents.delete(t);
    }
  }
}

function seededRandom(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function run(ops: Op[], key: [number, number], seed: number): void {
  const table = new SwarmTable({
    peerTimeout: PEER_TIMEOUT,
    keepDownloadedFor: KEEP_DOWNLOADED,
    hashKey: Uint32Array.from(key),
    random: seededRandom(seed),
  });
  const model = new Model();
  const out = new Uint8Array(18 * MAX_NUMWANT + 18);
  let now = 1;
  let lastFullClean = 1;
  for (const op of ops) {
    switch (op.kind) {
      case "tick":
        now += op.dt;
        // Keep within the documented time-stamp bound (a record is examined within 32768 - timeout s).
        if (now - lastFullClean > 15000) {
          table.cleanAll(now);
          model.latest = Math.max(model.latest, now);
          model.expireAll(now);
          lastFullClean = now;
        }
        break;
      case "cleanAll":
        table.cleanAll(now);
        model.latest = Math.max(model.latest, now);
        model.expireAll(now);
        lastFullClean = now;
        break;
      case "clean": {
        const resizing = table.resizing;
        const passes = table.cleanPasses;
        const visited = table.clean(now, op.budget);
        // A step during a resize moves rows instead of visiting slots; a pass that fell behind
        // the time-stamp bound is finished whatever the budget.
        assert.ok(visited >= (resizing ? 0 : 1), "clean visits a slot");
        assert.ok(visited <= op.budget || table.cleanPasses > passes, "clean within budget");
        model.latest = Math.max(model.latest, now);
        reconcile(table, model, now);
        break;
      }
      case "scrape": {
        const found = table.scrape(infoHashOf(op.t), 0);
        assert.equal(found, model.torrents.has(op.t));
        const r = table.result;
        assert.deepEqual([r.complete, r.incomplete, r.downloaded], model.counts(op.t));
        break;
      }
      case "setDownloaded": {
        table.setDownloaded(infoHashOf(op.t), 0, op.downloaded, now);
        model.latest = Math.max(model.latest, now);
        let torrent = model.torrent(op.t);
        if (!torrent) {
          if (op.downloaded > 0) torrent = model.create(op.t, now);
          else break;
        }
        torrent.downloaded = op.downloaded;
        torrent.lastActivity = now;
        if (Model.peerless(torrent) && op.downloaded === 0) model.torrents.delete(op.t);
        break;
      }
      case "restore": {
        const lastSeen = now - op.ago;
        const family = op.v6 ? 6 : 4;
        table.restorePeer(
          infoHashOf(op.t),
          0,
          family,
          addressOf(op.v6, op.a),
          0,
          op.port,
          op.seeder,
          lastSeen,
        );
        model.latest = Math.max(model.latest, lastSeen);
        if (model.latest - lastSeen > PEER_TIMEOUT) break;
        const torrent = model.torrent(op.t) ?? model.create(op.t, Math.max(1, lastSeen));
        torrent.lastActivity = Math.max(torrent.lastActivity, lastSeen, 1);
        const list = torrent.peers[op.v6 ? 1 : 0];
        const key = peerKeyOf(op.v6, op.a, op.port);
        const existing = list.get(key);
        if (!existing || existing.lastSeen <= lastSeen) {
          list.set(key, { seeder: op.seeder, lastSeen });
        }
        break;
      }
      case "announce":
        announce(table, model, op, now, out);
        break;
    }
    compare(table, model);
  }
  table.cleanAll(now + PEER_TIMEOUT + KEEP_DOWNLOADED + 1);
  assert.equal(table.torrents, 0, "everything expires eventually");
  assert.equal(table.peers4 + table.peers6, 0);
  assert.deepEqual(checkInvariants(table), []);
}

function announce(
  table: SwarmTable,
  model: Model,
  op: Extract<Op, { kind: "announce" }>,
  now: number,
  out: Uint8Array,
): void {
  const family = op.v6 ? 6 : 4;
  const f = op.v6 ? 1 : 0;
  const written = table.announce(
    infoHashOf(op.t),
    0,
    family,
    addressOf(op.v6, op.a),
    0,
    op.port,
    op.event,
    op.seeder,
    op.numwant,
    now,
    out,
    0,
  );
  model.latest = Math.max(model.latest, now);
  const key = peerKeyOf(op.v6, op.a, op.port);
  let torrent = model.torrent(op.t);
  if (!torrent) {
    if (op.event === 3) {
      assert.equal(written, 0);
      assert.deepEqual([table.result.complete, table.result.incomplete, table.result.downloaded], [
        0,
        0,
        0,
      ]);
      return;
    }
    torrent = model.create(op.t, now);
  }
  torrent.lastActivity = now;
  const list = torrent.peers[f];
  if (op.event === 3) {
    assert.equal(written, 0, "stopped gets no peers");
    list.delete(key);
    if (Model.peerless(torrent) && torrent.downloaded === 0) model.torrents.delete(op.t);
  } else {
    const wasSeeder = list.get(key)?.seeder ?? false;
    if (op.event === 1 && op.seeder && !wasSeeder) torrent.downloaded++;
    list.set(key, { seeder: op.seeder, lastSeen: now });
  }
  const r = table.result;
  assert.deepEqual([r.complete, r.incomplete, r.downloaded], model.counts(op.t), "announce counts");
  if (op.event === 3) return;

  // Returned peers: distinct members of the right family, never the requester, no seeders for a seeder.
  const size = op.v6 ? 18 : 6;
  const got = new Set<string>();
  for (let i = 0; i < written; i++) {
    const o = i * size;
    const k = hex(out, o, size - 2) + "/" + ((out[o + size - 2] << 8) | out[o + size - 1]);
    assert.ok(!got.has(k), `peer ${k} returned twice`);
    got.add(k);
    assert.notEqual(k, key, "requester gets itself");
    const peer = list.get(k);
    assert.ok(peer, `returned peer ${k} is not a member of the swarm's family`);
    if (op.seeder) assert.ok(!peer.seeder, "seeder got a seeder");
  }
  let eligible = 0;
  for (const [k, peer] of list) if (k !== key && !(op.seeder && peer.seeder)) eligible++;
  assert.equal(written, Math.min(op.numwant, eligible), "as many peers as wanted and available");
}

Deno.test("store matches the reference model on random workloads", () => {
  fc.assert(
    fc.property(
      fc.array(opArb, { minLength: 1, maxLength: 250, size: "max" }),
      fc.tuple(fc.nat(), fc.nat()),
      fc.nat(),
      (ops, key, seed) => run(ops, key, seed),
    ),
    { seed: 20240601, numRuns: 120, ...TIME_LIMIT },
  );
});

Deno.test("store matches the model with long single-torrent workloads (big sets)", () => {
  const bigOpArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 20,
      arbitrary: fc.record({
        kind: fc.constant("announce" as const),
        t: fc.constant(0),
        v6: fc.boolean(),
        a: fc.integer({ min: 0, max: 255 }),
        port: fc.constantFrom(...PORTS),
        event: fc.constantFrom(0, 1, 2, 2, 2, 3),
        seeder: fc.boolean(),
        numwant: fc.integer({ min: 0, max: MAX_NUMWANT }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("tick" as const), dt: fc.nat(400) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("clean" as const),
        budget: fc.integer({ min: 1, max: 3 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("cleanAll" as const) }) },
  );
  fc.assert(
    fc.property(
      fc.array(bigOpArb, { minLength: 200, maxLength: 900, size: "max" }),
      fc.tuple(fc.nat(), fc.nat()),
      fc.nat(),
      (ops, key, seed) => run(ops, key, seed),
    ),
    { seed: 77, numRuns: 12, ...TIME_LIMIT },
  );
});

Deno.test("store matches the model with many torrents (table growth, shifts, shrink)", () => {
  const manyOpArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 20,
      arbitrary: fc.record({
        kind: fc.constant("announce" as const),
        t: fc.integer({ min: 0, max: 400 }),
        v6: fc.boolean(),
        a: fc.integer({ min: 0, max: 3 }),
        port: fc.constantFrom(...PORTS),
        event: fc.constantFrom(0, 1, 2, 2, 3, 3),
        seeder: fc.boolean(),
        numwant: fc.integer({ min: 0, max: 5 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("tick" as const), dt: fc.nat(500) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("clean" as const),
        budget: fc.integer({ min: 1, max: 60 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("cleanAll" as const) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("setDownloaded" as const),
        t: fc.integer({ min: 0, max: 400 }),
        downloaded: fc.nat(2),
      }),
    },
  );
  fc.assert(
    fc.property(
      fc.array(manyOpArb, { minLength: 300, maxLength: 1200, size: "max" }),
      fc.tuple(fc.nat(), fc.nat()),
      fc.nat(),
      (ops, key, seed) => run(ops, key, seed),
    ),
    { seed: 4242, numRuns: 8, ...TIME_LIMIT },
  );
});

Deno.test("store matches the model while its table resizes (rows in both tables)", () => {
  // Mostly new torrents and small clean steps, so most operations meet a resize in progress:
  // lookups that move their row, inserts into the new table, stops and expiry of rows still in
  // the old one, scrapes that read either table, shrinks after mass expiry.
  const resizeOpArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 20,
      arbitrary: fc.record({
        kind: fc.constant("announce" as const),
        t: fc.integer({ min: 0, max: 1500 }),
        v6: fc.boolean(),
        a: fc.integer({ min: 0, max: 2 }),
        port: fc.constantFrom(...PORTS),
        event: fc.constantFrom(0, 2, 2, 3),
        seeder: fc.boolean(),
        numwant: fc.integer({ min: 0, max: 3 }),
      }),
    },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant("scrape" as const), t: fc.nat(1500) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("tick" as const), dt: fc.nat(600) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("clean" as const),
        budget: fc.integer({ min: 1, max: 3 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("setDownloaded" as const),
        t: fc.nat(1500),
        downloaded: fc.nat(2),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("restore" as const),
        t: fc.nat(1500),
        v6: fc.boolean(),
        a: fc.integer({ min: 0, max: 2 }),
        port: fc.constantFrom(...PORTS),
        seeder: fc.boolean(),
        ago: fc.nat(PEER_TIMEOUT + 200),
      }),
    },
  );
  const before = comparedWhileResizing;
  fc.assert(
    fc.property(
      fc.array(resizeOpArb, { minLength: 400, maxLength: 1500, size: "max" }),
      fc.tuple(fc.nat(), fc.nat()),
      fc.nat(),
      (ops, key, seed) => run(ops, key, seed),
    ),
    { seed: 1313, numRuns: 8, ...TIME_LIMIT },
  );
  // Growth and shrinks are incremental: many of the states compared had rows in both tables.
  const during = comparedWhileResizing - before;
  assert.ok(during > 500, `${during} comparisons during a resize`);
});
