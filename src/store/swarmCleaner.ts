/**
 * Expiry: removes peers silent for more than the peer timeout, and torrents the rules let go, in
 * small steps over the torrent table so that a store of millions never stalls announces.
 *
 * A pass walks the table downwards from an empty slot, so the rows a backward-shift deletion moves
 * (those above the hole, up to the next empty slot) are always ones the pass has already visited:
 * nothing is skipped and nothing needs a second look. A step visits up to `budget` slots and stops
 * early after WORK_PER_SLOT * budget work units (records looked at, removals, shifted rows),
 * pausing inside a huge list and resuming there at the next step. A step that paused remembers the row it
 * was in: if deletions moved another row under the cursor meanwhile, it starts that slot afresh.
 *
 * Peer records carry a 15-bit time stamp (seconds mod 32768), so each must be examined within
 * 32768 - peerTimeout seconds of its last announce, or its age wraps and it looks fresh; see
 * CLEAN_BUDGET for the bound and how a pass that runs late is finished at any cost.
 */
import { CLASS_CAPACITY, FIRST_SET_CLASS, LINEAR_CLASSES } from "./classes.ts";
import {
  CLASS_SHIFT,
  COUNT_MASK,
  COUNTER_PEERS4,
  COUNTER_PEERS6,
  COUNTER_PEERS_WS,
  COUNTER_TORRENTS,
  FAMILY_COUNT,
  FAMILY_WS,
  familyAt,
  LIST_BLOCK,
  LIST_META,
  listOf,
  type PeerFamily,
  peersCounterOf,
  recordWordsOf,
  ROW_DOWNLOADED,
  ROW_LAST_ACTIVITY,
  ROW_V4,
  ROW_V6,
  ROW_WORDS,
  ROW_WS,
  SEEDER_BIT,
  TIME_MASK,
  TIME_PERIOD,
} from "./layout.ts";
import { type BlockPools, poolBaseOf, recordsOf, TRIM_WORDS } from "./blockPools.ts";
import { DELETE_WORK, type PeerSets } from "./peerSets.ts";
import type { TorrentTable } from "./torrentTable.ts";

/**
 * The largest step: the server calls cleanFor() every CLEAN_INTERVAL_MS, which paces a pass to
 * CLEAN_PASS_MS but never does more in a step than clean(now, CLEAN_BUDGET), 40960 slots a second
 * (a table of 1M torrents, about 1.6M slots, takes about 40 s at that rate, up to ~80 s while most
 * of it expires). Besides the slot budget a step stops after WORK_PER_SLOT * budget
 * work units (records looked at, removals, shifted rows), finishing a huge list over several
 * steps. It also gives back at most 2 MB of pool memory, and at the end of a pass starts
 * shrinking a mostly empty table (incrementally, like every resize: while one runs, steps move
 * rows instead of visiting slots). Measured with 1M peers stored
 * (bench/store_bench.ts report, on a shared 2-vCPU VM at load 5-7): p99 under 4 ms and max
 * under 10 ms of process CPU per step, including steps where half or all of the peers expire.
 *
 * Time stamp bound: records carry lastSeen mod 32768, so each one must be examined within
 * 32768 - peerTimeout seconds (>= 16768 s, as peerTimeout <= 16000) of its last announce, or its
 * age wraps and it looks fresh. A pass visits every record it finds in place; a record can miss
 * one pass only when a table resize or a list rebuild moves it under the cursor, so the
 * requirement is 2 * pass length < 32768 - peerTimeout: at most 160 s against 16768 s here. As
 * a safety net clean() ignores its budget and finishes the pass once that pass has been running
 * for (32768 - peerTimeout) / 4 seconds.
 */
export const CLEAN_BUDGET = 1024;
export const CLEAN_INTERVAL_MS = 25;
/**
 * How long a paced pass (`cleanFor`) takes, whatever the table's size: each step gets the share
 * of the table's slots and of its work (slots plus records) that the time since the last step is
 * of this. Expired peers are gone within peerTimeout + this; a fixed budget instead made small
 * tables do a pass every few seconds (100k torrents: every 3.5 s, 6.5 ms of CPU a second).
 */
