/**
 * What the cluster sync counts, for /metrics and /stats: its link's state, what it published and
 * applied, and what it refused or dropped. Plain number fields, bumped in place by the sync, its
 * gate (batchGate.ts) and its applier (streamApply.ts).
 *
 * startTracker.ts makes them before the cluster's code loads, so this module imports only types:
 * the formats' modules import `node:crypto` (batchMac.ts), which an otter without --cluster never
 * loads (docs/performance.md → Idle RSS).
 */
import type { RejectedCounts } from "./batchGate.ts";
import type { RedisFigures } from "./redisInfo.ts";

/** Why a snapshot chunk or manifest was refused (`otter_cluster_rejected_total{kind="snapshot"}`). */
export interface SnapshotRejects {
  /** Truncated, damaged (checksum), another format, a structure that does not add up. */
  malformed: number;
  /** Larger than a node writes: read only up to the limit, never whole. */
  oversized: number;
  /** Not sealed with this cluster's secret and name. */
  bad_mac: number;
  /** Sound, but of another shard, snapshot version or index than the manifest names. */
  mismatched: number;
}

export function newSnapshotRejects(): SnapshotRejects {
  return { malformed: 0, oversized: 0, bad_mac: 0, mismatched: 0 };
}

/** Why a signal was refused (`otter_cluster_ws_signals_refused_total{reason}`). */
export interface SignalRejects {
  /** Truncated, damaged (checksum), of another version or kind, not UTF-8, too long an SDP. */
  malformed: number;
  /** Over MAX_SIGNAL_BYTES: read past, never whole. */
  oversized: number;
  /** Not sealed with this cluster's secret and name. */
  bad_mac: number;
  /** Sent over SIGNAL_TTL_MS ago (or as far ahead), on Redis's clock: a replay or a stale one. */
  expired: number;
  /** For another node (a tag two nodes drew), or for a peer this node no longer holds. */
  not_ours: number;
  /** Over the rate a node takes in (wtRelay.ts). */
  rate: number;
  /** Sound, but answering no offer this node relayed (unsolicited, answered, over 120 s). */
  no_offer: number;
  /** An offer this node already forwarded to that peer, and still pending: a replay. */
  replayed: number;
}

export function newSignalRejects(): SignalRejects {
  return {
    malformed: 0,
    oversized: 0,
    bad_mac: 0,
    expired: 0,
    not_ours: 0,
    rate: 0,
    no_offer: 0,
    replayed: 0,
  };
}

/** What the sync counts of WebTorrent signals between nodes (wtRelay.ts). */
export interface SignalCounters {
  sentOffers: number;
  sentAnswers: number;
  /** Bytes of signals published, and received on the listening connection (wire). */
  sentBytes: number;
  receivedBytes: number;
  /** Sound signals for this node handed to the WebSocket tracker. */
  receivedOffers: number;
  receivedAnswers: number;
  /** Signals not sent: Redis away, over the rate, too many in flight, an SDP too long, a failed publish. */
  dropped: {
    disconnected: number;
    rate: number;
    backlog: number;
    oversized: number;
    failed: number;
  };
  /** Signals received and refused, by reason. */
  refused: SignalRejects;
}

/** What the sync counts of snapshots (snapshotStore.ts). */
export interface SnapshotCounters {
  written: number;
  loaded: number;
  /** Bytes of chunks in the shards' current snapshots, as last seen. */
  bytes: number;
  /** Age in seconds of the oldest shard's current snapshot (0 without one). */
  ageSeconds: number;
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
  /** Times an origin's sequence skipped numbers (entries missing: trimmed unread, or lost). */
  gaps: number;
  /** Changes from this node's own late batches, applied again in stream order. */
  reapplied: number;
  /** Local changes never published: recorder ring full, queue over its limit, or too old. */
  droppedChanges: number;
  /** Times a connection was established, the first included. */
  connects: number;
  /** Times Redis came back without the cluster's data (restarted empty): everything republished. */
  redisResets: number;
  /** Times this node's own stream had lost acknowledged entries (a failover): peers republished. */
  lostEntries: number;
  /** Local refreshes not published: they changed nothing and their peer was published this epoch. */
  suppressedRefreshes: number;
  /** Batch bytes this node appended (payload), and bytes its readers received (wire). */
  publishedBytes: number;
  readBytes: number;
  /** What each Redis server said of itself at the last INFO poll (redisInfo.ts). */
  redis: RedisFigures[];
  /** Snapshots written and loaded, their size and age (snapshotStore.ts). */
  snapshots: SnapshotCounters;
  /** Snapshot chunks and manifests refused, by reason (snapshotFormat.ts). */
  snapshotRejected: SnapshotRejects;
  /** WebTorrent signals relayed between nodes (wtRelay.ts). */
  signals: SignalCounters;
}

/** Counters at zero, disconnected. */
export function newClusterCounters(): ClusterCounters {
  return {
    state: "disconnected",
    published: 0,
    publishedChanges: 0,
    applied: 0,
    appliedBatches: 0,
    forbidden: 0,
    rejected: { malformed: 0, oversized: 0, bad_mac: 0, replayed: 0 },
    staleBatches: 0,
    ownBatches: 0,
    gaps: 0,
    reapplied: 0,
    droppedChanges: 0,
    connects: 0,
    redisResets: 0,
    lostEntries: 0,
    suppressedRefreshes: 0,
    publishedBytes: 0,
    readBytes: 0,
    redis: [],
    snapshots: { written: 0, loaded: 0, bytes: 0, ageSeconds: 0 },
    snapshotRejected: newSnapshotRejects(),
    signals: {
      sentOffers: 0,
      sentAnswers: 0,
      sentBytes: 0,
      receivedBytes: 0,
      receivedOffers: 0,
      receivedAnswers: 0,
      dropped: { disconnected: 0, rate: 0, backlog: 0, oversized: 0, failed: 0 },
      refused: newSignalRejects(),
    },
  };
}
