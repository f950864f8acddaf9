/**
 * Real WebTorrent clients through otter, end to end, over ws:// and wss://: two `webtorrent`
 * 3.0.21 clients (over `node-datachannel` 0.33.4; tests/webtorrent/wt_client.mjs), a seeder and a
 * magnet leecher that can find each other only through otter's WebSocket tracker, exchange a
 * random file of a few MiB over WebRTC; the leecher's sha256 must equal the original's, its wires
 * must all be `webrtc`, and otter's scrape must count the downloads and both seeders, then the
 * seeder alone once the leecher has stopped. A second, independent client,
 * bittorrent-tracker 11.2.3's own client library (tests/webtorrent/bt_client.mjs), announces,
 * connects two peers through otter's offers and answers, completes, stops and scrapes.
 *
 * WebRTC gathers candidates on every interface, and tests here may only send to loopback: so each
 * case runs inside a loopback-only network namespace (`unshare -n`, or `unshare -rn` where this
 * user may not make one, then `ip link set lo up`), with otter and the clients all in it. This file
 * runs itself there: outside, each test starts `deno test --filter <its case>` on this file in a
 * fresh namespace with OTTER_IN_LOOPBACK_NETNS=1 and passes when that run passes; inside, the
 * cases run. A case is skipped, with the reason in one line, only where no namespace can be made.
 * The clients' packages must be installed: `deno install` in tests/webtorrent (.ci/run does it).
 *
 * wss://: a throwaway CA and a leaf for 127.0.0.1 made by `openssl` (support/testCertificates.ts),
 * otter's `--https` listener serving it; the clients trust the CA through their `--ca` option (npm
 * `ws` ignores DENO_CERT and NODE_EXTRA_CA_CERTS under Deno; the agent goes through
 * bittorrent-tracker's proxyOpts), and NODE_EXTRA_CA_CERTS names it too for anything else.
 */
import assert from "node:assert/strict";
import { type Child, spawnChild } from "./support/child.ts";
import { type OtterProcess, startOtter } from "./support/otterProcess.ts";
import { makeCa, makeLeaf } from "./support/testCertificates.ts";
import { WsClient } from "./support/wsHarness.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { secretFile } from "./support/clusterOtters.ts";

const INSIDE = Deno.env.get("OTTER_IN_LOOPBACK_NETNS") === "1";
const CLIENTS_DIR = new URL("./webtorrent/", import.meta.url).pathname;
const THIS_FILE = new URL(import.meta.url).pathname;
const REPO = new URL("../", import.meta.url).pathname;
/** A whole case, from the namespace's start to its end. */
const CASE_MS = 90_000;
/** What the clients themselves may take (they exit on their own after it). */
const CLIENT_MS = 70_000;
/** 3 MiB and an odd tail (webtorrent's pieces are 16-256 KiB: the last one is partial). */
const FILE_SIZE = 3 * 1024 * 1024 + 4321;

type Scheme = "ws" | "wss";

interface Case {
  name: string;
  run: () => Promise<void>;
  /** Runs a redis-server too (skipped in one line where none is installed). */
  needsRedis?: boolean;
}

const cases: Case[] = [
  { name: "webtorrent seeder and magnet leecher over ws://", run: () => exchange("ws") },
  {
    name: "webtorrent seeder and magnet leecher on two cluster nodes over ws://",
    run: exchangeAcrossNodes,
    needsRedis: true,
  },
  { name: "webtorrent seeder and magnet leecher over wss://", run: () => exchange("wss") },
  { name: "bittorrent-tracker's client library over ws://", run: () => btClient("ws") },
  { name: "bittorrent-tracker's client library over wss://", run: () => btClient("wss") },
];

// ------------------------------------------------------------------ outside: one namespace a case

/** How to make a loopback-only network namespace here, or why none can be made. */
function namespaceCommand(): { prefix: string[] } | { skip: string } {
  const tries = [["unshare", "-n"], ["unshare", "-rn"]];
  let why = "";
  for (const prefix of tries) {
    try {
      const out = new Deno.Command(prefix[0], {
        args: [...prefix.slice(1), "true"],
        stdout: "null",
        stderr: "piped",
      }).outputSync();
      if (out.success) return { prefix };
      why = new TextDecoder().decode(out.stderr).trim();
    } catch (e) {
      why = String(e);
    }
  }
  return { skip: `no network namespace can be made here (${why.split("\n")[0]})` };
}

