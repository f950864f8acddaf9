/**
 * Warm restart without a database: the whole peer store written to one compact binary file
 * (stateFormat.ts) on graceful stop and every `--state-every` seconds, and read back before the
 * listeners open. A damaged file is set aside (renamed to FILE.corrupt-<time>) and otter starts
 * empty, never half-loaded.
 *
 * Writing goes FILE.tmp → fsync → rename, so a crash mid-save leaves the previous file intact.
 * A periodic save walks the store in slices with a timer turn between them (stateFormat.ts), so
 * announces keep flowing while it runs. The save on stop runs after the listeners closed and is
 * exact.
 *
 * A torrent the access list forbids at restore time is not loaded (and counted in the log line):
 * the list may have changed while the tracker was down.
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { Clock } from "../config/clock.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import { checkState, encodeState, restoreState } from "./stateFormat.ts";
import { fileErrorText } from "../fileErrors.ts";

/** Resolves after one timer turn, so sockets and timers run between slices. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Writes the chunks to `path` atomically: path.tmp, fsync, rename, fsync of the directory. */
export async function writeStateFile(path: string, chunks: Uint8Array[]): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) done += await file.write(chunk.subarray(done));
    }
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
  try {
    const dir = await Deno.open(directoryOf(path), { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch {
    // Not every platform lets a directory be opened and synced; the rename is still atomic.
  }
}

function directoryOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

/** "20240102T030405Z": a file-name-safe UTC time stamp. */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

export interface StateFileOptions {
  /** Seconds between periodic saves (`--state-every`). */
  every: number;
  /** `--peer-timeout`: restored peers this old are dropped. */
  peerTimeout: number;
  log: (line: string) => void;
  /** The access list in force: torrents it forbids are not restored. */
  access?: AccessPolicy;
}

/**
 * The state file of a running tracker: `open` restores it into the (empty) store, then saves
 * every `every` seconds; `close` stops the timer and makes the final save.
 */
export class StateFile {
  readonly path: string;
  readonly #store: SwarmTable;
  readonly #clock: Clock;
  readonly #log: (line: string) => void;
  readonly #access: AccessPolicy | null;
  #every: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #saving: Promise<boolean> | null = null;
  #closed = false;

  private constructor(path: string, store: SwarmTable, clock: Clock, options: StateFileOptions) {
    this.path = path;
    this.#store = store;
    this.#clock = clock;
    this.#every = options.every;
    this.#log = options.log;
    this.#access = options.access ?? null;
  }

  /**
   * Restores `path` into `store` (a missing file starts empty, a damaged one is renamed aside;
   * both are logged) and starts the periodic saves. Throws only if the file exists but cannot be
   * read, since saving would then fail too.
   */
  static async open(
    path: string,
    store: SwarmTable,
    clock: Clock,
    options: StateFileOptions,
  ): Promise<StateFile> {
    const state = new StateFile(path, store, clock, options);
    await state.#restore(options.peerTimeout);
    await state.#checkWritable();
    state.#schedule();
    return state;
  }

  /**
   * Fails at start, with one clear line, when the state could never be saved (no write
   * permission for Deno or the OS, a read-only file system), instead of a failed save later.
   */
  async #checkWritable(): Promise<void> {
    const probe = `${this.path}.tmp`;
    try {
      await Deno.writeFile(probe, new Uint8Array(0));
      await Deno.remove(probe);
    } catch (e) {
      throw new Error(`cannot write state file ${this.path}: ${fileErrorText(e)}`);
    }
  }

  async #restore(peerTimeout: number): Promise<void> {
    const started = performance.now();
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        // A typo in the directory would otherwise only show when the first save fails.
        const dir = directoryOf(this.path);
        const info = await Deno.stat(dir).catch(() => null);
        if (info === null || !info.isDirectory) {
          throw new Error(`state file ${this.path}: directory ${dir} does not exist`);
        }
        this.#log(`state ${this.path}: no such file yet; starting empty`);
        return;
      }
      throw new Error(`cannot read state file ${this.path}: ${fileErrorText(e)}`);
    }
    const checked = checkState(bytes);
    if (typeof checked === "string") {
      const aside = `${this.path}.corrupt-${stamp(this.#clock.wallMs())}`;
      let moved = `moved to ${aside}`;
      try {
        await Deno.rename(this.path, aside);
      } catch (e) {
        moved = `could not move it aside (${fileErrorText(e)})`;
      }
      this.#log(`state ${this.path}: ${checked}; ${moved}; starting empty`);
      return;
    }
    // Wall time, the only clock that spans the restart; a clock stepped back since reads as 0.
    const downSeconds = Math.max(
      0,
      Math.round((this.#clock.wallMs() - checked.savedAtMs) / 1000),
    );
    this.#clock.update();
    const counts = restoreState(
      bytes,
      this.#store,
      this.#clock.now,
      downSeconds,
      peerTimeout,
      this.#access,
    );
    const ms = Math.round(performance.now() - started);
    // Restored + expired + refused + forbidden = the file's peers (refusals are caps;
    // startTracker says which).
    const refused = counts.refused > 0 ? `, ${counts.refused} refused by the store` : "";
    const forbidden = counts.forbidden > 0
      ? `; skipped ${counts.forbidden} torrents (${counts.forbiddenPeers} peers) the access ` +
        "list forbids"
      : "";
    this.#log(
      `state ${this.path}: restored ${counts.torrents} torrents, ${counts.peers} peers ` +
        `(${counts.expired} expired during ${downSeconds} s down${refused})${forbidden} in ${ms} ms`,
    );
  }

  /** Changes the period (SIGHUP); the next save is due `seconds` from now. */
  setEvery(seconds: number): void {
    if (seconds === this.#every) return;
    this.#every = seconds;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      await this.save(true);
      this.#schedule();
    }, this.#every * 1000);
    Deno.unrefTimer(this.#timer);
  }

  /** Saves now (waiting for a save in progress first); resolves false if it failed (logged). */
  async save(sliced = false): Promise<boolean> {
    while (this.#saving !== null) await this.#saving;
    this.#saving = this.#write(sliced);
    try {
      return await this.#saving;
    } finally {
      this.#saving = null;
    }
  }

  async #write(sliced: boolean): Promise<boolean> {
    const started = performance.now();
    try {
      this.#clock.update();
      const encoded = await encodeState(
        this.#store,
        this.#clock.now,
        this.#clock.wallMs(),
        sliced ? nextTurn : null,
      );
      await writeStateFile(this.path, encoded.chunks);
      const ms = Math.round(performance.now() - started);
      this.#log(
        `state ${this.path}: saved ${encoded.torrents} torrents, ` +
          `${encoded.peers4 + encoded.peers6} peers (${encoded.bytes} bytes) in ${ms} ms`,
      );
      return true;
    } catch (e) {
      this.#log(`state ${this.path}: save failed: ${fileErrorText(e)}`);
      return false;
    }
  }

  /** Stops periodic saves and writes the final state (call after the listeners have closed). */
  async close(): Promise<boolean> {
    const abandoned = this.#closed;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (abandoned) {
      while (this.#saving !== null) await this.#saving;
      return false;
    }
    return await this.save(false);
  }

  /**
   * Stops periodic saves, and `close` will not save: for a start that failed (a port in use,
   * perhaps by another otter on the same file), which must not overwrite the file.
   */
  abandon(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
