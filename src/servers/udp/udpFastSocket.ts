/**
 * The Linux UDP fast path: one UDP socket driven through libc with `recvmmsg`/`sendmmsg` batches.
 * With a no-op BEP 15 responder (bench/udp_fast_echo.ts) it answered about 2× as many datagrams
 * as `Deno.listenDatagram` with a reused buffer, at half the CPU per reply (about 0.1 µs user,
 * 3.4 µs kernel). Use it only where `fastUdpSupport()` says ok; elsewhere keep listenDatagram.
 *
 * Poll mode: a `nonblocking` FFI `poll()` (≤ 200 ms) waits on a pool thread and wakes the isolate;
 * then synchronous `recvmmsg(MSG_DONTWAIT)` batches of 64 are drained, at most 16 per wake-up so
 * other work on the isolate is not starved, and each batch's replies go out in one `sendmmsg`.
 *
 * Linger: each wake-up through the pool thread costs two thread switches and an event-loop turn
 * (about 70 µs of CPU on these VMs, measured: at 100k announces/s in an open loop the socket woke
 * 3,760 times a second for 27 datagrams each and otter's core was 0.93 busy). So after a wake-up
 * that found datagrams, the loop waits `lingerUs` more on its own thread (a blocking `ppoll`) for
 * the next ones, and keeps answering them that way for at most LINGER_BUDGET_MS before it goes
 * back through the event loop, so HTTP, timers and the rest wait at most that long. A wait that
 * times out hands back at once.
 *
 * The batch core is shared with the multi-core path (udpWorkerPool.ts, udpIoWorker.ts):
 * `openUdpFd` binds a socket (SO_REUSEPORT on request), and a `BatchArena` (udpBatchArena.ts)
 * receives a batch, answers it in place and sends the replies. `FastUdpSocket` runs all three
 * steps on one isolate.
 *
 * Host names are not resolved: `open` takes literal IPv4 ("127.0.0.1") and IPv6 ("::1", "::",
 * "[::1]", "::ffff:1.2.3.4") addresses only (`parseIpLiteral`). IPv6 zone ids ("fe80::1%eth0")
 * are not supported.
 */

