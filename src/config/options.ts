/**
 * What can be set: otter's settings (`Config`) and the one table of options that names, documents
 * and bounds each of them, for the command line, the help text and the config file alike. Reading
 * and checking values is config.ts's; this file is the table.
 */
import type { ListenAddress } from "./listenAddress.ts";

export type { ListenAddress };

export interface Config {
  http: ListenAddress[];
  udp: ListenAddress[];
  /** HTTP over TLS listeners (`--https`); they need `tlsCert` and `tlsKey`. */
  https: ListenAddress[];
  /** PEM files of the certificate chain and its private key, re-read on SIGHUP. */
  tlsCert: string;
  tlsKey: string;
  /** Seconds between announces we ask clients for (each reply jitters it by ±10%). */
  interval: number;
  peerTimeout: number;
  maxNumwant: number;
  defaultNumwant: number;
  udpIo: "auto" | "fast" | "portable";
  tcpIo: "auto" | "fast" | "portable";
  /** UDP I/O Workers of the fast path (0: one per core; 1: none, the main isolate does the I/O). */
  workers: number;
  udpLingerUs: number;
  fullScrapeEvery: number;
  noFullScrape: boolean;
  statsFrom: string[];
  /** No /dashboard, no history recorded, no client mix counted. */
  noDashboard: boolean;
  whitelist: string;
  blacklist: string;
  trustProxy: string[];
  deniability: number;
  deniabilityMax: number;
  config: string;
  printConfig: boolean;
  state: string;
  stateEvery: number;
  maxTorrents: number;
  maxPeers: number;
  whenFull: "refuse" | "evict";
  maxConnections: number;
  maxConnectionsPerIp: number;
  headerTimeout: number;
  idleTimeout: number;
  minSendRate: number;
  rateLimit: number;
  /** Seconds between announces asked of WebSocket clients; idle after twice this. */
  wsInterval: number;
  wsPeerTimeout: number;
  maxWsConnections: number;
  noWebSocket: boolean;
  cluster: string;
  clusterName: string;
  nodeId: string;
  clusterSecretFile: string;
  clusterInsecure: boolean;
  /** Seconds of a cluster refresh epoch; 0: derived from the peer timeout and the interval. */
  clusterRefresh: number;
  /** Least seconds between two cluster snapshots of a shard. */
  clusterSnapshotInterval: number;
}

export type OptionKind =
  | "list"
  | "integer"
  | "choice"
  | "strings"
  | "text"
  | "number"
  | "flag"
  | "rate";

/** An option's value before conversion, as parseArgs gives it (config files are mapped to it). */
export type RawValue = string | string[] | boolean;

export interface OptionSpec {
  name: string;
  kind: OptionKind;
  key: keyof Config;
  valueName: string;
  help: string;
  defaultValue: RawValue;
  /** What the help says the default is, where `defaultValue` (empty) does not say it. */
  defaultText?: string;
  /** Settings SIGHUP may change in a running tracker. */
  reloadable?: boolean;
  /** Only meaningful on the command line (not a config-file key). */
  commandLineOnly?: boolean;
  min?: number;
  max?: number;
  choices?: string[];
}

