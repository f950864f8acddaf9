/**
 * otter's own HTTP/1.1 server on a TCP listener, made for tracker traffic and for the bounds that
 * `Deno.serve` does not offer: a cap on open connections, a header-read timeout, an idle timeout
 * for keep-alive connections, and an 8 KiB cap on a request's head. This file is the connections'
 * lifecycle and limits; heads are parsed by requestHead.ts, replies framed by replyWriter.ts, and
 * a connection's state and the pooled buffers are in wireConnection.ts. It serves a plain
 * listener (the TCP fast path of servers/tcp, or `Deno.listen`: `--tcp-io`) or an `--https` one
 * (tlsListener.ts), whose TLS connections take exactly the same path.
 *
 * Per connection, requests are read into a pooled buffer and their heads parsed from bytes.
 * GET/HEAD /announce and /scrape are answered straight from those bytes through
 * `HttpTracker.answerWire`, with no Request or Response object. Everything else (404s, 405s,
 * /stats, /metrics, the full scrape, …) is turned into a `Request` for `HttpTracker.handle`, and
 * its `Response` written out (slowReply.ts) with Content-Length, chunked transfer encoding, or
 * (HTTP/1.0) until close.
 *
 * Pipelined requests are answered in order, their replies gathered into one write. A bad head is
 * answered 400, a request line over the cap 414, a head over it 431, HTTP/2+ 505, each followed by
 * a close. A request body (only methods that get 405 have one) is skipped when it is small and
 * declared with Content-Length; otherwise the connection closes after the reply.
 *
 * Timeouts are checked by one timer per server every quarter second, against a clock read once
 * per accept, per read and per tick: a new connection and a started request must deliver a whole
 * head within `headerTimeoutMs`; a connection waiting between requests, or a client not taking our
 * reply, is closed after `idleTimeoutMs`, and a reply through `handle()` (a full scrape, say) must
 * also keep an average of `minSendRate` (`sendDeadline`). Beyond `maxConnections`, or
 * `maxConnectionsPerIp` from one address (an IPv6 /64; trusted proxies exempt), new connections
 * are accepted and closed at once. Each of these, and every request turned away, is counted in the
 * HttpTracker's `serverCounters` (for /metrics and /stats). A client that does not take its
 * replies holds only their unsent bytes: the pooled reply buffer goes back while the write waits.
 *
 * A WebSocket upgrade on `/announce` or `/` (webSocketUpgrade.ts) ends the connection's HTTP life:
 * once the replies before it are written, the socket, the bytes after the head and the
 * per-address slot go to the WebSocket server (`HttpTracker.upgrades`), and the connection no
 * longer counts here.
 */
import { formatHostPort } from "../../protocol/ipAddress.ts";
import type { HttpServerCounters } from "../../observe/httpServerCounters.ts";
import { addressKey } from "../../policy/connectionsPerAddress.ts";
import { type HttpTracker, MAX_REQUEST_BYTES } from "./httpTracker.ts";
import {
  Connection,
  type OutBuffer,
  WireBuffers,
  type WireConn,
  writeAll,
} from "./wireConnection.ts";
import {
  CR,
  findHeadEnd,
  LF,
  M_HEAD,
  oversizeStatus,
  parseHead,
  requestFromHead,
  RequestHead,
  ROUTE_OTHER,
  ROUTE_SCRAPE,
} from "./requestHead.ts";
import { checkWebSocketUpgrade, isUpgradeRequest } from "./webSocketUpgrade.ts";
import { answerSlow } from "./slowReply.ts";
import { FastTcpListener, type TcpIo, useFastTcp } from "../tcp/tcpFastListener.ts";
import { END_CLOSE, END_KEEP_ALIVE, END_PLAIN, REFUSALS, writeHotReply } from "./replyWriter.ts";

export interface HttpLimits {
  /** Most open connections; further ones are accepted and closed at once. */
  maxConnections: number;
  /** Most open connections from one address (IPv6: one /64), trusted proxies aside; 0: no cap. */
  maxConnectionsPerIp: number;
  /** A head must arrive within this many ms of a request's first byte (or of the accept). */
  headerTimeoutMs: number;
  /** A connection with no request in progress is closed after this many ms. */
  idleTimeoutMs: number;
  /** Least average rate, in bytes a second, at which a reply must go out (see `sendDeadline`). */
  minSendRate: number;
}

