/**
 * A child process for tests whose stdout and stderr are drained for its whole life (so it never
 * blocks on a full pipe) and kept as text: stdout as lines to wait on, both together as a log to
 * show when a test fails. `stop()` sends a signal and SIGKILLs after a grace period.
 */

/** Keeps the tail of each stream only, so a chatty child cannot grow the test's memory. */
const KEEP_CHARS = 1 << 20;
const KEEP_LINES = 10_000;

export interface ChildOptions {
  /** Names the child in error messages; default `command`. */
  name?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Called with each stdout line as it arrives. */
  onLine?: (line: string) => void;
}

export interface Stopped {
  /** Exit code; 128 + signal number when a signal ended it (Deno's convention). */
  code: number;
  /** The signal that ended it, or null. */
  signal: Deno.Signal | null;
  stderr: string;
}

export interface Child {
  /** `options.name`, or the command. */
  name: string;
  pid: number;
  /** Every stdout line so far. */
  lines: string[];
  /** Everything written on stderr so far (its tail). */
  readonly stderr: string;
  /** Resolves when the child has exited and both streams are drained. */
  exited: Promise<Deno.CommandStatus>;
  /** Resolves once `condition()` holds, checked now and after each stdout line; rejects after
   * `ms` or when the child exits first. `what` names the condition in the rejection. */
  waitUntil(condition: () => boolean, ms: number, what: string): Promise<void>;
  /** The first stdout line (past or future) matching `pattern`, as `waitUntil`. */
  waitForLine(pattern: RegExp, ms: number): Promise<string>;
  /** stdout and stderr, for failure messages. */
  log(): string;
  /** Sends `signal` (default SIGTERM), SIGKILLs after `graceMs` (default 5000). Idempotent. */
  stop(signal?: Deno.Signal, graceMs?: number): Promise<Stopped>;
}

export function spawnChild(command: string, args: string[], options: ChildOptions = {}): Child {
  const process = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const name = options.name ?? command;
  const lines: string[] = [];
  let stderr = "";
  const waiters = new Set<() => void>();
  let dropped = 0;

  const stdoutDone = pumpLines(process.stdout, (line) => {
    lines.push(line);
    if (lines.length > KEEP_LINES) {
      lines.shift();
      dropped++;
    }
    options.onLine?.(line);
    for (const wake of waiters) wake();
  });
  const stderrDone = pumpText(process.stderr, (chunk) => {
    stderr = (stderr + chunk).slice(-KEEP_CHARS);
  });
  let done = false;
  const exited = Promise.all([process.status, stdoutDone, stderrDone]).then(([status]) => {
    done = true;
    for (const wake of waiters) wake();
    return status;
  });

  let stopping: Promise<Stopped> | undefined;
  const child: Child = {
    name,
    pid: process.pid,
    lines,
    get stderr() {
      return stderr;
    },
    exited,
    waitUntil(condition, ms, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const met = condition();
          if (!met && !done) return;
          waiters.delete(check);
          clearTimeout(timer);
          if (met) resolve();
          else reject(new Error(`${name} exited before ${what}`));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${name}: no ${what} within ${ms} ms`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    async waitForLine(pattern, ms) {
      let found: string | undefined;
      await child.waitUntil(
        () => (found = lines.find((line) => pattern.test(line))) !== undefined,
        ms,
        `line matching ${pattern}`,
      );
      return found!;
    },
    log() {
      const skipped = dropped ? `(${dropped} earlier lines dropped)\n` : "";
      return `${skipped}${lines.join("\n")}\n--- stderr ---\n${stderr}`;
    },
    stop(signal = "SIGTERM", graceMs = 5000) {
      stopping ??= (async () => {
        try {
          process.kill(signal);
        } catch { /* already exited */ }
        const timer = setTimeout(() => {
          try {
            process.kill("SIGKILL");
          } catch { /* exited meanwhile */ }
        }, graceMs);
        const status = await exited;
        clearTimeout(timer);
        return { code: status.code, signal: status.signal, stderr };
      })();
      return stopping;
    },
  };
  return child;
}

async function pumpText(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) onText(chunk);
}

async function pumpLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  let partial = "";
  await pumpText(stream, (chunk) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const line of parts) onLine(line.replace(/\r$/, ""));
  });
  if (partial) onLine(partial);
}
