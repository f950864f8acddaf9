/**
 * The multi-core UDP fast path (`--workers N`, N > 1): N I/O Workers, each with its own UDP socket
 * bound with SO_REUSEPORT to the same address and port, do the syscalls (poll, recvmmsg,
 * sendmmsg); the main isolate keeps the one peer store and answers every datagram.
 *
 * Why this scales: per announce the server spends about 1 µs in JavaScript (parse, store, reply)
 * and about 4 µs in the kernel receiving and sending. The kernel part runs on the Workers'
 * threads, and a reuseport BPF program spreads datagrams evenly over their sockets; the main
 * thread runs only `UdpTracker.handle` (measured: 1.0–1.3 µs an announce, hand-over included).
 * So throughput grows with cores until the main thread is busy answering, near 1M announces/s;
 * beyond that the store itself would have to be sharded (by info hash) over several threads.
 *
 * Hand-over, without copying: per Worker one SharedArrayBuffer holds a control block and a ring
 * of four batch arenas (udpBatchArena.ts's `BatchArena`, whose pointers are the same in every
 * thread). Arena states, in the control block: FREE (the Worker's: it receives into it) → FULL
 * (the main isolate's: it answers, writing replies and send headers in place) → ANSWERED (the
 * Worker's again: it sends, then FREE). A Worker goes round the ring in order, so the main
 * isolate takes a Worker's arenas in order too; it receives ahead while the main isolate
 * answers, and sends each answered arena as soon as it sees it. A Worker rings its pool's
 * doorbell word after publishing and sleeps in `Atomics.wait` only when its socket is empty
 * and answers are due; the main isolate sleeps in `Atomics.waitAsync` on the doorbell, so it
 * stays free for HTTP and timers. While batches keep coming it answers without awaiting
 * anything, so under a flood it checks a 10 ms heartbeat timer every 16 batches and, when the
 * heartbeat is more than 25 ms late, yields a timer turn (a MessageChannel or FFI turn would not
 * let timers and HTTP run: measured).
 *
 * The shared memory's layout is in ioWorkerLayout.ts.
 */
import {
  type FastUdpOptions,
  firstHandlerErrorLine,
  openUdpFd,
  TimerStarvationGuard,
  timerTurn,
  udpListenerUrl,
} from "./udpFastSocket.ts";
import {
  type AnswerCounters,
  ARENA_SIZE,
  BatchArena,
  type DatagramHandler,
} from "./udpBatchArena.ts";
import {
  errorText,
  type UdpListenerFailures,
  type UdpSocketFailures,
} from "../../observe/udpSocketFailures.ts";
import { type Family, renderFamilies, type Samples } from "../../observe/metricFamily.ts";
import {
  addressOf,
  errnoText,
  lastErrno,
  libc,
  SO_ATTACH_REUSEPORT_CBPF,
  SOL_SOCKET,
} from "../../os/libc.ts";
import {
  ARENA_ANSWERED,
  ARENA_FULL,
  ARENAS,
  ARENAS_OFFSET,
  C_COUNT,
  C_SENDS,
  C_STATE,
  C_STOP,
  CONTROL_WORDS,
  type IoWorkerStart,
  S_BATCHES,
  S_RECEIVE_ERRORS,
  S_RECEIVED,
  S_SEND_DROPPED,
  S_SENT,
  SHARED_SIZE,
  STATS_OFFSET,
  STATS_SLOTS,
  STOP_FAIL,
  STOP_NOW,
} from "./ioWorkerLayout.ts";

/** One Worker's figures. */
export interface UdpWorkerStats {
  /** Datagrams its socket received. */
  received: number;
  /** Replies the kernel accepted. */
  sent: number;
  /** Replies not sent (send buffer full or a send error). */
  sendDropped: number;
  /** `recvmmsg` calls that returned datagrams. */
  batches: number;
  receiveErrors: number;
  /** False once the Worker died (its socket is closed then, so the kernel steers its flows to
   *  the others). */
  alive: boolean;
}

export interface UdpWorkerPoolOptions extends Omit<FastUdpOptions, "reusePort" | "batchesPerWake"> {
  /** Where a Worker's death and the first handler error are reported, one line each. */
  log?: (line: string) => void;
}