export const CLEAN_PASS_MS = 60_000;

/** Work units per budget slot: one per slot or record looked at, DELETE_WORK per removal. */
const WORK_PER_SLOT = 32;
/** A step leaves shrinking lists larger than this to announces, to keep steps short. */
const CLEAN_REBUILD_LIMIT = 1 << 15;
/** Rows a step moves per budget slot while the table is being resized (4096 a CLEAN_BUDGET step). */
const MOVE_PER_SLOT = 4;
/** Work units a record costs a pass when none expires: sets are 7/16 to 7/8 full (classes.ts). */
const WORK_PER_PEER = 1.5;
/**
 * A paced step visits at least this many slots (and spends at least as many work units): a small
 * table's pass takes seconds, not a minute, for a negligible cost (64 slots of 5 ms a second).
 */
const MIN_PACED_SLOTS = 64;
/** A paced step never does more than a CLEAN_BUDGET step (its time stays within a few ms). */
const MAX_PACED_SLOTS = CLEAN_BUDGET;
const MAX_PACED_WORK = CLEAN_BUDGET * WORK_PER_SLOT;

export class SwarmCleaner {
  /** Completed passes (cursor wrap-arounds). */
  passes = 0;
  readonly #table: TorrentTable;
  readonly #pools: BlockPools;
  readonly #peers: PeerSets;
  readonly #counters: Uint32Array;
  readonly #peerTimeout: number;
  /** The WebSocket peers' own timeout (`--ws-peer-timeout`). */
  readonly #wsPeerTimeout: number;
  readonly #keepDownloadedFor: number;
  /** A pass running longer than this is finished at any cost (see the header). */
  readonly #maxPassSeconds: number;

  /** The slot the pass visits next. */
  #cursor = 0;
  /** Slots left to visit in the current pass (0: start a new pass). */
  #passLeft = 0;
  #passStart = 0;
  /** Where a step stopped inside a big set: family index (0 IPv4, 1 IPv6, 2 WebSocket), record,
   * records left. */
  #cleanFamily = 0;
  #cleanRecord = 0;
  #cleanLeft = 0;
  /** The first two words of the row a paused step was in. */
  #pausedWord0 = 0;
  #pausedWord1 = 0;
  /** Work units spent in this step looking (slots, records), and removing (removals, shifts). */
  #work = 0;
  #removalWork = 0;
  /** Whether the step running is paced (`cleanFor`): see `#spent`. */
  #paced = false;
  /** Elapsed ms paced steps have been told of since this pass started. */
  #passMs = 0;

  constructor(
    table: TorrentTable,
    pools: BlockPools,
    peers: PeerSets,
    counters: Uint32Array,
    peerTimeout: number,
    wsPeerTimeout: number,
    keepDownloadedFor: number,
  ) {
    this.#table = table;
    this.#pools = pools;
    this.#peers = peers;
    this.#counters = counters;
    this.#peerTimeout = peerTimeout;
    this.#wsPeerTimeout = wsPeerTimeout;
    this.#keepDownloadedFor = keepDownloadedFor;
    this.#maxPassSeconds = Math.floor((TIME_PERIOD - Math.max(peerTimeout, wsPeerTimeout)) / 4);
  }

