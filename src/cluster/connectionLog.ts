/**
 * What the cluster sync logs about its connection to Redis: one line per change of state
 * (connected; cannot reach or lost, with the reason), and a Redis it cannot use (too old, a
 * command renamed away or forbidden: RedisUnsupportedError) once per reason while it lasts, even
 * after another failure was logged (Redis back, but an older one). A node that retries every few
 * seconds through a long outage so logs two lines, not thousands.
 */
import { errorLine, RedisUnsupportedError } from "./redisCommands.ts";

export class ConnectionLog {
  readonly #log: (line: string) => void;
  /** The `--cluster` URLs with passwords replaced (clusterOptions.ts). */
  readonly #url: string;
  readonly #nodeId: string;
  readonly #clusterName: string;
  #logged: "none" | "connected" | "disconnected" = "none";
  /** The "cannot use this Redis" reason last logged. */
  #unsupported = "";

  constructor(log: (line: string) => void, redactedUrl: string, nodeId: string, name: string) {
    this.#log = log;
    this.#url = redactedUrl;
    this.#nodeId = nodeId;
    this.#clusterName = name;
  }

  /** A session connected, to a cluster of `shards` shards. */
  connected(shards: number): void {
    this.#unsupported = "";
    if (this.#logged === "connected") return;
    this.#logged = "connected";
    this.#log(
      `cluster: connected to ${this.#url} as node ${this.#nodeId} (cluster ` +
        `${this.#clusterName}, ${shards} shard${shards === 1 ? "" : "s"})`,
    );
  }

  /** A connect failed or a session was lost with `error`. */
  lost(error: unknown): void {
    const reason = errorLine(error);
    if (!(error instanceof RedisUnsupportedError)) {
      if (this.#logged === "disconnected") return;
      const before = this.#logged;
      this.#logged = "disconnected";
      this.#log(
        `cluster: ${before === "none" ? "cannot reach" : "lost"} Redis at ${this.#url}` +
          ` (${reason}); serving from the local store, retrying`,
      );
      return;
    }
    if (reason === this.#unsupported) return;
    this.#unsupported = reason;
    this.#logged = "disconnected";
    this.#log(
      `cluster: cannot use Redis at ${this.#url}: ${reason}; ` +
        "serving from the local store, retrying",
    );
  }

  /** The error a start that found Redis unusable rejects with (one line, the URL redacted). */
  cannotStart(error: Error): Error {
    return new Error(`cluster: cannot use Redis at ${this.#url}: ${error.message}`);
  }
}
