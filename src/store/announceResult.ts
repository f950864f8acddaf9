/**
 * What an announce or a scrape tells its caller besides the peers it wrote: the torrent's counts,
 * which cap refused it, and the peer's record before it. SwarmTable owns one and fills it in place
 * on every call, so the hot path allocates no result object; read it right after the call.
 */
import {
  COUNT_MASK,
  LIST_META,
  LIST_SEEDERS,
  ROW_DOWNLOADED,
  ROW_V4,
  ROW_V6,
  ROW_WS,
  SEEDER_BIT,
  TIME_MASK,
} from "./layout.ts";

export class AnnounceResult {
  complete = 0;
  incomplete = 0;
  downloaded = 0;
  /**
   * Set when announce() returns -1: REFUSED_TORRENTS and/or REFUSED_PEERS. Stale otherwise (not
   * reset per announce, to keep the hot path as it was).
   */
  refused = 0;
  /**
   * The peer's record before this announce, as the store keeps it (port, seeder flag, 15-bit
   * stamp), or 0 when the store did not hold the peer; read it with `previousAge` and
   * `previousSeeder`. Set by every announce that stores the peer (not a stopped, not a refused
   * one); stale otherwise. The cluster sync publishes a refresh only when it changes something
   * (cluster/publishRule.ts), and the store already knows what did, so nothing is kept per peer.
   */
  previous = 0;

  /** Takes the counts of the torrent whose row is rows[row..]. */
  fill(rows: Uint32Array, row: number): void {
    const seeders = rows[row + ROW_V4 + LIST_SEEDERS] + rows[row + ROW_V6 + LIST_SEEDERS] +
      rows[row + ROW_WS + LIST_SEEDERS];
    const peers = (rows[row + ROW_V4 + LIST_META] & COUNT_MASK) +
      (rows[row + ROW_V6 + LIST_META] & COUNT_MASK) + (rows[row + ROW_WS + LIST_META] & COUNT_MASK);
    this.complete = seeders;
    this.incomplete = peers - seeders;
    this.downloaded = rows[row + ROW_DOWNLOADED];
  }

  /** Zeros the counts (a torrent the store does not hold); returns 0, the peers written. */
  zero(): number {
    this.complete = 0;
    this.incomplete = 0;
    this.downloaded = 0;
    return 0;
  }
}

/**
 * Seconds since the peer's previous announce as the store saw it (modulo the 15-bit stamp
 * period, so below 32768), or -1 when the store did not hold it; `previous` from
 * AnnounceResult.previous.
 */
export function previousAge(previous: number, now: number): number {
  return previous === 0 ? -1 : (now - previous) & TIME_MASK;
}

/** Whether the peer was a seeder before the announce (false when it was not held). */
export function previousSeeder(previous: number): boolean {
  return (previous & SEEDER_BIT) !== 0;
}
