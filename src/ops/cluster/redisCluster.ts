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
  OP_COMPLETED,
  OP_STOPPED,
  setPublishTime,
} from "./changeBatch.ts";
import { parseClusterUrl, streamKey } from "./clusterOptions.ts";
import type { AccessPolicy } from "../accessList.ts";
import { BatchMac } from "./batchMac.ts";
import { BATCH_FIELD, BatchGate, type RejectedCounts } from "./batchGate.ts";
import { StreamReaderConnection } from "./streamReader.ts";

/** What the sync needs from the peer store; `SwarmTable` satisfies it. */
export interface ClusterStore {
  announce(
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
  ): number;
}

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
  /** The tracker clock (`src/ops/clock.ts`): whole seconds since start. */
  clock: { now: number };
  log: (line: string) => void;
  /** This node's access list: other nodes' changes for torrents it forbids are skipped. */
  access?: AccessPolicy;
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

export interface ClusterCounters {
  state: "connected" | "disconnected";
  /** Batches appended to the stream, and the changes in them. */
  published: number;
  publishedChanges: number;
  /** Other nodes' changes applied to the store, and the batches they came in. */
  applied: number;
  appliedBatches: number;
  /** Changes skipped because this node's access list forbids their torrent. */
  forbidden: number;
  /**
   * Stream entries refused, by reason: malformed (truncated, wrong version, bad checksum,
   * garbage), oversized (over MAX_BATCH_BYTES, never read into memory), bad_mac (not signed with
   * our cluster secret), replayed (a batch of an origin's already applied again).
   */
  rejected: RejectedCounts;
  /** Batches skipped as older than the peer timeout (own late ones included, as before). */
  staleBatches: number;
  /** This node's own batches read back and skipped. */
  ownBatches: number;
  /** Changes from this node's own late batches, applied again in stream order. */
  reapplied: number;
  /** Local changes never published: recorder ring full, queue over its limit, or too old. */
  droppedChanges: number;
  /** Times a connection was established, the first included. */
  connects: number;
}

/** The slice of a node-redis client this module uses. */
interface RedisConnection {
  connect(): Promise<unknown>;
  sendCommand(args: ReadonlyArray<string | Buffer>): Promise<unknown>;
  destroy(): void;
  on(event: "error", listener: (error: Error) => void): unknown;
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
/** Streams came in 5.0, XADD's MINID trimming in 6.2. */
const MIN_REDIS_VERSION = "6.2";

/** Redis lacks a command (or an option) the sync needs, or forbids it to this user. */
export class RedisUnsupportedError extends Error {}

/** Redis's answer as one short printable line, for a log line. */
function quoteReply(text: string): string {
  const line = text.replace(/[^\x20-\x7e]+/g, "?");
  return JSON.stringify(line.length > 160 ? `${line.slice(0, 160)}…` : line);
}

/** The error for a reply saying `command` cannot be used here, or null for any other failure. */
function unsupported(command: string, error: unknown): RedisUnsupportedError | null {
  if (!(error instanceof ErrorReply)) return null;
  const text = error.message;
  if (/^ERR unknown command/i.test(text)) {
    return new RedisUnsupportedError(
      `it has no ${command} command (Redis said ${quoteReply(text)}); ` +
        `the cluster sync needs Redis ${MIN_REDIS_VERSION} or newer`,
    );
  }
  if (/^NOPERM/.test(text)) {
    return new RedisUnsupportedError(
      `its user may not run ${command} (Redis said ${quoteReply(text)}); the cluster sync ` +
        "needs TIME, TYPE, XADD, XREAD and XREVRANGE on its stream key",
    );
  }
  return null;
}

export class ClusterSync {
  readonly recorder: ChangeRecorder;
  readonly counters: ClusterCounters = {
    state: "disconnected",
    published: 0,
    publishedChanges: 0,
    applied: 0,
    appliedBatches: 0,
    forbidden: 0,
    rejected: { malformed: 0, oversized: 0, bad_mac: 0, replayed: 0 },
    staleBatches: 0,
    ownBatches: 0,
    reapplied: 0,
    droppedChanges: 0,
    connects: 0,
  };

