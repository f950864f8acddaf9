/**
 * otter under exactly the Deno permissions that `deno task start` and the compiled binary grant
 * (read from deno.json, so the tests follow the tasks): the grants are the minimal set, ffi only for
 * glibc's paths, otter works with them (HTTP and UDP announces on the fast path, one socket and
 * `--workers 2`, config file, watched access list, state file, a Redis cluster, the dashboard
 * with the files it imports as text, uPlot from npm included), without ffi it
 * falls back to the portable UDP path with one line saying why, and a missing permission is one
 * clear line, not a stack trace. `--https` reads its certificate files under the same grants.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/config/config.ts";
import { fastUdpSupport } from "../src/servers/udp/udpFastSocket.ts";
import { LIBC_PATHS } from "../src/os/libc.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { makeCa, makeLeaf } from "./support/testCertificates.ts";
import {
  assertAnnounces,
  assertHttpsServes,
  httpAnnounce,
  launchOtter,
  permissionFlags,
  randomHash,
  REPO_ROOT,
  runToEnd,
  taskWords,
} from "./support/otterCommand.ts";

const DENO = Deno.execPath();
const LISTEN = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
/** Environment variables node-redis reads (a `--cluster` needs them, and nothing else does). */
const REDIS_ENV = "--allow-env=REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS";
/** ffi for glibc only: exactly the paths libc.ts tries, in its order. */
const FFI = `--allow-ffi=${LIBC_PATHS.join(",")}`;

/** What the host's fast path can do in this (--allow-all) process. */
const support = fastUdpSupport();
/** Whether the fast path works under the scoped grant too: glibc is at one of its paths. */
const scopedFast = support.ok && LIBC_PATHS.some((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});
const haveRedis = await haveRedisServer();
const UNIT = `${REPO_ROOT}deploy/otter.service`;
const haveSystemdAnalyze = await runToEnd("systemd-analyze", ["--version"]).then(
  (r) => r.code === 0,
  () => false,
);

