/**
 * A Redis that lacks what the cluster sync needs, played by a fake RESP server on loopback
 * (tests/support/fakeRedis.ts): no stream commands (before 5.0, or renamed away), XADD without
 * MINID (before 6.2), XREAD unknown, an ACL refusal. At start each is fatal with one line naming
 * what is missing and the Redis version needed: otter exits 1 at once instead of retrying. Other
 * refusals of the checks (out of memory) still let a node connect, and a Redis found lacking only
 * after start is logged once while the node keeps serving and retrying.
 */
import assert from "node:assert/strict";
import { ClusterSync } from "../src/cluster/redisCluster.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { startTracker } from "../src/servers/startTracker.ts";
import {
  FakeRedis,
  redisLike,
  RESP_EMPTY_ARRAY,
  RESP_NIL,
  respError,
  unknownCommand,
} from "./support/fakeRedis.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, condition: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(10);
  }
}

/** A Redis 7 that answers the checks and every XREAD with nothing (BLOCK ones after 100 ms). */
const streams = {
  XADD: () => respError("ERR The ID specified in XADD must be greater than 0-0"),
  XREAD: async (args: string[]) => {
    if (args.some((a) => a.toUpperCase() === "BLOCK")) await sleep(100);
    return RESP_NIL;
  },
  XREVRANGE: () => RESP_EMPTY_ARRAY,
};

function node(url: string, logs: string[]): ClusterSync {
  return new ClusterSync({
    url,
    name: "old",
    nodeId: "n1",
    peerTimeout: 300,
    secret: null,
    store: new SwarmTable({ peerTimeout: 300 }),
    clock: { now: 1000 },
    log: (line) => logs.push(line),
    blockMs: 500,
    // Long enough that a loaded machine's stall is not taken for a lost Redis (the fakes answer).
    commandTimeoutMs: 5000,
    minBackoffMs: 50,
    maxBackoffMs: 100,
  });
}

/** start() must reject (not retry: within 15 s however loaded the machine), having logged
 * nothing, and then stay stopped. */
async function startFails(fake: FakeRedis): Promise<string> {
  const logs: string[] = [];
  const sync = node(fake.url, logs);
  const started = performance.now();
  let message = "";
  try {
    await Promise.race([
      sync.start(),
      sleep(15_000).then(() => {
        throw new Error("start() neither failed nor finished within 15 s");
      }),
    ]);
    assert.fail("start() resolved");
  } catch (error) {
    message = (error as Error).message;
  } finally {
    await sync.stop();
  }
  assert.ok(performance.now() - started < 15_000);
  assert.deepEqual(logs, []);
  assert.equal(sync.counters.state, "disconnected");
  assert.equal(sync.counters.connects, 0);
  // No retries: the commands received stay as they were.
  const seen = fake.received.length;
  await sleep(300);
  assert.equal(fake.received.length, seen, "it retried after failing");
  assert.doesNotMatch(message, /\n/);
  return message;
}

Deno.test("cluster: a Redis without stream commands fails the start with one line", async () => {
  await using fake = new FakeRedis(
    (args) => {
      const name = args[0].toUpperCase();
      if (name === "PING") return "+PONG\r\n";
      if (name === "TIME") return "*2\r\n$10\r\n1700000000\r\n$1\r\n0\r\n";
      if (name === "TYPE") return "+none\r\n";
      return unknownCommand(args);
    },
  );
  const message = await startFails(fake);
  assert.match(
    message,
    new RegExp(
      `^cluster: cannot use Redis at redis://127\\.0\\.0\\.1:${fake.port}: it has no XADD ` +
        `command \\(Redis said "ERR unknown command 'XADD'.*"\\); ` +
        `the cluster sync needs Redis 6\\.2 or newer$`,
    ),
  );
  // The check changed nothing: no XADD that could have written.
  const xadd = fake.received.find((args) => args[0] === "XADD")!;
  assert.deepEqual(xadd.slice(2, 6), ["MINID", "~", "0", "0-0"]);
});

