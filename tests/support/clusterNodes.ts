/**
 * ClusterSync nodes for tests against a real redis-server: each over a real SwarmTable
 * (`TestStore`, which lists its peers for the tests), with a clock the test sets, and its log
 * lines collected.
 */
import {
  batchInstanceKey,
  opForEvent,
  setPublishTime,
  setSequence,
} from "../../src/cluster/changeBatch.ts";
import { ClusterKeys } from "../../src/cluster/clusterKeys.ts";
import { BatchMac } from "../../src/cluster/batchMac.ts";
import { ClusterSync } from "../../src/cluster/redisCluster.ts";
import type { SnapshotOptions } from "../../src/cluster/snapshotStore.ts";
import type { WsPeerKeys } from "../../src/cluster/wsPeerKeys.ts";
import { FAMILY_WS, SwarmTable } from "../../src/store/swarmTable.ts";
import type { RedisServer } from "./redisServer.ts";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * How long a test waits for something that should happen (a change spreading, a reconnect) before
 * it fails: generous, since a loaded machine is slow, and a wait ends as soon as its condition
 * holds. How fast things happen is bench/cluster_propagation_bench.ts's measurement.
 */
export const WAIT_MS = 30_000;

/** Waits until `condition()` holds, polling every 10 ms; returns the milliseconds it took. */
export async function waitFor(
  what: string,
  condition: () => boolean,
  ms = WAIT_MS,
): Promise<number> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(10);
  }
  return performance.now() - start;
}

export function hex(bytes: Uint8Array, at: number, length: number): string {
  let text = "";
  for (let i = at; i < at + length; i++) text += bytes[i].toString(16).padStart(2, "0");
  return text;
}

export interface StoredPeer {
  seeder: boolean;
  lastSeen: number;
}

/**
 * The tests' node store: a real SwarmTable, with what the tests look at: its peers by key
 * (`hash|family|address|port`, family 1 for WebSocket peers), a sorted listing to compare stores, and one torrent's counts.
 */
export class TestStore extends SwarmTable {
  /** Every peer held, by key. */
  get peerMap(): Map<string, StoredPeer> {
    const peers = new Map<string, StoredPeer>();
    const hash = new Uint8Array(20);
    for (let slot = 0; slot < this.slotCount; slot++) {
      if (!this.slotInUse(slot)) continue;
      this.copyInfoHash(slot, hash, 0);
      const torrent = hex(hash, 0, 20);
      for (const family of [4, 6, FAMILY_WS] as const) {
        this.forEachPeer(slot, family, (address, at, port, seeder, lastSeen) => {
          const key = `${torrent}|${family}|${hex(address, at, family === 6 ? 16 : 4)}|${port}`;
          peers.set(key, { seeder, lastSeen });
        });
      }
    }
    return peers;
  }

  /** Sorted peer keys with their seeder flags, for comparing stores. */
  snapshot(): string {
    return [...this.peerMap.entries()].map(([key, peer]) => `${key}|${peer.seeder}`).sort().join(
      "\n",
    );
  }

  /** One torrent's counts, as a scrape gives them. */
  counts(infoHash: Uint8Array): { complete: number; incomplete: number; downloaded: number } {
    this.scrape(infoHash, 0);
    const { complete, incomplete, downloaded } = this.result;
    return { complete, incomplete, downloaded };
  }
}

export interface TestNode {
  name: string;
  store: TestStore;
  sync: ClusterSync;
  clock: { now: number };
  logs: string[];
}

/** The cluster secret of the tests' nodes. */
export const SECRET = new TextEncoder().encode("the test cluster's shared secret");

