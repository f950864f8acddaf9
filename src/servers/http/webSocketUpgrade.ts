/**
 * WebSocket upgrades on the HTTP server: which requests are upgrades to take (GET `/announce` or
 * `/` with `Upgrade: websocket`, as bittorrent-tracker serves `ws://host:port/announce` beside
 * HTTP), and what each gets: the socket handed to the WebSocket server (servers/ws, wired in by
 * startTracker.ts through httpTracker.ts's `WebSocketUpgrades`, since HTTP may not import it), or a refusal (400
 * or 426 for a bad handshake, 503 when `--max-ws-connections` are open) followed by a close. An
 * `Upgrade: websocket` request elsewhere is served as plain HTTP (a 404, say).
 */
import { ascii } from "../../protocol/asciiBytes.ts";
import { checkUpgrade, upgradeRefusal } from "../../protocol/wsHandshake.ts";
import type { WebSocketUpgrades } from "./httpTracker.ts";
import { M_GET, type RequestHead, requestHeader } from "./requestHead.ts";

const PATH_ANNOUNCE = ascii("/announce");

const FULL_BODY = "too many WebSocket connections\n";
const FULL = ascii(
  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
    `Retry-After: 60\r\nConnection: close\r\nContent-Length: ${FULL_BODY.length}\r\n\r\n` +
    FULL_BODY,
);

/** Whether the parsed request asks for a WebSocket on a path that serves one. */
export function isUpgradeRequest(head: RequestHead): boolean {
  if (!head.upgradeWebSocket) return false;
  const bytes = head.input;
  const length = head.pathEnd - head.pathStart;
  if (length === 1) return bytes[head.pathStart] === 0x2f;
  if (length !== PATH_ANNOUNCE.length) return false;
  for (let i = 0; i < length; i++) if (bytes[head.pathStart + i] !== PATH_ANNOUNCE[i]) return false;
  return true;
}

/**
 * Checks an upgrade request (`isUpgradeRequest`): the Sec-WebSocket-Accept value to answer with,
 * or the bytes of the refusal to send before closing (counted).
 */
export function checkWebSocketUpgrade(
  head: RequestHead,
  upgrades: WebSocketUpgrades,
): string | Uint8Array {
  const check = checkUpgrade(
    head.method === M_GET ? "GET" : "other",
    !head.http10,
    { get: (name) => requestHeader(head, name) },
  );
  if (!check.ok) {
    upgrades.refused(false);
    return upgradeRefusal(check);
  }
  if (upgrades.full) {
    upgrades.refused(true);
    return FULL;
  }
  return check.accept;
}