Deno.test("cluster: XADD without MINID (Redis before 6.2) fails the start", async () => {
  await using fake = new FakeRedis(redisLikeWith({
    XADD: () => respError("ERR Invalid stream ID specified as stream command argument"),
  }));
  const message = await startFails(fake);
  assert.match(message, /: its XADD has no MINID option \(Redis said "ERR Invalid stream ID/);
  assert.match(message, /needs Redis 6\.2 or newer$/);
});

Deno.test("cluster: an unknown XREAD, or an ACL refusal, fails the start", async () => {
  {
    await using fake = new FakeRedis(redisLikeWith({ XREAD: unknownCommand }));
    assert.match(await startFails(fake), /it has no XREAD command .*needs Redis 6\.2 or newer$/);
  }
  {
    await using fake = new FakeRedis(redisLikeWith({
      XADD: () => respError("NOPERM User otter has no permissions to run the 'xadd' command"),
    }));
    assert.match(
      await startFails(fake),
      /its user may not run XADD \(Redis said "NOPERM .*"\); .*needs TIME, TYPE, XADD, XREAD/,
    );
  }
});

Deno.test("cluster: other refusals of the checks (out of memory) still connect", async () => {
  await using fake = new FakeRedis(redisLikeWith({
    XADD: () => respError("OOM command not allowed when used memory > 'maxmemory'."),
  }));
  const logs: string[] = [];
  const sync = node(fake.url, logs);
  try {
    await sync.start();
    assert.equal(sync.counters.state, "connected");
    assert.deepEqual(logs.length, 1);
    assert.match(logs[0], /^cluster: connected to /);
  } finally {
    await sync.stop();
  }
});

Deno.test("cluster: a Redis found lacking after start is logged once; the node keeps retrying", async () => {
  // Nothing listens at first: start() resolves after the first failed attempt, as always.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const logs: string[] = [];
  const sync = node(`redis://127.0.0.1:${port}`, logs);
  try {
    await sync.start();
    assert.equal(logs.length, 1);
    assert.match(logs[0], /^cluster: cannot reach Redis/);
    // Then an old Redis appears on that port.
    await using fake = new FakeRedis(redisLikeWith({ XADD: unknownCommand }), port);
    await waitFor("the old Redis is logged", () => logs.length === 2, 30_000);
    assert.match(
      logs[1],
      /^cluster: cannot use Redis at .*: it has no XADD command .*needs Redis 6\.2 or newer; serving from the local store, retrying$/,
    );
    const attempts = () => fake.names.filter((name) => name === "XADD").length;
    const before = attempts();
    // Two more attempts: the first of them was handled (and logged nothing) before the second.
    await waitFor("more attempts", () => attempts() >= before + 2, 30_000);
    assert.equal(logs.length, 2, logs.join("\n"));
    assert.equal(sync.counters.state, "disconnected");
  } finally {
    await sync.stop();
  }
});

Deno.test("otter --cluster against a Redis without streams: exit 1 with one line, no retries", async () => {
  await using fake = new FakeRedis(redisLike());
  const secretFile = await Deno.makeTempFile();
  await Deno.writeTextFile(secretFile, "a secret of sixteen bytes or more\n");
  await Deno.chmod(secretFile, 0o600);
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("../main.ts", import.meta.url).pathname,
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--cluster",
      fake.url,
      "--cluster-secret-file",
      secretFile,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output().finally(() => Deno.remove(secretFile));
  const seconds = (performance.now() - started) / 1000;
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 1, `${stdout}\n${stderr}`);
  assert.equal(stderr.split("\n").length, 1, stderr);
  assert.match(
    stderr,
    /^otter: cluster: cannot use Redis at redis:\/\/127\.0\.0\.1:\d+: it has no XADD command \(Redis said "ERR unknown command 'XADD'.*"\); the cluster sync needs Redis 6\.2 or newer$/,
  );
  // It never served, and never said it would retry.
  assert.doesNotMatch(stdout, /listening|cluster:/);
  assert.equal(fake.names.filter((name) => name === "XADD").length, 1);
  assert.ok(seconds < 20, `took ${seconds} s`);
});

function redisLikeWith(
  overrides: Record<string, (args: string[]) => string | Promise<string>>,
) {
  return redisLike({ ...streams, ...overrides });
}

Deno.test("cluster: startTracker that fails on such a Redis leaves no timer, watcher or file behind", async () => {
  // The clock's and loop-lag probe's timers are unref'd, which Deno.test's sanitizers do not
  // see, so the clock reports its own stop; the sanitizers still catch a watcher or file left open.
  await using fake = new FakeRedis(redisLikeWith({
    XADD: () => respError("ERR Invalid stream ID specified as stream command argument"),
  }));
  const dir = await Deno.makeTempDir();
  try {
    const list = `${dir}/whitelist`;
    await Deno.writeTextFile(list, "");
    const parsed = parseCommandLine([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--cluster",
      fake.url,
      "--cluster-insecure",
      "--state",
      `${dir}/state`,
      "--whitelist",
      list,
    ]);
    assert.equal(parsed.kind, "run");
    if (parsed.kind !== "run") return;
    const logs: string[] = [];
    let clockStops = 0;
    const clock = new class extends Clock {
      override stop(): void {
        clockStops++;
        super.stop();
      }
    }();
    await assert.rejects(
      startTracker(parsed.config, clock, (line) => logs.push(line)),
      /needs Redis 6\.2 or newer$/,
    );
    assert.equal(clockStops, 1);
    // Nothing listened, and the state file was not written over.
    assert.ok(!logs.some((line) => /listening/.test(line)), logs.join("\n"));
    await assert.rejects(Deno.stat(`${dir}/state`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
