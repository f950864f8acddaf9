/**
 * Reading otter's settings. One table of options (options.ts) serves the command line, the help
 * text, and the TOML config file (configFile.ts). Values come in layers of raw text (defaults,
 * then the file, then flags) and are converted and checked once, here, whatever their source. A
 * bad flag or value is a `ConfigError` whose message is the one line main.ts prints before exiting
 * with code 2: it names the flag (or file, line and key) and what the option accepts.
 *
 * The command line is scanned here rather than by node:util's parseArgs, whose messages are its
 * own ("argument is ambiguous" for `--interval -5`) and which takes a value starting with "-" for
 * a flag: after an option that takes a value, the next argument is that value unless it starts
 * with "--".
 */
import { type ListenAddress, parseListenAddress } from "./listenAddress.ts";
import { type Config, optionNamed, OPTIONS, type OptionSpec, type RawValue } from "./options.ts";
import { CidrSet } from "../policy/cidr.ts";
import { checkClusterName, checkNodeId, parseClusterUrl } from "../cluster/clusterOptions.ts";

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
  if (result.https.length > 0 && (result.tlsCert === "" || result.tlsKey === "")) {
    throw new ConfigError("--https needs --tls-cert FILE and --tls-key FILE (PEM)");
  }
  if (result.https.length === 0 && (result.tlsCert !== "" || result.tlsKey !== "")) {
    throw new ConfigError("--tls-cert and --tls-key are used only with --https HOST:PORT");
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
