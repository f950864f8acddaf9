/**
 * One batch's worth of kernel-visible memory for the UDP fast path, and the three steps of a
 * batch on it: `receive` (recvmmsg), `answer` (the handler, in place), `send` (sendmmsg). Used by
 * the one-socket fast path (udpFastSocket.ts) and by the multi-core one (udpWorkerPool.ts,
 * udpIoWorker.ts).
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
 */
import {
  addressOf,
  EAGAIN,
  EINTR,
  lastErrno,
  type Libc,
  MSG_DONTWAIT,
  MSG_TRUNC,
  POLLIN,
} from "../../os/libc.ts";

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

const HDR_SIZE = 64;
const IOV_SIZE = 16;
export const NAME_SIZE = 32;
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

export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;

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
