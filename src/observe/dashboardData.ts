/**
 * `GET /dashboard/data`: everything the dashboard page shows, as one JSON document it polls once a
 * second. Without `since` it is the full picture (the series table, both rings, the tracker's
 * description and effective config); with `since=<ms>&coarseSince=<ms>` (the last point times it
 * holds) only the points newer than those, plus the few small figures that are redrawn each time
 * (uptime, busiest torrents, client mix). Access is checked by the caller (the /stats rule).
 *
 * Nothing here walks the store: the busiest torrents come from a snapshot someone else keeps.
 */
import type { ClientMix, ClientShare } from "./clientMix.ts";
import { type History, SERIES } from "./history.ts";

export interface BusyTorrent {
  /** 40 lowercase hex digits. */
  infoHash: string;
  peers: number;
  seeders: number;
  leechers: number;
  /** Completed downloads (`downloaded`) counted for the torrent. */
  completed: number;
}

export interface BusiestTorrents {
  torrents: BusyTorrent[];
  /** Age of the snapshot the list was taken from, in seconds. */
  ageSeconds: number;
}

export interface DashboardInfo {
  version: string;
  /** Wall-clock ms when the tracker started. */
  startedAtMs: number;
  /** What it listens on, e.g. "http [::]:6969", "udp [::]:6969". */
  listeners: string[];
  /** The effective settings; pass them through `publicConfig` (secrets left out). */
  config: Record<string, unknown>;
}

export interface DashboardSources {
  history: History;
  /** Whole seconds since start. */
  uptimeSeconds(): number;
  info(): DashboardInfo;
  /** The busiest torrents from a cached snapshot, or null if there is none (yet). */
  busiest?: () => BusiestTorrents | null;
  clients?: ClientMix;
}

const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

/** Answers `GET /dashboard/data?<query>`; 400 for a malformed `since`/`coarseSince`. */
export function dashboardDataResponse(query: string, sources: DashboardSources): Response {
  const params = new URLSearchParams(query);
  const since = parseSince(params.get("since"));
  const coarseSince = parseSince(params.get("coarseSince"));
  if (since === undefined || coarseSince === undefined) {
    return new Response("since and coarseSince are milliseconds (numbers)\n", {
      status: 400,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  return new Response(dashboardDataJson(sources, since, coarseSince), { headers: JSON_HEADERS });
}

/** null: absent (everything); undefined: malformed. */
function parseSince(text: string | null): number | null | undefined {
  if (text === null) return null;
  const value = Number(text);
  return text !== "" && Number.isFinite(value) ? value : undefined;
}

/**
 * The document: `{"uptime","history","busiest","clients"}` always, plus `"series"` and `"info"`
 * when `since` is null (a first load). `history` is History.toJson's object.
 */
export function dashboardDataJson(
  sources: DashboardSources,
  since: number | null,
  coarseSince: number | null,
): string {
  const full = since === null;
  const parts = [`"uptime":${Math.max(0, Math.floor(sources.uptimeSeconds()))}`];
  if (full) {
    parts.push(`"series":${JSON.stringify(SERIES)}`);
    parts.push(`"info":${JSON.stringify(sources.info())}`);
  }
  parts.push(
    `"history":${sources.history.toJson(since ?? -Infinity, coarseSince ?? -Infinity)}`,
  );
  parts.push(`"busiest":${JSON.stringify(sources.busiest?.() ?? null)}`);
  const clients: { windowSeconds: number; shares: ClientShare[] } | null =
    sources.clients === undefined
      ? null
      : { windowSeconds: sources.clients.windowSeconds, shares: sources.clients.shares() };
  parts.push(`"clients":${JSON.stringify(clients)}`);
  return `{${parts.join(",")}}`;
}

/** Keys whose values are never shown, whatever they hold. */
const SECRET_KEY = /pass(word)?|secret|token|credential|private/i;

/**
 * The settings as the page may show them: keys that name a secret are left out, and a URL's user
 * name and password (a Redis URL, say `redis://user:pass@host`) are replaced by `***`.
 */
export function publicConfig(config: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (SECRET_KEY.test(key)) continue;
    out[key] = Array.isArray(value) ? value.map(publicValue) : publicValue(value);
  }
  return out;
}

function publicValue(value: unknown): unknown {
  if (typeof value !== "string" || !value.includes("@") || !value.includes("://")) return value;
  try {
    const url = new URL(value);
    // No host: an opaque string with an @ and :// that may hold credentials in some other form.
    if (url.host === "") return "***";
    if (url.username === "" && url.password === "") return value;
    if (url.username !== "") url.username = "***";
    if (url.password !== "") url.password = "***";
    return url.href;
  } catch {
    // Not a URL: it has an @ and ://, so it may hold credentials in a form URL cannot parse.
    return "***";
  }
}
