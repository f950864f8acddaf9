/**
 * One accepted connection of the TCP fast path: a non-blocking socket driven through libc, with
 * the part of `Deno.TcpConn` the servers use (streamConn.ts). A read is first tried at once
 * (`recv(MSG_DONTWAIT)`); only when nothing is there does it wait, holding its buffer and its
 * promise's two functions until the poller (epollPoller.ts) reports the socket readable. A write
 * is `send(MSG_DONTWAIT | MSG_NOSIGNAL)` at once and may take part of what it is given, as
 * `Deno.Conn.write` may; with no room at all it waits for the socket to become writable. So an
 * idle connection holds its descriptor number, its peer's address and one waiting read: no op,
 * no buffer of its own, no timer.
 *
 * Errors are Deno's classes (os/socketAddress.ts): a reset rejects the read or write with
 * `Deno.errors.ConnectionReset`, a write after the peer closed with `BrokenPipe`; a read or write
 * after `close()` with `BadResource`, and one waiting when `close()` is called with `Interrupted`.
 * `close()` may be called any number of times.
 */
import {
  EAGAIN,
  EINTR,
  IPPROTO_TCP,
  lastErrno,
  type Libc,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  SHUT_WR,
  TCP_NODELAY,
} from "../../os/libc.ts";
import { readSockaddr, socketError } from "../../os/socketAddress.ts";
import { ENDED, type EpollClient, type EpollPoller, READABLE, WRITABLE } from "./epollPoller.ts";
import type { NoDelayConn } from "./streamConn.ts";

type Settle<T> = (value: T) => void;
type Fail = (reason: unknown) => void;

/** getsockname's sockaddr and socklen, and setsockopt's int: set-up calls only. */
const scratch = new DataView(new ArrayBuffer(160));
const SOCKLEN_AT = 128;

export class FastTcpConn implements NoDelayConn, EpollClient {
  readonly remoteAddr: Deno.NetAddr;
  #fd: number;
  readonly #lib: Libc;
  readonly #poller: EpollPoller;
  /** Where a waiting read goes. */
  #readBuffer: Uint8Array | null = null;
  /** What `onReadable` calls. */
  #readableCallback: ((error?: unknown) => void) | null = null;
  #readDone: Settle<number | null> | null = null;
  /** Data may be waiting: false only since a recv drained the socket and no edge came after. */
  #mayRead = true;
  /** The poller reported the peer's FIN, a reset or an error: readable from now on, with no
   *  edge to say so again, so a read always tries. */
  #peerDone = false;
  #readFailed: Fail | null = null;
  #writeBuffer: Uint8Array | null = null;
  #writeDone: Settle<number> | null = null;
  #writeFailed: Fail | null = null;

  /** Wraps accepted descriptor `fd`; the listener registers it with `poller`. */
  constructor(lib: Libc, poller: EpollPoller, fd: number, remoteAddr: Deno.NetAddr) {
    this.#lib = lib;
    this.#poller = poller;
    this.#fd = fd;
    this.remoteAddr = remoteAddr;
  }

  /** The descriptor, or -1 once closed (tests). */
  get fd(): number {
    return this.#fd;
  }

