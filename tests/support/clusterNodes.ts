/**
 * ClusterSync nodes for tests against a real redis-server: each over a small Map-backed store
 * (`FakeStore`, which follows the real store's rules for what it is used for here), with a clock
 * the test sets, and its log lines collected.
 */
import { opForEvent, setPublishTime } from "../../src/cluster/changeBatch.ts";
import { BatchMac } from "../../src/cluster/batchMac.ts";
import { type ClusterStore, ClusterSync } from "../../src/cluster/redisCluster.ts";
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

export interface FakePeer {
  seeder: boolean;
  lastSeen: number;
}

/**
 * A Map-backed ClusterStore that counts completions as the real store does: a "completed"
 * announce counts when it makes the peer a seeder (a new peer, or a leecher until then), so a
 * repeated one, or one with bytes left, does not (checked against SwarmTable in
 * cluster_sync_test.ts).
 */
export class FakeStore implements ClusterStore {
  readonly peers = new Map<string, FakePeer>();
  readonly downloaded = new Map<string, number>();
  /** When each peer key was last written, for propagation timing. */
  readonly writtenAt = new Map<string, number>();

  announce(
    infoHash: Uint8Array,
    hashOffset: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    event: number,
    seeder: boolean,
    _numwant: number,
    now: number,
    _out: Uint8Array,
    _outOffset: number,
  ): number {
    const hash = hex(infoHash, hashOffset, 20);
    const key = `${hash}|${family}|${hex(address, addressOffset, family === 6 ? 16 : 4)}|${port}`;
    this.writtenAt.set(key, performance.now());
    if (event === 3) {
      this.peers.delete(key);
      return 0;
    }
    const peer = this.peers.get(key);
    if (event === 1 && seeder && peer?.seeder !== true) {
      this.downloaded.set(hash, (this.downloaded.get(hash) ?? 0) + 1);
    }
    this.peers.set(key, { seeder, lastSeen: Math.max(peer?.lastSeen ?? -Infinity, now) });
    return 0;
  }

  /** Sorted peer keys, for comparing stores. */
  snapshot(): string {
    return [...this.peers.entries()].map(([key, peer]) => `${key}|${peer.seeder}`).sort().join(
      "\n",
    );
  }

  scrape(infoHash: Uint8Array): { complete: number; incomplete: number; downloaded: number } {
    const hash = hex(infoHash, 0, 20);
    let complete = 0, incomplete = 0;
    for (const [key, peer] of this.peers) {
      if (!key.startsWith(hash)) continue;
      if (peer.seeder) complete++;
      else incomplete++;
    }
    return { complete, incomplete, downloaded: this.downloaded.get(hash) ?? 0 };
  }
}

export interface TestNode {
  name: string;
  store: FakeStore;
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
  } = {},
): TestNode {
  const store = new FakeStore();
  const clock = { now: options.now ?? 1000 };
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

/** A batch stamped now and sealed with the tests' secret, as a node of cluster "test" would. */
export function sealed(batch: Uint8Array, secret: Uint8Array | null = SECRET): Uint8Array {
  setPublishTime(batch, Date.now());
  new BatchMac(secret, "test").seal(batch);
  return batch;
}

export async function stopAll(nodes: TestNode[], redis: RedisServer): Promise<void> {
  for (const node of nodes) await node.sync.stop();
  await redis.stop();
}
