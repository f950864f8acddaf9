/**
 * The tracker's clock: whole seconds since process start, starting at 1.
 *
 * The store keeps 32-bit relative time stamps, and hot paths read `clock.now` (a field) instead
 * of calling `Date.now()` per request. A one-second interval timer advances it; the timer is
 * unref'd so it never keeps the process alive on its own.
 */
export class Clock {
  /** Seconds since start, starting at 1. */
  now = 1;
  readonly #startMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(startMs = Date.now()) {
    this.#startMs = startMs;
  }

  /** Recomputes `now` from the wall clock. */
  update(): number {
    this.now = 1 + Math.floor((Date.now() - this.#startMs) / 1000);
    return this.now;
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
