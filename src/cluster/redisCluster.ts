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
 * store, queues its batches (bounded), logs one line per state change (connectionLog.ts) and
 * reconnects with backoff, then publishes the queue and reads on from where it was. A Redis that
 * lacks a command the sync needs (before 6.2, or with it renamed away or forbidden to our user) is
 * found at connect, before the node counts as connected: at start that is fatal, since retrying
 * cannot help. A Redis that comes back empty (restarted without its data: the cluster's config key
 * is gone or another, clusterConfig.ts) is noticed: readers start over, a snapshot is written at
 * once, and each peer this node holds is published again at its next announce (the re-publish
 * window, publishRule.ts; lossRecovery.ts).
 *
 * Time: a batch's age is taken from the publish time its origin stamped into it (its reckoning of
 * Redis's clock when it sent the XADD) plus the delay it waited before that, measured against
 * Redis's clock (redisClock.ts: TIME at connect, and again every minute, carried forward on the
 * monotonic clock in between), so the nodes' own clocks may disagree or step. A change is applied
 * as if seen `age` seconds before the local `clock.now` (which may be below 1 on a node younger
 * than the change), so it expires here when it expires at its origin; batches older than the peer
 * timeout are skipped.
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
import { instanceHex, MAX_BATCH_RECORDS } from "./changeBatch.ts";
import { ChangeRecorder } from "./changeRecorder.ts";
import { parseClusterUrl } from "./clusterOptions.ts";
import { BatchMac } from "./batchMac.ts";
import { BatchGate } from "./batchGate.ts";
import { type ClusterStore, StreamApplier } from "./streamApply.ts";
import { type ClusterCounters, newClusterCounters } from "./clusterCounters.ts";
import type { ClusterSyncOptions } from "./syncOptions.ts";
import { LocalChanges, refreshEpochSeconds } from "./publishRule.ts";
import { ClusterKeys, DEFAULT_CLUSTER_SHARDS } from "./clusterKeys.ts";
import { readClusterConfig } from "./clusterConfig.ts";
import { ConnectionLog } from "./connectionLog.ts";
import { InfoPoller } from "./infoPoller.ts";
import { LossRecovery } from "./lossRecovery.ts";
import { PublishQueue, type PublishSession } from "./publishQueue.ts";
import { ShardReader } from "./shardReader.ts";
import { SnapshotStore } from "./snapshotStore.ts";
import { SnapshotMacs } from "./snapshotFormat.ts";
import { WsPeerKeys } from "./wsPeerKeys.ts";
import { WtRelay } from "./wtRelay.ts";
import { SignalMac } from "./wtSignalFormat.ts";
import { RedisLink } from "./redisLink.ts";
import { RedisClock } from "./redisClock.ts";
import { checkCommands, checkStreamKey, RedisUnsupportedError } from "./redisCommands.ts";

