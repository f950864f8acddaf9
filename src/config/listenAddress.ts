/**
 * Listen addresses as operators write them: `HOST:PORT`, `[V6]:PORT`, or a bare `PORT`
 * (which means `[::]:PORT`, one dual-stack socket for IPv4 and IPv6). HOST is a name, or an
 * address that must then be one by protocol/ipAddress.ts's rules (brackets hold IPv6 only, a host
 * of digits and dots is IPv4), so a typo fails here, naming the flag, not at the listen.
 */
import { parseIpAddress } from "../protocol/ipAddress.ts";

export interface ListenAddress {
  hostname: string;
  port: number;
}

/** Parses one listen address; returns an error sentence instead of throwing. */
export function parseListenAddress(text: string): ListenAddress | string {
  const bad = `invalid address '${text}' (expected HOST:PORT, [IPv6]:PORT or PORT)`;
  let hostname: string;
  let portText: string;
  if (/^\d+$/.test(text)) {
    hostname = "::";
    portText = text;
  } else if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return bad;
    hostname = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!hostname.includes(":")) return bad;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon <= 0 || text.indexOf(":") !== colon) return bad;
    hostname = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return bad;
  const port = Number(portText);
  if (port > 65535) return bad;
  if (!/^[0-9A-Za-z.:%_-]+$/.test(hostname)) return bad;
  const literal = hostname.includes(":") || /^[0-9.]+$/.test(hostname);
  if (literal && parseIpAddress(hostname, new Uint8Array(16)) === 0) return bad;
  return { hostname, port };
}
