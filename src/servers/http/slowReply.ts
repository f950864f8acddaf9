/**
 * Replies through `HttpTracker.handle` (everything but the hot announce and scrape: 404s, /stats,
 * /metrics, the full scrape, the dashboard), written by replyWriter.ts with the send deadlines the
 * server's sweeper enforces: a client taking nothing is cut after the idle timeout, one reading a
 * big reply below `--min-send-rate` soon after (`sendDeadline`).
 */
import type { HttpTracker } from "./httpTracker.ts";
import { REFUSALS, writeResponse } from "./replyWriter.ts";
import { type Connection, type SlowRequest, writeAll } from "./wireConnection.ts";

/** The part of the server's limits (httpWire.ts `HttpLimits`) a reply's deadlines use. */
export interface SendLimits {
  idleTimeoutMs: number;
  minSendRate: number;
}

/**
 * When the sweeper cuts a connection sending a reply: `idleTimeoutMs` after the write in progress
 * began (a client taking nothing), or once the reply's average rate since `replyStart` falls below
 * `minSendRate` bytes a second, after a grace of `idleTimeoutMs` (a client reading a big reply a
 * little at a time, each piece in time, would otherwise hold its connection for hours). Bytes
 * count when handed to the kernel, whose buffers take a few MB at once: a client that stops
 * reading is cut after the idle timeout, one that reads below the rate after about
 * `idleTimeoutMs + buffered / minSendRate`.
 */
export function sendDeadline(
  replyStart: number,
  writeStart: number,
  queuedBytes: number,
  idleTimeoutMs: number,
  minSendRate: number,
): number {
  return Math.min(
    writeStart + idleTimeoutMs,
    replyStart + idleTimeoutMs + queuedBytes * 1000 / minSendRate,
  );
}

/** A `Deno.ServeHandlerInfo` whose `completed` the writer settles. */
interface Completion {
  info: Deno.ServeHandlerInfo<Deno.NetAddr>;
  resolve: () => void;
  reject: (reason: unknown) => void;
}

function completion(remoteAddr: Deno.NetAddr): Completion {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // Like Deno.serve's: a failed send rejects it, which must not crash a process nobody awaits it in.
  promise.catch(() => {});
  return { info: { remoteAddr, completed: promise }, resolve, reject };
}

/** Answers a request through `tracker.handle`; false when the connection must close. */
export async function answerSlow(
  connection: Connection,
  slow: SlowRequest,
  tracker: HttpTracker,
  limits: SendLimits,
  /** Whether the server is shutting down, asked once the handler has answered. */
  stopping: () => boolean,
): Promise<boolean> {
  const { request, isHead, http10 } = slow;
  let keepAlive = slow.keepAlive;
  const done = completion(connection.conn.remoteAddr as Deno.NetAddr);
  let response: Response;
  connection.deadline = Infinity; // our own handler's time is not the client's fault
  try {
    response = await tracker.handle(request, done.info);
  } catch (error) {
    done.reject(error);
    tracker.serverCounters.reject(500);
    await writeAll(connection.conn, REFUSALS.get(500)!);
    return false;
  }
  connection.replyStart = performance.now();
  connection.replyQueued = 0;
  connection.deadline = connection.replyStart + limits.idleTimeoutMs;
  keepAlive &&= !stopping();
  if (!connection.noDelay) {
    // Streamed replies take several writes: do not let Nagle hold the later ones back.
    connection.setNoDelay();
  }
  try {
    const send = (bytes: Uint8Array) => writeChunk(connection, bytes, limits);
    const open = await writeResponse(send, response, isHead, http10, keepAlive);
    done.resolve();
    return open;
  } catch (error) {
    done.reject(new Deno.errors.Interrupted(String(error)));
    throw error;
  } finally {
    connection.rateDeadline = Infinity;
  }
}

async function writeChunk(
  connection: Connection,
  bytes: Uint8Array,
  limits: SendLimits,
): Promise<void> {
  connection.replyQueued += bytes.length;
  connection.rateDeadline = sendDeadline(
    connection.replyStart,
    Infinity,
    connection.replyQueued,
    limits.idleTimeoutMs,
    limits.minSendRate,
  );
  connection.deadline = sendDeadline(
    connection.replyStart,
    performance.now(),
    connection.replyQueued,
    limits.idleTimeoutMs,
    limits.minSendRate,
  );
  await writeAll(connection.conn, bytes);
}
