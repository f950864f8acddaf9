/**
 * A throw-away redis-server for tests: no persistence, one loopback port, stopped by PID.
 * `haveRedisServer()` tells whether the Debian binary is installed (tests skip with one line
 * when it is not; CI installs it).
 */

export async function haveRedisServer(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("redis-server", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A redis-server child process without persistence, on one loopback port. */
export class RedisServer {
  #child: Deno.ChildProcess | null = null;
  constructor(readonly port = freePort()) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--bind",
        "127.0.0.1",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = performance.now() + 30_000;
    for (;;) {
      // Its own process must answer: when this port was taken meanwhile (a restart after a
      // stop leaves it free for a while), another server may be listening there.
      if (await this.#answersAs(child.pid)) return;
      if (exited) throw new Error(`redis-server exited at start: is port ${this.port} taken?`);
      if (performance.now() > deadline) throw new Error("redis-server did not start");
      await sleep(20);
    }
  }

  /** Whether the server on the port answers INFO with process id `pid`. */
  async #answersAs(pid: number): Promise<boolean> {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
      try {
        await conn.write(new TextEncoder().encode("INFO server\r\n"));
        const reply = new Uint8Array(4096);
        let text = "";
        while (!/\r\nprocess_id:\d+\r\n/.test(text) && text.length < reply.length) {
          const n = await conn.read(reply);
          if (n === null) return false;
          text += new TextDecoder().decode(reply.subarray(0, n));
        }
        return text.includes(`\r\nprocess_id:${pid}\r\n`);
      } finally {
        conn.close();
      }
    } catch {
      return false;
    }
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the server: it keeps its port but stops answering. */
  signal(signal: "SIGSTOP" | "SIGCONT"): void {
    this.#child?.kill(signal);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited already (it could not bind its port)
    }
    await child.status;
  }
}
