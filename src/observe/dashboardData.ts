/**
 * `GET /dashboard/data`: everything the dashboard page shows, as one JSON document it polls once a
 * second. Without `since` it is the full picture (the series table, both rings, the tracker's
 * description and effective config); with `since=<ms>&coarseSince=<ms>` (the last point times it
 * holds) only the points newer than those, plus the few small figures that are redrawn each time
 * (uptime, busiest torrents, client mix). Access is checked by the caller (the /stats rule).
 *
 * Nothing here walks the store: the busiest torrents come from the torrent walk /stats shares
 * (statsWalks.ts), taken again at most every BUSIEST_REFRESH_MS while the page is open.
 */
import type { ClientMix, ClientShare } from "./clientMix.ts";
import { type History, SERIES } from "./history.ts";
import type { TopEntry } from "./statsWalks.ts";

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

/** How old the busiest torrents may get before a poll asks for a new walk. */
export const BUSIEST_REFRESH_MS = 5000;
/** Torrents the page lists. */
export const BUSIEST_SHOWN = 10;

/**
 * The busiest torrents for the page, from walks of the whole store (sorted, in slices) that /stats
 * shares: `get()` answers at once with the list it holds and, when that is older than
 * `refreshMs`, starts one new walk in the background, so a page polling every second costs one
 * walk every `refreshMs` at most, and a poll never waits for one except the very first
 * (`ready()`). A list taken before an access-list reload is dropped (`generation`), as the walks
 * drop theirs.
 */
export class BusiestTorrentsCache {
  #list: BusyTorrent[] | null = null;
  #takenAtMs = 0;
  #takenUnder = -1;
  #pending: Promise<void> | null = null;

  constructor(
    readonly walk: () => Promise<{ top: readonly TopEntry[] }>,
    readonly generation: () => number = () => -1,
    readonly refreshMs = BUSIEST_REFRESH_MS,
  ) {}

  /** The list and its age, or null before the first walk has finished. */
  get(nowMs = performance.now()): BusiestTorrents | null {
    if (this.#list !== null && !this.#current()) this.#list = null;
    if (this.#list === null || nowMs - this.#takenAtMs >= this.refreshMs) void this.refresh();
    if (this.#list === null) return null;
    return { torrents: this.#list, ageSeconds: Math.max(0, nowMs - this.#takenAtMs) / 1000 };
  }

  /**
   * Resolves once a list taken under the access list in force is held (at once if one is),
   * starting a walk if none is running; a walk that was running since before a reload is not
   * enough, so it may take a second one.
   */
  async ready(): Promise<void> {
    for (let i = 0; i < 2 && !this.#current(); i++) await this.refresh();
  }

  #current(): boolean {
    return this.#list !== null && this.#takenUnder === this.generation();
  }

  /** Takes a new list (one walk at a time); a failed walk leaves the old list. */
  refresh(): Promise<void> {
    if (this.#pending !== null) return this.#pending;
    const generation = this.generation();
    this.#pending = this.walk().then(
      ({ top }) => {
        this.#list = top.slice(0, BUSIEST_SHOWN).map((t) => ({
          infoHash: t.infoHash,
          peers: t.peers,
          seeders: t.seeders,
          leechers: t.peers - t.seeders,
          completed: t.completed,
        }));
        this.#takenAtMs = performance.now();
        this.#takenUnder = generation;
      },
      () => {},
    ).finally(() => this.#pending = null);
    return this.#pending;
  }
}

export interface DashboardInfo {
  version: string;
  /** Wall-clock ms when the tracker started. */
  startedAtMs: number;
  /** What it listens on: "http://[::]:6969/announce", "udp://[::]:6969/announce (io: fast)". */
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
