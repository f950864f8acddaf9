/**
 * The longest pause a single announce takes while the torrent table grows: fills a store with N
 * new torrents of one peer each (the shape that makes the table resize most) and times every
 * announce. Before incremental resizes the announce that crossed 0.8 load rehashed the whole
 * table (25 ms at 76k torrents, 390 ms at 1.29M: docs/perf-study.md section 5); now each lookup
 * moves a few rows and no announce should take more than a few microseconds more than another.
 *
 *   deno run --allow-all bench/resize_pause.ts [--torrents 1500000] [--top 8]
 *
 * A clean step (CLEAN_BUDGET, as the server's 25 ms timer) runs every 4096 announces: during a
 * resize it moves rows, after one it gives the old table's memory back. Each announce and step is
 * timed in process CPU time (getrusage: user + system, so page faults count) and wall time; on a
 * busy machine a preemption makes wall time long and CPU time not. The slowest by CPU time are
 * listed with whether a resize was in progress.
 */
import process from "node:process";
import { CLEAN_BUDGET, SwarmTable } from "../src/store/swarmTable.ts";

const args = new Map<string, string>();
for (let i = 0; i + 1 < Deno.args.length; i += 2) args.set(Deno.args[i], Deno.args[i + 1]);
const TORRENTS = Number(args.get("--torrents") ?? 1_500_000);
const TOP = Number(args.get("--top") ?? 8);

const store = new SwarmTable({ peerTimeout: 3600, hashKey: Uint32Array.of(1, 2) });
const hash = new Uint8Array(20);
const view = new DataView(hash.buffer);
const address = Uint8Array.of(10, 0, 0, 1);
const out = new Uint8Array(64);

interface Slow {
  cpuMs: number;
  wallMs: number;
  index: number;
  slots: number;
  what: string;
}

/** The TOP slowest by CPU time of one kind of call. */
class Slowest {
  readonly list: Slow[] = [];
  add(cpuMs: number, wallMs: number, index: number, before: boolean): void {
    const list = this.list;
    if (list.length === TOP && cpuMs <= list[TOP - 1].cpuMs) return;
    const what = store.resizing ? "moving rows" : before ? "resize ended" : "-";
    list.push({ cpuMs, wallMs, index, slots: store.slotCount, what });
    list.sort((a, b) => b.cpuMs - a.cpuMs);
    if (list.length > TOP) list.pop();
  }
  print(title: string): void {
    console.log(`${title} (CPU ms, wall ms, announces so far, slots then, resize):`);
    for (const s of this.list) {
      console.log(
        `${s.cpuMs.toFixed(3).padStart(9)} ${s.wallMs.toFixed(3).padStart(9)}  ${
          String(s.index).padStart(8)
        }  ${String(s.slots).padStart(8)}  ${s.what}`,
      );
    }
  }
}

/** Runs `call` and files its CPU and wall time. */
function timed(slowest: Slowest, index: number, call: () => void): void {
  const before = store.resizing;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  call();
  const c1 = process.cpuUsage(c0);
  slowest.add((c1.user + c1.system) / 1000, performance.now() - t0, index, before);
}

const announces = new Slowest();
const cleanSteps = new Slowest();
const growths: string[] = [];
let lastSlots = store.slotCount;
let i = 0;
const announce = () => {
  store.announce(hash, 0, 4, address, 0, 1 + (i & 0x3fff), 2, false, 0, 1, out, 0);
};
const clean = () => {
  store.clean(1, CLEAN_BUDGET);
};
const started = performance.now();
for (; i < TORRENTS; i++) {
  view.setUint32(0, i);
  view.setUint32(16, i * 2654435761);
  timed(announces, i, announce);
  // The server's clean timer: every 25 ms, about 4096 announces at 160k a second.
  if ((i & 4095) === 4095) timed(cleanSteps, i, clean);
  if (store.slotCount !== lastSlots) {
    if (store.resizing) growths.push(`${i} torrents: ${lastSlots} -> ${store.slotCount} slots`);
    lastSlots = store.slotCount;
  }
}
const totalMs = performance.now() - started;
console.log(
  `# ${TORRENTS} torrents in ${totalMs.toFixed(0)} ms (${
    (totalMs * 1e6 / TORRENTS).toFixed(0)
  } ns an announce, timing included); load ${Deno.loadavg().map((l) => l.toFixed(1)).join(" ")}`,
);
console.log(`# table growths started (slots: new + old while rows move):`);
for (const g of growths) console.log(`#   ${g}`);
announces.print("slowest announces");
cleanSteps.print("slowest clean steps (CLEAN_BUDGET every 4096 announces)");
