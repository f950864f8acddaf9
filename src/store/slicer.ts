/**
 * Cuts long walks over the whole store (the full scrape's copy and sort, the stats walks, the
 * access-list purge) into slices of a few milliseconds with a timer turn in between, so a store of
 * millions of torrents never holds announces back for long. Nothing here knows the store: a walk
 * asks `due()` every few thousand steps and `await pause()`s when it says so, and settles a table
 * resize in progress before it starts (`settleResize`).
 */

/** Work time per slice before yielding to the event loop. */
export const SLICE_MS = 7;

/** Cuts long jobs into slices of at most `budgetMs` of work, and measures them. */
export class Slicer {
  slices = 1;
  maxSliceMs = 0;
  #sliceStart = performance.now();

  constructor(readonly budgetMs = SLICE_MS) {}

  /** Has this slice used its budget? Cheap enough to call every few thousand steps. */
  due(): boolean {
    return performance.now() - this.#sliceStart >= this.budgetMs;
  }

  /** Ends the slice and lets the event loop run timers and I/O before the next one. */
  async pause(): Promise<void> {
    this.#endSlice();
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.slices++;
    this.#sliceStart = performance.now();
  }

  /** Records the slice running now (call when the job is done). */
  finish(): void {
    this.#endSlice();
  }

  #endSlice(): void {
    const ms = performance.now() - this.#sliceStart;
    if (ms > this.maxSliceMs) this.maxSliceMs = ms;
  }
}

/** What `settleResize` needs of the store (SwarmTable has it). */
export interface Resizable {
  readonly resizing: boolean;
  resizeStep(): boolean;
}

/**
 * Finishes the store's running table resize, if any, before a walk over its slots starts: rows
 * change tables while a paused walk waits, so a walk that pauses must start on a settled table.
 * In steps of a millisecond or two with a `pause` after each (a new resize may start during one:
 * it is finished too); without `pause` (an unsliced walk), at once.
 */
export async function settleResize(
  store: Resizable,
  pause: (() => Promise<void>) | null,
): Promise<void> {
  while (store.resizing) {
    store.resizeStep();
    if (pause !== null) await pause();
  }
}