/** `deno run <the start task's flags> main.ts`, without the words `drop` rejects. */
function startArgs(drop: (word: string) => boolean = () => false): string[] {
  const words = taskWords("start");
  assert.equal(words[0], "deno");
  assert.equal(words[1], "run");
  assert.equal(words.at(-1), "main.ts");
  return words.slice(1).filter((word) => !drop(word));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("deno.json: start and compile grant the same minimal permissions", async () => {
  const start = permissionFlags("start");
  const compile = permissionFlags("compile");
  assert.deepEqual([...compile].sort(), [...start].sort(), "compile and start differ");
  const compileWords = taskWords("compile");
  assert.deepEqual(compileWords.slice(0, 2), ["deno", "compile"]);
  assert.deepEqual(compileWords.slice(-3), ["--output", "dist/otter", "main.ts"]);

  // Does anything otter imports pull in node-redis? Then (and only then) it may read its two
  // environment variables; nothing else in otter touches the environment.
  const info = await runToEnd(DENO, ["info", "--json", "main.ts"], 30_000);
  assert.equal(info.code, 0, info.stderr);
  const graph = JSON.parse(info.stdout) as { modules: { specifier: string }[] };
  const usesRedis = graph.modules.some((m) => m.specifier.includes("@redis/client"));

  const required = ["--allow-net", "--allow-read", "--allow-write"];
  for (const flag of required) assert.ok(start.includes(flag), `start lacks ${flag}`);
  assert.deepEqual(start.filter((flag) => flag.startsWith("--allow-ffi")), [FFI]);
  for (const path of LIBC_PATHS) assert.match(path, /^\/[^,]+\/libc\.so\.6$/);
  if (usesRedis) assert.ok(start.includes(REDIS_ENV), `the Redis client needs ${REDIS_ENV}`);
  for (const flag of start) {
    const allowed = required.includes(flag) || flag === FFI || (usesRedis && flag === REDIS_ENV);
    assert.ok(allowed, `start grants ${flag}, which otter does not need`);
  }
  assert.equal(new Set(start).size, start.length, `a flag twice: ${start}`);
});

Deno.test("deno.json: start and compile cap V8's young generation alike", () => {
  // Under HTTP load (about 2 KB of garbage per request, most of it in Deno's read and write) V8
  // grows its semi-spaces to 16 MB each and RSS by ~60 MB; 2 MB keeps it flat at the same rate.
  const v8 = (task: string) => taskWords(task).filter((word) => word.startsWith("--v8-flags"));
  assert.deepEqual(v8("start"), ["--v8-flags=--max-semi-space-size=2"]);
  assert.deepEqual(v8("compile"), v8("start"));
});

Deno.test("the start task's exact permissions: announces, config, access list, state file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-perm-" });
  try {
    const listed = [randomHash(), randomHash()];
    const list = `${dir}/whitelist`;
    const config = `${dir}/otter.toml`;
    const state = `${dir}/state`;
    await Deno.writeTextFile(list, listed.map(hex).join("\n") + "\n");
    await Deno.writeTextFile(config, "interval = 900\n");
    const args = [
      ...startArgs(),
      ...LISTEN,
      "--config",
      config,
      "--whitelist",
      list,
      "--state",
      state,
    ];

    {
      await using otter = await launchOtter(DENO, args);
      const expectedIo = scopedFast ? "fast" : "portable";
      assert.equal(otter.udp[0].io, expectedIo, otter.log());
      const fallback = otter.lines.filter((line) => /fast path/i.test(line));
      assert.equal(fallback.length, scopedFast ? 0 : 1, otter.log());

      await assertAnnounces(otter, { http: listed[0], udp: listed[1] });
      const refused = await httpAnnounce(otter.http[0], randomHash(), 40003);
      assert.ok(refused["failure reason"], "a hash off the whitelist is refused");
      // The dashboard's files are text imports of the module graph: no --allow-read of their own.
      for (const path of ["/dashboard", "/dashboard/uPlot.iife.min.js", "/dashboard/data"]) {
        const response = await fetch(`${otter.http[0]}${path}`);
        assert.equal(response.status, 200, path);
        assert.ok((await response.text()).length > 500, path);
      }

      otter.signal("SIGHUP");
      await otter.waitForLine(/^config .*otter\.toml: reloaded/);
      // Replace the list the way deploy tools do (rename into place): needs the directory watch.
      await Deno.writeTextFile(`${list}.new`, [...listed, randomHash()].map(hex).join("\n"));
      await Deno.rename(`${list}.new`, list);
      await otter.waitForLine(/^access list .*: 3 info hashes in force/);

      const stopped = await otter.stop();
      assert.equal(stopped.code, 0, otter.log());
      assert.ok(
        otter.lines.some((l) => /^state .*: saved 2 torrents, 4 peers/.test(l)),
        otter.log(),
      );
      assert.equal(stopped.stderr, "");
    }
    {
      await using again = await launchOtter(DENO, args);
      assert.ok(again.lines.some((l) => /^state .*: restored 2 torrents, 4 peers/.test(l)));
      assert.equal((await again.stop()).code, 0, again.log());
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the start task's exact permissions: --https reads its certificate, and again on SIGHUP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-perm-tls-" });
  try {
    const ca = await makeCa(dir, "perm");
    const leaf = await makeLeaf(dir, ca, "perm");
    const tls = ["--https", "127.0.0.1:0", "--tls-cert", leaf.certPath, "--tls-key", leaf.keyPath];
    await using otter = await launchOtter(DENO, [...startArgs(), ...LISTEN, ...tls]);
    await assertHttpsServes(otter, ca.pem);
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, otter.log());
    assert.equal(stopped.stderr, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "the start task's exact permissions: --cluster reads its secret and joins Redis" +
    (haveRedis ? "" : " (skipped: no redis-server binary on PATH)"),
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const secret = await Deno.makeTempFile({ prefix: "otter-secret-" });
    try {
      await Deno.writeTextFile(secret, "a cluster secret of sixteen bytes or more\n");
      await Deno.chmod(secret, 0o600);
      await using otter = await launchOtter(DENO, [
        ...startArgs(),
        ...LISTEN,
        "--cluster",
        redis.url,
        "--cluster-secret-file",
        secret,
      ]);
      assert.ok(otter.lines.some((line) => /^cluster: connected to /.test(line)), otter.log());
      await assertAnnounces(otter);
      const stopped = await otter.stop();
      assert.equal(stopped.code, 0, otter.log());
      assert.equal(stopped.stderr, "");
    } finally {
      await Deno.remove(secret);
      await redis.stop();
    }
  },
});

