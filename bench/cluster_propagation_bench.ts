/**
 * Cluster propagation delay against its bars (moved here from tests/cluster_sync_test.ts, which
 * keeps the behaviour: changes reach every node, within generous deadlines).
 *
 *   deno bench --allow-all bench/cluster_propagation_bench.ts
 *
 * Two ClusterSync nodes on a throw-away redis-server (skipped without one), flushing every
 * 200 ms (the default): 300 announces recorded on A, 3-9 ms apart; each one's delay is from
 * its record on A to its arrival in B's store. Bars: p50 within 500 ms, p99 within 1000 ms.
 */
import { opForEvent } from "../src/cluster/changeBatch.ts";
import { type ClusterStore, ClusterSync } from "../src/cluster/redisCluster.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { haveRedisServer, RedisServer } from "../tests/support/redisServer.ts";
import { checkBars, quantile } from "./bar.ts";

const SAMPLES = 300;
const PORT = 4000;

/** A SwarmTable that notes when each peer (by the last two address bytes) arrives. */
class TimedStore extends SwarmTable {
  readonly arrivedAt = new Map<number, number>();

  constructor() {
    super({ peerTimeout: 300 });
  }

  override announce(
    infoHash: Uint8Array,
    hashOffset: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    event: number,
    seeder: boolean,
    numwant: number,
    now: number,
    out: Uint8Array,
    outOffset: number,
  ): number {
    this.#arrived(address, addressOffset);
    const a = address;
    const o = addressOffset;
    return super.announce(
      infoHash,
      hashOffset,
      family,
      a,
      o,
      port,
      event,
      seeder,
      numwant,
      now,
      out,
      outOffset,
    );
  }

  override refreshPeer(
    infoHash: Uint8Array,
    hashOffset: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
    lastSeen: number,
  ): boolean {
    this.#arrived(address, addressOffset);
    const a = address;
    return super.refreshPeer(
      infoHash,
      hashOffset,
      family,
      a,
      addressOffset,
      port,
      seeder,
      lastSeen,
    );
  }

  #arrived(address: Uint8Array, at: number): void {
    const peer = (address[at + 2] << 8) | address[at + 3];
    if (!this.arrivedAt.has(peer)) this.arrivedAt.set(peer, performance.now());
  }
}

function node(name: string, url: string, store: ClusterStore): ClusterSync {
  return new ClusterSync({
    url,
    name: "bench",
    nodeId: name,
    peerTimeout: 300,
    store,
    clock: { now: 1000 },
    log: (line) => console.log(`${name}: ${line}`),
    flushIntervalMs: 200,
    blockMs: 500,
    commandTimeoutMs: 1000,
    secret: new TextEncoder().encode("the propagation bench's cluster secret"),
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.bench({
  name: "bar: cluster propagation delay between two nodes (p50, p99)",
  ignore: !(await haveRedisServer()),
  n: 1,
  warmup: 0,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const received = new TimedStore();
    const a = node("a", redis.url, new SwarmTable({ peerTimeout: 300 }));
    const b = node("b", redis.url, received);
    try {
      await a.start();
      await b.start();
      const sentAt: number[] = [];
      const hashes = [1, 2, 3].map((seed) =>
        Uint8Array.from({ length: 20 }, (_, i) => (seed * 37 + i) & 0xff)
      );
      for (let i = 0; i < SAMPLES; i++) {
        const address = Uint8Array.of(10, 0, i >> 8, i & 0xff);
        sentAt.push(performance.now());
        a.recorder.record(opForEvent(2), hashes[i % 3], 0, 4, address, 0, PORT, false);
        await sleep(3 + (i % 7));
      }
      const deadline = performance.now() + 5000;
      while (received.arrivedAt.size < SAMPLES && performance.now() < deadline) await sleep(10);
      if (received.arrivedAt.size < SAMPLES) {
        throw new Error(`${received.arrivedAt.size} of ${SAMPLES} announces arrived in 5 s`);
      }
      const delays = sentAt.map((sent, i) => received.arrivedAt.get(i)! - sent);
      checkBars([
        { what: "p50 delay", value: quantile(delays, 0.5), unit: "ms", kind: "max", bar: 500 },
        { what: "p99 delay", value: quantile(delays, 0.99), unit: "ms", kind: "max", bar: 1000 },
      ]);
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  },
});
