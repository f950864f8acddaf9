/**
 * What the cluster sync does when Redis loses what it was sent, checked at each reconnect:
 * - Redis came back empty (restarted without its data): the cluster config's epoch changed
 *   (clusterConfig.ts). Readers start over, a snapshot is written at once, and own late batches
 *   that will never be read back are dropped;
 * - a stream lost entries (a failover to a replica that had not received them): its tail is
 *   older than where this node is. Another node's stream is then read again from its start
 *   (shardReader.ts `checkTails`); this node's own has lost entries an XADD acknowledged.
 * Where this node's own changes were lost, the other nodes never saw them, and publishing the lost
 * batches again would not do (applied after newer changes, they would undo those), so the
 * re-publish window (publishRule.ts `republishBefore`) publishes each peer again at its next
 * announce, from the store as it is then.
 */
import type { ClusterCounters } from "./clusterCounters.ts";
import type { ClusterKeys } from "./clusterKeys.ts";
import type { LocalChanges } from "./publishRule.ts";
import type { PublishQueue } from "./publishQueue.ts";
import { compareStreamIds } from "./redisCommands.ts";
import { type RedisLink, textOf } from "./redisLink.ts";
import type { ShardReader } from "./shardReader.ts";
import type { SnapshotStore } from "./snapshotStore.ts";

export interface LossRecoveryOptions {
  keys: ClusterKeys;
  /** This node's instance, 16 hex digits: its streams' names. */
  instance: string;
  queue: PublishQueue;
  snapshots: SnapshotStore;
  changes: LocalChanges;
  counters: ClusterCounters;
  /** The tracker clock: whole seconds since start. */
  clock: { now: number };
  log: (line: string) => void;
}

export class LossRecovery {
  readonly #o: LossRecoveryOptions;
  /** The cluster config's epoch as last seen: another one means Redis lost its data. */
  #epoch = "";

  constructor(options: LossRecoveryOptions) {
    this.#o = options;
  }

  /** Notes the config's epoch read at a connect; returns whether Redis lost its data since. */
  epochChanged(seen: string): boolean {
    const lost = this.#epoch !== "" && seen !== this.#epoch;
    this.#epoch = seen;
    return lost;
  }

  /** Redis came back without the cluster's data: start over, and publish everyone again. */
  redisLostItsData(readers: readonly ShardReader[]): void {
    const { counters, queue, snapshots, changes, clock, log } = this.#o;
    counters.redisResets++;
    for (const reader of readers) {
      reader.resetTo("0-0");
      reader.dropOwnLate();
    }
    queue.streamsLost();
    snapshots.forget();
    // Stamps of this very second too: a peer published in it may be among the lost.
    changes.republishBefore = clock.now + 1;
    log(
      "cluster: Redis lost the cluster's data (restarted empty?); publishing every peer again " +
        "at its next announce",
    );
  }

  /**
   * After a reconnect to a Redis that kept its data: other nodes' streams that lost entries are
   * read again from their start; if our own lost acknowledged ones, their peers are published
   * again.
   */
  async checkTails(link: RedisLink, readers: readonly ShardReader[]): Promise<void> {
    for (const reader of readers) await reader.checkTails();
    const { keys, instance, queue, changes, counters, clock } = this.#o;
    for (let shard = 0; shard < queue.shards; shard++) {
      const acked = queue.lastAcked[shard];
      if (acked === "0-0") continue;
      const key = keys.nodeStream(shard, instance);
      const reply = await link.send(key, ["XREVRANGE", key, "+", "-", "COUNT", "1"]);
      if (!Array.isArray(reply)) throw new Error("unexpected XREVRANGE reply");
      const tail = Array.isArray(reply[0]) ? textOf(reply[0][0]) : "0-0";
      if (compareStreamIds(tail, acked) >= 0) continue;
      counters.lostEntries++;
      changes.republishBefore = clock.now + 1;
      queue.lastAcked[shard] = tail;
      readers[shard].dropOwnLate();
    }
  }
}
