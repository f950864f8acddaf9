/**
 * The server side of RFC 6455's opening handshake (§4.2): is an HTTP request a valid WebSocket
 * upgrade, and the bytes of the 101 reply (or of the refusal) to send back. Pure: the accept
 * value's SHA-1 is otter's own (hash/sha1.ts), synchronous, without `node:crypto`.
 *
 * Headers come through a `get(name)` lookup taking lower-case names and returning repeated fields
 * joined with ", " (a `Headers` object qualifies), so the HTTP server may parse heads its own way.
 * A refusal is a value: status 400 with a reason, or 426 when the client speaks a WebSocket
 * version other than 13 (its reply carries `Sec-WebSocket-Version: 13`, §4.2.2).
 *
 * What is checked: GET over HTTP/1.1 or later; a Host field; `Upgrade` holding the token
 * "websocket" and `Connection` the token "upgrade" (token lists, any case); `Sec-WebSocket-Version`
 * 13; `Sec-WebSocket-Key` the base64 form of 16 bytes (24 characters ending "=="; the unused low
 * bits of the 22nd are not checked, as they do not change the 16 bytes). Origin is not checked (a
 * tracker serves every page), no subprotocol is chosen and no extension is accepted (so a client
 * may not set RSV bits: wsFrame.ts refuses them).
 */
import { sha1 } from "../hash/sha1.ts";
import { ascii } from "./asciiBytes.ts";

/** Looks up a request header by lower-case name; repeated fields joined with ", ". */
export interface HeaderLookup {
  get(name: string): string | null;
}

/** Appended to the key before hashing (RFC 6455 §1.3). */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A valid upgrade: the client's key, and the Sec-WebSocket-Accept value that answers it. */
export interface UpgradeAccepted {
  ok: true;
  key: string;
  accept: string;
}

/** A refused upgrade: the status to answer with and a short reason for the body and the stats. */
export interface UpgradeRefused {
  ok: false;
  status: 400 | 426;
  reason: string;
}

export type UpgradeCheck = UpgradeAccepted | UpgradeRefused;

const BASE64_KEY = /^[A-Za-z0-9+/]{22}==$/;

/** True if the comma-separated `list` holds `token` (lower case), compared in any case. */
export function hasToken(list: string | null, token: string): boolean {
  if (list === null) return false;
  for (const item of list.split(",")) {
    if (item.trim().toLowerCase() === token) return true;
  }
  return false;
}

/** Does the request ask for a WebSocket at all (`Upgrade: websocket`)? Route on this first. */
export function wantsWebSocket(headers: HeaderLookup): boolean {
  return hasToken(headers.get("upgrade"), "websocket");
}

/** Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)). */
export function acceptFor(key: string): string {
  return btoa(String.fromCharCode(...sha1(new TextEncoder().encode(key + WEBSOCKET_GUID))));
}

function refuse(status: 400 | 426, reason: string): UpgradeRefused {
  return { ok: false, status, reason };
}

/**
 * Checks an upgrade request. `method` as sent (case matters: "get" is not GET), `http11` false
 * for an HTTP/1.0 request.
 */
export function checkUpgrade(method: string, http11: boolean, headers: HeaderLookup): UpgradeCheck {
  if (method !== "GET") return refuse(400, "WebSocket upgrade must be GET");
  if (!http11) return refuse(400, "WebSocket upgrade needs HTTP/1.1");
  if (headers.get("host") === null) return refuse(400, "no Host header");
  if (!hasToken(headers.get("upgrade"), "websocket")) return refuse(400, "no Upgrade: websocket");
  if (!hasToken(headers.get("connection"), "upgrade")) return refuse(400, "no Connection: Upgrade");
  const version = headers.get("sec-websocket-version");
  if (version === null || version.trim() !== "13") {
    return refuse(426, "unsupported Sec-WebSocket-Version (13 only)");
  }
  const key = headers.get("sec-websocket-key")?.trim() ?? "";
  if (!BASE64_KEY.test(key)) return refuse(400, "bad Sec-WebSocket-Key");
  return { ok: true, key, accept: acceptFor(key) };
}

const SWITCHING_HEAD = ascii(
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: ",
);
const CRLF_CRLF = ascii("\r\n\r\n");
/** An accept value is base64 of 20 bytes: 28 characters. */
const ACCEPT_LENGTH = 28;

/** Length of the 101 reply: the status line, three headers, the blank line. */
export const SWITCHING_PROTOCOLS_LENGTH = SWITCHING_HEAD.length + ACCEPT_LENGTH + CRLF_CRLF.length;

/** Writes the 101 Switching Protocols reply for an accepted upgrade at out[o]; returns the end. */
export function writeSwitchingProtocols(out: Uint8Array, o: number, accept: string): number {
  if (accept.length !== ACCEPT_LENGTH) throw new RangeError("not a Sec-WebSocket-Accept value");
  if (o + SWITCHING_PROTOCOLS_LENGTH > out.length) throw new RangeError("101 reply does not fit");
  out.set(SWITCHING_HEAD, o);
  let p = o + SWITCHING_HEAD.length;
  for (let i = 0; i < ACCEPT_LENGTH; i++) out[p++] = accept.charCodeAt(i);
  out.set(CRLF_CRLF, p);
  return p + CRLF_CRLF.length;
}

/** The whole reply refusing an upgrade: status, reason as a text body, and then a close. */
export function upgradeRefusal(refused: UpgradeRefused): Uint8Array {
  // A 426 names the protocol to upgrade to (RFC 9110 §15.5.22) and the version (RFC 6455 §4.2.2).
  const head = refused.status === 426
    ? "426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
      "Connection: Upgrade, close"
    : "400 Bad Request\r\nConnection: close";
  const body = `${refused.reason}\n`;
  return ascii(
    `HTTP/1.1 ${head}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
  );
}