Deno.test({
  name: "the start task's exact permissions: --workers 2 answers UDP through I/O Workers" +
    (scopedFast ? "" : " (skipped: no UDP fast path under the scoped grant here)"),
  ignore: !scopedFast,
  async fn() {
    await using otter = await launchOtter(DENO, [...startArgs(), ...LISTEN, "--workers", "2"]);
    assert.deepEqual(otter.udp.map((l) => l.io), ["fast"], otter.log());
    assert.ok(otter.lines.some((line) => /\(io: fast, workers: 2\)$/.test(line)), otter.log());
    // The reuseport steering program went in (its setsockopt takes an address in libc's terms).
    assert.ok(!otter.lines.some((line) => /not evenly/.test(line)), otter.log());
    await assertAnnounces(otter);
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, otter.log());
    assert.equal(stopped.stderr, "");
  },
});

for (const workers of ["1", "2"]) {
  Deno.test({
    name:
      `the start task's exact permissions, --workers ${workers}: a UDP port in use is one line` +
      (scopedFast ? "" : " (skipped: no UDP fast path under the scoped grant here)"),
    ignore: !scopedFast,
    async fn() {
      // The fast path's bind fails, and errno and its text are read through libc alone.
      const taken = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      try {
        const port = (taken.addr as Deno.NetAddr).port;
        const r = await runToEnd(DENO, [
          ...startArgs(),
          "--http",
          "127.0.0.1:0",
          "--udp",
          `127.0.0.1:${port}`,
          "--udp-io",
          "fast",
          "--workers",
          workers,
        ]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`^otter: cannot listen on UDP 127\\.0\\.0\\.1:${port}: `),
        );
        assert.match(r.stderr, /address already in use/i);
      } finally {
        taken.close();
      }
    },
  });
}

Deno.test("without --allow-ffi: the portable UDP and TCP paths, and one line each says why", async () => {
  const args = [
    ...startArgs((word) => word.startsWith("--allow-ffi")),
    ...LISTEN,
    "--udp",
    "127.0.0.1:0",
  ];
  await using otter = await launchOtter(DENO, args);
  assert.deepEqual(otter.udp.map((l) => l.io), ["portable", "portable"], otter.log());
  const why = otter.lines.filter((line) => /fast path|ffi/i.test(line));
  assert.equal(why.length, 2, otter.log());
  assert.match(why[0], /^UDP fast path unavailable \(.+\); using the portable path$/);
  assert.match(why[1], /^TCP fast path unavailable \(.+\); --http uses the portable path$/);
  if (support.ok) { for (const line of why) assert.match(line, /ffi permission/); }
  await assertAnnounces(otter);
  const stopped = await otter.stop();
  assert.equal(stopped.code, 0);
  assert.equal(stopped.stderr, "");
});

Deno.test("without --allow-ffi, --workers 2: the portable UDP path, one line about the fast path", async () => {
  const args = [
    ...startArgs((word) => word.startsWith("--allow-ffi")),
    ...LISTEN,
    "--workers",
    "2",
  ];
  await using otter = await launchOtter(DENO, args);
  assert.deepEqual(otter.udp.map((l) => l.io), ["portable"], otter.log());
  const why = otter.lines.filter((line) => /fast path|ffi/i.test(line));
  assert.equal(
    why.filter((line) => /^UDP fast path unavailable/.test(line)).length,
    1,
    otter.log(),
  );
  // The other lines: TCP's, and the workers asked for, which only the fast path has.
  assert.deepEqual(
    why.filter((line) => !/^(UDP|TCP) fast path unavailable/.test(line)),
    ["--workers 2: only the UDP fast path has workers; using one thread"],
  );
  await assertAnnounces(otter);
  const stopped = await otter.stop();
  assert.equal(stopped.code, 0);
  assert.equal(stopped.stderr, "");
});

Deno.test("--udp-io fast without --allow-ffi: one line, exit 1", async () => {
  const args = [...startArgs((w) => w.startsWith("--allow-ffi")), ...LISTEN, "--udp-io", "fast"];
  const r = await runToEnd(DENO, args);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^otter: --udp-io fast is not available here: /);
  if (support.ok) assert.match(r.stderr, /ffi permission not granted/);
});

Deno.test("--tcp-io fast without --allow-ffi: one line, exit 1", async () => {
  const args = [...startArgs((w) => w.startsWith("--allow-ffi")), ...LISTEN, "--tcp-io", "fast"];
  const r = await runToEnd(DENO, args);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^otter: --tcp-io fast is not available here: /);
  if (support.ok) assert.match(r.stderr, /ffi permission not granted/);
});

