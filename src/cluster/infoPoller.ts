/**
 * Polls what Redis says of itself for /metrics (redisInfo.ts): INFO on each Redis, each master of
 * a Redis Cluster, one poll at a time. A failure is left to the sync's other commands, which find
 * a lost connection; a refusal (an ACL without INFO) is logged once and the figures left out.
 */
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import type { ClusterCounters } from "./clusterCounters.ts";
import { errorLine, RedisUnsupportedError } from "./redisCommands.ts";
import { updateFigures } from "./redisInfo.ts";
import { type RedisLink, textOf } from "./redisLink.ts";

export class InfoPoller {
  readonly #counters: ClusterCounters;
  readonly #log: (line: string) => void;
  #polling = false;
  /** The INFO refusal last logged (an ACL without INFO), so it is logged once. */
  #refused = "";

  constructor(counters: ClusterCounters, log: (line: string) => void) {
    this.#counters = counters;
    this.#log = log;
  }

  /** Starts a poll over `link` into `counters.redis`, unless one is running. */
  poll(link: RedisLink): void {
    if (this.#polling) return;
    this.#polling = true;
    const counters = this.#counters;
    const poll = async () => {
      const masters = await link.masters();
      const polled = [];
      for (const { server, connection } of masters) {
        const reply = await link.sendOn(connection, ["INFO"]);
        const known = counters.redis.find((figures) => figures.server === server) ?? null;
        polled.push(updateFigures(known, server, textOf(reply), performance.now()));
      }
      counters.redis = polled;
    };
    poll().catch((error) => {
      if (!(error instanceof ErrorReply) && !(error instanceof RedisUnsupportedError)) return;
      const reason = errorLine(error);
      if (reason === this.#refused) return;
      this.#refused = reason;
      this.#log(`cluster: Redis refuses INFO (${reason}); its figures are left out of /metrics`);
    }).finally(() => this.#polling = false);
  }
}
