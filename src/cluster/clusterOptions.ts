/**
 * Checks for the cluster flags (`--cluster URL`, `--cluster-name NAME`, `--node-id ID`) and the
 * names derived from them. Each check returns a reason for a bad value, so config.ts can turn it
 * into its one-line error naming the flag or the config file's key; none touches the network.
 */
import { MAX_NODE_ID_BYTES } from "./changeBatch.ts";

export const DEFAULT_CLUSTER_NAME = "otter";

export interface ClusterUrl {
  /** The first URL, for a standalone Redis (or the first seed of a Redis Cluster). */
  url: string;
  /** Every URL given: the seeds of a Redis Cluster (one for a standalone Redis). */
  urls: string[];
  /** The URLs with any password replaced by `***`, for logs. */
  redacted: string;
}

/**
 * Parses `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS), or a comma-separated
 * list of them (a Redis Cluster's seeds: credentials and TLS from the first, database 0). A
 * reason never repeats the URL: it may hold a password.
 */
export function parseClusterUrl(text: string): ClusterUrl | { error: string } {
  const parts = text.split(",");
  const urls: string[] = [];
  const redacted: string[] = [];
  for (const part of parts) {
    const one = parseOneUrl(part.trim());
    if ("error" in one) {
      return parts.length > 1 ? { error: `URL ${urls.length + 1} of the list: ${one.error}` } : one;
    }
    urls.push(one.url);
    redacted.push(one.redacted);
  }
  if (urls.length > 1) {
    const first = new URL(urls[0]).protocol;
    if (urls.some((url) => new URL(url).protocol !== first)) {
      return { error: "the URLs of a list must all be redis:// or all rediss://" };
    }
    if (urls.some((url) => !/^\/?0?$/.test(new URL(url).pathname))) {
      return { error: "a Redis Cluster has database 0 only: the URLs of a list take no /db" };
    }
  }
  return { url: urls[0], urls, redacted: redacted.join(",") };
}

function parseOneUrl(text: string): { url: string; redacted: string } | { error: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { error: "not a URL; expected redis://[user:password@]host:port[/db]" };
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return { error: "the URL must start with redis:// or rediss://" };
  }
  if (url.hostname === "") return { error: "the URL has no host" };
  if (url.port === "") return { error: "the URL needs a port, e.g. redis://host:6379" };
  if (url.search !== "" || url.hash !== "") {
    return { error: "the URL takes no query or fragment" };
  }
  const path = url.pathname;
  if (path !== "" && path !== "/" && !/^\/(0|[1-9][0-9]{0,4})$/.test(path)) {
    return { error: "the URL path must be a database number, e.g. /0" };
  }
  return { url: text, redacted: redactUrl(url) };
}

function redactUrl(url: URL): string {
  if (url.password === "") return url.href;
  const copy = new URL(url.href);
  copy.password = "***";
  return copy.href;
}

/** A fresh random node id: 16 hex digits. */
export function randomNodeId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let id = "";
  for (const byte of bytes) id += byte.toString(16).padStart(2, "0");
  return id;
}

/** Null if `id` can name a node (1 to 64 bytes of printable ASCII), else what an id may be. */
export function checkNodeId(id: string): string | null {
  if (id.length < 1 || id.length > MAX_NODE_ID_BYTES || !/^[\x21-\x7e]+$/.test(id)) {
    return `1 to ${MAX_NODE_ID_BYTES} printable ASCII characters without spaces`;
  }
  return null;
}

/** Null if `name` can name a cluster (1 to 64 of letters, digits, `-`, `_`, `.`), else what a
 * name may be. */
export function checkClusterName(name: string): string | null {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) return "1 to 64 letters, digits, '-', '_' or '.'";
  return null;
}
