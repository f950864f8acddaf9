/**
 * What the cluster sync lets in from its stream. Each entry read from Redis passes, in order:
 *
 * 1. shape: one field `b` holding bytes, at most MAX_BATCH_BYTES of them (the reader,
 *    streamReader.ts, never held more: a bigger value arrives as its length only), else the entry
 *    is refused as "oversized" or "malformed";
 * 2. the node's own batches, not marked late, are skipped (they were applied when they happened);
 * 3. the batch's structure and checksum (`checkBatch`), and its shard the one whose stream it was
 *    read from, else "malformed";
 * 4. the MAC under the cluster secret (batchMac.ts), else "bad_mac", logged once per claimed node
 *    id: a node with another secret shows as one line, not one per batch;
 * 5. its age, from the publish time its origin stamped into it (authenticated, unlike the entry's
 *    stream id, which an XADD may set), plus the delay it waited before that: a batch older than
 *    the peer timeout is skipped as stale, so an old batch added again is never applied;
 * 6. its sequence number against the last one applied from the same origin (instance and shard),
 *    else "replayed": an authentic batch added again within the peer timeout, or one XADD retried
 *    after a lost reply, is applied once. A receiver that never read the original (it was trimmed
 *    away first) applies the copy once, with its true age: the same peers, expiring when they
 *    would. A sequence that skips numbers is applied and counted in `gaps`: entries of that origin
 *    went missing (trimmed before this node read them, or lost in a failover).
 *
 * Only batches that passed 4 reach the sequence map, so its size is bounded by the authentic
 * origins seen within a peer timeout (every restart of a node is a new origin), and capped.
 */
import {
  batchDelay,
  batchInstanceKey,
  batchIsFrom,
  batchIsLate,
  batchNodeId,
  batchPublishTime,
  batchSequence,
  batchShard,
  checkBatch,
  MAX_BATCH_BYTES,
} from "./changeBatch.ts";
import type { BatchMac } from "./batchMac.ts";
import { OversizedValue } from "./streamReader.ts";

/** The stream entry field that carries a batch. */
export const BATCH_FIELD = "b";

/** Why stream entries were refused, by reason (`otter_cluster_rejected_total{reason}`). */
export interface RejectedCounts {
  malformed: number;
  oversized: number;
  bad_mac: number;
  replayed: number;
}

export const REJECT_REASONS: readonly (keyof RejectedCounts)[] = [
  "malformed",
  "oversized",
  "bad_mac",
  "replayed",
];

export interface GateCounters {
  rejected: RejectedCounts;
  /** Batches skipped as older than the peer timeout (own late ones included). */
  staleBatches: number;
  /** This node's own batches read back and skipped. */
  ownBatches: number;
  /** Times an origin's sequence skipped numbers: its entries went missing before we read them. */
  gaps: number;
}

/** What `admit` decided; the batch and its age are set when `apply` is true. */
export interface Admission {
  apply: boolean;
  batch: Uint8Array;
  /** Whole seconds since the batch's changes happened at its origin. */
  age: number;
  /** Whether it is one of this node's own (late) batches. */
  own: boolean;
  /** Whether its origin's sequence skipped numbers before it (counted in `gaps`). */
  gap: boolean;
}

/** Node ids named in "fails authentication" lines; more are counted but not logged. */
const MAX_LOGGED_NODES = 8;
/** Origins whose last sequence number is kept; past it the least recently heard go. */
const MAX_ORIGINS = 4096;

const FIELD_NAME = new TextEncoder().encode(BATCH_FIELD);

