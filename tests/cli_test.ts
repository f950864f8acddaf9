/**
 * The command line as an operator meets it: help (a default only where there is one), version,
 * bad flags and values (exit 2, one line of otter's own naming the flag and what it takes), a
 * port in use (exit 1, one line), and one start-up line per listener.
 */
import assert from "node:assert/strict";
import { runOtter } from "./support/otterProcess.ts";
import { ConfigError, helpText, parseCommandLine } from "../src/config/config.ts";
import { parseListenAddress } from "../src/config/listenAddress.ts";

Deno.test("listen addresses: host:port, [v6]:port, bare port, and bad ones", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:6969"), { hostname: "127.0.0.1", port: 6969 });
  assert.deepEqual(parseListenAddress("[::1]:80"), { hostname: "::1", port: 80 });
  assert.deepEqual(parseListenAddress("6969"), { hostname: "::", port: 6969 });
  assert.deepEqual(parseListenAddress("localhost:80"), { hostname: "localhost", port: 80 });
  assert.deepEqual(parseListenAddress("[fe80::1%eth0]:80"), { hostname: "fe80::1%eth0", port: 80 });
  for (
    const bad of ["::1:80", "[::1]80", "host:", ":80", "1.2.3.4:70000", "1.2.3.4:x", "[1.2.3.4]:5"]
  ) {
    assert.equal(typeof parseListenAddress(bad), "string", bad);
  }
  // An address must be one by the parser every other address goes through (ipAddress.ts).
  for (const bad of ["1.2.3.256:80", "01.2.3.4:80", "1.2.3:80", "[::g]:80", "[1::2::3]:80"]) {
    assert.equal(typeof parseListenAddress(bad), "string", bad);
  }
});

