/**
 * `GET /metrics`: the tracker's figures in the Prometheus text exposition format (version 0.0.4),
 * one HELP and TYPE line per family. Everything here is a counter or a value the store keeps up
 * to date, so a scrape costs a few hundred bytes of string work and no walk over the store.
 *
 * The families are tables, one per source (the store and full scrape, the HTTP servers, the UDP
 * listeners, the rate limiter, …), each row a name, a type, a help line and how to read the
 * samples; a source that is absent (no cluster, no rate limit) leaves its table out.
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { FullScrape } from "./fullScrape.ts";
import type { RateLimiter } from "../policy/rateLimit.ts";
import type { LoopLag } from "./loopLag.ts";
import { CLUSTER_FAMILIES } from "./clusterMetrics.ts";
import type { ClusterCounters } from "../cluster/clusterCounters.ts";
import { type Family, formatValue, renderFamilies, type Samples } from "./metricFamily.ts";
import type { StatsWalks } from "./statsWalks.ts";
import { type HttpServerCounters, REJECT_STATUSES } from "./httpServerCounters.ts";
import type { UdpListenerFailures, UdpSocketFailures } from "./udpSocketFailures.ts";
import type { TlsCounters } from "./tlsCounters.ts";
import { WS_FAMILIES, type WsCounters } from "./wsCounters.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_FULL_SCRAPE,
  ACTION_NAMES,
  ACTION_SCRAPE,
  PROTOCOL_HTTP,
  PROTOCOL_NAMES,
  PROTOCOL_UDP,
  REFUSAL_CONNECTION_ID,
  REFUSAL_NAMES,
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
  /** The WebSocket (WebTorrent) server; its metrics are left out without it. */
  ws?: WsCounters | null;
}

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** What every scrape reads: the store, the request counters, the full scrape, memory. */
interface CoreSources {
  store: SwarmTable;
  fullScrape: FullScrape;
  cleaning: CleaningTime;
  memory: Deno.MemoryUsage;
}

const STORE_FAMILIES: readonly Family<CoreSources>[] = [
  ["otter_torrents", "gauge", "Torrents held.", (s) => s.store.torrents],
  [
    "otter_peers",
    "gauge",
    "Peers held (seeders included), by family: IPv4, IPv6, ws (WebTorrent peers over WebSocket, " +
    "this node's and other cluster nodes').",
    (s) => [
      [`family="4"`, s.store.peers4],
      [`family="6"`, s.store.peers6],
      [`family="ws"`, s.store.peersWs],
    ],
  ],
  [
    "otter_seeders",
    "gauge",
    "Seeders held, by family (as otter_peers).",
    (s) => [
      [`family="4"`, s.store.seeders4],
      [`family="6"`, s.store.seeders6],
      [`family="ws"`, s.store.seedersWs],
    ],
  ],
  [
    "otter_full_scrape_builds_total",
    "counter",
    "Full scrape builds finished.",
    (s) => s.fullScrape.builds,
  ],
  [
    "otter_full_scrape_build_seconds_total",
    "counter",
    "Wall time of all full scrape builds (sliced, so the event loop kept running).",
    (s) => s.fullScrape.buildMsTotal / 1000,
  ],
  [
    "otter_full_scrape_last_build_seconds",
    "gauge",
    "Wall time of the last full scrape build (0 before the first).",
    (s) => (s.fullScrape.last?.buildMs ?? 0) / 1000,
  ],
  [
    "otter_full_scrape_last_build_torrents",
    "gauge",
    "Torrents in the last full scrape build.",
    (s) => s.fullScrape.last?.torrents ?? 0,
  ],
  [
    "otter_full_scrape_last_build_bytes",
    "gauge",
    "Size of the last full scrape build, by content encoding.",
    (s) => [
      [`encoding="identity"`, s.fullScrape.last?.plainBytes ?? 0],
      [`encoding="gzip"`, s.fullScrape.last?.gzipBytes ?? 0],
    ],
  ],
  [
    "otter_full_scrape_served_total",
    "counter",
    "Full scrapes served, by encoding.",
    (s) => [
      [`encoding="identity"`, s.fullScrape.servedPlain],
      [`encoding="gzip"`, s.fullScrape.servedGzip],
    ],
  ],
  [
    "otter_full_scrape_refused_total",
    "counter",
    "Full scrapes refused because full scrape is disabled.",
    (s) => s.fullScrape.refused,
  ],
  [
    "otter_full_scrape_served_bytes_total",
    "counter",
    "Full scrape body bytes served.",
    (s) => s.fullScrape.bytesServed,
  ],
  [
    "otter_clean_passes_total",
    "counter",
    "Completed passes of the expiry cleaner.",
    (s) => s.store.cleanPasses,
  ],
  [
    "otter_clean_steps_total",
    "counter",
    "Timed steps of the expiry cleaner.",
    (s) => s.cleaning.steps,
  ],
  [
    "otter_clean_seconds_total",
    "counter",
    "Time spent in the expiry cleaner.",
    (s) => s.cleaning.ms / 1000,
  ],
  [
    "otter_resident_memory_bytes",
    "gauge",
    "Resident set size of the process.",
    (s) => s.memory.rss,
  ],
  ["otter_heap_used_bytes", "gauge", "V8 heap in use.", (s) => s.memory.heapUsed],
  ["otter_heap_total_bytes", "gauge", "V8 heap reserved.", (s) => s.memory.heapTotal],
  [
    "otter_external_memory_bytes",
    "gauge",
    "Memory outside the V8 heap held by JavaScript objects (typed arrays).",
    (s) => s.memory.external,
  ],
  [
    "otter_store_bytes",
    "gauge",
    "Bytes of the peer store's typed arrays.",
    (s) => s.store.byteSize,
  ],
  [
    "otter_store_refused_total",
    "counter",
    "Announces refused at --max-torrents or --max-peers (--when-full refuse), by the cap hit.",
    (
      s,
    ) => [[`reason="torrents"`, s.store.refusedTorrents], [`reason="peers"`, s.store.refusedPeers]],
  ],
  [
    "otter_store_evicted_torrents_total",
    "counter",
    "Torrents evicted to make room at --max-torrents or --max-peers (--when-full evict).",
    (s) => s.store.evictedTorrents,
  ],
];

