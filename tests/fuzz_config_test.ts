/**
 * Fuzzes the TOML config file: mutations of `--print-config` output and of a file setting every
 * key (values of every TOML type and of none, broken strings and escapes, odd keys, tables,
 * duplicate and deleted lines, deep nesting, binary junk). In process, loading and SIGHUP
 * reloading must either work or fail with a one-line ConfigError, never another exception, and a
 * config that loads must build a Tracker. A sample runs through real otter processes: a bad file
 * exits 2 with one line on stderr and no stack trace, and a running otter fed broken files on
 * SIGHUP logs one line each time and keeps serving. Seeded: OTTER_FUZZ_SEED replays a run.
 */
import assert from "node:assert/strict";
import { ConfigError, parseCommandLine } from "../src/config/config.ts";
import type { Config } from "../src/config/options.ts";
import { defaultConfigToml, loadConfig, reloadConfig } from "../src/config/configFile.ts";
import { Clock } from "../src/config/clock.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { Tracker } from "../src/servers/tracker.ts";
import { fuzzLoop, fuzzSeed, mutateText, oddChar, Rng, shown } from "./support/fuzz.ts";
import { runOtter, startOtter } from "./support/otterProcess.ts";
import { bdecode } from "./support/bencode.ts";

const SEED = fuzzSeed(0x0dd5eed);
const PATH = "fuzz.toml";

/** Sets every key a file may set, to valid values (whitelist and blacklist exclude each other). */
const FULL_CONFIG = `# every key
http = ["127.0.0.1:6969", "[::1]:6969"]
udp = "0.0.0.0:6969"
interval = 900
peer-timeout = 1800
max-numwant = 100
numwant = 30
udp-io = "portable"
full-scrape-every = 120
no-full-scrape = false
stats-from = ["10.0.0.0/8", "::1"]
whitelist = "list.txt"
trust-proxy = ["192.168.0.0/16", "::ffff:10.0.0.0/104"]
deniability = 0.125
deniability-max = 3
state = "/var/lib/otter/state"
state-every = 60
max-torrents = 1000
max-peers = 100000
when-full = "evict"
max-connections = 500
header-timeout = 5
idle-timeout = 20
rate-limit = "100/s"
cluster-name = "c1"
node-id = "n1"
cluster-secret-file = "/etc/otter/cluster.secret"
cluster-insecure = false
`;

/** TOML values of every type, valid and broken, for any key. */
const VALUES = [
  "0",
  "1",
  "-1",
  "+5",
  "07",
  "1_000",
  "1__0",
  "0x10",
  "0o17",
  "0b101",
  "9223372036854775807",
  "9223372036854775808",
  "-9223372036854775809",
  "99999999999999999999999999",
  "1.5",
  "0.1",
  "-0.0",
  "1e3",
  "1e309",
  "inf",
  "-inf",
  "nan",
  "1.",
  ".5",
  "true",
  "false",
  "True",
  '""',
  '"x"',
  '"50/s"',
  '"0/s"',
  '"4294967296/s"',
  '"127.0.0.1:0"',
  '"[::1]:0"',
  '"[::1:0"',
  '"::1"',
  '"999.0.0.1/8"',
  '"10.0.0.0/33"',
  '"a\\nb"',
  '"a\\rb"',
  '"\\u0000"',
  '"\\uD800"',
  '"\\U0001F600"',
  '"\\x41"',
  '"\\q"',
  '"unterminated',
  "'literal'",
  "'''multi\nline'''",
  '"""multi\nline"""',
  '"""unterminated',
  "1979-05-27T07:32:00Z",
  "1979-05-27",
  "07:32:00",
  "2024-13-45T99:99:99Z",
  "[]",
  "[1, 2]",
  '["a", 1]',
  '[["a"]]',
  '["a",]',
  "[,]",
  "[",
  "{}",
  "{ a = 1 }",
  '{ port = 1, hostname = "x" }',
  "{ a = 1, a = 2 }",
  "",
  "=",
  "\u00e9",
];

