/**
 * Cluster sync through Redis: several otter nodes share their swarms.
 *
 * Each node records its local changes (`changes`, publishRule.ts: only announces that change
 * something), takes them as binary batches by shard every flush interval and appends each to its
 * own stream of that shard (publishQueue.ts, keys in clusterKeys.ts). Per shard, a reader
 * (shardReader.ts) reads the other nodes' streams, merged in entry-id order, and applies their
 * changes to the local store through its ordinary announce and refresh, so the store's own rules
 * (expiry, counting a completion once) hold for remote peers too. A standalone Redis holds one
 * shard; a Redis Cluster holds several (16 by default), each on the master of its hash tag's slot.
 *
 * Joining: a node that starts loads each shard's snapshot (snapshotStore.ts) and reads the
 * streams from the snapshot's position, so it serves full swarms before its listeners open; the
 * snapshot is rewritten by one node at a time as the streams grow, and the streams are trimmed
 * to the previous snapshot's position: Redis holds about two snapshots and a short tail, not a
 * peer timeout of changes.
 *
 * Redis is never on the announce path: if it is unreachable the node keeps serving from its own
 * store, queues its batches (bounded), logs one line per state change and reconnects with backoff,
 * then publishes the queue and reads on from where it was. A Redis that lacks a command the sync
 * needs (before 6.2, or with it renamed away or forbidden to our user) is found at connect, before
 * the node counts as connected: at start that is fatal, since retrying cannot help. A Redis that
 * comes back empty (restarted without its data: the cluster's config key is gone or another) is
 * noticed: readers start over, a snapshot is written at once, and each peer this node holds is
 * published again at its next announce (the re-publish window, publishRule.ts).
 *
 * Time: a batch's age is taken from the publish time its origin stamped into it (its reckoning of
 * Redis's clock when it sent the XADD) plus the delay it waited before that, measured against
 * Redis's clock (TIME at connect, and again every minute, carried forward on the monotonic clock
 * in between), so the nodes' own clocks may disagree or step. A change is applied as if seen `age`
 * seconds before the local `clock.now` (which may be below 1 on a node younger than the change),
 * so it expires here when it expires at its origin; batches older than the peer timeout are
 * skipped.
 *
 * Access lists: changes for a torrent this node's list forbids are skipped (nodes may hold
 * different lists, or one may be reloaded before another); the node never records them, since
 * its announces for them are refused.
 *
 * Trust: with a cluster secret every batch and snapshot carries a MAC (batchMac.ts), and what is
 * read passes batchGate.ts or snapshotFormat.ts (size, shape, checksum, MAC, age, sequence) before
 * anything is applied. Streams are read through streamReader.ts, which holds at most a set number
 * of bytes per value whatever someone wrote.
 */
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import { ChangeRecorder, instanceHex, MAX_BATCH_RECORDS } from "./changeBatch.ts";
import { parseClusterUrl } from "./clusterOptions.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import { BatchMac } from "./batchMac.ts";
import { BatchGate } from "./batchGate.ts";
import { type ClusterStore, StreamApplier } from "./streamApply.ts";
import { type ClusterCounters, newClusterCounters } from "./clusterCounters.ts";
import { LocalChanges, refreshEpochSeconds } from "./publishRule.ts";
import { updateFigures } from "./redisInfo.ts";
import {
  ClusterKeys,
  DEFAULT_CLUSTER_SHARDS,
  KEY_FORMAT,
  MAX_CLUSTER_SHARDS,
} from "./clusterKeys.ts";
import { PublishQueue, type PublishSession } from "./publishQueue.ts";
import { ShardReader } from "./shardReader.ts";
import { type SnapshotOptions, SnapshotStore } from "./snapshotStore.ts";
import { SnapshotMacs } from "./snapshotFormat.ts";
import { WsPeerKeys } from "./wsPeerKeys.ts";
import { WtRelay } from "./wtRelay.ts";
import { SignalMac } from "./wtSignalFormat.ts";
import { RedisLink, textOf } from "./redisLink.ts";
import {
  checkCommands,
  checkStreamKey,
  compareStreamIds,
  errorLine,
  redisClockOffsetMs,
  RedisUnsupportedError,
} from "./redisCommands.ts";

