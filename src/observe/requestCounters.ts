/**
 * Request counters by protocol, action and result, kept in one Float64Array so counting on the
 * hot path is a single indexed add. Stats and metrics read them.
 */

export const PROTOCOL_HTTP = 0;
export const PROTOCOL_UDP = 1;
/** WebTorrent over WebSocket: announces (answers to offers included) and scrapes. */
export const PROTOCOL_WS = 2;
export const PROTOCOL_NAMES = ["http", "udp", "websocket"] as const;

export const ACTION_CONNECT = 0;
export const ACTION_ANNOUNCE = 1;
export const ACTION_SCRAPE = 2;
export const ACTION_FULL_SCRAPE = 3;
export const ACTION_OTHER = 4;
export const ACTION_NAMES = ["connect", "announce", "scrape", "full_scrape", "other"] as const;

export const RESULT_OK = 0;
export const RESULT_ERROR = 1;
export const RESULT_DROPPED = 2;
export const RESULT_NAMES = ["ok", "error", "dropped"] as const;

const ACTIONS = ACTION_NAMES.length;
const RESULTS = RESULT_NAMES.length;

export class RequestCounters {
  readonly counts = new Float64Array(PROTOCOL_NAMES.length * ACTIONS * RESULTS);

  add(protocol: number, action: number, result: number): void {
    this.counts[(protocol * ACTIONS + action) * RESULTS + result]++;
  }

  get(protocol: number, action: number, result: number): number {
    return this.counts[(protocol * ACTIONS + action) * RESULTS + result];
  }
}
