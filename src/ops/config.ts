/**
 * otter's settings: one table of options serves the command line (node:util parseArgs), the help
 * text, and the TOML config file (configFile.ts). Values come in layers of raw text (defaults, then
 * the file, then flags) and are converted and checked once, in one place, whatever their source. A
 * bad flag or value is a `ConfigError` whose message is the one line main.ts prints before exiting
 * with code 2.
 */
import { parseArgs } from "node:util";
import { type ListenAddress, parseListenAddress } from "./listenAddress.ts";
import { CidrSet } from "./cidr.ts";
import { checkClusterName, checkNodeId, parseClusterUrl } from "./cluster/clusterOptions.ts";

export type { ListenAddress };

export interface Config {
  http: ListenAddress[];
  udp: ListenAddress[];
  /** Seconds between announces we ask clients for (each reply jitters it by ±10%). */
  interval: number;
  peerTimeout: number;
  maxNumwant: number;
  defaultNumwant: number;
  udpIo: "auto" | "fast" | "portable";
  /** UDP I/O Workers of the fast path (0: one per core; 1: none, the main isolate does the I/O). */
  workers: number;
  fullScrapeEvery: number;
  noFullScrape: boolean;
  statsFrom: string[];
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
  headerTimeout: number;
  idleTimeout: number;
  rateLimit: number;
  cluster: string;
  clusterName: string;
  nodeId: string;
  clusterSecretFile: string;
  clusterInsecure: boolean;
}

/**
 * A bad flag, key or value. Its message is printed as one line, so control characters from the
 * offending value (a line break inside a TOML string, say) are shown escaped.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(
      message.replace(
        // deno-lint-ignore no-control-regex
        /[\u0000-\u001f\u007f\u2028\u2029]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
      ),
    );
  }
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
    help: "networks that may read /stats and /metrics (repeatable)",
    defaultValue: ["127.0.0.0/8", "::1/128"],
    reloadable: true,
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
    help: "most peers held at once, IPv4 and IPv6 together",
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
    name: "rate-limit",
    kind: "rate",
    key: "rateLimit",
    valueName: "N/s",
    help: "UDP requests per second allowed per source address, IPv6 per /64 (0 = off)",
    defaultValue: "0/s",
    reloadable: true,
  },
  {
    name: "cluster",
    kind: "text",
    key: "cluster",
    valueName: "URL",
    help: "join a cluster through Redis: redis://[user:password@]host:port[/db] or rediss://…",
    defaultValue: "",
  },
  {
    name: "cluster-name",
    kind: "text",
    key: "clusterName",
    valueName: "NAME",
    help: "the cluster's name (its Redis stream key)",
    defaultValue: "otter",
  },
  {
    name: "node-id",
    kind: "text",
    key: "nodeId",
    valueName: "ID",
    help: "this instance's id in the cluster (default: random)",
    defaultValue: "",
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
];

/** The option called `name` (without "--"), or undefined. */
export function optionNamed(name: string): OptionSpec | undefined {
  return OPTIONS.find((spec) => spec.name === name);
}

/** Raw values from one source (the command line, a config file), by option name. */
export interface RawSettings {
  values: Map<string, RawValue>;
  /** How an error names an option of this source: "--interval", "otter.toml line 3: interval". */
  where(name: string): string;
}

function convert(spec: OptionSpec, raw: RawValue, where: string): unknown {
  switch (spec.kind) {
    case "flag":
      return raw === true;
    case "text":
      return raw as string;
    case "strings": {
      const list = raw as string[];
      if (spec.name === "stats-from" || spec.name === "trust-proxy") {
        try {
          CidrSet.parse(list);
        } catch (e) {
          throw new ConfigError(`${where}: ${e instanceof Error ? e.message : e}`);
        }
      }
      return list;
    }
    case "number": {
      const text = raw as string;
      if (!/^\d+(\.\d+)?$/.test(text)) throw new ConfigError(`${where}: '${text}' is not a number`);
      const n = Number(text);
      if (n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_VALUE)) {
        throw new ConfigError(`${where}: ${n} is out of range ${spec.min}..${spec.max}`);
      }
      return n;
    }
    case "rate": {
      const match = /^(\d{1,9})(\/s)?$/.exec(raw as string);
      if (match === null) throw new ConfigError(`${where}: '${raw}' is not a rate like 50/s`);
      return Number(match[1]);
    }
    case "list": {
      const out: ListenAddress[] = [];
      for (const text of raw as string[]) {
        const parsed = parseListenAddress(text);
        if (typeof parsed === "string") throw new ConfigError(`${where}: ${parsed}`);
        out.push(parsed);
      }
      return out;
    }
    case "integer": {
      const text = raw as string;
      if (!/^\d+$/.test(text)) {
        throw new ConfigError(`${where}: '${text}' is not a whole number`);
      }
      const n = Number(text);
      if (n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
        throw new ConfigError(`${where}: ${n} is out of range ${spec.min}..${spec.max}`);
      }
      return n;
    }
    case "choice": {
      const text = raw as string;
      if (!spec.choices!.includes(text)) {
        throw new ConfigError(`${where}: '${text}' is not one of ${spec.choices!.join(", ")}`);
      }
      return text;
    }
  }
}

