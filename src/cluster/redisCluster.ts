/**
 * Cluster sync over one Redis stream: several otter nodes share their swarms.
 *
 * Each node records its local changes (`recorder`), takes them as binary batches every flush
 * interval and appends each batch to the cluster's stream with XADD, trimming entries older than
 * one peer timeout (MINID ~). A second connection reads the stream with XREAD: first the retained
 * history (so a new node serves full swarms at once), then new entries as they come (BLOCK). Other
 * nodes' changes are applied to the local store through its ordinary announce, with numwant 0, so
 * the store's own rules (expiry, counting a completion once) hold for remote peers too.
 *
 * Redis is never on the announce path: if it is unreachable the node keeps serving from its own
 * store, queues its batches (bounded), logs one line per state change and reconnects with backoff,
 * then publishes the queue and reads on from the last entry it applied. A Redis that lacks a
 * command the sync needs (before 6.2, or with it renamed away or forbidden to our user) is found at
 * connect, before the node counts as connected: at start that is fatal, since retrying cannot help.
 *
 * Order: every node applies other nodes' changes in stream order, but its own at once, so two
 * nodes that change the same peer at nearly the same time may disagree about it until it
 * announces again or expires. Changes queued during an outage make that likely, so a node marks
 * the batches it publishes late (`markLate`) and applies them again when it reads them back:
 * then every node ends with the stream's last word on each peer. Reapplying an old change can
 * undo a newer local one, so batches taken while queued ones are unread, or before one was
 * reapplied, are marked late too ("follow-ups"), and so is a batch that changes a peer a
 * follow-up changed, if that follow-up may be reapplied after it: the window closes for a peer
 * once no unread late batch of ours holds it.
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
 * Trust: with a cluster secret every batch carries a MAC (batchMac.ts), and what is read from the
 * stream passes batchGate.ts (size, shape, checksum, MAC, age, sequence) before anything is
 * applied. The stream is read through streamReader.ts, which holds at most MAX_BATCH_BYTES per
 * entry value whatever someone XADDed, so one XREAD brings at most READ_COUNT entries of that
 * size (two values each) into memory.
 *
 * This file is the sync's sessions and its publish queue; redisCommands.ts sends commands (with a
 * reply deadline) and checks a Redis at connect, streamApply.ts applies what is read, and
 * clusterCounters.ts is what it counts.
 */
import { Buffer } from "node:buffer";
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { createClient, ErrorReply, RESP_TYPES } from "npm:@redis/client@6.3.1";
import {
  applyCheckedBatch,
  batchIsQueued,
  batchRecordCount,
  batchSequence,
  ChangeRecorder,
  markLate,
  MAX_BATCH_BYTES,
  MAX_BATCH_RECORDS,
  setPublishTime,
} from "./changeBatch.ts";
import { parseClusterUrl, streamKey } from "./clusterOptions.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import { BatchMac } from "./batchMac.ts";
import { BATCH_FIELD, BatchGate } from "./batchGate.ts";
import { StreamReaderConnection } from "./streamReader.ts";
import { type ClusterStore, StreamApplier } from "./streamApply.ts";
import { type ClusterCounters, newClusterCounters } from "./clusterCounters.ts";
import {
  checkCommands,
  checkStreamKey,
  compareStreamIds,
  errorLine,
  redisClockOffsetMs,
  type RedisConnection,
  RedisUnsupportedError,
  send,
  withTimeout,
} from "./redisCommands.ts";

export type { ClusterStore };

export interface ClusterSyncOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
  url: string;
  /** Cluster name: nodes with the same name and Redis share swarms. */
  name: string;
  /** This node's id, 1 to 64 bytes, carried in its batches for diagnosis. */
  nodeId: string;
  /** Seconds a silent peer lives; also how much stream history is kept. */
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
}

