/**
 * HTTP front end: routes `GET /announce` and `GET /scrape` (plus any extra routes operators'
 * features register, such as stats) and turns each into store calls and a bencoded body written
 * into reused buffers. A bad announce or scrape gets HTTP 200 with a bencoded `failure reason`
 * (what BitTorrent clients show their users); an unknown path 404; a non-GET method 405; a
 * request line over 8 KiB 414.
 */
import { EVENT_STOPPED } from "../../protocol/events.ts";
import { AnnounceQuery, parseAnnounceQuery, parseScrapeQuery } from "../../protocol/httpQuery.ts";
import { writeAnnounceReply, writeFailure, writeScrapeReply } from "../../protocol/httpReply.ts";
import { parseIpAddress } from "../../protocol/ipAddress.ts";
import { type HeaderSource, resolveClient } from "../../policy/clientAddress.ts";
import { ACCESS_DENIED_REASON } from "../../policy/accessList.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_OTHER,
  ACTION_SCRAPE,
  PROTOCOL_HTTP,
  REFUSAL_ACCESS_DENIED,
  REFUSAL_BAD_REQUEST,
  RESULT_ERROR,
  RESULT_OK,
} from "../../observe/requestCounters.ts";
import { HttpServerCounters } from "../../observe/httpServerCounters.ts";
import { type AddressKey, ConnectionsPerAddress } from "../../policy/connectionsPerAddress.ts";
import { refusedReason } from "../../store/swarmTable.ts";
import type { Tracker } from "../tracker.ts";
import type { StreamConn } from "../tcp/streamConn.ts";

/** Longest request URL we read; longer requests are refused without parsing. */
export const MAX_REQUEST_BYTES = 8192;
const MAX_SCRAPE_HASHES = 64;

export type RouteHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  query: string,
) => Response | Promise<Response>;

const TEXT_HEADERS: HeadersInit = { "content-type": "text/plain; charset=utf-8" };
const BENCODE_HEADERS: HeadersInit = { "content-type": "text/plain" };

/**
 * What the wire server (httpWire.ts) knows about a request's sender, in one object it reuses.
 * `get` has the shape of `Headers.get`, so both front ends share the proxy logic.
 */
export interface WireClient {
  /** The socket peer's family. */
  family: 4 | 6;
  /** The socket peer's address at offset 0 (4 or 16 bytes) of a 16-byte array. */
  address: Uint8Array;
  /** A request header by lower-case name, or null; asked only of trusted proxies. */
  get(name: string): string | null;
}

/** The WebSocket server (servers/ws, wired in by startTracker.ts), as the HTTP server sees it. */
export interface WebSocketUpgrades {
  /** No room for another WebSocket (or shutting down). */
  readonly full: boolean;
  /** Counts an upgrade refused: a bad handshake, or `full`. */
  refused(full: boolean): void;
  /**
   * Takes the socket over: the 101 with `accept`, then WebSocket. `leftover`: bytes the client
   * sent after the head; `addressKey`: its per-address slot, now the WebSocket's to give back.
   */
  adopt(
    conn: StreamConn,
    leftover: Uint8Array,
    accept: string,
    client: { family: 4 | 6; address: Uint8Array },
    addressKey: AddressKey | null,
  ): void;
}

function plain(status: number, text: string): Response {
  return new Response(text + "\n", { status, headers: TEXT_HEADERS });
}

export class HttpTracker {
  /** Routes besides announce and scrape (stats, metrics, …), by exact path. */
  readonly routes = new Map<string, RouteHandler>();
  /** Answers `GET /scrape` without info_hash; null: refused with a failure reason. */
  fullScrape: RouteHandler | null = null;
  /** Takes WebSocket upgrades on `/announce` and `/`; null: served as plain HTTP. */
  upgrades: WebSocketUpgrades | null = null;
  /** What the HTTP servers in front of this tracker (httpWire.ts) count: refused and timed-out
   * connections, requests turned away before they reach it. */
  readonly serverCounters = new HttpServerCounters();
  /** Open connections per client address, for every HTTP server over this tracker. */
  readonly connectionsPerAddress = new ConnectionsPerAddress();
  readonly #tracker: Tracker;
  readonly #query = new AnnounceQuery();
  readonly #address = new Uint8Array(16);
  readonly #peers: Uint8Array;
  readonly #out: Uint8Array;
  readonly #scrapeHashes = new Uint8Array(MAX_SCRAPE_HASHES * 20);
  readonly #scrapeCounts = new Uint32Array(MAX_SCRAPE_HASHES * 3);

