/**
 * `GET /metrics`: the tracker's figures in the Prometheus text exposition format (version 0.0.4),
 * one HELP and TYPE line per family. Everything here is a counter or a value the store keeps up
 * to date, so a scrape costs a few hundred bytes of string work and no walk over the store.
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { FullScrape } from "./fullScrape.ts";
import type { RateLimiter } from "../policy/rateLimit.ts";
import type { LoopLag } from "./loopLag.ts";
import type { ClusterCounters } from "../cluster/redisCluster.ts";
import type { StatsWalks } from "./statsWalks.ts";
import { type HttpServerCounters, REJECT_STATUSES } from "./httpServerCounters.ts";
import type { UdpListenerFailures, UdpSocketFailures } from "./udpSocketFailures.ts";
import {
  ACTION_CONNECT,
  ACTION_FULL_SCRAPE,
  ACTION_NAMES,
  PROTOCOL_HTTP,
  PROTOCOL_NAMES,
  PROTOCOL_UDP,
  type RequestCounters,
  RESULT_NAMES,
} from "./requestCounters.ts";

/** Time the cleaner spends; the server's clean timer adds to it. */
export class CleaningTime {
  steps = 0;
  ms = 0;

  add(ms: number): void {
    this.steps++;
    this.ms += ms;
  }
}

export interface MetricsSources {
  store: SwarmTable;
  counters: RequestCounters;
  fullScrape: FullScrape;
  cleaning: CleaningTime;
  /** Whole seconds since start. */
  uptimeSeconds(): number;
  version: string;
  /** `--rate-limit` state (UDP); its metrics are left out without it. */
  rateLimit?: RateLimiter;
  /** Event-loop pause monitor; its metrics are left out without it. */
  loopLag?: LoopLag;
  /** The cluster link (`--cluster`); its metrics are left out when standalone. */
  cluster?: ClusterCounters | null;
  /** What the HTTP servers turned away (all listeners); its metrics are left out without it. */
  http?: HttpServerCounters;
  /** The UDP listeners' socket loops; their metrics are left out when there are none. */
  udp?: readonly UdpListenerFailures[];
  /** The walks /stats shares; its metric is left out without it. */
  statsWalks?: StatsWalks;
}

/** The UDP socket loops' counters: metric name, help, field. */
const UDP_SOCKET_FAMILIES: readonly [string, string, keyof UdpSocketFailures][] = [
  [
    "otter_udp_truncated_total",
    "UDP datagrams longer than the 2048-byte receive slot, ignored, by listener and I/O path.",
    "truncated",
  ],
  [
    "otter_udp_handler_errors_total",
    "UDP datagrams left unanswered because handling them threw (a bug; the first is logged).",
    "handlerErrors",
  ],
  [
    "otter_udp_receive_errors_total",
    "Failed UDP receive calls (other than nothing queued or an interrupted call).",
    "receiveErrors",
  ],
  [
    "otter_udp_send_dropped_total",
    "UDP replies not sent: socket send buffer full or a send error.",
    "sendDropped",
  ],
];

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

class Exposition {
  readonly lines: string[] = [];

