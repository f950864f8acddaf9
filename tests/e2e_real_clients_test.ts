/**
 * End to end with real BitTorrent clients from Debian: a seeder and a leecher that can find each
 * other only through otter (DHT, local service discovery, PEX, UPnP and NAT-PMP are all off)
 * share a random file, and the leecher's copy must equal the original byte for byte. Otter's
 * scrape must then count the seeder (complete) and the leecher's finished download (downloaded),
 * and otter must exit cleanly on SIGTERM.
 *
 * Seeder: libtorrent (python3-libtorrent, tests/support/lt_peer.py). Leechers:
 * - HTTP tracker: aria2c, with every discovery but the tracker off.
 * - UDP tracker: a second libtorrent process. aria2 speaks UDP trackers only with its DHT on
 *   (`--enable-dht` "also enables UDP tracker support"), and transmission-cli 3.00 gets the
 *   peer list but never connects to loopback peers, so neither can leech here over UDP.
 *
 * Two sessions, one process: a libtorrent seeder and leecher as two sessions of one Python process
 * (tests/support/lt_two_sessions.py). libtorrent caches UDP connection ids per process and tracker
 * address, so the leecher announces from its own port with the id the seeder's port was given;
 * otter must accept it (ids are bound to the address, not the port) and the leecher must finish.
 *
 * Every case runs on loopback (IPv4 and IPv6), with one fresh tracker, bounded to 60 s, its
 * children killed in `finally`. `OTTER_E2E_TRACKER=opentracker` runs the IPv4 cases against
 * Debian's opentracker instead, to tell a client or harness problem from an otter one.
 */
import assert from "node:assert/strict";
import { bdecode, type Decoded, latin1 } from "./support/bencode.ts";
import { type Child, spawnChild } from "./support/child.ts";
import { ipv6Missing } from "./support/ipv6.ts";
import { freeTcpUdpPort, startOtter } from "./support/otterProcess.ts";
import { makeTorrent, randomBytes, toHex } from "./support/torrent.ts";

const LT_PEER = new URL("./support/lt_peer.py", import.meta.url).pathname;
const LT_TWO_SESSIONS = new URL("./support/lt_two_sessions.py", import.meta.url).pathname;
const CASE_MS = 60_000;
const FILE_NAME = "payload.bin";
/** 4 MiB and a partial last piece (pieces are 256 KiB). */
const FILE_SIZE = 4 * 1024 * 1024 + 12_345;
/** The two-sessions case: a few hundred KiB, pieces of 64 KiB. */
const SMALL_FILE_SIZE = 600 * 1024 + 4321;

type Family = 4 | 6;
type Protocol = "http" | "udp";

/** A python3 that can import Debian's libtorrent bindings (they live in /usr/bin's python). */
const python = ["/usr/bin/python3", "python3"].find((exe) =>
  runs(exe, ["-c", "import libtorrent"])
);
const hasAria2 = runs("aria2c", ["--version"]);
const useOpentracker = Deno.env.get("OTTER_E2E_TRACKER") === "opentracker";

interface Case {
  protocol: Protocol;
  family: Family;
  leecher: "aria2" | "libtorrent";
}

const cases: Case[] = [
  { protocol: "http", family: 4, leecher: "aria2" },
  { protocol: "udp", family: 4, leecher: "libtorrent" },
  { protocol: "http", family: 6, leecher: "aria2" },
  { protocol: "udp", family: 6, leecher: "libtorrent" },
];

for (const c of cases) {
  const missing = !python
    ? "python3-libtorrent is not installed"
    : c.leecher === "aria2" && !hasAria2
    ? "aria2c is not installed"
    : c.family === 6 && ipv6Missing !== null
    ? ipv6Missing
    : c.family === 6 && useOpentracker
    ? "Debian's opentracker is IPv4-only"
    : undefined;
  Deno.test({
    name: `e2e: ${c.protocol.toUpperCase()} tracker over IPv${c.family}: libtorrent seeds, ` +
      `${c.leecher} leeches` + (missing ? ` (skipped: ${missing})` : ""),
    ignore: missing !== undefined,
    fn: () => runCase(c),
  });
}

