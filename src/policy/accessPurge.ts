/**
 * Drops the swarms of torrents an access-list reload has just forbidden (a hash added to the
 * blacklist, or taken off the whitelist), so they leave the store, its counts, /stats and the
 * next state file, instead of lingering until their peers time out.
 *
 * The walk visits every torrent slot once, in slices of SLICE_MS with a timer turn in between
 * (store/slicer.ts), so millions of torrents never stall announces. It goes down from an
 * empty slot, like the cleaner: between slices rows move only by deletion's backward shift,
 * toward their home slot and never across a slot that was empty when the walk began, so a row
 * present at the start cannot slip from the unvisited part into the visited one; dropping a row
 * likewise shifts only visited rows into its place. Rows added meanwhile passed the new policy
 * already. A table resize reshuffles every slot and restarts the walk; after MAX_RESTARTS it
 * finishes in one go. A swap during a walk starts another walk after it, for the newer set.
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { AccessPolicy } from "./accessList.ts";
import { settleResize, SLICE_MS, Slicer } from "../store/slicer.ts";

/** Slots visited between two looks at the slice clock. */
const SLOTS_PER_CHECK = 1024;
/** Table resizes tolerated during one walk before it finishes without yielding. */
const MAX_RESTARTS = 8;

export interface PurgeResult {
  /** Torrents dropped, and the peers they held. */
  torrents: number;
  peers: number;
  /** Wall time of the walk, its slices and its longest slice, in ms. */
  ms: number;
  slices: number;
  maxSliceMs: number;
}

export class ForbiddenSwarmPurge {
  readonly #store: SwarmTable;
  readonly #policy: AccessPolicy;
  readonly #sliceMs: number;
  readonly #onDone: (result: PurgeResult) => void;
  readonly #scratch = new Uint8Array(20);
  /** The policy generation the store was last purged for. */
  #purged: number;
  #running: Promise<PurgeResult> | null = null;
  #stopped = false;

  /** `onDone` gets the totals of each `purge` that ran (for the log). */
  constructor(
    store: SwarmTable,
    policy: AccessPolicy,
    onDone: (result: PurgeResult) => void = () => {},
    sliceMs = SLICE_MS,
  ) {
    this.#store = store;
    this.#policy = policy;
    this.#onDone = onDone;
    this.#sliceMs = sliceMs;
    this.#purged = policy.generation;
  }

  /**
   * Purges the store for the set in force. Resolves when no walk is left to do, with the totals
   * of the walks it waited for; one walk at a time, and a call during a walk shares it (the walk
   * repeats itself if the set changed while it ran).
   */
  purge(): Promise<PurgeResult> {
    if (this.#running !== null) return this.#running;
    const run = this.#walkUntilCurrent().finally(() => {
      this.#running = null;
    });
    this.#running = run;
    return run;
  }

  /** Ends a walk in progress at its next pause (the tracker is stopping). */
  stop(): void {
    this.#stopped = true;
  }

  async #walkUntilCurrent(): Promise<PurgeResult> {
    const started = performance.now();
    const total: PurgeResult = { torrents: 0, peers: 0, ms: 0, slices: 0, maxSliceMs: 0 };
    while (!this.#stopped && this.#purged !== this.#policy.generation) {
      const generation = this.#policy.generation;
      const slicer = new Slicer(this.#sliceMs);
      const done = await this.#walk(slicer, generation, total);
      slicer.finish();
      total.slices += slicer.slices;
      if (slicer.maxSliceMs > total.maxSliceMs) total.maxSliceMs = slicer.maxSliceMs;
      if (done) this.#purged = generation;
    }
    total.ms = performance.now() - started;
    this.#onDone(total);
    return total;
  }

  /** One walk; false if it was cut short (stopped, or the set changed under it). */
  async #walk(slicer: Slicer, generation: number, total: PurgeResult): Promise<boolean> {
    const store = this.#store;
    const policy = this.#policy;
    const hash = this.#scratch;
    for (let restarts = 0;; restarts++) {
      const sliced = restarts < MAX_RESTARTS;
      await settleResize(store, sliced ? () => slicer.pause() : null);
      if (this.#stopped || policy.generation !== generation) return false;
      const capacity = store.slotCount;
      const resizes = store.resizes;
      let empty = 0;
      while (empty < capacity && store.slotInUse(empty)) empty++;
      let slot = empty;
      let resized = false;
      for (let left = capacity; left > 0; left--) {
        slot = slot === 0 ? capacity - 1 : slot - 1;
        if (left % SLOTS_PER_CHECK === 0 && sliced && slicer.due()) {
          await slicer.pause();
          if (this.#stopped || policy.generation !== generation) return false;
          if (store.resizes !== resizes) {
            resized = true;
            break;
          }
        }
        if (!store.slotInUse(slot)) continue;
        store.copyInfoHash(slot, hash, 0);
        if (policy.allows(hash, 0)) continue;
        total.peers += store.dropTorrentAt(slot);
        total.torrents++;
      }
      if (!resized) return true;
    }
  }
}