  family(name: string, type: "counter" | "gauge", help: string): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, value: number, labels = ""): this {
    this.lines.push(`${name}${labels === "" ? "" : `{${labels}}`} ${formatValue(value)}`);
    return this;
  }
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Renders every metric; label values are fixed names, so no escaping is needed. */
export function renderMetrics(sources: MetricsSources): string {
  const { store, counters, fullScrape, cleaning } = sources;
  const out = new Exposition();

  out.family(
    "otter_requests_total",
    "counter",
    "Requests handled, by protocol, action and result (dropped: ignored without a reply).",
  );
  for (let p = 0; p < PROTOCOL_NAMES.length; p++) {
    for (let a = 0; a < ACTION_NAMES.length; a++) {
      // UDP has no full scrape, HTTP no connect: leave out series that can never move.
      if (p === PROTOCOL_UDP && a === ACTION_FULL_SCRAPE) continue;
      if (p === PROTOCOL_HTTP && a === ACTION_CONNECT) continue;
      for (let r = 0; r < RESULT_NAMES.length; r++) {
        out.sample(
          "otter_requests_total",
          counters.get(p, a, r),
          `protocol="${PROTOCOL_NAMES[p]}",action="${ACTION_NAMES[a]}",result="${RESULT_NAMES[r]}"`,
        );
      }
    }
  }

  out.family("otter_torrents", "gauge", "Torrents held.")
    .sample("otter_torrents", store.torrents);
  out.family("otter_peers", "gauge", "Peers held (seeders included), by address family.")
    .sample("otter_peers", store.peers4, `family="4"`)
    .sample("otter_peers", store.peers6, `family="6"`);
  out.family("otter_seeders", "gauge", "Seeders held, by address family.")
    .sample("otter_seeders", store.seeders4, `family="4"`)
    .sample("otter_seeders", store.seeders6, `family="6"`);

  const last = fullScrape.last;
  out.family("otter_full_scrape_builds_total", "counter", "Full scrape builds finished.")
    .sample("otter_full_scrape_builds_total", fullScrape.builds);
  out.family(
    "otter_full_scrape_build_seconds_total",
    "counter",
    "Wall time of all full scrape builds (sliced, so the event loop kept running).",
  ).sample("otter_full_scrape_build_seconds_total", fullScrape.buildMsTotal / 1000);
  out.family(
    "otter_full_scrape_last_build_seconds",
    "gauge",
    "Wall time of the last full scrape build (0 before the first).",
  ).sample("otter_full_scrape_last_build_seconds", last === null ? 0 : last.buildMs / 1000);
  out.family(
    "otter_full_scrape_last_build_torrents",
    "gauge",
    "Torrents in the last full scrape build.",
  ).sample("otter_full_scrape_last_build_torrents", last === null ? 0 : last.torrents);
  out.family(
    "otter_full_scrape_last_build_bytes",
    "gauge",
    "Size of the last full scrape build, by content encoding.",
  )
    .sample(
      "otter_full_scrape_last_build_bytes",
      last === null ? 0 : last.plainBytes,
      `encoding="identity"`,
    )
    .sample(
      "otter_full_scrape_last_build_bytes",
      last === null ? 0 : last.gzipBytes,
      `encoding="gzip"`,
    );
  out.family("otter_full_scrape_served_total", "counter", "Full scrapes served, by encoding.")
    .sample("otter_full_scrape_served_total", fullScrape.servedPlain, `encoding="identity"`)
    .sample("otter_full_scrape_served_total", fullScrape.servedGzip, `encoding="gzip"`);
  out.family(
    "otter_full_scrape_refused_total",
    "counter",
    "Full scrapes refused because full scrape is disabled.",
  ).sample("otter_full_scrape_refused_total", fullScrape.refused);
  out.family("otter_full_scrape_served_bytes_total", "counter", "Full scrape body bytes served.")
    .sample("otter_full_scrape_served_bytes_total", fullScrape.bytesServed);

  out.family("otter_clean_passes_total", "counter", "Completed passes of the expiry cleaner.")
    .sample("otter_clean_passes_total", store.cleanPasses);
  out.family("otter_clean_steps_total", "counter", "Timed steps of the expiry cleaner.")
    .sample("otter_clean_steps_total", cleaning.steps);
  out.family("otter_clean_seconds_total", "counter", "Time spent in the expiry cleaner.")
    .sample("otter_clean_seconds_total", cleaning.ms / 1000);

  const memory = Deno.memoryUsage();
  out.family("otter_resident_memory_bytes", "gauge", "Resident set size of the process.")
    .sample("otter_resident_memory_bytes", memory.rss);
  out.family("otter_heap_used_bytes", "gauge", "V8 heap in use.")
    .sample("otter_heap_used_bytes", memory.heapUsed);
  out.family("otter_heap_total_bytes", "gauge", "V8 heap reserved.")
    .sample("otter_heap_total_bytes", memory.heapTotal);
  out.family(
    "otter_external_memory_bytes",
    "gauge",
    "Memory outside the V8 heap held by JavaScript objects (typed arrays).",
  ).sample("otter_external_memory_bytes", memory.external);
  out.family("otter_store_bytes", "gauge", "Bytes of the peer store's typed arrays.")
    .sample("otter_store_bytes", store.byteSize);
  out.family(
    "otter_store_refused_total",
    "counter",
    "Announces refused at --max-torrents or --max-peers (--when-full refuse), by the cap hit.",
  )
    .sample("otter_store_refused_total", store.refusedTorrents, `reason="torrents"`)
    .sample("otter_store_refused_total", store.refusedPeers, `reason="peers"`);
  out.family(
    "otter_store_evicted_torrents_total",
    "counter",
    "Torrents evicted to make room at --max-torrents or --max-peers (--when-full evict).",
  ).sample("otter_store_evicted_torrents_total", store.evictedTorrents);

  const http = sources.http;
  if (http !== undefined) {
    out.family("otter_http_connections", "gauge", "HTTP connections open.")
      .sample("otter_http_connections", http.open);
    out.family(
      "otter_http_connections_refused_total",
      "counter",
      "HTTP connections closed at accept, unanswered, because --max-connections were open " +
        "(max_connections) or their address had --max-connections-per-ip open (per_ip).",
    )
      .sample("otter_http_connections_refused_total", http.refused, `reason="max_connections"`)
      .sample("otter_http_connections_refused_total", http.refusedPerIp, `reason="per_ip"`);
    out.family(
      "otter_http_connections_timed_out_total",
      "counter",
      "HTTP connections closed by a timeout: header (--header-timeout, no whole request head in " +
        "time), idle (--idle-timeout, idle between requests or not taking a reply) or send " +
        "(a reply going out below --min-send-rate).",
    )
      .sample("otter_http_connections_timed_out_total", http.headerTimeouts, `reason="header"`)
      .sample("otter_http_connections_timed_out_total", http.idleTimeouts, `reason="idle"`)
      .sample("otter_http_connections_timed_out_total", http.sendTimeouts, `reason="send"`);
    out.family(
      "otter_http_pending_write_bytes",
      "gauge",
      "Bytes of replies waiting for HTTP clients that do not take them as fast as they come.",
    ).sample("otter_http_pending_write_bytes", http.pendingWriteBytes);
    out.family(
      "otter_http_rejected_requests_total",
      "counter",
      "HTTP requests answered with an error and a close before the tracker saw them, by status: " +
        "400 malformed head, 405 CONNECT/TRACE, 414 request line over 8 KiB, 431 head over " +
        "8 KiB, 505 HTTP/2 or later, 500 a route failed.",
    );
    for (const status of REJECT_STATUSES) {
      out.sample(
        "otter_http_rejected_requests_total",
        http.rejectedWith(status),
        `status="${status}"`,
      );
    }
  }
  const udp = sources.udp ?? [];
  if (udp.length > 0) {
    const figures = udp.map((listener) => listener.failures());
    for (const [name, help, field] of UDP_SOCKET_FAMILIES) {
      out.family(name, "counter", help);
      for (let i = 0; i < udp.length; i++) {
        out.sample(name, figures[i][field], `listener="${udp[i].listener}",io="${udp[i].io}"`);
      }
    }
  }
  const limiter = sources.rateLimit;
  if (limiter !== undefined) {
    out.family(
      "otter_udp_rate_limited_total",
      "counter",
      "UDP datagrams dropped without a reply by --rate-limit.",
    ).sample("otter_udp_rate_limited_total", limiter.limited);
    out.family(
      "otter_udp_rate_limit_shared_total",
      "counter",
      "UDP datagrams charged to another source's bucket because the bucket table set was busy.",
    ).sample("otter_udp_rate_limit_shared_total", limiter.shared);
    out.family(
      "otter_udp_rate_limit_sources",
      "gauge",
      "Sources (IPv4 addresses, IPv6 /64s) whose bucket is not full: seen in about the last second.",
    ).sample("otter_udp_rate_limit_sources", limiter.sources(performance.now()));
    out.family(
      "otter_udp_rate_limit_per_second",
      "gauge",
      "UDP requests per second allowed per source (0: no limit).",
    ).sample("otter_udp_rate_limit_per_second", limiter.perSecond);
  }
  const loopLag = sources.loopLag;
  if (loopLag !== undefined) {
    out.family(
      "otter_event_loop_lag_max_seconds",
      "gauge",
      "Longest event-loop pause since start (lateness of a 10 ms timer).",
    ).sample("otter_event_loop_lag_max_seconds", loopLag.maxMs / 1000);
    out.family(
      "otter_event_loop_lag_recent_max_seconds",
      "gauge",
      "Longest event-loop pause in the last 60 seconds.",
    ).sample("otter_event_loop_lag_recent_max_seconds", loopLag.recentMaxMs() / 1000);
  }
  const cluster = sources.cluster;
  if (cluster !== undefined && cluster !== null) {
    out.family("otter_cluster_connected", "gauge", "1 while the Redis link is up, else 0.")
      .sample("otter_cluster_connected", cluster.state === "connected" ? 1 : 0);
    out.family("otter_cluster_published_changes_total", "counter", "Local changes published.")
      .sample("otter_cluster_published_changes_total", cluster.publishedChanges);
    out.family("otter_cluster_applied_changes_total", "counter", "Other nodes' changes applied.")
      .sample("otter_cluster_applied_changes_total", cluster.applied);
    out.family(
      "otter_cluster_forbidden_changes_total",
      "counter",
      "Other nodes' changes skipped: the access list forbids their torrent.",
    ).sample("otter_cluster_forbidden_changes_total", cluster.forbidden);
    const rejected = out.family(
      "otter_cluster_rejected_total",
      "counter",
      "Stream entries refused: malformed, oversized (never read in), bad_mac (not signed with " +
        "the cluster secret), replayed (a batch already applied).",
    );
    for (const [reason, count] of Object.entries(cluster.rejected)) {
      rejected.sample("otter_cluster_rejected_total", count, `reason="${reason}"`);
    }
    out.family(
      "otter_cluster_dropped_changes_total",
      "counter",
      "Local changes dropped because the queue was full during an outage.",
    ).sample("otter_cluster_dropped_changes_total", cluster.droppedChanges);
    out.family("otter_cluster_connects_total", "counter", "Connections made to Redis.")
      .sample("otter_cluster_connects_total", cluster.connects);
  }

  const walks = sources.statsWalks;
  if (walks !== undefined) {
    out.family(
      "otter_stats_walks_total",
      "counter",
      "Walks over the whole store for /stats: torrents (sorted snapshot: top10, top100, completed, " +
        "statedump) and peers (renew); each shared by all requests for a second.",
    )
      .sample("otter_stats_walks_total", walks.torrentBuilds, `walk="torrents"`)
      .sample("otter_stats_walks_total", walks.peerBuilds, `walk="peers"`);
  }
  out.family("otter_uptime_seconds", "gauge", "Seconds since the tracker started.")
    .sample("otter_uptime_seconds", sources.uptimeSeconds());
  out.family("otter_build_info", "gauge", "Always 1; the version is a label.")
    .sample("otter_build_info", 1, `version="${sources.version}"`);
  return out.lines.join("\n") + "\n";
}
