/**
 * What expiry costs between passes, paced by time (`cleanFor`, the server's timer since issue 13)
 * against the fixed CLEAN_BUDGET step every 25 ms it replaced: for each swarm shape, the length
 * of a pass in simulated time and the process CPU time spent per simulated second (nothing
 * expires: this is the steady cost of looking).
 *
 *   deno run --allow-all bench/clean_pace.ts
 */
import process from "node:process";
import { CLEAN_BUDGET, CLEAN_INTERVAL_MS, SwarmTable } from "../src/store/swarmTable.ts";

const SHAPES = [[3000, 1], [60000, 2], [100000, 10], [1000, 1000], [40, 5000]];
const out = new Uint8Array(64);

function hashOf(n: number): Uint8Array {
  const ih = new Uint8Array(20);
  new DataView(ih.buffer).setUint32(0, n);
  ih[19] = 0x5a;
  return ih;
}

/** Simulated seconds of one whole pass and CPU ms per simulated second, stepping `step`. */
function measure(table: SwarmTable, step: () => void): { passS: number; cpuMsPerS: number } {
  const first = table.cleanPasses + 1;
  while (table.cleanPasses < first) step();
  let elapsedMs = 0;
  const c0 = process.cpuUsage();
  while (table.cleanPasses < first + 1) {
    step();
    elapsedMs += CLEAN_INTERVAL_MS;
  }
  const cpu = process.cpuUsage(c0);
  return { passS: elapsedMs / 1000, cpuMsPerS: (cpu.user + cpu.system) / elapsedMs };
}

console.log(`# load ${Deno.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
console.log("shape          paced: pass s  CPU ms/s   fixed: pass s  CPU ms/s");
for (const [torrents, peersEach] of SHAPES) {
  const table = new SwarmTable({ peerTimeout: 3600, hashKey: Uint32Array.of(3, 4) });
  const address = new Uint8Array(4);
  for (let t = 0; t < torrents; t++) {
    for (let p = 0; p < peersEach; p++) {
      new DataView(address.buffer).setUint32(0, 0x0a000000 + p);
      table.announce(hashOf(t), 0, 4, address, 0, 6881, 2, false, 0, 10, out, 0);
    }
  }
  table.finishResize();
  const paced = measure(table, () => table.cleanFor(20, CLEAN_INTERVAL_MS));
  const fixed = measure(table, () => table.clean(20, CLEAN_BUDGET));
  console.log(
    `${`${torrents}x${peersEach}`.padEnd(14)} ${paced.passS.toFixed(1).padStart(13)} ${
      paced.cpuMsPerS.toFixed(2).padStart(9)
    } ${fixed.passS.toFixed(2).padStart(15)} ${fixed.cpuMsPerS.toFixed(2).padStart(9)}`,
  );
}