Deno.test("a missing net or read permission: one clear line, no stack trace", async () => {
  const noNet = await runToEnd(DENO, [...startArgs((w) => w === "--allow-net"), ...LISTEN]);
  assert.equal(noNet.code, 1, noNet.stderr);
  assert.equal(noNet.stderr.trim().split("\n").length, 1, noNet.stderr);
  assert.match(noNet.stderr, /^otter: cannot listen on .*net access/);

  const config = `${REPO_ROOT}deno.json`;
  const noRead = await runToEnd(DENO, [
    ...startArgs((w) => w === "--allow-read"),
    ...LISTEN,
    "--config",
    config,
  ]);
  assert.equal(noRead.code, 2, noRead.stderr);
  assert.equal(noRead.stderr.trim().split("\n").length, 1, noRead.stderr);
  assert.match(noRead.stderr, /^otter: --config .*read access/);
});

/** The [Service] section's settings; a key given twice keeps both values. */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(eq > 0, `not a setting: ${line}`);
    if (section !== "Service") continue;
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

Deno.test("deploy/otter.service: a dedicated user, no capabilities, the hardening options", () => {
  const settings = serviceSettings(Deno.readTextFileSync(UNIT));
  const expected: Record<string, string> = {
    DynamicUser: "yes",
    CapabilityBoundingSet: "",
    AmbientCapabilities: "",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateDevices: "yes",
    ProtectKernelTunables: "yes",
    ProtectKernelModules: "yes",
    ProtectKernelLogs: "yes",
    ProtectControlGroups: "yes",
    RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
    RestrictNamespaces: "yes",
    LockPersonality: "yes",
    MemoryDenyWriteExecute: "no",
    StateDirectory: "otter",
    SystemCallErrorNumber: "EPERM",
  };
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(settings.get(key), [value], key);
  }
  assert.deepEqual(settings.get("SystemCallFilter"), ["@system-service @pkey", "~@privileged"]);
  assert.ok(Number(settings.get("LimitNOFILE")?.[0]) >= 65536, "LimitNOFILE");
  assert.equal(settings.get("User"), undefined, "DynamicUser, not a fixed user");

  // The shipped command line is one otter accepts, and its state file is in StateDirectory.
  const [program, ...args] = settings.get("ExecStart")![0].split(/\s+/);
  assert.equal(program, "/usr/local/bin/otter");
  const parsed = parseCommandLine(args);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  assert.deepEqual(parsed.config.http, [{ hostname: "::", port: 6969 }]);
  assert.deepEqual(parsed.config.udp, [{ hostname: "::", port: 6969 }]);
  assert.match(parsed.config.state, /^\/var\/lib\/otter\/[^/]+$/);
});

Deno.test({
  name: "deploy/otter.service: systemd-analyze finds nothing to complain about" +
    (haveSystemdAnalyze ? "" : " (skipped: no systemd-analyze on PATH)"),
  ignore: !haveSystemdAnalyze,
  async fn() {
    // verify insists that ExecStart's program exists; point it at a stand-in.
    const dir = await Deno.makeTempDir({ prefix: "otter-unit-" });
    try {
      await Deno.writeTextFile(`${dir}/otter`, "#!/bin/sh\n", { mode: 0o755 });
      const unit = `${dir}/otter.service`;
      const text = Deno.readTextFileSync(UNIT).replaceAll("/usr/local/bin/otter", `${dir}/otter`);
      await Deno.writeTextFile(unit, text);
      // verify exits 0 even for unknown keys and bad values; what it says is the verdict.
      const verify = await runToEnd("systemd-analyze", ["verify", unit]);
      const complaints = (verify.stdout + verify.stderr).split("\n").filter((l) => l.includes(dir));
      assert.deepEqual(complaints, [], verify.stderr);
      assert.equal(verify.code, 0, verify.stderr);
      // systemd's exposure score, 0 best, 10 worst (the threshold is in tenths): the shipped unit
      // scores 1.4 on systemd 252; fail if it ever gets past 2.
      const security = await runToEnd("systemd-analyze", [
        "security",
        "--offline=true",
        "--threshold=20",
        unit,
      ]);
      if (!/unrecognized option|unknown option/i.test(security.stderr)) {
        assert.equal(security.code, 0, security.stdout.split("\n").slice(-3).join("\n"));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
