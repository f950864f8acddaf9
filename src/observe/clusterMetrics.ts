/**
 * The cluster's metric families (`otter_cluster_*`): the Redis link, changes published and
 * applied, refusals, snapshots, Redis's own memory and bytes, WebTorrent signals between nodes.
 */
import type { ClusterCounters } from "../cluster/clusterCounters.ts";
import type { Family } from "./metricFamily.ts";

export const CLUSTER_FAMILIES: readonly Family<ClusterCounters>[] = [
  [
    "otter_cluster_connected",
    "gauge",
    "1 while the Redis link is up, else 0.",
    (cluster) => cluster.state === "connected" ? 1 : 0,
  ],
  [
    "otter_cluster_published_changes_total",
    "counter",
    "Local changes published.",
    (cluster) => cluster.publishedChanges,
  ],
  [
    "otter_cluster_suppressed_refreshes_total",
    "counter",
    "Local refreshes not published: they changed nothing and their peer was published within " +
    "the refresh epoch (--cluster-refresh).",
    (cluster) => cluster.suppressedRefreshes,
  ],
  [
    "otter_cluster_applied_changes_total",
    "counter",
    "Other nodes' changes applied.",
    (cluster) => cluster.applied,
  ],
  [
    "otter_cluster_forbidden_changes_total",
    "counter",
    "Other nodes' changes skipped: the access list forbids their torrent.",
    (cluster) => cluster.forbidden,
  ],
  [
    "otter_cluster_rejected_total",
    "counter",
    "Stream entries refused: malformed, oversized (never read in), bad_mac (not signed with " +
    "the cluster secret), replayed (a batch already applied).",
    (cluster) => Object.entries(cluster.rejected).map(([reason, n]) => [`reason="${reason}"`, n]),
  ],
  [
    "otter_cluster_snapshot_rejected_total",
    "counter",
    "Snapshot chunks and manifests refused: malformed, oversized (never read whole), bad_mac " +
    "(not sealed with this cluster's secret and name), mismatched (not the chunk its manifest " +
    "names).",
    (cluster) =>
      Object.entries(cluster.snapshotRejected).map(([reason, n]) => [`reason="${reason}"`, n]),
  ],
  [
    "otter_cluster_snapshots_written_total",
    "counter",
    "Shard snapshots this node wrote to Redis.",
    (cluster) => cluster.snapshots.written,
  ],
  [
    "otter_cluster_snapshots_loaded_total",
    "counter",
    "Shard snapshots this node loaded when it joined.",
    (cluster) => cluster.snapshots.loaded,
  ],
  [
    "otter_cluster_snapshot_bytes",
    "gauge",
    "Bytes of the shards' current snapshots in Redis, as last seen.",
    (cluster) => cluster.snapshots.bytes,
  ],
  [
    "otter_cluster_snapshot_age_seconds",
    "gauge",
    "Age of the oldest shard's current snapshot.",
    (cluster) => cluster.snapshots.ageSeconds,
  ],
  [
    "otter_cluster_gaps_total",
    "counter",
    "Times another node's batches were missing from its stream (trimmed before this node read " +
    "them, or lost by Redis).",
    (cluster) => cluster.gaps,
  ],
  [
    "otter_cluster_redis_resets_total",
    "counter",
    "Times Redis came back without the cluster's data; every peer is then published again.",
    (cluster) => cluster.redisResets,
  ],
  [
    "otter_cluster_dropped_changes_total",
    "counter",
    "Local changes dropped because the queue was full during an outage.",
    (cluster) => cluster.droppedChanges,
  ],
  [
    "otter_cluster_published_bytes_total",
    "counter",
    "Bytes of change batches this node appended to Redis.",
    (cluster) => cluster.publishedBytes,
  ],
  [
    "otter_cluster_read_bytes_total",
    "counter",
    "Bytes this node's stream readers received from Redis (replies' framing included).",
    (cluster) => cluster.readBytes,
  ],
  [
    "otter_cluster_redis_used_memory_bytes",
    "gauge",
    "Memory Redis uses (INFO used_memory), per server, as last polled (every 10 s).",
    (cluster) => cluster.redis.map((r) => [`redis="${r.server}"`, r.usedMemory]),
  ],
  [
    "otter_cluster_redis_net_input_bytes_total",
    "counter",
    "Bytes Redis received from all its clients (INFO total_net_input_bytes; restarts with it).",
    (cluster) => cluster.redis.map((r) => [`redis="${r.server}"`, r.netInputBytes]),
  ],
  [
    "otter_cluster_redis_net_output_bytes_total",
    "counter",
    "Bytes Redis sent to all its clients (INFO total_net_output_bytes; restarts with it).",
    (cluster) => cluster.redis.map((r) => [`redis="${r.server}"`, r.netOutputBytes]),
  ],
  [
    "otter_cluster_redis_net_input_bytes_per_second",
    "gauge",
    "Bytes a second Redis received between the last two polls.",
    (cluster) => cluster.redis.map((r) => [`redis="${r.server}"`, r.inputPerSecond]),
  ],
  [
    "otter_cluster_redis_net_output_bytes_per_second",
    "gauge",
    "Bytes a second Redis sent between the last two polls.",
    (cluster) => cluster.redis.map((r) => [`redis="${r.server}"`, r.outputPerSecond]),
  ],
  [
    "otter_cluster_connects_total",
    "counter",
    "Connections made to Redis.",
    (cluster) => cluster.connects,
  ],
  [
    "otter_cluster_ws_signals_sent_total",
    "counter",
    "WebTorrent offers and answers this node sent to other nodes through Redis.",
    (cluster) => [
      ['kind="offer"', cluster.signals.sentOffers],
      ['kind="answer"', cluster.signals.sentAnswers],
    ],
  ],
  [
    "otter_cluster_ws_signals_received_total",
    "counter",
    "WebTorrent offers and answers from other nodes taken in (sound, for this node, in time).",
    (cluster) => [
      ['kind="offer"', cluster.signals.receivedOffers],
      ['kind="answer"', cluster.signals.receivedAnswers],
    ],
  ],
  [
    "otter_cluster_ws_signals_refused_total",
    "counter",
    "WebTorrent signals from Redis refused: malformed, oversized (never read whole), bad_mac, " +
    "expired (over 120 s), not_ours (another node's, or no such peer), rate, no_offer (an " +
    "answer to no offer sent), replayed (an offer already forwarded).",
    (cluster) =>
      Object.entries(cluster.signals.refused).map(([reason, n]) => [`reason="${reason}"`, n]),
  ],
  [
    "otter_cluster_ws_signals_dropped_total",
    "counter",
    "WebTorrent signals for other nodes not sent: disconnected, rate, backlog, oversized, failed.",
    (cluster) =>
      Object.entries(cluster.signals.dropped).map(([reason, n]) => [`reason="${reason}"`, n]),
  ],
  [
    "otter_cluster_ws_signal_bytes_total",
    "counter",
    "Bytes of WebTorrent signals published (out) and received on the signal channel (in).",
    (cluster) => [
      ['direction="out"', cluster.signals.sentBytes],
      ['direction="in"', cluster.signals.receivedBytes],
    ],
  ],
];
