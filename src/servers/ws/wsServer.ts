/**
 * otter's WebSocket server (RFC 6455, server side) for WebTorrent clients. It does not listen:
 * the HTTP server (servers/http/httpWire.ts) parses a request head on any of its connections,
 * plain or TLS, checks the upgrade (protocol/wsHandshake.ts) and hands the socket over with
 * `adopt`, so --max-connections, --max-connections-per-ip (the slot stays taken) and
 * --header-timeout have already applied; here --max-ws-connections does (`full`).
 *
 * Per connection: a read always waits (callbacks, not an async function per connection: an
 * idle connection is a few hundred bytes of records on top of its socket), into the
 * connection's small buffer, or a pooled one while a message is in progress or a burst is
 * coming (wsBuffers.ts). On the TCP fast path (servers/tcp) a connection waits with no buffer
 * at all (`onReadable`, with its one callback) and is read into one buffer all of them share, consumed at once. Frames go through the incremental reader (protocol/wsFrame.ts: masking,
 * UTF-8, fragmentation, the 64 KiB message and frame caps from the header, before any payload is
 * buffered), complete text messages to the WebTorrent tracker (wtTracker.ts), pings get pongs.
 * What the tracker writes for any connection is written out once per event-loop turn (a
 * microtask after the reads that produced it); a client that lets more than `maxQueuedBytes`
 * wait is closed as a slow reader.
 *
 * Closing: otter sends a close frame (the client's own code echoed, or why otter closes: 1002,
 * 1003, 1007, 1008, 1009, 1001 at shutdown, 1000 when idle), half-closes once it is written, and
 * reads on (discarding) until the client closes or CLOSE_WAIT_MS pass; the connection's peers
 * leave the store as soon as the close starts. Timeouts, checked every SWEEP_MS: no complete
 * message for 2 × --ws-interval (pings do not count), a message started and not finished within
 * --header-timeout.
 */
import {
  CLOSE_GOING_AWAY,
  CLOSE_INTERNAL_ERROR,
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_NORMAL,
  CLOSE_POLICY_VIOLATION,
  CLOSE_TOO_BIG,
  CLOSE_UNSUPPORTED_DATA,
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_CONTROL_PAYLOAD,
  writeCloseFrame,
  writePongFrame,
  WS_CLOSE,
  WS_FAIL,
  WS_NEED_MORE,
  WS_PING,
  WS_PONG,
  WS_TEXT,
  WsFrameReader,
} from "../../protocol/wsFrame.ts";
import { SWITCHING_PROTOCOLS_LENGTH, writeSwitchingProtocols } from "../../protocol/wsHandshake.ts";
import type { AddressKey, ConnectionsPerAddress } from "../../policy/connectionsPerAddress.ts";
import {
  CLOSED_BINARY,
  CLOSED_CLIENT,
  CLOSED_EOF,
  CLOSED_FRAME_TIMEOUT,
  CLOSED_IDLE,
  CLOSED_PROTOCOL,
  CLOSED_SHUTDOWN,
  CLOSED_SLOW_READER,
  CLOSED_TOO_BIG,
  CLOSED_UTF8,
  CLOSED_WRITE_ERROR,
  IN_CLOSE,
  IN_PING,
  IN_PONG,
  OUT_CLOSE,
  OUT_PONG,
  UPGRADE_BAD,
  UPGRADE_FULL,
  WsCounters,
} from "../../observe/wsCounters.ts";
import type { Tracker } from "../tracker.ts";
import { BUFFER_BYTES, SMALL_READ, WsBuffers } from "./wsBuffers.ts";
import {
  STATE_CLOSED,
  STATE_CLOSING,
  STATE_OPEN,
  WsConnection,
  WsConnectionSlots,
} from "./wsConnection.ts";
import { WtTracker } from "./wtTracker.ts";
import type { WsPeerKeys } from "../../cluster/wsPeerKeys.ts";
import type { StreamConn } from "../tcp/streamConn.ts";