if (!INSIDE) {
  const namespace = namespaceCommand();
  const haveRedis = await haveRedisServer();
  if (!haveRedis) console.log("webtorrent_e2e_test: cluster case skipped, no redis-server on PATH");
  for (const { name, needsRedis } of cases) {
    Deno.test({
      name: `webtorrent e2e: ${name}`,
      ignore: "skip" in namespace || (needsRedis === true && !haveRedis),
    }, async () => {
      if ("skip" in namespace) return;
      assert.ok(
        exists(`${CLIENTS_DIR}node_modules/webtorrent/package.json`),
        "the clients are not installed: run `deno install` in tests/webtorrent",
      );
      // `ip link set lo up`, then the case alone, as a test run of this file.
      const inner = [
        "sh",
        "-c",
        'ip link set lo up && exec "$0" "$@"',
        Deno.execPath(),
        "test",
        "--allow-all",
        "--no-check",
        "--filter",
        `inside: ${name}`,
        THIS_FILE,
      ];
      const out = await new Deno.Command(namespace.prefix[0], {
        args: [...namespace.prefix.slice(1), ...inner],
        cwd: REPO,
        env: { OTTER_IN_LOOPBACK_NETNS: "1", NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(CASE_MS + 30_000),
      }).output();
      const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.ok(out.success, `the case failed in its namespace (exit ${out.code}):\n${log}`);
      assert.match(log, /\b1 passed\b/, `the case did not run:\n${log}`);
    });
  }
} else {
  for (const { name, run } of cases) {
    Deno.test({ name: `inside: ${name}`, sanitizeResources: false, sanitizeOps: false }, run);
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ inside: the cases

interface Tracker extends AsyncDisposable {
  /** The clients' tracker URL: ws://127.0.0.1:PORT/announce or wss://… */
  url: string;
  /** The CA to trust for wss://, or null. */
  caPath: string | null;
  /** A WebSocket to otter over the same scheme, for scrapes. */
  connect(): Promise<WsClient>;
}

/** otter on loopback; with "wss" also its --https listener with a fresh certificate. */
async function startTracker(scheme: Scheme): Promise<Tracker> {
  const dir = await Deno.makeTempDir({ prefix: "otter-webtorrent-" });
  const flags = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
  let caPem = "";
  let caPath: string | null = null;
  if (scheme === "wss") {
    const ca = await makeCa(dir, "wt");
    const leaf = await makeLeaf(dir, ca, "tracker");
    flags.push("--https", "127.0.0.1:0", "--tls-cert", leaf.certPath, "--tls-key", leaf.keyPath);
    caPem = ca.pem;
    caPath = ca.certPath;
  }
  const otter = await startOtter(flags);
  const base = scheme === "wss" ? otter.https[0] : otter.http[0];
  const port = Number(new URL(base).port);
  return {
    url: `${scheme}://127.0.0.1:${port}/announce`,
    caPath,
    connect: () => scheme === "wss" ? WsClient.openTls(port, [caPem]) : WsClient.open(port),
    [Symbol.asyncDispose]: async () => {
      await otter[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A client script of tests/webtorrent under Deno, trusting `caPath` for wss://. */
function client(script: string, args: string[], caPath: string | null, name: string): Child {
  const ca = caPath === null ? [] : ["--ca", caPath];
  return spawnChild(Deno.execPath(), ["run", "-A", script, ...args, ...ca], {
    name,
    cwd: CLIENTS_DIR,
    env: caPath === null ? {} : { NODE_EXTRA_CA_CERTS: caPath },
  });
}

/** The JSON object of the first line of `child` whose `key` is `value`. */
async function event(
  child: Child,
  key: string,
  value: string,
  ms = CLIENT_MS,
): Promise<Record<string, unknown>> {
  const line = await child.waitForLine(new RegExp(`"${key}":"${value}"`), ms);
  return JSON.parse(line);
}

/** complete / incomplete / downloaded of `hexHash`, scraped over the tracker's own scheme. */
async function scrape(tracker: Tracker, hexHash: string): Promise<number[]> {
  const hash = String.fromCharCode(...hexHash.match(/../g)!.map((h) => parseInt(h, 16)));
  await using ws = await tracker.connect();
  await ws.json({ action: "scrape", info_hash: hash });
  const reply = await ws.message();
  const file = (reply.files as Record<string, Record<string, number>>)[hash];
  return [file.complete, file.incomplete, file.downloaded];
}

/** Waits until the scrape of `hexHash` is `want` (a stop travels on its own), within 10 s. */
async function scrapeReaches(tracker: Tracker, hexHash: string, want: number[]): Promise<void> {
  const deadline = performance.now() + 10_000;
  let got = await scrape(tracker, hexHash);
  while (JSON.stringify(got) !== JSON.stringify(want) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    got = await scrape(tracker, hexHash);
  }
  assert.deepEqual(got, want, "complete, incomplete, downloaded");
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exchange(scheme: Scheme): Promise<void> {
  await using tracker = await startTracker(scheme);
  const dir = await Deno.makeTempDir({ prefix: "otter-webtorrent-files-" });
  const children: Child[] = [];
  try {
    const payload = new Uint8Array(FILE_SIZE);
    for (let at = 0; at < FILE_SIZE; at += 65536) {
      crypto.getRandomValues(payload.subarray(at, Math.min(FILE_SIZE, at + 65536)));
    }
    await Deno.writeFile(`${dir}/payload.bin`, payload);
    const want = await sha256Hex(payload);
    const timeout = ["--timeout-ms", String(CLIENT_MS)];

    const seeder = client(
      "wt_client.mjs",
      ["seed", "--tracker", tracker.url, "--file", `${dir}/payload.bin`, ...timeout],
      tracker.caPath,
      "seeder",
    );
    children.push(seeder);
    const seeding = await event(seeder, "event", "seeding");
    const infoHash = String(seeding.infoHash);
    await Deno.mkdir(`${dir}/out`);
    const leecher = client(
      "wt_client.mjs",
      [
        "leech",
        "--tracker",
        tracker.url,
        "--magnet",
        String(seeding.magnet),
        "--out",
        `${dir}/out`,
        "--linger",
        ...timeout,
      ],
      tracker.caPath,
      "leecher",
    );
    children.push(leecher);
    const done = await event(leecher, "event", "done");
    assert.equal(done.length, FILE_SIZE);
    assert.equal(done.sha256, want, "the leecher's copy is the seeder's file");
    assert.equal(await sha256Hex(await Deno.readFile(String(done.path))), want);
    assert.deepEqual(done.wireTypes, ["webrtc"], "the peers met over WebRTC only");
    // The leecher announced `completed` and stays as a second seeder. Two downloads: its own, and
    // the seeder's first announce, a `completed` before any `started` (webtorrent's seeders send
    // that), which counts as a download as over HTTP and UDP, and as bittorrent-tracker counts it.
    await scrapeReaches(tracker, infoHash, [2, 0, 2]);
    // Its stop (or its socket's close) takes it out at once.
    await leecher.stop();
    await scrapeReaches(tracker, infoHash, [1, 0, 2]);
  } catch (e) {
    for (const child of children) console.error(`--- ${child.name}:\n${child.log()}`);
    throw e;
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The seeder announces to node A and the magnet leecher to node B of a two-node cluster (one
 * redis-server, the cluster secret): B knows the seeder only as A's peer, so the leecher's offers
 * reach it through Redis and its answers come back the same way. The file must arrive whole over
 * WebRTC, and both nodes must count the swarm alike.
 */
async function exchangeAcrossNodes(): Promise<void> {
  const redis = new RedisServer();
  await redis.start();
  const secret = await secretFile("the webtorrent cluster test's secret");
  const node = (name: string) =>
    startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--cluster",
      redis.url,
      "--cluster-name",
      "wt",
      "--node-id",
      name,
      "--cluster-secret-file",
      secret,
    ]);
  const a = await node("a");
  const b = await node("b");
  const trackerOf = (otter: OtterProcess): Tracker => {
    const port = Number(new URL(otter.http[0]).port);
    return {
      url: `ws://127.0.0.1:${port}/announce`,
      caPath: null,
      connect: () => WsClient.open(port),
      [Symbol.asyncDispose]: async () => {},
    };
  };
  const onA = trackerOf(a);
  const onB = trackerOf(b);
  const dir = await Deno.makeTempDir({ prefix: "otter-webtorrent-files-" });
  const children: Child[] = [];
  try {
    const payload = new Uint8Array(FILE_SIZE);
    for (let at = 0; at < FILE_SIZE; at += 65536) {
      crypto.getRandomValues(payload.subarray(at, Math.min(FILE_SIZE, at + 65536)));
    }
    await Deno.writeFile(`${dir}/payload.bin`, payload);
    const want = await sha256Hex(payload);
    const timeout = ["--timeout-ms", String(CLIENT_MS)];
    const seeder = client(
      "wt_client.mjs",
      ["seed", "--tracker", onA.url, "--file", `${dir}/payload.bin`, ...timeout],
      null,
      "seeder",
    );
    children.push(seeder);
    const seeding = await event(seeder, "event", "seeding");
    const infoHash = String(seeding.infoHash);
    // The leecher's offers are sampled when it announces: B must hold A's seeder by then.
    await scrapeReaches(onB, infoHash, [1, 0, 1]);
    await Deno.mkdir(`${dir}/out`);
    const leecher = client(
      "wt_client.mjs",
      [
        "leech",
        "--tracker",
        onB.url,
        "--magnet",
        // Without the seeder's tracker (A) that the magnet names: the leecher knows B alone.
        String(seeding.magnet).replace(/&tr=[^&]*/g, ""),
        "--out",
        `${dir}/out`,
        "--linger",
        ...timeout,
      ],
      null,
      "leecher",
    );
    children.push(leecher);
    const done = await event(leecher, "event", "done");
    assert.equal(done.length, FILE_SIZE);
    assert.equal(done.sha256, want, "the leecher's copy is the seeder's file");
    assert.equal(await sha256Hex(await Deno.readFile(String(done.path))), want);
    assert.deepEqual(done.wireTypes, ["webrtc"], "the peers met over WebRTC only");
    // As on one node (see `exchange`), on both nodes: two seeders, two downloads.
    await scrapeReaches(onA, infoHash, [2, 0, 2]);
    await scrapeReaches(onB, infoHash, [2, 0, 2]);
    // The leecher never reached A: its offers went there through Redis, the answers came back.
    assert.equal(await metric(b, "otter_cluster_ws_signals_received_total", 'kind="answer"'), 1);
    assert.equal(await metric(a, "otter_cluster_ws_signals_sent_total", 'kind="answer"'), 1);
    await leecher.stop();
    await scrapeReaches(onA, infoHash, [1, 0, 2]);
    await scrapeReaches(onB, infoHash, [1, 0, 2]);
  } catch (e) {
    for (const child of children) console.error(`--- ${child.name}:\n${child.log()}`);
    throw e;
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await a.stop();
    await b.stop();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** One sample of a metric of `otter` (the one with `labels`, or the unlabelled one). */
async function metric(otter: OtterProcess, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${otter.http[0]}/metrics`)).text();
  const line = labels === "" ? `${name} ` : `${name}{${labels}} `;
  const found = text.split("\n").find((l) => l.startsWith(line));
  return found === undefined ? NaN : Number(found.slice(line.length));
}

async function btClient(scheme: Scheme): Promise<void> {
  await using tracker = await startTracker(scheme);
  const bt = client(
    "bt_client.mjs",
    ["--tracker", tracker.url, "--timeout-ms", String(CLIENT_MS)],
    tracker.caPath,
    "bt_client",
  );
  try {
    await event(bt, "step", "done");
    const steps = bt.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const counts = (step: string) => {
      const found = steps.find((s) => s.step === step);
      assert.ok(found !== undefined, `no "${step}" step`);
      return [found.complete, found.incomplete, found.downloaded];
    };
    // A seeder A, then a leecher B whose offers reach A and whose connection to A is made.
    assert.deepEqual(counts("A started"), [1, 0, undefined]);
    assert.deepEqual(counts("B started"), [1, 1, undefined]);
    assert.ok(steps.some((s) => s.step === "A peer") && steps.some((s) => s.step === "B peer"));
    assert.deepEqual(counts("B completed"), [2, 0, undefined]);
    const scrapes = steps.filter((s) => s.step === "scrape");
    assert.deepEqual(scrapes.map((s) => [s.complete, s.incomplete, s.downloaded]), [
      [1, 1, 0],
      [2, 0, 1],
    ]);
    // Both stopped: no peers left, the download still counted.
    assert.deepEqual(counts("final scrape"), [0, 0, 1]);
    assert.equal(steps.filter((s) => s.step === "error").length, 0);
  } catch (e) {
    console.error(`--- bt_client:\n${bt.log()}`);
    throw e;
  } finally {
    await bt.stop();
  }
}
