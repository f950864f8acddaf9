/**
 * The UDP fast path's cost per announce, stage by stage, in one process with no sockets: what
 * otter's own code costs between recvmmsg and sendmmsg, without the kernel and without the noise
 * of a load generator on a shared 2-core machine.
 *
 *   deno run --allow-all --v8-flags=--max-semi-space-size=2 bench/udp_path_bench.ts
 *       [--torrents 100000] [--ports 10] [--ops 2000000] [--rounds 5] [--stage NAME]
 *
 * The store is filled like `udpload -t T -F T*P` fills a tracker (peer i: torrent i % T, port
 * 1 + i / T, 127.0.0.1, every 4th a seeder), then a pregenerated stream of announces like
 * `udpload -t T -P P -n 50` sends (random torrent, port 1..P, events 85/9/3/3 none/started/
 * completed/stopped, left 0 for completed and a quarter of the rest) is copied 64 datagrams at a
 * time into a batch arena's packet slots, as recvmmsg would, and taken through one stage:
 *
 *   copy      the copy alone (the baseline the other stages include)
 *   parse     classifyPacket + readTransactionId + readAnnounceFields
 *   connid    ConnectionIds.check (HalfSipHash of time, address, family)
 *   hash      TorrentKey.read: the info hash's words and HalfSipHash-1-3 (the store's first step)
 *   scrape    store.scrape: hash + torrent probe
 *   store0    store.announce with numwant 0: probe, peer find/insert/remove, no sampling
 *   store50   store.announce with numwant 50: the above plus peer sampling into the reply
 *   handle    UdpTracker.handle: everything per datagram (what the socket loop calls)
 *   answer    BatchArena.answer: handle plus the arena's per-datagram bookkeeping (send headers)
 *
 * Each stage runs `rounds` times over `ops` announces; the best round is reported as wall ns and
 * process CPU ns per announce (CPU time is less disturbed by other processes than wall time, but
 * includes V8's helper threads). The state evolves as the real load makes it (stops remove
 * peers, starts add them back), the same for every stage, and the stream is deterministic: fixed
 * keys and seeds, so `valgrind --tool=callgrind` gives repeatable instruction counts per stage
 * (run a stage twice with different --ops and divide the difference; see docs/perf-study.md).
 *
 * Under `deno bench` (`deno task bench`) each stage is a bench of 1024 announces an iteration.
 *
 * Allocation check: `heap bytes/op` is the median V8 heap growth over windows of 4096 announces
 * (see allocationPerOp); with `--v8-flags=--trace-gc` a stage that allocates shows scavenges.
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { ConnectionIds } from "../src/protocol/connectionId.ts";
import {
  AnnounceFields,
  classifyPacket,
  readAnnounceFields,
  readTransactionId,
} from "../src/protocol/udpPacket.ts";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { TorrentKey } from "../src/store/torrentTable.ts";
import { Tracker } from "../src/servers/tracker.ts";
import { UdpTracker } from "../src/servers/udp/udpTracker.ts";
import {
  ARENA_SIZE,
  BATCH,
  BatchArena,
  PACKET_CAPACITY,
  REPLY_CAPACITY,
} from "../src/servers/udp/udpBatchArena.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    torrents: { type: "string", default: "100000" },
    ports: { type: "string", default: "10" },
    ops: { type: "string", default: "2000000" },
    rounds: { type: "string", default: "5" },
    stage: { type: "string", default: "" },
    marks: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const TORRENTS = Number(values.torrents);
const PORTS = Number(values.ports);
const OPS = Math.ceil(Number(values.ops) / BATCH) * BATCH;
const ROUNDS = Number(values.rounds);
const STREAM = 1 << 18;

function rng(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

// ------------------------------------------------------------------ the tracker, as main.ts builds it

const key = Uint32Array.of(0x01234567, 0x89abcdef);
const config = parseCommandLine([]);
if (config.kind !== "run") throw new Error("config");
const clock = new Clock();
clock.now = 100;
const store = new SwarmTable({
  peerTimeout: config.config.peerTimeout,
  maxTorrents: config.config.maxTorrents,
  maxPeers: config.config.maxPeers,
  whenFull: config.config.whenFull,
  hashKey: key,
  random: rng(42),
});
const tracker = new Tracker(store, clock, config.config);
const ids = new ConnectionIds(key);
const udp = new UdpTracker(tracker, ids, REPLY_CAPACITY);

// ------------------------------------------------------------------ info hashes, fill, stream

/** udpload's pool: any fixed 20 bytes per torrent do; these come from a seeded generator. */
const hashes = new Uint8Array(TORRENTS * 20);
{
  const r = rng(12345);
  const v = new DataView(hashes.buffer);
  for (let i = 0; i < hashes.length; i += 4) v.setUint32(i, r());
}
const LOCALHOST = Uint8Array.of(127, 0, 0, 1);
const reply = new Uint8Array(REPLY_CAPACITY);

