/**
 * `GET /stats?mode=…`: opentracker-style statistics pages for operators and MRTG-style pollers.
 *
 * Text by default: the counter modes answer opentracker's four MRTG lines (two numbers, an uptime
 * line, a label); `format=json` answers the requested mode as JSON, and every mode at once when
 * no mode is given. Modes that need every torrent (top10, top100, completed, statedump) work on a
 * sorted snapshot of the store taken in slices (store/slicer.ts), `renew` walks every peer in
 * slices, so a large store never blocks the event loop for long; both walks are shared by all
 * requests and rebuilt at most once a second (statsWalks.ts).
 *
 * `renew`: opentracker counts, at each re-announce, how many minutes the peer had been silent.
 * otter keeps only each peer's last-announce time, so it reports the ages of the peers held now
 * (minutes since their last announce, one line per minute up to the peer timeout); in a steady
 * state that has the same shape. `completed` is the sum of `downloaded` over the torrents held
 * (a torrent forgotten after its keep time takes its count with it). With an access list, the
 * torrent walks leave out the torrents it forbids (a reload's purge drops them from the store and
 * its counts moments later; accessPurge.ts).
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { FullScrape } from "./fullScrape.ts";
import type { LoopLag } from "./loopLag.ts";
import type { ClusterCounters } from "../cluster/clusterCounters.ts";
import { type HttpServerCounters, REJECT_STATUSES } from "./httpServerCounters.ts";
import type { UdpListenerFailures, UdpSocketFailures } from "./udpSocketFailures.ts";
import { type WsCounters, wsStatsJson, wsStatsText } from "./wsCounters.ts";
import { CHUNK_BYTES, type TorrentSnapshot } from "./fullScrape.ts";
import type { StatsWalks, TopEntry } from "./statsWalks.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_FULL_SCRAPE,
  ACTION_NAMES,
  ACTION_SCRAPE,
  PROTOCOL_HTTP,
  PROTOCOL_UDP,
  PROTOCOL_WS,
  type RequestCounters,
  RESULT_DROPPED,
  RESULT_ERROR,
  RESULT_NAMES,
  RESULT_OK,
} from "./requestCounters.ts";

/** Every mode, in the order `everything` lists them; statedump is a dump, not part of it. */
export const STATS_MODES = [
  "peer",
  "conn",
  "scrp",
  "udp4",
  "tcp4",
  "torr",
  "fscr",
  "top10",
  "top100",
  "renew",
  "completed",
  "loop",
  "cluster",
  "ws",
  "version",
  "everything",
  "statedump",
] as const;
export type StatsMode = typeof STATS_MODES[number];

/** The modes `everything` (and JSON without a mode) covers. */
const SUMMARY_MODES: readonly StatsMode[] = STATS_MODES.filter(
  (mode) => mode !== "everything" && mode !== "statedump",
);

export interface StatsSources {
  /** Read live for the counts of torrents, peers and seeders. */
  store: SwarmTable;
  /** The shared walks over the store (top, completed, renew, statedump). */
  walks: StatsWalks;
  counters: RequestCounters;
  fullScrape: FullScrape;
  /** Whole seconds since start. */
  uptimeSeconds(): number;
  version: string;
  /** Event-loop pause monitor (mode loop); zeros without it. */
  loopLag?: LoopLag;
  /** What the HTTP servers turned away (mode tcp4, JSON); left out without it. */
  http?: HttpServerCounters;
  /** The UDP listeners' socket loops (mode udp4); none without it. */
  udp?: readonly UdpListenerFailures[];
  /** The cluster link (mode cluster); null or absent when standalone. */
  cluster?: ClusterCounters | null;
  /** The WebSocket server (mode ws); null or absent without one. */
  ws?: WsCounters | null;
}

const TEXT = { "content-type": "text/plain; charset=utf-8" };
const JSON_TYPE = { "content-type": "application/json" };

function plain(status: number, text: string): Response {
  return new Response(text + "\n", { status, headers: TEXT });
}