const HTTP_FAMILIES: readonly Family<HttpServerCounters>[] = [
  ["otter_http_connections", "gauge", "HTTP connections open.", (http) => http.open],
  [
    "otter_http_connections_refused_total",
    "counter",
    "HTTP connections closed at accept, unanswered, because --max-connections were open " +
    "(max_connections) or their address had --max-connections-per-ip open (per_ip).",
    (http) => [[`reason="max_connections"`, http.refused], [`reason="per_ip"`, http.refusedPerIp]],
  ],
  [
    "otter_http_connections_timed_out_total",
    "counter",
    "HTTP connections closed by a timeout: header (--header-timeout, no whole request head in " +
    "time), idle (--idle-timeout, idle between requests or not taking a reply) or send " +
    "(a reply going out below --min-send-rate).",
    (http) => [
      [`reason="header"`, http.headerTimeouts],
      [`reason="idle"`, http.idleTimeouts],
      [`reason="send"`, http.sendTimeouts],
    ],
  ],
  [
    "otter_http_pending_write_bytes",
    "gauge",
    "Bytes of replies waiting for HTTP clients that do not take them as fast as they come.",
    (http) => http.pendingWriteBytes,
  ],
  [
    "otter_http_rejected_requests_total",
    "counter",
    "HTTP requests answered with an error and a close before the tracker saw them, by status: " +
    "400 malformed head, 405 CONNECT/TRACE, 414 request line over 8 KiB, 431 head over " +
    "8 KiB, 505 HTTP/2 or later, 500 a route failed.",
    (http) => REJECT_STATUSES.map((status) => [`status="${status}"`, http.rejectedWith(status)]),
  ],
];

/** Left out without `--https` listeners. */
const TLS_FAMILIES: readonly Family<TlsCounters>[] = [
  [
    "otter_tls_handshake_failures_total",
    "counter",
    "TLS connections whose handshake failed on a TLS error: not TLS (plain HTTP on the port), " +
    "a client refusing the certificate, nothing in common to speak. A client that never finishes " +
    "its handshake is closed by --header-timeout and counted there.",
    (tls) => tls.handshakeFailures,
  ],
  [
    "otter_tls_handshakes_abandoned_total",
    "counter",
    "TLS connections otter closed before their handshake ended (--header-timeout, a connection " +
    "cap, a shutdown); Deno keeps each such socket open until its client sends or leaves.",
    (tls) => tls.handshakesAbandoned,
  ],
  [
    "otter_tls_certificate_reloads_total",
    "counter",
    "Certificate reloads on SIGHUP: ok (the files' certificate now serves every --https " +
    "listener) or failed (refused; the old certificate stays in service).",
    (tls) => [[`result="ok"`, tls.reloads], [`result="failed"`, tls.reloadFailures]],
  ],
  [
    "otter_tls_certificate_expiry_timestamp_seconds",
    "gauge",
    "When the certificate in service expires (its notAfter), in seconds since the Unix epoch; " +
    "0 when it could not be read.",
    (tls) => tls.certificateNotAfter,
  ],
];

