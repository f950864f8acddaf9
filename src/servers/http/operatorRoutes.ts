/**
 * Plugs the operator features into the HTTP front end: the full scrape (`GET /scrape` without
 * info_hash), `GET /stats`, `GET /metrics` and, unless `--no-dashboard`, the dashboard
 * (`GET /dashboard`, its files, and `/dashboard/data` from the history this module keeps).
 * Stats, metrics and the dashboard answer only clients inside `--stats-from`, judged by the
 * client address as announces resolve it (clientAddress.ts: the socket peer, or behind a
 * `--trust-proxy` proxy the address it vouches for); others get 403. A request with forwarding
 * headers from a peer that is not a trusted proxy is refused too: it came through a proxy otter
 * was not told about (through a local one, everyone is loopback), so who sent it is unknown.
 */
import type { Config } from "../../config/options.ts";
import { CidrSet } from "../../policy/cidr.ts";
import { parseIpAddress } from "../../protocol/ipAddress.ts";
import { resolveClient } from "../../policy/clientAddress.ts";
import { FullScrape } from "../../observe/fullScrape.ts";
import { CleaningTime, METRICS_CONTENT_TYPE, renderMetrics } from "../../observe/metrics.ts";
import { statsResponse } from "../../observe/stats.ts";
import { StatsWalks } from "../../observe/statsWalks.ts";
import { LoopLag } from "../../observe/loopLag.ts";
import { History } from "../../observe/history.ts";
import { ClientMix } from "../../observe/clientMix.ts";
import { dashboardReader } from "../../observe/dashboardReader.ts";
import {
  DASHBOARD_ASSET_PATHS,
  DASHBOARD_DATA_PATH,
  DASHBOARD_PATH,
} from "../../observe/dashboardPaths.ts";
import {
  BusiestTorrentsCache,
  dashboardDataResponse,
  type DashboardSources,
  publicConfig,
} from "../../observe/dashboardData.ts";
import { formatHostPort } from "../../protocol/ipAddress.ts";
import type { UdpListenerFailures } from "../../observe/udpSocketFailures.ts";
import type { WsCounters } from "../../observe/wsCounters.ts";
import {
  ACTION_FULL_SCRAPE,
  ACTION_OTHER,
  PROTOCOL_HTTP,
  RESULT_ERROR,
  RESULT_OK,
} from "../../observe/requestCounters.ts";
import { VERSION } from "../../version.ts";
import type { HttpTracker } from "./httpTracker.ts";
import type { Tracker } from "../tracker.ts";

export interface OperatorRoutes {
  readonly fullScrape: FullScrape;
  /** The server's clean timer adds each clean step's duration here (for /metrics). */
  readonly cleaning: CleaningTime;
  /** Event-loop pause monitor shown on /stats and /metrics; the server starts and stops it. */
  readonly loopLag: LoopLag;
  /** The UDP listeners, whose socket loops' counters /stats and /metrics show; the server adds
   *  each one as it opens it. */
  readonly udpListeners: UdpListenerFailures[];
  /** The WebSocket server's counters, once the server sets them (null: no WebSocket). */
  ws: WsCounters | null;
  /** The dashboard's history and client mix; null with --no-dashboard. */
  dashboard: Dashboard | null;
}

export interface Dashboard {
  /** Sampled once a second while started; the server starts and stops it. */
  readonly history: History;
  readonly clients: ClientMix;
  /** The listeners as the page lists them ("http://[::]:6969/announce"); the server adds each. */
  readonly listeners: string[];
}

const FORBIDDEN_TEXT = "forbidden: this page is served only to --stats-from networks\n";

/**
 * Registers the full scrape hook and the /stats and /metrics routes on `http`; follows SIGHUP
 * reloads of --full-scrape-every, --no-full-scrape and --stats-from.
 */
