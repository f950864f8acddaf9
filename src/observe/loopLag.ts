/**
 * Event-loop pause monitor: a 10 ms interval timer that measures how late each tick fires. A tick
 * that comes 250 ms after the previous one means nothing else could run for about 240 ms (a long
 * synchronous slice, a GC pause, the process not being scheduled), and neither could any reply.
 * Keeps the longest pause since start and the longest over the last minute (60 one-second maxima
 * in a ring), for /metrics and /stats, and the longest since the dashboard last asked
 * (`takeMaxMs`), for its once-a-second series. Costs one timer callback every 10 ms.
 */

const TICK_MS = 10;
const WINDOW_SECONDS = 60;

export class LoopLag {
  /** Longest pause since `start`, in ms (lateness of a tick beyond its 10 ms). */
  maxMs = 0;
  /** Ticks measured. */
  ticks = 0;
  readonly #perSecond = new Float64Array(WINDOW_SECONDS);
  /** Longest pause since the last `takeMaxMs`. */
  #sinceTaken = 0;
  #second = 0;
  #last = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Starts measuring (idempotent); the timer is unref'd, so it never keeps the process alive. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#last = performance.now();
    this.#second = Math.floor(this.#last / 1000);
    const timer = setInterval(() => this.record(performance.now()), TICK_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One tick at `nowMs` (performance.now()); the timer calls it, tests may too. */
  record(nowMs: number): void {
    if (this.ticks === 0 && this.#last === 0) {
      // Not started: the first tick only sets the reference.
      this.#last = nowMs;
      this.#second = Math.floor(nowMs / 1000);
    }
    const lag = nowMs - this.#last - TICK_MS;
    this.#last = nowMs;
    this.ticks++;
    const second = Math.floor(nowMs / 1000);
    this.#advance(second);
    if (lag <= 0) return;
    if (lag > this.maxMs) this.maxMs = lag;
    if (lag > this.#sinceTaken) this.#sinceTaken = lag;
    const i = second % WINDOW_SECONDS;
    if (lag > this.#perSecond[i]) this.#perSecond[i] = lag;
  }

  /** Longest pause in the last 60 seconds, in ms. */
  recentMaxMs(nowMs = performance.now()): number {
    this.#advance(Math.floor(nowMs / 1000));
    let max = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) if (this.#perSecond[i] > max) max = this.#perSecond[i];
    return max;
  }

  /**
   * The longest pause since the previous call (or since start), in ms, and starts over: called
   * once a second, it gives each second its own maximum, which the one-minute window cannot.
   */
  takeMaxMs(): number {
    const max = this.#sinceTaken;
    this.#sinceTaken = 0;
    return max;
  }

  /** Clears the one-second slots that time has moved past. */
  #advance(second: number): void {
    if (second <= this.#second) return;
    const gap = Math.min(second - this.#second, WINDOW_SECONDS);
    for (let s = 1; s <= gap; s++) this.#perSecond[(this.#second + s) % WINDOW_SECONDS] = 0;
    this.#second = second;
  }
}

export const LOOP_LAG_WINDOW_SECONDS = WINDOW_SECONDS;
