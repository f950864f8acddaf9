/**
 * Redis's clock as the cluster sync reckons it. A batch's publish time, its age when read, the
 * snapshots' trim points and a signal's expiry are all taken on it, so the nodes' own clocks may
 * disagree or step (redisCluster.ts → Time). The offset to the monotonic clock
 * (performance.now()) is measured with TIME at connect and again every CLOCK_CHECK_MS while
 * connected, and carried forward on the monotonic clock in between: a step of this host's wall
 * clock leaves the estimate alone.
 */
import { redisClockOffsetMs } from "./redisCommands.ts";
import type { RedisLink } from "./redisLink.ts";

/** How often the offset to Redis's clock is measured again while connected. */
const CLOCK_CHECK_MS = 60_000;

export class RedisClock {
  /** Redis's clock minus performance.now(), in milliseconds. */
  #offsetMs = 0;
  #measuredAt = 0;
  #measuring = false;

  /** TIME is sent to the server holding `key`, with a reply deadline of `commandTimeoutMs`. */
  constructor(readonly key: string, readonly commandTimeoutMs: number) {}

  /** Milliseconds since the epoch on Redis's clock; bound, so the sync hands it to its parts. */
  readonly nowMs = (): number => performance.now() + this.#offsetMs;

  /** Measures the offset now (at connect); rejects like any command. */
  async measure(link: RedisLink): Promise<void> {
    this.#offsetMs = await redisClockOffsetMs(link.forKey(this.key), this.commandTimeoutMs);
    this.#measuredAt = performance.now();
  }

  /** Measures the offset again if it is due; a failure is left to the other commands. */
  recheck(link: RedisLink): void {
    if (this.#measuring || performance.now() - this.#measuredAt < CLOCK_CHECK_MS) return;
    this.#measuring = true;
    this.measure(link).catch(() => {}).finally(() => this.#measuring = false);
  }
}
