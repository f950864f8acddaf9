/**
 * otter's settings: one table of options serves the command line, the help text, and the TOML
 * config file (configFile.ts). Values come in layers of raw text (defaults, then the file, then
 * flags) and are converted and checked once, in one place, whatever their source. A bad flag or
 * value is a `ConfigError` whose message is the one line main.ts prints before exiting with code 2:
 * it names the flag (or file, line and key) and what the option accepts.
 *
 * The command line is scanned here rather than by node:util's parseArgs, whose messages are its
 * own ("argument is ambiguous" for `--interval -5`) and which takes a value starting with "-" for
 * a flag: after an option that takes a value, the next argument is that value unless it starts
 * with "--".
 */
import { type ListenAddress, parseListenAddress } from "./listenAddress.ts";
import { CidrSet } from "../policy/cidr.ts";
import { checkClusterName, checkNodeId, parseClusterUrl } from "../cluster/clusterOptions.ts";

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
  maxConnectionsPerIp: number;
  headerTimeout: number;
  idleTimeout: number;
  minSendRate: number;
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

/** What an option takes, for error messages: "a whole number of seconds from 10 to 86400". */
export function accepts(spec: OptionSpec): string {
  switch (spec.kind) {
    case "flag":
      return "no value";
    case "text":
      return spec.valueName;
    case "strings":
      return "a network as ADDRESS/BITS or ADDRESS, like 10.0.0.0/8 or ::1";
    case "number":
      return `a number from ${spec.min} to ${spec.max}`;
    case "rate":
      return "a rate of requests per second like 50/s (0 = off)";
    case "list":
      return "an address as HOST:PORT, [IPv6]:PORT or PORT";
    case "integer": {
      const unit = spec.valueName === "SECONDS" ? " of seconds" : "";
      return `a whole number${unit} from ${spec.min} to ${spec.max}`;
    }
    case "choice":
      return `one of ${spec.choices!.join(", ")}`;
  }
}

function badValue(spec: OptionSpec, where: string, text: string): ConfigError {
  return new ConfigError(`${where} takes ${accepts(spec)}, got '${text}'`);
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
        // One entry at a time, to name the bad one.
        for (const entry of list) {
          try {
            CidrSet.parse([entry]);
          } catch {
            throw badValue(spec, where, entry);
          }
        }
      }
      return list;
    }
    case "number": {
      const text = raw as string;
      const n = Number(text);
      if (!/^\d+(\.\d+)?$/.test(text) || n < spec.min! || n > spec.max!) {
        throw badValue(spec, where, text);
      }
      return n;
    }
    case "rate": {
      const match = /^(\d{1,9})(\/s)?$/.exec(raw as string);
      if (match === null) throw badValue(spec, where, raw as string);
      return Number(match[1]);
    }
    case "list": {
      const out: ListenAddress[] = [];
      for (const text of raw as string[]) {
        const parsed = parseListenAddress(text);
        if (typeof parsed === "string") throw badValue(spec, where, text);
        out.push(parsed);
      }
      return out;
    }
    case "integer": {
      const text = raw as string;
      const n = Number(text);
      if (!/^\d+$/.test(text) || n < spec.min! || n > spec.max!) throw badValue(spec, where, text);
      return n;
    }
    case "choice": {
      const text = raw as string;
      if (!spec.choices!.includes(text)) throw badValue(spec, where, text);
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
  const wheres = new Map<string, string>();
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
    wheres.set(spec.name, where);
  }
  const result = config as unknown as Config;
  if (result.defaultNumwant > result.maxNumwant) result.defaultNumwant = result.maxNumwant;
  if (result.whitelist !== "" && result.blacklist !== "") {
    throw new ConfigError("--whitelist and --blacklist cannot be used together");
  }
  if (result.cluster !== "") {
    const url = parseClusterUrl(result.cluster);
    if ("error" in url) throw new ConfigError(`${wheres.get("cluster")}: ${url.error}`);
  }
  const nameTakes = checkClusterName(result.clusterName);
  if (nameTakes !== null) {
    throw new ConfigError(
      `${wheres.get("cluster-name")} takes ${nameTakes}, got '${result.clusterName}'`,
    );
  }
  if (result.clusterSecretFile !== "" && result.clusterInsecure) {
    throw new ConfigError("--cluster-secret-file and --cluster-insecure cannot be used together");
  }
  // An empty node id means a random one, drawn when the cluster starts (not on every reload).
  const idTakes = result.nodeId === "" ? null : checkNodeId(result.nodeId);
  if (idTakes !== null) {
    throw new ConfigError(`${wheres.get("node-id")} takes ${idTakes}, got '${result.nodeId}'`);
  }
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
    const def = spec.defaultText ??
      (Array.isArray(spec.defaultValue) ? spec.defaultValue.join(" ") : spec.defaultValue);
    // A switch is off unless given, and an empty default (no file, no list) goes without saying.
    const shown = typeof def === "boolean" || def === "" ? "" : ` (default ${def})`;
    lines.push(`${left.trimEnd().padEnd(30)} ${spec.help}${shown}`);
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

/** `--help` and `--version`: switches of the command line only, outside the options table. */
const SWITCH_ONLY = new Set(["help", "version"]);

/**
 * Parses the command line (`--name value` or `--name=value`; repeatable options collect, others
 * keep the last value); throws ConfigError with a one-line message on any problem.
 */
export function parseCommandLine(args: string[]): ParsedCommandLine {
  const given = new Map<string, RawValue>();
  const switches = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--") || arg === "--") {
      throw new ConfigError(
        arg.startsWith("-") && arg !== "-" && arg !== "--"
          ? `unknown flag '${arg}'`
          : `unexpected argument '${arg}': every setting is a --flag`,
      );
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    const inline = equals < 0 ? undefined : arg.slice(equals + 1);
    const spec = optionNamed(name);
    if (SWITCH_ONLY.has(name) || spec?.kind === "flag") {
      if (inline !== undefined) throw new ConfigError(`--${name} takes no value, got '${inline}'`);
      if (spec === undefined) switches.add(name);
      else given.set(name, true);
      continue;
    }
    if (spec === undefined) throw new ConfigError(`unknown flag '--${name}'`);
    let value = inline;
    if (value === undefined) {
      // "-5" is a (bad) value; "--udp" is the next flag, and this one's value is missing.
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) {
        throw new ConfigError(`--${name} needs a value: ${accepts(spec)}`);
      }
      value = next;
      i++;
    }
    if (spec.kind === "list" || spec.kind === "strings") {
      const list = given.get(name) as string[] | undefined;
      given.set(name, list === undefined ? [value] : [...list, value]);
    } else {
      given.set(name, value);
    }
  }
  if (switches.has("help")) return { kind: "help" };
  if (switches.has("version")) return { kind: "version" };
  if (given.get("print-config") === true) return { kind: "print-config" };
  const flags: RawSettings = { values: given, where: (name) => `--${name}` };
  return { kind: "run", config: resolveConfig([flags]), flags };
}