export type { ClusterStore };

export interface ClusterSyncOptions {
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://…`; for a Redis Cluster, a
   * comma-separated list of its servers' URLs (credentials and TLS from the first).
   */
  url: string;
  /** Cluster name: nodes with the same name and Redis share swarms. */
  name: string;
  /** This node's id, 1 to 64 bytes, carried in its batches for diagnosis. */
  nodeId: string;
  /** Seconds a silent peer lives; also the longest a change stays in Redis. */
  peerTimeout: number;
  /**
   * The cluster secret (clusterSecret.ts) that authenticates batches, or null to run without
   * (`--cluster-insecure`: unauthenticated batches are then applied, and ours carry no MAC).
   */
  secret: Uint8Array | null;
  store: ClusterStore;
  /** The tracker clock (`src/config/clock.ts`): whole seconds since start. */
  clock: { now: number };
  log: (line: string) => void;
  /** This node's access list: other nodes' changes for torrents it forbids are skipped. */
  access?: AccessPolicy;
  /**
   * The counters to bump; new ones by default. startTracker passes the tracker's, made before the
   * sync, so the dashboard's history counts from zero every change the join applies.
   */
  counters?: ClusterCounters;
  /** Milliseconds between flushes of local changes (at most 1000). Default 200. */
  flushIntervalMs?: number;
  /** Milliseconds one XREAD waits for new entries. Default 1000. */
  blockMs?: number;
  /** Milliseconds a connect or a command may take before the connection counts as lost. Default 3000. */
  commandTimeoutMs?: number;
  /** First and longest wait between reconnect attempts, in milliseconds. Defaults 250 and 2000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Bytes of batches queued while Redis is away; the oldest go first. Default 64 MiB. */
  maxPendingBytes?: number;
  /** Changes the recorder holds between flushes. Default 65536. */
  recorderCapacity?: number;
  /** Changes per batch (one stream entry). Default and most MAX_BATCH_RECORDS (4096). */
  maxBatchRecords?: number;
  /**
   * Seconds of a refresh epoch (publishRule.ts): a refresh that changes nothing is published once
   * per epoch. Default refreshEpochSeconds(peerTimeout, 1800).
   */
  refreshEpochSeconds?: number;
  /** Milliseconds between two INFO polls of Redis for /metrics (redisInfo.ts). Default 10000. */
  infoPollMs?: number;
  /**
   * Shards of a new cluster (the first node sets them; later ones adopt them). Default 1 on a
   * standalone Redis, DEFAULT_CLUSTER_SHARDS on a Redis Cluster.
   */
  shards?: number;
  /** When snapshots are written and how big their chunks are (snapshotStore.ts). */
  snapshots?: SnapshotOptions;
  /**
   * The keys this node's WebSocket peers are published under (the WebSocket tracker's); snapshots
   * write its own WebSocket peers under them. New ones by default (a node without WebSocket).
   */
  wsKeys?: WsPeerKeys;
  /** Seconds a silent WebSocket peer lives (--ws-peer-timeout). Default peerTimeout. */
  wsPeerTimeout?: number;
  /**
   * Relays WebTorrent signals between nodes (wtRelay.ts): `relay` is made, on the channel of
   * `wsKeys`' tag. startTracker asks for it when the node serves WebSocket.
   */
  relaySignals?: boolean;
  /** Signals per second each way (wtRelay.ts); default MAX_SIGNALS_PER_SECOND. */
  signalsPerSecond?: number;
}

/** How often the offset to Redis's clock is measured again while connected. */
const CLOCK_CHECK_MS = 60_000;

export class ClusterSync {
  readonly recorder: ChangeRecorder;
  readonly counters: ClusterCounters;
  /** What the servers call after each accepted announce: publishes those that change something. */
  readonly changes: LocalChanges;
  readonly keys: ClusterKeys;
  /** This process's instance: 16 hex digits, the name of its streams. */
  readonly instance: string;
  /** WebTorrent signals to and from other nodes (`relaySignals`), else null. */
  readonly relay: WtRelay | null;