  readonly #url: string;
  readonly #redactedUrl: string;
  readonly #key: string;
  readonly #nodeId: string;
  readonly #peerTimeout: number;
  readonly #store: ClusterStore;
  readonly #access: AccessPolicy | null;
  readonly #clock: { now: number };
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
  readonly #gate: BatchGate;
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
  /** Id of the last stream entry read; the next XREAD starts after it. */
  #lastId = "0-0";
  /** The `now` passed to the store for the batch being applied, and whether it is our own. */
  #applyNow = 1;
  #applyingOwn = false;
  readonly #scratch = new Uint8Array(64);

  constructor(options: ClusterSyncOptions) {
    const url = parseClusterUrl(options.url);
    if ("error" in url) throw new RangeError(`--cluster: ${url.error}`);
    this.#url = url.url;
    this.#redactedUrl = url.redacted;
    this.#key = streamKey(options.name);
    this.#nodeId = options.nodeId;
    this.#peerTimeout = options.peerTimeout;
    this.#store = options.store;
    this.#access = options.access ?? null;
    this.#clock = options.clock;
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
    this.#gate = new BatchGate(
      this.#mac,
      this.recorder.instance,
      options.peerTimeout,
      this.counters,
      options.log,
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
        await this.#withTimeout(handshake, this.#commandTimeoutMs, writer, reader);
        await this.#measureRedisClock(writer);
        await this.#checkStreamKey(writer);
        await this.#checkCommands(writer);
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
    const reason = describe(error);
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

  /**
   * Rejects if `promise` takes longer than `ms`, and then destroys `connections`. (node-redis's
   * own command timeout only covers the wait to be written, not the wait for the reply, so a
   * server that accepts and never answers would hang us without this.)
   */
  #withTimeout<T>(
    promise: Promise<T>,
    ms: number,
    ...connections: { destroy(): void }[]
  ): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no reply within ${ms} ms`));
        for (const connection of connections) connection.destroy();
      }, ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends one command; a reply saying Redis cannot run it rejects with RedisUnsupportedError. */
  #send(
    connection: RedisConnection | StreamReaderConnection,
    args: ReadonlyArray<string | Buffer>,
    ms = this.#commandTimeoutMs,
  ): Promise<unknown> {
    const reply = connection instanceof StreamReaderConnection
      ? connection.sendCommand(args as ReadonlyArray<string>)
      : connection.sendCommand(args);
    return this.#withTimeout(reply, ms, connection).catch((error) => {
      throw unsupported(String(args[0]), error) ?? error;
    });
  }

  /**
   * Tries each stream command the sync sends, in a form that changes nothing, so that a Redis
   * lacking one is found now rather than at the first publish. Other refusals (out of memory,
   * loading, a read-only replica) may pass, so they are left to the real commands.
   */
  async #checkCommands(writer: RedisConnection): Promise<void> {
    // XADD with the ID 0-0 is refused once its arguments are parsed, before the key is touched.
    // A Redis before 6.2 takes MINID for the ID and calls it invalid.
    const xadd = ["XADD", this.#key, "MINID", "~", "0", "0-0", BATCH_FIELD, ""];
    const probes = [
      xadd,
      ["XREAD", "COUNT", "1", "STREAMS", this.#key, "$"],
      ["XREVRANGE", this.#key, "0-1", "0-2"],
    ];
    for (const args of probes) {
      try {
        await this.#send(writer, args);
      } catch (error) {
        if (!(error instanceof ErrorReply)) throw error;
        if (args === xadd && /invalid stream id|syntax error/i.test(error.message)) {
          throw new RedisUnsupportedError(
            `its XADD has no MINID option (Redis said ${quoteReply(error.message)}); ` +
              `the cluster sync needs Redis ${MIN_REDIS_VERSION} or newer`,
          );
        }
      }
    }
  }

  /** A key of another type would fail every XADD and XREAD: refuse to start the session. */
  async #checkStreamKey(writer: RedisConnection): Promise<void> {
    const type = String(
      await this.#send(writer, ["TYPE", this.#key]),
    );
    if (type !== "none" && type !== "stream") {
      throw new Error(`key ${this.#key} holds a ${type}, not a stream`);
    }
  }

