/**
 * Reads one shard of the cluster: the other node instances' streams of that shard, merged in
 * entry-id order, over one bounded connection (streamReader.ts) to the shard's master. A node's
 * own stream is never read: its changes are in its store already, so Redis sends each batch to
 * the other nodes only (egress (N-1) x ingress instead of N x).
 *
 * Instances are found in the shard's registry (a sorted set scored by each one's last publish)
 * when the reader connects, every REGISTRY_EVERY_MS, and at once when the shard's `hello` stream,
 * read in the same XREAD, gets an entry (a new instance says hello before it publishes). An
 * instance silent for a peer timeout is dropped: its batches would be stale.
 *
 * Order: all streams of a shard live on one master, so their entry ids come from one clock and
 * one command sequence, and every reader merging them by id (ties by key) applies them in the
 * same order. When a stream returned COUNT entries, more may follow it: only entries up to the
 * smallest last id of such streams are applied, the rest are read again. This node's own late
 * batches (published after an outage: redisCluster.ts) are kept in memory with the id their XADD
 * got, and applied at that id's place once a read sent after their XADD returned has covered it.
 *
 * Position: a read that returned fewer than COUNT entries of every stream saw everything the
 * shard held when it ran; `positionId()` is that moment (on Redis's clock, minus a second for
 * ids of one millisecond on two streams, or an estimate of Redis's clock a little off): every
 * entry up to it has been applied, which is where a snapshot taken now lets a joiner start.
 *
 * Redirections (Redis Cluster): MOVED makes the reader reconnect to the master it names; ASK is
 * answered on a connection to the target after ASKING, for that one command; TRYAGAIN waits
 * briefly. Anything else ends the session (the sync reconnects everything with backoff).
 */
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import { MAX_BATCH_BYTES } from "./changeBatch.ts";
import { BATCH_FIELD } from "./batchGate.ts";
import type { ClusterKeys } from "./clusterKeys.ts";
import type { StreamApplier } from "./streamApply.ts";
import { compareStreamIds, withTimeout } from "./redisCommands.ts";
import { StreamReaderConnection, type StreamReaderOptions } from "./streamReader.ts";
import type { RedisAddress } from "./redisLink.ts";

/** Entries per XREAD over all streams: each holds at most MAX_BATCH_BYTES (about 5 MB). */
const READ_ENTRIES = 32;
/** Other instances read per shard; past it the least recently heard are left out. */
export const MAX_NODES = 64;
/** How often the registry is read even without a hello. */
const REGISTRY_EVERY_MS = 5000;
/** Entries kept in the hello stream. */
export const HELLO_LENGTH = 64;
/** Margin taken off a complete read's time for `positionId`. */
const POSITION_MARGIN_MS = 1000;
const MAX_REDIRECTS = 5;

const decoder = new TextDecoder();
/** The field name as the reader gives it, for own late batches handed to the gate. */
const FIELD_NAME = new TextEncoder().encode(BATCH_FIELD);

export interface ShardReaderOptions {
  shard: number;
  keys: ClusterKeys;
  /** This node's instance (16 hex digits): its own stream is not read. */
  instance: string;
  applier: StreamApplier;
  peerTimeoutMs: number;
  blockMs: number;
  commandTimeoutMs: number;
  /** Redis's clock now, as the sync reckons it. */
  redisNowMs: () => number;
  /** Bytes the readers received, for /metrics. */
  counters: { readBytes: number };
  /** A URL for a reading connection to `address` (credentials and TLS of the --cluster URL). */
  urlFor: (address: RedisAddress) => string;
}

interface OwnLate {
  id: string;
  fields: unknown[];
  /** The read serial when its XADD was acknowledged: reads sent later cover it. */
  serial: number;
}

interface Entry {
  id: string;
  key: string;
  fields: unknown;
}

