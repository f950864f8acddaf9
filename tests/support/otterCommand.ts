/**
 * Runs otter the way an operator does — through a deno.json task's own command line, with exactly
 * its permission flags, or as a compiled binary — and checks that it answers a real HTTP and UDP
 * announce. Shared by permissions_test.ts and binary_test.ts; otterProcess.ts is the
 * `--allow-all` launcher the other tests use.
 */
import assert from "node:assert/strict";
import { spawnChild, type Stopped } from "./child.ts";
import { bdecode, type Decoded } from "./bencode.ts";
import { announcePacket, announcePeers, readU32, UdpTestClient } from "./udpClient.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

/** A deno.json task's command line split into words, `deno` first; the tasks have no quoting. */
export function taskWords(task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}deno.json`));
  const line = config.tasks?.[task];
  if (typeof line !== "string") throw new Error(`deno.json has no task ${task}`);
  return line.trim().split(/\s+/);
}

/** The `--allow-*` words of a task, in order. */
export function permissionFlags(task: string): string[] {
  return taskWords(task).filter((word) => word.startsWith("--allow-") || word === "-A");
}

export interface Listener {
  /** As printed, without brackets. */
  hostname: string;
  port: number;
  /** UDP only: "fast" or "portable". */
  io: string;
}

export interface LaunchedOtter extends AsyncDisposable {
  /** HTTP base URLs, e.g. "http://127.0.0.1:41234". */
  http: string[];
  udp: Listener[];
  /** Every stdout line so far. */
  lines: string[];
  readonly stderr: string;
  /** Waits for a stdout line matching `pattern` (earlier lines count). */
  waitForLine(pattern: RegExp, ms?: number): Promise<string>;
  signal(signal: Deno.Signal): void;
  /** SIGTERM (SIGKILL after 5 s); exit code and stderr. */
  stop(): Promise<Stopped>;
  log(): string;
}

const HTTP_LINE = /^HTTP listening on (http:\/\/(?:\[[^\]]+\]|[^/:]+):\d+)\/announce$/;
const UDP_LINE =
  /^UDP listening on udp:\/\/(\[[^\]]+\]|[^/:]+):(\d+)\/announce \(io: (\w+)(?:, workers: \d+)?\)$/;

/**
 * Spawns `command args` from the repository root and waits (at most `timeoutMs`) for one listener
 * line per `--http` and `--udp` in `args`; pass both kinds, or otter also opens its default
 * port 6969.
 */
export async function launchOtter(
  command: string,
  args: string[],
  timeoutMs = 20_000,
): Promise<LaunchedOtter> {
  const want = { http: count(args, "--http"), udp: count(args, "--udp") };
  const http: string[] = [];
  const udp: Listener[] = [];
  const child = spawnChild(command, args, {
    name: "otter",
    cwd: REPO_ROOT,
    onLine(line) {
      const h = HTTP_LINE.exec(line);
      if (h) http.push(h[1]);
      const u = UDP_LINE.exec(line);
      if (u) udp.push({ hostname: u[1].replace(/^\[|\]$/g, ""), port: Number(u[2]), io: u[3] });
    },
  });
  try {
    await child.waitUntil(
      () => http.length >= want.http && udp.length >= want.udp,
      timeoutMs,
      `${want.http} HTTP and ${want.udp} UDP listener lines`,
    );
  } catch (e) {
    await child.stop("SIGKILL");
    throw new Error(`${command} ${args.join(" ")}: ${(e as Error).message}\n${child.log()}`);
  }
  return {
    http,
    udp,
    lines: child.lines,
    get stderr() {
      return child.stderr;
    },
    waitForLine: (pattern, ms = 10_000) => child.waitForLine(pattern, ms),
    signal(signal) {
      Deno.kill(child.pid, signal);
    },
    stop: () => child.stop(),
    log: () => child.log(),
    [Symbol.asyncDispose]: async () => {
      await child.stop();
    },
  };
}

function count(args: string[], flag: string): number {
  return args.filter((arg) => arg === flag).length;
}

/** Runs `command args` to its end (killed after `timeoutMs`): exit code, stdout, stderr. */
export async function runToEnd(
  command: string,
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(command, {
    args,
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * `--https`: otter (started with one `--https` listener and a certificate `ca` signed) answers
 * announces over TLS to a client that trusts `ca`, and SIGHUP re-reads the certificate files. Its
 * listener opens with `SO_REUSEPORT`, an unstable Deno option: a start without deno.json's
 * "unstable": ["net"] fails here.
 */
export async function assertHttpsServes(
  launched: LaunchedOtter,
  ca: string,
): Promise<void> {
  const line = await launched.waitForLine(/^HTTPS listening on (https:\/\/\S+)\/announce /);
  const base = /(https:\/\/\S+)\/announce/.exec(line)![1];
  using client = Deno.createHttpClient({ caCerts: [ca] });
  const infoHash = randomHash();
  await httpAnnounce(base, infoHash, 40001, client);
  const second = await httpAnnounce(base, infoHash, 40002, client);
  assert.equal(second["failure reason"], undefined, "HTTPS announce refused");
  assert.deepEqual(compactPeers4(second.peers), ["127.0.0.1:40001"], `HTTPS peers from ${base}`);
  launched.signal("SIGHUP");
  await launched.waitForLine(/^TLS: certificate unchanged \(serial /);
}

/** 20 bytes that differ per call, so tests sharing a tracker do not share swarms. */
export function randomHash(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(20));
}

function percentEncode(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

export function compactPeers4(value: Decoded | undefined): string[] {
  assert.ok(value instanceof Uint8Array, "compact peers");
  const out: string[] = [];
  for (let o = 0; o + 6 <= value.length; o += 6) {
    out.push(
      `${value[o]}.${value[o + 1]}.${value[o + 2]}.${value[o + 3]}:${
        (value[o + 4] << 8) | value[o + 5]
      }`,
    );
  }
  return out;
}

/** One HTTP announce from 127.0.0.1 as a leecher on `port`; the decoded reply. `client` (one
 * trusting a test CA, say) carries an `https://` base's request. */
