/**
 * Keeps an `AccessPolicy` in step with its file: loads it at start, then reloads on SIGHUP and
 * whenever the file changes.
 *
 * The directory is watched rather than the file, because editors and deploy tools replace files by
 * renaming a new one into place, which a watch on the old inode never sees. Events naming the file
 * always reload; other events in the directory (a Kubernetes-style `..data` symlink swap, say)
 * reload only if the file's size, mtime or inode changed. Bursts of events are debounced. Reloads
 * run one at a time. A reload that cannot read the file, or finds only malformed lines, keeps the
 * set in force and logs one line saying why; a deliberately emptied file (blank or comments only)
 * is accepted.
 */
import { dirname, resolve } from "node:path";
import { type AccessPolicy, InfoHashSet } from "./accessList.ts";
import { fileErrorText } from "../fileErrors.ts";

const DEBOUNCE_MS = 100;
/** Problem lines logged per load; the rest are only counted. */
const PROBLEMS_LOGGED = 20;

export interface AccessListWatch {
  /** Stops watching and listening for SIGHUP. */
  close(): void;
  /** Reloads now; resolves true if a new set was put in force. */
  reload(): Promise<boolean>;
}

function signature(info: Deno.FileInfo): string {
  return `${info.size}/${info.mtime?.getTime()}/${info.ino}/${info.dev}`;
}

/**
 * Loads the file into `policy` now (throws a clear Error if it cannot be read), then reloads on
 * SIGHUP (unless `options.signal` is false) and on file change. Problems are logged with line
 * numbers through `log`, one line each.
 */
export async function watchAccessList(
  path: string,
  policy: AccessPolicy,
  log: (line: string) => void,
  options: { signal?: boolean } = {},
): Promise<AccessListWatch> {
  const absolute = resolve(path);
  let loadedSignature = "";
  let closed = false;

  /** Stats before reading, so a change racing the read still looks new next time. */
  async function read(): Promise<{ text: string; info: Deno.FileInfo }> {
    const info = await Deno.stat(absolute);
    const text = await Deno.readTextFile(absolute);
    return { text, info };
  }

  function apply(text: string, info: Deno.FileInfo, atStart: boolean): boolean {
    const { set, problems, problemCount } = InfoHashSet.parse(text);
    for (const p of problems.slice(0, PROBLEMS_LOGGED)) {
      log(`access list ${path}:${p.line}: ${p.reason}, line skipped: ${p.text}`);
    }
    if (problemCount > PROBLEMS_LOGGED) {
      log(`access list ${path}: ${problemCount - PROBLEMS_LOGGED} more malformed lines skipped`);
    }
    if (!atStart && set.size === 0 && problemCount > 0) {
      log(
        `access list ${path}: reload failed, no valid info hash among ${problemCount} malformed ` +
          `lines; keeping the previous ${policy.set.size} info hashes`,
      );
      return false;
    }
    if (closed) return false;
    policy.swap(set);
    loadedSignature = signature(info);
    const skipped = problemCount > 0 ? `, ${problemCount} malformed lines skipped` : "";
    log(`access list ${path}: ${set.size} info hashes in force (${policy.mode}list)${skipped}`);
    return true;
  }

  try {
    const { text, info } = await read();
    apply(text, info, true);
  } catch (error) {
    throw new Error(`cannot read access list '${path}': ${fileErrorText(error)}`);
  }

  async function loadOnce(): Promise<boolean> {
    try {
      const { text, info } = await read();
      return apply(text, info, false);
    } catch (error) {
      log(
        `access list ${path}: reload failed, ${fileErrorText(error)}; keeping the previous ` +
          `${policy.set.size} info hashes`,
      );
      return false;
    }
  }

  // One reload at a time; requests arriving meanwhile share the one queued behind it.
  let tail: Promise<unknown> = Promise.resolve();
  let queued: Promise<boolean> | null = null;
  function reload(): Promise<boolean> {
    if (queued !== null) return queued;
    const run = tail.then(() => {
      queued = null;
      return closed ? false : loadOnce();
    });
    queued = run;
    tail = run;
    return run;
  }

  async function reloadIfChanged(): Promise<void> {
    try {
      if (signature(await Deno.stat(absolute)) === loadedSignature) return;
    } catch {
      return; // gone for now; the event that brings it back will reload
    }
    await reload();
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  let namedFile = false;
  function schedule(namesFile: boolean): void {
    namedFile ||= namesFile;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      const force = namedFile;
      namedFile = false;
      if (force) reload();
      else reloadIfChanged();
    }, DEBOUNCE_MS);
  }

  const directory = dirname(absolute);
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs(directory, { recursive: false });
  } catch (e) {
    throw new Error(`access list ${path}: cannot watch ${directory}: ${fileErrorText(e)}`);
  }
  (async () => {
    try {
      for await (const event of watcher) {
        if (event.kind === "access" || event.kind === "other") continue;
        schedule(event.paths.includes(absolute));
      }
    } catch (error) {
      if (!closed) {
        log(`access list ${path}: stopped watching ${directory}: ${fileErrorText(error)}`);
      }
    }
  })();

  const onHangup = () => {
    log(`access list ${path}: SIGHUP, reloading`);
    reload();
  };
  const useSignal = options.signal !== false && Deno.build.os !== "windows";
  if (useSignal) Deno.addSignalListener("SIGHUP", onHangup);

  return {
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (useSignal) Deno.removeSignalListener("SIGHUP", onHangup);
      watcher.close();
    },
    reload,
  };
}
