/**
 * The TOML config file: every option of options.ts's table is a top-level key of the same name
 * (`peer-timeout = 2700`, `http = ["[::]:6969"]`, `no-full-scrape = true`), flags override it, and
 * SIGHUP re-reads it. An unknown key or bad value is a ConfigError naming the file, the line and
 * the key; smol-toml reports the line of a syntax error, and the line of a key is found here.
 *
 * Also renders the default configuration as TOML (`--print-config`), which loads back unchanged.
 */
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { parse, TomlError } from "npm:smol-toml@1.9.1";
import {
  ConfigError,
  parseCommandLine,
  type ParsedCommandLine,
  type RawSettings,
  resolveConfig,
} from "./config.ts";
import { type Config, optionNamed, OPTIONS, type OptionSpec, type RawValue } from "./options.ts";
import { fileErrorText } from "../fileErrors.ts";

export type ReadText = (path: string) => string;

const readTextSync: ReadText = (path) => Deno.readTextFileSync(path);

/** The 1-based line where top-level key `key` is set (`key =`, `"key" =`, `key.x =`, `[key]`). */
export function lineOfKey(text: string, key: string): number {
  const name = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const assignment = new RegExp(`^\\s*(?:${name}|"${name}"|'${name}')\\s*[=.]`);
  const table = new RegExp(`^\\s*\\[\\[?\\s*(?:${name}|"${name}"|'${name}')\\s*[\\].]`);
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    if (assignment.test(lines[i]) || table.test(lines[i])) return i + 1;
  }
  return 0;
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  if (value === null) return "null";
  if (typeof value === "object") return "a table";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  return `a ${typeof value}`;
}

/** Why a TOML value cannot stand for an option (its type is wrong). */
class TypeProblem {
  constructor(readonly why: string) {}
}

/** Maps one TOML value onto the raw text the flag parser would have produced. */
function toRaw(spec: OptionSpec, value: unknown): RawValue | TypeProblem {
  const got = typeName(value);
  switch (spec.kind) {
    case "flag":
      return typeof value === "boolean"
        ? value
        : new TypeProblem(`expected true or false, got ${got}`);
    case "integer":
      return typeof value === "number" && Number.isInteger(value)
        ? String(value)
        : new TypeProblem(`expected a whole number, got ${got}`);
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return new TypeProblem(`expected a number, got ${got}`);
      }
      // Plain decimal digits, as on the command line (String() would give "1e-7").
      return Number.isInteger(value) ? String(value) : value.toFixed(12).replace(/0+$/, "");
    case "rate":
      if (typeof value === "number" && Number.isInteger(value)) return String(value);
      return typeof value === "string"
        ? value
        : new TypeProblem(`expected a rate like "50/s", got ${got}`);
    case "text":
    case "choice":
      return typeof value === "string" ? value : new TypeProblem(`expected a string, got ${got}`);
    case "list":
    case "strings":
      if (typeof value === "string") return [value];
      if (Array.isArray(value) && value.every((item) => typeof item === "string")) {
        return value as string[];
      }
      return new TypeProblem(`expected an array of strings, got ${got}`);
  }
}

/**
 * Parses config-file text into raw settings; throws ConfigError ("FILE line N: key: why") on a
 * syntax error, an unknown key or a value of the wrong type. Ranges and formats are checked when
 * the settings are resolved (resolveConfig), with the same file-and-line naming.
 */
export function parseConfigText(text: string, path: string): RawSettings {
  let document: Record<string, unknown>;
  try {
    document = parse(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const why = e.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw new ConfigError(`${path} line ${e.line}: ${why}`);
    }
    throw e;
  }
  const at = (key: string) => {
    const line = lineOfKey(text, key);
    return line > 0 ? `${path} line ${line}: ${key}` : `${path}: ${key}`;
  };
  const values = new Map<string, RawValue>();
  for (const [key, value] of Object.entries(document)) {
    const spec = optionNamed(key);
    if (spec === undefined) throw new ConfigError(`${at(key)}: unknown key`);
    if (spec.commandLineOnly) {
      throw new ConfigError(`${at(key)}: only allowed on the command line (--${key})`);
    }
    const raw = toRaw(spec, value);
    if (raw instanceof TypeProblem) throw new ConfigError(`${at(key)}: ${raw.why}`);
    values.set(key, raw);
  }
  return { values, where: at };
}

/** Reads and parses the file; a file that cannot be read is a ConfigError too. */
export function readConfigFile(path: string, readText: ReadText = readTextSync): RawSettings {
  let text: string;
  try {
    text = readText(path);
  } catch (e) {
    throw new ConfigError(`--config ${path}: ${fileErrorText(e)}`);
  }
  return parseConfigText(text, path);
}

