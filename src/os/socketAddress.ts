/**
 * Socket addresses as the FFI paths (servers/udp's fast path, servers/tcp) hand them to the kernel
 * and read them back: which literal address a socket binds (`parseIpLiteral`), `sockaddr_in` /
 * `sockaddr_in6` written and read in a caller's scratch memory, and errno turned into the error
 * `Deno.listen` would throw (`socketError`), so callers catch the same classes on either path.
 * Set-up and per-connection code only: these allocate.
 */
import {
  formatIpAddress,
  ipv4Mapped,
  isIpv4Mapped,
  parseIpAddress,
} from "../protocol/ipAddress.ts";
import {
  AF_INET,
  AF_INET6,
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  ECONNABORTED,
  ECONNRESET,
  ENOTCONN,
  EPIPE,
  errnoText,
  ETIMEDOUT,
} from "./libc.ts";

/** Bytes of a `sockaddr_in` and a `sockaddr_in6`. */
export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;

/**
 * The address a fast-path socket binds: protocol/ipAddress.ts's rules, with two for binding. A zone
 * id (`fe80::1%eth0`) is refused: binding a link-local address needs its scope id, which these
 * paths do not set. An IPv4-mapped address written as IPv6 stays IPv6 (an AF_INET6 socket on
 * `::ffff:a.b.c.d`), as the operator wrote it. Set-up only: it allocates.
 */
export function parseIpLiteral(text: string): { family: 4 | 6; bytes: Uint8Array } | undefined {
  if (text.includes("%")) return undefined;
  const bytes = new Uint8Array(16);
  const family = parseIpAddress(text, bytes);
  if (family === 0) return undefined;
  if (family === 6) return { family, bytes };
  if (!text.includes(":")) return { family, bytes: bytes.slice(0, 4) };
  ipv4Mapped(bytes);
  return { family: 6, bytes };
}

/** Writes a sockaddr for `family`/`bytes`/`port` at view[0..]; returns its length. */
export function writeSockaddr(
  view: DataView,
  family: 4 | 6,
  bytes: Uint8Array,
  port: number,
): number {
  const out = new Uint8Array(view.buffer, view.byteOffset, SOCKADDR_IN6_SIZE);
  out.fill(0);
  view.setUint16(0, family === 6 ? AF_INET6 : AF_INET, true);
  view.setUint16(2, port, false);
  if (family === 6) {
    out.set(bytes.subarray(0, 16), 8);
    return SOCKADDR_IN6_SIZE;
  }
  out.set(bytes.subarray(0, 4), 4);
  return SOCKADDR_IN_SIZE;
}

/**
 * The address in the sockaddr at view[0..] as `Deno.NetAddr` writes it: a dotted quad, IPv6 in
 * lower-case hex, an IPv4-mapped one as `::ffff:a.b.c.d` (as Deno shows a v4 client of a
 * dual-stack socket). Null for another family.
 */
export function readSockaddr(view: DataView): Deno.NetAddr | null {
  const family = view.getUint16(0, true);
  const port = view.getUint16(2, false);
  const bytes = new Uint8Array(view.buffer, view.byteOffset, SOCKADDR_IN6_SIZE);
  let hostname: string;
  if (family === AF_INET) hostname = formatIpAddress(4, bytes, 4);
  else if (family === AF_INET6) {
    hostname = isIpv4Mapped(bytes, 8)
      ? `::ffff:${formatIpAddress(4, bytes, 20)}`
      : formatIpAddress(6, bytes, 8);
  } else return null;
  return { transport: "tcp", hostname, port };
}

/** The error `Deno.listen` and `Deno.Conn` throw for `errno`, its text naming `what` failed. */
export function socketError(what: string, errno: number): Error {
  const message = `${what} failed: ${errnoText(errno)} (errno ${errno})`;
  switch (errno) {
    case EADDRINUSE:
      return new Deno.errors.AddrInUse(message);
    case EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(message);
    case EACCES:
      return new Deno.errors.PermissionDenied(message);
    case ECONNRESET:
      return new Deno.errors.ConnectionReset(message);
    case EPIPE:
      return new Deno.errors.BrokenPipe(message);
    case ECONNABORTED:
      return new Deno.errors.ConnectionAborted(message);
    case ENOTCONN:
      return new Deno.errors.NotConnected(message);
    case ETIMEDOUT:
      return new Deno.errors.TimedOut(message);
    default:
      return new Error(message);
  }
}