function fill(): void {
  const total = TORRENTS * PORTS;
  for (let i = 0; i < total; i++) {
    const t = i % TORRENTS;
    const port = 1 + Math.floor(i / TORRENTS);
    store.announce(hashes, t * 20, 4, LOCALHOST, 0, port, 2, (i & 3) === 0, 0, clock.now, reply, 0);
  }
}

/**
 * One buffer: the batch arena, then STREAM announce datagrams of 98 bytes back to back (with the
 * connection id of 127.0.0.1), so a batch is copied in with copyWithin, which allocates nothing.
 */
const STREAM_AT = ARENA_SIZE;
const arenaBuffer = new ArrayBuffer(ARENA_SIZE + STREAM * 98);
const stream = new Uint8Array(arenaBuffer, STREAM_AT, STREAM * 98);
function buildStream(): void {
  const r = rng(777);
  const v = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const id = new Uint8Array(8);
  ids.issue(clock.now, 4, LOCALHOST, 0, id, 0);
  for (let k = 0; k < STREAM; k++) {
    const o = k * 98;
    stream.set(id, o);
    v.setUint32(o + 8, 1);
    v.setUint32(o + 12, k);
    const t = r() % TORRENTS;
    stream.set(hashes.subarray(t * 20, t * 20 + 20), o + 16);
    for (let b = 36; b < 56; b++) stream[o + b] = r() & 0xff;
    const x = r() % 100;
    const event = x < 85 ? 0 : x < 94 ? 2 : x < 97 ? 1 : 3;
    const left = event === 1 || r() % 4 === 0 ? 0 : 1 + (r() % 1_000_000_000);
    v.setUint32(o + 56, 0);
    v.setUint32(o + 60, left ? 1000 : 1_000_000_000);
    v.setUint32(o + 64, 0);
    v.setUint32(o + 68, left);
    v.setUint32(o + 72, 0);
    v.setUint32(o + 76, r() & 0xffffff);
    v.setUint32(o + 80, event);
    v.setUint32(o + 84, 0);
    v.setUint32(o + 88, r());
    v.setInt32(o + 92, 50);
    v.setUint16(o + 96, 1 + (r() % PORTS));
  }
}

// ------------------------------------------------------------------ the batch arena

const arena = new BatchArena(arenaBuffer, 0, 4);
const arenaBytes = new Uint8Array(arenaBuffer);
const arenaWords = new Uint32Array(arenaBuffer);
const PACKETS = 16384;
const NAMES = 10240;
const slots: Uint8Array[] = [];
const names: Uint8Array[] = [];
for (let i = 0; i < BATCH; i++) {
  slots.push(
    arenaBytes.subarray(PACKETS + i * PACKET_CAPACITY, PACKETS + (i + 1) * PACKET_CAPACITY),
  );
  // sockaddr_in of 127.0.0.1:40000 + i, as recvmmsg leaves it, and msg_len 98.
  const name = NAMES + i * 32;
  arenaBytes[name] = 2;
  arenaBytes[name + 2] = (40000 + i) >> 8;
  arenaBytes[name + 3] = (40000 + i) & 0xff;
  arenaBytes.set(LOCALHOST, name + 4);
  names.push(arenaBytes.subarray(name, name + 32));
  arenaWords[(i * 64 >> 2) + 14] = 98;
  arenaWords[(i * 64 >> 2) + 12] = 0;
}
let cursor = 0;
/** Copies the next BATCH datagrams of the stream into the packet slots, as recvmmsg would. */
function receiveBatch(): void {
  for (let i = 0; i < BATCH; i++) {
    const o = STREAM_AT + cursor * 98;
    arenaBytes.copyWithin(PACKETS + i * PACKET_CAPACITY, o, o + 98);
    cursor = (cursor + 1) & (STREAM - 1);
  }
}

// ------------------------------------------------------------------ stages

let sink = 0;
const announce = new AnnounceFields();
const torrentKey = new TorrentKey(key);
const counters = { truncated: 0, handlerErrors: 0 };

type Stage = (packet: Uint8Array) => number;
const STAGES: Record<string, Stage | null> = {
  copy: (p) => p[97],
  parse: (p) => {
    const action = classifyPacket(p, 98);
    const tid = readTransactionId(p) | 0;
    return readAnnounceFields(p, 98, announce) === null ? action + tid + announce.port : 0;
  },
  connid: (p) => ids.check(clock.now, 4, LOCALHOST, 0, p, 0) ? 1 : 0,
  hash: (p) => {
    torrentKey.read(p, 16);
    return torrentKey.hash;
  },
  scrape: (p) => store.scrape(p, 16) ? 1 : 0,
  store0: (p) => storeAnnounce(p, 0),
  store50: (p) => storeAnnounce(p, 50),
  handle: (p) => udp.handle(p, 98, 4, LOCALHOST, 0, 40000, reply),
  answer: null,
};

