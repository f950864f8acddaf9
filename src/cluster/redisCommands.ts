/**
 * What the cluster sync asks Redis outside its publish and read loops, and how it sends anything:
 * every command has a reply deadline (node-redis's own timeout covers only the wait to be written,
 * so a server that accepts and never answers would hang a session); a reply saying Redis cannot
 * run a command (too old, renamed away, forbidden to our user) is a RedisUnsupportedError, found
 * at connect by trying each stream command in a form that changes nothing; the offset to Redis's
 * clock; the order of stream ids.
 */
import type { Buffer } from "node:buffer";
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import { BATCH_FIELD } from "./batchGate.ts";
import { StreamReaderConnection } from "./streamReader.ts";

/** The slice of a node-redis client this module uses. */
export interface RedisConnection {
  connect(): Promise<unknown>;
  sendCommand(args: ReadonlyArray<string | Buffer>): Promise<unknown>;
  destroy(): void;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/** Streams came in 5.0, XADD's MINID trimming in 6.2. */
export const MIN_REDIS_VERSION = "6.2";

/** Redis lacks a command (or an option) the sync needs, or forbids it to this user. */
export class RedisUnsupportedError extends Error {}

/** Redis's answer as one short printable line, for a log line. */
export function quoteReply(text: string): string {
  const line = text.replace(/[^\x20-\x7e]+/g, "?");
  return JSON.stringify(line.length > 160 ? `${line.slice(0, 160)}…` : line);
}

/** The error for a reply saying `command` cannot be used here, or null for any other failure. */
function unsupported(command: string, error: unknown): RedisUnsupportedError | null {
  if (!(error instanceof ErrorReply)) return null;
  const text = error.message;
  if (/^ERR unknown command/i.test(text)) {
    return new RedisUnsupportedError(
      `it has no ${command} command (Redis said ${quoteReply(text)}); ` +
        `the cluster sync needs Redis ${MIN_REDIS_VERSION} or newer`,
    );
  }
  if (/^NOPERM/.test(text)) {
    return new RedisUnsupportedError(
      `its user may not run ${command} (Redis said ${quoteReply(text)}); the cluster sync ` +
        "needs TIME, TYPE, XADD, XREAD, XREVRANGE, PEXPIRE, the hash, sorted-set and string " +
        "commands, and EVAL on its keys (otter:{NAME...}*), and INFO",
    );
  }
  return null;
}

/**
 * Rejects if `promise` takes longer than `ms`, and then destroys `connections`. (node-redis's
 * own command timeout only covers the wait to be written, not the wait for the reply, so a
 * server that accepts and never answers would hang us without this.)
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  ...connections: { destroy(): void }[]
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`no reply within ${ms} ms`));
      for (const connection of connections) connection.destroy();
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Sends one command, which must be answered within `ms`; a reply saying Redis cannot run it
 * rejects with RedisUnsupportedError.
 */
export function send(
  connection: RedisConnection | StreamReaderConnection,
  ms: number,
  args: ReadonlyArray<string | Buffer>,
): Promise<unknown> {
  const reply = connection instanceof StreamReaderConnection
    ? connection.sendCommand(args as ReadonlyArray<string>)
    : connection.sendCommand(args);
  return withTimeout(reply, ms, connection).catch((error) => {
    throw unsupported(String(args[0]), error) ?? error;
  });
}

/**
 * Tries each stream command the sync sends, in a form that changes nothing, so that a Redis
 * lacking one is found now rather than at the first publish. Other refusals (out of memory,
 * loading, a read-only replica) may pass, so they are left to the real commands.
 */
export async function checkCommands(
  writer: RedisConnection,
  key: string,
  ms: number,
): Promise<void> {
  // XADD with the ID 0-0 is refused once its arguments are parsed, before the key is touched.
  // A Redis before 6.2 takes MINID for the ID and calls it invalid.
  const xadd = ["XADD", key, "MINID", "~", "0", "0-0", BATCH_FIELD, ""];
  const probes = [
    xadd,
    ["XREAD", "COUNT", "1", "STREAMS", key, "$"],
    ["XREVRANGE", key, "0-1", "0-2"],
  ];
  for (const args of probes) {
    try {
      await send(writer, ms, args);
    } catch (error) {
      if (!(error instanceof ErrorReply)) throw error;
      if (args === xadd && /invalid stream id|syntax error/i.test(error.message)) {
        throw new RedisUnsupportedError(
          `its XADD has no MINID option (Redis said ${quoteReply(error.message)}); ` +
            `the cluster sync needs Redis ${MIN_REDIS_VERSION} or newer`,
        );
      }
    }
  }
}

/** A key of another type would fail every XADD and XREAD: refuse to start the session. */
export async function checkStreamKey(
  writer: RedisConnection,
  key: string,
  ms: number,
): Promise<void> {
  const type = String(
    await send(writer, ms, ["TYPE", key]),
  );
  if (type !== "none" && type !== "stream") {
    throw new Error(`key ${key} holds a ${type}, not a stream`);
  }
}

/**
 * Redis's clock minus our monotonic one (performance.now()), in milliseconds, from TIME taken
 * halfway through its round trip.
 */
export async function redisClockOffsetMs(writer: RedisConnection, ms: number): Promise<number> {
  const sent = performance.now();
  const reply = await send(writer, ms, ["TIME"]);
  const received = performance.now();
  if (!Array.isArray(reply) || reply.length !== 2) throw new Error("unexpected TIME reply");
  const redisMs = Number(String(reply[0])) * 1000 + Math.floor(Number(String(reply[1])) / 1000);
  if (!Number.isFinite(redisMs)) throw new Error("unexpected TIME reply");
  return redisMs - (sent + received) / 2;
}

/** Orders two stream ids `ms-seq`. */
export function compareStreamIds(a: string, b: string): number {
  const aDash = a.indexOf("-");
  const bDash = b.indexOf("-");
  const aMs = Number(aDash < 0 ? a : a.slice(0, aDash));
  const bMs = Number(bDash < 0 ? b : b.slice(0, bDash));
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  const aSeq = aDash < 0 ? 0 : Number(a.slice(aDash + 1));
  const bSeq = bDash < 0 ? 0 : Number(b.slice(bDash + 1));
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}

/** An error as one line for the log. */
export function errorLine(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}
