/**
 * The TCP fast path for plain HTTP listeners (and the WebSockets upgraded on them) on Linux: a
 * listening socket made with libc (socket, SO_REUSEADDR, bind, listen; IPv4 or IPv6, port 0 read
 * back with getsockname), connections taken with `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`, and
 * one epoll instance per listener (epollPoller.ts) driving it and every connection accepted from
 * it (tcpFastConn.ts). It replaces `Deno.listen` where `fastTcpSupport()` says ok (`--tcp-io`):
 * each `Deno.Conn` read and write is a Deno op with its promise and a turn of the event loop, and
 * an idle `Deno.TcpConn` with a read waiting costs about 6.4 KB before any of otter's code
 * (bench/ws_socket_floor.ts); here a read or write that can complete does so at once, and one
 * that waits costs a promise.
 *
 * The listener has what the HTTP server uses of `Deno.Listener`: `addr`, `accept()` (tried at
 * once; waits for the socket's next edge when the backlog is empty) and `close()`. `drained`
 * resolves when the listener and every connection it accepted are closed: the poll loop has
 * ended, with no FFI call pending (Deno's test sanitizers check that).
 *
 * Host names are not resolved: literal addresses only (os/socketAddress.ts `parseIpLiteral`).
 */
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  ECONNABORTED,
  EINTR,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  lastErrno,
  type Libc,
  libc,
  libcSupport,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
} from "../../os/libc.ts";
import {
  parseIpLiteral,
  readSockaddr,
  socketError,
  writeSockaddr,
} from "../../os/socketAddress.ts";
import { formatHostPort, formatIpAddress } from "../../protocol/ipAddress.ts";
import { type EpollClient, EpollPoller, READABLE } from "./epollPoller.ts";
import { FastTcpConn } from "./tcpFastConn.ts";

/** How a TCP listener does its I/O (`--tcp-io`): fast where available, fast, or Deno's. */
export type TcpIo = "auto" | "fast" | "portable";

/** Connections the kernel queues before accept() takes them (capped by net.core.somaxconn). */
const BACKLOG = 4096;
const SOCKLEN_AT = 128;

const SUPPORTED = { ok: true } as const;

/** Whether the fast path can run here: Linux, x86_64 or aarch64, glibc opened under an ffi
 *  grant. Never throws; gives a one-line reason when not. */
export function fastTcpSupport(): { ok: true } | { ok: false; reason: string } {
  try {
    const reason = libcSupport();
    return reason === undefined ? SUPPORTED : { ok: false, reason };
  } catch (error) {
    return { ok: false, reason: String(error instanceof Error ? error.message : error) };
  }
}

/** Whether `io` means the fast path for a listener on `hostname` (a literal address; "auto"
 *  takes the fast path where it is supported). Throws for "fast" where it cannot be had. */
export function useFastTcp(io: TcpIo, hostname: string): boolean {
  if (io === "portable") return false;
  const support = fastTcpSupport();
  const literal = parseIpLiteral(hostname) !== undefined;
  if (io === "fast") {
    if (!support.ok) throw new Error(`--tcp-io fast is not available here: ${support.reason}`);
    if (!literal) {
      throw new TypeError(
        `not a literal IP address: "${hostname}" (the TCP fast path does not resolve names)`,
      );
    }
    return true;
  }
  return support.ok && literal;
}

export class FastTcpListener implements EpollClient {
  readonly addr: Deno.NetAddr;
  readonly #lib: Libc;
  readonly #poller: EpollPoller;
  #fd: number;
  /** accept4's sockaddr and socklen. */
  readonly #scratch = new DataView(new ArrayBuffer(SOCKLEN_AT + 8));
  #acceptDone: ((conn: FastTcpConn) => void) | null = null;
  #acceptFailed: ((reason: unknown) => void) | null = null;

  private constructor(lib: Libc, fd: number, addr: Deno.NetAddr) {
    this.#lib = lib;
    this.#fd = fd;
    this.addr = addr;
    this.#poller = new EpollPoller(lib);
    // On failure `listen` closes fd.
    if (!this.#poller.add(fd, this)) {
      const errno = lastErrno();
      this.#poller.abandon();
      throw socketError("epoll_ctl on the listening socket", errno);
    }
  }