/** A UDP socket loop figure as samples: one per listener. */
function perListener(
  figure: (failures: UdpSocketFailures) => number,
): (listeners: readonly UdpListenerFailures[]) => Samples {
  return (listeners) =>
    listeners.map((udp) => [`listener="${udp.listener}",io="${udp.io}"`, figure(udp.failures())]);
}

const UDP_SOCKET_FAMILIES: readonly Family<readonly UdpListenerFailures[]>[] = [
  [
    "otter_udp_truncated_total",
    "counter",
    "UDP datagrams longer than the 2048-byte receive slot, ignored, by listener and I/O path.",
    perListener((f) => f.truncated),
  ],
  [
    "otter_udp_handler_errors_total",
    "counter",
    "UDP datagrams left unanswered because handling them threw (a bug; the first is logged).",
    perListener((f) => f.handlerErrors),
  ],
  [
    "otter_udp_receive_errors_total",
    "counter",
    "Failed UDP receive calls (other than nothing queued or an interrupted call).",
    perListener((f) => f.receiveErrors),
  ],
  [
    "otter_udp_send_dropped_total",
    "counter",
    "UDP replies not sent: socket send buffer full or a send error.",
    perListener((f) => f.sendDropped),
  ],
];

const RATE_LIMIT_FAMILIES: readonly Family<RateLimiter>[] = [
  [
    "otter_udp_rate_limited_total",
    "counter",
    "UDP datagrams dropped without a reply by --rate-limit.",
    (limiter) => limiter.limited,
  ],
  [
    "otter_udp_rate_limit_shared_total",
    "counter",
    "UDP datagrams charged to another source's bucket because the bucket table set was busy.",
    (limiter) => limiter.shared,
  ],
  [
    "otter_udp_rate_limit_sources",
    "gauge",
    "Sources (IPv4 addresses, IPv6 /64s) whose bucket is not full: seen in about the last second.",
    (limiter) => limiter.sources(performance.now()),
  ],
  [
    "otter_udp_rate_limit_per_second",
    "gauge",
    "UDP requests per second allowed per source (0: no limit).",
    (limiter) => limiter.perSecond,
  ],
];

const LOOP_LAG_FAMILIES: readonly Family<LoopLag>[] = [
  [
    "otter_event_loop_lag_max_seconds",
    "gauge",
    "Longest event-loop pause since start (lateness of a 10 ms timer).",
    (lag) => lag.maxMs / 1000,
  ],
  [
    "otter_event_loop_lag_recent_max_seconds",
    "gauge",
    "Longest event-loop pause in the last 60 seconds.",
    (lag) => lag.recentMaxMs() / 1000,
  ],
];

const STATS_WALK_FAMILIES: readonly Family<StatsWalks>[] = [
  [
    "otter_stats_walks_total",
    "counter",
    "Walks over the whole store for /stats: torrents (sorted snapshot: top10, top100, completed, " +
    "statedump) and peers (renew); each shared by all requests for a second.",
    (walks) => [[`walk="torrents"`, walks.torrentBuilds], [`walk="peers"`, walks.peerBuilds]],
  ],
];

const PROCESS_FAMILIES: readonly Family<MetricsSources>[] = [
  [
    "otter_uptime_seconds",
    "gauge",
    "Seconds since the tracker started.",
    (sources) => sources.uptimeSeconds(),
  ],
  [
    "otter_build_info",
    "gauge",
    "Always 1; the version is a label.",
    (sources) => [[`version="${sources.version}"`, 1]],
  ],
];

/**
 * The protocols that count answers by the client's family and refusals by reason; the WebSocket
 * tracker counts its refusals by its own reasons (otter_ws_refused_total).
 */
const SERVED_PROTOCOLS = [PROTOCOL_HTTP, PROTOCOL_UDP] as const;

