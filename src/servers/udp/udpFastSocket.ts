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
 * The batch core is shared with the multi-core path (udpWorkerPool.ts, udpIoWorker.ts):
 * `openUdpFd` binds a socket (SO_REUSEPORT on request), and a `BatchArena` receives a batch,
 * answers it in place and sends the replies. `FastUdpSocket` runs all three steps on one isolate.
 *
 * Memory: everything the kernel reads or writes for a batch lives in one arena, allocated once
 * and never moved (an ArrayBuffer or SharedArrayBuffer backing store is off the V8 heap). Its
 * layout, for LP64 little-endian Linux (x86_64, aarch64), offsets in bytes:
 *
 * | region      | offset  | size          | contents                                               |
 * | ----------- | ------- | ------------- | ------------------------------------------------------ |
 * | recv hdrs   | 0       | 64 × 64       | `mmsghdr`: msg_name@0 msg_namelen@8 msg_iov@16          |
 * | send hdrs   | 4096    | 64 × 64       |   msg_iovlen@24 msg_control@32 msg_controllen@40        |
 * |             |         |               |   msg_flags@48, then msg_len@56                         |
 * | recv iovecs | 8192    | 64 × 16       | `iovec`: iov_base@0 iov_len@8                           |
 * | send iovecs | 9216    | 64 × 16       |                                                        |
 * | names       | 10240   | 64 × 32       | sender `sockaddr_in` (16) or `sockaddr_in6` (28)        |
 * | pollfd      | 12288   | 8             | fd@0 events@4 revents@6                                 |
 * | packets     | 16384   | 64 × 2048     | receive slots                                          |
 * | replies     | 147456  | 64 × 4096     | reply slots                                            |
 *
 * A reply goes to the sender's own `sockaddr`: send header j points its msg_name at the name slot
 * of the datagram it answers, so nothing is copied. Per packet the loop writes four u32 words and
 * allocates nothing; the handler gets views that were made once at open.
 *
 * Host names are not resolved: `open` takes literal IPv4 ("127.0.0.1") and IPv6 ("::1", "::",
 * "[::1]", "::ffff:1.2.3.4") addresses only. IPv6 zone ids ("fe80::1%eth0") are not supported.
 */

import {
  addressOf,
  AF_INET,
  AF_INET6,
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAGAIN,
  EINTR,
  errnoText,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  lastErrno,
  type Libc,
  libc,
  libcSupport,
  MSG_DONTWAIT,
  MSG_TRUNC,
  POLLIN,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from "./libc.ts";
import {
  errorText,
  type UdpListenerFailures,
  type UdpSocketFailures,
} from "../../observe/udpSocketFailures.ts";
import {
  formatHostPort,
  formatIpAddress,
  ipv4Mapped,
  parseIpAddress,
} from "../../protocol/ipAddress.ts";

export interface DatagramHandler {
  /** Handles one datagram. `packet` holds `length` valid bytes; `address` (4 or 16 bytes at addressOffset, network
   *  order) and `port` are the sender's; family 4 also for v4-mapped senders on a dual-stack socket. Writes the
   *  reply into `out` (capacity REPLY_CAPACITY bytes, 4096) and returns its length, or 0 to send nothing.
   *  Must not keep references to packet/out/address after returning. */
  handle(
    packet: Uint8Array,
    length: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    out: Uint8Array,
  ): number;
}

export const REPLY_CAPACITY = 4096;
/** Receive slot size: a longer datagram is truncated by the kernel, then ignored and counted. */
export const PACKET_CAPACITY = 2048;
/** Datagrams per `recvmmsg` / `sendmmsg`. */
export const BATCH = 64;

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
}

const POLL_TIMEOUT_MS = 200;
const HEARTBEAT_MS = 10;
const STARVED_MS = 25;
const MAX_BATCHES_PER_WAKE = 16;
const DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024;

