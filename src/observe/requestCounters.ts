/**
 * Request counters by protocol, action and result, kept in one Float64Array so counting on the
 * hot path is a single indexed add. Stats and metrics read them; so does the dashboard, which also
 * reads two finer tables kept beside them: answered announces and scrapes by the client's address
 * family, and refused requests by reason. Both are typed arrays bumped in place (no allocation).
 *
 * Each front end counts through the same three calls, WebSocket included (PROTOCOL_WS):
 * `answered(protocol, action, family)` for an announce or scrape answered with data, `refused(
 * protocol, action, reason)` for one answered with an error that has a reason in REFUSAL_NAMES,
 * and `add(protocol, action, result)` for everything else.
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

/** The request could not be read: a parse error, a bad length, an unknown action, no address. */
export const REFUSAL_BAD_REQUEST = 0;
/** The access list does not allow the torrent. */
export const REFUSAL_ACCESS_DENIED = 1;
/** UDP: a connection id otter did not issue to this address, or one that expired. */
export const REFUSAL_CONNECTION_ID = 2;
export const REFUSAL_NAMES = ["bad_request", "access_denied", "connection_id"] as const;

export const FAMILY_NAMES = ["v4", "v6"] as const;

const PROTOCOLS = PROTOCOL_NAMES.length;
const ACTIONS = ACTION_NAMES.length;
const RESULTS = RESULT_NAMES.length;
const REFUSALS = REFUSAL_NAMES.length;

export class RequestCounters {
  readonly counts = new Float64Array(PROTOCOLS * ACTIONS * RESULTS);
  /** Answered requests by protocol, action and family (v4, v6): also counted in `counts` as ok. */
  readonly byFamily = new Float64Array(PROTOCOLS * ACTIONS * 2);
  /** Refused requests by protocol and reason: also counted in `counts` as errors. */
  readonly refusals = new Float64Array(PROTOCOLS * REFUSALS);

  add(protocol: number, action: number, result: number): void {
    this.counts[(protocol * ACTIONS + action) * RESULTS + result]++;
  }

  get(protocol: number, action: number, result: number): number {
    return this.counts[(protocol * ACTIONS + action) * RESULTS + result];
  }

  /** An announce or scrape answered (result ok) for a client of `family` (4 or 6). */
  answered(protocol: number, action: number, family: 4 | 6): void {
    this.counts[(protocol * ACTIONS + action) * RESULTS + RESULT_OK]++;
    this.byFamily[(protocol * ACTIONS + action) * 2 + (family === 4 ? 0 : 1)]++;
  }

  /** Answered requests of `protocol` and `action` from clients of `family` (4 or 6). */
  getFamily(protocol: number, action: number, family: 4 | 6): number {
    return this.byFamily[(protocol * ACTIONS + action) * 2 + (family === 4 ? 0 : 1)];
  }

  /** A request answered with an error (result error) for `reason` (REFUSAL_*). */
  refused(protocol: number, action: number, reason: number): void {
    this.counts[(protocol * ACTIONS + action) * RESULTS + RESULT_ERROR]++;
    this.refusals[protocol * REFUSALS + reason]++;
  }

  /** Requests of `protocol` refused for `reason`. */
  getRefused(protocol: number, reason: number): number {
    return this.refusals[protocol * REFUSALS + reason];
  }
}