function storeAnnounce(p: Uint8Array, numwant: number): number {
  readAnnounceFields(p, 98, announce);
  return store.announce(
    p,
    16,
    4,
    LOCALHOST,
    0,
    announce.port,
    announce.event,
    announce.leftIsZero,
    announce.event === 3 ? 0 : numwant,
    clock.now,
    reply,
    20,
  );
}

function runStage(name: string, ops: number): void {
  const stage = STAGES[name];
  for (let done = 0; done < ops; done += BATCH) {
    receiveBatch();
    if (stage === null) {
      sink = (sink + arena.answer(BATCH, udp, counters)) | 0;
    } else {
      for (let i = 0; i < BATCH; i++) sink = (sink + stage(slots[i])) | 0;
    }
  }
}

function cpuNs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}

interface StageResult {
  stage: string;
  wallNs: number;
  cpuNs: number;
  heapGrowthBytesPerOp: number;
}

/**
 * Heap bytes allocated per announce: the median heap growth over windows of 4096 announces (small
 * enough that most windows see no GC; one that does shows a drop and only moves the median a
 * little). 0 means the stage allocates nothing on the V8 heap.
 */
function allocationPerOp(name: string): number {
  const growth: number[] = [];
  for (let w = 0; w < 41; w++) {
    const h0 = Deno.memoryUsage().heapUsed;
    runStage(name, 4096);
    growth.push(Deno.memoryUsage().heapUsed - h0);
  }
  growth.sort((a, b) => a - b);
  return growth[20] / 4096;
}

function measure(name: string): StageResult {
  runStage(name, Math.min(OPS, 200_000)); // warm up: compiled and steady before timing
  let wall = Infinity;
  let cpu = Infinity;
  const heapGrowth = allocationPerOp(name);
  for (let round = 0; round < ROUNDS; round++) {
    const c0 = cpuNs();
    const t0 = performance.now();
    runStage(name, OPS);
    const t1 = performance.now();
    const c1 = cpuNs();
    wall = Math.min(wall, (t1 - t0) * 1e6 / OPS);
    cpu = Math.min(cpu, (c1 - c0) / OPS);
  }
  return {
    stage: name,
    wallNs: +wall.toFixed(1),
    cpuNs: +cpu.toFixed(1),
    heapGrowthBytesPerOp: +heapGrowth.toFixed(3),
  };
}

// ------------------------------------------------------------------ main

const t0 = performance.now();
fill();
buildStream();
const fillMs = performance.now() - t0;
if (!import.meta.main) {
  // `deno task bench` (deno bench bench/): each stage as a bench of 1024 announces an iteration,
  // so "1.0 ms/iter" reads as about 1 µs per announce.
  for (const name of Object.keys(STAGES)) {
    Deno.bench(`udp path: ${name}, 1M peers in 100k torrents (x1024)`, () => runStage(name, 1024));
  }
} else if (values.marks) {
  // Under callgrind (bench/instructions.sh): each stage warms up, then runs `ops` announces
  // between two profile dumps that `callgrind_control --dump` asks for.
  const dump = (label: string) => {
    new Deno.Command("callgrind_control", { args: ["--dump=" + label, String(Deno.pid)] })
      .outputSync();
  };
  const stages = values.stage !== "" ? values.stage.split(",") : Object.keys(STAGES);
  for (const name of stages) {
    runStage(name, 65536);
    dump("before-" + name);
    runStage(name, OPS);
    dump(name);
  }
} else {
  const results: StageResult[] = [];
  const before = { torrents: store.torrents, peers: store.peers4 };
  for (const name of Object.keys(STAGES)) results.push(measure(name));
  if (values.json) {
    console.log(JSON.stringify({ before, after: { peers: store.peers4 }, fillMs, results }));
  } else {
    console.log(
      `# ${before.peers} peers in ${before.torrents} torrents (filled in ${
        fillMs.toFixed(0)
      } ms); ` +
        `${OPS} announces a round, best of ${ROUNDS}; load ${Deno.loadavg().join(" ")}`,
    );
    console.log("stage     wall ns  cpu ns  minus copy (cpu)  heap bytes/op");
    const copy = results[0].cpuNs;
    for (const r of results) {
      console.log(
        `${r.stage.padEnd(9)} ${String(r.wallNs).padStart(7)} ${String(r.cpuNs).padStart(7)} ` +
          `${(r.cpuNs - copy).toFixed(1).padStart(17)} ${
            String(r.heapGrowthBytesPerOp).padStart(14)
          }`,
      );
    }
    console.log(`# peers after: ${store.peers4} (sink ${sink & 1})`);
  }
}