const HDR_SIZE = 64;
const IOV_SIZE = 16;
const NAME_SIZE = 32;
const RECV_HDRS = 0;
const SEND_HDRS = RECV_HDRS + BATCH * HDR_SIZE;
const RECV_IOVS = SEND_HDRS + BATCH * HDR_SIZE;
const SEND_IOVS = RECV_IOVS + BATCH * IOV_SIZE;
const NAMES = SEND_IOVS + BATCH * IOV_SIZE;
const POLLFD = NAMES + BATCH * NAME_SIZE;
const PACKETS = 16384;
const REPLIES = PACKETS + BATCH * PACKET_CAPACITY;
/** Bytes of one batch arena (the table above); a multiple of 4096. */
export const ARENA_SIZE = REPLIES + BATCH * REPLY_CAPACITY;

// u32 word indexes of header fields, relative to a header's first word.
const W_NAME_LO = 0;
const W_NAME_HI = 1;
const W_NAMELEN = 2;
const W_FLAGS = 12;
const W_LEN = 14;

const SOCKADDR_IN_SIZE = 16;
const SOCKADDR_IN6_SIZE = 28;

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

/** Counters `BatchArena.answer` keeps. */
export interface AnswerCounters {
  truncated: number;
  handlerErrors: number;
}

/** Counters `BatchArena.send` keeps. */
export interface SendCounters {
  sent: number;
  sendDropped: number;
}

/**
 * One batch's worth of kernel-visible memory (the table above) at `byteOffset` of an ArrayBuffer
 * or SharedArrayBuffer the caller keeps alive and never transfers, and the three steps of a batch:
 * `receive` (recvmmsg), `answer` (the handler, in place), `send` (sendmmsg). Every pointer inside
 * the arena is written by the constructor; the same bytes seen from another thread (a Worker
 * sharing the SharedArrayBuffer) hold the same addresses, so one thread may receive and send while
 * another answers, as long as they hand the arena over with Atomics (udpWorkerPool.ts).
 */
export class BatchArena {
  /** Sender name slot capacity: sockaddr_in6 on an AF_INET6 socket, sockaddr_in otherwise. */
  readonly nameCapacity: number;
  readonly #dualStack: boolean;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  readonly #recvHdrs: Uint8Array<ArrayBufferLike>;
  /** The pollfd's address (`poll` runs on a pool thread, so it takes an address, not a view). */
  readonly #pollfd: bigint;
  /** The send headers from header j on, for partial-send retries. */
  readonly #sendHdrs: Uint8Array<ArrayBufferLike>[] = [];
  readonly #packets: Uint8Array[] = [];
  readonly #replies: Uint8Array[] = [];
  readonly #names: Uint8Array[] = [];
  /** Address of name slot i as two u32 halves, written into send headers. */
  readonly #nameLo = new Uint32Array(BATCH);
  readonly #nameHi = new Uint32Array(BATCH);
  /** The last error a handler threw (or a RangeError for a bad reply length), for diagnosis. */
  lastHandlerError: unknown = undefined;

