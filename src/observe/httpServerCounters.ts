/**
 * What otter's own HTTP server (src/servers/http/httpWire.ts) counts about the connections and requests
 * it turns away before the tracker sees them: one object shared by every HTTP listener of a
 * process, read by /metrics and /stats. Plain number fields, bumped in place.
 */
import { TlsCounters } from "./tlsCounters.ts";

/** Statuses a request can be turned away with, each followed by a close (see replyWriter.ts). */
export const REJECT_STATUSES = [400, 405, 414, 431, 500, 505] as const;
export type RejectStatus = typeof REJECT_STATUSES[number];

export class HttpServerCounters {
  /** Connections open now. */
  open = 0;
  /** Connections closed at accept because `--max-connections` were open. */
  refused = 0;
  /** Connections closed at accept because their address had `--max-connections-per-ip` open. */
  refusedPerIp = 0;
  /** Connections closed by `--header-timeout`: no whole head in time (new or mid-request). */
  headerTimeouts = 0;
  /** Connections closed by `--idle-timeout`: idle between requests, or not taking a reply. */
  idleTimeouts = 0;
  /** Connections closed because a reply went out slower than `--min-send-rate` on average. */
  sendTimeouts = 0;
  /** Replies (their unsent bytes) waiting for clients that do not take them as fast as they come. */
  pendingWrites = 0;
  pendingWriteBytes = 0;
  /** Requests turned away, by status in REJECT_STATUSES order. */
  readonly rejectedByStatus = new Float64Array(REJECT_STATUSES.length);
  /** The `--https` listeners' own figures (handshakes, certificate reloads). */
  readonly tls = new TlsCounters();

  /** Connections closed by any timeout. */
  get timedOut(): number {
    return this.headerTimeouts + this.idleTimeouts + this.sendTimeouts;
  }

  /** Requests turned away, all statuses. */
  get rejected(): number {
    let total = 0;
    for (const n of this.rejectedByStatus) total += n;
    return total;
  }

  /** Counts a request turned away with `status`; one not in REJECT_STATUSES counts as 400. */
  reject(status: number): void {
    const i = REJECT_STATUSES.indexOf(status as RejectStatus);
    this.rejectedByStatus[i < 0 ? 0 : i]++;
  }

  /** Requests turned away with `status` so far. */
  rejectedWith(status: RejectStatus): number {
    return this.rejectedByStatus[REJECT_STATUSES.indexOf(status)];
  }
}
