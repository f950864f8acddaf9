/**
 * A fake Redis for tests that need a Redis answering what no real one can be made to answer here
 * (an old version, a renamed command, an ACL refusal): a TCP server on 127.0.0.1 that parses RESP
 * commands (arrays of bulk strings) and writes back, in order, whatever raw RESP `answer` returns.
 * `redisLike` answers the connection handshake and the session checks like a Redis 7 with an
 * empty database, and every other command with Redis's own "unknown command" error. An answer
 * may also be a `StreamedReply`, written chunk by chunk (a huge reply, or one split up).
 */

/** A reply written as its chunks come, each awaited before the next. */
export interface StreamedReply {
  chunks: AsyncIterable<Uint8Array>;
}

export type Answer = (
  args: string[],
) => string | StreamedReply | Promise<string | StreamedReply>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const RESP_OK = "+OK\r\n";
export const RESP_NIL = "*-1\r\n";
export const RESP_EMPTY_ARRAY = "*0\r\n";

export function respError(text: string): string {
  return `-${text}\r\n`;
}

/** Redis 7's reply to a command it does not know. */
export function unknownCommand(args: string[]): string {
  const rest = args.slice(1).map((a) => `'${a}' `).join("");
  return respError(`ERR unknown command '${args[0]}', with args beginning with: ${rest}`);
}

function bulk(text: string): string {
  return `$${encoder.encode(text).length}\r\n${text}\r\n`;
}

/**
 * PING, TIME, TYPE (every key "none"), CLIENT, SELECT, INFO (a standalone server), the hash
 * commands on one hash, and the sorted-set and expiry commands (changing nothing) as Redis does;
 * `commands` (upper-case names) on top; anything else unknown.
 */
export function redisLike(commands: Record<string, Answer> = {}): Answer {
  const hash = new Map<string, string>();
  return (args) => {
    const name = args[0].toUpperCase();
    const own = commands[name];
    if (own !== undefined) return own(args);
    switch (name) {
      case "INFO":
        return bulk("# Server\r\nrun_id:fake\r\n# Cluster\r\ncluster_enabled:0\r\n");
      case "HSETNX": {
        if (hash.has(args[2])) return ":0\r\n";
        hash.set(args[2], args[3]);
        return ":1\r\n";
      }
      case "HGETALL":
        return `*${hash.size * 2}\r\n${[...hash].map(([k, v]) => bulk(k) + bulk(v)).join("")}`;
      case "ZADD":
      case "ZREMRANGEBYSCORE":
      case "PEXPIRE":
        return ":0\r\n";
      case "ZREVRANGEBYSCORE":
        return RESP_EMPTY_ARRAY;
      case "GET":
        return "$-1\r\n";
      case "GETRANGE":
        return "$0\r\n\r\n";
      case "PING":
        return "+PONG\r\n";
      case "TIME": {
        const ms = Date.now();
        const seconds = String(Math.floor(ms / 1000));
        const micros = String((ms % 1000) * 1000);
        return `*2\r\n$${seconds.length}\r\n${seconds}\r\n$${micros.length}\r\n${micros}\r\n`;
      }
      case "TYPE":
        return "+none\r\n";
      case "CLIENT":
      case "SELECT":
        return RESP_OK;
      default:
        return unknownCommand(args);
    }
  };
}

/** Parses whole commands from `b`; returns them and how many bytes they used. */
function parseCommands(b: Uint8Array): { commands: string[][]; used: number } {
  const commands: string[][] = [];
  let p = 0;
  const line = (from: number): [string, number] | null => {
    for (let i = from; i + 1 < b.length; i++) {
      if (b[i] === 13 && b[i + 1] === 10) return [decoder.decode(b.subarray(from, i)), i + 2];
    }
    return null;
  };
  outer: for (;;) {
    const head = line(p);
    if (head === null || !head[0].startsWith("*")) break;
    const count = Number(head[0].slice(1));
    let q = head[1];
    const args: string[] = [];
    for (let i = 0; i < count; i++) {
      const size = line(q);
      if (size === null) break outer;
      const length = Number(size[0].slice(1));
      if (size[1] + length + 2 > b.length) break outer;
      args.push(decoder.decode(b.subarray(size[1], size[1] + length)));
      q = size[1] + length + 2;
    }
    commands.push(args);
    p = q;
  }
  return { commands, used: p };
}

export class FakeRedis implements AsyncDisposable {
  /** Every command received, in order. */
  readonly received: string[][] = [];
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #served: Promise<void>;
  #closed = false;

  /** Listens on 127.0.0.1:`port` (0: a free one). */
  constructor(readonly answer: Answer, port = 0) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port });
    this.#served = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async #accept(): Promise<void> {
    const serving: Promise<void>[] = [];
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        break;
      }
      this.#conns.add(conn);
      serving.push(this.#serve(conn));
    }
    await Promise.allSettled(serving);
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    let pending = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) break;
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(chunk.subarray(0, n), pending.length);
        const { commands, used } = parseCommands(joined);
        pending = joined.slice(used);
        for (const args of commands) {
          this.received.push(args);
          const answer = await this.answer(args);
          const chunks = typeof answer === "string" ? [encoder.encode(answer)] : answer.chunks;
          for await (const reply of chunks) {
            let done = 0;
            while (done < reply.length) done += await conn.write(reply.subarray(done));
          }
        }
      }
    } catch {
      // Closed by the client or by close().
    } finally {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Names (upper-case) of the commands received so far. */
  get names(): string[] {
    return this.received.map((args) => args[0].toUpperCase());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#served;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