  /**
   * A step paced by time, so that a pass takes about CLEAN_PASS_MS: `elapsedMs` since the last
   * step earns its share of the slots and work (records) left in this pass, at least
   * MIN_PACED_SLOTS and at most a CLEAN_BUDGET step; returns the slots visited. On an empty store
   * it returns at once.
   */
  cleanFor(now: number, elapsedMs: number): number {
    const table = this.#table;
    const counters = this.#counters;
    // An idle tracker: nothing to expire, move or give back (and no loop for the compiler to
    // find hot at 40 calls a second).
    if (
      counters[COUNTER_TORRENTS] === 0 && !table.resizing && !table.releasing && !table.sparse &&
      !this.#pools.hasSlack()
    ) return 0;
    // A resize is not paced: its rows move at a CLEAN_BUDGET step's rate.
    const moves = CLEAN_BUDGET * MOVE_PER_SLOT;
    if (table.resizing) return this.#step(now, 0, 0, moves, true);
    // The share of what is left of this pass that this step's time is of what is left of the
    // pass's minute; once the minute is over, as much as a step may do. Removals cost more than
    // looking, so a pass that falls behind catches up this way.
    this.#passMs += elapsedMs > 0 ? elapsedMs : 0;
    const capacity = table.capacity;
    const slotsLeft = this.#passLeft > 0 ? this.#passLeft : capacity;
    const msLeft = CLEAN_PASS_MS - this.#passMs;
    const share = msLeft <= elapsedMs ? 1 : elapsedMs / msLeft;
    const peers = counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] + counters[COUNTER_PEERS_WS];
    const workLeft = slotsLeft + peers * WORK_PER_PEER * (slotsLeft / capacity);
    const budget = Math.min(
      MAX_PACED_SLOTS,
      Math.max(MIN_PACED_SLOTS, Math.ceil(slotsLeft * share)),
    );
    const work = Math.min(MAX_PACED_WORK, Math.max(MIN_PACED_SLOTS, Math.ceil(workLeft * share)));
    return this.#step(now, budget, work, moves, true);
  }

  /**
   * One step: visits up to `budget` slots (fewer if its work limit runs out); returns them. While
   * the table is being resized the step moves rows instead (up to `budget` * MOVE_PER_SLOT) and
   * visits none: the pass resumes, rescaled, once every row is in the new table.
   */
  clean(now: number, budget: number): number {
    return this.#step(now, budget, budget * WORK_PER_SLOT, budget * MOVE_PER_SLOT, false);
  }

  /**
   * A step of `budget` slots and `work` units, or of `moves` rows while the table resizes. A
   * `paced` step's `work` counts looking only: removals cost extra, up to MAX_PACED_WORK in all,
   * so that expiry keeps up however many peers leave at once.
   */
  #step(now: number, budget: number, work: number, moves: number, paced: boolean): number {
    const table = this.#table;
    table.releaseStep();
    if (table.resizing) {
      table.moveRows(moves);
      this.#work = 0;
      return 0;
    }
    let workLimit = work;
    // Falling behind the time-stamp bound: finish this pass whatever it costs.
    const finishPass = this.#passLeft > 0 && now - this.#passStart > this.#maxPassSeconds;
    if (finishPass) workLimit = Infinity;
    this.#paced = paced && !finishPass;
    const pools = this.#pools;
    if (pools.trimAllowance < TRIM_WORDS) pools.trimAllowance = TRIM_WORDS;
    this.#work = 0;
    this.#removalWork = 0;
    this.#forgetPauseIfRowMoved();
    let visited = 0;
    while ((finishPass || visited < budget) && !this.#spent(workLimit)) {
      if (this.#passLeft <= 0) this.#startPass(now);
      visited++;
      if (!this.#cleanSlot(this.#cursor, now, workLimit)) {
        const row = this.#cursor * ROW_WORDS;
        this.#pausedWord0 = this.#table.rows[row];
        this.#pausedWord1 = this.#table.rows[row + 1];
        break;
      }
      this.#stepCursor();
      if (this.#passLeft <= 0) {
        this.#endPass(now, false);
        // A shrink started: its rows move before any slot is visited again.
        if (finishPass || table.resizing) break;
      }
    }
    pools.trimAll();
    return visited;
  }

  /** Whether this step has used its work: all of it, or (paced) its looking or the hard cap. */
  #spent(limit: number): boolean {
    const all = this.#work + this.#removalWork;
    return this.#paced ? this.#work >= limit || all >= MAX_PACED_WORK : all >= limit;
  }

  /** A full pass over every slot, at any cost (tests, shutdown, state save). */
  cleanAll(now: number): void {
    const pools = this.#pools;
    this.#paced = false;
    if (this.#table.resizing) this.#table.moveRows(Infinity);
    this.#table.releaseStep(true);
    pools.trimAllowance = Infinity;
    this.#startPass(now);
    while (this.#passLeft > 0) {
      this.#work = 0;
      this.#removalWork = 0;
      this.#cleanSlot(this.#cursor, now, Infinity);
      this.#stepCursor();
    }
    this.#endPass(now, true);
    pools.trimAll();
    pools.trimAllowance = TRIM_WORDS;
  }

  /**
   * The table was resized: rows keep their place in hash order, so scaling keeps the pass roughly
   * where it was; rows it misses are visited next pass.
   */
  tableResized(oldCapacity: number, newCapacity: number): void {
    this.#cursor = Math.min(newCapacity - 1, Math.floor(this.#cursor * newCapacity / oldCapacity));
    this.#passLeft = Math.min(newCapacity, Math.ceil(this.#passLeft * newCapacity / oldCapacity));
    this.#cleanFamily = 0;
    this.#cleanRecord = 0;
    this.#cleanLeft = 0;
  }

  /** A paused step resumes inside a list only if the row it was in is still at the cursor. */
  #forgetPauseIfRowMoved(): void {
    if (this.#cleanFamily === 0 && this.#cleanLeft === 0) return;
    const rows = this.#table.rows;
    const row = this.#cursor * ROW_WORDS;
    if (rows[row] !== this.#pausedWord0 || rows[row + 1] !== this.#pausedWord1) {
      this.#cleanFamily = 0;
      this.#cleanLeft = 0;
    }
  }

  /**
   * Expires one slot's peers, resuming inside a big set where the last step stopped, and frees
   * the torrent if the rules say so. Returns false if the work limit ran out inside a list.
   */
  #cleanSlot(slot: number, now: number, workLimit: number): boolean {
    this.#work += 1;
    const rows = this.#table.rows;
    const row = slot * ROW_WORDS;
    if (rows[row + ROW_LAST_ACTIVITY] === 0) return true;
    // Family by family; a step that paused inside one resumes there (#cleanFamily).
    for (let f = this.#cleanFamily; f < FAMILY_COUNT; f++) {
      const family = familyAt(f);
      if (rows[row + listOf(family) + LIST_META] !== 0) {
        if (!this.#cleanList(slot, family, now, workLimit)) return false;
      }
      this.#cleanFamily = f + 1;
      this.#cleanLeft = 0;
    }
    if (
      rows[row + ROW_V4 + LIST_META] === 0 && rows[row + ROW_V6 + LIST_META] === 0 &&
      rows[row + ROW_WS + LIST_META] === 0
    ) {
      if (
        rows[row + ROW_DOWNLOADED] === 0 ||
        now - rows[row + ROW_LAST_ACTIVITY] > this.#keepDownloadedFor
      ) {
        this.#removalWork += this.#table.delete(slot) + DELETE_WORK;
      }
    }
    return true;
  }

  /** Moves the cursor one slot down (wrapping) and forgets any position inside a list. */
  #stepCursor(): void {
    this.#cursor = this.#cursor === 0 ? this.#table.capacity - 1 : this.#cursor - 1;
    this.#passLeft--;
    this.#cleanFamily = 0;
    this.#cleanLeft = 0;
  }

  /** Expires the list of `family` at `slot`; returns false if the work limit ran out in it. */
  #cleanList(slot: number, family: PeerFamily, now: number, workLimit: number): boolean {
    const familyList = listOf(family);
    const familyPool = poolBaseOf(family);
    const recordWords = recordWordsOf(family);
    const peers = this.#peers;
    const rows = this.#table.rows;
    const list = slot * ROW_WORDS + familyList;
    const meta = rows[list + LIST_META];
    let count = meta & COUNT_MASK;
    const sizeClass = meta >>> CLASS_SHIFT;
    const poolIndex = familyPool + sizeClass;
    const pool = this.#pools.words[poolIndex];
    const records = recordsOf(poolIndex, rows[list + LIST_BLOCK]);
    const timeout = family === FAMILY_WS ? this.#wsPeerTimeout : this.#peerTimeout;
    let finished = true;
    let seedersGone = 0;
    const before = count;
    if (sizeClass < LINEAR_CLASSES) {
      // Backwards, so the last record moved into a hole has already been looked at.
      for (let i = count - 1; i >= 0; i--) {
        const tail = pool[records + i * recordWords + recordWords - 1];
        if (((now - tail) & TIME_MASK) > timeout) {
          if ((tail & SEEDER_BIT) !== 0) seedersGone++;
          peers.removeRecord(pool, records, sizeClass, count, recordWords, i);
          count--;
        }
      }
      this.#work += before;
    } else if (sizeClass < FIRST_SET_CLASS) {
      // A dense sorted list: one compacting pass keeps the order (about 2000 records at most).
      const recordsEnd = records + count * recordWords;
      let kept = records;
      for (let record = records; record < recordsEnd; record += recordWords) {
        const tail = pool[record + recordWords - 1];
        if (((now - tail) & TIME_MASK) > timeout) {
          if ((tail & SEEDER_BIT) !== 0) seedersGone++;
          count--;
          continue;
        }
        if (kept !== record) pool.copyWithin(kept, record, record + recordWords);
        kept += recordWords;
      }
      pool.fill(0, kept, recordsEnd);
      this.#work += before;
      if (count < before) this.#removalWork += DELETE_WORK;
    } else {
      // Downwards from an empty record, like the table pass: a removal's backward shift only
      // moves records already looked at. A paused walk resumes where it stopped.
      const capacity = CLASS_CAPACITY[sizeClass];
      let i = this.#cleanRecord;
      let left = this.#cleanLeft;
      if (left === 0 || i >= capacity) {
        let empty = 0;
        while (pool[records + empty * recordWords + recordWords - 1] !== 0) empty++;
        i = empty === 0 ? capacity - 1 : empty - 1;
        left = capacity - 1;
      }
      for (; left > 0; left--) {
        if (this.#spent(workLimit)) {
          finished = false;
          break;
        }
        this.#work += 1;
        const tail = pool[records + i * recordWords + recordWords - 1];
        if (tail !== 0 && ((now - tail) & TIME_MASK) > timeout) {
          if ((tail & SEEDER_BIT) !== 0) seedersGone++;
          this.#removalWork += peers.removeRecord(pool, records, sizeClass, count, recordWords, i) +
            DELETE_WORK;
          if (--count === 0) break;
        }
        i = i === 0 ? capacity - 1 : i - 1;
      }
      this.#cleanRecord = i;
      this.#cleanLeft = left;
    }
    const removed = before - count;
    if (removed === 0) return finished;
    if (seedersGone !== 0) peers.addSeeders(list, family, -seedersGone);
    this.#counters[peersCounterOf(family)] -= removed;
    if (count === 0 || finished) {
      this.#removalWork += peers.listShrunk(
        slot,
        familyList,
        familyPool,
        recordWords,
        count,
        sizeClass,
        CLEAN_REBUILD_LIMIT,
      );
    } else {
      rows[list + LIST_META] = (count | (sizeClass << CLASS_SHIFT)) >>> 0;
    }
    return finished;
  }

  /** Starts a pass just below an empty slot (there always is one: the load stays below 1). */
  #startPass(now: number): void {
    const rows = this.#table.rows;
    let empty = 0;
    while (rows[empty * ROW_WORDS + ROW_LAST_ACTIVITY] !== 0) empty++;
    this.#cursor = empty === 0 ? this.#table.capacity - 1 : empty - 1;
    this.#passLeft = this.#table.capacity;
    this.#cleanFamily = 0;
    this.#cleanLeft = 0;
    this.#passStart = now;
    this.#passMs = 0;
  }

  /**
   * Ends a pass; starts shrinking a mostly empty table (incrementally: clean steps move its rows;
   * `finish` moves them all now, for cleanAll).
   */
  #endPass(now: number, finish: boolean): void {
    this.passes++;
    this.#passLeft = 0;
    this.#passStart = now;
    if (this.#table.shrinkIfSparse() && finish) this.#table.moveRows(Infinity);
  }
}
