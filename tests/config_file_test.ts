/**
 * The TOML config file: parsing and error lines (unit), then real otter processes: a file sets
 * listeners and interval, flags override it, unknown keys and bad values exit 2 naming key and
 * line, --print-config loads back, and SIGHUP applies an edited interval (and keeps it when the
 * edit is broken).
 */
import assert from "node:assert/strict";
import { parseCommandLine, resolveConfig } from "../src/config/config.ts";
import {
  defaultConfigToml,
  lineOfKey,
  loadConfig,
  parseConfigText,
  reloadConfig,
} from "../src/config/configFile.ts";
import { runOtter, startOtter } from "./support/otterProcess.ts";
import { bdecode, type Decoded } from "./support/bencode.ts";

function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

/** One HTTP announce; returns the decoded reply. */
async function announce(base: string, port = 6881): Promise<Record<string, Decoded>> {
  const hash = "%AA".repeat(20);
  const url = `${base}/announce?info_hash=${hash}&peer_id=${"-OT0001-".padEnd(20, "x")}` +
    `&port=${port}&uploaded=0&downloaded=0&left=10&compact=1`;
  const response = await fetch(url);
  return bdecode(new Uint8Array(await response.arrayBuffer())) as Record<string, Decoded>;
}

async function tempToml(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "otter-config-", suffix: ".toml" });
  await Deno.writeTextFile(path, text);
  return path;
}

const LOOPBACK = 'http = ["127.0.0.1:0"]\nudp = ["127.0.0.1:0"]\n';

Deno.test("config file: keys map onto flags, flags override the file", () => {
  const file = [
    "# comment",
    "peer-timeout = 600",
    'http = ["127.0.0.1:7000", "[::1]:7001"]',
    "no-full-scrape = true",
    "deniability = 0.25",
    'rate-limit = "50/s"',
    "interval = 120",
  ].join("\n");
  const parsed = loadConfig(["--config", "x.toml", "--interval", "300"], () => file);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  const c = parsed.config;
  assert.equal(c.peerTimeout, 600);
  assert.deepEqual(c.http, [{ hostname: "127.0.0.1", port: 7000 }, {
    hostname: "::1",
    port: 7001,
  }]);
  assert.equal(c.noFullScrape, true);
  assert.equal(c.deniability, 0.25);
  assert.equal(c.rateLimit, 50);
  assert.equal(c.interval, 300, "the flag wins over the file");
  assert.equal(c.maxNumwant, 200, "unset keys keep their defaults");
});

Deno.test("config file: unknown keys, bad values and syntax errors name the line", () => {
  assert.equal(
    configError(() => parseConfigText("interval = 100\n\npeer-timout = 5\n", "a.toml")),
    "a.toml line 3: peer-timout: unknown key",
  );
  assert.equal(
    configError(() => resolveConfig([parseConfigText("# x\ninterval = 5\n", "a.toml")])),
    "a.toml line 2: interval takes a whole number of seconds from 10 to 86400, got '5'",
  );
  assert.match(
    configError(() => parseConfigText("numwant = 1\ninterval = '100'\n", "a.toml")),
    /^a\.toml line 2: interval: expected a whole number, got a string$/,
  );
  assert.match(
    configError(() => parseConfigText("numwant = 1\nhttp = 6969\n", "a.toml")),
    /^a\.toml line 2: http: expected an array of strings/,
  );
  assert.match(
    configError(() => parseConfigText("numwant = 1\n\ninterval = = 3\n", "a.toml")),
    /^a\.toml line 3: /,
  );
  assert.match(
    configError(() => parseConfigText("\n[interval]\nx = 1\n", "a.toml")),
    /^a\.toml line 2: interval: expected a whole number, got a table$/,
  );
  assert.match(
    configError(() => parseConfigText('config = "other.toml"\n', "a.toml")),
    /^a\.toml line 1: config: only allowed on the command line/,
  );
  assert.match(
    configError(() => resolveConfig([parseConfigText('\nstats-from = ["nope"]', "a.toml")])),
    /^a\.toml line 2: stats-from takes a network as ADDRESS\/BITS or ADDRESS, .*, got 'nope'$/,
  );
  assert.match(
    configError(() => loadConfig(["--config", "/nonexistent/otter.toml"])),
    /--config \/nonexistent\/otter\.toml: file not found/,
  );
  assert.equal(lineOfKey('a = 1\n  "peer-timeout" = 3\n', "peer-timeout"), 2);
  assert.equal(lineOfKey("a = 1\n", "b"), 0);
});

Deno.test("--print-config text loads back as the defaults", () => {
  const text = defaultConfigToml();
  const loaded = loadConfig(["--config", "d.toml"], () => text);
  const defaults = parseCommandLine([]);
  assert.ok(loaded.kind === "run" && defaults.kind === "run");
  assert.deepEqual({ ...loaded.config, config: "" }, defaults.config);
  for (const line of text.split("\n")) assert.ok(line.length <= 100, line);
});