export class BatchGate {
  readonly #mac: BatchMac;
  readonly #instance: Uint8Array;
  readonly #peerTimeoutMs: number;
  readonly #counters: GateCounters;
  readonly #log: (line: string) => void;
  /** Last sequence applied and its publish time, per origin instance, least recent first. */
  readonly #origins = new Map<string, { sequence: number; publishedMs: number }>();
  readonly #loggedNodes = new Set<string>();
  #loggedOversized = false;
  readonly #result: Admission = {
    apply: false,
    batch: new Uint8Array(0),
    age: 0,
    own: false,
    gap: false,
  };

  constructor(
    mac: BatchMac,
    instance: Uint8Array,
    peerTimeoutSeconds: number,
    counters: GateCounters,
    log: (line: string) => void,
  ) {
    this.#mac = mac;
    this.#instance = instance;
    this.#peerTimeoutMs = peerTimeoutSeconds * 1000;
    this.#counters = counters;
    this.#log = log;
  }

  /**
   * Judges one entry (`fields` as the reader gave them) read from a stream of `shard` at
   * `redisNowMs` on Redis's clock. The returned object is reused by the next call.
   */
  admit(id: string, fields: unknown, redisNowMs: number, shard = 0): Admission {
    const result = this.#result;
    result.apply = false;
    result.own = false;
    result.gap = false;
    const batch = this.#batchOf(id, fields);
    if (batch === null) return result;
    const own = batchIsFrom(batch, this.#instance);
    if (own) {
      this.#counters.ownBatches++;
      if (!batchIsLate(batch)) return result;
    }
    if (checkBatch(batch) !== null || batchShard(batch) !== shard) return this.#reject("malformed");
    if (!this.#mac.verify(batch)) {
      this.#logBadMac(batch);
      return this.#reject("bad_mac");
    }
    const publishedMs = batchPublishTime(batch);
    const age = Math.max(0, Math.floor((redisNowMs - publishedMs) / 1000)) + batchDelay(batch);
    if (age * 1000 >= this.#peerTimeoutMs) {
      this.#counters.staleBatches++;
      return result;
    }
    if (!this.#firstTime(batch, publishedMs, redisNowMs)) return this.#reject("replayed");
    result.apply = true;
    result.batch = batch;
    result.age = age;
    result.own = own;
    return result;
  }

  #batchOf(id: string, fields: unknown): Uint8Array | null {
    if (!Array.isArray(fields) || fields.length !== 2 || !sameBytes(fields[0], FIELD_NAME)) {
      this.#reject("malformed");
      return null;
    }
    const value: unknown = fields[1];
    const oversized = value instanceof OversizedValue ||
      (value instanceof Uint8Array && value.length > MAX_BATCH_BYTES);
    if (oversized) {
      const length = (value as { length: number }).length;
      if (!this.#loggedOversized) {
        this.#loggedOversized = true;
        this.#log(
          `cluster: refusing stream entries over ${MAX_BATCH_BYTES} bytes, unread (the first: ` +
            `${length} bytes, entry ${id}); counted as rejected, reason "oversized"`,
        );
      }
      this.#reject("oversized");
      return null;
    }
    if (!(value instanceof Uint8Array)) {
      this.#reject("malformed");
      return null;
    }
    return value;
  }

  #reject(reason: keyof RejectedCounts): Admission {
    this.#counters.rejected[reason]++;
    return this.#result;
  }

  #logBadMac(batch: Uint8Array): void {
    const node = printable(batchNodeId(batch));
    if (this.#loggedNodes.has(node) || this.#loggedNodes.size >= MAX_LOGGED_NODES) return;
    this.#loggedNodes.add(node);
    this.#log(
      `cluster: refusing batches from node "${node}": they fail authentication (another ` +
        `--cluster-secret-file, none, or forged); logged once per node, counted as rejected, ` +
        `reason "bad_mac"`,
    );
  }

  /** Records the batch's sequence number; false if its origin's last one was not lower. */
  #firstTime(batch: Uint8Array, publishedMs: number, redisNowMs: number): boolean {
    const key = `${batchInstanceKey(batch)}:${batchShard(batch)}`;
    const sequence = batchSequence(batch);
    const origins = this.#origins;
    const last = origins.get(key);
    if (last !== undefined && sequence <= last.sequence) return false;
    if (last !== undefined && sequence > last.sequence + 1) {
      this.#counters.gaps++;
      this.#result.gap = true;
    }
    origins.delete(key);
    origins.set(key, { sequence, publishedMs });
    if (last === undefined && origins.size > 64) this.#forgetOldOrigins(redisNowMs);
    return true;
  }

  /** Drops origins silent for a peer timeout (their batches are stale by now), then any excess. */
  #forgetOldOrigins(redisNowMs: number): void {
    const origins = this.#origins;
    for (const [key, last] of origins) {
      if (redisNowMs - last.publishedMs > this.#peerTimeoutMs) origins.delete(key);
    }
    for (const key of origins.keys()) {
      if (origins.size <= MAX_ORIGINS) break;
      origins.delete(key);
    }
  }
}

function sameBytes(value: unknown, expected: Uint8Array): boolean {
  if (!(value instanceof Uint8Array) || value.length !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (value[i] !== expected[i]) return false;
  return true;
}

/** A node id from the stream as printable ASCII, for a log line. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").replace(/["\\]/g, "?");
}
