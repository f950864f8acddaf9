/**
 * What a cluster sync (redisCluster.ts) is given: where Redis is, who this node is, the store it
 * shares, and the timings and bounds of its parts, each with its default.
 */
import type { AccessPolicy } from "../policy/accessList.ts";
import type { ClusterCounters } from "./clusterCounters.ts";
import type { SnapshotOptions } from "./snapshotStore.ts";
import type { ClusterStore } from "./streamApply.ts";
import type { WsPeerKeys } from "./wsPeerKeys.ts";

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
