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

import process from "node:process";
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

/**
 * Announce requests for the given peers laid out back to back, as a server sees them: the
 * request bytes are hot (just received), only the table is cold.
 */
interface Requests {
  count: number;
  hashes: Uint8Array;
  addresses: Uint8Array;
  seeders: Uint8Array;
}

function requests(w: Workload, peers: Uint32Array): Requests {
  const count = peers.length;
  const r: Requests = {
    count,
    hashes: new Uint8Array(count * 20),
    addresses: new Uint8Array(count * 4),
    seeders: new Uint8Array(count),
  };
  for (let i = 0; i < count; i++) {
    const peer = peers[i];
    const t = Math.floor(peer / w.peersPerTorrent);
    r.hashes.set(w.hashes.subarray(t * 20, t * 20 + 20), i * 20);
    setAddress(peer);
    r.addresses.set(address, i * 4);
    r.seeders[i] = peer % 4 === 0 ? 1 : 0;
  }
  return r;
}

function replay(table: SwarmTable, r: Requests, event: number, numwant: number, now: number) {
  let sum = 0;
  for (let i = 0; i < r.count; i++) {
    sum += table.announce(
      r.hashes,
      i * 20,
      4,
      r.addresses,
      i * 4,
      6881,
      event,
      r.seeders[i] === 1,
      numwant,
      now,
      out,
      0,
    );
  }
  return sum;
}

/**
 * Announces every peer once (event started), in the workload's random order. Like the server,
 * a clean step runs between bursts of announces (every 10k: 400k announces/s at one step per
 * CLEAN_INTERVAL_MS).
 */
function populate(table: SwarmTable, w: Workload, now: number, from = 0, to = w.order.length) {
  for (let i = from; i < to; i++) {
    announcePeer(table, w, w.order[i], 2, 0, now);
    if (i % 10_000 === 9_999) table.clean(now, CLEAN_BUDGET);
  }
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
  // Announce latency with this table: refreshes of random existing peers, numwant 50. Best of
  // several rounds, as wall time and as this process's CPU time (the machine may be shared).
  const random = rng(99);
  const n = 500_000;
  const r = requests(w, new Uint32Array(n).map(() => random() % peers));
  const announceNs = bestOf(n, () => replay(table, r, 0, 50, 2));
  const announceNoPeersNs = bestOf(n, () => replay(table, r, 0, 0, 2));
  let found = 0;
  const scrapeNs = bestOf(n, () => {
    for (let i = 0; i < n; i++) if (table.scrape(r.hashes, i * 20)) found++;
  });
  if (found !== 5 * n) throw new Error("scrape missed");
  return {
    scenario: `${torrents} torrents x ${perTorrent} peers`,
    peers,
    byteSizePerPeer: +(table.byteSize / peers).toFixed(1),
    rssPerPeer: +((after - before) / peers).toFixed(1),
    jsHeapPerPeer: +(heapGrowth / peers).toFixed(2),
    slots: table.slotCount,
    maxProbe: table.maxProbeLength(),
    populateNsPerPeer: Math.round(populateMs * 1e6 / peers),
    announceNs,
    announceNumwant0Ns: announceNoPeersNs,
    scrapeNs,
  };
}

/** Process CPU time in ms (getrusage; includes GC and compiler threads). */
function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

/** Best of 5 runs of `body` doing `ops` operations: [wall ns/op, CPU ns/op]. */
function bestOf(ops: number, body: () => void): [number, number] {
  let wall = Infinity;
  let cpu = Infinity;
  for (let round = 0; round < 5; round++) {
    const c0 = cpuMs();
    const t0 = performance.now();
    body();
    const c = cpuMs() - c0;
    wall = Math.min(wall, (performance.now() - t0) * 1e6 / ops);
    cpu = Math.min(cpu, c * 1e6 / ops);
  }
  return [Math.round(wall), Math.round(cpu)];
}

/**
 * Runs two clean passes at `now`; returns the 99th percentile and the slowest step, as wall time
 * and as process CPU time (a busy shared machine preempts for tens of ms, which wall time
 * would blame on the step; CPU time instead includes GC threads).
 */
function timeCleanPass(table: SwarmTable, now: number) {
  const wall: number[] = [];
  const cpu: number[] = [];
  const passes = table.cleanPasses;
  while (table.cleanPasses < passes + 2) {
    const c0 = cpuMs();
    const t0 = performance.now();
    table.clean(now, CLEAN_BUDGET);
    wall.push(performance.now() - t0);
    cpu.push(cpuMs() - c0);
  }
  cpu.sort((a, b) => a - b);
  wall.sort((a, b) => a - b);
  const p99 = Math.floor(wall.length * 0.99);
  return {
    p99WallMs: +wall[p99].toFixed(2),
    maxWallMs: +wall[wall.length - 1].toFixed(2),
    p99CpuMs: +cpu[p99].toFixed(2),
    maxCpuMs: +cpu[cpu.length - 1].toFixed(2),
    steps: wall.length,
  };
}

function cleanScenario(name: string): Record<string, unknown> {
  const late = 1 + PEER_TIMEOUT; // announces at `late` survive a clean at late + 1...
  const expireAt = 2 + PEER_TIMEOUT; // ...announces at 1 do not
  let table: SwarmTable;
  let w: Workload;
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
  const steady = timeCleanPass(table, late); // nothing expires yet
  const expiring = timeCleanPass(table, expireAt);
  return {
    scenario: `clean ${name}`,
    peersBefore: peers,
    peersAfter: table.peers4,
    budget: CLEAN_BUDGET,
    stepsPerPass: Math.round(expiring.steps / 2),
    steady,
    expiring,
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
  const wideRequests = requests(wide, picks);
  const deepRequests = requests(deep, picks);
  let cursor = 0;
  let sink = 0;
  const unknown = crypto.getRandomValues(new Uint8Array(20));

  const replaySlice = (table: SwarmTable, r: Requests, numwant: number) => {
    for (let k = 0; k < OPS; k++) {
      const i = cursor++ & 0xfffff;
      sink += table.announce(
        r.hashes,
        i * 20,
        4,
        r.addresses,
        i * 4,
        6881,
        0,
        r.seeders[i] === 1,
        numwant,
        2,
        out,
        0,
      );
    }
  };
  Deno.bench("announce: refresh, numwant 50, 1M peers in 100k torrents", () => {
    replaySlice(wideTable, wideRequests, 50);
  });
  Deno.bench("announce: refresh, numwant 0, 1M peers in 100k torrents", () => {
    replaySlice(wideTable, wideRequests, 0);
  });
  Deno.bench("announce: refresh, numwant 50, 1M peers in 1k torrents", () => {
    replaySlice(deepTable, deepRequests, 50);
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
      if (wideTable.scrape(wideRequests.hashes, (cursor++ & 0xfffff) * 20)) sink++;
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
