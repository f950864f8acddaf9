/**
 * The dashboard history's reader for otter: fills History's row from the counters and gauges otter
 * already keeps (the same ones /stats and /metrics read). Sources are described by the few fields
 * read, so the servers' objects (RequestCounters, SwarmTable, HttpServerCounters, RateLimiter,
 * ClusterCounters) fit as they are.
 *
 * Series with no source stay NaN and the page hides them: the cluster's without a cluster, the
 * WebSocket ones while `websocket()` gives null, that is until a WebSocket server listens (its
 * requests are counted in the same RequestCounters under PROTOCOL_WS; `open` is its open
 * connections). Announces and
 * scrapes count answered requests (result ok), like /stats, split by protocol and by the client's
 * address family; error replies are the `errors.*` series, and the refusals with a reason
 * (RequestCounters.refused) are summed over the protocols into `refused.*`.
 */
import { SERIES_INDEX } from "./history.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_NAMES,
  ACTION_SCRAPE,
  PROTOCOL_HTTP,
  PROTOCOL_NAMES,
  PROTOCOL_UDP,
  PROTOCOL_WS,
  REFUSAL_ACCESS_DENIED,
  REFUSAL_BAD_REQUEST,
  REFUSAL_CONNECTION_ID,
  RESULT_DROPPED,
  RESULT_ERROR,
  RESULT_OK,
} from "./requestCounters.ts";

export interface DashboardReaderSources {
  requests: {
    get(protocol: number, action: number, result: number): number;
    getFamily(protocol: number, action: number, family: 4 | 6): number;
    getRefused(protocol: number, reason: number): number;
  };
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
  /** The WebSocket server's connections, or null when there is none: turns the `*.ws` series on. */
  websocket?: () => { readonly open: number } | null;
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
  const byFamily = (action: number, family: 4 | 6) => {
    let total = 0;
    for (let p = 0; p < PROTOCOL_NAMES.length; p++) total += requests.getFamily(p, action, family);
    return total;
  };
  const refused = (reason: number) => {
    let total = 0;
    for (let p = 0; p < PROTOCOL_NAMES.length; p++) total += requests.getRefused(p, reason);
    return total;
  };
  const memory = sources.memory ?? (() => Deno.memoryUsage());
  return (into) => {
    into[I["announces.http"]] = requests.get(PROTOCOL_HTTP, ACTION_ANNOUNCE, RESULT_OK);
    into[I["announces.udp"]] = requests.get(PROTOCOL_UDP, ACTION_ANNOUNCE, RESULT_OK);
    into[I["announces.v4"]] = byFamily(ACTION_ANNOUNCE, 4);
    into[I["announces.v6"]] = byFamily(ACTION_ANNOUNCE, 6);
    into[I["scrapes.http"]] = requests.get(PROTOCOL_HTTP, ACTION_SCRAPE, RESULT_OK);
    into[I["scrapes.udp"]] = requests.get(PROTOCOL_UDP, ACTION_SCRAPE, RESULT_OK);
    into[I["scrapes.v4"]] = byFamily(ACTION_SCRAPE, 4);
    into[I["scrapes.v6"]] = byFamily(ACTION_SCRAPE, 6);
    into[I["connects.udp"]] = requests.get(PROTOCOL_UDP, ACTION_CONNECT, RESULT_OK);
    into[I["errors.http"]] = sumResult(PROTOCOL_HTTP, RESULT_ERROR);
    into[I["errors.udp"]] = sumResult(PROTOCOL_UDP, RESULT_ERROR);
    into[I["refused.bad_request"]] = refused(REFUSAL_BAD_REQUEST);
    into[I["refused.access_denied"]] = refused(REFUSAL_ACCESS_DENIED);
    into[I["refused.connection_id"]] = refused(REFUSAL_CONNECTION_ID);
    into[I["refused.udp_dropped"]] = sumResult(PROTOCOL_UDP, RESULT_DROPPED);
    const websocket = sources.websocket?.() ?? null;
    if (websocket !== null) {
      into[I["announces.ws"]] = requests.get(PROTOCOL_WS, ACTION_ANNOUNCE, RESULT_OK);
      into[I["scrapes.ws"]] = requests.get(PROTOCOL_WS, ACTION_SCRAPE, RESULT_OK);
      into[I["errors.ws"]] = sumResult(PROTOCOL_WS, RESULT_ERROR);
      into[I["connections.ws"]] = websocket.open;
    }

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
