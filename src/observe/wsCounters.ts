/**
 * What the WebSocket (WebTorrent) tracker counts, for /metrics and /stats: connections open and
 * opened, upgrades refused, messages in and out by kind, offers forwarded and answers relayed,
 * refused messages by reason, connections closed by reason, and the bytes waiting for clients.
 * One object per process, plain numbers and Float64Arrays bumped in place; the metric families and
 * the stats mode `ws` that read them are here too, so stats.ts and metrics.ts only list them.
 */
import type { Family, Samples } from "./metricFamily.ts";

/** Messages a client sends, by kind ("invalid": not a request otter could read). */
export const WS_IN_KINDS = [
  "announce",
  "answer",
  "scrape",
  "invalid",
  "ping",
  "pong",
  "close",
] as const;
/** Messages otter sends, by kind. */
export const WS_OUT_KINDS = [
  "announce",
  "offer",
  "answer",
  "scrape",
  "error",
  "pong",
  "close",
] as const;
/** Why a message was refused (answered with a failure reason, never applied). */
export const WS_REFUSALS = [
  "malformed",
  "access_denied",
  "rate_limited",
  "full",
  "peer_id_owned",
  "no_matching_offer",
  "too_many_torrents",
] as const;
/** Why a connection closed. */
export const WS_CLOSES = [
  "client",
  "eof",
  "protocol_error",
  "binary",
  "invalid_utf8",
  "too_big",
  "idle_timeout",
  "frame_timeout",
  "slow_reader",
  "write_error",
  "shutdown",
] as const;
/** Why an upgrade was refused: a bad handshake (400/426), or --max-ws-connections open (503). */
export const WS_UPGRADE_REFUSALS = ["bad_handshake", "full"] as const;

export type WsInKind = typeof WS_IN_KINDS[number];
export type WsOutKind = typeof WS_OUT_KINDS[number];
export type WsRefusal = typeof WS_REFUSALS[number];
export type WsClose = typeof WS_CLOSES[number];

export const IN_ANNOUNCE = 0;
export const IN_ANSWER = 1;
export const IN_SCRAPE = 2;
export const IN_INVALID = 3;
export const IN_PING = 4;
export const IN_PONG = 5;
export const IN_CLOSE = 6;
export const OUT_ANNOUNCE = 0;
export const OUT_OFFER = 1;
export const OUT_ANSWER = 2;
export const OUT_SCRAPE = 3;
export const OUT_ERROR = 4;
export const OUT_PONG = 5;
export const OUT_CLOSE = 6;
export const REFUSED_MALFORMED = 0;
export const REFUSED_ACCESS = 1;
export const REFUSED_RATE = 2;
export const REFUSED_FULL = 3;
export const REFUSED_OWNED = 4;
export const REFUSED_NO_OFFER = 5;
export const REFUSED_TOO_MANY = 6;
export const CLOSED_CLIENT = 0;
export const CLOSED_EOF = 1;
export const CLOSED_PROTOCOL = 2;
export const CLOSED_BINARY = 3;
export const CLOSED_UTF8 = 4;
export const CLOSED_TOO_BIG = 5;
export const CLOSED_IDLE = 6;
export const CLOSED_FRAME_TIMEOUT = 7;
export const CLOSED_SLOW_READER = 8;
export const CLOSED_WRITE_ERROR = 9;
export const CLOSED_SHUTDOWN = 10;
export const UPGRADE_BAD = 0;
export const UPGRADE_FULL = 1;

export class WsCounters {
  /** Connections open now. */
  open = 0;
  /** Connections upgraded since start. */
  opened = 0;
  offersForwarded = 0;
  answersRelayed = 0;
  /** Bytes of frames waiting to be written to clients (queued or being written). */
  queuedBytes = 0;
  /** Pending offers dropped, oldest first, at the table's cap (wsOfferTable.ts). */
  offersEvicted = 0;
  /** Pending offers and peer-table entries held now, read when shown. */
  pendingOffers = 0;
  peerEntries = 0;
  readonly received = new Float64Array(WS_IN_KINDS.length);
  readonly sent = new Float64Array(WS_OUT_KINDS.length);
  readonly refused = new Float64Array(WS_REFUSALS.length);
  readonly closed = new Float64Array(WS_CLOSES.length);
  readonly upgradesRefused = new Float64Array(WS_UPGRADE_REFUSALS.length);
}

