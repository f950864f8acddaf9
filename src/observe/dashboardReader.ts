/**
 * The dashboard history's reader for otter: fills History's row from the counters and gauges otter
 * already keeps (the same ones /stats and /metrics read). Sources are described by the few fields
 * read, so the servers' objects (RequestCounters, SwarmTable, HttpServerCounters, RateLimiter,
 * ClusterCounters) fit as they are.
 *
 * Series with no source yet stay NaN and the page hides them: announces and scrapes by family,
 * WebSocket, and the reasons bad request / access denied / bad connection id, until otter counts
 * them (see the dashboard's README entry). Announces and scrapes count answered requests (result
 * ok), like /stats; error replies are the `errors.*` series.
 */
import { SERIES_INDEX } from "./history.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_NAMES,
  ACTION_SCRAPE,
  PROTOCOL_HTTP,
  PROTOCOL_UDP,
  RESULT_DROPPED,
  RESULT_ERROR,
  RESULT_OK,
} from "./requestCounters.ts";

export interface DashboardReaderSources {
  requests: { get(protocol: number, action: number, result: number): number };
  store: {
    readonly torrents: number;
    readonly peers4: number;
    readonly peers6: number;
    readonly seeders4: number;
    readonly seeders6: number;
    readonly refusedTorrents: number;
    readonly refusedPeers: number;
  };
  http?: {
    readonly open: number;
    readonly refused: number;
    readonly headerTimeouts: number;
    readonly idleTimeouts: number;
    readonly rejected: number;
  };
  rateLimit?: { readonly limited: number };
  /** Longest event-loop pause since the previous call, in ms (the reader calls it once a second). */
  loopLagMs?: () => number;
  /** The cluster link's counters, or null when standalone. */
  cluster?: () => {
    state: "connected" | "disconnected";
    applied: number;
    publishedChanges: number;
  } | null;
  /** Process memory; default Deno.memoryUsage. */
  memory?: () => { rss: number; heapUsed: number };
}

const I = SERIES_INDEX;

/** A History reader over `sources`: `new History(dashboardReader(sources))`. */
export function dashboardReader(sources: DashboardReaderSources): (into: Float64Array) => void {
  const requests = sources.requests;
  const sumResult = (protocol: number, result: number) => {
    let total = 0;
    for (let a = 0; a < ACTION_NAMES.length; a++) total += requests.get(protocol, a, result);
    return total;
  };
  const memory = sources.memory ?? (() => Deno.memoryUsage());
  return (into) => {
    into[I["announces.http"]] = requests.get(PROTOCOL_HTTP, ACTION_ANNOUNCE, RESULT_OK);
    into[I["announces.udp"]] = requests.get(PROTOCOL_UDP, ACTION_ANNOUNCE, RESULT_OK);
    into[I["scrapes.http"]] = requests.get(PROTOCOL_HTTP, ACTION_SCRAPE, RESULT_OK);
    into[I["scrapes.udp"]] = requests.get(PROTOCOL_UDP, ACTION_SCRAPE, RESULT_OK);
    into[I["connects.udp"]] = requests.get(PROTOCOL_UDP, ACTION_CONNECT, RESULT_OK);
    into[I["errors.http"]] = sumResult(PROTOCOL_HTTP, RESULT_ERROR);
    into[I["errors.udp"]] = sumResult(PROTOCOL_UDP, RESULT_ERROR);
    into[I["refused.udp_dropped"]] = sumResult(PROTOCOL_UDP, RESULT_DROPPED);

    const store = sources.store;
    into[I["refused.store_full"]] = store.refusedTorrents + store.refusedPeers;
    into[I["peers.seeders.v4"]] = store.seeders4;
    into[I["peers.leechers.v4"]] = store.peers4 - store.seeders4;
    into[I["peers.seeders.v6"]] = store.seeders6;
    into[I["peers.leechers.v6"]] = store.peers6 - store.seeders6;
    into[I["torrents"]] = store.torrents;

    const http = sources.http;
    if (http !== undefined) {
      into[I["connections.http"]] = http.open;
      into[I["refused.http_rejected"]] = http.rejected;
      into[I["refused.http_max_connections"]] = http.refused;
      into[I["refused.http_timeout"]] = http.headerTimeouts + http.idleTimeouts;
    }
    if (sources.rateLimit !== undefined) {
      into[I["refused.rate_limited"]] = sources.rateLimit.limited;
    }
    if (sources.loopLagMs !== undefined) into[I["loop.lag"]] = sources.loopLagMs();
    const cluster = sources.cluster?.() ?? null;
    if (cluster !== null) {
      into[I["cluster.connected"]] = cluster.state === "connected" ? 1 : 0;
      into[I["cluster.applied"]] = cluster.applied;
      into[I["cluster.published"]] = cluster.publishedChanges;
    }
    const m = memory();
    into[I["memory.rss"]] = m.rss;
    into[I["memory.heap"]] = m.heapUsed;
  };
}
