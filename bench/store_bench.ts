/**
 * Peer store benchmarks.
 *
 *   deno bench --allow-all bench/store_bench.ts
 *     announce / scrape / clean step with 1M peers stored. Each bench does OPS operations per
 *     iteration, so "1.0 ms/iter" reads as 1.0 µs per operation.
 *
 *   deno run --allow-all bench/store_bench.ts report
 *     memory per peer (byteSize and RSS growth after gc) for the three target layouts, and the
 *     worst clean() step over full passes where peers expire. Each scenario runs in its own
 *     process so RSS figures do not mix.
 */

import { CLEAN_BUDGET, SwarmTable } from "../src/store/swarmTable.ts";

const OPS = 1000;
const PEER_TIMEOUT = 2700;

/** Deterministic xorshift so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

interface Workload {
  torrents: number;
  peersPerTorrent: number;
  hashes: Uint8Array;
  /** Peer i of torrent t has address t * peersPerTorrent + i (spread over 10.0.0.0/8 and up). */
  order: Uint32Array;
}

function workload(torrents: number, peersPerTorrent: number): Workload {
  const random = rng(12345);
  const hashes = new Uint8Array(torrents * 20);
  for (let i = 0; i < hashes.length; i += 4) {
    new DataView(hashes.buffer).setUint32(i, random());
  }
  // Announces arrive interleaved across torrents, in random order.
  const total = torrents * peersPerTorrent;
  const order = new Uint32Array(total);
  for (let i = 0; i < total; i++) order[i] = i;
  for (let i = total - 1; i > 0; i--) {
    const j = random() % (i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return { torrents, peersPerTorrent, hashes, order };
}

const address = new Uint8Array(4);
const out = new Uint8Array(18 * 200);

function setAddress(peer: number): void {
  const a = peer + 0x0a000000;
  address[0] = a >>> 24;
  address[1] = a >>> 16;
  address[2] = a >>> 8;
  address[3] = a;
}

/** One announce of peer number `peer` (global index) of the workload. */
function announcePeer(
  table: SwarmTable,
  w: Workload,
  peer: number,
  event: number,
  numwant: number,
  now: number,
): number {
  const t = Math.floor(peer / w.peersPerTorrent);
  setAddress(peer);
  return table.announce(
    w.hashes,
    t * 20,
    4,
    address,
    0,
    6881,
    event,
    peer % 4 === 0,
    numwant,
    now,
    out,
    0,
  );
}

function populate(table: SwarmTable, w: Workload, now: number, from = 0, to = w.order.length) {
  for (let i = from; i < to; i++) announcePeer(table, w, w.order[i], 2, 0, now);
}

// ------------------------------------------------------------------ report mode

declare const gc: undefined | (() => void);

function rss(): number {
  if (typeof gc === "function") {
    gc();
    gc();
  }
  return Deno.memoryUsage().rss;
}

function memoryScenario(torrents: number, perTorrent: number): Record<string, unknown> {
  const w = workload(torrents, perTorrent);
  // Warm up (compile) every path first, so RSS growth is the table's, not the JIT's.
  const warm = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
  const small = workload(Math.ceil(torrents / 100), perTorrent);
  populate(warm, small, 1);
  for (let i = 0; i < small.order.length; i++) announcePeer(warm, small, i, 0, 50, 2);
  warm.cleanAll(2 + PEER_TIMEOUT);
  const heapBefore = Deno.memoryUsage().heapUsed;
  const before = rss();
  const table = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
  const start = performance.now();
  populate(table, w, 1);
  const populateMs = performance.now() - start;
  const after = rss();
  const heapGrowth = Deno.memoryUsage().heapUsed - heapBefore;
  const peers = table.peers4;
  // Announce latency with this table: refreshes of random existing peers, numwant 50.
  const random = rng(99);
  const n = 2_000_000;
  const picks = new Uint32Array(n).map(() => random() % peers);
  let t0 = performance.now();
  for (let i = 0; i < n; i++) announcePeer(table, w, picks[i], 0, 50, 2);
  const announceNs = (performance.now() - t0) * 1e6 / n;
  t0 = performance.now();
  let found = 0;
  for (let i = 0; i < n; i++) {
    if (table.scrape(w.hashes, (picks[i] % torrents) * 20)) found++;
  }
  const scrapeNs = (performance.now() - t0) * 1e6 / n;
  if (found !== n) throw new Error("scrape missed");
  return {
    scenario: `${torrents} torrents x ${perTorrent} peers`,
    peers,
    byteSizePerPeer: +(table.byteSize / peers).toFixed(1),
    rssPerPeer: +((after - before) / peers).toFixed(1),
    jsHeapPerPeer: +(heapGrowth / peers).toFixed(2),
    slots: table.slotCount,
    maxProbe: table.maxProbeLength(),
    populateNsPerPeer: Math.round(populateMs * 1e6 / peers),
    announceNs: Math.round(announceNs),
    scrapeNs: Math.round(scrapeNs),
  };
}

/** Runs clean passes at `now` and returns the slowest step (ms) and the steps taken. */
function timeCleanPass(table: SwarmTable, now: number): { maxMs: number; steps: number } {
  let maxMs = 0;
  let steps = 0;
  const passes = table.cleanPasses;
  while (table.cleanPasses < passes + 2) {
    const t0 = performance.now();
    table.clean(now, CLEAN_BUDGET);
    const ms = performance.now() - t0;
    if (ms > maxMs) maxMs = ms;
    steps++;
  }
  return { maxMs: +maxMs.toFixed(2), steps };
}

function cleanScenario(name: string): Record<string, unknown> {
  const late = 1 + PEER_TIMEOUT; // announces at `late` survive a clean at late + 1...
  const expireAt = 2 + PEER_TIMEOUT; // ...announces at 1 do not
  let table: SwarmTable;
  let w: Workload;
  const steady = { maxMs: 0, steps: 0 };
  if (name === "half") {
    w = workload(100_000, 10);
    table = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
    populate(table, w, 1, 0, w.order.length / 2);
    populate(table, w, late, w.order.length / 2);
  } else if (name === "all") {
    w = workload(100_000, 10);
    table = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
    populate(table, w, 1);
  } else if (name === "single-swarm-half") {
    w = workload(1, 1_000_000);
    table = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
    populate(table, w, 1, 0, w.order.length / 2);
    populate(table, w, late, w.order.length / 2);
  } else {
    w = workload(1_000_000, 1);
    table = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
    populate(table, w, 1);
  }
  const peers = table.peers4;
  Object.assign(steady, timeCleanPass(table, late)); // nothing expires yet
  const expiring = timeCleanPass(table, expireAt);
  return {
    scenario: `clean ${name}`,
    peersBefore: peers,
    peersAfter: table.peers4,
    budget: CLEAN_BUDGET,
    steadyMaxStepMs: steady.maxMs,
    expiringMaxStepMs: expiring.maxMs,
    stepsPerPass: Math.round(expiring.steps / 2),
  };
}

async function report(): Promise<void> {
  const scenarios = [
    ["memory", "100000", "10"],
    ["memory", "1000", "1000"],
    ["memory", "1000000", "1"],
    ["clean", "half"],
    ["clean", "all"],
    ["clean", "single-swarm-half"],
    ["clean", "million-torrents"],
  ];
  for (const args of scenarios) {
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--v8-flags=--expose-gc", import.meta.filename!, ...args],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    console.log(new TextDecoder().decode(child.stdout).trim());
  }
}

if (import.meta.main) {
  const [mode, a, b] = Deno.args;
  if (mode === "memory") console.log(JSON.stringify(memoryScenario(+a, +b)));
  else if (mode === "clean") console.log(JSON.stringify(cleanScenario(a)));
  else await report();
} else {
  // ---------------------------------------------------------------- Deno.bench mode
  const wide = workload(100_000, 10);
  const wideTable = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
  populate(wideTable, wide, 1);
  const deep = workload(1000, 1000);
  const deepTable = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
  populate(deepTable, deep, 1);

  const random = rng(7);
  const picks = new Uint32Array(1 << 20).map(() => random() % 1_000_000);
  let cursor = 0;
  let sink = 0;
  const unknown = crypto.getRandomValues(new Uint8Array(20));

  Deno.bench("announce: refresh, numwant 50, 1M peers in 100k torrents", () => {
    for (let i = 0; i < OPS; i++) {
      sink += announcePeer(wideTable, wide, picks[cursor++ & 0xfffff], 0, 50, 2);
    }
  });
  Deno.bench("announce: refresh, numwant 50, 1M peers in 1k torrents", () => {
    for (let i = 0; i < OPS; i++) {
      sink += announcePeer(deepTable, deep, picks[cursor++ & 0xfffff], 0, 50, 2);
    }
  });
  Deno.bench("announce: new peer started then stopped, 1M peers in 100k torrents", () => {
    for (let i = 0; i < OPS; i++) {
      const peer = picks[cursor++ & 0xfffff];
      const t = Math.floor(peer / 10);
      setAddress(peer + 2_000_000);
      wideTable.announce(wide.hashes, t * 20, 4, address, 0, 6881, 2, false, 50, 2, out, 0);
      wideTable.announce(wide.hashes, t * 20, 4, address, 0, 6881, 3, false, 0, 2, out, 0);
    }
  });
  Deno.bench("scrape: known torrent, 100k torrents", () => {
    for (let i = 0; i < OPS; i++) {
      if (wideTable.scrape(wide.hashes, (picks[cursor++ & 0xfffff] % 100_000) * 20)) sink++;
    }
  });
  Deno.bench("scrape: unknown torrent, 100k torrents", () => {
    for (let i = 0; i < OPS; i++) {
      unknown[0] = i;
      if (wideTable.scrape(unknown, 0)) sink++;
    }
  });
  Deno.bench(
    `clean step: ${CLEAN_BUDGET} slots, 1M peers, nothing expiring (per step, not per op)`,
    () => {
      sink += wideTable.clean(3, CLEAN_BUDGET);
    },
  );
  globalThis.addEventListener("unload", () => {
    if (sink === -1) console.log(sink);
  });
}