export interface WsLimits {
  /** Most WebSocket connections open (`--max-ws-connections`); further upgrades get 503. */
  maxConnections: number;
  /** Seconds between announces asked of clients (`--ws-interval`); idle after twice this. */
  interval: number;
  /** A message started must arrive whole within this many ms (`--header-timeout`). */
  messageTimeoutMs: number;
  /** Most bytes queued for one client before it is closed as a slow reader. */
  maxQueuedBytes: number;
}

const SWEEP_MS = 1000;
/** How long a closing connection is given to close its side. */
const CLOSE_WAIT_MS = 2000;
/** How long shutdown waits for closing connections before it cuts them. */
const SHUTDOWN_WAIT_MS = 2000;

/** The close reason counted for a frame reader failure code. */
function failReason(code: number): number {
  switch (code) {
    case CLOSE_UNSUPPORTED_DATA:
      return CLOSED_BINARY;
    case CLOSE_INVALID_DATA:
      return CLOSED_UTF8;
    case CLOSE_TOO_BIG:
      return CLOSED_TOO_BIG;
    default:
      return CLOSED_PROTOCOL;
  }
}

/** The client a handed-over socket serves: the socket peer, or the one a trusted proxy named. */
export interface WsClient {
  family: 4 | 6;
  /** 16 bytes, the address at 0 (4 for IPv4). */
  address: Uint8Array;
}

export class WsServer {
  readonly counters: WsCounters;
  readonly tracker: WtTracker;
  #limits: WsLimits;
  readonly #slots = new WsConnectionSlots();
  readonly #buffers = new WsBuffers();
  /** What connections on the TCP fast path read into (`onReadable`, then `readNow`): they
   *  hold no read buffer of their own while they wait, and each read is consumed at once. */
  readonly #shared = new Uint8Array(BUFFER_BYTES);
  readonly #perAddress: ConnectionsPerAddress | null;
  readonly #dirty: WsConnection[] = [];
  #flushQueued = false;
  #now = performance.now();
  #stopping = false;
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #log: (line: string) => void;
  #loggedError = false;
  readonly #flush = () => this.#flushDirty();
  readonly #queue = (connection: WsConnection) => this.#markDirty(connection);

  constructor(
    tracker: Tracker,
    limits: WsLimits,
    perAddress: ConnectionsPerAddress | null,
    log: (line: string) => void = () => {},
    keys?: WsPeerKeys,
    /** Counters kept from before this server was loaded (lazyWsServer.ts). */
    counters: WsCounters = new WsCounters(),
  ) {
    this.counters = counters;
    this.#limits = limits;
    this.#perAddress = perAddress;
    this.#log = log;
    this.tracker = new WtTracker(
      tracker,
      this.#slots,
      this.#buffers,
      this.counters,
      {
        interval: limits.interval,
        maxQueuedBytes: limits.maxQueuedBytes,
      },
      this.#queue,
      keys,
    );
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
  }

  /** Puts new limits in force (SIGHUP); open connections over a lowered cap stay. */
  setLimits(limits: WsLimits): void {
    this.#limits = limits;
    this.tracker.settings = { interval: limits.interval, maxQueuedBytes: limits.maxQueuedBytes };
  }

  /** No room for another connection (or shutting down): the upgrade gets 503. */
  get full(): boolean {
    return this.#stopping || this.counters.open >= this.#limits.maxConnections;
  }

  /** Counts an upgrade the HTTP server refused: a bad handshake, or `full`. */
  refused(full: boolean): void {
    this.counters.upgradesRefused[full ? UPGRADE_FULL : UPGRADE_BAD]++;
  }

  /** Pooled buffers in use (tests: none once every connection closed). */
  get buffersInUse(): number {
    return this.#buffers.taken;
  }