interface PendingBatch {
  batch: Uint8Array;
  count: number;
  /** performance.now() when it was taken: its wait is elapsed time, which a wall step must not fake. */
  takenAtMs: number;
  /** `connects` when it was taken, or -1 if taken while disconnected. */
  session: number;
  /** performance.now() of the flush before the one that took it: its changes came after. */
  previousFlushAt: number;
  /** How it is marked when published (see markLate); "queued" ones count in #queuedUnread. */
  mark: "none" | "followUp" | "queued";
}

/** An own batch marked late only because it followed others (see `#followsUp`). */
interface FollowUp {
  sequence: number;
  peers: Set<number>;
  /** performance.now() when it was read back, or -1. */
  readAt: number;
}

/** Entries per XREAD: each holds at most MAX_BATCH_BYTES, so one reply at most ~10 MB. */
const READ_COUNT = 32;
/** Elements the reader keeps per array level of an XREAD reply: streams, [key, entries],
 * entries, [id, fields], fields. A well-formed entry has two fields; more are read past. */
const XREAD_SHAPE = [1, 2, READ_COUNT, 2, 2];
/** How often the offset to Redis's clock is measured again while connected. */
const CLOCK_CHECK_MS = 60_000;
export class ClusterSync {
  readonly recorder: ChangeRecorder;
  readonly counters: ClusterCounters;

  readonly #url: string;
  readonly #redactedUrl: string;
  readonly #key: string;
  readonly #nodeId: string;
  readonly #peerTimeout: number;
  readonly #log: (line: string) => void;
  readonly #flushIntervalMs: number;
  readonly #blockMs: number;
  readonly #commandTimeoutMs: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #maxPendingBytes: number;

  #running = false;
  #loggedState: "none" | "connected" | "disconnected" = "none";
  #sessionLoop: Promise<void> | null = null;
  #writer: RedisConnection | null = null;
  #reader: StreamReaderConnection | null = null;
  readonly #mac: BatchMac;
  readonly #applier: StreamApplier;
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;
  /** Settle start(): set until the first session applied the history or failed. */
  #ready: (() => void) | null = null;
  #startFailed: ((error: Error) => void) | null = null;
  /** The "cannot use this Redis" reason last logged, so each is logged once while it lasts. */
  #loggedUnsupported = "";
  #publishing: Promise<void> | null = null;
  /** The error of the last refused XADD while Redis keeps refusing, else null. */
  #publishRefused: string | null = null;
  readonly #pending: PendingBatch[] = [];
  #pendingBytes = 0;
  /** Redis's clock minus our monotonic one (performance.now()), in milliseconds, measured at
   * connect and every CLOCK_CHECK_MS: a step of this host's wall clock leaves the estimate alone. */
  #redisClockOffsetMs = 0;
  #clockMeasuredAt = 0;
  #measuringClock = false;
  /** Own queued batches marked for publishing and not yet read back. */
  #queuedUnread = 0;
  /** performance.now() when an own queued batch was last reapplied, and of the last flush. */
  #lastQueuedReapplyAt = -1;
  #lastFlushAt = 0;
  /** Own follow-up batches published, in order, until read back before newer changes were made. */
  readonly #followUps: FollowUp[] = [];

