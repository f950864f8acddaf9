/**
 * otter's settings: one table of options serves the command line (node:util parseArgs), the help
 * text and, later, the config file. A bad flag or value is a `ConfigError` whose message is the one
 * line main.ts prints before exiting with code 2.
 */
import { parseArgs } from "node:util";
import { type ListenAddress, parseListenAddress } from "./listenAddress.ts";

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
}

export class ConfigError extends Error {}

type Kind = "list" | "integer" | "choice";

interface OptionSpec {
  name: string;
  kind: Kind;
  key: keyof Config;
  valueName: string;
  help: string;
  defaultValue: string | string[];
  min?: number;
  max?: number;
  choices?: string[];
}

const OPTIONS: OptionSpec[] = [
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
    help: "announce interval sent to clients, jittered by ±10% per reply",
    defaultValue: "1800",
    min: 10,
    max: 86400,
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
];

function convert(spec: OptionSpec, raw: string | string[]): unknown {
  const flag = `--${spec.name}`;
  switch (spec.kind) {
    case "list": {
      const out: ListenAddress[] = [];
      for (const text of raw as string[]) {
        const parsed = parseListenAddress(text);
        if (typeof parsed === "string") throw new ConfigError(`${flag}: ${parsed}`);
        out.push(parsed);
      }
      return out;
    }
    case "integer": {
      const text = raw as string;
      if (!/^\d+$/.test(text)) {
        throw new ConfigError(`${flag}: '${text}' is not a whole number`);
      }
      const n = Number(text);
      if (n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
        throw new ConfigError(`${flag}: ${n} is out of range ${spec.min}..${spec.max}`);
      }
      return n;
    }
    case "choice": {
      const text = raw as string;
      if (!spec.choices!.includes(text)) {
        throw new ConfigError(`${flag}: '${text}' is not one of ${spec.choices!.join(", ")}`);
      }
      return text;
    }
  }
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
  | { kind: "run"; config: Config }
  | { kind: "help" }
  | { kind: "version" };

/** Parses the command line; throws ConfigError with a one-line message on any problem. */
export function parseCommandLine(args: string[]): ParsedCommandLine {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
    version: { type: "boolean" },
  };
  for (const spec of OPTIONS) {
    options[spec.name] = { type: "string", multiple: spec.kind === "list" };
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new ConfigError(firstLine(e));
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const config: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const raw = values[spec.name] as string | string[] | undefined;
    config[spec.key] = convert(spec, raw ?? spec.defaultValue);
  }
  const result = config as unknown as Config;
  if (result.defaultNumwant > result.maxNumwant) result.defaultNumwant = result.maxNumwant;
  return { kind: "run", config: result };
}

function firstLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split("\n")[0];
}
