/**
 * Big swarms against their timing bars (moved here from tests/store_swarm_test.ts and
 * tests/store_collision_test.ts, which keep the behaviour: no long probe run in a peer set).
 *
 *   deno bench --allow-all bench/swarm_scale_bench.ts
 *
 * - A refresh announce of a stored peer in a 100k-peer swarm: at most 20 µs, and at most five
 *   times (plus 1 µs) what it costs in a 1k-peer swarm (50k refreshes each, after a warm-up).
 * - 40k IPv6 peers of one /64 that differ only in the low word and 16 ports join one swarm in
 *   at most 2 s (a peer hash blind to either would make that quadratic).
 */
import { SwarmTable } from "../src/store/swarmTable.ts";
import { checkBars } from "./bar.ts";

const NONE = 0, STARTED = 2;

function v4(i: number, out: Uint8Array): Uint8Array {
  out[0] = 10;
  out[1] = i >> 16;
  out[2] = i >> 8;
  out[3] = i;
  return out;
}

/** Average µs per refresh announce of `rounds` stored peers of a `peers`-peer swarm. */
function refreshMicros(
  table: SwarmTable,
  ih: Uint8Array,
  peers: number,
  rounds: number,
  seederEvery3: boolean,
): number {
  const address = new Uint8Array(4);
  const out = new Uint8Array(6 * 50);
  const start = performance.now();
  for (let r = 0; r < rounds; r++) {
    const i = (r * 7919) % peers;
    const seeder = seederEvery3 && i % 3 === 0;
    table.announce(ih, 0, 4, v4(i, address), 0, 6881, NONE, seeder, 50, 2, out, 0);
  }
  return (performance.now() - start) * 1000 / rounds;
}

Deno.bench({
  name: "bar: refresh announce in a 100k-peer swarm vs a 1k-peer one",
  n: 1,
  warmup: 0,
  fn() {
    const table = new SwarmTable({ peerTimeout: 1000 });
    const big = new Uint8Array(20).fill(9);
    const small = new Uint8Array(20).fill(8);
    const address = new Uint8Array(4);
    const out = new Uint8Array(0);
    for (let i = 0; i < 1000; i++) {
      table.announce(small, 0, 4, v4(i, address), 0, 6881, STARTED, false, 0, 1, out, 0);
    }
    for (let i = 0; i < 100_000; i++) {
      table.announce(big, 0, 4, v4(i, address), 0, 6881, STARTED, i % 3 === 0, 0, 1, out, 0);
    }
    refreshMicros(table, big, 100_000, 20_000, true); // warm up
    const smallMicros = refreshMicros(table, small, 1000, 50_000, false);
    const bigMicros = refreshMicros(table, big, 100_000, 50_000, true);
    checkBars([
      { what: "refresh, 100k swarm", value: bigMicros, unit: "µs", kind: "max", bar: 20 },
      {
        what: "refresh, 100k swarm, against 5 × 1k swarm + 1",
        value: bigMicros,
        unit: "µs",
        kind: "max",
        bar: 5 * smallMicros + 1,
      },
    ]);
  },
});

Deno.bench({
  name: "bar: 40k IPv6 peers sharing a /64 and 16 ports join one swarm",
  n: 1,
  warmup: 0,
  fn() {
    const table = new SwarmTable({ peerTimeout: 100 });
    const ih = new Uint8Array(20).fill(3);
    const address = new Uint8Array(16);
    const view = new DataView(address.buffer);
    const out = new Uint8Array(0);
    const start = performance.now();
    for (let i = 0; i < 40_000; i++) {
      view.setUint32(12, i >> 4);
      table.announce(ih, 0, 6, address, 0, 1 + (i & 15), STARTED, false, 0, 1, out, 0);
    }
    const ms = performance.now() - start;
    if (table.peers6 !== 40_000) throw new Error(`${table.peers6} peers stored, not 40000`);
    checkBars([{ what: "40k inserts", value: ms, unit: "ms", kind: "max", bar: 2000 }]);
  },
});
