/**
 * Listen addresses as operators write them: `HOST:PORT`, `[V6]:PORT`, or a bare `PORT`
 * (which means `[::]:PORT`, one dual-stack socket for IPv4 and IPv6).
 */

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
  return { hostname, port };
}

/** Formats an address for log lines and URLs: IPv6 in brackets. */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
