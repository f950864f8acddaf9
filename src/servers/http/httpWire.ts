/**
 * otter's own HTTP/1.1 server on `Deno.listen`, made for tracker traffic and for the bounds that
 * `Deno.serve` does not offer: a cap on open connections, a header-read timeout, an idle timeout
 * for keep-alive connections, and an 8 KiB cap on a request's head.
 *
 * Per connection, requests are read into a pooled buffer and their heads parsed from bytes: the
 * request line and only the headers the tracker needs (Connection, Content-Length,
 * Transfer-Encoding, X-Forwarded-For, X-Real-IP). GET/HEAD /announce and /scrape are answered
 * straight from those bytes through `HttpTracker.answerWire`, with no Request or Response object.
 * Everything else (404s, 405s, /stats, /metrics, the full scrape, …) is turned into a `Request`
 * for `HttpTracker.handle`, and its `Response` written out with Content-Length, chunked transfer
 * encoding, or (HTTP/1.0) until close.
 *
 * Pipelined requests are answered in order, their replies gathered into one write. A bad head is
 * answered 400, a request line over the cap 414, a head over it 431, HTTP/2+ 505, each followed by
 * a close. A request body (only methods that get 405 have one) is skipped when it is small and
 * declared with Content-Length; otherwise the connection closes after the reply.
 *
 * Timeouts are checked by one timer per server every quarter second, against a clock read once
 * per accept, per read and per tick: a new connection and a started request must deliver a whole head within
 * `headerTimeoutMs`; a connection waiting between requests, or a client not taking our reply, is
 * closed after `idleTimeoutMs`, and a reply through `handle()` (a full scrape, say) must also keep
 * an average of `minSendRate` (`sendDeadline`). Beyond `maxConnections`, or `maxConnectionsPerIp`
 * from one address (an IPv6 /64; trusted proxies exempt), new connections are accepted and closed
 * at once. Each of these, and every request turned away, is counted in the HttpTracker's
 * `serverCounters` (for /metrics and /stats). A client that does not take its replies holds only
 * their unsent bytes: the pooled reply buffer goes back while the write waits.
 */
import { writeDecimal } from "../../protocol/httpReply.ts";
import { formatHostPort, parseIpAddress } from "../../protocol/ipAddress.ts";
import type { HttpServerCounters } from "../../observe/httpServerCounters.ts";
import { type AddressKey, addressKey } from "../../policy/connectionsPerAddress.ts";
import { type HttpTracker, MAX_REQUEST_BYTES, type WireClient } from "./httpTracker.ts";

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

const SWEEP_MS = 250;
/** How long `shutdown` lets requests in progress finish before it closes their connections. */
const SHUTDOWN_GRACE_MS = 5000;
/** A new connection reads into this much; a head that does not fit moves to a MAX_REQUEST_BYTES one. */
const SMALL_INPUT = 2048;
/** Bodies up to this size (declared by Content-Length) are read and dropped to keep the connection. */
const MAX_SKIPPED_BODY = 65536;
/** Room for a hot reply's status line and headers. */
const HEAD_ROOM = 128;
const POOL_LIMIT = 256;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
const QUESTION = 63;
const SLASH = 47;

const M_OTHER = 0;
const M_GET = 1;
const M_HEAD = 2;

/** What `#answerHot` asks its caller to do next. */
const NEXT_READ = 0;
const NEXT_CLOSE = 1;
const NEXT_SLOW = 2;
const NEXT_FLUSH = 3;

const ROUTE_OTHER = 0;
const ROUTE_ANNOUNCE = 1;
const ROUTE_SCRAPE = 2;

/** RFC 9110 token characters (methods, header names). */
const TCHAR = new Uint8Array(256);
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = TCHAR[c + 32] = 1;
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;