export type { ClusterStore, ClusterSyncOptions };

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
  readonly #peerTimeout: number;
  readonly #log: (line: string) => void;
  readonly #flushIntervalMs: number;
  readonly #blockMs: number;
  readonly #commandTimeoutMs: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #infoPollMs: number;
  readonly #requestedShards: number | undefined;

  #running = false;
  #sessionLoop: Promise<void> | null = null;
  #link: RedisLink | null = null;
  #readers: ShardReader[] = [];
  /** Whether the link is to a Redis Cluster, once the first connect found out. */
  #clusterMode: boolean | null = null;
  readonly #mac: BatchMac;
  readonly #applier: StreamApplier;
  readonly #queue: PublishQueue;
  readonly #snapshots: SnapshotStore;
  readonly #redisClock: RedisClock;
  readonly #connectionLog: ConnectionLog;
  readonly #infoPoller: InfoPoller;
  readonly #lossRecovery: LossRecovery;
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

  constructor(options: ClusterSyncOptions) {
    this.counters = options.counters ?? newClusterCounters();
    const url = parseClusterUrl(options.url);
    if ("error" in url) throw new RangeError(`--cluster: ${url.error}`);
    this.#urls = url.urls;
    this.keys = new ClusterKeys(options.name);
    this.#peerTimeout = options.peerTimeout;
    this.#log = options.log;
    this.#flushIntervalMs = Math.min(1000, options.flushIntervalMs ?? 200);
    this.#blockMs = options.blockMs ?? 1000;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 3000;
    this.#minBackoffMs = options.minBackoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 2000;
    this.#infoPollMs = options.infoPollMs ?? 10_000;
    this.#requestedShards = options.shards;
    this.#redisClock = new RedisClock(this.keys.config, this.#commandTimeoutMs);
    this.#connectionLog = new ConnectionLog(
      options.log,
      url.redacted,
      options.nodeId,
      options.name,
    );
    this.#infoPoller = new InfoPoller(this.counters, options.log);
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
        redisNowMs: this.#redisClock.nowMs,
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
    this.#lossRecovery = new LossRecovery({
      keys: this.keys,
      instance: this.instance,
      queue: this.#queue,
      snapshots: this.#snapshots,
      changes: this.changes,
      counters: this.counters,
      clock: options.clock,
      log: options.log,
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
        this.counters.state = "connected";
        this.#connectionLog.connected(this.#queue.shards);
        backoff = this.#minBackoffMs;
        this.#publish();
        this.#pollInfo();
        await this.#readAll(link);
      } catch (error) {
        const unusable = error instanceof RedisUnsupportedError || error instanceof RangeError;
        if (unusable && this.#ready !== null) fatal = error;
        else if (this.#running) {
          this.counters.state = "disconnected";
          this.#connectionLog.lost(error);
        }
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
    await this.#redisClock.measure(link);
    const probeKey = keys.nodeStream(0, this.instance);
    await checkCommands(link.forKey(probeKey), probeKey, ms);
    await checkStreamKey(link.forKey(keys.hello(0)), keys.hello(0), ms);
    const config = await readClusterConfig(
      link,
      keys.config,
      this.#requestedShards ?? (link.isCluster ? DEFAULT_CLUSTER_SHARDS : 1),
    );
    this.#adoptShards(config.shards);
    const reset = this.#lossRecovery.epochChanged(config.epoch);
    const shards = this.#queue.shards;
    if (this.#readers.length !== shards) this.#readers = this.#makeReaders(shards);
    this.#snapshots.setShards(shards);
    await Promise.all(
      this.#readers.map((reader) => reader.connect(link.masterFor(keys.nodes(reader.shard)))),
    );
    if (!this.#loaded) {
      // Joining: each shard's snapshot, then its streams from the snapshot's position.
      await this.#snapshots.load(link, this.#readers, this.#redisClock.nowMs);
      this.#loaded = true;
    } else if (reset) {
      this.#lossRecovery.redisLostItsData(this.#readers);
    } else {
      await this.#lossRecovery.checkTails(link, this.#readers);
    }
    this.#queue.registerAgain();
    await this.relay?.connect(link);
  }

  /** Takes the cluster's shard count, unless this node already runs with another. */
  #adoptShards(adopted: number): void {
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
          redisNowMs: this.#redisClock.nowMs,
          counters: this.counters,
          urlFor: (address) => this.#link!.urlFor(address),
        }),
      );
    }
    return readers;
  }

  /**
   * Runs every shard's read loop, and the signal listener's, until one fails; then stops the
   * others and rethrows.
   */
  async #readAll(link: RedisLink): Promise<void> {
    const current = () => this.#running && this.#link === link;
    const loops: (() => Promise<void>)[] = [];
    const relay = this.relay;
    if (relay !== null && relay.listening) loops.push(() => relay.listen(current));
    for (const reader of this.#readers) loops.push(() => this.#readShard(link, reader, current));
    let failure: unknown = null;
    await Promise.all(loops.map(async (loop) => {
      try {
        await loop();
      } catch (error) {
        if (failure === null) failure = error;
        this.#endSession();
      }
    }));
    if (failure !== null) throw failure;
  }

  /** Reads a shard while the session lasts; loads its snapshot over a gap; marks start() ready. */
  async #readShard(link: RedisLink, reader: ShardReader, current: () => boolean): Promise<void> {
    while (current()) {
      await reader.readOnce(reader.caughtUp);
      if (reader.gapSeen) {
        reader.gapSeen = false;
        await this.#snapshots.reload(link, reader.shard, this.#redisClock.nowMs);
      }
      if (this.#ready !== null && this.#readers.every((r) => r.caughtUp)) this.#markReady();
    }
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
    reject(this.#connectionLog.cannotStart(error));
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

  /** Polls each Redis's INFO for /metrics (infoPoller.ts) while connected. */
  #pollInfo = (): void => {
    const link = this.#link;
    if (link === null || this.counters.state !== "connected") return;
    this.#infoPoller.poll(link);
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
      this.#redisClock.nowMs,
      (shard) => readers[shard].bytesRead + (queue.publishedBytes[shard] ?? 0),
    ).catch(() => {}).finally(() => this.#snapshotTicking = false);
  };

  /** Takes the recorder's changes into the publish queue and starts publishing. */
  #flush = (): void => {
    const connected = this.counters.state === "connected";
    this.#queue.flush(connected ? this.counters.connects : -1);
    const link = this.#link;
    if (link !== null && connected) this.#redisClock.recheck(link);
    this.#publish();
  };

  #publish(): void {
    const link = this.#link;
    if (link === null || this.counters.state !== "connected") return;
    const session: PublishSession = {
      link,
      session: this.counters.connects,
      redisNowMs: this.#redisClock.nowMs,
      trimBeforeMs: (shard) => this.#snapshots.trimBeforeMs(shard, this.#redisClock.nowMs()),
      ownLate: (shard, id, batch) => this.#readers[shard]?.addOwnLate(id, batch),
      current: () => this.#link === link && this.counters.state === "connected",
    };
    this.#queue.publish(session);
  }
}