/** Batches answered in a row between checks for starved timers. */
const CHECK_EVERY_BATCHES = 16;
/** Longest doorbell wait; bounds how late a close() is noticed if a wake-up is missed. */
const DOORBELL_WAIT_MS = 250;
/** How long close() waits for the Workers to say they stopped (their waits are ≤ 100 ms). */
const STOP_DEADLINE_MS = 1000;

interface IoWorker {
  readonly index: number;
  readonly fd: number;
  readonly worker: Worker;
  readonly control: Int32Array;
  readonly stats: Float64Array;
  readonly arenas: readonly BatchArena[];
  /** The arena the Worker publishes next (it goes round the ring in order). */
  next: number;
  alive: boolean;
  fdOpen: boolean;
  readonly stopped: Promise<void>;
  readonly running: Promise<void>;
}

export class UdpWorkerPool implements UdpListenerFailures {
  readonly hostname: string;
  /** The bound port (after port 0), shared by every Worker's socket. */
  readonly port: number;
  /** "udp://host:port", for logs and metrics. */
  readonly listener: string;
  readonly io = "fast";
  /** 4 for AF_INET sockets, 6 for AF_INET6 (dual-stack). */
  readonly family: 4 | 6;
  readonly receiveBufferBytes: number;
  /** Counted while answering, on the main isolate. */
  readonly counters: AnswerCounters = { truncated: 0, handlerErrors: 0 };
  /** Resolves once every Worker runs its loop (module loaded; until then datagrams wait in the
   *  sockets); rejects if one dies first. */
  readonly ready: Promise<void>;

  readonly #workers: IoWorker[];
  readonly #doorbell: Int32Array;
  readonly #log: (line: string) => void;
  #handlerErrorLogged = false;
  #serving = false;
  #stopping = false;
  #served: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  readonly #timers = new TimerStarvationGuard();

