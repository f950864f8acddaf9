/**
 * The cluster sync's publish queue: local changes taken from the recorder as batches by shard
 * every flush, queued (bounded: the oldest go first, counted) while Redis is away, and appended
 * in order to this node's own stream of each batch's shard (clusterKeys.ts), trimmed as it goes.
 *
 * A batch gets its shard's next sequence number when it is first sent, and keeps it if the XADD
 * is retried (its reply lost), so receivers apply it once and a number that never arrives means
 * an entry went missing in Redis (batchGate.ts counts gaps).
 *
 * Order: every node applies other nodes' changes in stream order, but its own at once, so two
 * nodes that change the same peer at nearly the same time may disagree about it until it
 * announces again or expires. Changes queued during an outage make that likely, so a batch
 * published after a reconnect is marked late (`markLate`) and its origin applies it again at its
 * place in the stream order (shardReader.ts keeps it until then): every node then ends with the
 * stream's last word on each peer. Reapplying an old change can undo a newer local one, so batches
 * taken while queued ones are unapplied, or before one was reapplied, are marked late too
 * ("follow-ups"), and so is a batch that changes a peer a follow-up changed, if that follow-up
 * may be reapplied after it: the window closes for a peer once no unapplied late batch of ours
 * holds it.
 */
import { Buffer } from "node:buffer";
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import {
  applyCheckedBatch,
  batchIsQueued,
  batchRecordCount,
  batchSequence,
  batchShard,
  markLate,
  setPublishTime,
  setSequence,
} from "./changeBatch.ts";
import type { ChangeRecorder } from "./changeRecorder.ts";
import type { BatchMac } from "./batchMac.ts";
import { BATCH_FIELD } from "./batchGate.ts";
import type { ClusterCounters } from "./clusterCounters.ts";
import type { ClusterKeys } from "./clusterKeys.ts";
import type { RedisLink } from "./redisLink.ts";

interface PendingBatch {
  batch: Uint8Array;
  shard: number;
  count: number;
  /** performance.now() when it was taken: its wait is elapsed time, which a wall step must not fake. */
  takenAtMs: number;
  /** The session (connects) when it was taken, or -1 if taken while disconnected. */
  session: number;
  /** performance.now() of the flush before the one that took it: its changes came after. */
  previousFlushAt: number;
  /** How it is marked when published (see markLate); "queued" ones count in #queuedUnread. */
  mark: "none" | "followUp" | "queued";
  /** Its sequence number once first sent (0 before). */
  sequence: number;
}

/** An own batch marked late only because it followed others (see `#followsUp`). */
interface FollowUp {
  shard: number;
  sequence: number;
  peers: Set<number>;
  /** performance.now() when it was applied again here, or -1. */
  appliedAt: number;
}

/** How often a publishing node renews its place in a shard's registry. */
const REGISTER_EVERY_MS = 10_000;

export interface PublishQueueOptions {
  recorder: ChangeRecorder;
  mac: BatchMac;
  keys: ClusterKeys;
  /** This node's instance, 16 hex digits: its streams' names. */
  instance: string;
  counters: ClusterCounters;
  log: (line: string) => void;
  peerTimeout: number;
  maxPendingBytes: number;
}

/** What a publish needs from the session. */
export interface PublishSession {
  link: RedisLink;
  /** The session's number (counters.connects when it connected). */
  session: number;
  redisNowMs: () => number;
  /** Entries of shard s older than this id's ms are trimmed at each XADD. */
  trimBeforeMs: (shard: number) => number;
  /** An own late batch was acknowledged with `id`: its shard's reader applies it in order. */
  ownLate: (shard: number, id: string, batch: Uint8Array) => void;
  /** Whether the session is still the current one. */
  current: () => boolean;
}

export class PublishQueue {
  /** Shards of the cluster; 0 until known (the first connect): nothing is taken before. */
  shards = 0;
  readonly #options: PublishQueueOptions;
  readonly #pending: PendingBatch[] = [];
  #pendingBytes = 0;
  /** Sequence numbers given so far, per shard. */
  #sequences: number[] = [];
  /** Own stream's last acknowledged id per shard, and when the registry was last renewed. */
  readonly lastAcked: string[] = [];
  /** Batch bytes published per shard. */
  publishedBytes: number[] = [];
  #registeredAt: number[] = [];
  /** Own queued batches marked for publishing and not yet reapplied. */
  #queuedUnread = 0;
  /** Own follow-up batches published, in order, until applied before newer changes were made. */
  readonly #followUps: FollowUp[] = [];
  /** performance.now() when an own queued batch was last reapplied. */
  #lastQueuedReapplyAt = -Infinity;
  #lastFlushAt = 0;
  #publishing: Promise<void> | null = null;
  /** The error of the last refused XADD while Redis keeps refusing, else null. */
  #publishRefused: string | null = null;