/** Answers a stats request (`query` is the raw query string); access is checked by the caller. */
export async function statsResponse(query: string, sources: StatsSources): Promise<Response> {
  const params = new URLSearchParams(query);
  if (params.has("info_hash")) {
    return plain(400, "this is the stats page, not an announce or scrape URL");
  }
  const format = params.get("format") ?? "text";
  if (format !== "text" && format !== "json") {
    return plain(400, `unknown format '${format}' (text or json)`);
  }
  const modeText = params.get("mode") ?? (format === "json" ? "everything" : "peer");
  if (!(STATS_MODES as readonly string[]).includes(modeText)) {
    return plain(400, `unknown mode '${modeText}' (one of ${STATS_MODES.join(", ")})`);
  }
  const mode = modeText as StatsMode;
  if (mode === "statedump") {
    if (format === "json") return plain(400, "statedump is text only");
    const { snapshot } = await sources.walks.torrents();
    return new Response(statedumpStream(snapshot), { headers: TEXT });
  }
  const modes = mode === "everything" ? SUMMARY_MODES : [mode];
  const data = await gather(modes, sources);
  if (format === "json") {
    const out: Record<string, unknown> = {};
    for (const m of modes) out[m] = json(m, data);
    return new Response(JSON.stringify(out, null, 1) + "\n", { headers: JSON_TYPE });
  }
  if (mode !== "everything") return new Response(text(mode, data) + "\n", { headers: TEXT });
  const sections = modes.map((m) => `== ${m} ==\n${text(m, data)}\n`);
  return new Response(sections.join("\n"), { headers: TEXT });
}

// ---------------------------------------------------------------- figures

/** Everything the requested modes print, read once. */
interface StatsData {
  uptime: number;
  torrents: number;
  peers4: number;
  peers6: number;
  peersWs: number;
  seeders4: number;
  seeders6: number;
  seedersWs: number;
  counters: RequestCounters;
  fullScrape: FullScrape;
  version: string;
  top: TopEntry[];
  downloaded: number;
  downloadedTorrents: number;
  renew: Float64Array;
  loopMaxMs: number;
  loopRecentMaxMs: number;
  http: HttpServerCounters | null;
  udp: readonly UdpListenerFailures[];
  cluster: ClusterCounters | null;
  ws: WsCounters | null;
}

async function gather(modes: readonly StatsMode[], sources: StatsSources): Promise<StatsData> {
  const store = sources.store;
  const data: StatsData = {
    uptime: sources.uptimeSeconds(),
    torrents: 0,
    peers4: 0,
    peers6: 0,
    peersWs: 0,
    seeders4: 0,
    seeders6: 0,
    seedersWs: 0,
    counters: sources.counters,
    fullScrape: sources.fullScrape,
    version: sources.version,
    top: [],
    downloaded: 0,
    downloadedTorrents: 0,
    renew: new Float64Array(0),
    loopMaxMs: sources.loopLag?.maxMs ?? 0,
    loopRecentMaxMs: sources.loopLag?.recentMaxMs() ?? 0,
    http: sources.http ?? null,
    udp: sources.udp ?? [],
    cluster: sources.cluster ?? null,
    ws: sources.ws ?? null,
  };
  if (modes.includes("top10") || modes.includes("top100") || modes.includes("completed")) {
    const walk = await sources.walks.torrents();
    data.top = walk.top;
    data.downloaded = walk.downloaded;
    data.downloadedTorrents = walk.downloadedTorrents;
  }
  if (modes.includes("renew")) data.renew = await sources.walks.peerAges();
  // Store counters last: they are read live, the walks are at most a second old.
  data.torrents = store.torrents;
  data.peers4 = store.peers4;
  data.peers6 = store.peers6;
  data.seeders4 = store.seeders4;
  data.seeders6 = store.seeders6;
  data.peersWs = store.peersWs;
  data.seedersWs = store.seedersWs;
  return data;
}

const HEX_BYTES = new Uint8Array(16).map((_, i) => "0123456789abcdef".charCodeAt(i));

