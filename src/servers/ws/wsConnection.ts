/**
 * One WebSocket connection as the server sees it, a pooled record (no object per peer or per
 * message): its socket, frame reader and read buffer, the client's family (the address is in the
 * slots' one array), its deadlines, and its outgoing frames. Frames are written straight into the
 * connection's output buffer (`beginFrame`, then the writer, then `endFrame`), so a reply or an
 * offer is encoded once, where it will be sent from; the server writes the buffer out once per event-loop turn (`WsServer`), and while a write
 * is in flight new frames gather in a second buffer. `queued` is what the client has not taken:
 * past the server's cap the connection is closed as a slow reader (`overflowed`), so a client that
 * does not read cannot make otter buffer without bound.
 *
 * `WsConnectionSlots` numbers the open connections densely (slots are reused), which is how the
 * peer table names a peer's connection.
 */
import {
  MAX_SERVER_HEADER,
  OP_TEXT,
  writeFrameHeader,
  type WsFrameReader,
} from "../../protocol/wsFrame.ts";
import type { AddressKey } from "../../policy/connectionsPerAddress.ts";
import type { WsBuffers } from "./wsBuffers.ts";
import type { StreamConn } from "../tcp/streamConn.ts";

export const STATE_OPEN = 0;
/** A close frame is queued or sent: nothing more is read as a message, nothing more is queued. */
export const STATE_CLOSING = 1;
export const STATE_CLOSED = 2;

/** The header `beginFrame` leaves room for: 4 bytes, a 16-bit length (payloads of 126..65535). */
const GUESSED_HEADER = 4;

export class WsConnection {
  state = STATE_OPEN;
  /** Read into when no message is in progress (see wsBuffers.ts); on the TCP fast path the
   *  server's one shared buffer (wsServer.ts). */
  readonly small: Uint8Array;
  /** The buffer of the read in flight: `small` or a pooled one. */
  reading: Uint8Array;
  /** performance.now() of the last complete message (not control frames): the idle timeout. */
  lastMessageMs: number;
  /** performance.now() when the message in progress started, or 0 when none is. */
  messageStartMs = 0;
  /** performance.now() after which a closing connection is closed whatever the client does. */
  closeDeadlineMs = Infinity;
  /** The close reason counted (index into WS_CLOSES), or -1 before the close started. */
  closeReason = -1;
  /** Frames queued: out[0, outLength); a write in flight sends sending[sendAt, sendEnd). */
  out: Uint8Array | null = null;
  outLength = 0;
  sending: Uint8Array | null = null;
  sendAt = 0;
  sendEnd = 0;
  /** In the server's list of connections to write out at the end of the turn. */
  dirty = false;
  /** The queue passed the cap: close as a slow reader at the end of the turn. */
  overflowed = false;
  /** Once the queue is written: half-close (our close frame is in it). */
  finishAfterWrite = false;
  /** A read is in flight (it holds `reading` until it settles). */
  readPending = false;
  /** The size of the last read's buffer if the read filled it (more is likely waiting), else 0. */
  fullRead = 0;
  /**
   * The server's callbacks for this connection's reads and writes, made once, each taking both
   * outcomes: bytes read (null at the end) or written, or the error.
   */
  onRead: (result: unknown) => void = noop;
  onWrite: (result: unknown) => void = noop;

  constructor(
    readonly conn: StreamConn,
    readonly slot: number,
    readonly reader: WsFrameReader,
    small: Uint8Array,
    /** The client's family; its address is in WsConnectionSlots.addresses at 16 × slot. */
    readonly family: 4 | 6,
    /** The slot taken in the per-address connection count, or null. */
    public addressKey: AddressKey | null,
    now: number,
  ) {
    this.small = small;
    this.reading = small;
    this.lastMessageMs = now;
  }

  /** Bytes queued for the client and not yet taken by the kernel. */
  get queued(): number {
    return this.outLength + this.sendEnd - this.sendAt;
  }

