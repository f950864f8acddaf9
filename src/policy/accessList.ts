/**
 * Access lists (`--whitelist FILE` / `--blacklist FILE`): parsing the hex file format into an
 * `InfoHashSet`, and the `AccessPolicy` asked wherever a torrent can show: announces and scrapes,
 * the full scrape and the stats that list torrents, the state file's restore and the cluster's
 * incoming changes. A reload that forbids torrents also drops their swarms (accessPurge.ts).
 *
 * The set is an open-addressing table keyed by HalfSipHash with a random per-set key, so nobody
 * can craft info hashes that collide; the hashes themselves sit back to back in one Uint8Array,
 * so a million-entry list costs ~36 MB and no object per hash. The policy holds one set at a time
 * and `swap` replaces it in one assignment: a request sees the old set or the new, never a mix.
 *
 * File format: one 40-digit hex info hash per line (either case), surrounding blanks ignored, an
 * optional `# comment` after it; blank lines and lines starting with `#` are skipped; CRLF line
 * ends and a leading BOM are fine. Any other line is a problem, reported with its line number and
 * skipped. Duplicate hashes are kept once.
 */
import { hashBytes, randomKey } from "../hash/halfSipHash.ts";

/** The failure reason sent for a refused announce (opentracker's wording). */
export const ACCESS_DENIED_REASON =
  "Requested download is not authorized for use with this tracker.";

export interface AccessListProblem {
  /** 1-based line number. */
  line: number;
  /** The line as written (trimmed, cut to 100 characters). */
  text: string;
  reason: string;
}

/** Problems kept per parse; `problemCount` still counts them all. */
const MAX_PROBLEMS_KEPT = 1000;
const HASH_BYTES = 20;

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;

function isSpaceTabOrCr(c: number): boolean {
  return c === 32 || c === 9 || c === 13;
}

function hexAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c < 128 ? HEX[c] : -1;
}

export class InfoHashSet {
  readonly #k0: number;
  readonly #k1: number;
  /** Distinct hashes back to back, 20 bytes each. */
  readonly #keys: Uint8Array;
  readonly #size: number;
  /** Per slot: [entry index + 1 (0 = empty), hash of the entry]. */
  readonly #slots: Int32Array;
  readonly #mask: number;