/** What the server accepts connections from: a plain listener (servers/tcp's or `Deno.listen`'s),
 * or an `--https` one (tlsListener.ts), whose connections then take exactly the same path. */
export interface WireListener {
  readonly addr: Deno.Addr;
  accept(): Promise<WireConn>;
  close(): void;
  /** The TCP fast path's: resolves when the listener and every connection it accepted (those
   *  handed to the WebSocket server too) are closed, with no FFI call left pending. */
  readonly drained?: Promise<void>;
}

const SWEEP_MS = 250;
/** How long `shutdown` lets requests in progress finish before it closes their connections. */
const SHUTDOWN_GRACE_MS = 5000;
/** Bodies up to this size (declared by Content-Length) are read and dropped to keep the connection. */
const MAX_SKIPPED_BODY = 65536;
/** Room for a hot reply's status line and headers. */
const HEAD_ROOM = 128;

/** What `#answerHot` asks its caller to do next. */
const NEXT_READ = 0;
const NEXT_CLOSE = 1;
const NEXT_SLOW = 2;
const NEXT_FLUSH = 3;
const NEXT_UPGRADE = 4;

export class HttpWireServer {
  readonly addr: Deno.NetAddr;
  /** Refused and timed-out connections, turned-away requests: the HttpTracker's, so shared by
   * every server over it (/metrics shows one total). */
  /** Read by a slow reply once its handler has answered (slowReply.ts). */
  readonly #isStopping = (): boolean => this.#stopping;
  readonly counters: HttpServerCounters;
  readonly #listener: WireListener;
  readonly #tracker: HttpTracker;
  readonly #limits: HttpLimits;
  readonly #connections = new Set<Connection>();
  readonly #head = new RequestHead();
  readonly #buffers: WireBuffers;
  /** Space one more hot reply may need at the end of an out buffer. */
  readonly #replyRoom: number;
  readonly #sweeper: ReturnType<typeof setInterval>;
  #now = performance.now();
  #stopping = false;
  #drained: (() => void) | null = null;
  readonly #accepting: Promise<void>;

  /**
   * Listens on hostname:port (throws like `Deno.listen`) and starts serving: through the TCP fast
   * path (servers/tcp, epoll over FFI) when `io` asks for it or, "auto", where it is available
   * and `hostname` is a literal address; else `Deno.listen`.
   */
  static listen(
    hostname: string,
    port: number,
    tracker: HttpTracker,
    limits: HttpLimits,
    io: TcpIo = "auto",
  ): HttpWireServer {
    const listener = useFastTcp(io, hostname)
      ? FastTcpListener.listen(hostname, port)
      : Deno.listen({ hostname, port, transport: "tcp" });
    return new HttpWireServer(listener, tracker, limits);
  }

  /** Serves connections from `listener` (an `--https` one, say); closes it on shutdown. */
  static serve(listener: WireListener, tracker: HttpTracker, limits: HttpLimits): HttpWireServer {
    return new HttpWireServer(listener, tracker, limits);
  }

  private constructor(listener: WireListener, tracker: HttpTracker, limits: HttpLimits) {
    this.#listener = listener;
    this.addr = listener.addr as Deno.NetAddr;
    this.#tracker = tracker;
    this.counters = tracker.serverCounters;
    this.#limits = limits;
    this.#replyRoom = HEAD_ROOM + tracker.wireBody.length;
    this.#buffers = new WireBuffers(Math.max(16384, 2 * this.#replyRoom));
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#accepting = this.#acceptLoop();
  }

  /** "fast" on the TCP fast path, else "portable" (Deno's sockets, TLS included). */
  get io(): "fast" | "portable" {
    return this.#listener instanceof FastTcpListener ? "fast" : "portable";
  }

  /**
   * Resolves once the listener and every connection it accepted are closed (on the fast path;
   * at once on Deno's sockets, whose ops end with them). Await it after `shutdown()` and the
   * WebSocket server's, which may still hold upgraded connections.
   */
  get drained(): Promise<void> {
    return this.#listener.drained ?? Promise.resolve();
  }

