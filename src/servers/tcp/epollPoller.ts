/**
 * One epoll instance and the loop that waits on it, for the TCP fast path (tcpFastListener.ts):
 * a listening socket and every connection accepted from it are registered here, edge-triggered
 * (EPOLLET), once each, for reading and writing. So a connection never needs an `epoll_ctl` to
 * wait: its reads and writes are tried synchronously first (tcpFastConn.ts), and only one that
 * finds nothing to do (EAGAIN) waits for the next edge, which the kernel reports whenever data,
 * room, a FIN or an error arrives after that attempt.
 *
 * One `nonblocking` FFI `epoll_wait` is in flight at a time, on a pool thread; when it returns,
 * every ready descriptor's client is called synchronously, then the wait is re-armed. An eventfd
 * in the set wakes it when the last descriptor goes, so the loop ends (and its pending FFI call
 * with it) as soon as nothing is left to wait for: `idle` says when.
 *
 * Fairness: reads and accepts that complete synchronously run in microtasks, which never yield to
 * timers or to other connections. `spend()` counts them per wake-up; past the budget a client
 * parks instead and asks for `rearm`: an `EPOLL_CTL_MOD` re-reports a descriptor that is still
 * ready, so it is served on the next wake-up, after the event loop has had a turn.
 */
import {
  addressOf,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  lastErrno,
  type Libc,
} from "../../os/libc.ts";
import { socketError } from "../../os/socketAddress.ts";

/** What a registered descriptor is told when it is ready: the epoll event bits. */
export interface EpollClient {
  ready(events: number): void;
}

/** Events one `epoll_wait` returns at most. */
const MAX_EVENTS = 256;
/** Synchronous completions (reads, accepts) allowed between two wake-ups. */
const SYNC_BUDGET = 256;
/** Every descriptor waits for these, edge-triggered. */
const INTEREST = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
/** Events that mean "try reading" and "try writing". */
export const READABLE = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
export const WRITABLE = EPOLLOUT | EPOLLHUP | EPOLLERR;
/** Events after which a socket stays readable: the peer's FIN, a hang-up, an error. */
export const ENDED = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

/** Event arrays with a wait possibly pending on them: never collected while the kernel writes. */
const liveEvents = new Set<ArrayBuffer>();

export class EpollPoller {
  readonly #lib: Libc;
  #epfd: number;
  #wakeFd: number;
  readonly #events: ArrayBuffer;
  readonly #view: DataView;
  readonly #eventsAddress: bigint;
  /** epoll_ctl's event, and the eventfd's 8-byte counter. */
  readonly #scratch = new DataView(new ArrayBuffer(16));
  readonly #counter = new Uint8Array(new ArrayBuffer(8));
  /** Clients by descriptor. */
  readonly #clients: (EpollClient | undefined)[] = [];
  #registered = 0;
  #running = false;
  #ended = false;
  #budget = SYNC_BUDGET;
  readonly #idle: Promise<void>;
  #markIdle: () => void = () => {};

  constructor(lib: Libc) {
    this.#lib = lib;
    const epfd = lib.epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw socketError("epoll_create1", lastErrno());
    const wakeFd = lib.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd < 0) {
      const errno = lastErrno();
      lib.close(epfd);
      throw socketError("eventfd", errno);
    }
    this.#epfd = epfd;
    this.#wakeFd = wakeFd;
    this.#events = new ArrayBuffer(MAX_EVENTS * EPOLL_EVENT_SIZE);
    this.#view = new DataView(this.#events);
    this.#eventsAddress = addressOf(new Uint8Array(this.#events));
    liveEvents.add(this.#events);
    if (!this.#control(EPOLL_CTL_ADD, wakeFd, EPOLLIN | EPOLLET)) {
      const errno = lastErrno();
      this.#closeFds();
      throw socketError("epoll_ctl on the eventfd", errno);
    }
    this.#idle = new Promise((resolve) => this.#markIdle = resolve);
  }