  constructor(options: PublishQueueOptions) {
    this.#options = options;
  }

  /** Sets the cluster's shard count (once known). */
  setShards(shards: number): void {
    if (shards === this.shards) return;
    this.shards = shards;
    this.#sequences = new Array(shards).fill(0);
    this.lastAcked.length = 0;
    for (let s = 0; s < shards; s++) this.lastAcked.push("0-0");
    this.#registeredAt = new Array(shards).fill(-Infinity);
    this.publishedBytes = new Array(shards).fill(0);
  }

  get pendingBatches(): number {
    return this.#pending.length;
  }

  /** Tells the queue one of its late batches (queued or a follow-up) was applied again in order. */
  lateReapplied(batch: Uint8Array): void {
    const now = performance.now();
    if (batchIsQueued(batch)) {
      this.#queuedUnread = Math.max(0, this.#queuedUnread - 1);
      this.#lastQueuedReapplyAt = now;
    }
    // A shard's late batches are applied in the order they were published: earlier ones not
    // applied by now were lost with their stream.
    const shard = batchShard(batch);
    const sequence = batchSequence(batch);
    for (const followUp of this.#followUps) {
      if (followUp.shard !== shard || followUp.sequence > sequence) continue;
      if (followUp.appliedAt < 0) followUp.appliedAt = now;
    }
  }

  /**
   * The streams were lost (Redis restarted empty): late batches there will never be applied.
   * What the other nodes had not read yet is lost with them: the re-publish window
   * (publishRule.ts) publishes each peer again at its next announce. Publishing the lost batches
   * again would not do: some nodes had applied them, and applied after newer changes they would
   * undo those (a stop, a completion counted twice).
   */
  streamsLost(): void {
    this.#queuedUnread = 0;
    this.#followUps.length = 0;
    for (const pending of this.#pending) if (pending.mark === "queued") this.#queuedUnread++;
    for (let s = 0; s < this.shards; s++) this.lastAcked[s] = "0-0";
    this.#registeredAt.fill(-Infinity);
  }

  /** Registers again at the next publish (a new session). */
  registerAgain(): void {
    this.#registeredAt.fill(-Infinity);
  }

  /** Takes the recorder's changes into the queue; `session` is -1 while disconnected. */
  flush(session: number): void {
    const { recorder, counters } = this.#options;
    if (recorder.dropped > 0) {
      counters.droppedChanges += recorder.dropped;
      recorder.dropped = 0;
    }
    if (this.shards === 0) return;
    const takenAtMs = performance.now();
    const previousFlushAt = this.#lastFlushAt;
    this.#lastFlushAt = takenAtMs;
    for (const batch of recorder.takeAll(this.shards)) {
      this.#pending.push({
        batch,
        shard: batchShard(batch),
        count: batchRecordCount(batch),
        takenAtMs,
        session,
        previousFlushAt,
        mark: "none",
        sequence: 0,
      });
      this.#pendingBytes += batch.length;
    }
    while (this.#pendingBytes > this.#options.maxPendingBytes) this.#dropOldest();
  }

