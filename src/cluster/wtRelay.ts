/**
 * WebTorrent across nodes, the Redis side: a node publishes a signal (an offer for a WebSocket
 * peer on another node, or the answer to one: wtSignal.ts) on the channel of the node it is for,
 * and listens on its own channel (clusterKeys.ts `signals(tag)`; PUBLISH / SUBSCRIBE on a
 * standalone Redis, the sharded SPUBLISH / SSUBSCRIBE on a Redis Cluster, so a signal goes to its
 * channel's master only, not over the whole cluster bus). Pub/sub rather than a stream: a signal
 * is worthless two minutes later, so nothing is stored, and one lost costs the client a retry at
 * its next announce.
 *
 * Bounds: the listening connection is a bounded reader (streamReader.ts): a message over
 * MAX_SIGNAL_BYTES is read past, never whole, and counted; each message is checked whole (size,
 * checksum, MAC under the cluster secret and name, version) and refused, counted by reason, if it
 * is not for this node's tag, was sent over SIGNAL_TTL_MS ago or ahead on Redis's clock (a replay
 * or a stale one), or comes over MAX_SIGNALS_PER_SECOND. Outgoing signals are dropped (counted)
 * while Redis is away, over the same rate, or past MAX_IN_FLIGHT unanswered publishes. Redis
 * itself disconnects a subscriber that falls too far behind (client-output-buffer-limit pubsub);
 * the session then starts over like any lost connection.
 *
 * The listener runs inside the sync's session (redisCluster.ts): connected after the shard
 * readers, read beside them (`listen`), ended with them.
 */
import { Buffer } from "node:buffer";
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import type { ClusterKeys } from "./clusterKeys.ts";
import type { ClusterCounters } from "./clusterCounters.ts";
import type { RedisLink } from "./redisLink.ts";
import { withTimeout } from "./redisCommands.ts";
import { OversizedValue, StreamReaderConnection } from "./streamReader.ts";
import {
  decodeSignal,
  encodeSignal,
  MAX_SIGNAL_BYTES,
  SIGNAL_TTL_MS,
  type SignalMac,
} from "./wtSignalFormat.ts";
import { SIGNAL_ANSWER, SIGNAL_OFFER, type SignalRelay, WtSignal } from "./wtSignal.ts";

/** Signals a node sends, and takes in, per second at most (a burst of twice that). */
export const MAX_SIGNALS_PER_SECOND = 2000;
/** Publishes waiting for Redis's reply; past it new signals are dropped. */
const MAX_IN_FLIGHT = 1024;

export interface WtRelayOptions {
  keys: ClusterKeys;
  /** This node's tag (wsPeerKeys.ts). */
  tag: number;
  mac: SignalMac;
  counters: ClusterCounters;
  commandTimeoutMs: number;
  /** Milliseconds since the epoch on Redis's clock, as the sync estimates it. */
  redisNowMs: () => number;
  log: (line: string) => void;
  /** Signals per second each way (default MAX_SIGNALS_PER_SECOND). */
  perSecond?: number;
}

/** A token bucket: `perSecond` refilled continuously, up to twice that. */
class Bucket {
  #tokens: number;
  #at = performance.now();
  constructor(readonly perSecond: number) {
    this.#tokens = 2 * perSecond;
  }
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(
      2 * this.perSecond,
      this.#tokens + (now - this.#at) * this.perSecond / 1000,
    );
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

export class WtRelay implements SignalRelay {
  readonly tag: number;
  deliver: (signal: WtSignal) => void = () => {};
  readonly #o: WtRelayOptions;
  readonly #channel: string;
  readonly #out: Bucket;
  readonly #in: Bucket;
  readonly #received = new WtSignal();
  #link: RedisLink | null = null;
  #sharded = false;
  #listener: StreamReaderConnection | null = null;
  #inFlight = 0;
  /** The last subscribe refusal logged, so each is logged once. */
  #loggedRefusal = "";

  constructor(options: WtRelayOptions) {
    this.#o = options;
    this.tag = options.tag;
    this.#channel = options.keys.signals(options.tag);
    const perSecond = options.perSecond ?? MAX_SIGNALS_PER_SECOND;
    this.#out = new Bucket(perSecond);
    this.#in = new Bucket(perSecond);
  }