  constructor(options: ClusterSyncOptions) {
    this.counters = options.counters ?? newClusterCounters();
    const url = parseClusterUrl(options.url);
    if ("error" in url) throw new RangeError(`--cluster: ${url.error}`);
    this.#url = url.url;
    this.#redactedUrl = url.redacted;
    this.#key = streamKey(options.name);
    this.#nodeId = options.nodeId;
    this.#peerTimeout = options.peerTimeout;
    this.#log = options.log;
    this.#flushIntervalMs = Math.min(1000, options.flushIntervalMs ?? 200);
    this.#blockMs = options.blockMs ?? 1000;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 3000;
    this.#minBackoffMs = options.minBackoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 2000;
    this.#maxPendingBytes = options.maxPendingBytes ?? 64 * 1024 * 1024;
    this.recorder = new ChangeRecorder(
      options.nodeId,
      options.recorderCapacity ?? 65536,
      options.maxBatchRecords ?? MAX_BATCH_RECORDS,
    );
    this.#mac = new BatchMac(options.secret, options.name);
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
      (batch) => this.#ownReapplied(batch),
    );
  }

  /** The stream this node publishes to and reads from. */
  get streamKey(): string {
    return this.#key;
  }

  /**
   * Starts syncing. Resolves once the retained history has been applied, or once the first
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
    this.#sessionLoop = this.#runSessions();
    return ready;
  }

  /** Publishes what is pending (if connected, within the command timeout), then disconnects. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    clearInterval(this.#flushTimer);
    this.#flush();
    if (this.#publishing !== null) await this.#publishing;
    this.#running = false;
    this.#markReady();
    if (this.#wake !== null) this.#wake();
    this.#writer?.destroy();
    this.#reader?.destroy();
    await this.#sessionLoop;
    this.#sessionLoop = null;
  }

  async #runSessions(): Promise<void> {
    let backoff = this.#minBackoffMs;
    while (this.#running) {
      const writer = this.#connection();
      const reader = new StreamReaderConnection(this.#url, {
        maxValueBytes: MAX_BATCH_BYTES,
        keepElements: XREAD_SHAPE,
      });
      this.#writer = writer;
      this.#reader = reader;
      let fatal: RedisUnsupportedError | null = null;
      try {
        const handshake = Promise.all([writer.connect(), reader.connect()]);
        await withTimeout(handshake, this.#commandTimeoutMs, writer, reader);
        await this.#measureRedisClock(writer);
        await checkStreamKey(writer, this.#key, this.#commandTimeoutMs);
        await checkCommands(writer, this.#key, this.#commandTimeoutMs);
        await this.#checkStreamTail(writer);
        this.counters.connects++;
        this.#loggedUnsupported = "";
        this.#setState("connected", "");
        backoff = this.#minBackoffMs;
        this.#publishPending();
        await this.#readLoop(reader);
      } catch (error) {
        if (error instanceof RedisUnsupportedError && this.#ready !== null) fatal = error;
        else if (this.#running) this.#setDisconnected(error);
      } finally {
        this.#writer = null;
        this.#reader = null;
        writer.destroy();
        reader.destroy();
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

  #connection(): RedisConnection {
    const client = createClient({
      url: this.#url,
      RESP: 2,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: false, connectTimeout: this.#commandTimeoutMs },
      commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
    }) as unknown as RedisConnection;
    // Without a listener an "error" event would end the process. A socket error on either
    // connection ends the session: destroying both makes the pending commands reject.
    client.on("error", () => {
      if (this.#writer === client || this.#reader === client) {
        this.#writer?.destroy();
        this.#reader?.destroy();
      }
    });
    return client;
  }

  #setState(state: "connected" | "disconnected", reason: string): void {
    this.counters.state = state;
    if (state === this.#loggedState) return;
    const before = this.#loggedState;
    this.#loggedState = state;
    if (state === "connected") {
      this.#log(
        `cluster: connected to ${this.#redactedUrl} as node ${this.#nodeId} (stream ${this.#key})`,
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
  #failStart(error: RedisUnsupportedError): void {
    clearInterval(this.#flushTimer);
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

  async #measureRedisClock(writer: RedisConnection): Promise<void> {
    this.#redisClockOffsetMs = await redisClockOffsetMs(writer, this.#commandTimeoutMs);
    this.#clockMeasuredAt = performance.now();
  }

  /** Measures the clock offset again if it is due; a failure is left to the other commands. */
  #recheckRedisClock(): void {
    const writer = this.#writer;
    if (writer === null || this.#measuringClock || this.counters.state !== "connected") return;
    if (performance.now() - this.#clockMeasuredAt < CLOCK_CHECK_MS) return;
    this.#measuringClock = true;
    this.#measureRedisClock(writer).catch(() => {}).finally(() => this.#measuringClock = false);
  }

  /**
   * If the stream is gone or now ends before the last entry read (Redis restarted without its
   * data, or another server took over), new entries may carry smaller ids: read it all again.
   */
  async #checkStreamTail(writer: RedisConnection): Promise<void> {
    if (this.#applier.lastId === "0-0") return;
    const args = ["XREVRANGE", this.#key, "+", "-", "COUNT", "1"];
    const reply = await send(writer, this.#commandTimeoutMs, args);
    if (!Array.isArray(reply)) throw new Error("unexpected XREVRANGE reply");
    const tail = reply.length > 0 && Array.isArray(reply[0]) ? String(reply[0][0]) : "0-0";
    if (compareStreamIds(tail, this.#applier.lastId) >= 0) return;
    this.#applier.lastId = "0-0";
    // Our late batches published to the lost stream will never come back.
    this.#followUps.length = 0;
    this.#queuedUnread = 0;
    for (const pending of this.#pending) if (pending.mark === "queued") this.#queuedUnread++;
  }

  /** Takes the recorder's changes into the publish queue and starts publishing. */
  #flush = (): void => {
    const recorder = this.recorder;
    if (recorder.dropped > 0) {
      this.counters.droppedChanges += recorder.dropped;
      recorder.dropped = 0;
    }
    const takenAtMs = performance.now();
    const session = this.counters.state === "connected" ? this.counters.connects : -1;
    const previousFlushAt = this.#lastFlushAt;
    this.#lastFlushAt = performance.now();
    for (let batch = recorder.take(); batch !== null; batch = recorder.take()) {
      const count = batchRecordCount(batch);
      this.#pending.push({ batch, count, takenAtMs, session, previousFlushAt, mark: "none" });
      this.#pendingBytes += batch.length;
    }
    while (this.#pendingBytes > this.#maxPendingBytes) this.#dropOldestPending();
    this.#recheckRedisClock();
    this.#publishPending();
  };

  #dropOldestPending(): void {
    const dropped = this.#pending.shift()!;
    this.#pendingBytes -= dropped.batch.length;
    if (dropped.mark === "queued") this.#queuedUnread = Math.max(0, this.#queuedUnread - 1);
    this.counters.droppedChanges += dropped.count;
  }

  #publishPending(): void {
    const writer = this.#writer;
    if (this.#publishing !== null || writer === null || this.counters.state !== "connected") return;
    if (this.#pending.length === 0) return;
    this.#publishing = this.#publishLoop(writer).finally(() => (this.#publishing = null));
  }

  async #publishLoop(writer: RedisConnection): Promise<void> {
    try {
      while (this.#pending.length > 0 && this.#writer === writer) {
        const next = this.#pending[0];
        const waitedSeconds = (performance.now() - next.takenAtMs) / 1000;
        if (waitedSeconds >= this.#peerTimeout) {
          this.#dropOldestPending();
          continue;
        }
        this.#forgetFollowUpsBefore(next.previousFlushAt);
        if (next.mark !== "queued" && next.session !== this.counters.connects) {
          next.mark = "queued";
          this.#queuedUnread++;
        } else if (
          next.mark === "none" &&
          (this.#queuedUnread > 0 || this.#lastQueuedReapplyAt >= next.previousFlushAt ||
            this.#followsUp(next))
        ) {
          next.mark = "followUp";
          this.#followUps.push({
            sequence: batchSequence(next.batch),
            peers: peersOf(next.batch),
            readAt: -1,
          });
        }
        if (next.mark !== "none") markLate(next.batch, waitedSeconds, next.mark === "queued");
        const redisNowMs = this.#redisNowMs();
        setPublishTime(next.batch, redisNowMs);
        this.#mac.seal(next.batch);
        const minId = Math.max(0, Math.floor(redisNowMs - this.#peerTimeout * 1000));
        const value = Buffer.from(next.batch.buffer, next.batch.byteOffset, next.batch.length);
        await send(writer, this.#commandTimeoutMs, [
          "XADD",
          this.#key,
          "MINID",
          "~",
          String(minId),
          "*",
          BATCH_FIELD,
          value,
        ]);
        if (this.#pending[0] === next) {
          this.#pending.shift();
          this.#pendingBytes -= next.batch.length;
        }
        this.counters.published++;
        this.counters.publishedChanges += next.count;
        if (this.#publishRefused !== null) {
          this.#publishRefused = null;
          this.#log("cluster: Redis accepts changes again");
        }
      }
    } catch (error) {
      if (error instanceof ErrorReply) {
        // Redis answered but refused (out of memory, say): the connection is fine, so keep it
        // and the batch, and try again at the next flush.
        if (this.#publishRefused === null) {
          this.#log(`cluster: Redis refuses changes (${error.message}); queueing, retrying`);
        }
        this.#publishRefused = error.message;
        return;
      }
      // The session is broken; the read loop notices and reconnects. The batch stays queued.
      if (this.#writer === writer) writer.destroy();
      this.#reader?.destroy();
    }
  }

  async #readLoop(reader: StreamReaderConnection): Promise<void> {
    let caughtUp = false;
    const count = String(READ_COUNT);
    const block = String(this.#blockMs);
    const timeout = this.#blockMs + this.#commandTimeoutMs;
    while (this.#running) {
      const args = caughtUp
        ? ["XREAD", "COUNT", count, "BLOCK", block, "STREAMS", this.#key, this.#applier.lastId]
        : ["XREAD", "COUNT", count, "STREAMS", this.#key, this.#applier.lastId];
      const reply = await send(reader, timeout, args);
      const entries = this.#applier.applyReply(reply, this.#redisNowMs());
      if (!caughtUp && entries < READ_COUNT) {
        caughtUp = true;
        this.#markReady();
      }
    }
  }

  /** One of our own batches was read back and applied again. */
  #ownReapplied(batch: Uint8Array): void {
    if (batchIsQueued(batch)) {
      this.#queuedUnread = Math.max(0, this.#queuedUnread - 1);
      this.#lastQueuedReapplyAt = performance.now();
    }
    // Batches are read back in the order they were taken: earlier ones not seen are lost.
    const sequence = batchSequence(batch);
    for (const followUp of this.#followUps) {
      if (followUp.sequence > sequence) break;
      if (followUp.readAt < 0) followUp.readAt = performance.now();
    }
  }

  /** Drops the follow-ups read back before `ms`: changes made after it are safe from them. */
  #forgetFollowUpsBefore(ms: number): void {
    const followUps = this.#followUps;
    while (followUps.length > 0 && followUps[0].readAt >= 0 && followUps[0].readAt < ms) {
      followUps.shift();
    }
  }

  /**
   * Whether a batch must be marked late because an own follow-up batch may be reapplied after
   * some of its changes (one not yet read back, or read back after the flush before the one that
   * took it) and changed one of the same peers. Reapplied, that older change would undo the newer
   * one here alone; marked late, the newer one is applied again after it.
   */
  #followsUp(next: PendingBatch): boolean {
    const followUps = this.#followUps;
    if (followUps.length === 0) return false;
    for (const peer of peersOf(next.batch)) {
      for (const followUp of followUps) if (followUp.peers.has(peer)) return true;
    }
    return false;
  }
}

/**
 * The peers (info hash, address, port) a sound batch changes, each as a 32-bit FNV-1a hash of its
 * bytes: a collision only marks one more batch late.
 */
function peersOf(batch: Uint8Array): Set<number> {
  const peers = new Set<number>();
  applyCheckedBatch(batch, (_op, bytes, hashOffset, family, _address, addressOffset) => {
    const end = addressOffset + (family === 6 ? 16 : 4) + 2;
    let hash = 0x811c9dc5;
    for (let i = hashOffset; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
    peers.add(hash >>> 0);
  });
  return peers;
}