const KEYS = [
  "http",
  "udp",
  "interval",
  "peer-timeout",
  "max-numwant",
  "numwant",
  "udp-io",
  "stats-from",
  "trust-proxy",
  "deniability",
  "rate-limit",
  "whitelist",
  "blacklist",
  "config",
  "print-config",
  "help",
  "version",
  "unknown-key",
  '"interval"',
  "'interval'",
  '"inter\\nval"',
  '"a\\u0000b"',
  "interval.x",
  "http.0",
  '""',
  "a b",
  "__proto__",
  "constructor",
  "toString",
  "\u00e9",
];

const PIECES = [
  "=",
  " = ",
  "\n",
  "\r\n",
  "\r",
  "#",
  '"',
  "'",
  '"""',
  "'''",
  "[",
  "]",
  "[[",
  "]]",
  "{",
  "}",
  ",",
  ".",
  "\\",
  "\\u",
  "\\U0010FFFF",
  "\t",
  "\u0000",
  "\u007f",
  "\uFEFF",
  "\ud800",
  "0",
  "-",
  "_",
  ":",
  "e",
  "[interval]",
  "[[http]]",
  "[a.b.c]",
  "interval = 60",
  "http = []",
  "whitelist = 'a'\nblacklist = 'b'",
];

function lines(text: string): string[] {
  return text.split("\n");
}

/** One random mutation of a TOML text. */
function mutateToml(rng: Rng, text: string): string {
  const ls = lines(text);
  const i = rng.int(ls.length);
  const line = ls[i];
  const eq = line.indexOf("=");
  switch (rng.int(12)) {
    case 0:
    case 1:
    case 2: // a value of another type, or broken
      if (eq > 0 && !line.startsWith("#")) ls[i] = line.slice(0, eq + 1) + " " + rng.pick(VALUES);
      else ls.splice(i, 0, `${rng.pick(KEYS)} = ${rng.pick(VALUES)}`);
      return ls.join("\n");
    case 3: // another key
      if (eq > 0 && !line.startsWith("#")) ls[i] = rng.pick(KEYS) + " " + line.slice(eq);
      else ls.splice(i, 0, `${rng.pick(KEYS)} = ${rng.pick(VALUES)}`);
      return ls.join("\n");
    case 4:
      ls.splice(i, 1);
      return ls.join("\n");
    case 5:
      ls.splice(i, 0, line); // duplicate key
      return ls.join("\n");
    case 6: { // a table header somewhere
      const header = rng.pick(["[interval]", "[[http]]", "[x]", "[a.b]", "[ ]", "[[]]", "[http"]);
      ls.splice(i, 0, header);
      return ls.join("\n");
    }
    case 7: // a long value
      return text + `\nnode-id = "${"n".repeat(rng.pick([1000, 100000]))}"`;
    case 8:
      return text.slice(0, rng.int(text.length + 1)) + oddChar(rng);
    default:
      return mutateText(rng, text, PIECES);
  }
}

/** Texts that stress the parser's depth and size rather than its grammar. */
function stressTexts(): string[] {
  const out: string[] = [];
  for (const n of [100, 1000, 20000]) {
    out.push(`http = ${"[".repeat(n)}${"]".repeat(n)}`);
    out.push(`http = ${"{a=".repeat(n)}1${"}".repeat(n)}`);
    out.push(`${Array.from({ length: n }, (_, i) => `k${i}`).join(".")} = 1`);
    out.push(`http = [${Array.from({ length: n }, () => '"127.0.0.1:0"').join(",")}]`);
    out.push(`${"[".repeat(n)}`);
  }
  out.push("\uFEFFinterval = 60");
  out.push("interval = 60\u0000");
  out.push("\u0000".repeat(1000));
  return out;
}

interface Outcome {
  kind: "ok" | "config error";
  message: string;
  config?: Config;
}

/** A ConfigError message holding a line break, which main.ts would print as several lines. */
function multiLine(message: string): boolean {
  return /[\n\r\u2028\u2029]/.test(message);
}