function table(names: readonly string[], values: Float64Array, label: string): Samples {
  return names.map((name, i) => [`${label}="${name}"`, values[i]] as const);
}

function record(names: readonly string[], values: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  names.forEach((name, i) => out[name] = values[i]);
  return out;
}

export const WS_FAMILIES: readonly Family<WsCounters>[] = [
  ["otter_ws_connections", "gauge", "WebSocket connections open.", (ws) => ws.open],
  [
    "otter_ws_connections_opened_total",
    "counter",
    "WebSocket upgrades accepted.",
    (ws) => ws.opened,
  ],
  [
    "otter_ws_upgrades_refused_total",
    "counter",
    "WebSocket upgrades refused: bad_handshake (400 or 426), full (503: --max-ws-connections " +
    "open).",
    (ws) => table(WS_UPGRADE_REFUSALS, ws.upgradesRefused, "reason"),
  ],
  [
    "otter_ws_messages_received_total",
    "counter",
    "WebSocket messages received, by kind (invalid: not a request otter could read).",
    (ws) => table(WS_IN_KINDS, ws.received, "kind"),
  ],
  [
    "otter_ws_messages_sent_total",
    "counter",
    "WebSocket messages sent, by kind (announce: announce replies).",
    (ws) => table(WS_OUT_KINDS, ws.sent, "kind"),
  ],
  [
    "otter_ws_offers_forwarded_total",
    "counter",
    "WebRTC offers forwarded to other WebSocket peers.",
    (ws) => ws.offersForwarded,
  ],
  [
    "otter_ws_answers_relayed_total",
    "counter",
    "WebRTC answers relayed to the peer that made the offer.",
    (ws) => ws.answersRelayed,
  ],
  [
    "otter_ws_refused_total",
    "counter",
    "WebSocket messages answered with a failure reason and not applied, by reason.",
    (ws) => table(WS_REFUSALS, ws.refused, "reason"),
  ],
  [
    "otter_ws_connections_closed_total",
    "counter",
    "WebSocket connections closed, by reason.",
    (ws) => table(WS_CLOSES, ws.closed, "reason"),
  ],
  [
    "otter_ws_queued_bytes",
    "gauge",
    "Bytes of WebSocket frames waiting for clients to take them.",
    (ws) => ws.queuedBytes,
  ],
  [
    "otter_ws_pending_offers",
    "gauge",
    "Offers forwarded and waiting for their answer (or their 120 s).",
    (ws) => ws.pendingOffers,
  ],
  [
    "otter_ws_pending_offers_evicted_total",
    "counter",
    "Pending offers dropped before their time to keep the table within its cap.",
    (ws) => ws.offersEvicted,
  ],
];

/** The stats page's `ws` mode as JSON. */
export function wsStatsJson(ws: WsCounters): Record<string, unknown> {
  return {
    connections: ws.open,
    opened: ws.opened,
    upgradesRefused: record(WS_UPGRADE_REFUSALS, ws.upgradesRefused),
    received: record(WS_IN_KINDS, ws.received),
    sent: record(WS_OUT_KINDS, ws.sent),
    offersForwarded: ws.offersForwarded,
    answersRelayed: ws.answersRelayed,
    refused: record(WS_REFUSALS, ws.refused),
    closed: record(WS_CLOSES, ws.closed),
    queuedBytes: ws.queuedBytes,
    pendingOffers: ws.pendingOffers,
    pendingOffersEvicted: ws.offersEvicted,
  };
}

/** The stats page's `ws` mode in opentracker's MRTG layout: open connections, offers forwarded. */
export function wsStatsText(ws: WsCounters | null, uptime: number): string {
  if (ws === null) return `0\n0\n${uptime} seconds\notter websocket: not serving WebSocket.`;
  let refused = 0;
  for (const n of ws.refused) refused += n;
  return `${ws.open}\n${ws.offersForwarded}\n${uptime} seconds (${Math.floor(uptime / 3600)} ` +
    `hours)\notter websocket: connections open, offers forwarded (${ws.answersRelayed} answers ` +
    `relayed, ${refused} messages refused).`;
}