/**
 * Builds a Config from the defaults overlaid by `layers` in order (later layers win: pass the
 * config file before the command line). Throws ConfigError naming the source of a bad value.
 */
export function resolveConfig(layers: readonly RawSettings[]): Config {
  const config: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    let raw = spec.defaultValue;
    let where = `default of ${spec.name}`;
    for (const layer of layers) {
      const value = layer.values.get(spec.name);
      if (value !== undefined) {
        raw = value;
        where = layer.where(spec.name);
      }
    }
    config[spec.key] = convert(spec, raw, where);
  }
  const result = config as unknown as Config;
  if (result.defaultNumwant > result.maxNumwant) result.defaultNumwant = result.maxNumwant;
  if (result.whitelist !== "" && result.blacklist !== "") {
    throw new ConfigError("--whitelist and --blacklist cannot be used together");
  }
  if (result.cluster !== "") {
    const url = parseClusterUrl(result.cluster);
    if ("error" in url) throw new ConfigError(url.error);
  }
  if (result.clusterSecretFile !== "" && result.clusterInsecure) {
    throw new ConfigError("--cluster-secret-file and --cluster-insecure cannot be used together");
  }
  const nameProblem = checkClusterName(result.clusterName);
  if (nameProblem !== null) throw new ConfigError(nameProblem);
  // An empty node id means a random one, drawn when the cluster starts (not on every reload).
  const idProblem = result.nodeId === "" ? null : checkNodeId(result.nodeId);
  if (idProblem !== null) throw new ConfigError(idProblem);
  return result;
}

export function helpText(version: string): string {
  const lines = [
    `otter ${version}: a BitTorrent tracker (HTTP and UDP, IPv4 and IPv6)`,
    "",
    "usage: otter [options]",
    "",
  ];
  for (const spec of OPTIONS) {
    const left = `  --${spec.name} ${spec.valueName}`;
    const def = Array.isArray(spec.defaultValue) ? spec.defaultValue.join(" ") : spec.defaultValue;
    lines.push(`${left.padEnd(30)} ${spec.help} (default ${def})`);
  }
  lines.push(`${"  --help".padEnd(30)} print this help and exit`);
  lines.push(`${"  --version".padEnd(30)} print the version and exit`);
  return lines.join("\n");
}

export type ParsedCommandLine =
  | {
    kind: "run";
    /** Defaults overlaid by the flags only; configFile.ts's loadConfig adds the file. */
    config: Config;
    /** The flags as given, to lay over the config file again on reload. */
    flags: RawSettings;
  }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "print-config" };

/** Parses the command line; throws ConfigError with a one-line message on any problem. */
export function parseCommandLine(args: string[]): ParsedCommandLine {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
    version: { type: "boolean" },
  };
  for (const spec of OPTIONS) {
    options[spec.name] = {
      type: spec.kind === "flag" ? "boolean" : "string",
      multiple: spec.kind === "list" || spec.kind === "strings",
    };
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new ConfigError(firstLine(e));
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (values["print-config"]) return { kind: "print-config" };
  const given = new Map<string, RawValue>();
  for (const spec of OPTIONS) {
    const raw = values[spec.name] as RawValue | undefined;
    if (raw !== undefined) given.set(spec.name, raw);
  }
  const flags: RawSettings = { values: given, where: (name) => `--${name}` };
  return { kind: "run", config: resolveConfig([flags]), flags };
}

function firstLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split("\n")[0];
}