export function makeNode(
  name: string,
  url: string,
  options: {
    peerTimeout?: number;
    now?: number;
    flushIntervalMs?: number;
    commandTimeoutMs?: number;
    secret?: Uint8Array | null;
    infoPollMs?: number;
    snapshots?: SnapshotOptions;
    shards?: number;
    wsKeys?: WsPeerKeys;
    relaySignals?: boolean;
    signalsPerSecond?: number;
  } = {},
): TestNode {
  const store = new TestStore({ peerTimeout: options.peerTimeout ?? 300 });
  // Ticks once a second from `now`, as the tracker's clock does.
  const startedAt = performance.now();
  const start = options.now ?? 1000;
  const clock = {
    get now(): number {
      return start + Math.floor((performance.now() - startedAt) / 1000);
    },
  };
  const logs: string[] = [];
  const sync = new ClusterSync({
    url,
    name: "test",
    nodeId: name,
    peerTimeout: options.peerTimeout ?? 300,
    secret: options.secret === undefined ? SECRET : options.secret,
    store,
    clock,
    log: (line) => logs.push(line),
    flushIntervalMs: options.flushIntervalMs ?? 100,
    blockMs: 500,
    // Long enough that a loaded machine's stalls do not pass for a lost Redis (and log a line).
    commandTimeoutMs: options.commandTimeoutMs ?? 5000,
    minBackoffMs: 100,
    maxBackoffMs: 500,
    infoPollMs: options.infoPollMs,
    snapshots: options.snapshots,
    shards: options.shards,
    wsKeys: options.wsKeys,
    relaySignals: options.relaySignals,
    signalsPerSecond: options.signalsPerSecond,
  });
  return { name, store, sync, clock, logs };
}

export function infoHash(seed: number): Uint8Array {
  return Uint8Array.from({ length: 20 }, (_, i) => (seed * 37 + i) & 0xff);
}

export function ipv4(n: number): Uint8Array {
  return Uint8Array.of(10, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

export function ipv6(n: number): Uint8Array {
  const address = new Uint8Array(16);
  address.set([0x20, 0x01, 0x0d, 0xb8]);
  new DataView(address.buffer).setUint32(12, n);
  return address;
}

/** What a server does for one accepted announce: store it locally, then record the change. */
export function announce(
  node: TestNode,
  hash: Uint8Array,
  address: Uint8Array,
  port: number,
  event: number,
  seeder: boolean,
): void {
  const family = address.length === 16 ? 6 : 4;
  const out = new Uint8Array(0);
  node.store.announce(hash, 0, family, address, 0, port, event, seeder, 50, node.clock.now, out, 0);
  node.sync.recorder.record(opForEvent(event), hash, 0, family, address, 0, port, seeder);
}

export const NONE_REJECTED = { malformed: 0, oversized: 0, bad_mac: 0, replayed: 0 };

/** The keys of the tests' cluster ("test"). */
export const KEYS = new ClusterKeys("test");

const sequences = new Map<string, number>();

/**
 * A batch stamped now, given its origin's next sequence number, and sealed with the tests'
 * secret, as a node of cluster "test" would publish it.
 */
export function sealed(batch: Uint8Array, secret: Uint8Array | null = SECRET): Uint8Array {
  const origin = batchInstanceKey(batch);
  const sequence = (sequences.get(origin) ?? 0) + 1;
  sequences.set(origin, sequence);
  setSequence(batch, sequence);
  setPublishTime(batch, Date.now());
  new BatchMac(secret, "test").seal(batch);
  return batch;
}

/** A stranger's instance. */
export const STRANGER = "57a4e4c0de000001";

/**
 * Lists an instance in shard 0's registry of the tests' cluster, as a node does when it
 * publishes, so every node reads its stream; returns that stream's key. What a stranger who can
 * write to Redis would do to reach the nodes.
 */
export async function strangerStream(
  raw: { sendCommand(args: string[]): Promise<unknown> },
  instance = STRANGER,
): Promise<string> {
  await raw.sendCommand(["ZADD", KEYS.nodes(0), String(Date.now()), instance]);
  await raw.sendCommand(["XADD", KEYS.hello(0), "*", "i", instance]);
  return KEYS.nodeStream(0, instance);
}

export async function stopAll(nodes: TestNode[], redis: RedisServer): Promise<void> {
  for (const node of nodes) await node.sync.stop();
  await redis.stop();
}