  /** Closes a poller nothing was ever registered with (a listener that failed to start). */
  abandon(): void {
    if (this.#running || this.#ended) return;
    this.#ended = true;
    this.#closeFds();
    this.#markIdle();
  }

  /** Resolves once the loop has ended: every descriptor gone, the epoll and eventfd closed. */
  get idle(): Promise<void> {
    return this.#idle;
  }

  /** Registers `fd` (edge-triggered, reading and writing); false with errno set on failure. */
  add(fd: number, client: EpollClient): boolean {
    if (this.#ended) throw new Error("the poller has ended");
    if (!this.#control(EPOLL_CTL_ADD, fd, INTEREST)) return false;
    this.#clients[fd] = client;
    this.#registered++;
    if (!this.#running) {
      this.#running = true;
      this.#loop();
    }
    return true;
  }

  /**
   * Forgets `fd` before its owner closes it (closing removes it from the epoll set). When it was
   * the last one, wakes the wait so the loop ends.
   */
  remove(fd: number): void {
    if (this.#clients[fd] === undefined) return;
    this.#clients[fd] = undefined;
    if (--this.#registered === 0) this.#wake();
  }

  /**
   * Takes one synchronous completion from this wake-up's budget; false when it is spent, and the
   * caller should park and `rearm` instead.
   */
  spend(): boolean {
    return this.#budget-- > 0;
  }

  /** Has `fd` reported again on the next wake-up if it is still ready (after a spent budget). */
  rearm(fd: number): void {
    this.#control(EPOLL_CTL_MOD, fd, INTEREST);
  }

  #control(op: number, fd: number, events: number): boolean {
    const scratch = this.#scratch;
    scratch.setUint32(0, events >>> 0, true);
    scratch.setUint32(EPOLL_DATA_OFFSET, fd, true);
    scratch.setUint32(EPOLL_DATA_OFFSET + 4, 0, true);
    return this.#lib.epoll_ctl(
      this.#epfd,
      op,
      fd,
      new Uint8Array(scratch.buffer, 0, EPOLL_EVENT_SIZE),
    ) === 0;
  }

  #wake(): void {
    const counter = this.#counter;
    counter.fill(0);
    counter[0] = 1;
    this.#lib.write(this.#wakeFd, counter, 8n);
  }

  async #loop(): Promise<void> {
    const lib = this.#lib;
    const view = this.#view;
    const clients = this.#clients;
    try {
      while (this.#registered > 0) {
        // While this is pending a pool thread owns the events array; nothing here touches it.
        const count = await lib.epoll_wait(this.#epfd, this.#eventsAddress, MAX_EVENTS, -1);
        this.#budget = SYNC_BUDGET;
        if (count < 0) {
          // errno is lost on the pool thread; EINTR is the likely cause, and retrying is harmless.
          await new Promise((resolve) => setTimeout(resolve, 1));
          continue;
        }
        for (let i = 0; i < count; i++) {
          const at = i * EPOLL_EVENT_SIZE;
          const fd = view.getUint32(at + EPOLL_DATA_OFFSET, true);
          if (fd === this.#wakeFd) {
            lib.read(fd, this.#counter, 8n);
            continue;
          }
          const events = view.getUint32(at, true);
          // A descriptor closed after the kernel reported it, or its number reused since: the
          // client tolerates an event with nothing ready (it tries and finds EAGAIN).
          const client = clients[fd];
          if (client === undefined) continue;
          try {
            client.ready(events);
          } catch {
            // A client's bug must not stop every other connection's I/O.
          }
        }
      }
    } finally {
      this.#running = false;
      this.#ended = true;
      this.#closeFds();
      this.#markIdle();
    }
  }

  #closeFds(): void {
    if (this.#epfd >= 0) this.#lib.close(this.#epfd);
    if (this.#wakeFd >= 0) this.#lib.close(this.#wakeFd);
    this.#epfd = this.#wakeFd = -1;
    liveEvents.delete(this.#events);
  }
}
