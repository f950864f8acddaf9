/**
 * Measures the state file with 1M peers in several swarm shapes: save in one go, sliced save
 * (total time and the longest slice, i.e. the longest event-loop pause), file write, checking
 * and restoring. One-shot figures for docs/performance.md ("State file"), the median of three runs each:
 *
 *   deno run --allow-all bench/state_restore.ts
 */
import { SwarmTable } from "../src/store/swarmTable.ts";
import { nextTurn, writeStateFile } from "../src/persist/stateFile.ts";
import { checkState, encodeState, joinChunks, restoreState } from "../src/persist/stateFormat.ts";

const PEER_TIMEOUT = 2700;
const NO_PEERS = new Uint8Array(0);

/** `torrents` swarms of `perTorrent` peers, one in five over IPv6, a third seeders. */
function build(torrents: number, perTorrent: number): SwarmTable {
  const store = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
  const hash = new Uint8Array(20);
  const hashView = new DataView(hash.buffer);
  const address = new Uint8Array(16);
  const addressView = new DataView(address.buffer);
  for (let t = 0; t < torrents; t++) {
    hashView.setUint32(0, Math.imul(t, 0x9e3779b1) >>> 0);
    hashView.setUint32(4, t);
    for (let p = 0; p < perTorrent; p++) {
      const family = (p + t) % 5 === 0 ? 6 : 4;
      addressView.setUint32(0, 0x0a000000 + p);
      addressView.setUint32(12, t);
      const seeder = p % 3 === 0;
      const now = 1 + (p % 600);
      store.announce(
        hash,
        0,
        family,
        address,
        0,
        1024 + (p % 60000),
        2,
        seeder,
        0,
        now,
        NO_PEERS,
        0,
      );
    }
  }
  return store;
}

function median(values: number[]): number {
  return values.sort((a, b) => a - b)[values.length >> 1];
}

const path = await Deno.makeTempFile({ prefix: "otter-state-bench-" });
try {
  console.log("shape               bytes     save  sliced (longest)  write  check  restore");
  for (
    const [torrents, perTorrent] of [[1_000_000, 1], [100_000, 10], [1_000, 1_000], [
      10,
      100_000,
    ]]
  ) {
    const store = build(torrents, perTorrent);
    const save: number[] = [];
    const sliced: number[] = [];
    const longest: number[] = [];
    const write: number[] = [];
    const check: number[] = [];
    const restore: number[] = [];
    let bytes = 0;
    for (let run = 0; run < 3; run++) {
      let t0 = performance.now();
      const encoded = await encodeState(store, 700, Date.now());
      save.push(performance.now() - t0);
      bytes = encoded.bytes;

      let slice = 0;
      let last = performance.now();
      const pause = async () => {
        slice = Math.max(slice, performance.now() - last);
        await nextTurn();
        last = performance.now();
      };
      t0 = performance.now();
      await encodeState(store, 700, Date.now(), pause);
      slice = Math.max(slice, performance.now() - last);
      sliced.push(performance.now() - t0);
      longest.push(slice);

      t0 = performance.now();
      await writeStateFile(path, encoded.chunks);
      write.push(performance.now() - t0);

      const file = joinChunks(encoded.chunks);
      t0 = performance.now();
      const summary = checkState(file);
      check.push(performance.now() - t0);
      if (typeof summary === "string") throw new Error(summary);
      const fresh = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
      t0 = performance.now();
      const counts = restoreState(file, fresh, 1, 0, PEER_TIMEOUT);
      restore.push(performance.now() - t0);
      if (counts.peers !== store.peers4 + store.peers6) throw new Error("lost peers");
    }
    const ms = (values: number[]) => `${median(values).toFixed(0)} ms`.padStart(7);
    console.log(
      `${`${torrents} x ${perTorrent}`.padEnd(17)} ${(bytes / 1e6).toFixed(1).padStart(5)} MB` +
        ` ${ms(save)} ${ms(sliced)} (${median(longest).toFixed(1).padStart(4)} ms)` +
        ` ${ms(write)} ${ms(check)} ${ms(restore)}`,
    );
  }
} finally {
  await Deno.remove(path);
}