  #dropOldest(): void {
    const dropped = this.#pending.shift()!;
    this.#pendingBytes -= dropped.batch.length;
    if (dropped.mark === "queued") this.#queuedUnread = Math.max(0, this.#queuedUnread - 1);
    this.#options.counters.droppedChanges += dropped.count;
  }

  /** Starts publishing what is queued, unless a publish is running. */
  publish(session: PublishSession): void {
    if (this.#publishing !== null || this.#pending.length === 0) return;
    this.#publishing = this.#publishLoop(session).finally(() => (this.#publishing = null));
  }

  /** Resolves when the publish in progress (if any) is done. */
  async settled(): Promise<void> {
    if (this.#publishing !== null) await this.#publishing;
  }

  async #publishLoop(session: PublishSession): Promise<void> {
    const { keys, instance, counters, mac, peerTimeout, log } = this.#options;
    const link = session.link;
    try {
      while (this.#pending.length > 0 && session.current()) {
        const next = this.#pending[0];
        const waitedSeconds = (performance.now() - next.takenAtMs) / 1000;
        if (waitedSeconds >= peerTimeout) {
          this.#dropOldest();
          continue;
        }
        this.#forgetFollowUpsBefore(next.previousFlushAt);
        const shard = next.shard;
        if (next.sequence === 0) next.sequence = ++this.#sequences[shard];
        if (next.mark !== "queued" && next.session !== session.session) {
          next.mark = "queued";
          this.#queuedUnread++;
        } else if (next.mark === "none" && this.#followsLate(next)) {
          next.mark = "followUp";
          this.#followUps.push({
            shard,
            sequence: next.sequence,
            peers: peersOf(next.batch),
            appliedAt: -1,
          });
        }
        setSequence(next.batch, next.sequence);
        if (next.mark !== "none") markLate(next.batch, waitedSeconds, next.mark === "queued");
        const redisNowMs = session.redisNowMs();
        setPublishTime(next.batch, redisNowMs);
        mac.seal(next.batch);
        const key = keys.nodeStream(shard, instance);
        const minId = Math.max(0, Math.floor(session.trimBeforeMs(shard)));
        const value = Buffer.from(next.batch.buffer, next.batch.byteOffset, next.batch.length);
        // Pipelined: the stream of a node that stops goes away a peer timeout later, and the
        // registry names it while it publishes.
        const sent: Promise<unknown>[] = [
          link.send(key, ["XADD", key, "MINID", "~", String(minId), "*", BATCH_FIELD, value]),
          link.send(key, ["PEXPIRE", key, String(peerTimeout * 1000)]),
        ];
        const registered = performance.now() - this.#registeredAt[shard] < REGISTER_EVERY_MS;
        if (!registered) sent.push(...this.#register(link, shard, redisNowMs));
        const [id] = await Promise.all(sent);
        if (!registered) this.#registeredAt[shard] = performance.now();
        const entryId = id instanceof Uint8Array ? new TextDecoder().decode(id) : String(id);
        this.lastAcked[shard] = entryId;
        if (this.#pending[0] === next) {
          this.#pending.shift();
          this.#pendingBytes -= next.batch.length;
        }
        if (next.mark !== "none") {
          session.ownLate(shard, entryId, next.batch);
          // Wake the shard's readers, ours among them, so it is applied within a round trip,
          // not after a blocked read's timeout (sent after its XADD was acknowledged: see
          // shardReader.ts addOwnLate).
          const hello = keys.hello(shard);
          link.send(hello, ["XADD", hello, "MAXLEN", "~", "64", "*", "w", instance]).catch(
            () => {},
          );
        }
        counters.published++;
        counters.publishedChanges += next.count;
        counters.publishedBytes += next.batch.length;
        this.publishedBytes[shard] += next.batch.length;
        if (this.#publishRefused !== null) {
          this.#publishRefused = null;
          log("cluster: Redis accepts changes again");
        }
      }
    } catch (error) {
      if (error instanceof ErrorReply) {
        // Redis answered but refused (out of memory, say): the connection is fine, so keep it
        // and the batch, and try again at the next flush.
        if (this.#publishRefused === null) {
          log(`cluster: Redis refuses changes (${error.message}); queueing, retrying`);
        }
        this.#publishRefused = error.message;
        return;
      }
      // The session is broken; its readers notice and reconnect. The batch stays queued.
      if (session.current()) link.destroy();
    }
  }

  /**
   * Whether a batch must be late: an own queued batch may be reapplied after its changes, or an
   * own follow-up that changed one of the same peers may (one not applied yet, or applied after
   * the flush before the one that took this batch). Reapplied, that older change would undo the
   * newer one here alone; marked late, the newer one is applied again after it.
   */
  #followsLate(next: PendingBatch): boolean {
    if (this.#queuedUnread > 0 || this.#lastQueuedReapplyAt >= next.previousFlushAt) return true;
    const followUps = this.#followUps;
    if (followUps.length === 0) return false;
    for (const peer of peersOf(next.batch)) {
      for (const followUp of followUps) if (followUp.peers.has(peer)) return true;
    }
    return false;
  }

  /** Drops the follow-ups applied before `ms`: changes made after it are safe from them. */
  #forgetFollowUpsBefore(ms: number): void {
    const followUps = this.#followUps;
    while (followUps.length > 0 && followUps[0].appliedAt >= 0 && followUps[0].appliedAt < ms) {
      followUps.shift();
    }
  }

  /**
   * Names this instance in shard s's registry (scored by Redis's clock), drops instances silent
   * for a peer timeout, and says hello so blocked readers look at the registry now.
   */
  #register(link: RedisLink, shard: number, redisNowMs: number): Promise<unknown>[] {
    const { keys, instance, peerTimeout } = this.#options;
    const nodes = keys.nodes(shard);
    const hello = keys.hello(shard);
    const now = Math.floor(redisNowMs);
    const first = this.#registeredAt[shard] === -Infinity;
    const sent = [
      link.send(nodes, ["ZADD", nodes, String(now), instance]),
      link.send(nodes, ["ZREMRANGEBYSCORE", nodes, "-inf", `(${now - peerTimeout * 1000}`]),
      link.send(nodes, ["PEXPIRE", nodes, String(peerTimeout * 2000)]),
    ];
    if (first) {
      sent.push(link.send(hello, ["XADD", hello, "MAXLEN", "~", "64", "*", "i", instance]));
      sent.push(link.send(hello, ["PEXPIRE", hello, String(peerTimeout * 2000)]));
    }
    return sent;
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