export function registerOperatorRoutes(
  http: HttpTracker,
  tracker: Tracker,
  config: Config,
): OperatorRoutes {
  const store = tracker.store;
  const counters = tracker.counters;
  const fullScrape = new FullScrape(store, {
    everySeconds: config.fullScrapeEvery,
    enabled: !config.noFullScrape,
    extraLeechers: (hashes, offset, peers) => tracker.generatedPeersFor(hashes, offset, peers),
    access: tracker.access,
  });
  const cleaning = new CleaningTime();
  const loopLag = new LoopLag();
  const udpListeners: UdpListenerFailures[] = [];
  let statsFrom = CidrSet.parse(config.statsFrom);
  const address = new Uint8Array(16);
  const uptimeSeconds = () => tracker.clock.now - 1;
  const walks = new StatsWalks(store, uptimeSeconds, config.peerTimeout, 1000, tracker.access);
  const routes: OperatorRoutes = {
    fullScrape,
    cleaning,
    loopLag,
    udpListeners,
    ws: null,
    dashboard: null,
  };

  const allowed = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): boolean => {
    const peer = parseIpAddress(info.remoteAddr.hostname, address);
    if (peer === 0) return false;
    const proxies = tracker.trustProxy;
    const headers = request.headers;
    if (proxies === null || !proxies.contains(peer, address, 0)) {
      if (headers.has("x-forwarded-for") || headers.has("x-real-ip")) return false;
      return statsFrom.contains(peer, address, 0);
    }
    const client = resolveClient(peer, address, proxies, headers);
    return client !== 0 && statsFrom.contains(client, address, 0);
  };
  const forbidden = (): Response => {
    counters.add(PROTOCOL_HTTP, ACTION_OTHER, RESULT_ERROR);
    return new Response(FORBIDDEN_TEXT, {
      status: 403,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  };

  http.fullScrape = async (request) => {
    const response = await fullScrape.respond(request);
    counters.add(PROTOCOL_HTTP, ACTION_FULL_SCRAPE, response.ok ? RESULT_OK : RESULT_ERROR);
    return response;
  };

  http.routes.set("/stats", async (request, info, query) => {
    if (!allowed(request, info)) return forbidden();
    const response = await statsResponse(query, {
      store,
      counters,
      walks,
      fullScrape,
      uptimeSeconds,
      version: VERSION,
      loopLag,
      http: http.serverCounters,
      udp: udpListeners,
      cluster: tracker.cluster,
      ws: routes.ws,
    });
    counters.add(PROTOCOL_HTTP, ACTION_OTHER, response.ok ? RESULT_OK : RESULT_ERROR);
    return response;
  });

  http.routes.set("/metrics", (request, info) => {
    if (!allowed(request, info)) return forbidden();
    const body = renderMetrics({
      store,
      counters,
      fullScrape,
      cleaning,
      uptimeSeconds,
      version: VERSION,
      rateLimit: tracker.rateLimit,
      loopLag,
      cluster: tracker.cluster,
      http: http.serverCounters,
      udp: udpListeners,
      statsWalks: walks,
      ws: routes.ws,
    });
    counters.add(PROTOCOL_HTTP, ACTION_OTHER, RESULT_OK);
    return new Response(body, { headers: { "content-type": METRICS_CONTENT_TYPE } });
  });

  tracker.onSettings((next) => {
    fullScrape.everySeconds = next.fullScrapeEvery;
    fullScrape.enabled = !next.noFullScrape;
    statsFrom = CidrSet.parse(next.statsFrom);
  });
  const dashboard = config.noDashboard ? null : registerDashboard(
    http,
    tracker,
    loopLag,
    walks,
    uptimeSeconds,
    (request, info) => allowed(request, info) ? null : forbidden(),
  );
  routes.dashboard = dashboard;
  return routes;
}

/**
 * The dashboard: a History over otter's counters (sampled by the caller's `start`), the client
 * mix counted by both front ends (`tracker.clients`), and the routes of the page, its files and
 * its data, each behind `refuse` (the /stats rule).
 */
function registerDashboard(
  http: HttpTracker,
  tracker: Tracker,
  loopLag: LoopLag,
  walks: StatsWalks,
  uptimeSeconds: () => number,
  refuse: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | null,
): Dashboard {
  const counters = tracker.counters;
  const clients = new ClientMix();
  tracker.clients = clients;
  const read = dashboardReader({
    requests: counters,
    store: tracker.store,
    http: http.serverCounters,
    rateLimit: tracker.rateLimit,
    loopLagMs: () => loopLag.takeMaxMs(),
    cluster: () => tracker.cluster,
    websocket: () => tracker.websocket,
  });
  // The client mix's buckets turn on the sampler's second, so nothing else needs a timer.
  const history = new History((into) => {
    clients.advance(tracker.clock.now);
    read(into);
  });
  const listeners: string[] = [];
  const startedAtMs = tracker.clock.wallMs();
  const busiest = new BusiestTorrentsCache(
    async () => await walks.torrents(),
    () => tracker.access.generation,
  );
  const sources: DashboardSources = {
    history,
    uptimeSeconds,
    info: () => ({
      version: VERSION,
      startedAtMs,
      listeners,
      config: publicConfig(shownSettings(tracker.settings)),
    }),
    busiest: () => busiest.get(),
    clients,
  };
  for (const path of [...DASHBOARD_ASSET_PATHS, `${DASHBOARD_PATH}/`]) {
    http.routes.set(path, async (request, info) => {
      const refused = refuse(request, info);
      if (refused !== null) return refused;
      // The files (uPlot's among them) load at the first request for one, not at start.
      const { dashboardAssetResponse } = await import("../../observe/dashboardAssets.ts");
      const response = await dashboardAssetResponse(path, request);
      counters.add(PROTOCOL_HTTP, ACTION_OTHER, RESULT_OK);
      return response ?? new Response("not found\n", { status: 404 }); // never: the path is one
    });
  }
  http.routes.set(DASHBOARD_DATA_PATH, async (request, info, query) => {
    const refused = refuse(request, info);
    if (refused !== null) return refused;
    // Only the first poll of a fresh tracker waits for a walk; later ones get the list held.
    await busiest.ready();
    const response = dashboardDataResponse(query, sources);
    counters.add(PROTOCOL_HTTP, ACTION_OTHER, response.ok ? RESULT_OK : RESULT_ERROR);
    return response;
  });
  return { history, clients, listeners };
}

/** The settings as the page lists them: listen addresses written as on the command line. */
function shownSettings(settings: Config): Record<string, unknown> {
  const address = (a: { hostname: string; port: number }) => formatHostPort(a.hostname, a.port);
  const { printConfig: _, ...shown } = settings;
  return {
    ...shown,
    http: settings.http.map(address),
    https: settings.https.map(address),
    udp: settings.udp.map(address),
  };
}