  private constructor(key: Uint32Array, keys: Uint8Array, count: number) {
    this.#k0 = key[0];
    this.#k1 = key[1];
    let capacity = 16;
    while (capacity < count * 2) capacity *= 2; // load ≤ 1/2 keeps probe runs short
    this.#mask = capacity - 1;
    const slots = new Int32Array(capacity * 2);
    let size = 0;
    for (let j = 0; j < count; j++) {
      const h = hashBytes(this.#k0, this.#k1, keys, j * HASH_BYTES, HASH_BYTES) | 0;
      let i = h & this.#mask;
      let duplicate = false;
      for (let e = slots[i * 2]; e !== 0; e = slots[i * 2]) {
        if (slots[i * 2 + 1] === h && sameHash(keys, (e - 1) * HASH_BYTES, keys, j * HASH_BYTES)) {
          duplicate = true;
          break;
        }
        i = (i + 1) & this.#mask;
      }
      if (duplicate) continue;
      if (size !== j) keys.copyWithin(size * HASH_BYTES, j * HASH_BYTES, (j + 1) * HASH_BYTES);
      slots[i * 2] = ++size;
      slots[i * 2 + 1] = h;
    }
    this.#keys = keys.length === size * HASH_BYTES ? keys : keys.slice(0, size * HASH_BYTES);
    this.#size = size;
    this.#slots = slots;
  }

  /** An empty set. */
  static empty(): InfoHashSet {
    return new InfoHashSet(randomKey(), new Uint8Array(0), 0);
  }

  /**
   * Parses an access-list file's text. `key` is the HalfSipHash key (random if omitted).
   * `problems` holds at most the first 1000 malformed lines; `problemCount` counts all of them.
   */
  static parse(
    text: string,
    key: Uint32Array = randomKey(),
  ): { set: InfoHashSet; problems: AccessListProblem[]; problemCount: number } {
    const problems: AccessListProblem[] = [];
    let problemCount = 0;
    const report = (line: number, start: number, end: number, reason: string) => {
      problemCount++;
      if (problems.length < MAX_PROBLEMS_KEPT) {
        problems.push({ line, text: text.slice(start, Math.min(end, start + 100)), reason });
      }
    };
    const length = text.length;
    // Each hash needs 40 characters plus a line break, which bounds the count from above.
    const keys = new Uint8Array(Math.floor((length + 1) / 41) * HASH_BYTES);
    let count = 0;
    let line = 0;
    let next = text.charCodeAt(0) === 0xfeff ? 1 : 0;
    while (next < length) {
      line++;
      let end = text.indexOf("\n", next);
      if (end < 0) end = length;
      let start = next;
      next = end + 1;
      while (start < end && isSpaceTabOrCr(text.charCodeAt(start))) start++;
      while (end > start && isSpaceTabOrCr(text.charCodeAt(end - 1))) end--;
      if (start === end || text.charCodeAt(start) === 35) continue;

      let i = start;
      const out = count * HASH_BYTES;
      for (; i < end && i < start + 40; i += 2) {
        const hi = hexAt(text, i);
        const lo = i + 1 < end ? hexAt(text, i + 1) : -2;
        if (hi < 0 || lo < 0) break;
        keys[out + ((i - start) >> 1)] = (hi << 4) | lo;
      }
      if (i < start + 40) {
        const bad = i < end && hexAt(text, i) < 0 ? i : i + 1;
        report(
          line,
          start,
          end,
          bad < end
            ? `'${text[bad]}' at column ${bad - start + 1} is not a hex digit`
            : `only ${end - start} characters; an info hash is 40 hex digits`,
        );
        continue;
      }
      if (i < end) {
        if (hexAt(text, i) >= 0) {
          report(line, start, end, "more than 40 hex digits");
          continue;
        }
        while (isSpaceTabOrCr(text.charCodeAt(i))) i++;
        if (text.charCodeAt(i) !== 35) {
          report(line, start, end, "text after the info hash (comments start with #)");
          continue;
        }
      }
      count++;
    }
    return { set: new InfoHashSet(key, keys, count), problems, problemCount };
  }

  /** Number of distinct info hashes. */
  get size(): number {
    return this.#size;
  }

  /** Is the 20-byte info hash at `offset` in the set? Allocates nothing. */
  has(infoHash: Uint8Array, offset: number): boolean {
    if (this.#size === 0) return false;
    const slots = this.#slots;
    const mask = this.#mask;
    const h = hashBytes(this.#k0, this.#k1, infoHash, offset, HASH_BYTES) | 0;
    let i = h & mask;
    for (let e = slots[i * 2]; e !== 0; e = slots[i * 2]) {
      if (
        slots[i * 2 + 1] === h && sameHash(this.#keys, (e - 1) * HASH_BYTES, infoHash, offset)
      ) return true;
      i = (i + 1) & mask;
    }
    return false;
  }
}

function sameHash(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let k = 0; k < HASH_BYTES; k++) {
    if (a[ao + k] !== b[bo + k]) return false;
  }
  return true;
}

export type AccessMode = "white" | "black" | "off";

/** What the servers hold: the mode fixed at start, the set replaceable at any time. */
export class AccessPolicy {
  readonly mode: AccessMode;
  #set: InfoHashSet;
  readonly #white: boolean;
  readonly #off: boolean;
  #generation = 0;
  readonly #swapListeners: (() => void)[] = [];

  constructor(mode: AccessMode, set: InfoHashSet = InfoHashSet.empty()) {
    this.mode = mode;
    this.#set = set;
    this.#white = mode === "white";
    this.#off = mode === "off";
  }

  /** The set in force (for logging its size). */
  get set(): InfoHashSet {
    return this.#set;
  }

  /** Counts swaps: whatever was derived from the set under an older number may be stale. */
  get generation(): number {
    return this.#generation;
  }

  /** May the 20-byte info hash at `offset` be tracked (announced, scraped, listed, stored)?
   * Allocates nothing. */
  allows(infoHash: Uint8Array, offset: number): boolean {
    if (this.#off) return true;
    return this.#set.has(infoHash, offset) === this.#white;
  }

  /** Puts a new set in force, then tells `onSwap` listeners; requests already past `allows` are
   * unaffected. */
  swap(set: InfoHashSet): void {
    this.#set = set;
    this.#generation++;
    for (const listener of this.#swapListeners) listener();
  }

  /** Calls `listener` after every later `swap`. */
  onSwap(listener: () => void): void {
    this.#swapListeners.push(listener);
  }
}