function loadError(text: string): string | null {
  try {
    loadConfig(["--config", PATH], () => text);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const baseFlags = (() => {
  const parsed = parseCommandLine(["--config", PATH, "--http", "127.0.0.1:0"]);
  if (parsed.kind !== "run") throw new Error("flags");
  return parsed;
})();

/** Loads and reloads `text`; throws (the test fails) on anything but success or ConfigError. */
function tryConfig(text: string, store: SwarmTable, clock: Clock): Outcome {
  let outcome: Outcome;
  try {
    const parsed = loadConfig(["--config", PATH, "--http", "127.0.0.1:0"], () => text);
    assert.equal(parsed.kind, "run");
    outcome = {
      kind: "ok",
      message: "",
      config: parsed.kind === "run" ? parsed.config : undefined,
    };
  } catch (e) {
    if (!(e instanceof ConfigError)) {
      throw new Error(`loadConfig threw ${(e as Error)?.name}: ${(e as Error)?.message}`, {
        cause: e,
      });
    }
    outcome = { kind: "config error", message: e.message };
  }
  if (outcome.kind === "config error") {
    const m = outcome.message;
    if (m.length === 0) throw new Error("ConfigError without a message");
    if (multiLine(m)) throw new Error(`ConfigError is not one line: ${shown(m)}`);
  }
  let reload;
  try {
    reload = reloadConfig(baseFlags.config, baseFlags.flags, () => text);
  } catch (e) {
    throw new Error(`reloadConfig threw ${(e as Error)?.name}: ${(e as Error)?.message}`, {
      cause: e,
    });
  }
  if (multiLine(reload.message)) {
    throw new Error(`reload log line is not one line: ${shown(reload.message)}`);
  }
  assert.equal(reload.ok, outcome.kind === "ok", `reload ok ${reload.ok}, load ${outcome.kind}`);
  if (outcome.config !== undefined) {
    // What main.ts and SIGHUP then do with a config that loaded.
    const tracker = new Tracker(store, clock, outcome.config);
    tracker.applySettings(reload.config);
  }
  return outcome;
}

function describeFailure(seed: number, i: number, text: string, e: unknown): Error {
  return new Error(
    `config fuzz input ${i} (seed ${seed}): ${(e as Error).message}\n  text: ${shown(text, 800)}`,
    { cause: e },
  );
}

Deno.test("config: an error naming a value with a line break is still one line", () => {
  // Found by the fuzz below (fixed since): values and quoted keys holding "\n" or "\r" were
  // quoted into ConfigError messages as given, so main.ts printed several lines.
  for (
    const text of ['udp-io = "a\\nb"\n', '"inter\\nval" = 1\n', 'trust-proxy = "a\\rb"\n']
  ) {
    const message = loadError(text);
    assert.ok(message !== null, text);
    assert.ok(!multiLine(message), `${shown(text)} gives ${shown(message)}`);
  }
});

Deno.test(`fuzz config files in process (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const store = new SwarmTable({ peerTimeout: 60 });
  const clock = new Clock();
  const bases = [defaultConfigToml(), FULL_CONFIG];
  // The bases themselves must load.
  for (const base of bases) assert.equal(tryConfig(base, store, clock).kind, "ok");
  const kinds = new Map<string, number>();
  let i = 0;
  const stress = stressTexts();
  for (; i < stress.length; i++) {
    try {
      tryConfig(stress[i], store, clock);
    } catch (e) {
      throw describeFailure(SEED, i, stress[i], e);
    }
  }
  const ran = fuzzLoop(2500, 200_000, () => {
    let text = rng.pick(bases);
    for (let k = rng.small(4); k > 0; k--) text = mutateToml(rng, text);
    let outcome: Outcome;
    try {
      outcome = tryConfig(text, store, clock);
    } catch (e) {
      throw describeFailure(SEED, i, text, e);
    }
    i++;
    kinds.set(outcome.kind, (kinds.get(outcome.kind) ?? 0) + 1);
  }, 200); // at least 200 however busy the machine (it then takes longer), more on a fast one
  console.log(`  ${ran + stress.length} config texts: ${[...kinds].map(([k, n]) => `${k} ${n}`)}`);
  assert.ok((kinds.get("ok") ?? 0) > ran / 20, "too few mutations load: the fuzz is too blunt");
});

Deno.test(`fuzz config files: bad files exit 2 with one line (seed ${SEED})`, async () => {
  const rng = new Rng(SEED ^ 0x5a5a);
  const store = new SwarmTable({ peerTimeout: 60 });
  const clock = new Clock();
  // Pick refused mutations of several kinds, and the stress texts refused in process.
  const samples: string[] = stressTexts().filter((t) =>
    tryConfig(t, store, clock).kind === "config error"
  ).slice(-4);
  for (let attempt = 0; samples.length < 12 && attempt < 10_000; attempt++) {
    let text = rng.pick([defaultConfigToml(), FULL_CONFIG]);
    for (let k = rng.small(3); k > 0; k--) text = mutateToml(rng, text);
    if (tryConfig(text, store, clock).kind === "config error") samples.push(text);
  }
  const dir = await Deno.makeTempDir({ prefix: "otter-fuzz-config-" });
  try {
    const results = [];
    for (let start = 0; start < samples.length; start += 4) {
      results.push(
        ...await Promise.all(
          samples.slice(start, start + 4).map(async (text, k) => {
            const path = `${dir}/c${start + k}.toml`;
            await Deno.writeTextFile(path, text);
            return {
              text,
              ...await runOtter([
                "--config",
                path,
                "--http",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
              ]),
            };
          }),
        ),
      );
    }
    assert.equal(results.length, samples.length);
    assert.ok(results.length >= 10, `only ${results.length} refused samples`);
    console.log(`  ${results.length} otter processes exited 2 with one line`);
    for (const r of results) {
      const why = `exit ${r.code}, stderr ${shown(r.stderr)}, stdout ${shown(r.stdout)}\n` +
        `  text: ${shown(r.text, 400)}`;
      assert.equal(r.code, 2, why);
      assert.match(r.stderr, /^otter: [^\n]*\n$/, why);
      assert.equal(r.stdout, "", why);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(`fuzz config files: SIGHUP with broken files keeps serving (seed ${SEED})`, async () => {
  const rng = new Rng(SEED ^ 0x3c3c);
  const dir = await Deno.makeTempDir({ prefix: "otter-fuzz-reload-" });
  const path = `${dir}/otter.toml`;
  await Deno.writeTextFile(path, "interval = 600\n");
  try {
    await using otter = await startOtter([
      "--config",
      path,
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
    ]);
    const store = new SwarmTable({ peerTimeout: 60 });
    const clock = new Clock();
    for (let round = 0; round < 6; round++) {
      let text = round === 5 ? "interval = 700\n" : FULL_CONFIG.replace("interval = 900", "");
      if (round < 5) { for (let k = rng.small(3); k > 0; k--) text = mutateToml(rng, text); }
      const expected = tryConfig(text, store, clock).kind;
      await Deno.writeTextFile(path, text);
      const seen = otter.stdout.length;
      Deno.kill(otter.pid, "SIGHUP");
      const deadline = Date.now() + 5000;
      let line: string | undefined;
      while (line === undefined && Date.now() < deadline) {
        line = otter.stdout.slice(seen).find((l) => l.startsWith(`config ${path}: reload`));
        if (line === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      const why = `round ${round}, text ${shown(text, 400)}\n  stdout: ${
        otter.stdout.slice(seen).join("\n")
      }\n  stderr: ${otter.stderr}`;
      assert.ok(line !== undefined, `no reload line: ${why}`);
      assert.equal(line.includes("reload failed"), expected === "config error", why);
      // Still serving: an announce gets a bencoded reply.
      const hash = "%AB".repeat(19) + "%" + (16 + round).toString(16);
      const response = await fetch(
        `${otter.http[0]}/announce?info_hash=${hash}&peer_id=${"-FZ0001-".padEnd(20, "x")}` +
          `&port=${6881 + round}&left=1`,
        { signal: AbortSignal.timeout(5000) },
      );
      const reply = bdecode(new Uint8Array(await response.arrayBuffer())) as Record<
        string,
        unknown
      >;
      assert.equal(response.status, 200, why);
      assert.ok("interval" in reply, `announce failed after reload: ${why}`);
    }
    const last = otter.stdout.filter((l) => l.startsWith(`config ${path}: reload`)).at(-1)!;
    assert.match(last, /interval \d+ -> 700/);
    assert.doesNotMatch(otter.stderr, /error|uncaught|panic/i, otter.stderr);
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