Deno.test("config: defaults and overrides", () => {
  const parsed = parseCommandLine([]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  assert.deepEqual(parsed.config.http, [{ hostname: "::", port: 6969 }]);
  assert.deepEqual(parsed.config.udp, [{ hostname: "::", port: 6969 }]);
  assert.equal(parsed.config.interval, 1800);
  assert.equal(parsed.config.peerTimeout, 2700);
  assert.equal(parsed.config.maxNumwant, 200);
  assert.equal(parsed.config.defaultNumwant, 50);
  const two = parseCommandLine(["--http", "127.0.0.1:1", "--http", "[::1]:2", "--interval", "60"]);
  assert.equal(two.kind, "run");
  if (two.kind !== "run") return;
  assert.deepEqual(two.config.http.map((a) => a.port), [1, 2]);
  assert.equal(two.config.interval, 60);
});

/** The ConfigError message parseCommandLine throws for `args`. */
function cliError(args: string[]): string {
  try {
    parseCommandLine(args);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error(`accepted: ${args.join(" ")}`);
}

Deno.test("command line: every bad value gets one line naming the flag and what it takes", () => {
  const seconds = "--interval takes a whole number of seconds from 10 to 86400";
  const cases: [string[], string][] = [
    [["--interval", "-5"], `${seconds}, got '-5'`],
    [["--interval=-5"], `${seconds}, got '-5'`],
    [["--interval", "abc"], `${seconds}, got 'abc'`],
    [["--interval", "5"], `${seconds}, got '5'`],
    [["--interval", "1.5"], `${seconds}, got '1.5'`],
    [["--interval", "1e3"], `${seconds}, got '1e3'`],
    [["--interval="], `${seconds}, got ''`],
    [["--interval"], "--interval needs a value: a whole number of seconds from 10 to 86400"],
    [
      ["--interval", "--udp", "127.0.0.1:1"],
      "--interval needs a value: a whole number of seconds from 10 to 86400",
    ],
    [
      ["--peer-timeout", "-1"],
      "--peer-timeout takes a whole number of seconds from 1 to 16000, got '-1'",
    ],
    [
      ["--max-peers", "99999999999999999999"],
      "--max-peers takes a whole number from 1 to 500000000, got '99999999999999999999'",
    ],
    [["--numwant", "-3"], "--numwant takes a whole number from 0 to 5000, got '-3'"],
    [["--deniability", "2"], "--deniability takes a number from 0 to 1, got '2'"],
    [["--deniability", "-0.5"], "--deniability takes a number from 0 to 1, got '-0.5'"],
    [["--udp-io", "turbo"], "--udp-io takes one of auto, fast, portable, got 'turbo'"],
    [["--when-full", "-1"], "--when-full takes one of refuse, evict, got '-1'"],
    [
      ["--rate-limit", "5/m"],
      "--rate-limit takes a rate of requests per second like 50/s (0 = off), got '5/m'",
    ],
    [
      ["--http", "nonsense"],
      "--http takes an address as HOST:PORT, [IPv6]:PORT or PORT, got 'nonsense'",
    ],
    [
      ["--udp", "127.0.0.1:1", "--udp", "[::1]80"],
      "--udp takes an address as HOST:PORT, [IPv6]:PORT or PORT, got '[::1]80'",
    ],
    [["--http"], "--http needs a value: an address as HOST:PORT, [IPv6]:PORT or PORT"],
    [
      ["--stats-from", "127.0.0.0/8", "--stats-from", "1.2.3.4/99"],
      "--stats-from takes a network as ADDRESS/BITS or ADDRESS, like 10.0.0.0/8 or ::1, " +
      "got '1.2.3.4/99'",
    ],
    [["--state"], "--state needs a value: FILE"],
    [["--no-full-scrape=yes"], "--no-full-scrape takes no value, got 'yes'"],
    [["--help=1"], "--help takes no value, got '1'"],
    [["--no-such-flag"], "unknown flag '--no-such-flag'"],
    [["--intervall=60"], "unknown flag '--intervall'"],
    [["-i", "60"], "unknown flag '-i'"],
    [["stray"], "unexpected argument 'stray': every setting is a --flag"],
    [["--interval", "60", "60"], "unexpected argument '60': every setting is a --flag"],
    [
      ["--node-id", "a b"],
      "--node-id takes 1 to 64 printable ASCII characters without spaces, got 'a b'",
    ],
    [
      ["--cluster-name", "x/y"],
      "--cluster-name takes 1 to 64 letters, digits, '-', '_' or '.', got 'x/y'",
    ],
    // A URL is never repeated: it may hold a password.
    [
      ["--cluster", "redis://user:secret@host"],
      "--cluster: the URL needs a port, e.g. redis://host:6379",
    ],
  ];
  for (const [args, message] of cases) assert.equal(cliError(args), message, args.join(" "));
});

Deno.test("command line: good values, including ones that start with '-'", () => {
  const parsed = parseCommandLine([
    "--interval=60",
    "--interval",
    "90",
    "--stats-from",
    "10.0.0.0/8",
    "--stats-from=::1",
    "--no-full-scrape",
    "--state",
    "-state.bin",
    "--node-id",
    "-a",
  ]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  assert.equal(parsed.config.interval, 90, "the last value wins");
  assert.deepEqual(parsed.config.statsFrom, ["10.0.0.0/8", "::1"]);
  assert.equal(parsed.config.noFullScrape, true);
  assert.equal(parsed.config.state, "-state.bin");
  assert.equal(parsed.config.nodeId, "-a");
  assert.equal(parseCommandLine(["--interval", "60", "--help"]).kind, "help");
  assert.equal(parseCommandLine(["--version"]).kind, "version");
  assert.equal(parseCommandLine(["--print-config"]).kind, "print-config");
});

Deno.test("--help: a default only where there is one", () => {
  const lines = helpText("0.0.0").split("\n");
  const line = (flag: string) => lines.find((l) => l.startsWith(`  --${flag} `))!;
  assert.ok(!lines.some((l) => /\(default\s*\)|\(default:/.test(l)), "an empty default shown");
  for (const l of lines) assert.ok(l.split("(default").length <= 2, `two defaults: ${l}`);
  assert.match(line("node-id"), /this instance's id in the cluster \(default random\)$/);
  assert.match(line("interval"), /\(default 1800\)$/);
  assert.match(line("stats-from"), /\(default 127\.0\.0\.0\/8 ::1\/128\)$/);
  for (const flag of ["no-full-scrape", "state", "whitelist", "trust-proxy", "cluster", "config"]) {
    assert.doesNotMatch(line(flag), /\(default/, flag);
  }
});

Deno.test("otter --help and --version exit 0", async () => {
  const help = await runOtter(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--http HOST:PORT/);
  assert.match(help.stdout, /--peer-timeout/);
  const version = await runOtter(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^otter \d+\.\d+\.\d+\n$/);
});

Deno.test("a bad flag or value: one line on stderr, exit 2", async () => {
  for (
    const args of [
      ["--no-such-flag"],
      ["--interval", "abc"],
      ["--interval", "5"],
      ["--http", "nonsense"],
      ["--udp-io", "turbo"],
      ["stray-positional"],
      ["--interval", "-5"],
      ["--deniability", "-1"],
      ["--interval"],
    ]
  ) {
    const r = await runOtter(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^otter: /);
    assert.equal(r.stdout, "", "nothing on stdout");
    assert.equal(
      r.stderr,
      `otter: ${cliError(args)} (see --help)\n`,
      "main.ts prints the parser's line",
    );
  }
  const negative = await runOtter(["--interval", "-5"]);
  assert.equal(
    negative.stderr,
    "otter: --interval takes a whole number of seconds from 10 to 86400, got '-5' (see --help)\n",
  );
});

Deno.test("a port in use: one clear line, exit 1", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    const r = await runOtter(["--http", `127.0.0.1:${port}`, "--udp", "127.0.0.1:0"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /address already in use/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  } finally {
    listener.close();
  }
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const udpPort = (udp.addr as Deno.NetAddr).port;
  try {
    for (const io of ["fast", "portable"]) {
      const r = await runOtter([
        "--http",
        "127.0.0.1:0",
        "--udp",
        `127.0.0.1:${udpPort}`,
        "--udp-io",
        io,
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /UDP 127\.0\.0\.1:\d+: address already in use/);
    }
  } finally {
    udp.close();
  }
});

Deno.test("deno task start -- FLAGS reaches otter's flags (the README's form)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "task",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      "start",
      "--",
      "--version",
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(stdout, /^otter \d+\.\d+\.\d+$/m);
});