export class ShardReader {
  readonly shard: number;
  /** Other instances' streams: instance → id of the last entry applied from it. */
  readonly streams = new Map<string, string>();
  /** Where a stream of an instance that appears later starts ("0-0": all it holds). */
  startForNew = "0-0";
  readonly #options: ShardReaderOptions;
  #helloId = "0-0";
  #conn: StreamReaderConnection | null = null;
  #address: RedisAddress | null = null;
  #registryReadAt = -Infinity;
  #registryDue = true;
  #serial = 0;
  #ownLate: OwnLate[] = [];
  /** Redis's clock when the last complete read was sent (0: none yet). */
  #completeAtMs = 0;
  /** Whether a read has returned everything the shard held (start() waits for it). */
  caughtUp = false;
  /** Bytes this reader received (snapshots are due as a shard's streams grow). */
  bytesRead = 0;
  /**
   * Set when another node's entries went missing before this reader got them (a sequence gap:
   * trimmed away while this node was gone, or lost by Redis); the sync then loads the shard's
   * snapshot over the store and clears it.
   */
  gapSeen = false;

  constructor(options: ShardReaderOptions) {
    this.shard = options.shard;
    this.#options = options;
  }

  /** Connects to the shard's master. */
  async connect(address: RedisAddress): Promise<void> {
    this.#close();
    const conn = new StreamReaderConnection(this.#options.urlFor(address), {
      maxValueBytes: MAX_BATCH_BYTES,
      keepElements: [1, 2, READ_ENTRIES, 2, 2],
    });
    this.#conn = conn;
    this.#address = address;
    await withTimeout(conn.connect(), this.#options.commandTimeoutMs, conn);
    this.#registryDue = true;
    // Up to date again only after a complete read on this connection: until then no snapshot is
    // written from this node's store (it may lack what was published while it was away).
    this.caughtUp = false;
    this.#completeAtMs = 0;
  }

  /** Closes the connection; a read in flight rejects. */
  destroy(): void {
    this.#close();
  }