/** `<40 hex>:<downloaded>\n` per torrent, in hash order, produced one chunk per pull. */
function statedumpStream(snapshot: TorrentSnapshot): ReadableStream<Uint8Array> {
  const { order, hashes, counts } = snapshot;
  let k = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (k >= snapshot.count) {
        controller.close();
        return;
      }
      const out = new Uint8Array(CHUNK_BYTES);
      let o = 0;
      // 40 hex + ':' + at most 10 digits + '\n'
      while (k < snapshot.count && o + 52 <= CHUNK_BYTES) {
        const e = order[k++];
        for (let i = 0; i < 20; i++) {
          const b = hashes[e * 20 + i];
          out[o++] = HEX_BYTES[b >> 4];
          out[o++] = HEX_BYTES[b & 15];
        }
        out[o++] = 58;
        const digits = String(counts[e * 3 + 1]);
        for (let i = 0; i < digits.length; i++) out[o++] = digits.charCodeAt(i);
        out[o++] = 10;
      }
      controller.enqueue(out.subarray(0, o));
    },
  }, { highWaterMark: 0 });
}

// ---------------------------------------------------------------- rendering

function sumOf(counters: RequestCounters, protocol: number, action = -1, result = -1): number {
  let total = 0;
  for (let a = 0; a < ACTION_NAMES.length; a++) {
    if (action >= 0 && a !== action) continue;
    for (let r = 0; r < RESULT_NAMES.length; r++) {
      if (result >= 0 && r !== result) continue;
      total += counters.get(protocol, a, r);
    }
  }
  return total;
}

function perSecond(events: number, seconds: number): number {
  return Math.floor(events / (seconds > 0 ? seconds : 1));
}

function uptimeLine(seconds: number): string {
  return `${seconds} seconds (${Math.floor(seconds / 3600)} hours)`;
}

/** opentracker's MRTG layout: two numbers, the uptime, a label. */
function mrtg(first: number, second: number, uptime: number, label: string): string {
  return `${first}\n${second}\n${uptimeLine(uptime)}\n${label}`;
}

function requestFigures(d: StatsData) {
  const c = d.counters;
  const http = sumOf(c, PROTOCOL_HTTP);
  const udp = sumOf(c, PROTOCOL_UDP);
  const httpAnnounces = sumOf(c, PROTOCOL_HTTP, ACTION_ANNOUNCE, RESULT_OK);
  const udpAnnounces = sumOf(c, PROTOCOL_UDP, ACTION_ANNOUNCE, RESULT_OK);
  const udpConnects = sumOf(c, PROTOCOL_UDP, ACTION_CONNECT, RESULT_OK);
  const ws = sumOf(c, PROTOCOL_WS);
  const wsAnnounces = sumOf(c, PROTOCOL_WS, ACTION_ANNOUNCE, RESULT_OK);
  return { http, udp, ws, httpAnnounces, udpAnnounces, udpConnects, wsAnnounces };
}

