/**
 * The memory one UDP I/O Worker shares with the main isolate (udpWorkerPool.ts explains the
 * hand-over): a control block of Int32 words, Float64 statistics the Worker writes, and a ring of
 * batch arenas from byte ARENAS_OFFSET; plus the message that starts a Worker. Both sides import
 * this layout, so neither imports the other.
 *
 * Control block (Int32 words): 0 stop request (1 stop, 2 fail on purpose, for tests), 1 the
 * Worker's phase (0 starting, 1 running, 2 stopped), then per arena its state, its datagram
 * count and its reply count. Then Float64 statistics the Worker writes (read racily, for
 * metrics only). Arenas start at byte 4096.
 */
import { ARENA_SIZE } from "./udpBatchArena.ts";

/** Batch arenas per Worker: a ring, so a Worker can receive ahead while the main isolate answers. */
export const ARENAS = 4;
export const C_STOP = 0;
export const C_PHASE = 1;
export const C_STATE = 8;
export const C_COUNT = C_STATE + ARENAS;
export const C_SENDS = C_COUNT + ARENAS;
export const CONTROL_WORDS = C_SENDS + ARENAS;
export const STATS_OFFSET = CONTROL_WORDS * 4;
export const S_RECEIVED = 0;
export const S_SENT = 1;
export const S_SEND_DROPPED = 2;
export const S_BATCHES = 3;
export const S_RECEIVE_ERRORS = 4;
export const STATS_SLOTS = 8;
export const ARENAS_OFFSET = 4096;
export const SHARED_SIZE = ARENAS_OFFSET + ARENAS * ARENA_SIZE;

export const STOP_RUN = 0;
export const STOP_NOW = 1;
export const STOP_FAIL = 2;
export const ARENA_FREE = 0;
export const ARENA_FULL = 1;
export const ARENA_ANSWERED = 2;
export const PHASE_RUNNING = 1;
export const PHASE_STOPPED = 2;

/** What the main isolate sends a Worker once, to start it. */
export interface IoWorkerStart {
  index: number;
  fd: number;
  family: 4 | 6;
  shared: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
}
