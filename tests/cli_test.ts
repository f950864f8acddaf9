/**
 * The command line as an operator meets it: help (a default only where there is one), version, bad flags (exit 2, one line),
 * a port in use (exit 1, one line), and one start-up line per listener.
 */
import assert from "node:assert/strict";
import { runOtter } from "./support/otterProcess.ts";
import { helpText, parseCommandLine } from "../src/ops/config.ts";
import { parseListenAddress } from "../src/ops/listenAddress.ts";

Deno.test("listen addresses: host:port, [v6]:port, bare port, and bad ones", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:6969"), { hostname: "127.0.0.1", port: 6969 });
  assert.deepEqual(parseListenAddress("[::1]:80"), { hostname: "::1", port: 80 });
  assert.deepEqual(parseListenAddress("6969"), { hostname: "::", port: 6969 });
  for (
    const bad of ["::1:80", "[::1]80", "host:", ":80", "1.2.3.4:70000", "1.2.3.4:x", "[1.2.3.4]:5"]
  ) {
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
    ]
  ) {
    const r = await runOtter(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^otter: /);
  }
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