function ascii(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

const PATH_ANNOUNCE = ascii("/announce");
const PATH_SCRAPE = ascii("/scrape");
const OK_START = ascii("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
const END_PLAIN = ascii("\r\n\r\n");
const END_CLOSE = ascii("\r\nConnection: close\r\n\r\n");
const END_KEEP_ALIVE = ascii("\r\nConnection: keep-alive\r\n\r\n");

function refusal(status: number, reason: string, text: string, extra = ""): Uint8Array {
  return ascii(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}` +
      `Content-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`,
  );
}

const REFUSALS = new Map<number, Uint8Array>([
  [400, refusal(400, "Bad Request", "bad request")],
  [405, refusal(405, "Method Not Allowed", "method not allowed", "Allow: GET, HEAD\r\n")],
  [414, refusal(414, "URI Too Long", "request too long")],
  [431, refusal(431, "Request Header Fields Too Large", "request header fields too large")],
  [500, refusal(500, "Internal Server Error", "internal error")],
  [505, refusal(505, "HTTP Version Not Supported", "HTTP version not supported")],
]);

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const utf8 = new TextDecoder();
const HOST = /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;
const encoder = new TextEncoder();

/** True if b[start, end) equals `name` compared ASCII-case-insensitively (`name` lower case). */
function nameIsCaseless(b: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  // |0x20 lower-cases letters; no other token character maps onto a letter or '-'.
  for (let i = 0; i < name.length; i++) {
    if ((b[start + i] | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

function bytesAre(b: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (b[start + i] !== expected[i]) return false;
  return true;
}

/**
 * One parsed request head, reused for every request of a server. It is also the `WireClient`
 * handed to `answerWire`, so the forwarding headers are decoded only if asked for.
 */
class RequestHead implements WireClient {
  input: Uint8Array = new Uint8Array(0);
  start = 0;
  end = 0;
  method = M_OTHER;
  methodEnd = 0;
  targetStart = 0;
  targetEnd = 0;
  pathStart = 0;
  pathEnd = 0;
  /** Just past '?', or -1. */
  queryStart = -1;
  http10 = false;
  keepAlive = true;
  /** -1 when absent. */
  contentLength = -1;
  transferEncoding = false;
  /** An Expect header: the client may hold its body back until told to go on, which we never do. */
  expect = false;
  /** The first X-Forwarded-For line's value, and how many lines came. */
  xffStart = -1;
  xffEnd = -1;
  xffLines = 0;
  realIpStart = -1;
  realIpEnd = -1;
  realIpLines = 0;
  family: 4 | 6 = 4;
  address: Uint8Array = new Uint8Array(16);

  get(name: string): string | null {
    if (name === "x-forwarded-for") {
      if (this.xffLines === 1) return utf8.decode(this.input.subarray(this.xffStart, this.xffEnd));
      return this.xffLines === 0 ? null : joinedValues(this.input, this.start, this.end, name);
    }
    if (name === "x-real-ip") {
      if (this.realIpLines === 1) {
        return utf8.decode(this.input.subarray(this.realIpStart, this.realIpEnd));
      }
      return this.realIpLines === 0 ? null : joinedValues(this.input, this.start, this.end, name);
    }
    return null;
  }

  route(): number {
    if (this.method === M_OTHER) return ROUTE_OTHER;
    const b = this.input;
    if (bytesAre(b, this.pathStart, this.pathEnd, PATH_ANNOUNCE)) return ROUTE_ANNOUNCE;
    if (bytesAre(b, this.pathStart, this.pathEnd, PATH_SCRAPE)) return ROUTE_SCRAPE;
    return ROUTE_OTHER;
  }

  query(): string {
    return this.queryStart < 0
      ? ""
      : utf8.decode(this.input.subarray(this.queryStart, this.targetEnd));
  }
}

/** Blanks and a CR trimmed off a header value's ends: [start, end) of it within b[start, end). */
function trimmedValue(b: Uint8Array, start: number, end: number): [number, number] {
  while (start < end && (b[start] === SP || b[start] === HT)) start++;
  while (end > start && (b[end - 1] === CR || b[end - 1] === SP || b[end - 1] === HT)) end--;
  return [start, end];
}

/**
 * Every value of the header `name` (lower case) in the parsed head b[start, end), joined with
 * ", " in order: one list, as `Headers.get` gives a repeated field.
 */
function joinedValues(b: Uint8Array, start: number, end: number, name: string): string {
  const values: string[] = [];
  let p = start;
  while (b[p] !== LF) p++; // the request line
  p++;
  while (p < end && b[p] !== CR && b[p] !== LF) {
    let colon = p;
    while (b[colon] !== COLON) colon++;
    let lineEnd = colon;
    while (b[lineEnd] !== LF) lineEnd++;
    if (nameIsCaseless(b, p, colon, name)) {
      const [valueStart, valueEnd] = trimmedValue(b, colon + 1, lineEnd);
      values.push(utf8.decode(b.subarray(valueStart, valueEnd)));
    }
    p = lineEnd + 1;
  }
  return values.join(", ");
}

/**
 * Index just past the blank line that ends a head in b[from, end), or -1. `from` may point into
 * the head (scanning resumes where the last attempt stopped); a bare LF ends a line like CRLF.
 */
function findHeadEnd(b: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    if (b[i] !== LF) continue;
    if (i + 1 < end && b[i + 1] === LF) return i + 2;
    if (i + 2 < end && b[i + 1] === CR && b[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** Status for a buffered start of a head that reached the cap without ending: 414 or 431. */
function oversizeStatus(b: Uint8Array, start: number): number {
  const limit = start + MAX_REQUEST_BYTES;
  for (let i = start; i < limit; i++) if (b[i] === LF) return 431;
  return 414;
}

/** Parses the head b[start, end) (ending with its blank line) into `h`; returns 0 or a status. */
function parseHead(b: Uint8Array, start: number, end: number, h: RequestHead): number {
  h.input = b;
  h.start = start;
  h.end = end;
  let p = start;
  while (p < end && TCHAR[b[p]] === 1) p++;
  if (p === start || b[p] !== SP) return 400;
  h.methodEnd = p;
  const length = p - start;
  h.method = length === 3 && b[start] === 71 && b[start + 1] === 69 && b[start + 2] === 84
    ? M_GET
    : length === 4 && b[start] === 72 && b[start + 1] === 69 && b[start + 2] === 65 &&
        b[start + 3] === 68
    ? M_HEAD
    : M_OTHER;
  const target = ++p;
  let question = -1;
  while (p < end) {
    const c = b[p];
    if (c === SP) break;
    if (c < 0x21 || c === 0x7f) return 400;
    if (c === QUESTION && question < 0) question = p;
    p++;
  }
  if (p === target || b[p] !== SP) return 400;
  h.targetStart = target;
  h.targetEnd = p;
  h.queryStart = question < 0 ? -1 : question + 1;
  h.pathEnd = question < 0 ? p : question;
  h.pathStart = b[target] === SLASH ? target : absolutePathStart(b, target, h.pathEnd);
  p++;
  // "HTTP/1.x"
  if (
    p + 8 > end || b[p] !== 72 || b[p + 1] !== 84 || b[p + 2] !== 84 || b[p + 3] !== 80 ||
    b[p + 4] !== SLASH || b[p + 6] !== 46
  ) {
    return 400;
  }
  const major = b[p + 5] - 48;
  const minor = b[p + 7] - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return 400;
  if (major !== 1) return 505;
  h.http10 = minor === 0;
  p += 8;
  if (b[p] === CR) p++;
  if (b[p] !== LF) return 400;
  p++;

  let close = false;
  let keepAlive = false;
  h.contentLength = -1;
  h.transferEncoding = false;
  h.expect = false;
  h.xffStart =
    h.xffEnd =
    h.realIpStart =
    h.realIpEnd =
      -1;
  h.xffLines = h.realIpLines = 0;
  for (;;) {
    if (b[p] === LF) {
      p++;
      break;
    }
    if (b[p] === CR && b[p + 1] === LF) {
      p += 2;
      break;
    }
    const nameStart = p;
    while (TCHAR[b[p]] === 1) p++;
    // A line folded onto the previous one starts with a blank and fails here too.
    if (p === nameStart || b[p] !== COLON) return 400;
    const nameEnd = p++;
    while (b[p] === SP || b[p] === HT) p++;
    const valueStart = p;
    while (b[p] !== LF) {
      const c = b[p];
      if ((c < 0x20 && c !== HT && c !== CR) || c === 0x7f) return 400;
      p++;
    }
    let valueEnd = p++;
    if (valueEnd > valueStart && b[valueEnd - 1] === CR) valueEnd--;
    while (valueEnd > valueStart && (b[valueEnd - 1] === SP || b[valueEnd - 1] === HT)) valueEnd--;
    for (let i = valueStart; i < valueEnd; i++) if (b[i] === CR) return 400;
    switch (nameEnd - nameStart) {
      case 6:
        if (nameIsCaseless(b, nameStart, nameEnd, "expect")) h.expect = true;
        break;
      case 9:
        if (nameIsCaseless(b, nameStart, nameEnd, "x-real-ip") && h.realIpLines++ === 0) {
          h.realIpStart = valueStart;
          h.realIpEnd = valueEnd;
        }
        break;
      case 10:
        if (nameIsCaseless(b, nameStart, nameEnd, "connection")) {
          const tokens = connectionTokens(b, valueStart, valueEnd);
          close ||= (tokens & 1) !== 0;
          keepAlive ||= (tokens & 2) !== 0;
        }
        break;
      case 14:
        if (nameIsCaseless(b, nameStart, nameEnd, "content-length")) {
          const n = decimal(b, valueStart, valueEnd);
          if (n < 0 || (h.contentLength >= 0 && h.contentLength !== n)) return 400;
          h.contentLength = n;
        }
        break;
      case 15:
        if (nameIsCaseless(b, nameStart, nameEnd, "x-forwarded-for") && h.xffLines++ === 0) {
          h.xffStart = valueStart;
          h.xffEnd = valueEnd;
        }
        break;
      case 17:
        if (nameIsCaseless(b, nameStart, nameEnd, "transfer-encoding")) h.transferEncoding = true;
        break;
    }
  }
  if (p !== end) return 400;
  h.keepAlive = h.http10 ? keepAlive && !close : !close;
  return 0;
}

/** In absolute form ("http://host/path"), where the path starts; `pathEnd` if it has none. */
function absolutePathStart(b: Uint8Array, target: number, pathEnd: number): number {
  for (let i = target; i + 2 < pathEnd; i++) {
    if (b[i] === COLON && b[i + 1] === SLASH && b[i + 2] === SLASH) {
      for (let j = i + 3; j < pathEnd; j++) if (b[j] === SLASH) return j;
      return pathEnd;
    }
  }
  return pathEnd;
}

/** Bit 1: a `close` token, bit 2: a `keep-alive` token, in a comma-separated list. */
function connectionTokens(b: Uint8Array, start: number, end: number): number {
  let found = 0;
  let p = start;
  while (p < end) {
    while (p < end && (b[p] === SP || b[p] === HT || b[p] === 44)) p++;
    const tokenStart = p;
    while (p < end && b[p] !== 44) p++;
    let tokenEnd = p;
    while (tokenEnd > tokenStart && (b[tokenEnd - 1] === SP || b[tokenEnd - 1] === HT)) tokenEnd--;
    if (nameIsCaseless(b, tokenStart, tokenEnd, "close")) found |= 1;
    else if (nameIsCaseless(b, tokenStart, tokenEnd, "keep-alive")) found |= 2;
  }
  return found;
}

/** A Content-Length value, or -1 when it is not 1 to 15 digits. */
function decimal(b: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = b[i] - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/** A request for `HttpTracker.handle`, with what its reply's framing depends on. */
interface SlowRequest {
  request: Request;
  isHead: boolean;
  http10: boolean;
  keepAlive: boolean;
}

/** A reply buffer: hot replies are gathered in it, then written in one call. */
interface OutBuffer {
  bytes: Uint8Array;
  length: number;
}

class Connection {
  /** Bytes of unanswered requests at input[0, filled). */
  input: Uint8Array;
  filled = 0;
  /** Where the search for the end of the head at input[0] resumes. */
  scanFrom = 0;
  /** Where the first unanswered request starts in input. */
  start = 0;
  /** A request was answered since the last read. */
  answered = false;
  /** The request `#answerHot` left for `handle()`. */
  slow: SlowRequest | null = null;
  /** Body bytes still to skip before the next head. */
  skip = 0;
  /** performance.now() ms after which the sweeper closes the connection. */
  deadline: number;
  /** Between requests: the next byte starts a request's header timeout. */
  idle = false;
  /** Answering a request: shutdown lets it finish. */
  busy = false;
  closed = false;
  noDelay = false;
  /** A write found the client behind: replies are copied out of the pooled buffer before writing. */
  congested = false;
  /** A reply through `handle()`: when it started and the bytes handed to the kernel so far. */
  replyStart = 0;
  replyQueued = 0;
  /** The --min-send-rate part of `deadline` while such a reply is sent, else Infinity. */
  rateDeadline = Infinity;
  readonly family: 4 | 6;
  readonly address = new Uint8Array(16);
  /** The slot taken in the per-address count, or null (a trusted proxy, or no cap). */
  addressKey: AddressKey | null = null;

  constructor(readonly conn: Deno.TcpConn, input: Uint8Array, deadline: number) {
    this.input = input;
    this.deadline = deadline;
    this.family = parseIpAddress(conn.remoteAddr.hostname, this.address) === 6 ? 6 : 4;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by the peer's reset; nothing left to release.
    }
  }
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let done = await conn.write(bytes);
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
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

export class HttpWireServer {
  readonly addr: Deno.NetAddr;
  /** Refused and timed-out connections, turned-away requests: the HttpTracker's, so shared by
   * every server over it (/metrics shows one total). */
  readonly counters: HttpServerCounters;
  readonly #listener: Deno.TcpListener;
  readonly #tracker: HttpTracker;
  readonly #limits: HttpLimits;
  readonly #connections = new Set<Connection>();
  readonly #head = new RequestHead();
  readonly #smallInputs: Uint8Array[] = [];
  readonly #largeInputs: Uint8Array[] = [];
  readonly #outs: OutBuffer[] = [];
  #outsInUse = 0;
  readonly #outCapacity: number;
  /** Space one more hot reply may need at the end of an out buffer. */
  readonly #replyRoom: number;
  readonly #sweeper: ReturnType<typeof setInterval>;
  #now = performance.now();
  #stopping = false;
  #drained: (() => void) | null = null;
  readonly #accepting: Promise<void>;

  /** Listens on hostname:port (throws like `Deno.listen`) and starts serving. */
  static listen(
    hostname: string,
    port: number,
    tracker: HttpTracker,
    limits: HttpLimits,
  ): HttpWireServer {
    return new HttpWireServer(Deno.listen({ hostname, port, transport: "tcp" }), tracker, limits);
  }

  private constructor(listener: Deno.TcpListener, tracker: HttpTracker, limits: HttpLimits) {
    this.#listener = listener;
    this.addr = listener.addr;
    this.#tracker = tracker;
    this.counters = tracker.serverCounters;
    this.#limits = limits;
    this.#replyRoom = HEAD_ROOM + tracker.wireBody.length;
    this.#outCapacity = Math.max(16384, 2 * this.#replyRoom);
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#accepting = this.#acceptLoop();
  }

  /** Open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Pooled reply buffers taken by connections now (none is kept while a write waits). */
  get outBuffersInUse(): number {
    return this.#outsInUse;
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
      for (const c of this.#connections) if (!c.busy) c.close();
    }
    await this.#accepting;
    if (this.#connections.size > 0) {
      const drained = new Promise<void>((resolve) => this.#drained = resolve);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS));
      await Promise.race([drained, grace]);
      clearTimeout(timer);
      for (const c of this.#connections) c.close();
      if (this.#connections.size > 0) await drained;
    }
    clearInterval(this.#sweeper);
  }

  #sweep(): void {
    const now = this.#now = performance.now();
    for (const c of this.#connections) {
      if (c.deadline <= now && !c.closed) {
        // Waiting for a head (new, or mid-request) is the header timeout; idle between requests
        // or busy writing a reply the client does not take is the idle one; a reply going out
        // below --min-send-rate is the send one.
        if (c.rateDeadline <= now) this.counters.sendTimeouts++;
        else if (c.idle || c.busy) this.counters.idleTimeouts++;
        else this.counters.headerTimeouts++;
        c.close();
      }
    }
  }

  async #acceptLoop(): Promise<void> {
    const listener = this.#listener;
    while (!this.#stopping) {
      let conn: Deno.TcpConn;
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
      const input = this.#smallInputs.pop() ?? new Uint8Array(SMALL_INPUT);
      const c = new Connection(conn, input, this.#now + this.#limits.headerTimeoutMs);
      const perIp = this.#limits.maxConnectionsPerIp;
      // A trusted proxy carries many clients: it is held to --max-connections only.
      if (perIp > 0 && !this.#tracker.trustsProxy(c.family, c.address)) {
        const key = addressKey(c.family, c.address);
        if (!this.#tracker.connectionsPerAddress.tryOpen(key, perIp)) {
          this.counters.refusedPerIp++;
          this.#give(this.#smallInputs, input);
          c.close();
          continue;
        }
        c.addressKey = key;
      }
      this.#connections.add(c);
      this.counters.open++;
      this.#serve(c);
    }
  }

  async #serve(c: Connection): Promise<void> {
    let out: OutBuffer | null = null;
    try {
      reading: while (!c.closed) {
        if (c.filled === c.input.length) this.#growInput(c);
        const n = await c.conn.read(c.filled === 0 ? c.input : c.input.subarray(c.filled));
        if (n === null) break;
        // One clock read a read: the sweeper's tick alone goes stale when timers run late.
        this.#now = performance.now();
        if (c.idle) {
          c.idle = false;
          c.deadline = this.#now + this.#limits.headerTimeoutMs;
        }
        c.filled += n;
        c.busy = true;
        out = this.#takeOut();
        for (;;) {
          const next = this.#answerHot(c, out);
          if (out.length > 0) {
            if (!c.noDelay && next !== NEXT_CLOSE) {
              // A connection that stays open may get its next request before the client has
              // acknowledged this reply; with Nagle on, that reply would wait for the client's
              // delayed ACK (40 ms). Once per connection, and never for one-shot connections.
              c.noDelay = true;
              c.conn.setNoDelay(true);
            }
            // Inlined #flush: the usual reply goes out in one write, with no extra promises.
            c.deadline = this.#now + this.#limits.idleTimeoutMs;
            const length = out.length;
            out.length = 0;
            const written = c.congested ? 0 : await c.conn.write(out.bytes.subarray(0, length));
            if (written < length) {
              // The client is behind: keep only the unsent bytes, in a slice of their size, and
              // give the pooled buffer (up to two max-numwant replies) back while the write
              // waits. A write that finds no room waits holding what it was given, so from now on
              // this connection's replies are copied before they are written.
              c.congested = true;
              const unsent = out.bytes.slice(written, length);
              this.#returnOut(out);
              out = null;
              await this.#writeUnsent(c, unsent);
              out = this.#takeOut();
            }
          }
          if (next === NEXT_READ) break;
          if (next === NEXT_CLOSE) break reading;
          if (next === NEXT_SLOW) {
            const slow = c.slow!;
            c.slow = null;
            // A reply through handle() can take minutes (a full scrape read slowly): it needs
            // no pooled buffer meanwhile.
            this.#returnOut(out);
            out = null;
            if (!(await this.#answerSlow(c, slow))) break reading;
            out = this.#takeOut();
          }
        }
        this.#returnOut(out);
        out = null;
        this.#afterAnswers(c);
        c.busy = false;
        if (this.#stopping && c.filled === 0) break;
      }
    } catch {
      // A reset, or a close by the sweeper or shutdown: nothing to answer.
    } finally {
      if (out !== null) this.#returnOut(out);
      this.#release(c);
    }
  }

  #takeOut(): OutBuffer {
    this.#outsInUse++;
    return this.#outs.pop() ?? { bytes: new Uint8Array(this.#outCapacity), length: 0 };
  }

  #returnOut(out: OutBuffer): void {
    this.#outsInUse--;
    out.length = 0;
    this.#give(this.#outs, out);
  }

  /** Writes replies a slow client has not taken yet, counted while they wait. */
  async #writeUnsent(c: Connection, unsent: Uint8Array): Promise<void> {
    const counters = this.counters;
    counters.pendingWrites++;
    counters.pendingWriteBytes += unsent.length;
    try {
      await writeAll(c.conn, unsent);
    } finally {
      counters.pendingWrites--;
      counters.pendingWriteBytes -= unsent.length;
    }
  }

  #growInput(c: Connection): void {
    // Only a small buffer can be full here: a full large one was refused as oversized.
    const large = this.#largeInputs.pop() ?? new Uint8Array(MAX_REQUEST_BYTES);
    large.set(c.input.subarray(0, c.filled));
    this.#give(this.#smallInputs, c.input);
    c.input = large;
  }

  #release(c: Connection): void {
    c.close();
    if (this.#connections.delete(c)) this.counters.open--;
    if (c.addressKey !== null) {
      this.#tracker.connectionsPerAddress.close(c.addressKey);
      c.addressKey = null;
    }
    const input = c.input;
    this.#give(input.length === SMALL_INPUT ? this.#smallInputs : this.#largeInputs, input);
    if (this.#stopping && this.#connections.size === 0) this.#drained?.();
  }

  #give<T>(pool: T[], item: T): void {
    if (pool.length < POOL_LIMIT) pool.push(item);
  }

  /**
   * Answers the buffered requests of `c` from `c.start` on, as long as they are hot (announce,
   * scrape), gathering the replies in `out`. Returns what the caller does next: read more, close
   * after writing `out`, answer `c.slow` through `handle()`, or write `out` and call again.
   */
  #answerHot(c: Connection, out: OutBuffer): number {
    const head = this.#head;
    const b = c.input;
    const filled = c.filled;
    let start = c.start;
    for (;;) {
      if (out.bytes.length - out.length < this.#replyRoom) {
        c.start = start;
        return NEXT_FLUSH;
      }
      if (c.skip > 0) {
        const skipped = Math.min(c.skip, filled - start);
        c.skip -= skipped;
        start += skipped;
        if (c.skip > 0) {
          c.start = start;
          return NEXT_READ;
        }
      }
      // A client may send blank lines between requests.
      while (start < filled && (b[start] === CR || b[start] === LF)) start++;
      c.start = start;
      if (start === filled) return NEXT_READ;
      const end = findHeadEnd(b, start > c.scanFrom ? start : c.scanFrom, filled);
      if (end < 0) {
        if (filled - start >= MAX_REQUEST_BYTES) {
          return this.#refusal(out, oversizeStatus(b, start));
        }
        c.scanFrom = Math.max(start, filled - 2);
        return NEXT_READ;
      }
      c.scanFrom = 0;
      if (end - start > MAX_REQUEST_BYTES) return this.#refusal(out, oversizeStatus(b, start));
      const status = parseHead(b, start, end, head);
      if (status !== 0) return this.#refusal(out, status);
      c.answered = true;
      start = c.start = end;
      let keepAlive = head.keepAlive && !this.#stopping;
      if (head.transferEncoding || head.contentLength > MAX_SKIPPED_BODY || head.expect) {
        // A body we cannot delimit, will not wait for, or that may never come: no next request.
        keepAlive = false;
      } else if (head.contentLength > 0) c.skip = head.contentLength;
      const route = head.route();
      let length = -1;
      if (route !== ROUTE_OTHER) {
        head.family = c.family;
        head.address = c.address;
        length = this.#tracker.answerWire(route === ROUTE_SCRAPE, head.query(), head);
      }
      if (length < 0) {
        // Everything the slow path needs is taken from the shared head now.
        const request = this.#buildRequest(head);
        if (request === null) return this.#refusal(out, 400);
        if (typeof request === "number") return this.#refusal(out, request);
        c.slow = { request, isHead: head.method === M_HEAD, http10: head.http10, keepAlive };
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
  #afterAnswers(c: Connection): void {
    const start = c.start;
    if (start > 0) {
      c.input.copyWithin(0, start, c.filled);
      c.filled -= start;
      if (c.scanFrom > 0) c.scanFrom -= start;
      c.start = 0;
    }
    if (c.filled === 0 && c.skip === 0) {
      c.idle = true;
      c.deadline = this.#now + this.#limits.idleTimeoutMs;
      if (c.input.length !== SMALL_INPUT) {
        this.#give(this.#largeInputs, c.input);
        c.input = this.#smallInputs.pop() ?? new Uint8Array(SMALL_INPUT);
      }
    } else if (c.answered) {
      // The next request started in this read: its header timeout starts now.
      c.deadline = this.#now + this.#limits.headerTimeoutMs;
    }
    c.answered = false;
  }

  /** Puts a refusal (400, 414, 431, 505, …) into `out`; the connection closes after it. */
  #refusal(out: OutBuffer, status: number): number {
    this.counters.reject(status);
    const bytes = REFUSALS.get(status) ?? REFUSALS.get(400)!;
    out.bytes.set(bytes, out.length);
    out.length += bytes.length;
    return NEXT_CLOSE;
  }

  /** A `Request` for `HttpTracker.handle`, or null / a status when the head cannot be one. */
  #buildRequest(head: RequestHead): Request | number | null {
    const b = head.input;
    const method = utf8.decode(b.subarray(head.start, head.methodEnd));
    const headers = new Headers();
    // Skip the request line, then take every header line as it came.
    let p = head.start;
    while (b[p] !== LF) p++;
    p++;
    while (p < head.end && b[p] !== CR && b[p] !== LF) {
      let colon = p;
      while (b[colon] !== COLON) colon++;
      let lineEnd = colon;
      while (b[lineEnd] !== LF) lineEnd++;
      try {
        headers.append(
          utf8.decode(b.subarray(p, colon)),
          utf8.decode(b.subarray(colon + 1, lineEnd)).trim(),
        );
      } catch {
        return null;
      }
      p = lineEnd + 1;
    }
    const target = utf8.decode(b.subarray(head.targetStart, head.targetEnd));
    let url: string;
    if (target.charCodeAt(0) === SLASH) {
      // Only a plain host[:port] may shape the URL: "a/b?" would move the path routes see.
      const given = headers.get("host");
      const host = given !== null && HOST.test(given)
        ? given
        : formatHostPort(this.addr.hostname, this.addr.port);
      url = `http://${host}${target}`;
    } else if (/^https?:\/\//i.test(target)) {
      url = target;
    } else if (target === "*") {
      url = `http://${formatHostPort(this.addr.hostname, this.addr.port)}/*`;
    } else {
      return head.method === M_OTHER ? 405 : null;
    }
    try {
      return new Request(url, { method, headers });
    } catch {
      // A forbidden method (CONNECT, TRACE) or an unparsable URL.
      return head.method === M_OTHER ? 405 : null;
    }
  }

  /** Answers a request through `HttpTracker.handle`; false when the connection must close. */
  async #answerSlow(c: Connection, slow: SlowRequest): Promise<boolean> {
    const { request, isHead, http10 } = slow;
    let keepAlive = slow.keepAlive;
    const done = completion(c.conn.remoteAddr as Deno.NetAddr);
    let response: Response;
    c.deadline = Infinity; // our own handler's time is not the client's fault
    try {
      response = await this.#tracker.handle(request, done.info);
    } catch (error) {
      done.reject(error);
      this.counters.reject(500);
      await writeAll(c.conn, REFUSALS.get(500)!);
      return false;
    }
    c.replyStart = performance.now();
    c.replyQueued = 0;
    c.deadline = c.replyStart + this.#limits.idleTimeoutMs;
    keepAlive &&= !this.#stopping;
    if (!c.noDelay) {
      // Streamed replies take several writes: do not let Nagle hold the later ones back.
      c.noDelay = true;
      c.conn.setNoDelay(true);
    }
    try {
      const open = await this.#writeResponse(c, response, isHead, http10, keepAlive);
      done.resolve();
      return open;
    } catch (error) {
      done.reject(new Deno.errors.Interrupted(String(error)));
      throw error;
    } finally {
      c.rateDeadline = Infinity;
    }
  }

  async #writeResponse(
    c: Connection,
    response: Response,
    isHead: boolean,
    http10: boolean,
    keepAlive: boolean,
  ): Promise<boolean> {
    const status = response.status;
    let text = `HTTP/1.1 ${status} ${response.statusText || REASONS[status] || ""}\r\n`;
    let declared = -1;
    for (const [name, value] of response.headers) {
      if (name === "content-length") {
        declared = decimal(encoder.encode(value), 0, value.length);
        continue;
      }
      if (name === "connection" || name === "transfer-encoding" || name === "keep-alive") continue;
      text += `${name}: ${value}\r\n`;
    }
    const body = response.body;
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    if (body === null || isHead || noBody) {
      await body?.cancel();
      if (body === null && !noBody) declared = 0;
      if (declared >= 0 && !noBody) text += `Content-Length: ${declared}\r\n`;
      await this.#writeText(c, text, keepAlive, http10, null);
      return keepAlive;
    }
    const reader = body.getReader();
    try {
      if (declared >= 0) {
        text += `Content-Length: ${declared}\r\n`;
        await this.#writeText(c, text, keepAlive, http10, null);
        let sent = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          sent += value.length;
          if (sent > declared) return false;
          await this.#writeChunk(c, value);
        }
        return keepAlive && sent === declared;
      }
      // No declared length: a body that ends after its first chunk gets one; else chunks.
      const first = await reader.read();
      const firstBytes = first.done ? new Uint8Array(0) : first.value;
      const second = first.done ? first : await reader.read();
      if (second.done) {
        text += `Content-Length: ${firstBytes.length}\r\n`;
        await this.#writeText(c, text, keepAlive, http10, firstBytes);
        return keepAlive;
      }
      if (http10) {
        // No chunked coding in HTTP/1.0: the body ends where the connection does.
        await this.#writeText(c, text, false, true, firstBytes);
        await this.#writeChunk(c, second.value);
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return false;
          await this.#writeChunk(c, value);
        }
      }
      text += "Transfer-Encoding: chunked\r\n";
      await this.#writeText(c, text, keepAlive, false, null);
      await this.#writeChunked(c, firstBytes);
      await this.#writeChunked(c, second.value);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await this.#writeChunked(c, value);
      }
      await this.#writeChunk(c, ascii("0\r\n\r\n"));
      return keepAlive;
    } finally {
      reader.releaseLock();
    }
  }

  async #writeText(
    c: Connection,
    text: string,
    keepAlive: boolean,
    http10: boolean,
    body: Uint8Array | null,
  ): Promise<void> {
    text += keepAlive
      ? (http10 ? "Connection: keep-alive\r\n\r\n" : "\r\n")
      : "Connection: close\r\n\r\n";
    const headBytes = encoder.encode(text);
    if (body === null || body.length === 0) return await this.#writeChunk(c, headBytes);
    const all = new Uint8Array(headBytes.length + body.length);
    all.set(headBytes);
    all.set(body, headBytes.length);
    await this.#writeChunk(c, all);
  }

  async #writeChunked(c: Connection, bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return; // a zero-length chunk would end the body
    await this.#writeChunk(c, encoder.encode(bytes.length.toString(16) + "\r\n"));
    await this.#writeChunk(c, bytes);
    await this.#writeChunk(c, ascii("\r\n"));
  }

  async #writeChunk(c: Connection, bytes: Uint8Array): Promise<void> {
    const limits = this.#limits;
    c.replyQueued += bytes.length;
    c.rateDeadline = sendDeadline(
      c.replyStart,
      Infinity,
      c.replyQueued,
      limits.idleTimeoutMs,
      limits.minSendRate,
    );
    c.deadline = sendDeadline(
      c.replyStart,
      performance.now(),
      c.replyQueued,
      limits.idleTimeoutMs,
      limits.minSendRate,
    );
    await writeAll(c.conn, bytes);
  }
}

/** Writes a 200 reply with `length` body bytes from `body` at out[o]; returns the end offset. */
function writeHotReply(
  out: Uint8Array,
  o: number,
  body: Uint8Array,
  length: number,
  isHead: boolean,
  ending: Uint8Array,
): number {
  for (let i = 0; i < OK_START.length; i++) out[o++] = OK_START[i];
  o = writeDecimal(out, o, length);
  for (let i = 0; i < ending.length; i++) out[o++] = ending[i];
  if (isHead) return o;
  if (length > 64) {
    out.set(body.subarray(0, length), o);
    return o + length;
  }
  for (let i = 0; i < length; i++) out[o + i] = body[i];
  return o + length;
}