Deno.test("reloadConfig: applies reloadable keys, reports restart-only keys, keeps old on error", () => {
  let file = "interval = 100\npeer-timeout = 600\n";
  const read = () => file;
  const parsed = loadConfig(["--config", "r.toml", "--numwant", "7"], read);
  assert.ok(parsed.kind === "run");
  const start = parsed.config;
  file = "interval = 1000\npeer-timeout = 900\nnumwant = 20\n";
  const next = reloadConfig(start, parsed.flags, read);
  assert.equal(next.ok, true);
  assert.equal(next.config.interval, 1000);
  assert.equal(next.config.peerTimeout, 600, "peer-timeout needs a restart");
  assert.equal(next.config.defaultNumwant, 7, "the flag still overrides the file");
  assert.match(next.message, /interval 100 -> 1000/);
  assert.match(next.message, /peer-timeout changed: needs a restart/);
  assert.equal(next.message.split("\n").length, 1);
  file = "interval = 5\n";
  const broken = reloadConfig(next.config, parsed.flags, read);
  assert.equal(broken.ok, false);
  assert.equal(broken.config, next.config);
  assert.match(broken.message, /reload failed, keeping the old settings: r\.toml line 1: interval/);
});

Deno.test("otter: a config file sets listeners and interval; a flag overrides it", async () => {
  const path = await tempToml(`${LOOPBACK}interval = 100\n`);
  try {
    {
      await using otter = await startOtter(["--config", path], { expect: { http: 1, udp: 1 } });
      assert.equal(otter.udp[0].hostname, "127.0.0.1");
      const reply = await announce(otter.http[0]);
      const interval = reply.interval as number;
      assert.ok(interval >= 90 && interval <= 110, `interval ${interval}`);
    }
    {
      await using otter = await startOtter(["--config", path, "--interval", "500"], {
        expect: { http: 1, udp: 1 },
      });
      const interval = (await announce(otter.http[0])).interval as number;
      assert.ok(interval >= 450 && interval <= 550, `interval ${interval}`);
    }
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("otter: unknown key or bad value in the file: one line naming key and line, exit 2", async () => {
  const cases: [string, RegExp][] = [
    [`${LOOPBACK}\npeer-timout = 600\n`, /line 4: peer-timout: unknown key/],
    [
      `${LOOPBACK}interval = 3\n`,
      /line 3: interval takes a whole number of seconds from 10 to 86400, got '3'/,
    ],
    [
      `${LOOPBACK}udp-io = "turbo"\n`,
      /line 3: udp-io takes one of auto, fast, portable, got 'turbo'/,
    ],
    [`${LOOPBACK}interval = \n`, /line 3: /],
  ];
  for (const [text, pattern] of cases) {
    const path = await tempToml(text);
    try {
      const r = await runOtter(["--config", path]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /^otter: /);
      assert.ok(r.stderr.includes(path), r.stderr);
      assert.match(r.stderr, pattern);
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("otter --print-config: exits 0 and its output runs as a config file", async () => {
  const printed = await runOtter(["--print-config"]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /^# otter configuration/);
  assert.match(printed.stdout, /\npeer-timeout = 2700\n/);
  const path = await tempToml(printed.stdout);
  try {
    const defaults = loadConfig(["--config", path]);
    assert.ok(defaults.kind === "run");
    assert.equal(defaults.config.interval, 1800);
    await using otter = await startOtter([
      "--config",
      path,
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
    ]);
    const interval = (await announce(otter.http[0])).interval as number;
    assert.ok(interval >= 1620 && interval <= 1980, `interval ${interval}`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("otter: SIGHUP applies an edited interval; a broken edit keeps the old one", async () => {
  const path = await tempToml(`${LOOPBACK}interval = 100\n`);
  try {
    await using otter = await startOtter(["--config", path], { expect: { http: 1, udp: 1 } });
    const first = (await announce(otter.http[0])).interval as number;
    assert.ok(first >= 90 && first <= 110, `interval ${first}`);

    const reloadLines = () => otter.stdout.filter((line) => line.includes("config ")).length;
    const hangUp = async (what: string) => {
      const before = reloadLines();
      Deno.kill(otter.pid, "SIGHUP");
      const deadline = Date.now() + 10_000;
      while (reloadLines() === before) {
        if (Date.now() > deadline) throw new Error(`no reload line after ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return otter.stdout.filter((line) => line.includes("config "))[before];
    };

    await Deno.writeTextFile(path, `${LOOPBACK}interval = 1000\npeer-timeout = 900\n`);
    const line = await hangUp("edit");
    assert.match(line, /interval 100 -> 1000/);
    assert.match(line, /peer-timeout changed: needs a restart/);
    for (let i = 0; i < 5; i++) {
      const interval = (await announce(otter.http[0], 7000 + i)).interval as number;
      assert.ok(interval >= 900 && interval <= 1100, `interval ${interval}`);
    }

    await Deno.writeTextFile(path, `${LOOPBACK}interval = 2000\npeer-timeout = = \n`);
    const broken = await hangUp("broken edit");
    assert.match(broken, /reload failed, keeping the old settings: .* line 4/);
    const after = (await announce(otter.http[0])).interval as number;
    assert.ok(after >= 900 && after <= 1100, `interval ${after}`);

    await Deno.writeTextFile(path, `${LOOPBACK}interval = 7\n`);
    assert.match(
      await hangUp("bad value"),
      /reload failed.*interval takes a whole number of seconds from 10 to 86400, got '7'/,
    );
    const still = (await announce(otter.http[0])).interval as number;
    assert.ok(still >= 900 && still <= 1100, `interval ${still}`);

    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
  } finally {
    await Deno.remove(path);
  }
});