function text(mode: StatsMode, d: StatsData): string {
  const c = d.counters;
  const up = d.uptime;
  const peers = d.peers4 + d.peers6 + d.peersWs;
  const seeders = d.seeders4 + d.seeders6 + d.seedersWs;
  const r = requestFigures(d);
  switch (mode) {
    case "peer":
      return mrtgServing(peers, seeders, d.torrents);
    case "torr":
      return mrtgServing(d.torrents, 0, d.torrents);
    case "conn": {
      const all = r.http + r.udp + r.ws;
      const ok = r.httpAnnounces + r.udpAnnounces + r.udpConnects + r.wsAnnounces;
      return mrtg(
        all,
        ok,
        up,
        `otter requests, ${perSecond(all, up)} req/s :: ${perSecond(ok, up)} success/s.`,
      );
    }
    case "udp4": {
      const ok = r.udpAnnounces + r.udpConnects;
      const f = udpSocketTotals(d.udp);
      return mrtg(
        r.udp,
        ok,
        up,
        `otter udp stats (IPv4 and IPv6), ${perSecond(r.udp, up)} req/s :: ${
          perSecond(ok, up)
        } success/s :: sockets: ${f.truncated} truncated, ${f.handlerErrors} handler errors, ` +
          `${f.receiveErrors} receive errors, ${f.sendDropped} replies dropped.`,
      );
    }
    case "tcp4":
      return mrtg(
        r.http,
        r.httpAnnounces,
        up,
        `otter http stats (IPv4 and IPv6), ${perSecond(r.http, up)} req/s :: ${
          perSecond(r.httpAnnounces, up)
        } success/s.`,
      );
    case "scrp": {
      const http = sumOf(c, PROTOCOL_HTTP, ACTION_SCRAPE, RESULT_OK);
      const udp = sumOf(c, PROTOCOL_UDP, ACTION_SCRAPE, RESULT_OK);
      return mrtg(
        http,
        udp,
        up,
        `otter scrape stats, ${perSecond(http + udp, up)} scrape/s (http and udp)`,
      );
    }
    case "fscr": {
      const f = d.fullScrape;
      const last = f.last;
      const lastText = last === null
        ? "no build yet"
        : `last build ${last.torrents} torrents in ${Math.round(last.buildMs)} ms`;
      return mrtg(
        f.servedPlain + f.servedGzip,
        f.builds,
        up,
        `otter full scrape stats (served, builds), ${f.bytesServed} bytes served, ${lastText}.`,
      );
    }
    case "completed":
      return mrtg(
        d.downloaded,
        d.downloadedTorrents,
        up,
        `otter completed downloads (downloaded summed over the torrents held, torrents with any).`,
      );
    case "loop":
      return mrtg(
        Math.round(d.loopMaxMs),
        Math.round(d.loopRecentMaxMs),
        up,
        `otter event loop: longest pause since start, longest in the last minute (ms).`,
      );
    case "top10":
    case "top100": {
      const lines = [
        `Top ${mode === "top10" ? 10 : 100} torrents by peers (info_hash peers seeders):`,
      ];
      for (const t of d.top.slice(0, mode === "top10" ? 10 : 100)) {
        lines.push(`${t.infoHash}\t${t.peers}\t${t.seeders}`);
      }
      return lines.join("\n");
    }
    case "renew": {
      const lines: string[] = [];
      for (let m = 0; m < d.renew.length; m++) {
        lines.push(`${String(m).padStart(2, "0")} ${d.renew[m]}`);
      }
      return lines.join("\n");
    }
    case "cluster": {
      const cluster = d.cluster;
      if (cluster === null) {
        return mrtg(0, 0, up, "otter cluster: not in a cluster (no --cluster).");
      }
      const refused = Object.entries(cluster.rejected);
      return mrtg(
        cluster.applied,
        refused.reduce((sum, [, count]) => sum + count, 0),
        up,
        `otter cluster (${cluster.state}): changes applied, stream entries refused (` +
          `${refused.map(([reason, count]) => `${reason} ${count}`).join(", ")}).`,
      );
    }
    case "ws":
      return wsStatsText(d.ws, up);
    case "version":
      return `otter ${d.version}`;
    default:
      throw new Error(`no text for mode ${mode}`);
  }
}

/** The HTTP servers' connection figures and turned-away requests (by status), for tcp4. */
function httpServerJson(http: HttpServerCounters | null): Record<string, unknown> {
  if (http === null) return {};
  const rejected: Record<string, number> = {};
  for (const status of REJECT_STATUSES) rejected[status] = http.rejectedWith(status);
  return {
    connections: {
      open: http.open,
      refused: http.refused,
      refusedPerIp: http.refusedPerIp,
      headerTimeouts: http.headerTimeouts,
      idleTimeouts: http.idleTimeouts,
      sendTimeouts: http.sendTimeouts,
      pendingWriteBytes: http.pendingWriteBytes,
    },
    rejected,
    ...(http.tls.listeners === 0 ? {} : {
      tls: {
        handshakeFailures: http.tls.handshakeFailures,
        handshakesAbandoned: http.tls.handshakesAbandoned,
        certificateReloads: http.tls.reloads,
        certificateReloadFailures: http.tls.reloadFailures,
        certificateNotAfter: http.tls.certificateNotAfter,
      },
    }),
  };
}

/** The UDP socket loops' counters summed over the listeners. */
function udpSocketTotals(listeners: readonly UdpListenerFailures[]): UdpSocketFailures {
  const total = { truncated: 0, handlerErrors: 0, receiveErrors: 0, sendDropped: 0 };
  for (const listener of listeners) {
    const f = listener.failures();
    total.truncated += f.truncated;
    total.handlerErrors += f.handlerErrors;
    total.receiveErrors += f.receiveErrors;
    total.sendDropped += f.sendDropped;
  }
  return total;
}

