/**
 * Starts otter as a real child process for tests: `deno run --allow-all <repo>/main.ts ...args`,
 * waits until it has printed one "listening" line per `--http`/`--udp` flag, and hands back the
 * addresses it printed. Output is drained for the child's whole life (see child.ts); `stop()`
 * ends it (SIGKILL after 5 s) and returns its exit code and stderr.
 *
 * ```ts
 * await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "[::1]:0"]);
 * const reply = await fetch(`${otter.http[0]}/announce?...`);
 * ```
 */
import { spawnChild, type Stopped } from "./child.ts";

export type { Stopped } from "./child.ts";

const repoRoot = new URL("../../", import.meta.url);
const mainPath = new URL("main.ts", repoRoot).pathname;
const configPath = new URL("deno.json", repoRoot).pathname;

export interface UdpListener {
  /** As printed, without brackets: "127.0.0.1" or "::1". */
  hostname: string;
  port: number;
  /** The UDP I/O path otter reported: "fast" (FFI) or "portable". */
  io: string;
  /** I/O workers otter reported (`--workers`); 1 when the line names none. */
  workers: number;
}

export interface StartOptions {
  /** How long to wait for every listener line; default 20 000 ms. */
  timeoutMs?: number;
  /** Expected listener lines; default: one per `--http` and `--udp` flag in `args`, and one for
   * a kind with no flag (otter then listens on its default, [::]:6969; tests running in
   * parallel should pass both flags to stay off that shared port). */
  expect?: { http: number; udp: number; https?: number };
  /** Extra environment variables for the child. */
  env?: Record<string, string>;
  /** Working directory of the child; default the repository root. */
  cwd?: string;
}

export interface OtterProcess extends AsyncDisposable {
  /** HTTP base URLs in listener order, e.g. "http://127.0.0.1:41234" or "http://[::1]:41234". */
  http: string[];
  /** `--https` base URLs in listener order, e.g. "https://127.0.0.1:41235". */
  https: string[];
  /** UDP listeners in listener order. */
  udp: UdpListener[];
  /** Every stdout line so far (grows while otter runs). */
  stdout: string[];
  /** Everything otter wrote on stderr so far (its last MiB). */
  readonly stderr: string;
  pid: number;
  /** Resolves when otter has exited, by itself or stopped. */
  exited: Promise<Deno.CommandStatus>;
  /** The first stdout line (past or future) matching `pattern`; rejects after `ms` or when otter
   * exits first. */
  waitForLine(pattern: RegExp, ms: number): Promise<string>;
  /** Sends `signal` (default SIGTERM), SIGKILLs after 5 s. Safe to call more than once. */
  stop(signal?: Deno.Signal): Promise<Stopped>;
}

const HTTP_LINE = /^HTTP listening on (http:\/\/(?:\[[^\]]+\]|[^/:]+):\d+)\/announce$/;
const HTTPS_LINE = /^HTTPS listening on (https:\/\/(?:\[[^\]]+\]|[^/:]+):\d+)\/announce /;
const UDP_LINE =
  /^UDP listening on udp:\/\/(\[[^\]]+\]|[^/:]+):(\d+)\/announce \(io: (\w+)(?:, workers: (\d+))?\)$/;

/** Spawns otter with `args` and resolves once all its listeners are up; throws (with otter's
 * output) if they are not up within the timeout or otter exits first. */
export async function startOtter(
  args: string[],
  options: StartOptions = {},
): Promise<OtterProcess> {
  const expect = options.expect ??
    { http: listeners(args, "--http"), udp: listeners(args, "--udp") };
  const http: string[] = [];
  const https: string[] = [];
  const expectHttps = expect.https ?? args.filter((a) => a === "--https").length;
  const udp: UdpListener[] = [];
  const child = spawnChild(
    Deno.execPath(),
    ["run", "--allow-all", "--config", configPath, mainPath, ...args],
    {
      name: "otter",
      cwd: options.cwd ?? repoRoot.pathname,
      env: options.env,
      onLine(line) {
        const h = HTTP_LINE.exec(line);
        if (h) http.push(h[1]);
        const s = HTTPS_LINE.exec(line);
        if (s) https.push(s[1]);
        const u = UDP_LINE.exec(line);
        if (u) {
          udp.push({
            hostname: u[1].replace(/^\[|\]$/g, ""),
            port: Number(u[2]),
            io: u[3],
            workers: u[4] === undefined ? 1 : Number(u[4]),
          });
        }
      },
    },
  );

  const timeoutMs = options.timeoutMs ?? 20_000;
  try {
    await child.waitUntil(
      () => http.length >= expect.http && udp.length >= expect.udp && https.length >= expectHttps,
      timeoutMs,
      `${expect.http} HTTP, ${expectHttps} HTTPS and ${expect.udp} UDP listener lines`,
    );
  } catch (e) {
    const stopped = await child.stop("SIGKILL");
    throw new Error(
      `startOtter(${args.join(" ")}): ${(e as Error).message} (exit code ${stopped.code})\n` +
        `--- stdout ---\n${child.log()}`,
    );
  }

  return {
    http,
    https,
    udp,
    stdout: child.lines,
    get stderr() {
      return child.stderr;
    },
    pid: child.pid,
    exited: child.exited,
    waitForLine: (pattern, ms) => child.waitForLine(pattern, ms),
    stop: (signal) => child.stop(signal),
    [Symbol.asyncDispose]: async () => {
      await child.stop();
    },
  };
}

/** Listener lines `flag` brings: one per use, or otter's one default listener when unused. */
function listeners(args: string[], flag: string): number {
  return args.filter((arg) => arg === flag || arg.startsWith(`${flag}=`)).length || 1;
}

/** A TCP port that was free on `hostname` a moment ago (bind port 0, read it back, close). */
export function freeTcpPort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A UDP port that was free on `hostname` a moment ago. */
export function freeUdpPort(hostname = "127.0.0.1"): number {
  const socket = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
  const { port } = socket.addr as Deno.NetAddr;
  socket.close();
  return port;
}

/**
 * A port free for both TCP and UDP on `hostname`, for peers that use one number for both
 * (BitTorrent clients listen on TCP and send UDP tracker requests from the same port).
 */
export function freeTcpUdpPort(hostname = "127.0.0.1"): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = freeTcpPort(hostname);
    try {
      Deno.listenDatagram({ hostname, port, transport: "udp" }).close();
      return port;
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    }
  }
  throw new Error(`no port free for both TCP and UDP on ${hostname}`);
}

/** Runs otter to its end (for flags that exit: --help, bad values, …) and returns its output. */
export async function runOtter(
  args: string[],
  timeoutMs = 15000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", mainPath, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