export async function httpAnnounce(
  base: string,
  infoHash: Uint8Array,
  port: number,
  client?: Deno.HttpClient,
): Promise<{ [key: string]: Decoded }> {
  const query = `info_hash=${percentEncode(infoHash)}&peer_id=-OT0001-${port}abcdefg` +
    `&port=${port}&uploaded=0&downloaded=0&left=1000&event=started&compact=1`;
  const response = await fetch(`${base}/announce?${query}`, {
    signal: AbortSignal.timeout(5000),
    client,
  });
  assert.equal(response.status, 200);
  const reply = bdecode(new Uint8Array(await response.arrayBuffer()));
  assert.ok(typeof reply === "object" && !(reply instanceof Uint8Array) && !Array.isArray(reply));
  return reply;
}

/**
 * Two peers announce over HTTP, then two over UDP (IPv4 listeners only), each to a fresh torrent:
 * the second of each pair must get the first back. `infoHash` lets a caller pick the torrent
 * (e.g. one on a whitelist); by default each protocol gets a random one.
 */
export async function assertAnnounces(
  otter: LaunchedOtter,
  hashes: { http?: Uint8Array; udp?: Uint8Array } = {},
): Promise<void> {
  for (const base of otter.http) {
    const infoHash = hashes.http ?? randomHash();
    const first = await httpAnnounce(base, infoHash, 40001);
    assert.equal(first["failure reason"], undefined, "first HTTP announce refused");
    const second = await httpAnnounce(base, infoHash, 40002);
    assert.equal(second["failure reason"], undefined, "second HTTP announce refused");
    assert.deepEqual(compactPeers4(second.peers), ["127.0.0.1:40001"], `HTTP peers from ${base}`);
    assert.equal(second.incomplete, 2);
  }
  for (const listener of otter.udp) {
    const infoHash = hashes.udp ?? randomHash();
    const client = new UdpTestClient(listener.hostname, listener.port);
    try {
      const connectionId = await client.connect();
      const replies: Uint8Array[] = [];
      for (const port of [41001, 41002]) {
        const reply = await client.request(
          announcePacket({ connectionId, infoHash, port, event: 2, transactionId: port }),
        );
        assert.ok(reply, `UDP announce to ${listener.hostname}:${listener.port}: no reply`);
        assert.equal(readU32(reply, 0), 1, "UDP reply action: announce");
        assert.equal(readU32(reply, 4), port, "UDP transaction id");
        replies.push(reply);
      }
      assert.deepEqual(announcePeers(replies[1], 4), ["127.0.0.1:41001"], "UDP peers");
      assert.equal(readU32(replies[1], 12), 2, "UDP leechers");
    } finally {
      client.close();
    }
  }
}
