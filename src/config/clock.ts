/**
 * The tracker's clock: whole seconds since process start, starting at 1, from a monotonic source.
 *
 * The store keeps 32-bit relative time stamps, and hot paths read `clock.now` (a field) instead
 * of reading a clock per request. A one-second interval timer advances it; the timer is unref'd
 * so it never keeps the process alive on its own.
 *
 * `now` comes from the monotonic source (`performance.now()`), never from the wall clock: a wall
 * clock stepped by NTP or a VM resume would otherwise age every peer by the step at once (forward
 * past the peer timeout: all expire; backward: all look ~32,000 s old to the store's 15-bit
 * stamps, or `now` goes negative and every connection id is refused). The wall clock is kept for
 * what is truly a wall time: the state file's saved-at stamp, and the age of a restored state,
 * which spans a restart that no monotonic reading survives.
 */

/** Where a Clock reads time; tests pass fakes that step one and not the other. */
export interface TimeSources {
  /** Milliseconds from a source that never steps (only its differences mean anything). */
  monotonicMs(): number;
  /** Milliseconds since the Unix epoch; may step either way at any time. */
  wallMs(): number;
}

/** The process's own clocks, read through the globals at each call. */
export const SYSTEM_TIME: TimeSources = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

export class Clock {
  /** Seconds since start, starting at 1. */
  now = 1;
  readonly #sources: TimeSources;
  readonly #startMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(sources: TimeSources = SYSTEM_TIME) {
    this.#sources = sources;
    this.#startMs = sources.monotonicMs();
  }

  /** Recomputes `now` from the monotonic source. */
  update(): number {
    this.now = 1 + Math.floor((this.#sources.monotonicMs() - this.#startMs) / 1000);
    return this.now;
  }

  /** The wall clock (ms since the Unix epoch): only for wall times (saved-at, file names). */
  wallMs(): number {
    return this.#sources.wallMs();
  }

  /** Starts the once-a-second update. */
  start(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => this.update(), 1000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