export const OPTIONS: readonly OptionSpec[] = [
  {
    name: "http",
    kind: "list",
    key: "http",
    valueName: "HOST:PORT",
    help: "serve HTTP announce/scrape here (repeatable; IPv6 as [::1]:6969; [::] is dual-stack)",
    defaultValue: ["[::]:6969"],
  },
  {
    name: "https",
    kind: "list",
    key: "https",
    valueName: "HOST:PORT",
    help: "serve HTTP announce/scrape over TLS here, with --tls-cert and --tls-key (repeatable)",
    defaultValue: [],
  },
  {
    name: "tls-cert",
    kind: "text",
    key: "tlsCert",
    valueName: "FILE",
    help: "the --https certificate chain, PEM (leaf first, e.g. certbot's fullchain.pem); " +
      "re-read on SIGHUP",
    defaultValue: "",
    reloadable: true,
  },
  {
    name: "tls-key",
    kind: "text",
    key: "tlsKey",
    valueName: "FILE",
    help: "the --https certificate's private key, PEM; re-read on SIGHUP",
    defaultValue: "",
    reloadable: true,
  },
  {
    name: "udp",
    kind: "list",
    key: "udp",
    valueName: "HOST:PORT",
    help: "serve UDP (BEP 15) here (repeatable; IPv6 as [::1]:6969; [::] is dual-stack)",
    defaultValue: ["[::]:6969"],
  },
  {
    name: "interval",
    kind: "integer",
    key: "interval",
    valueName: "SECONDS",
    help: "announce interval sent to clients, jittered by ±10% per reply; min interval is half",
    defaultValue: "1800",
    min: 10,
    max: 86400,
    reloadable: true,
  },
  {
    name: "peer-timeout",
    kind: "integer",
    key: "peerTimeout",
    valueName: "SECONDS",
    help: "a peer silent this long is dropped",
    defaultValue: "2700",
    min: 1,
    max: 16000,
  },
  {
    name: "max-numwant",
    kind: "integer",
    key: "maxNumwant",
    valueName: "N",
    help: "most peers in one reply",
    defaultValue: "200",
    min: 0,
    max: 5000,
    reloadable: true,
  },
  {
    name: "numwant",
    kind: "integer",
    key: "defaultNumwant",
    valueName: "N",
    help: "peers in a reply when the client does not say",
    defaultValue: "50",
    min: 0,
    max: 5000,
    reloadable: true,
  },
  {
    name: "udp-io",
    kind: "choice",
    key: "udpIo",
    valueName: "MODE",
    help:
      "UDP socket I/O: fast (Linux recvmmsg/sendmmsg via FFI), portable (Deno.listenDatagram), " +
      "or auto (fast where available)",
    defaultValue: "auto",
    choices: ["auto", "fast", "portable"],
  },
  {
    name: "tcp-io",
    kind: "choice",
    key: "tcpIo",
    valueName: "MODE",
    help: "TCP I/O of --http listeners and their WebSockets: fast (Linux epoll via FFI), " +
      "portable (Deno.listen), or auto (fast where available); --https is always Deno's TLS",
    defaultValue: "auto",
    choices: ["auto", "fast", "portable"],
  },
  {
    name: "workers",
    kind: "integer",
    key: "workers",
    valueName: "N",
    help: "UDP fast path I/O threads, each with its own SO_REUSEPORT socket; the store stays on " +
      "the main thread (1 = none, the main thread does the I/O; 0 = one per core)",
    defaultValue: "1",
    min: 0,
    max: 256,
  },
  {
    name: "udp-linger",
    kind: "integer",
    key: "udpLingerUs",
    valueName: "US",
    help: "UDP fast path: after a wake-up with datagrams, wait this many µs on the main thread " +
      "for more before yielding to HTTP and timers (at most 1 ms of lingering a turn; 0 = off)",
    defaultValue: "200",
    min: 0,
    max: 1000,
  },
  {
    name: "full-scrape-every",
    kind: "integer",
    key: "fullScrapeEvery",
    valueName: "SECONDS",
    help: "rebuild the cached full scrape (GET /scrape without info_hash) at most this often",
    defaultValue: "60",
    min: 1,
    max: 86400,
    reloadable: true,
  },
  {
    name: "no-full-scrape",
    kind: "flag",
    key: "noFullScrape",
    valueName: "",
    help: "refuse full scrapes (403)",
    defaultValue: false,
    reloadable: true,
  },
  {
    name: "stats-from",
    kind: "strings",
    key: "statsFrom",
    valueName: "CIDR",
    help: "networks that may read /stats, /metrics and /dashboard (repeatable)",
    defaultValue: ["127.0.0.0/8", "::1/128"],
    reloadable: true,
  },
  {
    name: "no-dashboard",
    kind: "flag",
    key: "noDashboard",
    valueName: "",
    help: "serve no /dashboard and record no history for it",
    defaultValue: false,
  },
  {
    name: "whitelist",
    kind: "text",
    key: "whitelist",
    valueName: "FILE",
    help:
      "serve only the info hashes listed in FILE (40 hex a line; reloaded on change and SIGHUP)",
    defaultValue: "",
  },
  {
    name: "blacklist",
    kind: "text",
    key: "blacklist",
    valueName: "FILE",
    help: "refuse the info hashes listed in FILE (40 hex a line; reloaded on change and SIGHUP)",
    defaultValue: "",
  },
  {
    name: "trust-proxy",
    kind: "strings",
    key: "trustProxy",
    valueName: "CIDR",
    help: "take the client address from X-Forwarded-For / X-Real-IP on connections from these " +
      "networks (repeatable)",
    defaultValue: [],
    reloadable: true,
  },
  {
    name: "deniability",
    kind: "number",
    key: "deniability",
    valueName: "PROBABILITY",
    help: "chance (0..1) that an announce reply gets generated addresses mixed in",
    defaultValue: "0",
    min: 0,
    max: 1,
    reloadable: true,
  },
  {
    name: "deniability-max",
    kind: "integer",
    key: "deniabilityMax",
    valueName: "N",
    help: "most generated addresses mixed into one reply",
    defaultValue: "4",
    min: 1,
    max: 50,
    reloadable: true,
  },
  {
    name: "config",
    kind: "text",
    key: "config",
    valueName: "FILE",
    help: "read settings from a TOML file (flags override it)",
    defaultValue: "",
    commandLineOnly: true,
  },
  {
    name: "print-config",
    kind: "flag",
    key: "printConfig",
    valueName: "",
    help: "print the full default configuration as TOML and exit",
    defaultValue: false,
    commandLineOnly: true,
  },
  {
    name: "state",
    kind: "text",
    key: "state",
    valueName: "FILE",
    help: "save the swarms to FILE on stop and periodically, and restore them on start",
    defaultValue: "",
  },
  {
    name: "state-every",
    kind: "integer",
    key: "stateEvery",
    valueName: "SECONDS",
    help: "how often to save the state file",
    defaultValue: "300",
    min: 1,
    max: 86400,
    reloadable: true,
  },
  {
    name: "max-torrents",
    kind: "integer",
    key: "maxTorrents",
    valueName: "N",
    help: "most torrents held at once (the defaults of this and --max-peers keep otter within " +
      "1 GiB)",
    defaultValue: "2000000",
    min: 1,
    max: 100000000,
  },
  {
    name: "max-peers",
    kind: "integer",
    key: "maxPeers",
    valueName: "N",
    help: "most peers held at once, IPv4, IPv6 and WebSocket together",
    defaultValue: "8000000",
    min: 1,
    max: 500000000,
  },
  {
    name: "when-full",
    kind: "choice",
    key: "whenFull",
    valueName: "POLICY",
    help: 'at --max-torrents/--max-peers: refuse new torrents and peers ("tracker is full"), ' +
      "or evict the least recently announced torrents (approximately) to make room",
    defaultValue: "refuse",
    choices: ["refuse", "evict"],
  },
  {
    name: "max-connections",
    kind: "integer",
    key: "maxConnections",
    valueName: "N",
    help: "most concurrent HTTP connections",
    defaultValue: "10000",
    min: 1,
    max: 1000000,
  },
  {
    name: "max-connections-per-ip",
    kind: "integer",
    key: "maxConnectionsPerIp",
    valueName: "N",
    help: "most concurrent HTTP connections from one address, IPv6 per /64; --trust-proxy " +
      "networks are exempt (0 = no cap)",
    defaultValue: "128",
    min: 0,
    max: 1000000,
  },
  {
    name: "header-timeout",
    kind: "integer",
    key: "headerTimeout",
    valueName: "SECONDS",
    help: "HTTP clients must send their request headers within this time",
    defaultValue: "10",
    min: 1,
    max: 3600,
  },
  {
    name: "idle-timeout",
    kind: "integer",
    key: "idleTimeout",
    valueName: "SECONDS",
    help: "an idle HTTP keep-alive connection is closed after this time",
    defaultValue: "30",
    min: 1,
    max: 3600,
  },
  {
    name: "min-send-rate",
    kind: "integer",
    key: "minSendRate",
    valueName: "BYTES",
    help: "an HTTP reply must reach its client at this many bytes a second on average, after " +
      "--idle-timeout of grace, or the connection is closed",
    defaultValue: "65536",
    min: 1,
    max: 1000000000,
  },
  {
    name: "rate-limit",
    kind: "rate",
    key: "rateLimit",
    valueName: "N/s",
    help: "UDP requests per second allowed per source address, IPv6 per /64 (0 = off)",
    defaultValue: "0/s",
    reloadable: true,
  },
  {
    name: "ws-interval",
    kind: "integer",
    key: "wsInterval",
    valueName: "SECONDS",
    help: "announce interval sent to WebSocket (WebTorrent) clients, jittered by ±10%; a " +
      "connection with no message for twice this is closed",
    defaultValue: "120",
    min: 10,
    max: 3600,
    reloadable: true,
  },
  {
    name: "ws-peer-timeout",
    kind: "integer",
    key: "wsPeerTimeout",
    valueName: "SECONDS",
    help: "a WebSocket peer silent this long is dropped (at once when its connection closes)",
    defaultValue: "180",
    min: 1,
    max: 16000,
  },
  {
    name: "max-ws-connections",
    kind: "integer",
    key: "maxWsConnections",
    valueName: "N",
    help: "most concurrent WebSocket connections (upgrades past it get 503); they count in " +
      "--max-connections-per-ip, not in --max-connections",
    defaultValue: "10000",
    min: 1,
    max: 1000000,
    reloadable: true,
  },
  {
    name: "no-websocket",
    kind: "flag",
    key: "noWebSocket",
    valueName: "",
    help: "serve no WebSocket (WebTorrent) tracker on the HTTP listeners",
    defaultValue: false,
  },
  {
    name: "cluster",
    kind: "text",
    key: "cluster",
    valueName: "URL",
    help: "join a cluster through Redis: redis://[user:password@]host:port[/db] or rediss://…; " +
      "a Redis Cluster: its servers' URLs, comma-separated",
    defaultValue: "",
  },
  {
    name: "cluster-name",
    kind: "text",
    key: "clusterName",
    valueName: "NAME",
    help: "the cluster's name (in its Redis keys)",
    defaultValue: "otter",
  },
  {
    name: "node-id",
    kind: "text",
    key: "nodeId",
    valueName: "ID",
    help: "this instance's id in the cluster",
    defaultValue: "",
    defaultText: "random",
  },
  {
    name: "cluster-secret-file",
    kind: "text",
    key: "clusterSecretFile",
    valueName: "FILE",
    help: "authenticate cluster batches with the secret in FILE (at least 16 bytes, the same on " +
      "every node; --cluster needs this or --cluster-insecure)",
    defaultValue: "",
  },
  {
    name: "cluster-insecure",
    kind: "flag",
    key: "clusterInsecure",
    valueName: "",
    help: "run --cluster without a secret: anyone who can write to the Redis stream can add " +
      "peers to every node",
    defaultValue: false,
  },
  {
    name: "cluster-refresh",
    kind: "integer",
    key: "clusterRefresh",
    valueName: "SECONDS",
    help: "publish a peer's refresh that changes nothing once per this many seconds (0: derived " +
      "from --peer-timeout and --interval, 360 with the defaults)",
    defaultValue: "0",
    min: 0,
    max: 16000,
    reloadable: true,
  },
  {
    name: "cluster-snapshot-interval",
    kind: "integer",
    key: "clusterSnapshotInterval",
    valueName: "SECONDS",
    help: "least time between two snapshots of the swarms in Redis (shorter: less Redis memory " +
      "under heavy churn, more snapshot traffic)",
    defaultValue: "30",
    min: 1,
    max: 3600,
  },
];

/** The option called `name` (without "--"), or undefined. */
export function optionNamed(name: string): OptionSpec | undefined {
  return OPTIONS.find((spec) => spec.name === name);
}
