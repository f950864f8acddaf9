/**
 * One UDP I/O Worker of the multi-core fast path (udpWorkerPool.ts explains the design): it owns
 * one SO_REUSEPORT socket (opened by the main isolate, whose fd it is given) and does only its
 * syscalls. Round a ring of arenas: it sends every arena the main isolate has answered (oldest
 * first), receives a batch into the next free arena, publishes it and rings the doorbell. So while
 * the main isolate answers batch k, this thread sends earlier batches and receives later ones.
 *
 * Its thread does nothing else, so it blocks: in `Atomics.wait` (≤ 100 ms at a time) for the
 * oldest answer when its socket is empty or every arena is out, and in `poll` (≤ 100 ms) when
 * nothing is out either; both bounds are how fast it notices a stop request. A receive error that means the socket is gone (EBADF, ENOTSOCK) is thrown: the Worker
 * dies, and the pool logs it and closes the socket.
 */
/// <reference lib="deno.worker" />
import { ARENA_SIZE, BatchArena, type SendCounters } from "./udpBatchArena.ts";
import { EINTR, errnoText, libc } from "../../os/libc.ts";
import {
  ARENA_ANSWERED,
  ARENA_FREE,
  ARENA_FULL,
  ARENAS,
  ARENAS_OFFSET,
  C_COUNT,
  C_PHASE,
  C_SENDS,
  C_STATE,
  C_STOP,
  CONTROL_WORDS,
  type IoWorkerStart,
  PHASE_RUNNING,
  PHASE_STOPPED,
  S_BATCHES,
  S_RECEIVE_ERRORS,
  S_RECEIVED,
  S_SEND_DROPPED,
  S_SENT,
  STATS_OFFSET,
  STATS_SLOTS,
  STOP_FAIL,
  STOP_RUN,
} from "./ioWorkerLayout.ts";

const WAIT_MS = 100;
const EBADF = 9;
const ENOTSOCK = 88;

self.onmessage = (event: MessageEvent<IoWorkerStart>) => {
  self.onmessage = null;
  run(event.data);
  self.postMessage("stopped");
};

function run(start: IoWorkerStart): void {
  const lib = libc();
  const { fd, shared } = start;
  const control = new Int32Array(shared, 0, CONTROL_WORDS);
  const stats = new Float64Array(shared, STATS_OFFSET, STATS_SLOTS);
  const doorbell = new Int32Array(start.doorbell);
  const arenas = Array.from(
    { length: ARENAS },
    (_, i) => new BatchArena(shared, ARENAS_OFFSET + i * ARENA_SIZE, start.family),
  );
  const pollfd = arenas[0].pollFor(fd);
  const sendCounters: SendCounters = { sent: 0, sendDropped: 0 };
  let received = 0;
  let batches = 0;
  let receiveErrors = 0;
  /** The arena to receive into next, the oldest one in flight, and how many are in flight. */
  let head = 0;
  let tail = 0;
  let inFlight = 0;

  Atomics.store(control, C_PHASE, PHASE_RUNNING);
  self.postMessage("running");
  for (;;) {
    const stop = Atomics.load(control, C_STOP);
    if (stop === STOP_FAIL) throw new Error("failed on purpose (test)");
    if (stop !== STOP_RUN) break;
    // Replies first, oldest first: the main isolate answers in publishing order.
    while (inFlight > 0 && Atomics.load(control, C_STATE + tail) === ARENA_ANSWERED) {
      arenas[tail].send(lib, fd, control[C_SENDS + tail], sendCounters);
      Atomics.store(control, C_STATE + tail, ARENA_FREE);
      tail = tail + 1 === ARENAS ? 0 : tail + 1;
      inFlight--;
      stats[S_SENT] = sendCounters.sent;
      stats[S_SEND_DROPPED] = sendCounters.sendDropped;
    }
    if (inFlight < ARENAS) {
      const count = arenas[head].receive(lib, fd);
      if (count > 0) {
        received += count;
        batches++;
        stats[S_RECEIVED] = received;
        stats[S_BATCHES] = batches;
        control[C_COUNT + head] = count;
        Atomics.store(control, C_STATE + head, ARENA_FULL);
        Atomics.add(doorbell, 0, 1);
        Atomics.notify(doorbell, 0);
        head = head + 1 === ARENAS ? 0 : head + 1;
        inFlight++;
        continue;
      }
      if (count === -EINTR) continue;
      if (count < 0) {
        const errno = -count;
        if (errno === EBADF || errno === ENOTSOCK) {
          throw new Error(`recvmmsg on fd ${fd}: ${errnoText(errno)}`);
        }
        stats[S_RECEIVE_ERRORS] = ++receiveErrors;
      }
    }
    if (inFlight > 0) {
      // Nothing to receive (or every arena is with the main isolate): wait for the oldest
      // answer before sleeping in poll, so replies never wait for the next datagram.
      Atomics.wait(control, C_STATE + tail, ARENA_FULL, WAIT_MS);
      continue;
    }
    lib.pollBlocking(pollfd, 1n, WAIT_MS);
  }
  Atomics.store(control, C_PHASE, PHASE_STOPPED);
}