  readonly #urls: string[];
  readonly #redactedUrl: string;
  readonly #nodeId: string;
  readonly #peerTimeout: number;
  readonly #log: (line: string) => void;
  readonly #clock: { now: number };
  readonly #flushIntervalMs: number;
  readonly #blockMs: number;
  readonly #commandTimeoutMs: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #infoPollMs: number;
  readonly #requestedShards: number | undefined;

  #running = false;
  #loggedState: "none" | "connected" | "disconnected" = "none";
  #sessionLoop: Promise<void> | null = null;
  #link: RedisLink | null = null;
  #readers: ShardReader[] = [];
  /** Whether the link is to a Redis Cluster, once the first connect found out. */
  #clusterMode: boolean | null = null;
  /** The cluster config's epoch as last seen: another one means Redis lost its data. */
  #epoch = "";
  readonly #mac: BatchMac;
  readonly #applier: StreamApplier;
  readonly #queue: PublishQueue;
  readonly #snapshots: SnapshotStore;
  /** Whether the snapshots were loaded (once, at the first connect). */
  #loaded = false;
  #snapshotTimer: ReturnType<typeof setInterval> | undefined;
  #snapshotTicking = false;
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  #infoTimer: ReturnType<typeof setInterval> | undefined;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;
  /** Settle start(): set until the first session applied the history or failed. */
  #ready: (() => void) | null = null;
  #startFailed: ((error: Error) => void) | null = null;
  /** The "cannot use this Redis" reason last logged, so each is logged once while it lasts. */
  #loggedUnsupported = "";
  #polling = false;
  /** The INFO refusal last logged (an ACL without INFO), so it is logged once. */
  #infoRefused = "";
  /** Redis's clock minus our monotonic one (performance.now()), in milliseconds, measured at
   * connect and every CLOCK_CHECK_MS: a step of this host's wall clock leaves the estimate alone. */
  #redisClockOffsetMs = 0;
  #clockMeasuredAt = 0;
  #measuringClock = false;