  /**
   * Takes over an upgraded socket: sends the 101 with `accept`, then serves it. `leftover` holds
   * bytes the client sent after its request head. `addressKey` is the per-address slot the HTTP
   * server took for it (given back when this connection closes), or null.
   */
  adopt(
    conn: StreamConn,
    leftover: Uint8Array,
    accept: string,
    client: WsClient,
    addressKey: AddressKey | null,
  ): void {
    this.#now = performance.now();
    const slot = this.#slots.take();
    const reader = new WsFrameReader(
      DEFAULT_MAX_MESSAGE_BYTES,
      DEFAULT_MAX_MESSAGE_BYTES,
      this.#buffers,
    );
    this.#slots.setAddress(slot, client.address);
    const c = new WsConnection(
      conn,
      slot,
      reader,
      conn.onReadable !== undefined ? this.#shared : this.#buffers.takeSmall(),
      client.family,
      addressKey,
      this.#now,
    );
    this.#bindCallbacks(c);
    this.#slots.set(c);
    this.counters.open++;
    this.counters.opened++;
    c.appendRaw(
      SWITCHING_PROTOCOLS_LENGTH,
      this.#buffers,
      (out, at) => writeSwitchingProtocols(out, at, accept),
    );
    this.#markDirty(c);
    if (leftover.length > 0) this.#consume(c, leftover, leftover.length);
    if (c.state !== STATE_CLOSED) this.#read(c);
  }

  /**
   * Gives `c` its two callbacks (made once per connection, not per read or write), each for both
   * outcomes of its promise (a failed read is an end). Made here, not in `adopt`, so that they
   * hold only the server and `c`, not adopt's arguments (the leftover bytes, the accept value).
   */
  #bindCallbacks(c: WsConnection): void {
    c.onRead = (result) => {
      if (c.small === this.#shared) this.#readable(c, !(result instanceof Error));
      else this.#readDone(c, typeof result === "number" ? result : null);
    };
    c.onWrite = (result) => {
      if (typeof result === "number") this.#written(c, result);
      else this.#writeFailed(c);
    };
  }

  /**
   * Closes every connection with 1001 (going away), lets them finish for up to
   * SHUTDOWN_WAIT_MS, then cuts what is left.
   */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#sweeper);
    for (const c of this.#slots) this.#close(c, CLOSED_SHUTDOWN, CLOSE_GOING_AWAY, "");
    this.#flushDirty();
    const until = performance.now() + SHUTDOWN_WAIT_MS;
    while (this.counters.open > 0 && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const c of this.#slots) this.#release(c);
  }

  // ---------------------------------------------------------------- reading

  #read(c: WsConnection): void {
    if (c.small === this.#shared) {
      c.readPending = true;
      c.conn.onReadable!(c.onRead);
      return;
    }
    const reader = c.reader;
    let buffer = c.small;
    if (reader.midMessage || c.fullRead > 0) {
      // Sized to what is coming: the rest of the frame in progress (of an announce, ~3 KiB),
      // and twice the last read if that came back full (a burst: 2, 4, … 16 KiB).
      const want = Math.max(reader.payloadLeft + SMALL_READ, 2 * c.fullRead);
      buffer = this.#buffers.take(Math.min(want, BUFFER_BYTES));
    }
    c.reading = buffer;
    c.readPending = true;
    c.conn.read(buffer).then(c.onRead, c.onRead);
  }