  private constructor(
    hostname: string,
    port: number,
    family: 4 | 6,
    receiveBufferBytes: number,
    fds: number[],
    log: (line: string) => void,
  ) {
    this.hostname = hostname;
    this.port = port;
    this.listener = udpListenerUrl(hostname, port);
    this.family = family;
    this.receiveBufferBytes = receiveBufferBytes;
    this.#log = log;
    const doorbell = new SharedArrayBuffer(64);
    this.#doorbell = new Int32Array(doorbell);
    this.#workers = fds.map((fd, index) => this.#startWorker(index, fd, doorbell));
    this.ready = Promise.all(this.#workers.map((w) => w.running)).then(() => {});
    // Awaiting it is optional: a rejection nobody awaits must not end the process.
    this.ready.catch(() => {});
  }

  /**
   * Binds `workers` (≥ 1) UDP sockets with SO_REUSEPORT on hostname:port (a literal address; port
   * 0: one free port for all) and starts one I/O Worker per socket; throws like
   * `FastUdpSocket.open` (nothing stays open then). The Workers start receiving at once;
   * datagrams wait for `serve`.
   */
  static open(
    hostname: string,
    port: number,
    workers: number,
    options: UdpWorkerPoolOptions = {},
  ): UdpWorkerPool {
    if (!Number.isInteger(workers) || workers < 1 || workers > 1024) {
      throw new RangeError(`invalid worker count ${workers}`);
    }
    const socketOptions: FastUdpOptions = {
      reusePort: true,
      receiveBufferBytes: options.receiveBufferBytes,
    };
    const lib = libc();
    const fds: number[] = [];
    try {
      let bound = port === 0
        ? bindFreeReusePort(hostname, socketOptions)
        : openUdpFd(hostname, port, socketOptions);
      fds.push(bound.fd);
      const first = bound;
      while (fds.length < workers) {
        bound = openUdpFd(hostname, first.port, socketOptions);
        fds.push(bound.fd);
      }
      const log = options.log ?? ((line: string) => console.error(line));
      const refused = spreadEvenly(fds[0], fds.length);
      if (refused !== undefined) {
        log(`UDP port ${first.port}: datagrams go to workers by flow, not evenly: ${refused}`);
      }
      return new UdpWorkerPool(
        hostname,
        first.port,
        first.family,
        first.receiveBufferBytes,
        fds,
        log,
      );
    } catch (error) {
      for (const fd of fds) lib.close(fd);
      throw error;
    }
  }

  /** Number of Workers started. */
  get size(): number {
    return this.#workers.length;
  }

  /** Workers still running. */
  get aliveWorkers(): number {
    let alive = 0;
    for (const w of this.#workers) if (w.alive) alive++;
    return alive;
  }

  /** The last error a handler threw (or a RangeError for a bad reply length), for diagnosis. */
  get lastHandlerError(): unknown {
    let last: unknown = undefined;
    for (const w of this.#workers) {
      for (const arena of w.arenas) last = arena.lastHandlerError ?? last;
    }
    return last;
  }

  /** Counted on the main isolate (truncated, handler errors) and summed over the Workers (a new
   *  object; for metrics, not per packet). */
  failures(): UdpSocketFailures {
    let receiveErrors = 0;
    let sendDropped = 0;
    for (const w of this.#workers) {
      receiveErrors += w.stats[S_RECEIVE_ERRORS];
      sendDropped += w.stats[S_SEND_DROPPED];
    }
    const { truncated, handlerErrors } = this.counters;
    return { truncated, handlerErrors, receiveErrors, sendDropped };
  }

  lastHandlerErrorText(): string | null {
    return errorText(this.lastHandlerError);
  }

  /** Worker `index`'s figures (a new object; for metrics and tests, not per packet). */
  workerStats(index: number): UdpWorkerStats {
    const w = this.#workers[index];
    const s = w.stats;
    return {
      received: s[S_RECEIVED],
      sent: s[S_SENT],
      sendDropped: s[S_SEND_DROPPED],
      batches: s[S_BATCHES],
      receiveErrors: s[S_RECEIVE_ERRORS],
      alive: w.alive,
    };
  }

  /** Answers the Workers' batches with `handler` until close(); resolves when closed. */
  serve(handler: DatagramHandler): Promise<void> {
    if (this.#stopping) return Promise.reject(new Error("socket is closed"));
    if (this.#serving) return Promise.reject(new Error("socket is already serving"));
    this.#serving = true;
    this.#timers.start();
    const served = this.#loop(handler);
    this.#served = served.then(() => {}, () => {});
    return served;
  }

  /** Stops the Workers (a flag in each control block; each notices it within ~100 ms), waits for
   *  them at most 1 s, terminates them, and closes the sockets. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /** For tests: makes Worker `index` throw, as a crash would. */
  failWorkerForTest(index: number): void {
    const control = this.#workers[index].control;
    Atomics.store(control, C_STOP, STOP_FAIL);
    wakeWorker(control);
  }

  async #close(): Promise<void> {
    this.#stopping = true;
    Atomics.add(this.#doorbell, 0, 1);
    Atomics.notify(this.#doorbell, 0);
    for (const w of this.#workers) {
      Atomics.store(w.control, C_STOP, STOP_NOW);
      wakeWorker(w.control);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_DEADLINE_MS);
    });
    await Promise.race([Promise.all(this.#workers.map((w) => w.stopped)), deadline]);
    clearTimeout(timer);
    if (this.#served !== undefined) await this.#served;
    for (const w of this.#workers) this.#retire(w);
    this.#timers.stop();
  }

  /** Ends a Worker and closes its socket (once it can no longer be inside a call on it). */
  #retire(w: IoWorker): void {
    w.alive = false;
    w.worker.terminate();
    if (w.fdOpen) {
      w.fdOpen = false;
      libc().close(w.fd);
    }
  }

  #startWorker(index: number, fd: number, doorbell: SharedArrayBuffer): IoWorker {
    const shared = new SharedArrayBuffer(SHARED_SIZE);
    const worker = new Worker(new URL("./udpIoWorker.ts", import.meta.url), {
      type: "module",
      name: `udp-io-${index}`,
    });
    let stoppedResolve!: () => void;
    const stopped = new Promise<void>((resolve) => stoppedResolve = resolve);
    let runningResolve!: () => void;
    let runningReject!: (error: Error) => void;
    const running = new Promise<void>((resolve, reject) => {
      runningResolve = resolve;
      runningReject = reject;
    });
    running.catch(() => {});
    const w: IoWorker = {
      index,
      fd,
      worker,
      control: new Int32Array(shared, 0, CONTROL_WORDS),
      stats: new Float64Array(shared, STATS_OFFSET, STATS_SLOTS),
      arenas: Array.from(
        { length: ARENAS },
        (_, i) => new BatchArena(shared, ARENAS_OFFSET + i * ARENA_SIZE, this.family),
      ),
      next: 0,
      alive: true,
      fdOpen: true,
      stopped,
      running,
    };
    worker.onmessage = (event: MessageEvent) => {
      if (event.data === "running") runningResolve();
      if (event.data === "stopped") stoppedResolve();
    };
    worker.onerror = (event: ErrorEvent) => {
      // Handled here: otherwise a Worker's uncaught error would end the whole process.
      event.preventDefault();
      stoppedResolve();
      runningReject(new Error(`UDP I/O worker ${index} failed: ${event.message}`));
      if (!w.alive || this.#stopping) return;
      // The thread is out of its loop, so no call can be using the fd: close it, and the
      // kernel spreads this socket's share over the remaining ones.
      this.#retire(w);
      const survivor = this.#workers.find((other) => other.alive);
      if (survivor !== undefined) spreadEvenly(survivor.fd, this.aliveWorkers);
      this.#log(
        `UDP ${this.listener}: I/O worker ${index} died (${event.message}); ` +
          `${this.aliveWorkers} of ${this.#workers.length} left`,
      );
    };
    const start: IoWorkerStart = { index, fd, family: this.family, shared, doorbell };
    worker.postMessage(start);
    return w;
  }

  async #loop(handler: DatagramHandler): Promise<void> {
    const doorbell = this.#doorbell;
    const workers = this.#workers;
    let streak = 0;
    while (!this.#stopping) {
      const rung = Atomics.load(doorbell, 0);
      let answered = 0;
      for (let i = 0; i < workers.length; i++) {
        const w = workers[i];
        if (w.alive) answered += this.#answerWorker(w, handler);
      }
      if (answered > 0) {
        streak += answered;
        if (streak >= CHECK_EVERY_BATCHES) {
          streak = 0;
          if (this.#timers.starved) await timerTurn();
        }
        continue;
      }
      streak = 0;
      const wait = Atomics.waitAsync(doorbell, 0, rung, DOORBELL_WAIT_MS);
      if (wait.async) await wait.value;
    }
  }

  /** Answers the Worker's published arenas, oldest first (at most one round of the ring). */
  #answerWorker(w: IoWorker, handler: DatagramHandler): number {
    const control = w.control;
    let answered = 0;
    while (answered < ARENAS) {
      const slot = w.next;
      if (Atomics.load(control, C_STATE + slot) !== ARENA_FULL) break;
      const received = control[C_COUNT + slot];
      const arena = w.arenas[slot];
      control[C_SENDS + slot] = arena.answer(received, handler, this.counters);
      if (this.counters.handlerErrors !== 0 && !this.#handlerErrorLogged) {
        this.#handlerErrorLogged = true;
        this.#log(firstHandlerErrorLine(this.listener, arena.lastHandlerError));
      }
      Atomics.store(control, C_STATE + slot, ARENA_ANSWERED);
      Atomics.notify(control, C_STATE + slot);
      w.next = slot + 1 === ARENAS ? 0 : slot + 1;
      answered++;
    }
    return answered;
  }
}

/** Program and `sock_fprog` for `spreadEvenly`; off the V8 heap, used by synchronous calls only. */
let steeringBuffer: ArrayBuffer | undefined;

/**
 * Makes the kernel give each datagram for the port to a random socket of its SO_REUSEPORT group
 * (a classic BPF program: `A = random; A %= sockets; return A`), instead of hashing each flow to
 * one socket: a few heavy flows (one big NAT, a load generator's few sockets) would otherwise
 * load the Workers unevenly. BEP 15 is stateless per datagram, so nothing needs flow affinity.
 * Returns an errno text when the kernel refuses (then flows stay hashed), else undefined.
 */
export function spreadEvenly(fd: number, sockets: number): string | undefined {
  steeringBuffer ??= new ArrayBuffer(64);
  const view = new DataView(steeringBuffer);
  const BPF_LD_W_ABS = 0x20;
  const BPF_ALU_MOD_K = 0x94;
  const BPF_RET_A = 0x16;
  const SKF_AD_RANDOM = -0x1000 + 56;
  const program: [number, number][] = [
    [BPF_LD_W_ABS, SKF_AD_RANDOM >>> 0],
    [BPF_ALU_MOD_K, sockets],
    [BPF_RET_A, 0],
  ];
  // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } from byte 16;
  // struct sock_fprog { u16 len; (6 bytes padding) struct sock_filter *filter; } at byte 0.
  program.forEach(([code, k], i) => {
    view.setUint16(16 + i * 8, code, true);
    view.setUint16(16 + i * 8 + 2, 0, true);
    view.setUint32(16 + i * 8 + 4, k, true);
  });
  const bytes = new Uint8Array(steeringBuffer);
  view.setUint16(0, program.length, true);
  view.setBigUint64(8, addressOf(bytes) + 16n, true);
  const lib = libc();
  if (lib.setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes, 16) === 0) return undefined;
  return `SO_ATTACH_REUSEPORT_CBPF: ${errnoText(lastErrno())}`;
}

/** Wakes a Worker sleeping in `Atomics.wait` on any arena state. */
function wakeWorker(control: Int32Array): void {
  for (let i = 0; i < ARENAS; i++) Atomics.notify(control, C_STATE + i);
}

/** A port that was free for every socket a moment ago, bound with SO_REUSEPORT. Port 0 with
 *  SO_REUSEPORT could pick a port another SO_REUSEPORT socket of this user holds (Linux does not
 *  count those as in use), and this pool would then share its traffic; a probe without the
 *  option finds a port nobody holds. */
function bindFreeReusePort(hostname: string, options: FastUdpOptions) {
  const lib = libc();
  for (let attempt = 0;; attempt++) {
    const probe = openUdpFd(hostname, 0, { receiveBufferBytes: 0 });
    lib.close(probe.fd);
    try {
      return openUdpFd(hostname, probe.port, options);
    } catch (error) {
      // Someone took it in between: try another one.
      if (!(error instanceof Deno.errors.AddrInUse) || attempt >= 10) throw error;
    }
  }
}

/** A Worker figure as samples: one per Worker of every pool. */
function perWorker(
  figure: (stats: UdpWorkerStats) => number,
): (pools: readonly UdpWorkerPool[]) => Samples {
  return (pools) =>
    pools.flatMap((pool) =>
      Array.from({ length: pool.size }, (_, i) => {
        const labels = `listener="${pool.listener}",worker="${i}"`;
        return [labels, figure(pool.workerStats(i))] as const;
      })
    );
}

const WORKER_FAMILIES: readonly Family<readonly UdpWorkerPool[]>[] = [
  [
    "otter_udp_worker_packets_total",
    "counter",
    "UDP datagrams received by each I/O worker's socket.",
    perWorker((s) => s.received),
  ],
  [
    "otter_udp_worker_replies_total",
    "counter",
    "UDP replies sent by each I/O worker.",
    perWorker((s) => s.sent),
  ],
  [
    "otter_udp_worker_send_dropped_total",
    "counter",
    "UDP replies an I/O worker could not send (send buffer full or a send error).",
    perWorker((s) => s.sendDropped),
  ],
  [
    "otter_udp_worker_batches_total",
    "counter",
    "recvmmsg batches each I/O worker received.",
    perWorker((s) => s.batches),
  ],
  [
    "otter_udp_worker_up",
    "gauge",
    "1 while the I/O worker runs, 0 once it died.",
    perWorker((s) => s.alive ? 1 : 0),
  ],
];

/** Prometheus lines for the pools' Workers (appended to /metrics), or "" without pools. */
export function renderWorkerMetrics(pools: readonly UdpWorkerPool[]): string {
  if (pools.length === 0) return "";
  const lines: string[] = [];
  renderFamilies(lines, WORKER_FAMILIES, pools);
  return lines.join("\n") + "\n";
}
