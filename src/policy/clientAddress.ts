/**
 * Which address an HTTP request comes from, for the swarm, BEP 24's `external ip` and
 * `--stats-from`.
 *
 * The socket peer's address, unless the peer is inside `--trust-proxy`. Then:
 * - X-Forwarded-For, all its lines joined in order (one list, as RFC 9110 joins repeated fields),
 *   is walked from the right, the hop nearest otter. An address inside the trusted networks is a
 *   proxy of ours and the walk goes on; the first one outside them is the client. Proxies such as
 *   nginx (`$proxy_add_x_forwarded_for`) and HAProxy (`option forwardfor`) append the address they
 *   saw to whatever the client sent, so only the entries right of the first untrusted one are
 *   written by proxies we trust; anything further left is the client's own claim.
 * - A chain made only of trusted addresses gives its leftmost one (a request from inside).
 * - An entry that is not an address (garbage, "unknown", empty) stops the walk: the client is the
 *   last trusted hop before it (or the socket peer), never a value left of the garbage, which
 *   whoever wrote the garbage may have chosen.
 * - X-Real-IP is read only when no X-Forwarded-For line came: it holds one address (several lines
 *   of it, or a list, are ignored), and X-Forwarded-For is what carries the chain.
 *
 * Per request on the HTTP hot path behind a proxy, so it walks the text by index into a
 * caller-owned buffer and allocates nothing.
 */
import type { CidrSet } from "./cidr.ts";
import { parseForwardedEntry, parseIpAddress } from "../protocol/ipAddress.ts";

/** The request's headers, as `Headers.get` gives them (repeated fields joined with ", "). */
export type HeaderSource = { get(name: string): string | null };

const entry = new Uint8Array(16);

/**
 * The client of a request whose socket peer has `family` and its address at `address[0..]` (16
 * bytes): puts the client's address into `address` and returns its family (0: the peer's address
 * is unusable). `trusted` null: no proxy is trusted.
 */
export function resolveClient(
  family: 0 | 4 | 6,
  address: Uint8Array,
  trusted: CidrSet | null,
  headers: HeaderSource,
): 0 | 4 | 6 {
  if (family === 0 || trusted === null || !trusted.contains(family, address, 0)) return family;
  const forwardedFor = headers.get("x-forwarded-for");
  if (forwardedFor !== null) return walkForwardedFor(forwardedFor, family, address, trusted);
  const realIp = headers.get("x-real-ip");
  if (realIp === null) return family;
  const claimed = parseIpAddress(realIp, entry);
  if (claimed === 0) return family;
  address.set(entry);
  return claimed;
}

/**
 * Walks an X-Forwarded-For list from the right, starting from the trusted hop `family`/`address`
 * (the socket peer); leaves the client in `address` and returns its family.
 */
export function walkForwardedFor(
  list: string,
  family: 4 | 6,
  address: Uint8Array,
  trusted: CidrSet,
): 4 | 6 {
  let end = list.length;
  for (;;) {
    const comma = end > 0 ? list.lastIndexOf(",", end - 1) : -1;
    const found = parseForwardedEntry(list, comma + 1, end, entry);
    if (found === 0) return family; // garbage: keep the last trusted hop
    address.set(entry);
    if (!trusted.contains(found, address, 0)) return found;
    family = found;
    if (comma < 0) return family; // trusted all the way: the leftmost
    end = comma;
  }
}