/**
 * The command line with its config file: defaults, then the file named by `--config`, then the
 * flags. Throws ConfigError (exit 2) on any problem in either.
 */
export function loadConfig(args: string[], readText: ReadText = readTextSync): ParsedCommandLine {
  return withConfigFile(parseCommandLine(args), readText);
}

/** `loadConfig` for a command line already parsed (main.ts loads this module only with --config). */
export function withConfigFile(
  parsed: ParsedCommandLine,
  readText: ReadText = readTextSync,
): ParsedCommandLine {
  if (parsed.kind !== "run" || parsed.config.config === "") return parsed;
  const file = readConfigFile(parsed.config.config, readText);
  return { ...parsed, config: resolveConfig([file, parsed.flags]) };
}

function tomlValue(spec: OptionSpec, raw: RawValue): string {
  if (typeof raw === "boolean") return String(raw);
  if (Array.isArray(raw)) return `[${raw.map((item) => JSON.stringify(item)).join(", ")}]`;
  if (spec.kind === "integer" || spec.kind === "number") return raw;
  return JSON.stringify(raw);
}

/** `text` as "# " comment lines of at most COMMENT_WIDTH characters. */
function commentLines(text: string): string[] {
  const out: string[] = [];
  let line = "#";
  for (const word of text.split(" ")) {
    if (line.length > 1 && line.length + 1 + word.length > COMMENT_WIDTH) {
      out.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  out.push(line);
  return out;
}

const COMMENT_WIDTH = 100;

/** The default configuration as a commented TOML file; it loads back as the defaults. */
export function defaultConfigToml(): string {
  const lines = [
    "# otter configuration (TOML). Each key is the command-line flag of the same name without",
    '# its "--"; flags given on the command line override this file. Keys marked "reloadable"',
    "# are re-read from this file on SIGHUP; changing any other key needs a restart.",
  ];
  for (const spec of OPTIONS) {
    if (spec.commandLineOnly) continue;
    const range = spec.min !== undefined ? `; ${spec.min}..${spec.max}` : "";
    const choices = spec.choices ? `; one of ${spec.choices.join(", ")}` : "";
    const empty = spec.defaultText !== undefined ? ` (empty: ${spec.defaultText})` : "";
    lines.push("");
    lines.push(
      ...commentLines(
        `${spec.help}${empty}${range}${choices}${spec.reloadable ? " (reloadable)" : ""}`,
      ),
    );
    lines.push(`${spec.name} = ${tomlValue(spec, spec.defaultValue)}`);
  }
  return lines.join("\n") + "\n";
}

function showValue(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${
      value.map((item) =>
        typeof item === "object" && item !== null && "port" in item
          ? `${item.hostname}:${item.port}`
          : String(item)
      ).join(", ")
    }]`;
  }
  return JSON.stringify(value);
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface ReloadOutcome {
  /** The settings to run with: the new reloadable values, the old values of everything else. */
  config: Config;
  /** False when the file could not be read or validated; `config` is then the old one. */
  ok: boolean;
  /** One log line saying what changed, what needs a restart, or why nothing was applied. */
  message: string;
}

/**
 * Re-reads `current.config` (the file), lays the original flags over it and validates the result
 * fully. Reloadable settings take their new values; others that changed are reported as needing a
 * restart and keep their old values.
 */
export function reloadConfig(
  current: Config,
  flags: RawSettings,
  readText: ReadText = readTextSync,
): ReloadOutcome {
  const path = current.config;
  if (path === "") {
    return { config: current, ok: true, message: "config: no --config file to reload" };
  }
  let next: Config;
  try {
    next = resolveConfig([readConfigFile(path, readText), flags]);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return {
      config: current,
      ok: false,
      message: `config ${path}: reload failed, keeping the old settings: ${e.message}`,
    };
  }
  const merged: Record<string, unknown> = { ...current };
  const changed: string[] = [];
  const needRestart: string[] = [];
  for (const spec of OPTIONS) {
    const before = current[spec.key];
    const after = next[spec.key];
    if (sameValue(before, after)) continue;
    if (spec.reloadable) {
      merged[spec.key] = after;
      changed.push(`${spec.name} ${showValue(before)} -> ${showValue(after)}`);
    } else {
      needRestart.push(spec.name);
    }
  }
  const parts = [changed.length > 0 ? changed.join(", ") : "no reloadable setting changed"];
  if (needRestart.length > 0) parts.push(`${needRestart.join(", ")} changed: needs a restart`);
  return {
    config: merged as unknown as Config,
    ok: true,
    message: `config ${path}: reloaded: ${parts.join("; ")}`,
  };
}