  /**
   * Makes room for one frame of up to `maxPayload` bytes at the end of the queue; returns where
   * its payload goes in `out`, or -1 when the connection is closing or the queue is past `cap`
   * (then the frame is not sent and the connection is marked overflowed). `cap` Infinity: a
   * control frame that must go out.
   */
  beginFrame(maxPayload: number, buffers: WsBuffers, cap: number): number {
    if (this.state !== STATE_OPEN) return -1;
    if (this.queued > cap) {
      this.overflowed = true;
      return -1;
    }
    const need = this.outLength + MAX_SERVER_HEADER + maxPayload;
    const out = this.out;
    if (out === null) {
      this.out = buffers.take(need);
    } else if (out.length < need) {
      let size = out.length * 2;
      while (size < need) size *= 2;
      const grown = buffers.take(size);
      grown.set(out.subarray(0, this.outLength));
      buffers.give(out);
      this.out = grown;
    }
    return this.outLength + GUESSED_HEADER;
  }

  /** Ends the frame whose payload was written at out[payloadStart, payloadEnd). */
  endFrame(payloadStart: number, payloadEnd: number): void {
    const out = this.out!;
    const length = payloadEnd - payloadStart;
    const start = this.outLength;
    if (length >= 126 && length <= 0xffff) {
      writeFrameHeader(out, start, OP_TEXT, length);
    } else {
      // A 2- or 10-byte header: move the payload to sit right after it (the room was reserved).
      const headerEnd = start + (length < 126 ? 2 : MAX_SERVER_HEADER);
      out.copyWithin(headerEnd, payloadStart, payloadEnd);
      writeFrameHeader(out, start, OP_TEXT, length);
    }
    this.outLength = start + (length < 126 ? 2 : length <= 0xffff ? 4 : MAX_SERVER_HEADER) +
      length;
  }

  /**
   * Appends up to `maxBytes` written whole by `write(out, at)` (which returns its end): the 101
   * reply, a control frame. Past any cap: these must go out. False when closing.
   */
  appendRaw(
    maxBytes: number,
    buffers: WsBuffers,
    write: (out: Uint8Array, at: number) => number,
  ): boolean {
    if (this.beginFrame(maxBytes, buffers, Infinity) < 0) return false;
    this.outLength = write(this.out!, this.outLength);
    return true;
  }
}

function noop(): void {}

/** The open connections by slot; freed slots are reused lowest-last. */
export class WsConnectionSlots {
  readonly #connections: (WsConnection | undefined)[] = [];
  readonly #free: number[] = [];
  /**
   * Each slot's client address, 16 bytes at 16 × slot (IPv4 in the first 4): the socket peer, or
   * behind a trusted proxy the address it forwarded. One array, not one per connection.
   */
  addresses = new Uint8Array(16 * 64);

  /** Records the client address (16 bytes from `address[0]`) of the connection in `slot`. */
  setAddress(slot: number, address: Uint8Array): void {
    if (16 * slot + 16 > this.addresses.length) {
      const grown = new Uint8Array(Math.max(2 * this.addresses.length, 16 * slot + 16));
      grown.set(this.addresses);
      this.addresses = grown;
    }
    this.addresses.set(address.subarray(0, 16), 16 * slot);
  }

  /** A slot for a new connection. */
  take(): number {
    return this.#free.pop() ?? this.#connections.length;
  }

  set(connection: WsConnection): void {
    this.#connections[connection.slot] = connection;
  }

  /** The connection at `slot`, if open. */
  get(slot: number): WsConnection | undefined {
    return this.#connections[slot];
  }

  release(connection: WsConnection): void {
    if (this.#connections[connection.slot] !== connection) return;
    this.#connections[connection.slot] = undefined;
    this.#free.push(connection.slot);
  }

  *[Symbol.iterator](): IterableIterator<WsConnection> {
    for (const connection of this.#connections) if (connection !== undefined) yield connection;
  }
}