  constructor(tracker: Tracker) {
    this.#tracker = tracker;
    this.#peers = new Uint8Array(tracker.maxNumwant * 18);
    this.#out = new Uint8Array(tracker.maxNumwant * 18 + 1024 + MAX_SCRAPE_HASHES * 120);
  }

  handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    const url = request.url;
    if (url.length > MAX_REQUEST_BYTES) return plain(414, "request too long");
    // request.url is absolute: skip "scheme://authority" to the path.
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    if (pathStart < 0) return plain(400, "bad request");
    let queryStart = url.indexOf("?", pathStart);
    const pathEnd = queryStart < 0 ? url.length : queryStart;
    queryStart = queryStart < 0 ? url.length : queryStart + 1;
    const method = request.method;
    if (method !== "GET" && method !== "HEAD") {
      this.#tracker.counters.add(PROTOCOL_HTTP, ACTION_OTHER, RESULT_ERROR);
      return new Response("method not allowed\n", {
        status: 405,
        headers: { ...TEXT_HEADERS, allow: "GET, HEAD" },
      });
    }
    if (pathIs(url, pathStart, pathEnd, "/announce")) {
      return this.#announce(url.slice(queryStart), request, info);
    }
    if (pathIs(url, pathStart, pathEnd, "/scrape")) {
      return this.#scrape(url.slice(queryStart), request, info);
    }
    const route = this.routes.get(url.slice(pathStart, pathEnd));
    if (route !== undefined) return route(request, info, url.slice(queryStart));
    this.#tracker.counters.add(PROTOCOL_HTTP, ACTION_OTHER, RESULT_ERROR);
    return plain(404, "not found");
  }

  /**
   * The wire server's entry point for GET/HEAD /announce (`scrape` false) and /scrape: writes the
   * bencoded body (reply or failure) into `wireBody` and returns its length, or -1 when the
   * request needs `handle()` instead (a full scrape).
   */
  answerWire(scrape: boolean, query: string, client: WireClient): number {
    this.#address.set(client.address);
    if (scrape) {
      const length = this.#scrapeBody(query, client.family, client);
      if (length >= 0 || this.fullScrape !== null) return length;
      return this.#failureBody(ACTION_SCRAPE, "full scrape is not enabled");
    }
    return this.#announceBody(query, client.family, client);
  }

  /**
   * The client of a request from socket peer `family`/`address` (16 bytes, overwritten with the
   * client's), behind trusted proxies as `headers` say; 0 when unusable.
   */
  resolveClient(family: 4 | 6, address: Uint8Array, headers: HeaderSource): 0 | 4 | 6 {
    return resolveClient(family, address, this.#tracker.trustProxy, headers);
  }

  /** Is this socket peer a `--trust-proxy` proxy (many clients behind one address)? */
  trustsProxy(family: 4 | 6, address: Uint8Array): boolean {
    return this.#tracker.trustProxy?.contains(family, address, 0) ?? false;
  }

  /** Where `answerWire` writes; valid until the next call. */
  get wireBody(): Uint8Array {
    return this.#out;
  }

  #failureBody(action: number, reason: string): number {
    this.#tracker.counters.add(PROTOCOL_HTTP, action, RESULT_ERROR);
    return writeFailure(this.#out, reason);
  }

  /** A failure body counted as refused for `refusal` (REFUSAL_*). */
  #refusalBody(action: number, refusal: number, reason: string): number {
    this.#tracker.counters.refused(PROTOCOL_HTTP, action, refusal);
    return writeFailure(this.#out, reason);
  }

  #bencoded(length: number): Response {
    return new Response(this.#out.slice(0, length), { headers: BENCODE_HEADERS });
  }

  #announce(
    query: string,
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response {
    const family = parseIpAddress(info.remoteAddr.hostname, this.#address);
    return this.#bencoded(this.#announceBody(query, family, request.headers));
  }

  /** An announce's body into #out (#address holding the socket peer's); returns its length. */
  #announceBody(query: string, peerFamily: 0 | 4 | 6, headers: HeaderSource): number {
    const tracker = this.#tracker;
    const announce = this.#query;
    const problem = parseAnnounceQuery(query, announce);
    if (problem !== null) return this.#refusalBody(ACTION_ANNOUNCE, REFUSAL_BAD_REQUEST, problem);
    if (!tracker.access.allows(announce.infoHash, 0)) {
      return this.#refusalBody(ACTION_ANNOUNCE, REFUSAL_ACCESS_DENIED, ACCESS_DENIED_REASON);
    }
    const address = this.#address;
    const family = resolveClient(peerFamily, address, tracker.trustProxy, headers);
    if (family === 0) {
      return this.#refusalBody(ACTION_ANNOUNCE, REFUSAL_BAD_REQUEST, "unusable client address");
    }
    const entry = family === 4 ? 6 : 18;
    const numwant = announce.event === EVENT_STOPPED
      ? 0
      : tracker.numwant(announce.numwant, tracker.maxNumwant);
    const store = tracker.store;
    const count = store.announce(
      announce.infoHash,
      0,
      family,
      address,
      0,
      announce.port,
      announce.event,
      announce.leftIsZero,
      numwant,
      tracker.clock.now,
      this.#peers,
      0,
    );
    const result = store.result;
    // At --max-torrents/--max-peers with --when-full refuse: nothing was stored.
    if (count < 0) return this.#failureBody(ACTION_ANNOUNCE, refusedReason(result.refused));
    tracker.changes?.announced(
      announce.event,
      announce.infoHash,
      0,
      family,
      address,
      0,
      announce.port,
      announce.leftIsZero,
      result.previous,
      tracker.clock.now,
    );
    let shown = count;
    const generated = tracker.generatedPeersFor(
      announce.infoHash,
      0,
      result.complete + result.incomplete,
    );
    if (generated > 0) {
      shown = tracker.deniability!.mixIn(family, this.#peers, 0, count, numwant, generated);
    }
    const length = writeAnnounceReply(
      this.#out,
      result.complete,
      result.downloaded,
      result.incomplete + generated,
      tracker.jitteredInterval(),
      tracker.minInterval,
      family,
      this.#peers,
      shown * entry,
      address,
      0,
      family === 4 ? 4 : 16,
    );
    tracker.counters.answered(PROTOCOL_HTTP, ACTION_ANNOUNCE, family);
    tracker.clients?.count(announce.peerId, 0);
    return length;
  }

  #scrape(
    query: string,
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    const family = parseIpAddress(info.remoteAddr.hostname, this.#address);
    const length = this.#scrapeBody(query, family, request.headers);
    if (length >= 0) return this.#bencoded(length);
    if (this.fullScrape !== null) return this.fullScrape(request, info, query);
    return this.#bencoded(this.#failureBody(ACTION_SCRAPE, "full scrape is not enabled"));
  }

  /**
   * A scrape's body into #out (#address holding the socket peer's); returns its length, or -1
   * for a full scrape (no info_hash).
   */
  #scrapeBody(query: string, peerFamily: 0 | 4 | 6, headers: HeaderSource): number {
    const tracker = this.#tracker;
    const parsed = parseScrapeQuery(query, this.#scrapeHashes);
    if (typeof parsed === "string") {
      return this.#refusalBody(ACTION_SCRAPE, REFUSAL_BAD_REQUEST, parsed);
    }
    if (parsed === 0) return -1;
    const store = tracker.store;
    const result = store.result;
    const counts = this.#scrapeCounts;
    const access = tracker.access;
    for (let i = 0; i < parsed; i++) {
      // A forbidden torrent answers like an unknown one: listed with zeros.
      if (!access.allows(this.#scrapeHashes, i * 20)) {
        counts.fill(0, i * 3, i * 3 + 3);
        continue;
      }
      store.scrape(this.#scrapeHashes, i * 20);
      counts[i * 3] = result.complete;
      counts[i * 3 + 1] = result.downloaded;
      counts[i * 3 + 2] = result.incomplete +
        tracker.generatedPeersFor(this.#scrapeHashes, i * 20, result.complete + result.incomplete);
    }
    const length = writeScrapeReply(this.#out, this.#scrapeHashes, parsed, counts);
    // The client's family, for the counters' split (a scrape needs no address otherwise).
    const family = resolveClient(peerFamily, this.#address, tracker.trustProxy, headers);
    if (family === 0) tracker.counters.add(PROTOCOL_HTTP, ACTION_SCRAPE, RESULT_OK);
    else tracker.counters.answered(PROTOCOL_HTTP, ACTION_SCRAPE, family);
    return length;
  }
}

function pathIs(url: string, start: number, end: number, path: string): boolean {
  if (end - start !== path.length) return false;
  return url.startsWith(path, start);
}
