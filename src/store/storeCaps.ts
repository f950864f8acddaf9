/**
 * The store's caps (`maxTorrents`, `maxPeers`), which bound its memory whatever clients send, and
 * what a new torrent or peer gets past one: refused (nothing stored, the announce answered with a
 * failure), or with `whenFull: "evict"` room made by evicting the least recently announced
 * torrents, chosen by sampling (TorrentTable.oldestSampled), never the requester's. Refreshes and
 * stops of stored peers always pass. Below the caps a check is one comparison.
 */
import { COUNTER_PEERS4, COUNTER_PEERS6, COUNTER_PEERS_WS, COUNTER_TORRENTS } from "./layout.ts";
import type { TorrentKey, TorrentTable } from "./torrentTable.ts";

/** `AnnounceResult.refused` bits: which cap a refused announce hit. */
export const REFUSED_TORRENTS = 1;
export const REFUSED_PEERS = 2;

/** The failure text both protocols send for a refused announce (`refused` bits). */
export function refusedReason(refused: number): string {
  return (refused & REFUSED_TORRENTS) !== 0
    ? "tracker is full: too many torrents"
    : "tracker is full: too many peers";
}

/** `makeRoom`'s answer when no room was made: below any `~slot` (tables stay under 2^27 slots). */
export const NO_ROOM = -0x40000000;

/**
 * Most torrents one announce may evict; past it the announce is refused. Only the peer cap can
 * need more than one (a victim holds few peers or none), so this bounds an announce's cost.
 */
const MAX_EVICTIONS = 64;

export interface CapOptions {
  /** Most torrents held at once (default: no cap). */
  maxTorrents?: number;
  /** Most peers held at once, every family together (IPv4, IPv6, WebSocket; default: no cap). */
  maxPeers?: number;
  /**
   * What a new torrent or peer past a cap gets: "refuse" (default) stores nothing and announce()
   * returns -1; "evict" drops the least recently announced torrents (approximately) to make room.
   */
  whenFull?: "refuse" | "evict";
}

/** A cap option: a positive whole number, or Infinity when not given. */
function capOption(name: string, value: number | undefined): number {
  if (value === undefined) return Infinity;
  if (!(value >= 1)) throw new RangeError(`${name} must be at least 1, got ${value}`);
  return Math.floor(value);
}

export class StoreCaps {
  /** The caps in force (Infinity: none). */
  readonly maxTorrents: number;
  readonly maxPeers: number;
  /** Announces refused at the torrent cap (a new torrent at maxTorrents). */
  refusedTorrents = 0;
  /** Announces refused at the peer cap alone (a new peer at maxPeers). */
  refusedPeers = 0;
  /** Torrents evicted to make room. */
  evictedTorrents = 0;
  readonly #evict: boolean;
  readonly #table: TorrentTable;
  readonly #counters: Uint32Array;
  readonly #random: () => number;

  constructor(
    options: CapOptions,
    table: TorrentTable,
    counters: Uint32Array,
    random: () => number,
  ) {
    this.maxTorrents = capOption("maxTorrents", options.maxTorrents);
    this.maxPeers = capOption("maxPeers", options.maxPeers);
    this.#evict = options.whenFull === "evict";
    this.#table = table;
    this.#counters = counters;
    this.#random = random;
  }

  /** Whether one more peer would pass the peer cap. */
  peersFull(): boolean {
    const counters = this.#counters;
    return counters[COUNTER_PEERS4] + counters[COUNTER_PEERS6] + counters[COUNTER_PEERS_WS] >=
      this.maxPeers;
  }

  /** Whether a new torrent, with its first peer, would pass a cap. */
  newTorrentFull(): boolean {
    return this.#counters[COUNTER_TORRENTS] >= this.maxTorrents || this.peersFull();
  }

  /**
   * A new peer, in the torrent at slot `found` or (`found` negative: `find`'s `~slot`) in a new
   * torrent, hit a cap. Evicts the oldest of sampled torrents, never the requester's, until there
   * is room, if the policy says so. Returns `find`'s answer for the requester's torrent afresh
   * (rows move when others are deleted), or NO_ROOM after counting the refusal and putting the
   * caps hit into `refused.refused`.
   */
  makeRoom(key: TorrentKey, found: number, refused: { refused: number }): number {
    const table = this.#table;
    let evictions = 0;
    for (;;) {
      let full = 0;
      if (found < 0 && this.#counters[COUNTER_TORRENTS] >= this.maxTorrents) {
        full |= REFUSED_TORRENTS;
      }
      if (this.peersFull()) full |= REFUSED_PEERS;
      if (full === 0) return found;
      const victim = this.#evict && evictions < MAX_EVICTIONS
        ? table.oldestSampled(found < 0 ? -1 : found, this.#random)
        : -1;
      if (victim < 0) {
        if ((full & REFUSED_TORRENTS) !== 0) this.refusedTorrents++;
        else this.refusedPeers++;
        refused.refused = full;
        return NO_ROOM;
      }
      table.drop(victim);
      this.evictedTorrents++;
      evictions++;
      found = table.find(key);
    }
  }
}