/** Per UDP listener: its socket loop's counters and last handler error, for udp4's JSON. */
function udpSocketsJson(listeners: readonly UdpListenerFailures[]): Record<string, unknown>[] {
  return listeners.map((listener) => {
    const { truncated, handlerErrors, receiveErrors, sendDropped } = listener.failures();
    return {
      listener: listener.listener,
      io: listener.io,
      truncated,
      handlerErrors,
      receiveErrors,
      sendDropped,
      lastHandlerError: listener.lastHandlerErrorText(),
    };
  });
}

function mrtgServing(first: number, second: number, torrents: number): string {
  return `${first}\n${second}\notter serving ${torrents} torrents\notter`;
}

function json(mode: StatsMode, d: StatsData): unknown {
  const c = d.counters;
  const r = requestFigures(d);
  switch (mode) {
    case "peer":
      return {
        torrents: d.torrents,
        peers: d.peers4 + d.peers6 + d.peersWs,
        seeders: d.seeders4 + d.seeders6 + d.seedersWs,
        peers4: d.peers4,
        peers6: d.peers6,
        peersWs: d.peersWs,
        seeders4: d.seeders4,
        seeders6: d.seeders6,
        seedersWs: d.seedersWs,
      };
    case "torr":
      return { torrents: d.torrents };
    case "conn":
      return {
        requests: r.http + r.udp + r.ws,
        http: r.http,
        udp: r.udp,
        websocket: r.ws,
        successes: r.httpAnnounces + r.udpAnnounces + r.udpConnects + r.wsAnnounces,
        uptimeSeconds: d.uptime,
      };
    case "udp4":
      return {
        requests: r.udp,
        connects: r.udpConnects,
        announces: r.udpAnnounces,
        scrapes: sumOf(c, PROTOCOL_UDP, ACTION_SCRAPE, RESULT_OK),
        errors: sumOf(c, PROTOCOL_UDP, -1, RESULT_ERROR),
        dropped: sumOf(c, PROTOCOL_UDP, -1, RESULT_DROPPED),
        sockets: udpSocketsJson(d.udp),
      };
    case "tcp4":
      return {
        requests: r.http,
        announces: r.httpAnnounces,
        scrapes: sumOf(c, PROTOCOL_HTTP, ACTION_SCRAPE, RESULT_OK),
        fullScrapes: sumOf(c, PROTOCOL_HTTP, ACTION_FULL_SCRAPE, RESULT_OK),
        errors: sumOf(c, PROTOCOL_HTTP, -1, RESULT_ERROR),
        ...httpServerJson(d.http),
      };
    case "scrp":
      return {
        http: sumOf(c, PROTOCOL_HTTP, ACTION_SCRAPE, RESULT_OK),
        udp: sumOf(c, PROTOCOL_UDP, ACTION_SCRAPE, RESULT_OK),
      };
    case "fscr": {
      const f = d.fullScrape;
      const last = f.last;
      return {
        served: f.servedPlain + f.servedGzip,
        servedPlain: f.servedPlain,
        servedGzip: f.servedGzip,
        refused: f.refused,
        builds: f.builds,
        bytesServed: f.bytesServed,
        lastBuild: last === null ? null : {
          torrents: last.torrents,
          seconds: last.buildMs / 1000,
          plainBytes: last.plainBytes,
          gzipBytes: last.gzipBytes,
          ageSeconds: (performance.now() - last.startedAt) / 1000,
        },
      };
    }
    case "top10":
    case "top100":
      // The torrents as /stats has always listed them (the dashboard also reads `completed`).
      return d.top.slice(0, mode === "top10" ? 10 : 100).map(({ infoHash, peers, seeders }) => ({
        infoHash,
        peers,
        seeders,
      }));
    case "renew":
      return { minutes: Array.from(d.renew) };
    case "completed":
      return { downloaded: d.downloaded, torrents: d.downloadedTorrents };
    case "loop":
      return { maxSeconds: d.loopMaxMs / 1000, recentMaxSeconds: d.loopRecentMaxMs / 1000 };
    case "cluster":
      return d.cluster === null ? null : { ...d.cluster, rejected: { ...d.cluster.rejected } };
    case "ws":
      return d.ws === null ? null : wsStatsJson(d.ws);
    case "version":
      return { name: "otter", version: d.version };
    default:
      throw new Error(`no JSON for mode ${mode}`);
  }
}