  /** Open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Pooled reply buffers taken by connections now (none is kept while a write waits). */
  get outBuffersInUse(): number {
    return this.#buffers.outsInUse;
  }

  /**
   * Stops accepting, closes idle connections, lets requests in progress finish (answered with
   * Connection: close) for up to 5 s, then closes whatever is left.
   */
  async shutdown(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      for (const connection of this.#connections) if (!connection.busy) connection.close();
    }
    await this.#accepting;
    if (this.#connections.size > 0) {
      const drained = new Promise<void>((resolve) => this.#drained = resolve);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS));
      await Promise.race([drained, grace]);
      clearTimeout(timer);
      for (const connection of this.#connections) connection.close();
      if (this.#connections.size > 0) await drained;
    }
    clearInterval(this.#sweeper);
  }

  #sweep(): void {
    const now = this.#now = performance.now();
    for (const connection of this.#connections) {
      if (connection.deadline <= now && !connection.closed) {
        // Waiting for a head (new, or mid-request) is the header timeout; idle between requests
        // or busy writing a reply the client does not take is the idle one; a reply going out
        // below --min-send-rate is the send one.
        if (connection.rateDeadline <= now) this.counters.sendTimeouts++;
        else if (connection.idle || connection.busy) this.counters.idleTimeouts++;
        else this.counters.headerTimeouts++;
        connection.close();
      }
    }
  }

  async #acceptLoop(): Promise<void> {
    const listener = this.#listener;
    while (!this.#stopping) {
      let conn: WireConn;
      try {
        conn = await listener.accept();
      } catch {
        if (this.#stopping) return;
        // Out of file descriptors or the like: back off instead of spinning on the error.
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (this.#connections.size >= this.#limits.maxConnections || this.#stopping) {
        this.counters.refused++;
        try {
          conn.close();
        } catch {
          // The client gave up first.
        }
        continue;
      }
      this.#now = performance.now();
      const input = this.#buffers.takeInput();
      const connection = new Connection(conn, input, this.#now + this.#limits.headerTimeoutMs);
      const perIp = this.#limits.maxConnectionsPerIp;
      // A trusted proxy carries many clients: it is held to --max-connections only.
      if (perIp > 0 && !this.#tracker.trustsProxy(connection.family, connection.address)) {
        const key = addressKey(connection.family, connection.address);
        if (!this.#tracker.connectionsPerAddress.tryOpen(key, perIp)) {
          this.counters.refusedPerIp++;
          this.#buffers.giveInput(input);
          connection.close();
          continue;
        }
        connection.addressKey = key;
      }
      this.#connections.add(connection);
      this.counters.open++;
      this.#serve(connection);
    }
  }

  async #serve(connection: Connection): Promise<void> {
    let out: OutBuffer | null = null;
    try {
      reading: while (!connection.closed) {
        if (connection.filled === connection.input.length) this.#buffers.growInput(connection);
        const n = await connection.conn.read(
          connection.filled === 0 ? connection.input : connection.input.subarray(connection.filled),
        );
        if (n === null) break;
        // One clock read a read: the sweeper's tick alone goes stale when timers run late.
        this.#now = performance.now();
        if (connection.idle) {
          connection.idle = false;
          connection.deadline = this.#now + this.#limits.headerTimeoutMs;
        }
        connection.filled += n;
        connection.busy = true;
        out = this.#buffers.takeOut();
        for (;;) {
          const next = this.#answerHot(connection, out);
          if (out.length > 0) {
            if (!connection.noDelay && next !== NEXT_CLOSE) {
              // A connection that stays open may get its next request before the client has
              // acknowledged this reply; with Nagle on, that reply would wait for the client's
              // delayed ACK (40 ms). Once per connection, and never for one-shot connections.
              connection.setNoDelay();
            }
            // Inlined #flush: the usual reply goes out in one write, with no extra promises.
            connection.deadline = this.#now + this.#limits.idleTimeoutMs;
            const length = out.length;
            out.length = 0;
            const written = connection.congested
              ? 0
              : await connection.conn.write(out.bytes.subarray(0, length));
            if (written < length) {
              // The client is behind: keep only the unsent bytes, in a slice of their size, and
              // give the pooled buffer (up to two max-numwant replies) back while the write
              // waits. A write that finds no room waits holding what it was given, so from now on
              // this connection's replies are copied before they are written.
              connection.congested = true;
              const unsent = out.bytes.slice(written, length);
              this.#buffers.returnOut(out);
              out = null;
              await this.#writeUnsent(connection, unsent);
              out = this.#buffers.takeOut();
            }
          }
          if (next === NEXT_READ) break;
          if (next === NEXT_CLOSE) break reading;
          if (next === NEXT_UPGRADE) {
            this.#handOver(connection);
            break reading;
          }
          if (next === NEXT_SLOW) {
            const slow = connection.slow!;
            connection.slow = null;
            // A reply through handle() can take minutes (a full scrape read slowly): it needs
            // no pooled buffer meanwhile.
            this.#buffers.returnOut(out);
            out = null;
            if (
              !(await answerSlow(connection, slow, this.#tracker, this.#limits, this.#isStopping))
            ) {
              break reading;
            }
            out = this.#buffers.takeOut();
          }
        }
        this.#buffers.returnOut(out);
        out = null;
        this.#afterAnswers(connection);
        connection.busy = false;
        if (this.#stopping && connection.filled === 0) break;
      }
    } catch {
      // A reset, or a close by the sweeper or shutdown: nothing to answer.
    } finally {
      if (out !== null) this.#buffers.returnOut(out);
      this.#release(connection);
    }
  }

  /** Writes replies a slow client has not taken yet, counted while they wait. */
  async #writeUnsent(connection: Connection, unsent: Uint8Array): Promise<void> {
    const counters = this.counters;
    counters.pendingWrites++;
    counters.pendingWriteBytes += unsent.length;
    try {
      await writeAll(connection.conn, unsent);
    } finally {
      counters.pendingWrites--;
      counters.pendingWriteBytes -= unsent.length;
    }
  }

  /** Gives an upgraded connection to the WebSocket server (its replies so far are written). */
  #handOver(connection: Connection): void {
    // Offers and answers are small writes a client waits for: no Nagle, as for kept-open HTTP
    // connections (a TLS connection offers no way to turn it off). Before the socket changes
    // hands, so a reset that throws here leaves it this server's to close.
    if (!connection.noDelay) connection.setNoDelay();
    const leftover = connection.input.slice(connection.start, connection.filled);
    connection.upgraded = true;
    const key = connection.addressKey;
    connection.addressKey = null;
    this.#tracker.upgrades!.adopt(
      connection.conn,
      leftover,
      connection.upgradeAccept,
      { family: connection.upgradeFamily, address: connection.upgradeAddress! },
      key,
    );
  }

  #release(connection: Connection): void {
    // An upgraded socket is the WebSocket server's now: not closed here.
    if (!connection.upgraded) connection.close();
    if (this.#connections.delete(connection)) this.counters.open--;
    if (connection.addressKey !== null) {
      this.#tracker.connectionsPerAddress.close(connection.addressKey);
      connection.addressKey = null;
    }
    this.#buffers.giveInput(connection.input);
    if (this.#stopping && this.#connections.size === 0) this.#drained?.();
  }

  /**
   * Answers the buffered requests of `connection` from `connection.start` on, as long as they are
   * hot (announce, scrape), gathering the replies in `out`. Returns what the caller does next: read
   * more, close after writing `out`, answer `connection.slow` through `handle()`, or write `out`
   * and call again.
   */
  #answerHot(connection: Connection, out: OutBuffer): number {
    const head = this.#head;
    const input = connection.input;
    const filled = connection.filled;
    let start = connection.start;
    for (;;) {
      if (out.bytes.length - out.length < this.#replyRoom) {
        connection.start = start;
        return NEXT_FLUSH;
      }
      if (connection.skip > 0) {
        const skipped = Math.min(connection.skip, filled - start);
        connection.skip -= skipped;
        start += skipped;
        if (connection.skip > 0) {
          connection.start = start;
          return NEXT_READ;
        }
      }
      // A client may send blank lines between requests.
      while (start < filled && (input[start] === CR || input[start] === LF)) start++;
      connection.start = start;
      if (start === filled) return NEXT_READ;
      const end = findHeadEnd(
        input,
        start > connection.scanFrom ? start : connection.scanFrom,
        filled,
      );
      if (end < 0) {
        if (filled - start >= MAX_REQUEST_BYTES) {
          return this.#refusal(out, oversizeStatus(input, start));
        }
        connection.scanFrom = Math.max(start, filled - 2);
        return NEXT_READ;
      }
      connection.scanFrom = 0;
      if (end - start > MAX_REQUEST_BYTES) return this.#refusal(out, oversizeStatus(input, start));
      const status = parseHead(input, start, end, head);
      if (status !== 0) return this.#refusal(out, status);
      connection.answered = true;
      start = connection.start = end;
      const upgrades = this.#tracker.upgrades;
      if (upgrades !== null && isUpgradeRequest(head)) {
        const answer = checkWebSocketUpgrade(head, upgrades);
        if (typeof answer === "string") {
          connection.upgradeAccept = answer;
          // The client, read now (the head is shared): behind a trusted proxy the address it
          // names, for the rate limit.
          const address = connection.upgradeAddress = connection.address.slice();
          const family = this.#tracker.resolveClient(connection.family, address, head);
          connection.upgradeFamily = family !== 0 ? family : connection.family;
          if (family === 0) address.set(connection.address);
          return NEXT_UPGRADE;
        }
        out.bytes.set(answer, out.length);
        out.length += answer.length;
        return NEXT_CLOSE;
      }
      let keepAlive = head.keepAlive && !this.#stopping;
      if (head.transferEncoding || head.contentLength > MAX_SKIPPED_BODY || head.expect) {
        // A body we cannot delimit, will not wait for, or that may never come: no next request.
        keepAlive = false;
      } else if (head.contentLength > 0) connection.skip = head.contentLength;
      const route = head.route();
      let length = -1;
      if (route !== ROUTE_OTHER) {
        head.family = connection.family;
        head.address = connection.address;
        length = this.#tracker.answerWire(route === ROUTE_SCRAPE, head.query(), head);
      }
      if (length < 0) {
        // Everything the slow path needs is taken from the shared head now.
        const request = requestFromHead(head, formatHostPort(this.addr.hostname, this.addr.port));
        if (request === null) return this.#refusal(out, 400);
        if (typeof request === "number") return this.#refusal(out, request);
        connection.slow = {
          request,
          isHead: head.method === M_HEAD,
          http10: head.http10,
          keepAlive,
        };
        return NEXT_SLOW;
      }
      out.length = writeHotReply(
        out.bytes,
        out.length,
        this.#tracker.wireBody,
        length,
        head.method === M_HEAD,
        keepAlive ? (head.http10 ? END_KEEP_ALIVE : END_PLAIN) : END_CLOSE,
      );
      if (!keepAlive) return NEXT_CLOSE;
    }
  }

  /** After a read's requests are answered: drops them from the buffer and sets the deadline. */
  #afterAnswers(connection: Connection): void {
    const start = connection.start;
    if (start > 0) {
      connection.input.copyWithin(0, start, connection.filled);
      connection.filled -= start;
      if (connection.scanFrom > 0) connection.scanFrom -= start;
      connection.start = 0;
    }
    if (connection.filled === 0 && connection.skip === 0) {
      connection.idle = true;
      connection.deadline = this.#now + this.#limits.idleTimeoutMs;
      this.#buffers.shrinkInput(connection);
    } else if (connection.answered) {
      // The next request started in this read: its header timeout starts now.
      connection.deadline = this.#now + this.#limits.headerTimeoutMs;
    }
    connection.answered = false;
  }

  /** Puts a refusal (400, 414, 431, 505, …) into `out`; the connection closes after it. */
  #refusal(out: OutBuffer, status: number): number {
    this.counters.reject(status);
    const bytes = REFUSALS.get(status) ?? REFUSALS.get(400)!;
    out.bytes.set(bytes, out.length);
    out.length += bytes.length;
    return NEXT_CLOSE;
  }
}