  /** Listens on hostname:port (a literal address; "::" is dual-stack). Throws like `Deno.listen`
   *  (`Deno.errors.AddrInUse`, …), with the errno's text. */
  static listen(hostname: string, port: number): FastTcpListener {
    const reason = libcSupport();
    if (reason !== undefined) throw new Error(`TCP fast path unavailable: ${reason}`);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`invalid TCP port ${port}`);
    }
    const ip = parseIpLiteral(hostname);
    if (ip === undefined) {
      throw new TypeError(
        `not a literal IP address: "${hostname}" (the TCP fast path does not resolve names)`,
      );
    }
    // libc does not ask Deno's permissions: ask for the grant `Deno.listen` would need.
    const host = formatHostPort(hostname, port);
    if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
      throw new Deno.errors.NotCapable(
        `Requires net access to "${host}", run again with the --allow-net flag`,
      );
    }
    const lib = libc();
    const where = formatHostPort(formatIpAddress(ip.family, ip.bytes), port);
    const fd = lib.socket(
      ip.family === 6 ? AF_INET6 : AF_INET,
      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
      0,
    );
    if (fd < 0) throw socketError(`socket() for ${where}`, lastErrno());
    const scratch = new DataView(new ArrayBuffer(SOCKLEN_AT + 8));
    const bytes = new Uint8Array(scratch.buffer);
    const setIntOption = (level: number, name: number, value: number): number => {
      scratch.setInt32(SOCKLEN_AT, value, true);
      return lib.setsockopt(fd, level, name, bytes.subarray(SOCKLEN_AT, SOCKLEN_AT + 4), 4);
    };
    try {
      if (setIntOption(SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
        throw socketError(`SO_REUSEADDR on ${where}`, lastErrno());
      }
      if (ip.family === 6 && setIntOption(IPPROTO_IPV6, IPV6_V6ONLY, 0) < 0) {
        throw socketError(`IPV6_V6ONLY=0 on ${where}`, lastErrno());
      }
      const length = writeSockaddr(scratch, ip.family, ip.bytes, port);
      if (lib.bind(fd, bytes.subarray(0, length), length) < 0) {
        throw socketError(`bind TCP ${where}`, lastErrno());
      }
      if (lib.listen(fd, BACKLOG) < 0) throw socketError(`listen on ${where}`, lastErrno());
      scratch.setUint32(SOCKLEN_AT, SOCKLEN_AT, true);
      if (
        lib.getsockname(fd, bytes.subarray(0, SOCKLEN_AT), bytes.subarray(SOCKLEN_AT)) < 0
      ) {
        throw socketError(`getsockname on ${where}`, lastErrno());
      }
      const addr = readSockaddr(scratch);
      if (addr === null) throw new Error(`getsockname on ${where}: not an IP address`);
      return new FastTcpListener(lib, fd, addr);
    } catch (error) {
      lib.close(fd);
      throw error;
    }
  }

  /** Resolves when the listener and every connection it accepted are closed. */
  get drained(): Promise<void> {
    return this.#poller.idle;
  }

  /** The next connection: at once when one is queued, else when one arrives. */
  accept(): Promise<FastTcpConn> {
    if (this.#fd < 0) return Promise.reject(new Deno.errors.BadResource("the listener is closed"));
    if (this.#acceptDone !== null) {
      return Promise.reject(new Deno.errors.Busy("an accept is already waiting"));
    }
    if (this.#poller.spend()) {
      const taken = this.#acceptOne();
      if (taken !== null) {
        return taken instanceof FastTcpConn ? Promise.resolve(taken) : Promise.reject(taken);
      }
    } else {
      this.#poller.rearm(this.#fd);
    }
    const { promise, resolve, reject } = Promise.withResolvers<FastTcpConn>();
    this.#acceptDone = resolve;
    this.#acceptFailed = reject;
    return promise;
  }

  /** Stops listening (once); a waiting accept is rejected with `BadResource`. Connections
   *  accepted stay open. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    this.#poller.remove(fd);
    this.#lib.close(fd);
    const failed = this.#acceptFailed;
    this.#acceptDone = this.#acceptFailed = null;
    failed?.(new Deno.errors.BadResource("the listener is closed"));
  }

  /** The poller's call: a waiting accept takes the connection that arrived. */
  ready(events: number): void {
    if (this.#acceptDone === null || (events & READABLE) === 0) return;
    const taken = this.#acceptOne();
    if (taken === null) return;
    const done = this.#acceptDone;
    const failed = this.#acceptFailed!;
    this.#acceptDone = this.#acceptFailed = null;
    if (taken instanceof FastTcpConn) done(taken);
    else failed(taken);
  }

  /** accept4 once: a registered connection, null when none is queued, or the error. */
  #acceptOne(): FastTcpConn | Error | null {
    const lib = this.#lib;
    const scratch = this.#scratch;
    const bytes = new Uint8Array(scratch.buffer);
    for (;;) {
      scratch.setUint32(SOCKLEN_AT, SOCKLEN_AT, true);
      const fd = lib.accept4(
        this.#fd,
        bytes.subarray(0, SOCKLEN_AT),
        bytes.subarray(SOCKLEN_AT),
        SOCK_NONBLOCK | SOCK_CLOEXEC,
      );
      if (fd < 0) {
        const errno = lastErrno();
        // Interrupted, or a client that reset before we took it: take the next one.
        if (errno === EINTR || errno === ECONNABORTED) continue;
        if (errno === EAGAIN) return null;
        return socketError("accept4", errno);
      }
      const remote: Deno.NetAddr = readSockaddr(scratch) ??
        { transport: "tcp", hostname: "0.0.0.0", port: 0 };
      const conn = new FastTcpConn(lib, this.#poller, fd, remote);
      if (!this.#poller.add(fd, conn)) {
        const errno = lastErrno();
        lib.close(fd);
        return socketError("epoll_ctl on a connection", errno);
      }
      return conn;
    }
  }
}
