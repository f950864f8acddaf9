/**
 * One connection of otter's HTTP server as the server sees it (its buffered input, where the
 * requests in it start, its deadline and why it was set), and the pooled buffers connections read
 * into and gather hot replies in. Reads start in a SMALL_INPUT buffer and move to a
 * MAX_REQUEST_BYTES one only for a head that does not fit; at most POOL_LIMIT buffers of each
 * kind are kept for reuse.
 */
import { parseIpAddress } from "../../protocol/ipAddress.ts";
import type { AddressKey } from "../../policy/connectionsPerAddress.ts";
import { MAX_REQUEST_BYTES } from "./httpTracker.ts";
import type { NoDelayConn, StreamConn } from "../tcp/streamConn.ts";

/** A new connection reads into this much; a head that does not fit moves to a MAX_REQUEST_BYTES one. */
const SMALL_INPUT = 2048;
/** Buffers of each kind kept for reuse. */
const POOL_LIMIT = 256;

/** A connection as the server reads and writes it: plain TCP (Deno's or the fast path's), or TLS
 * (`--https`). */
export type WireConn = StreamConn;

/** A request for `HttpTracker.handle`, with what its reply's framing depends on. */
export interface SlowRequest {
  request: Request;
  isHead: boolean;
  http10: boolean;
  keepAlive: boolean;
}

/** A reply buffer: hot replies are gathered in it, then written in one call. */
export interface OutBuffer {
  bytes: Uint8Array;
  length: number;
}

export class Connection {
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
  /** A WebSocket upgrade was accepted: its Sec-WebSocket-Accept value and client. */
  upgradeAccept = "";
  upgradeFamily: 4 | 6 = 4;
  upgradeAddress: Uint8Array | null = null;
  /** Handed to the WebSocket server: the socket is no longer this server's to close. */
  upgraded = false;

  constructor(readonly conn: WireConn, input: Uint8Array, deadline: number) {
    this.input = input;
    this.deadline = deadline;
    this.family = parseIpAddress(conn.remoteAddr.hostname, this.address) === 6 ? 6 : 4;
  }

  /** Turns Nagle's algorithm off, once. A TLS connection offers no way to (Deno.TlsConn). */
  setNoDelay(): void {
    this.noDelay = true;
    if ("setNoDelay" in this.conn) (this.conn as NoDelayConn).setNoDelay(true);
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

/** Writes all of `bytes`, however many writes the kernel takes them in. */
export async function writeAll(conn: WireConn, bytes: Uint8Array): Promise<void> {
  let done = await conn.write(bytes);
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** The pooled input and reply buffers of one server. */
export class WireBuffers {
  /** Reply buffers taken by connections now (none is kept while a write waits). */
  outsInUse = 0;
  readonly #smallInputs: Uint8Array[] = [];
  readonly #largeInputs: Uint8Array[] = [];
  readonly #outs: OutBuffer[] = [];
  readonly #outCapacity: number;

  constructor(outCapacity: number) {
    this.#outCapacity = outCapacity;
  }

  /** A small input buffer for a new connection. */
  takeInput(): Uint8Array {
    return this.#smallInputs.pop() ?? new Uint8Array(SMALL_INPUT);
  }

  /** Takes back an input buffer of either size. */
  giveInput(input: Uint8Array): void {
    give(input.length === SMALL_INPUT ? this.#smallInputs : this.#largeInputs, input);
  }

  /** Moves a full input into a large buffer. */
  growInput(connection: Connection): void {
    // Only a small buffer can be full here: a full large one was refused as oversized.
    const large = this.#largeInputs.pop() ?? new Uint8Array(MAX_REQUEST_BYTES);
    large.set(connection.input.subarray(0, connection.filled));
    give(this.#smallInputs, connection.input);
    connection.input = large;
  }

  /** Gives an idle connection's large input back for a small one (it holds nothing now). */
  shrinkInput(connection: Connection): void {
    if (connection.input.length === SMALL_INPUT) return;
    give(this.#largeInputs, connection.input);
    connection.input = this.takeInput();
  }

  takeOut(): OutBuffer {
    this.outsInUse++;
    return this.#outs.pop() ?? { bytes: new Uint8Array(this.#outCapacity), length: 0 };
  }

  returnOut(out: OutBuffer): void {
    this.outsInUse--;
    out.length = 0;
    give(this.#outs, out);
  }
}

function give<T>(pool: T[], item: T): void {
  if (pool.length < POOL_LIMIT) pool.push(item);
}