  /** `family` is the socket's: 6 for AF_INET6 (dual-stack), 4 for AF_INET. */
  constructor(buffer: ArrayBufferLike, byteOffset: number, family: 4 | 6) {
    if (byteOffset % 8 !== 0 || byteOffset + ARENA_SIZE > buffer.byteLength) {
      throw new RangeError(`no room for a batch arena at ${byteOffset}`);
    }
    this.nameCapacity = family === 6 ? SOCKADDR_IN6_SIZE : SOCKADDR_IN_SIZE;
    this.#dualStack = family === 6;
    this.#bytes = new Uint8Array(buffer, byteOffset, ARENA_SIZE);
    this.#words = new Uint32Array(buffer, byteOffset, ARENA_SIZE >> 2);
    this.#recvHdrs = this.#bytes.subarray(RECV_HDRS, SEND_HDRS);
    // The same bytes seen from another thread have the same address: the buffer never moves.
    const baseAddress = addressOf(this.#bytes);
    this.#pollfd = baseAddress + BigInt(POLLFD);
    const view = new DataView(buffer, byteOffset, ARENA_SIZE);
    for (let i = 0; i < BATCH; i++) {
      const recvHdr = RECV_HDRS + i * HDR_SIZE;
      const sendHdr = SEND_HDRS + i * HDR_SIZE;
      const recvIov = RECV_IOVS + i * IOV_SIZE;
      const sendIov = SEND_IOVS + i * IOV_SIZE;
      const name = NAMES + i * NAME_SIZE;
      const packet = PACKETS + i * PACKET_CAPACITY;
      const reply = REPLIES + i * REPLY_CAPACITY;
      view.setBigUint64(recvHdr, baseAddress + BigInt(name), true);
      view.setUint32(recvHdr + 8, this.nameCapacity, true);
      view.setBigUint64(recvHdr + 16, baseAddress + BigInt(recvIov), true);
      view.setBigUint64(recvHdr + 24, 1n, true);
      view.setBigUint64(recvIov, baseAddress + BigInt(packet), true);
      view.setBigUint64(recvIov + 8, BigInt(PACKET_CAPACITY), true);
      // msg_name and namelen of send headers are filled per reply; the iovec length too.
      view.setBigUint64(sendHdr + 16, baseAddress + BigInt(sendIov), true);
      view.setBigUint64(sendHdr + 24, 1n, true);
      view.setBigUint64(sendIov, baseAddress + BigInt(reply), true);
      const nameAddress = baseAddress + BigInt(name);
      this.#nameLo[i] = Number(nameAddress & 0xffffffffn);
      this.#nameHi[i] = Number(nameAddress >> 32n);
      this.#sendHdrs.push(this.#bytes.subarray(sendHdr, SEND_HDRS + BATCH * HDR_SIZE));
      this.#packets.push(this.#bytes.subarray(packet, packet + PACKET_CAPACITY));
      this.#replies.push(this.#bytes.subarray(reply, reply + REPLY_CAPACITY));
      this.#names.push(this.#bytes.subarray(name, name + NAME_SIZE));
    }
  }

  /** The address of the arena's `pollfd`, set up for POLLIN on `fd`, for
   *  `poll(pollfd, 1, timeout)`. */
  pollFor(fd: number): bigint {
    const view = new DataView(this.#bytes.buffer, this.#bytes.byteOffset + POLLFD, 8);
    view.setInt32(0, fd, true);
    view.setUint16(4, POLLIN, true);
    view.setUint16(6, 0, true);
    return this.#pollfd;
  }

  /** One `recvmmsg(MSG_DONTWAIT)` of up to BATCH datagrams into the packet slots. Returns how many
   *  arrived, 0 when the queue is empty, or minus the errno of another failure (-EINTR: retry). */
  receive(lib: Libc, fd: number): number {
    const words = this.#words;
    const nameCapacity = this.nameCapacity;
    // msg_namelen is value-result: the kernel shrinks it to the sender's size.
    for (let i = 0; i < BATCH; i++) {
      words[((RECV_HDRS + i * HDR_SIZE) >> 2) + W_NAMELEN] = nameCapacity;
    }
    const received = lib.recvmmsg(fd, this.#recvHdrs, BATCH, MSG_DONTWAIT, 0n);
    if (received >= 0) return received;
    const errno = lastErrno();
    return errno === EAGAIN ? 0 : -Math.max(errno, 1);
  }

  /** Runs `handler` on the first `received` datagrams, writing each reply into a reply slot and a
   *  send header aimed at its sender's own `sockaddr`. Returns the number of replies to send. */
  answer(received: number, handler: DatagramHandler, counters: AnswerCounters): number {
    const words = this.#words;
    const bytes = this.#bytes;
    const packets = this.#packets;
    const replies = this.#replies;
    const names = this.#names;
    const nameLo = this.#nameLo;
    const nameHi = this.#nameHi;
    const dualStack = this.#dualStack;
    let sends = 0;
    for (let i = 0; i < received; i++) {
      const header = (RECV_HDRS + i * HDR_SIZE) >> 2;
      const length = words[header + W_LEN];
      if ((words[header + W_FLAGS] & MSG_TRUNC) !== 0 || length > PACKET_CAPACITY) {
        counters.truncated++;
        continue;
      }
      const name = NAMES + i * NAME_SIZE;
      let family: 4 | 6 = 4;
      let addressOffset = 4;
      if (dualStack) {
        const nameWord = name >> 2;
        // ::ffff:a.b.c.d: bytes 8..19 of sockaddr_in6 are 0×10, 0xff, 0xff (u32 LE reads).
        if (
          words[nameWord + 2] === 0 && words[nameWord + 3] === 0 &&
          words[nameWord + 4] === 0xffff0000
        ) {
          addressOffset = 20;
        } else {
          family = 6;
          addressOffset = 8;
        }
      }
      const port = (bytes[name + 2] << 8) | bytes[name + 3];
      let replyLength: number;
      try {
        replyLength = handler.handle(
          packets[i],
          length,
          family,
          names[i],
          addressOffset,
          port,
          replies[sends],
        );
      } catch (error) {
        counters.handlerErrors++;
        this.lastHandlerError = error;
        continue;
      }
      if (replyLength === 0) continue;
      if (
        !(replyLength > 0 && replyLength <= REPLY_CAPACITY && (replyLength | 0) === replyLength)
      ) {
        counters.handlerErrors++;
        this.lastHandlerError = new RangeError(`handler returned reply length ${replyLength}`);
        continue;
      }
      const send = (SEND_HDRS + sends * HDR_SIZE) >> 2;
      words[send + W_NAME_LO] = nameLo[i];
      words[send + W_NAME_HI] = nameHi[i];
      words[send + W_NAMELEN] = words[header + W_NAMELEN];
      words[((SEND_IOVS + sends * IOV_SIZE) >> 2) + 2] = replyLength;
      sends++;
    }
    return sends;
  }

  /** Sends the first `count` prepared replies with `sendmmsg`, retrying after partial sends. */
  send(lib: Libc, fd: number, count: number, counters: SendCounters): void {
    let done = 0;
    while (done < count) {
      const sent = lib.sendmmsg(fd, this.#sendHdrs[done], count - done, MSG_DONTWAIT);
      if (sent > 0) {
        counters.sent += sent;
        done += sent;
        continue;
      }
      const errno = sent < 0 ? lastErrno() : EAGAIN;
      if (errno === EINTR) continue;
      if (errno === EAGAIN) {
        // Send buffer full: drop the rest, the clients will retry.
        counters.sendDropped += count - done;
        return;
      }
      // sendmmsg reports an error only for the first message of a call: skip that one.
      counters.sendDropped++;
      done++;
    }
  }
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
  };

  readonly #lib: Libc;
  #fd: number;
  readonly #buffer: ArrayBuffer;
  readonly #arena: BatchArena;
  readonly #pollfd: bigint;
  readonly #batchesPerWake: number;
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
    const bound = openUdpFd(hostname, port, options);
    const log = options.log ?? ((line: string) => console.error(line));
    return new FastUdpSocket(libc(), bound, hostname, batchesPerWake, log);
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
        if (ready > 0 && this.#drain(handler) && this.#timers.starved) {
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

/**
 * The address a fast-path socket binds: protocol/ipAddress.ts's rules, with two for binding. A zone
 * id (`fe80::1%eth0`) is refused: binding a link-local address needs its scope id, which this path
 * does not set. An IPv4-mapped address written as IPv6 stays IPv6 (an AF_INET6 socket on
 * `::ffff:a.b.c.d`), as the operator wrote it. Set-up only: it allocates.
 */
export function parseIpLiteral(text: string): { family: 4 | 6; bytes: Uint8Array } | undefined {
  if (text.includes("%")) return undefined;
  const bytes = new Uint8Array(16);
  const family = parseIpAddress(text, bytes);
  if (family === 0) return undefined;
  if (family === 6) return { family, bytes };
  if (!text.includes(":")) return { family, bytes: bytes.slice(0, 4) };
  ipv4Mapped(bytes);
  return { family: 6, bytes };
}

function socketError(what: string, errno: number): Error {
  const message = `${what} failed: ${errnoText(errno)} (errno ${errno})`;
  if (errno === EADDRINUSE) return new Deno.errors.AddrInUse(message);
  if (errno === EADDRNOTAVAIL) return new Deno.errors.AddrNotAvailable(message);
  if (errno === EACCES) return new Deno.errors.PermissionDenied(message);
  return new Error(message);
}