  #readDone(c: WsConnection, n: number | null): void {
    c.readPending = false;
    const buffer = c.reading;
    c.reading = c.small;
    if (c.state === STATE_CLOSED) {
      this.#giveBack(c, buffer);
      return;
    }
    if (n === null) {
      this.#giveBack(c, buffer);
      this.#ended(c);
      return;
    }
    this.#now = performance.now();
    if (c.state === STATE_OPEN) {
      c.fullRead = n === buffer.length ? n : 0;
      this.#consume(c, buffer, n);
    }
    // Closing: what still comes is read and dropped until the client closes its side.
    this.#giveBack(c, buffer);
    if (c.state !== STATE_CLOSED) this.#read(c);
  }

  /** A fast-path connection may be read: reads what is there into the shared buffer and
   *  consumes it at once (`ok` false: waiting failed, a reset or a close). */
  #readable(c: WsConnection, ok: boolean): void {
    c.readPending = false;
    if (c.state === STATE_CLOSED) return;
    let n: number | null = null;
    if (ok) {
      try {
        n = c.conn.readNow!(this.#shared);
      } catch {
        // A reset: the end.
      }
    }
    if (n === null) {
      this.#ended(c);
      return;
    }
    if (n > 0) {
      this.#now = performance.now();
      // Closing: what still comes is read and dropped until the client closes its side.
      if (c.state === STATE_OPEN) this.#consume(c, this.#shared, n);
    }
    if (c.state !== STATE_CLOSED) this.#read(c);
  }

  #giveBack(c: WsConnection, buffer: Uint8Array): void {
    if (buffer !== c.small) this.#buffers.give(buffer);
    else if (c.state === STATE_CLOSED) this.#buffers.giveSmall(buffer);
  }

  /** Reads the frames in input[0, end) and acts on each event. */
  #consume(c: WsConnection, input: Uint8Array, end: number): void {
    const reader = c.reader;
    reader.feed(input, 0, end);
    for (;;) {
      switch (reader.next()) {
        case WS_NEED_MORE:
          if (!reader.midMessage) {
            c.messageStartMs = 0;
            reader.releaseBuffer();
          } else if (c.messageStartMs === 0) c.messageStartMs = this.#now;
          return;
        case WS_TEXT:
          c.lastMessageMs = this.#now;
          c.messageStartMs = 0;
          try {
            this.tracker.message(c, reader.message);
          } catch (error) {
            // A bug, not a bad message: this connection goes, the server stays.
            if (!this.#loggedError) {
              this.#loggedError = true;
              this.#log(`websocket: internal error on a message (first only): ${error}`);
            }
            this.#close(c, CLOSED_PROTOCOL, CLOSE_INTERNAL_ERROR, "internal error");
            return;
          }
          if (c.state !== STATE_OPEN) return;
          break;
        case WS_PING: {
          this.counters.received[IN_PING]++;
          const payload = reader.payload;
          if (
            c.appendRaw(
              2 + MAX_CONTROL_PAYLOAD,
              this.#buffers,
              (out, at) => writePongFrame(out, at, payload),
            )
          ) {
            this.counters.sent[OUT_PONG]++;
            this.#markDirty(c);
          }
          break;
        }
        case WS_PONG:
          this.counters.received[IN_PONG]++;
          break;
        case WS_CLOSE: {
          this.counters.received[IN_CLOSE]++;
          const code = reader.closeCode;
          this.#close(c, CLOSED_CLIENT, code === CLOSE_NO_STATUS ? 0 : code, "");
          return;
        }
        case WS_FAIL:
          this.#close(c, failReason(reader.failCode), reader.failCode, "");
          return;
      }
    }
  }

  // ---------------------------------------------------------------- writing

  #markDirty(c: WsConnection): void {
    if (c.dirty) return;
    c.dirty = true;
    this.#dirty.push(c);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  #flushDirty(): void {
    this.#flushQueued = false;
    const dirty = this.#dirty;
    // #close may add to the list while it is walked: walk it by index to its end.
    for (let i = 0; i < dirty.length; i++) {
      const c = dirty[i];
      c.dirty = false;
      if (c.overflowed && c.state === STATE_OPEN) {
        this.#close(c, CLOSED_SLOW_READER, CLOSE_POLICY_VIOLATION, "too slow");
      }
      this.#write(c);
    }
    dirty.length = 0;
  }

  #write(c: WsConnection): void {
    if (c.sending !== null || c.state === STATE_CLOSED) return;
    if (c.outLength === 0) {
      if (c.finishAfterWrite) this.#finish(c);
      return;
    }
    c.sending = c.out;
    c.sendAt = 0;
    c.sendEnd = c.outLength;
    c.out = null;
    c.outLength = 0;
    this.counters.queuedBytes += c.sendEnd;
    c.conn.write(c.sending!.subarray(0, c.sendEnd)).then(c.onWrite, c.onWrite);
  }

  #written(c: WsConnection, n: number): void {
    this.counters.queuedBytes -= n;
    c.sendAt += n;
    const sending = c.sending!;
    if (c.state === STATE_CLOSED) {
      this.counters.queuedBytes -= c.sendEnd - c.sendAt;
      c.sending = null;
      this.#buffers.give(sending);
      return;
    }
    if (c.sendAt < c.sendEnd) {
      c.conn.write(sending.subarray(c.sendAt, c.sendEnd)).then(c.onWrite, c.onWrite);
      return;
    }
    c.sending = null;
    this.#buffers.give(sending);
    this.#write(c);
  }

  #writeFailed(c: WsConnection): void {
    const sending = c.sending;
    if (sending !== null) {
      this.counters.queuedBytes -= c.sendEnd - c.sendAt;
      c.sending = null;
      this.#buffers.give(sending);
    }
    if (c.state === STATE_OPEN) {
      this.counters.closed[CLOSED_WRITE_ERROR]++;
      c.closeReason = CLOSED_WRITE_ERROR;
      this.tracker.connectionClosed(c);
    }
    this.#release(c);
  }

  /** Our close frame is written: half-close, and wait for the client's side (or the deadline). */
  #finish(c: WsConnection): void {
    c.finishAfterWrite = false;
    c.conn.closeWrite().catch(() => {});
  }

  // ---------------------------------------------------------------- closing

  /** Starts closing: peers leave, a close frame with `code` (0: none) is queued. */
  #close(c: WsConnection, reason: number, code: number, text: string): void {
    if (c.state !== STATE_OPEN) return;
    c.closeReason = reason;
    this.counters.closed[reason]++;
    this.tracker.connectionClosed(c);
    if (
      c.appendRaw(
        2 + MAX_CONTROL_PAYLOAD,
        this.#buffers,
        (out, at) => writeCloseFrame(out, at, code, text),
      )
    ) {
      this.counters.sent[OUT_CLOSE]++;
    }
    c.state = STATE_CLOSING;
    c.finishAfterWrite = true;
    c.closeDeadlineMs = this.#now + CLOSE_WAIT_MS;
    c.reader.dispose();
    this.#markDirty(c);
  }

  /** The client closed its side (or reset): done, counted as such if it was open. */
  #ended(c: WsConnection): void {
    if (c.state === STATE_OPEN) {
      c.closeReason = CLOSED_EOF;
      this.counters.closed[CLOSED_EOF]++;
      this.tracker.connectionClosed(c);
    }
    this.#release(c);
  }

  /** Closes the socket and frees the connection's slot, buffers and per-address slot. */
  #release(c: WsConnection): void {
    if (c.state === STATE_CLOSED) return;
    if (c.state === STATE_OPEN) this.tracker.connectionClosed(c);
    c.state = STATE_CLOSED;
    try {
      c.conn.close();
    } catch {
      // Already closed.
    }
    this.#slots.release(c);
    this.counters.open--;
    c.reader.dispose();
    if (c.out !== null) {
      this.#buffers.give(c.out);
      c.out = null;
      c.outLength = 0;
    }
    // A read or write in flight holds its buffer until it settles; its callback gives it back.
    if (!c.readPending && c.small !== this.#shared) this.#buffers.giveSmall(c.small);
    if (c.addressKey !== null) {
      this.#perAddress?.close(c.addressKey);
      c.addressKey = null;
    }
  }

  #sweep(): void {
    const now = this.#now = performance.now();
    const idleMs = 2000 * this.#limits.interval;
    const messageMs = this.#limits.messageTimeoutMs;
    for (const c of this.#slots) {
      if (c.state === STATE_OPEN) {
        if (c.messageStartMs > 0 && now - c.messageStartMs > messageMs) {
          this.#close(
            c,
            CLOSED_FRAME_TIMEOUT,
            CLOSE_POLICY_VIOLATION,
            "message not finished in time",
          );
        } else if (now - c.lastMessageMs > idleMs) {
          this.#close(c, CLOSED_IDLE, CLOSE_NORMAL, "idle");
        }
      } else if (c.state === STATE_CLOSING && now > c.closeDeadlineMs) {
        this.#release(c);
      }
    }
    this.counters.pendingOffers = this.tracker.pendingOffers;
    this.counters.peerEntries = this.tracker.peers.size;
  }
}