import {
  AF_INET,
  AF_INET6,
  EINTR,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  lastErrno,
  type Libc,
  libc,
  libcSupport,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from "../../os/libc.ts";
import {
  errorText,
  type UdpListenerFailures,
  type UdpSocketFailures,
} from "../../observe/udpSocketFailures.ts";
import {
  ARENA_SIZE,
  BATCH,
  BatchArena,
  type DatagramHandler,
  NAME_SIZE,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
} from "./udpBatchArena.ts";
import { formatHostPort, formatIpAddress } from "../../protocol/ipAddress.ts";
import { parseIpLiteral, socketError } from "../../os/socketAddress.ts";

/** Re-exported for the tests and tools that bind the way this path does. */
export { parseIpLiteral };

export interface FastUdpCounters {
  /** Datagrams taken from the socket, truncated ones included. */
  received: number;
  /** Replies the kernel accepted. */
  sent: number;
  /** Replies not sent: send buffer full (EAGAIN) or another send error. */
  sendDropped: number;
  /** Datagrams longer than PACKET_CAPACITY, ignored. */
  truncated: number;
  /** `recvmmsg` calls that returned at least one datagram. */
  batches: number;
  /** Handler calls that threw or returned an invalid length; nothing was sent for them. */
  handlerErrors: number;
  /** `recvmmsg` failures other than "queue empty" and EINTR. */
  receiveErrors: number;
  /** Lingers that found datagrams (answered without a pool-thread wake-up). */
  lingerWakes: number;
}

export interface FastUdpOptions {
  /** Where the first handler error is reported, one line (default console.error); later ones
   *  are only counted. */
  log?: (line: string) => void;
  /** SO_REUSEPORT, so several sockets (Workers) can share one port. */
  reusePort?: boolean;
  /** SO_RCVBUF wanted; default 4 MiB. Best effort: SO_RCVBUFFORCE if allowed, else capped by
   *  net.core.rmem_max. The kernel's figure is in `receiveBufferBytes`. */
  receiveBufferBytes?: number;
  /** Most `recvmmsg` batches per wake-up, 1..16 (default 16); lower it to favour other work on the
   *  isolate during a flood. */
  batchesPerWake?: number;
  /** After a wake-up that found datagrams, µs to wait on this thread for more before going back
   *  through the event loop (0..MAX_LINGER_US; default DEFAULT_LINGER_US; 0: never). */
  lingerUs?: number;
}

const POLL_TIMEOUT_MS = 200;
const HEARTBEAT_MS = 10;
const STARVED_MS = 25;
const MAX_BATCHES_PER_WAKE = 16;
export const DEFAULT_LINGER_US = 200;
export const MAX_LINGER_US = 1000;
/** Most time the loop spends answering from lingers before an event-loop turn. */
const LINGER_BUDGET_MS = 1;
const DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024;

/** Arenas with a socket open on them: a module-level reference, so none is ever collected while
 *  the kernel may still write into it. */
const liveArenas = new Set<ArrayBuffer>();

const SUPPORTED = { ok: true } as const;

/** Whether the fast path can run here: Linux, x86_64 or aarch64, glibc's libc.so.6 opened under
 *  an ffi grant (for one of `LIBC_PATHS`, or unscoped). Never throws; gives a one-line reason
 *  when not. */
export function fastUdpSupport(): { ok: true } | { ok: false; reason: string } {
  try {
    const reason = libcSupport();
    return reason === undefined ? SUPPORTED : { ok: false, reason };
  } catch (error) {
    return { ok: false, reason: String(error instanceof Error ? error.message : error) };
  }
}

/**
 * Tells a loop that keeps the isolate busy when timers (and with them HTTP) have not had a turn
 * for a while: a 10 ms heartbeat interval (unref'd) and how late it is. Awaiting an FFI call or a
 * MessageChannel message between bursts of a few ms of work does not let due timers run
 * (measured); `timerTurn()` does, but costs about 1 ms, so loops take it only when `starved`.
 */
export class TimerStarvationGuard {
  #beat = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  start(): void {
    this.#beat = performance.now();
    const timer = setInterval(() => this.#beat = performance.now(), HEARTBEAT_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Whether the heartbeat is more than 25 ms late. */
  get starved(): boolean {
    return performance.now() - this.#beat > STARVED_MS;
  }
}

/** "udp://127.0.0.1:6969", "udp://[::1]:6969": how a listener is named in logs and metrics. */
export function udpListenerUrl(hostname: string, port: number): string {
  return `udp://${formatHostPort(hostname, port)}`;
}

/** The line every UDP path logs for its first handler error (a bug: the datagram went unanswered);
 *  later ones are only counted (`otter_udp_handler_errors_total`). */
export function firstHandlerErrorLine(listener: string, error: unknown): string {
  const text = error instanceof Error ? error.stack ?? error.message : String(error);
  return `UDP ${listener}: handler error, datagram not answered (logged once; all are counted ` +
    `in otter_udp_handler_errors_total): ${text}`;
}

/** One event-loop turn in which due timers run (about 1 ms). */
export function timerTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A bound UDP socket's file descriptor and what `getsockname` says about it. */
export interface BoundUdpFd {
  fd: number;
  /** The bound port (after port 0). */
  port: number;
  family: 4 | 6;
  /** SO_RCVBUF as the kernel reports it (twice the usable size, by Linux convention). */
  receiveBufferBytes: number;
}

/** Set-up calls' sockaddr, socklen and option values; big enough to live off the V8 heap. */
let scratchBuffer: ArrayBuffer | undefined;

/**
 * Opens a non-blocking UDP socket bound to hostname:port (a literal address; "::" is dual-stack
 * with IPV6_V6ONLY=0), with SO_REUSEPORT when asked and SO_RCVBUF best effort. Throws a clear
 * Error (with errno text, e.g. "address in use") when it cannot; the fd is closed then.
 */
export function openUdpFd(
  hostname: string,
  port: number,
  options: FastUdpOptions = {},
): BoundUdpFd {
  const reason = libcSupport();
  if (reason !== undefined) throw new Error(`UDP fast path unavailable: ${reason}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`invalid UDP port ${port}`);
  }
  const wantedBuffer = options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER;
  if (!Number.isInteger(wantedBuffer) || wantedBuffer < 0 || wantedBuffer > 0x3fffffff) {
    throw new RangeError(`invalid receiveBufferBytes ${wantedBuffer}`);
  }
  const ip = parseIpLiteral(hostname);
  if (ip === undefined) {
    throw new TypeError(
      `not a literal IP address: "${hostname}" (the UDP fast path does not resolve names)`,
    );
  }
  const lib = libc();
  const family = ip.family;
  const where = formatHostPort(formatIpAddress(family, ip.bytes), port);
  scratchBuffer ??= new ArrayBuffer(256);
  const bytes = new Uint8Array(scratchBuffer);
  const view = new DataView(scratchBuffer);
  const sockaddr = bytes.subarray(0, 32);
  const socklen = bytes.subarray(32, 36);
  const value = bytes.subarray(36, 40);

  const fd = lib.socket(
    family === 6 ? AF_INET6 : AF_INET,
    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) throw socketError(`socket() for ${where}`, lastErrno());
  const setIntOption = (level: number, name: number, v: number): number => {
    view.setInt32(36, v, true);
    return lib.setsockopt(fd, level, name, value, 4);
  };
  try {
    if (family === 6 && setIntOption(IPPROTO_IPV6, IPV6_V6ONLY, 0) < 0) {
      throw socketError(`IPV6_V6ONLY=0 on ${where}`, lastErrno());
    }
    if (options.reusePort && setIntOption(SOL_SOCKET, SO_REUSEPORT, 1) < 0) {
      throw socketError(`SO_REUSEPORT on ${where}`, lastErrno());
    }
    // Best effort: FORCE needs CAP_NET_ADMIN, plain RCVBUF is capped by net.core.rmem_max.
    if (wantedBuffer > 0 && setIntOption(SOL_SOCKET, SO_RCVBUFFORCE, wantedBuffer) < 0) {
      setIntOption(SOL_SOCKET, SO_RCVBUF, wantedBuffer);
    }

    bytes.fill(0, 0, 32);
    let addressLength: number;
    if (family === 6) {
      view.setUint16(0, AF_INET6, true);
      view.setUint16(2, port, false);
      bytes.set(ip.bytes, 8);
      addressLength = SOCKADDR_IN6_SIZE;
    } else {
      view.setUint16(0, AF_INET, true);
      view.setUint16(2, port, false);
      bytes.set(ip.bytes, 4);
      addressLength = SOCKADDR_IN_SIZE;
    }
    if (lib.bind(fd, sockaddr, addressLength) < 0) {
      throw socketError(`bind UDP ${where}`, lastErrno());
    }

    bytes.fill(0, 0, 32);
    view.setUint32(32, NAME_SIZE, true);
    if (lib.getsockname(fd, sockaddr, socklen) < 0) {
      throw socketError(`getsockname on ${where}`, lastErrno());
    }
    const boundPort = view.getUint16(2, false);

    view.setUint32(32, 4, true);
    view.setInt32(36, 0, true);
    const receiveBufferBytes = lib.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, socklen) < 0
      ? 0
      : view.getInt32(36, true);
    return { fd, port: boundPort, family, receiveBufferBytes };
  } catch (error) {
    lib.close(fd);
    throw error;
  }
}

export class FastUdpSocket implements UdpListenerFailures {
  /** The bound port (after port 0). */
  readonly port: number;
  readonly hostname: string;
  /** "udp://host:port", for logs and metrics. */
  readonly listener: string;
  readonly io = "fast";
  /** 4 for an AF_INET socket, 6 for AF_INET6 (dual-stack: v4 senders arrive v4-mapped). */
  readonly family: 4 | 6;
  /** SO_RCVBUF as the kernel reports it (twice the usable size, by Linux convention). */
  readonly receiveBufferBytes: number;
  readonly counters: FastUdpCounters = {
    received: 0,
    sent: 0,
    sendDropped: 0,
    truncated: 0,
    batches: 0,
    handlerErrors: 0,
    receiveErrors: 0,
    lingerWakes: 0,
  };

  readonly #lib: Libc;
  #fd: number;
  readonly #buffer: ArrayBuffer;
  readonly #arena: BatchArena;
  readonly #pollfd: bigint;
  readonly #batchesPerWake: number;
  /** ppoll's timespec for the linger, or null when lingering is off. */
  readonly #linger: BigInt64Array | null;
  #serving = false;
  #stopping = false;
  #served: Promise<void> | undefined;
  readonly #timers = new TimerStarvationGuard();
  readonly #log: (line: string) => void;
  #handlerErrorLogged = false;

  private constructor(
    lib: Libc,
    bound: BoundUdpFd,
    hostname: string,
    batchesPerWake: number,
    lingerUs: number,
    log: (line: string) => void,
  ) {
    this.#lib = lib;
    this.#log = log;
    this.#fd = bound.fd;
    this.hostname = hostname;
    this.port = bound.port;
    this.listener = udpListenerUrl(hostname, bound.port);
    this.family = bound.family;
    this.receiveBufferBytes = bound.receiveBufferBytes;
    this.#batchesPerWake = batchesPerWake;
    this.#linger = lingerUs === 0 ? null : BigInt64Array.of(0n, BigInt(lingerUs * 1000));
    this.#buffer = new ArrayBuffer(ARENA_SIZE);
    this.#arena = new BatchArena(this.#buffer, 0, bound.family);
    this.#pollfd = this.#arena.pollFor(bound.fd);
    liveArenas.add(this.#buffer);
  }

  /** The last error a handler threw (or a RangeError for a bad reply length), for diagnosis. */
  get lastHandlerError(): unknown {
    return this.#arena.lastHandlerError;
  }

  failures(): UdpSocketFailures {
    return this.counters;
  }

  lastHandlerErrorText(): string | null {
    return errorText(this.#arena.lastHandlerError);
  }

  /** Binds hostname:port ("0.0.0.0", "127.0.0.1", "::" dual-stack with IPV6_V6ONLY=0, "::1", …). Options:
   *  reusePort (SO_REUSEPORT, for several workers on one port), receiveBufferBytes (SO_RCVBUF; default 4 MiB,
   *  best effort). Throws a clear Error (with errno text, e.g. "address in use") when bind fails. */
  static open(hostname: string, port: number, options: FastUdpOptions = {}): FastUdpSocket {
    const batchesPerWake = options.batchesPerWake ?? MAX_BATCHES_PER_WAKE;
    if (
      !Number.isInteger(batchesPerWake) || batchesPerWake < 1 ||
      batchesPerWake > MAX_BATCHES_PER_WAKE
    ) {
      throw new RangeError(`batchesPerWake must be 1..${MAX_BATCHES_PER_WAKE}`);
    }
    const lingerUs = options.lingerUs ?? DEFAULT_LINGER_US;
    if (!Number.isInteger(lingerUs) || lingerUs < 0 || lingerUs > MAX_LINGER_US) {
      throw new RangeError(`lingerUs must be 0..${MAX_LINGER_US}`);
    }
    const bound = openUdpFd(hostname, port, options);
    const log = options.log ?? ((line: string) => console.error(line));
    return new FastUdpSocket(libc(), bound, hostname, batchesPerWake, lingerUs, log);
  }

  /** Runs the receive → handle → sendmmsg loop until close(); poll mode as recommended in the notes (nonblocking FFI
   *  poll wakes the isolate, then synchronous recvmmsg(MSG_DONTWAIT) batches of 64, ≤ 16 batches per wake-up, one
   *  sendmmsg per batch with partial-send retry). Resolves when closed. */
  serve(handler: DatagramHandler): Promise<void> {
    if (this.#fd < 0 || this.#stopping) return Promise.reject(new Error("socket is closed"));
    if (this.#serving) return Promise.reject(new Error("socket is already serving"));
    this.#serving = true;
    const served = this.#loop(handler);
    // close() waits on this one, which never rejects; serve()'s caller sees any failure.
    this.#served = served.then(() => {}, () => {});
    return served;
  }

  /** Stops: sets a flag, waits for the pending poll to return (poll timeout ≤ 200 ms), then closes the fd. */
  async close(): Promise<void> {
    this.#stopping = true;
    if (this.#served !== undefined) await this.#served;
    this.#closeFd();
  }

  async #loop(handler: DatagramHandler): Promise<void> {
    this.#timers.start();
    try {
      while (!this.#stopping) {
        // While this is pending a pool thread owns the pollfd: nothing touches the arena's fd
        // until it settles, and close() waits for it before closing the fd.
        const ready = await this.#lib.poll(this.#pollfd, 1n, POLL_TIMEOUT_MS);
        if (this.#stopping) break;
        if (ready < 0) {
          // errno is lost on the pool thread; EINTR is the likely cause, and retrying is harmless.
          await new Promise((resolve) => setTimeout(resolve, 1));
          continue;
        }
        if (ready > 0 && this.#drainAndLinger(handler) && this.#timers.starved) {
          // The queue still had datagrams after a full drain and timers (clock, cleaning, state
          // saves) and HTTP have not run for a while: give them a turn, or a flood starves them.
          // Only then: a timer turn costs about 1 ms, a third of a full drain's work.
          await timerTurn();
        }
      }
    } finally {
      this.#timers.stop();
      this.#serving = false;
      this.#closeFd();
    }
  }

  #closeFd(): void {
    if (this.#fd < 0) return;
    this.#lib.close(this.#fd);
    this.#fd = -1;
    liveArenas.delete(this.#buffer);
  }

  /** `#drain`, then while lingering finds more datagrams within the budget, `#drain` again.
   *  Returns `#drain`'s last answer: true when it stopped at the cap. */
  #drainAndLinger(handler: DatagramHandler): boolean {
    const linger = this.#linger;
    const capped = this.#drain(handler);
    if (capped || linger === null) return capped;
    const until = performance.now() + LINGER_BUDGET_MS;
    while (!this.#stopping) {
      // Blocks this thread for at most lingerUs: the pollfd is this socket's, and no pool-thread
      // poll is pending now (the loop awaits it before coming here).
      if (this.#lib.ppollBlocking(this.#pollfd, 1n, linger, 0n) <= 0) return false;
      this.counters.lingerWakes++;
      if (this.#drain(handler)) return true;
      if (performance.now() >= until) return false;
    }
    return false;
  }

  /**
   * Receives and answers up to `batchesPerWake` batches, stopping early once the queue is empty.
   * Returns true when it stopped at the cap with datagrams possibly still queued.
   */
  #drain(handler: DatagramHandler): boolean {
    const lib = this.#lib;
    const fd = this.#fd;
    const arena = this.#arena;
    const counters = this.counters;
    for (let batch = 0; batch < this.#batchesPerWake; batch++) {
      const received = arena.receive(lib, fd);
      if (received <= 0) {
        if (received === -EINTR) continue;
        if (received < 0) counters.receiveErrors++;
        return false;
      }
      counters.batches++;
      counters.received += received;
      const sends = arena.answer(received, handler, counters);
      if (sends > 0) arena.send(lib, fd, sends, counters);
      if (counters.handlerErrors !== 0 && !this.#handlerErrorLogged) {
        this.#handlerErrorLogged = true;
        this.#log(firstHandlerErrorLine(this.listener, arena.lastHandlerError));
      }
      // A short batch means the queue was empty a moment ago: let poll() say when there is more,
      // instead of paying a recvmmsg that returns EAGAIN.
      if (received < BATCH) return false;
    }
    return true;
  }
}