  /** This end's address (getsockname, asked each time: nothing is kept for it). */
  get localAddr(): Deno.NetAddr {
    if (this.#fd < 0) throw new Deno.errors.BadResource("the connection is closed");
    scratch.setUint32(SOCKLEN_AT, SOCKLEN_AT, true);
    const buffer = new Uint8Array(scratch.buffer);
    if (
      this.#lib.getsockname(this.#fd, buffer.subarray(0, SOCKLEN_AT), buffer.subarray(SOCKLEN_AT)) <
        0
    ) {
      throw socketError("getsockname", lastErrno());
    }
    return readSockaddr(scratch) ?? { transport: "tcp", hostname: "0.0.0.0", port: 0 };
  }

  read(p: Uint8Array): Promise<number | null> {
    const fd = this.#fd;
    if (fd < 0) return Promise.reject(new Deno.errors.BadResource("the connection is closed"));
    if (this.#readDone !== null) {
      return Promise.reject(new Deno.errors.Busy("a read is already waiting"));
    }
    if (p.length === 0) return Promise.resolve(0);
    const poller = this.#poller;
    if (!this.#mayRead) {
      // The last recv drained the socket and no edge came since: nothing to try.
    } else if (poller.spend()) {
      const n = this.#recv(fd, p);
      if (n > 0) return Promise.resolve(n);
      if (n === 0) return Promise.resolve(null);
      if (n !== -EAGAIN) return Promise.reject(socketError("recv", -n));
    } else {
      // This wake-up's share is used up: be reported again next time, after a turn of the loop.
      poller.rearm(fd);
    }
    const { promise, resolve, reject } = Promise.withResolvers<number | null>();
    this.#readBuffer = p;
    this.#readDone = resolve;
    this.#readFailed = reject;
    return promise;
  }

  /**
   * Calls `callback` (with no argument) once the socket may be read: data, its end, or an error,
   * which `readNow` then returns or throws; or with the error if the connection is closed first.
   * It waits holding nothing but `callback` (no buffer, no promise): the WebSocket server passes
   * each connection's one callback and reads with `readNow` into a buffer all its connections
   * share, so an idle one keeps none. When data may already be there it is called in a microtask;
   * when the poller reports the socket, at once.
   */
  onReadable(callback: (error?: unknown) => void): void {
    const fd = this.#fd;
    if (fd < 0 || this.#readDone !== null || this.#readableCallback !== null) {
      const error = fd < 0
        ? new Deno.errors.BadResource("the connection is closed")
        : new Deno.errors.Busy("a read is already waiting");
      queueMicrotask(() => callback(error));
      return;
    }
    if (this.#mayRead) {
      if (this.#poller.spend()) {
        queueMicrotask(callback as () => void);
        return;
      }
      this.#poller.rearm(fd);
    }
    this.#readableCallback = callback;
  }

  /** Reads what is there now, without waiting: the count, null at the end, 0 when nothing is
   *  there (then `onReadable`). Throws Deno's error for a reset or a closed connection. */
  readNow(p: Uint8Array): number | null {
    const fd = this.#fd;
    if (fd < 0) throw new Deno.errors.BadResource("the connection is closed");
    const n = this.#recv(fd, p);
    if (n > 0) return n;
    if (n === 0) return null;
    if (n === -EAGAIN) return 0;
    throw socketError("recv", -n);
  }

  write(p: Uint8Array): Promise<number> {
    const fd = this.#fd;
    if (fd < 0) return Promise.reject(new Deno.errors.BadResource("the connection is closed"));
    if (this.#writeDone !== null) {
      return Promise.reject(new Deno.errors.Busy("a write is already waiting"));
    }
    if (p.length === 0) return Promise.resolve(0);
    const n = this.#send(fd, p);
    if (n >= 0) return Promise.resolve(n);
    if (n !== -EAGAIN) return Promise.reject(socketError("send", -n));
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#writeBuffer = p;
    this.#writeDone = resolve;
    this.#writeFailed = reject;
    return promise;
  }

  /** Half-closes: sends a FIN once what is written has gone; reading goes on. */
  closeWrite(): Promise<void> {
    if (this.#fd < 0) {
      return Promise.reject(new Deno.errors.BadResource("the connection is closed"));
    }
    if (this.#lib.shutdown(this.#fd, SHUT_WR) < 0) {
      return Promise.reject(socketError("shutdown", lastErrno()));
    }
    return Promise.resolve();
  }

  setNoDelay(noDelay = true): void {
    if (this.#fd < 0) throw new Deno.errors.BadResource("the connection is closed");
    scratch.setInt32(0, noDelay ? 1 : 0, true);
    const value = new Uint8Array(scratch.buffer, 0, 4);
    if (this.#lib.setsockopt(this.#fd, IPPROTO_TCP, TCP_NODELAY, value, 4) < 0) {
      throw socketError("setsockopt TCP_NODELAY", lastErrno());
    }
  }

  /** Closes the descriptor (once; later calls do nothing); a waiting read or write is rejected. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    this.#poller.remove(fd);
    this.#lib.close(fd);
    const readFailed = this.#readFailed;
    if (readFailed !== null) {
      this.#clearRead();
      readFailed(new Deno.errors.Interrupted("the connection was closed"));
    }
    const callback = this.#readableCallback;
    if (callback !== null) {
      this.#readableCallback = null;
      // Not from inside the caller's close: the owner is mid-way through closing.
      queueMicrotask(() => callback(new Deno.errors.Interrupted("the connection was closed")));
    }
    const writeFailed = this.#writeFailed;
    if (writeFailed !== null) {
      this.#clearWrite();
      writeFailed(new Deno.errors.Interrupted("the connection was closed"));
    }
  }

  /** The poller's call: tries what waits on what is ready; finding nothing, it waits on. */
  ready(events: number): void {
    if ((events & READABLE) !== 0) {
      this.#mayRead = true;
      if ((events & ENDED) !== 0) this.#peerDone = true;
      if (this.#readDone !== null) this.#readReady();
      else if (this.#readableCallback !== null) {
        const callback = this.#readableCallback;
        this.#readableCallback = null;
        callback();
      }
    }
    if (this.#writeDone !== null && (events & WRITABLE) !== 0) this.#writeReady();
  }

  #readReady(): void {
    const n = this.#recv(this.#fd, this.#readBuffer!);
    if (n === -EAGAIN) return;
    const done = this.#readDone!;
    const failed = this.#readFailed!;
    this.#clearRead();
    if (n >= 0) done(n > 0 ? n : null);
    else failed(socketError("recv", -n));
  }

  #writeReady(): void {
    const n = this.#send(this.#fd, this.#writeBuffer!);
    if (n === -EAGAIN) return;
    const done = this.#writeDone!;
    const failed = this.#writeFailed!;
    this.#clearWrite();
    if (n >= 0) done(n);
    else failed(socketError("send", -n));
  }

  #clearRead(): void {
    this.#readBuffer = null;
    this.#readDone = null;
    this.#readFailed = null;
  }

  #clearWrite(): void {
    this.#writeBuffer = null;
    this.#writeDone = null;
    this.#writeFailed = null;
  }

  /**
   * recv without waiting: the count (0 at the end), or -errno (-EAGAIN: nothing there). A count
   * short of `p` means the queue was empty when the kernel stopped copying, and whatever arrives
   * after that raises a new edge (a FIN or an error too): so the next read waits for the poller
   * instead of paying a recv that finds nothing. Not once the peer's FIN or an error was
   * reported: it stays readable, with no new edge, and may sit behind the data just read.
   */
  #recv(fd: number, p: Uint8Array): number {
    for (;;) {
      const n = this.#lib.recv(fd, p, BigInt(p.length), MSG_DONTWAIT);
      if (n > 0 && n < p.length && !this.#peerDone) this.#mayRead = false;
      if (n >= 0) return n;
      const errno = lastErrno();
      if (errno === EAGAIN) this.#mayRead = false;
      if (errno !== EINTR) return -errno;
    }
  }

  /** send without waiting or SIGPIPE: the count, or -errno (-EAGAIN: no room). */
  #send(fd: number, p: Uint8Array): number {
    for (;;) {
      const n = this.#lib.send(fd, p, BigInt(p.length), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) return n;
      const errno = lastErrno();
      if (errno !== EINTR) return -errno;
    }
  }
}