for (const family of [4, 6] as const) {
  const missing = !python
    ? "python3-libtorrent is not installed"
    : family === 6 && ipv6Missing !== null
    ? ipv6Missing
    : family === 6 && useOpentracker
    ? "Debian's opentracker is IPv4-only"
    : undefined;
  Deno.test({
    name: `e2e: UDP tracker over IPv${family}: a libtorrent seeder and leecher as two sessions ` +
      `of one process (one shared connection id)` + (missing ? ` (skipped: ${missing})` : ""),
    ignore: missing !== undefined,
    fn: () => runTwoSessions(family),
  });
}

async function runCase(c: Case): Promise<void> {
  const deadline = Date.now() + CASE_MS;
  const left = () => Math.max(1, deadline - Date.now());
  const host = c.family === 4 ? "127.0.0.1" : "::1";
  const hostInUrl = c.family === 4 ? host : `[${host}]`;
  const dir = await Deno.makeTempDir({ prefix: "otter-e2e-" });
  const children: Child[] = [];
  let tracker: Tracker | undefined;
  try {
    // opentracker, started as root, drops to `nobody` and must read its whitelist in here.
    await Deno.chmod(dir, 0o755);
    const seedDir = `${dir}/seed`;
    const leechDir = `${dir}/leech`;
    await Deno.mkdir(seedDir);
    await Deno.mkdir(leechDir);
    const content = randomBytes(FILE_SIZE);
    await Deno.writeFile(`${seedDir}/${FILE_NAME}`, content);
    // The info hash does not depend on the announce URL, and opentracker needs it up front.
    const { infoHash, infoHashHex } = await makeTorrent(content, { name: FILE_NAME, announce: "" });

    tracker = useOpentracker
      ? await startOpentracker(dir, infoHashHex, left())
      : await startOtterTracker(c, host);
    const announce = c.protocol === "http"
      ? `${tracker.httpBase}/announce`
      : `udp://${hostInUrl}:${tracker.udpPort}/announce`;
    const torrent = await makeTorrent(content, { name: FILE_NAME, announce });
    assert.equal(torrent.infoHashHex, infoHashHex);
    const torrentPath = `${dir}/payload.torrent`;
    await Deno.writeFile(torrentPath, torrent.metainfo);
    const scrape = () => scrapeCounts(tracker!.httpBase, infoHash);

    const failWith = (what: string, e: unknown): never => {
      const logs = children.map((child) =>
        `=== ${child.name}, pid ${child.pid} ===\n${child.log()}`
      );
      throw new Error(
        `${what}: ${(e as Error).message}\n${logs.join("\n")}\n` +
          `=== tracker stderr ===\n${tracker?.stderr()}`,
        { cause: e },
      );
    };

    const seedListen = `${hostInUrl}:${freeTcpUdpPort(host)}`;
    const seeder = spawnLibtorrent(torrentPath, seedDir, seedListen, "seeder (libtorrent)");
    children.push(seeder);

    // The leecher must find the seeder on its first announce, so wait until the tracker has it.
    try {
      await seeder.waitForLine(/^seeding$/, Math.min(20_000, left()));
      await until(async () => (await scrape()).complete >= 1, Math.min(15_000, left()));
    } catch (e) {
      failWith("the seeder did not get to the tracker", e);
    }

    const leechPort = freeTcpUdpPort(host);
    if (c.leecher === "aria2") {
      const leecher = spawnChild("aria2c", aria2Args(torrentPath, leechDir, leechPort, left()), {
        name: "leecher (aria2c)",
      });
      children.push(leecher);
      try {
        const status = await withDeadline(leecher.exited, left(), "aria2c to finish");
        assert.equal(status.code, 0, `aria2c exit code ${status.code}`);
      } catch (e) {
        failWith("aria2c did not download the file", e);
      }
    } else {
      const leechListen = `${hostInUrl}:${leechPort}`;
      const leecher = spawnLibtorrent(torrentPath, leechDir, leechListen, "leecher (libtorrent)");
      children.push(leecher);
      try {
        await leecher.waitForLine(/^seeding$/, left());
      } catch (e) {
        failWith("the libtorrent leecher did not download the file", e);
      }
    }

    const copy = await Deno.readFile(`${leechDir}/${FILE_NAME}`);
    assertSameBytes(copy, content);

    // The leecher announced `completed`; the seeder is still there.
    try {
      await until(async () => {
        const counts = await scrape();
        return counts.complete >= 1 && counts.downloaded >= 1;
      }, Math.min(10_000, left()));
    } catch (e) {
      const last = await scrape().catch((error) => error);
      failWith(`scrape never counted the download (last: ${JSON.stringify(last)})`, e);
    }

    for (const child of children) await child.stop();
    const stopped = await tracker.stop();
    assert.equal(stopped.code, 0, `tracker exit code ${stopped.code}\n${stopped.stderr}`);
  } finally {
    await Promise.all(children.map((child) => child.stop("SIGKILL", 1000)));
    await tracker?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function runTwoSessions(family: Family): Promise<void> {
  const deadline = Date.now() + CASE_MS;
  const left = () => Math.max(1, deadline - Date.now());
  const host = family === 4 ? "127.0.0.1" : "::1";
  const hostInUrl = family === 4 ? host : `[${host}]`;
  const dir = await Deno.makeTempDir({ prefix: "otter-e2e-" });
  let child: Child | undefined;
  let tracker: Tracker | undefined;
  try {
    await Deno.chmod(dir, 0o755);
    await Deno.mkdir(`${dir}/seed`);
    await Deno.mkdir(`${dir}/leech`);
    const content = randomBytes(SMALL_FILE_SIZE);
    await Deno.writeFile(`${dir}/seed/${FILE_NAME}`, content);
    const pieceLength = 64 * 1024;
    const { infoHashHex } = await makeTorrent(content, {
      name: FILE_NAME,
      announce: "",
      pieceLength,
    });
    tracker = useOpentracker
      ? await startOpentracker(dir, infoHashHex, left())
      : await startOtterTracker({ protocol: "udp", family, leecher: "libtorrent" }, host);
    const announce = `udp://${hostInUrl}:${tracker.udpPort}/announce`;
    const torrent = await makeTorrent(content, { name: FILE_NAME, announce, pieceLength });
    assert.equal(torrent.infoHashHex, infoHashHex);
    await Deno.writeFile(`${dir}/payload.torrent`, torrent.metainfo);
    const listen = () => `${hostInUrl}:${freeTcpUdpPort(host)}`;
    child = spawnChild(python!, [
      LT_TWO_SESSIONS,
      `${dir}/payload.torrent`,
      `${dir}/seed`,
      listen(),
      `${dir}/leech`,
      listen(),
      String(CASE_MS / 1000),
    ], { name: "libtorrent seeder and leecher sessions" });
    const failWith = (what: string, e: unknown): never => {
      throw new Error(
        `${what}: ${(e as Error).message}\n=== ${child!.name} ===\n${child!.log()}\n` +
          `=== tracker stderr ===\n${tracker?.stderr()}`,
        { cause: e },
      );
    };
    try {
      await child.waitForLine(/^leecher seeding$/, left());
    } catch (e) {
      failWith("the leecher session did not download the file", e);
    }
    const copy = await Deno.readFile(`${dir}/leech/${FILE_NAME}`);
    assert.equal(await sha256Hex(copy), await sha256Hex(content), "sha256 of the download");
    const refusals = child.lines.filter((line) => / alert tracker_error_alert: /.test(line));
    assert.deepEqual(refusals, [], "tracker errors");
    if (!useOpentracker) {
      // One connect for two sessions on two ports: the leecher announced with the seeder's id.
      const response = await fetch(`${tracker.httpBase}/stats?mode=udp4&format=json`, {
        signal: AbortSignal.timeout(5000),
      });
      const udp = (await response.json()).udp4;
      assert.equal(udp.connects, 1, `one connect for both sessions: ${JSON.stringify(udp)}`);
      assert.ok(udp.announces >= 2, `both sessions announced: ${JSON.stringify(udp)}`);
      assert.equal(udp.errors, 0, `no refused announce: ${JSON.stringify(udp)}`);
    }
    await child.stop();
    const stopped = await tracker.stop();
    assert.equal(stopped.code, 0, `tracker exit code ${stopped.code}\n${stopped.stderr}`);
  } finally {
    await child?.stop("SIGKILL", 1000);
    await tracker?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** tests/support/lt_peer.py: seeds `dir`'s copy, or downloads into `dir`; exits by itself. */
function spawnLibtorrent(torrent: string, dir: string, listen: string, name: string): Child {
  return spawnChild(python!, [LT_PEER, torrent, dir, listen, String(CASE_MS / 1000)], { name });
}

function aria2Args(torrent: string, dir: string, port: number, msLeft: number): string[] {
  return [
    `--dir=${dir}`,
    `--listen-port=${port}`,
    // Only the tracker may bring peers (aria2's DHT would also bring UDP tracker support).
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    // Seed a moment (0.02 min) so that aria2 announces `completed` before `stopped`.
    "--seed-time=0.02",
    "--bt-tracker-interval=2",
    "--bt-tracker-connect-timeout=5",
    "--bt-tracker-timeout=5",
    "--file-allocation=none",
    "--summary-interval=0",
    "--console-log-level=notice",
    "--log=-",
    "--log-level=info",
    "--no-conf",
    `--stop=${Math.max(1, Math.floor(msLeft / 1000) - 2)}`,
    torrent,
  ];
}

interface Counts {
  complete: number;
  downloaded: number;
  incomplete: number;
}

/** One scrape of `infoHash` over HTTP; zeros when the tracker does not know it yet. */
async function scrapeCounts(httpBase: string, infoHash: Uint8Array): Promise<Counts> {
  const query = Array.from(infoHash, (b) => `%${b.toString(16).padStart(2, "0")}`).join("");
  const response = await fetch(`${httpBase}/scrape?info_hash=${query}`, {
    signal: AbortSignal.timeout(5000),
  });
  const body = bdecode(new Uint8Array(await response.arrayBuffer()));
  assert.equal(response.status, 200);
  const files = dictOf(dictOf(body).files);
  const entry = files[latin1(infoHash)];
  if (entry === undefined) return { complete: 0, downloaded: 0, incomplete: 0 };
  const counts = dictOf(entry);
  return {
    complete: Number(counts.complete),
    downloaded: Number(counts.downloaded),
    incomplete: Number(counts.incomplete),
  };
}

function dictOf(value: Decoded | undefined): { [key: string]: Decoded } {
  assert.ok(
    value !== undefined && typeof value === "object" && !(value instanceof Uint8Array) &&
      !Array.isArray(value),
    "expected a bencoded dictionary",
  );
  return value;
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length, "downloaded file length");
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(at, -1, `downloaded file differs from the original at byte ${at}`);
}

interface Tracker {
  httpBase: string;
  udpPort: number;
  stderr(): string;
  stop(): Promise<{ code: number; stderr: string }>;
}

async function startOtterTracker(c: Case, host: string): Promise<Tracker> {
  const hostPort = c.family === 4 ? `${host}:0` : `[${host}]:0`;
  // Both kinds always: a kind without a flag would take otter's default port, 6969.
  const otter = await startOtter(["--http", hostPort, "--udp", hostPort]);
  return {
    httpBase: otter.http[0],
    udpPort: otter.udp[0]?.port ?? 0,
    stderr: () => otter.stderr,
    stop: () => otter.stop(),
  };
}

/** Debian's opentracker on 127.0.0.1 (IPv4 only), whitelisting just this torrent. */
async function startOpentracker(dir: string, infoHashHex: string, msLeft: number) {
  await Deno.writeTextFile(`${dir}/whitelist.txt`, `${infoHashHex}\n`, { mode: 0o644 });
  const port = freeTcpUdpPort("127.0.0.1");
  const child = spawnChild(
    "opentracker",
    ["-i", "127.0.0.1", "-p", `${port}`, "-P", `${port}`, "-d", dir, "-w", "whitelist.txt"],
    { cwd: dir },
  );
  const httpBase = `http://127.0.0.1:${port}`;
  // The whitelist loads in a background thread; until then every announce is refused.
  const probe = `${httpBase}/announce?info_hash=${
    infoHashHex.replace(/../g, "%$&")
  }&peer_id=-OT0000-probeprobepr&port=1&uploaded=0&downloaded=0&left=0&event=stopped&compact=1`;
  await until(async () => {
    const body = await (await fetch(probe, { signal: AbortSignal.timeout(1000) })).text();
    return !body.includes("failure reason");
  }, Math.min(10_000, msLeft));
  return {
    httpBase,
    udpPort: port,
    stderr: () => child.log(),
    // opentracker has no SIGTERM handler: dying of the signal is its clean exit.
    stop: async () => {
      const stopped = await child.stop();
      return { ...stopped, code: stopped.signal === "SIGTERM" ? 0 : stopped.code };
    },
  };
}

/** Polls `condition` every 200 ms until it holds; errors from it count as "not yet". */
async function until(condition: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await condition()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`condition not met within ${ms} ms${last ? ` (last error: ${last})` : ""}`);
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function runs(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}