  /**
   * Subscribes to this node's channel on `link`'s Redis (its slot's master on a Redis Cluster).
   * A Redis that refuses the subscription (a Redis Cluster before 7.0 has no SSUBSCRIBE, or an
   * ACL) is logged once and left: the session goes on without signals from other nodes.
   */
  async connect(link: RedisLink): Promise<void> {
    this.destroy();
    this.#sharded = link.isCluster;
    const listener = new StreamReaderConnection(link.urlFor(link.masterFor(this.#channel)), {
      maxValueBytes: MAX_SIGNAL_BYTES,
      keepElements: [3],
    });
    this.#listener = listener;
    const ms = this.#o.commandTimeoutMs;
    await withTimeout(listener.connect(), ms, listener);
    try {
      await withTimeout(
        listener.sendCommand([this.#sharded ? "SSUBSCRIBE" : "SUBSCRIBE", this.#channel]),
        ms,
        listener,
      );
    } catch (error) {
      if (!(error instanceof ErrorReply)) throw error;
      listener.destroy();
      this.#listener = null;
      if (this.#loggedRefusal !== error.message) {
        this.#loggedRefusal = error.message;
        this.#o.log(
          `cluster: Redis refused the WebTorrent signal channel (${error.message}); offers ` +
            "reach only WebSocket peers on this node",
        );
      }
    }
    this.#link = link;
  }

  /** Whether signals from other nodes are being listened for. */
  get listening(): boolean {
    return this.#listener !== null;
  }

  /**
   * Reads and handles messages while `current()` holds (the sync's session is the one that
   * connected it); rejects when the connection is lost, which ends the session.
   */
  async listen(current: () => boolean): Promise<void> {
    while (current()) await this.readOnce();
  }

  /** Reads and handles one message; rejects when the connection is lost (the session ends). */
  async readOnce(): Promise<void> {
    const listener = this.#listener;
    if (listener === null) throw new Error("not listening");
    const before = listener.bytesRead;
    const message = await listener.receive();
    this.#o.counters.signals.receivedBytes += listener.bytesRead - before;
    if (!Array.isArray(message) || message.length !== 3) return;
    const kind = message[0] instanceof Uint8Array ? new TextDecoder().decode(message[0]) : "";
    if (kind === "sunsubscribe") throw new Error("the signal channel's slot moved");
    if (kind !== "message" && kind !== "smessage") return;
    this.#handle(message[2]);
  }

  #handle(payload: unknown): void {
    const refused = this.#o.counters.signals.refused;
    if (payload instanceof OversizedValue) {
      refused.oversized++;
      return;
    }
    if (!(payload instanceof Uint8Array)) {
      refused.malformed++;
      return;
    }
    const signal = this.#received;
    const reason = decodeSignal(payload, this.#o.mac, signal);
    if (reason !== null) {
      refused[reason]++;
      return;
    }
    if (signal.toTag !== this.tag) {
      refused.not_ours++;
      return;
    }
    if (Math.abs(this.#o.redisNowMs() - signal.sentAtMs) > SIGNAL_TTL_MS) {
      refused.expired++;
      return;
    }
    if (!this.#in.take()) {
      refused.rate++;
      return;
    }
    const counts = this.#o.counters.signals;
    if (signal.kind === SIGNAL_OFFER) counts.receivedOffers++;
    else counts.receivedAnswers++;
    this.deliver(signal);
  }

  send(signal: WtSignal): boolean {
    const counts = this.#o.counters.signals;
    const link = this.#link;
    if (link === null || this.#o.counters.state !== "connected") {
      counts.dropped.disconnected++;
      return false;
    }
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      counts.dropped.backlog++;
      return false;
    }
    if (!this.#out.take()) {
      counts.dropped.rate++;
      return false;
    }
    signal.fromTag = this.tag;
    signal.sentAtMs = this.#o.redisNowMs();
    const bytes = encodeSignal(signal, this.#o.mac);
    if (bytes === null) {
      counts.dropped.oversized++;
      return false;
    }
    const channel = this.#o.keys.signals(signal.toTag);
    const value = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    this.#inFlight++;
    link.send(channel, [this.#sharded ? "SPUBLISH" : "PUBLISH", channel, value])
      .catch(() => counts.dropped.failed++)
      .finally(() => this.#inFlight--);
    if (signal.kind === SIGNAL_ANSWER) counts.sentAnswers++;
    else counts.sentOffers++;
    counts.sentBytes += bytes.length;
    return true;
  }

  /** Counts a signal the tracker refused after it was delivered. */
  refused(reason: "not_ours" | "no_offer" | "replayed"): void {
    this.#o.counters.signals.refused[reason]++;
  }

  /** Closes the listening connection (the session ended); sends are dropped until `connect`. */
  destroy(): void {
    this.#link = null;
    this.#listener?.destroy();
    this.#listener = null;
  }
}