/** The finer request counters: answered by the client's family, refused by reason. */
const REQUEST_DETAIL_FAMILIES: readonly Family<RequestCounters>[] = [
  [
    "otter_answered_total",
    "counter",
    "Announces and scrapes answered (result ok), by protocol, action and the client's address " +
    "family.",
    (c) =>
      SERVED_PROTOCOLS.flatMap((p) =>
        [ACTION_ANNOUNCE, ACTION_SCRAPE].flatMap((a) =>
          ([4, 6] as const).map((family) =>
            [
              `protocol="${PROTOCOL_NAMES[p]}",action="${ACTION_NAMES[a]}",family="${family}"`,
              c.getFamily(p, a, family),
            ] as const
          )
        )
      ),
  ],
  [
    "otter_refused_total",
    "counter",
    "Requests answered with an error, by protocol and reason (bad_request: unreadable; " +
    "access_denied: not on the access list; connection_id: a UDP connection id not issued or " +
    "expired). Also counted as errors in otter_requests_total.",
    (c) =>
      SERVED_PROTOCOLS.flatMap((p) =>
        REFUSAL_NAMES.flatMap((name, reason) =>
          p === PROTOCOL_HTTP && reason === REFUSAL_CONNECTION_ID ? [] : [
            [
              `protocol="${PROTOCOL_NAMES[p]}",reason="${name}"`,
              c.getRefused(p, reason),
            ] as const,
          ]
        )
      ),
  ],
];

/** `otter_requests_total`: one series per protocol, action and result that can happen. */
function renderRequests(lines: string[], counters: RequestCounters): void {
  const name = "otter_requests_total";
  lines.push(
    `# HELP ${name} Requests handled, by protocol, action and result (dropped: ignored without a ` +
      "reply).",
    `# TYPE ${name} counter`,
  );
  for (let p = 0; p < PROTOCOL_NAMES.length; p++) {
    for (let a = 0; a < ACTION_NAMES.length; a++) {
      // UDP has no full scrape, HTTP no connect, WebSocket neither: leave out series that can
      // never move.
      if (p !== PROTOCOL_HTTP && a === ACTION_FULL_SCRAPE) continue;
      if (p !== PROTOCOL_UDP && a === ACTION_CONNECT) continue;
      for (let r = 0; r < RESULT_NAMES.length; r++) {
        const labels = `protocol="${PROTOCOL_NAMES[p]}",action="${ACTION_NAMES[a]}",result="${
          RESULT_NAMES[r]
        }"`;
        lines.push(`${name}{${labels}} ${formatValue(counters.get(p, a, r))}`);
      }
    }
  }
}

/** Renders every metric; label values are fixed names, so no escaping is needed. */
export function renderMetrics(sources: MetricsSources): string {
  const lines: string[] = [];
  renderRequests(lines, sources.counters);
  renderFamilies(lines, REQUEST_DETAIL_FAMILIES, sources.counters);
  const { store, fullScrape, cleaning } = sources;
  renderFamilies(lines, STORE_FAMILIES, {
    store,
    fullScrape,
    cleaning,
    memory: Deno.memoryUsage(),
  });
  if (sources.http !== undefined) renderFamilies(lines, HTTP_FAMILIES, sources.http);
  if (sources.http !== undefined && sources.http.tls.listeners > 0) {
    renderFamilies(lines, TLS_FAMILIES, sources.http.tls);
  }
  if (sources.udp !== undefined && sources.udp.length > 0) {
    renderFamilies(lines, UDP_SOCKET_FAMILIES, sources.udp);
  }
  if (sources.rateLimit !== undefined) {
    renderFamilies(lines, RATE_LIMIT_FAMILIES, sources.rateLimit);
  }
  if (sources.loopLag !== undefined) renderFamilies(lines, LOOP_LAG_FAMILIES, sources.loopLag);
  if (sources.cluster !== undefined && sources.cluster !== null) {
    renderFamilies(lines, CLUSTER_FAMILIES, sources.cluster);
  }
  if (sources.statsWalks !== undefined) {
    renderFamilies(lines, STATS_WALK_FAMILIES, sources.statsWalks);
  }
  if (sources.ws !== undefined && sources.ws !== null) {
    renderFamilies(lines, WS_FAMILIES, sources.ws);
  }
  renderFamilies(lines, PROCESS_FAMILIES, sources);
  return lines.join("\n") + "\n";
}