  constructor(options: ClusterSyncOptions) {
    this.counters = options.counters ?? newClusterCounters();
    const url = parseClusterUrl(options.url);
    if ("error" in url) throw new RangeError(`--cluster: ${url.error}`);
    this.#urls = url.urls;
    this.#redactedUrl = url.redacted;
    this.keys = new ClusterKeys(options.name);
    this.#nodeId = options.nodeId;
    this.#peerTimeout = options.peerTimeout;
    this.#log = options.log;
    this.#clock = options.clock;
    this.#flushIntervalMs = Math.min(1000, options.flushIntervalMs ?? 200);
    this.#blockMs = options.blockMs ?? 1000;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 3000;
    this.#minBackoffMs = options.minBackoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 2000;
    this.#infoPollMs = options.infoPollMs ?? 10_000;
    this.#requestedShards = options.shards;
    this.recorder = new ChangeRecorder(
      options.nodeId,
      options.recorderCapacity ?? 65536,
      options.maxBatchRecords ?? MAX_BATCH_RECORDS,
    );
    this.instance = instanceHex(this.recorder.instance);
    this.changes = new LocalChanges(
      this.recorder,
      options.refreshEpochSeconds ?? refreshEpochSeconds(options.peerTimeout, 1800),
      this.counters,
    );
    this.#mac = new BatchMac(options.secret, options.name);
    this.#queue = new PublishQueue({
      recorder: this.recorder,
      mac: this.#mac,
      keys: this.keys,
      instance: this.instance,
      counters: this.counters,
      log: options.log,
      peerTimeout: options.peerTimeout,
      maxPendingBytes: options.maxPendingBytes ?? 64 * 1024 * 1024,
    });
    const wsKeys = options.wsKeys ?? new WsPeerKeys();
    this.relay = options.relaySignals
      ? new WtRelay({
        keys: this.keys,
        tag: wsKeys.tag,
        mac: new SignalMac(options.secret, options.name),
        counters: this.counters,
        commandTimeoutMs: this.#commandTimeoutMs,
        redisNowMs: () => this.#redisNowMs(),
        log: options.log,
        perSecond: options.signalsPerSecond,
      })
      : null;
    this.#snapshots = new SnapshotStore({
      keys: this.keys,
      instance: this.instance,
      instanceBytes: this.recorder.instance,
      nodeId: options.nodeId,
      macs: new SnapshotMacs(options.secret, options.name),
      store: options.store,
      clock: options.clock,
      access: options.access ?? null,
      peerTimeout: options.peerTimeout,
      wsPeerTimeout: options.wsPeerTimeout ?? options.peerTimeout,
      wsKeys,
      counters: this.counters,
      log: options.log,
      options: options.snapshots ?? {},
    });
    const gate = new BatchGate(
      this.#mac,
      this.recorder.instance,
      options.peerTimeout,
      this.counters,
      options.log,
    );
    this.#applier = new StreamApplier(
      gate,
      options.store,
      options.access ?? null,
      options.clock,
      this.counters,
      (batch) => this.#queue.lateReapplied(batch),
    );
  }

  /** This node's stream of shard 0 (tests). */
  get streamKey(): string {
    return this.keys.nodeStream(0, this.instance);
  }

  /** This node's own late batches published and not yet applied again here (tests). */
  get ownLatePending(): number {
    return this.#readers.reduce((sum, reader) => sum + reader.ownLatePending, 0);
  }

  /** The cluster's shards (0 until the first connect). */
  get shards(): number {
    return this.#queue.shards;
  }

  /**
   * Starts syncing. Resolves once every shard has been read up to date, or once the first
   * connection attempt has failed (then it keeps retrying in the background). Rejects, with a
   * one-line message, and stops if that first connection finds that Redis lacks a command the
   * sync needs (RedisUnsupportedError): retrying would not help.
   */
  start(): Promise<void> {
    if (this.#running) return Promise.resolve();
    this.#running = true;
    const ready = new Promise<void>((resolve, reject) => {
      this.#ready = resolve;
      this.#startFailed = reject;
    });
    const flushTimer = setInterval(this.#flush, this.#flushIntervalMs);
    Deno.unrefTimer(flushTimer);
    this.#flushTimer = flushTimer;
    const infoTimer = setInterval(this.#pollInfo, this.#infoPollMs);
    Deno.unrefTimer(infoTimer);
    this.#infoTimer = infoTimer;
    const snapshotTimer = setInterval(this.#tickSnapshots, this.#snapshots.tickMs);
    Deno.unrefTimer(snapshotTimer);
    this.#snapshotTimer = snapshotTimer;
    this.#sessionLoop = this.#runSessions();
    return ready;
  }

  /** Publishes what is pending (if connected, within the command timeout), then disconnects. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    clearInterval(this.#flushTimer);
    clearInterval(this.#infoTimer);
    clearInterval(this.#snapshotTimer);
    this.#flush();
    await this.#queue.settled();
    this.#running = false;
    this.#markReady();
    if (this.#wake !== null) this.#wake();
    this.#endSession();
    await this.#sessionLoop;
    this.#sessionLoop = null;
  }

  #endSession(): void {
    this.#link?.destroy();
    for (const reader of this.#readers) reader.destroy();
    this.relay?.destroy();
  }

  async #runSessions(): Promise<void> {
    let backoff = this.#minBackoffMs;
    while (this.#running) {
      const link = new RedisLink({
        urls: this.#urls,
        commandTimeoutMs: this.#commandTimeoutMs,
        onError: () => {
          if (this.#link === link) this.#endSession();
        },
      });
      this.#link = link;
      let fatal: Error | null = null;
      try {
        await this.#connect(link);
        this.counters.connects++;
        this.#loggedUnsupported = "";
        this.#setState("connected", "");
        backoff = this.#minBackoffMs;
        this.#publish();
        this.#pollInfo();
        await this.#readAll(link);
      } catch (error) {
        const unusable = error instanceof RedisUnsupportedError || error instanceof RangeError;
        if (unusable && this.#ready !== null) fatal = error;
        else if (this.#running) this.#setDisconnected(error);
      } finally {
        this.counters.state = "disconnected";
        this.#link = null;
        link.destroy();
        for (const reader of this.#readers) reader.destroy();
        this.relay?.destroy();
      }
      if (fatal !== null) {
        this.#failStart(fatal);
        break;
      }
      this.#markReady();
      if (!this.#running) break;
      await this.#sleep(backoff * (0.8 + 0.4 * Math.random()));
      backoff = Math.min(backoff * 2, this.#maxBackoffMs);
    }
    this.counters.state = "disconnected";
  }

  /** Connects the link and the shard readers, checks Redis, and notices a Redis that lost its data. */
  async #connect(link: RedisLink): Promise<void> {
    const ms = this.#commandTimeoutMs;
    const keys = this.keys;
    await link.connect(this.#clusterMode);
    this.#clusterMode = link.isCluster;
    await this.#measureRedisClock(link);
    const probeKey = keys.nodeStream(0, this.instance);
    await checkCommands(link.forKey(probeKey), probeKey, ms);
    await checkStreamKey(link.forKey(keys.hello(0)), keys.hello(0), ms);
    const reset = await this.#adoptConfig(link);
    const shards = this.#queue.shards;
    if (this.#readers.length !== shards) this.#readers = this.#makeReaders(shards);
    this.#snapshots.setShards(shards);
    await Promise.all(
      this.#readers.map((reader) => reader.connect(link.masterFor(keys.nodes(reader.shard)))),
    );
    if (!this.#loaded) {
      // Joining: each shard's snapshot, then its streams from the snapshot's position.
      await this.#snapshots.load(link, this.#readers, () => this.#redisNowMs());
      this.#loaded = true;
    } else if (reset) {
      this.#redisLostItsData();
    } else {
      for (const reader of this.#readers) await reader.checkTails();
      await this.#checkOwnTails(link);
    }
    this.#queue.registerAgain();
    await this.relay?.connect(link);
  }

  /**
   * Reads the cluster's config (creating it if this node is the first): adopts its shard count,
   * refuses another key layout, and returns whether Redis lost its data since the last session
   * (the config's epoch, set by whoever created it, changed).
   */
  async #adoptConfig(link: RedisLink): Promise<boolean> {
    const key = this.keys.config;
    const shards = this.#requestedShards ?? (link.isCluster ? DEFAULT_CLUSTER_SHARDS : 1);
    const epoch = instanceHex(crypto.getRandomValues(new Uint8Array(8)));
    await link.send(key, ["HSETNX", key, "format", KEY_FORMAT]);
    await link.send(key, ["HSETNX", key, "shards", String(shards)]);
    await link.send(key, ["HSETNX", key, "epoch", epoch]);
    const reply = await link.send(key, ["HGETALL", key]);
    if (!Array.isArray(reply)) throw new Error("unexpected HGETALL reply");
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < reply.length; i += 2) {
      fields.set(textOf(reply[i]), textOf(reply[i + 1]));
    }
    const format = fields.get("format");
    if (format !== KEY_FORMAT) {
      throw new RedisUnsupportedError(
        `its key ${key} says key format ${JSON.stringify(format)}, not ${KEY_FORMAT}: nodes of ` +
          "another otter version use this cluster name (all nodes of a cluster upgrade together)",
      );
    }
    const adopted = Number(fields.get("shards"));
    if (!Number.isInteger(adopted) || adopted < 1 || adopted > MAX_CLUSTER_SHARDS) {
      throw new RedisUnsupportedError(`its key ${key} names ${fields.get("shards")} shards`);
    }
    if (this.#queue.shards !== 0 && adopted !== this.#queue.shards) {
      // The cluster was made again with another count while this node ran: keep ours (the
      // recorder's batches are split by it); this node publishes where the others do not read.
      this.#log(
        `cluster: the cluster now has ${adopted} shards, this node ${this.#queue.shards}; ` +
          "restart it to follow",
      );
    } else {
      this.#queue.setShards(adopted);
    }
    const seen = fields.get("epoch") ?? "";
    const lost = this.#epoch !== "" && seen !== this.#epoch;
    this.#epoch = seen;
    return lost;
  }

  #makeReaders(shards: number): ShardReader[] {
    const readers: ShardReader[] = [];
    for (let shard = 0; shard < shards; shard++) {
      readers.push(
        new ShardReader({
          shard,
          keys: this.keys,
          instance: this.instance,
          applier: this.#applier,
          peerTimeoutMs: this.#peerTimeout * 1000,
          blockMs: this.#blockMs,
          commandTimeoutMs: this.#commandTimeoutMs,
          redisNowMs: () => this.#redisNowMs(),
          counters: this.counters,
          urlFor: (address) => this.#link!.urlFor(address),
        }),
      );
    }
    return readers;
  }

  /** Redis came back without the cluster's data: start over, and publish everyone again. */
  #redisLostItsData(): void {
    this.counters.redisResets++;
    for (const reader of this.#readers) {
      reader.resetTo("0-0");
      reader.dropOwnLate();
    }
    this.#queue.streamsLost();
    this.#snapshots.forget();
    // Stamps of this very second too: a peer published in it may be among the lost.
    this.changes.republishBefore = this.#clock.now + 1;
    this.#log(
      "cluster: Redis lost the cluster's data (restarted empty?); publishing every peer again " +
        "at its next announce",
    );
  }

  /** Our own streams lost acknowledged entries (a failover): publish their peers again. */
  async #checkOwnTails(link: RedisLink): Promise<void> {
    for (let shard = 0; shard < this.#queue.shards; shard++) {
      const acked = this.#queue.lastAcked[shard];
      if (acked === "0-0") continue;
      const key = this.keys.nodeStream(shard, this.instance);
      const reply = await link.send(key, ["XREVRANGE", key, "+", "-", "COUNT", "1"]);
      if (!Array.isArray(reply)) throw new Error("unexpected XREVRANGE reply");
      const tail = Array.isArray(reply[0]) ? textOf(reply[0][0]) : "0-0";
      if (compareStreamIds(tail, acked) >= 0) continue;
      this.counters.lostEntries++;
      this.changes.republishBefore = this.#clock.now + 1;
      this.#queue.lastAcked[shard] = tail;
      this.#readers[shard].dropOwnLate();
    }
  }

  /**
   * Runs every shard's read loop, and the signal listener's, until one fails; then stops the
   * others and rethrows.
   */
  async #readAll(link: RedisLink): Promise<void> {
    let failure: unknown = null;
    const relay = this.relay;
    const listening = relay !== null && relay.listening
      ? (async () => {
        try {
          while (this.#running && this.#link === link) await relay.readOnce();
        } catch (error) {
          if (failure === null) failure = error;
          this.#endSession();
        }
      })()
      : null;
    await Promise.all(this.#readers.map(async (reader) => {
      try {
        while (this.#running && this.#link === link) {
          await reader.readOnce(reader.caughtUp);
          if (reader.gapSeen) {
            reader.gapSeen = false;
            await this.#snapshots.reload(link, reader.shard, () => this.#redisNowMs());
          }
          if (this.#ready !== null && this.#readers.every((r) => r.caughtUp)) this.#markReady();
        }
      } catch (error) {
        if (failure === null) failure = error;
        this.#endSession();
      }
    }));
    await listening;
    if (failure !== null) throw failure;
  }

  #setState(state: "connected" | "disconnected", reason: string): void {
    this.counters.state = state;
    if (state === this.#loggedState) return;
    const before = this.#loggedState;
    this.#loggedState = state;
    if (state === "connected") {
      const shards = this.#queue.shards;
      this.#log(
        `cluster: connected to ${this.#redactedUrl} as node ${this.#nodeId} (cluster ` +
          `${this.keys.name}, ${shards} shard${shards === 1 ? "" : "s"})`,
      );
    } else {
      this.#log(
        `cluster: ${before === "none" ? "cannot reach" : "lost"} Redis at ${this.#redactedUrl}` +
          ` (${reason}); serving from the local store, retrying`,
      );
    }
  }

  /**
   * Logs a lost session once per state change, and a Redis we cannot use once per reason, even
   * after another failure was logged (Redis back, but an older one).
   */
  #setDisconnected(error: unknown): void {
    const reason = errorLine(error);
    if (!(error instanceof RedisUnsupportedError)) {
      this.#setState("disconnected", reason);
      return;
    }
    this.counters.state = "disconnected";
    if (reason === this.#loggedUnsupported) return;
    this.#loggedUnsupported = reason;
    this.#loggedState = "disconnected";
    this.#log(
      `cluster: cannot use Redis at ${this.#redactedUrl}: ${reason}; ` +
        "serving from the local store, retrying",
    );
  }

  #markReady(): void {
    if (this.#ready === null) return;
    this.#ready();
    this.#ready = null;
    this.#startFailed = null;
  }

  /** Ends a start that found Redis unusable: start() rejects and nothing is retried. */
  #failStart(error: Error): void {
    clearInterval(this.#flushTimer);
    clearInterval(this.#infoTimer);
    clearInterval(this.#snapshotTimer);
    this.#running = false;
    const reject = this.#startFailed!;
    this.#ready = null;
    this.#startFailed = null;
    reject(new Error(`cluster: cannot use Redis at ${this.#redactedUrl}: ${error.message}`));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        clearTimeout(this.#sleepTimer);
        this.#wake = null;
        resolve();
      };
      this.#sleepTimer = setTimeout(this.#wake, ms);
    });
  }

  #redisNowMs(): number {
    return performance.now() + this.#redisClockOffsetMs;
  }

  async #measureRedisClock(link: RedisLink): Promise<void> {
    const connection = link.forKey(this.keys.config);
    this.#redisClockOffsetMs = await redisClockOffsetMs(connection, this.#commandTimeoutMs);
    this.#clockMeasuredAt = performance.now();
  }

  /** Measures the clock offset again if it is due; a failure is left to the other commands. */
  #recheckRedisClock(): void {
    const link = this.#link;
    if (link === null || this.#measuringClock || this.counters.state !== "connected") return;
    if (performance.now() - this.#clockMeasuredAt < CLOCK_CHECK_MS) return;
    this.#measuringClock = true;
    this.#measureRedisClock(link).catch(() => {}).finally(() => this.#measuringClock = false);
  }

  /**
   * Asks each Redis (each master of a Redis Cluster) what it holds and moves (INFO) for
   * /metrics; a failure is left to the other commands, a refusal (an ACL without INFO) is logged
   * once and the figures left out.
   */
  #pollInfo = (): void => {
    const link = this.#link;
    if (link === null || this.#polling || this.counters.state !== "connected") return;
    this.#polling = true;
    const poll = async () => {
      const masters = await link.masters();
      const polled = [];
      for (const { server, connection } of masters) {
        const reply = await link.sendOn(connection, ["INFO"]);
        const known = this.counters.redis.find((figures) => figures.server === server) ?? null;
        polled.push(updateFigures(known, server, textOf(reply), performance.now()));
      }
      this.counters.redis = polled;
    };
    poll().catch((error) => {
      if (!(error instanceof ErrorReply) && !(error instanceof RedisUnsupportedError)) return;
      const reason = errorLine(error);
      if (reason === this.#infoRefused) return;
      this.#infoRefused = reason;
      this.#log(`cluster: Redis refuses INFO (${reason}); its figures are left out of /metrics`);
    }).finally(() => this.#polling = false);
  };

  /** Writes a snapshot where one is due (snapshotStore.ts), once the shards are read up to date. */
  #tickSnapshots = (): void => {
    const link = this.#link;
    if (link === null || this.#snapshotTicking || this.counters.state !== "connected") return;
    if (!this.#readers.every((reader) => reader.caughtUp)) return;
    this.#snapshotTicking = true;
    const readers = this.#readers;
    const queue = this.#queue;
    this.#snapshots.tick(
      link,
      readers,
      () => this.#redisNowMs(),
      (shard) => readers[shard].bytesRead + (queue.publishedBytes[shard] ?? 0),
    ).catch(() => {}).finally(() => this.#snapshotTicking = false);
  };

  /** Takes the recorder's changes into the publish queue and starts publishing. */
  #flush = (): void => {
    const connected = this.counters.state === "connected";
    this.#queue.flush(connected ? this.counters.connects : -1);
    this.#recheckRedisClock();
    this.#publish();
  };

  #publish(): void {
    const link = this.#link;
    if (link === null || this.counters.state !== "connected") return;
    const session: PublishSession = {
      link,
      session: this.counters.connects,
      redisNowMs: () => this.#redisNowMs(),
      trimBeforeMs: (shard) => this.#snapshots.trimBeforeMs(shard, this.#redisNowMs()),
      ownLate: (shard, id, batch) => this.#readers[shard]?.addOwnLate(id, batch),
      current: () => this.#link === link && this.counters.state === "connected",
    };
    this.#queue.publish(session);
  }
}