  #redisNowMs(): number {
    return performance.now() + this.#redisClockOffsetMs;
  }

  async #measureRedisClock(writer: RedisConnection): Promise<void> {
    const sent = performance.now();
    const reply = await this.#send(writer, ["TIME"]);
    const received = performance.now();
    if (!Array.isArray(reply) || reply.length !== 2) throw new Error("unexpected TIME reply");
    const redisMs = Number(String(reply[0])) * 1000 + Math.floor(Number(String(reply[1])) / 1000);
    if (!Number.isFinite(redisMs)) throw new Error("unexpected TIME reply");
    this.#redisClockOffsetMs = redisMs - (sent + received) / 2;
    this.#clockMeasuredAt = received;
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
    if (this.#lastId === "0-0") return;
    const reply = await this.#send(writer, ["XREVRANGE", this.#key, "+", "-", "COUNT", "1"]);
    if (!Array.isArray(reply)) throw new Error("unexpected XREVRANGE reply");
    const tail = reply.length > 0 && Array.isArray(reply[0]) ? String(reply[0][0]) : "0-0";
    if (compareStreamIds(tail, this.#lastId) >= 0) return;
    this.#lastId = "0-0";
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
        await this.#send(writer, [
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
        ? ["XREAD", "COUNT", count, "BLOCK", block, "STREAMS", this.#key, this.#lastId]
        : ["XREAD", "COUNT", count, "STREAMS", this.#key, this.#lastId];
      const reply = await this.#send(reader, args, timeout);
      const entries = this.#applyReply(reply);
      if (!caughtUp && entries < READ_COUNT) {
        caughtUp = true;
        this.#markReady();
      }
    }
  }

  /** Applies one XREAD reply; returns how many entries it held. */
  #applyReply(reply: unknown): number {
    if (reply === null) return 0;
    if (!Array.isArray(reply) || reply.length !== 1 || !Array.isArray(reply[0])) {
      throw new Error("unexpected XREAD reply");
    }
    const entries = reply[0][1];
    if (!Array.isArray(entries)) throw new Error("unexpected XREAD reply");
    const redisNowMs = this.#redisNowMs();
    for (const entry of entries) {
      if (!Array.isArray(entry) || entry.length !== 2 || !(entry[0] instanceof Uint8Array)) {
        throw new Error("unexpected XREAD entry");
      }
      const id = idDecoder.decode(entry[0]);
      if (!/^[0-9]{1,20}-[0-9]{1,20}$/.test(id)) throw new Error("unexpected XREAD entry id");
      this.#lastId = id;
      this.#applyEntry(id, entry[1], redisNowMs);
    }
    return entries.length;
  }

  #applyEntry(id: string, fields: unknown, redisNowMs: number): void {
    const admitted = this.#gate.admit(id, fields, redisNowMs);
    if (!admitted.apply) return;
    const { batch, own, age } = admitted;
    // Below 1 for changes older than this process: the store keeps 15-bit modular stamps, so
    // such a peer still expires on time (as restoreState relies on too).
    this.#applyNow = this.#clock.now - age;
    this.#applyingOwn = own;
    applyCheckedBatch(batch, this.#applyChange);
    if (!own) {
      this.counters.appliedBatches++;
      return;
    }
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

  #applyChange = (
    op: number,
    infoHash: Uint8Array,
    hashOffset: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
  ): void => {
    if (this.#access !== null && !this.#access.allows(infoHash, hashOffset)) {
      this.counters.forbidden++;
      return;
    }
    // Our own completions were counted when they happened; applied again they only refresh.
    // `seeder` is the origin's (left == 0): a "completed" with bytes left leaves a leecher, and
    // counts nowhere, as at the origin.
    const own = this.#applyingOwn;
    const completed = op === OP_COMPLETED;
    this.#store.announce(
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      op === OP_STOPPED ? 3 : completed && !own ? 1 : 0,
      seeder,
      0,
      this.#applyNow,
      this.#scratch,
      0,
    );
    if (own) this.counters.reapplied++;
    else this.counters.applied++;
  };
}

const idDecoder = new TextDecoder();

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

/** Orders two stream ids `ms-seq`. */
export function compareStreamIds(a: string, b: string): number {
  const aDash = a.indexOf("-");
  const bDash = b.indexOf("-");
  const aMs = Number(aDash < 0 ? a : a.slice(0, aDash));
  const bMs = Number(bDash < 0 ? b : b.slice(0, bDash));
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  const aSeq = aDash < 0 ? 0 : Number(a.slice(aDash + 1));
  const bSeq = bDash < 0 ? 0 : Number(b.slice(bDash + 1));
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}