  #close(): void {
    this.#conn?.destroy();
    this.#conn = null;
  }

  /** Where every entry up to it has been applied (see the module comment); "0-0" if unknown. */
  positionId(): string {
    const ms = Math.floor(this.#completeAtMs - POSITION_MARGIN_MS);
    return ms > 0 ? `${ms}-0` : "0-0";
  }

  /** Starts every known and future stream at `id` (a snapshot's position, or "0-0"). */
  resetTo(id: string): void {
    for (const instance of this.streams.keys()) this.streams.set(instance, id);
    this.startForNew = id;
    this.#helloId = "0-0";
    this.#completeAtMs = 0;
    this.#registryDue = true;
  }

  /** Keeps one of this node's own late batches, acknowledged with `id`, to apply in order. */
  addOwnLate(id: string, batch: Uint8Array): void {
    this.#ownLate.push({ id, fields: [FIELD_NAME, batch], serial: this.#serial });
  }

  /** Own late batches not applied yet (dropped when their stream was lost). */
  get ownLatePending(): number {
    return this.#ownLate.length;
  }

  dropOwnLate(): void {
    this.#ownLate = [];
  }

  /**
   * Ids of the last entry of each known stream that ends before what was read from it (Redis
   * restarted without its data, or a failover lost entries): those streams are read again from
   * their start.
   */
  async checkTails(): Promise<number> {
    let reset = 0;
    for (const [instance, lastId] of this.streams) {
      if (lastId === "0-0") continue;
      const key = this.#options.keys.nodeStream(this.shard, instance);
      const reply = await this.#command(["XREVRANGE", key, "+", "-", "COUNT", "1"], null);
      if (!Array.isArray(reply)) throw new Error("unexpected XREVRANGE reply");
      const first = reply[0];
      const tail = Array.isArray(first) && first[0] instanceof Uint8Array
        ? decoder.decode(first[0])
        : "0-0";
      if (compareStreamIds(tail, lastId) >= 0) continue;
      this.streams.set(instance, "0-0");
      reset++;
    }
    return reset;
  }

  /** Reads the registry: streams of instances heard within a peer timeout, newest first. */
  async #readRegistry(): Promise<void> {
    const { keys, shard, instance: self, peerTimeoutMs, redisNowMs } = this.#options;
    const since = Math.floor(redisNowMs() - peerTimeoutMs);
    const reply = await this.#command([
      "ZREVRANGEBYSCORE",
      keys.nodes(shard),
      "+inf",
      `(${since}`,
      "LIMIT",
      "0",
      String(MAX_NODES + 1),
    ], { maxValueBytes: 64, keepElements: [MAX_NODES + 1] });
    if (!Array.isArray(reply)) throw new Error("unexpected ZREVRANGEBYSCORE reply");
    const listed = new Set<string>();
    for (const member of reply) {
      if (!(member instanceof Uint8Array)) continue;
      const instance = decoder.decode(member);
      if (instance === self || !/^[0-9a-f]{16}$/.test(instance)) continue;
      if (listed.size >= MAX_NODES) break;
      listed.add(instance);
      if (!this.streams.has(instance)) this.streams.set(instance, this.startForNew);
    }
    for (const instance of this.streams.keys()) {
      if (!listed.has(instance)) this.streams.delete(instance);
    }
    // Streams listed at a join start at the snapshot's position; any that appear later, from
    // their start.
    this.startForNew = "0-0";
    this.#registryReadAt = performance.now();
    this.#registryDue = false;
  }

  /**
   * One XREAD over the hello stream and the other instances' streams (blocking for new entries
   * when `block`), its entries applied in id order. Returns whether the read was complete (no
   * stream returned its full count).
   */
  async readOnce(block: boolean): Promise<boolean> {
    const options = this.#options;
    if (this.#registryDue || performance.now() - this.#registryReadAt > REGISTRY_EVERY_MS) {
      await this.#readRegistry();
    }
    const instances = [...this.streams.keys()];
    const count = Math.max(2, Math.floor(READ_ENTRIES / Math.max(1, instances.length)));
    const keys = [
      options.keys.hello(this.shard),
      ...instances.map((i) => options.keys.nodeStream(this.shard, i)),
    ];
    const ids = [this.#helloId, ...instances.map((i) => this.streams.get(i)!)];
    const args = ["XREAD", "COUNT", String(count)];
    if (block) args.push("BLOCK", String(options.blockMs));
    args.push("STREAMS", ...keys, ...ids);
    const serial = ++this.#serial;
    const sentAtMs = options.redisNowMs();
    const reply = await this.#command(args, {
      maxValueBytes: MAX_BATCH_BYTES,
      keepElements: [keys.length, 2, count, 2, 2],
    }, block ? options.blockMs : 0);
    const redisNowMs = options.redisNowMs();
    const byKey = parseXread(reply);
    // Hello entries: an instance has joined; read the registry before the next XREAD (and this
    // read is not complete: it did not name the new instance's stream).
    const hello = byKey.get(keys[0]);
    const helloSeen = hello !== undefined && hello.length > 0;
    if (helloSeen) {
      this.#helloId = hello[hello.length - 1].id;
      this.#registryDue = true;
    }
    // The horizon: entries past the smallest last id of a stream that returned `count`.
    let horizon: string | null = null;
    const entries: Entry[] = [];
    for (let i = 1; i < keys.length; i++) {
      const list = byKey.get(keys[i]);
      if (list === undefined || list.length === 0) continue;
      if (list.length >= count) {
        const last = list[list.length - 1].id;
        if (horizon === null || compareStreamIds(last, horizon) < 0) horizon = last;
      }
      for (const entry of list) entries.push({ id: entry.id, key: keys[i], fields: entry.fields });
    }
    for (const own of this.#ownLate) {
      if (own.serial >= serial) continue;
      entries.push({ id: own.id, key: "", fields: own.fields });
    }
    entries.sort((a, b) => compareStreamIds(a.id, b.id) || (a.key < b.key ? -1 : 1));
    for (const entry of entries) {
      if (horizon !== null && compareStreamIds(entry.id, horizon) > 0) break;
      if (entry.key === "") {
        this.#ownLate.shift();
      } else {
        const instance = options.keys.instanceOf(this.shard, entry.key)!;
        this.streams.set(instance, entry.id);
      }
      if (options.applier.applyEntry(entry.id, entry.fields, redisNowMs, this.shard)) {
        this.gapSeen = true;
      }
    }
    // Not complete either after a gap: the store lacks what went missing until the snapshot is
    // loaded over it (redisCluster.ts).
    const complete = horizon === null && !helloSeen && !this.gapSeen;
    if (complete) {
      this.#completeAtMs = sentAtMs;
      this.caughtUp = true;
    }
    return complete;
  }

  /** Sends one command on the reader's connection, following Redis Cluster redirections. */
  async #command(
    args: string[],
    limits: StreamReaderOptions | null,
    blockMs = 0,
  ): Promise<unknown> {
    const options = this.#options;
    const timeout = blockMs + options.commandTimeoutMs;
    for (let redirects = 0;; redirects++) {
      const conn = this.#conn;
      if (conn === null) throw new Error("not connected");
      const before = conn.bytesRead;
      try {
        return await withTimeout(conn.sendCommand(args, limits), timeout, conn);
      } catch (error) {
        if (!(error instanceof ErrorReply) || redirects >= MAX_REDIRECTS) throw error;
        const redirect = /^(MOVED|ASK) \d+ (.+):(\d+)$/.exec(error.message);
        if (/^TRYAGAIN/.test(error.message)) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        if (redirect === null) throw error;
        const address = {
          host: redirect[2].replace(/^\[(.*)\]$/, "$1"),
          port: Number(redirect[3]),
        };
        if (redirect[1] === "MOVED") {
          await this.connect(address);
          continue;
        }
        return await this.#asking(address, args, limits, timeout);
      } finally {
        options.counters.readBytes += conn.bytesRead - before;
        this.bytesRead += conn.bytesRead - before;
      }
    }
  }

  /** Answers an ASK: the command once, after ASKING, on a connection to the slot's target. */
  async #asking(
    address: RedisAddress,
    args: string[],
    limits: StreamReaderOptions | null,
    timeout: number,
  ): Promise<unknown> {
    const options = this.#options;
    const conn = new StreamReaderConnection(options.urlFor(address), {
      maxValueBytes: MAX_BATCH_BYTES,
      keepElements: [1],
    });
    try {
      await withTimeout(conn.connect(), options.commandTimeoutMs, conn);
      await withTimeout(conn.sendCommand(["ASKING"]), options.commandTimeoutMs, conn);
      return await withTimeout(conn.sendCommand(args, limits), timeout, conn);
    } finally {
      options.counters.readBytes += conn.bytesRead;
      conn.destroy();
    }
  }

  /** The master this reader is connected to (null before the first connect). */
  get address(): RedisAddress | null {
    return this.#address;
  }
}

/** An XREAD reply as entries by stream key; anything else is a broken session. */
function parseXread(reply: unknown): Map<string, { id: string; fields: unknown }[]> {
  const out = new Map<string, { id: string; fields: unknown }[]>();
  if (reply === null) return out;
  if (!Array.isArray(reply)) throw new Error("unexpected XREAD reply");
  for (const stream of reply) {
    if (!Array.isArray(stream) || !(stream[0] instanceof Uint8Array) || !Array.isArray(stream[1])) {
      throw new Error("unexpected XREAD reply");
    }
    const entries: { id: string; fields: unknown }[] = [];
    for (const entry of stream[1]) {
      if (!Array.isArray(entry) || entry.length !== 2 || !(entry[0] instanceof Uint8Array)) {
        throw new Error("unexpected XREAD entry");
      }
      const id = decoder.decode(entry[0]);
      if (!/^[0-9]{1,20}-[0-9]{1,20}$/.test(id)) throw new Error("unexpected XREAD entry id");
      entries.push({ id, fields: entry[1] });
    }
    out.set(decoder.decode(stream[0]), entries);
  }
  return out;
}
