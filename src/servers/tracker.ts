/**
 * What the HTTP and UDP front ends share: the peer store, the clock, the announce policy
 * (numwant defaults and caps, jittered intervals) and the request counters. Built once by main.ts
 * and handed to every server, so both protocols see one swarm.
 */
import type { Config } from "../ops/config.ts";
import type { Clock } from "../ops/clock.ts";
import { RequestCounters } from "../ops/requestCounters.ts";
import type { SwarmTable } from "../store/swarmTable.ts";

export class Tracker {
  readonly counters = new RequestCounters();
  readonly interval: number;
  readonly minInterval: number;
  readonly maxNumwant: number;
  readonly defaultNumwant: number;

  constructor(readonly store: SwarmTable, readonly clock: Clock, config: Config) {
    this.interval = config.interval;
    this.minInterval = Math.max(1, Math.floor(config.interval / 2));
    this.maxNumwant = config.maxNumwant;
    this.defaultNumwant = config.defaultNumwant;
  }

  /** The interval for one reply: ±10% random jitter so clients do not re-announce in lock-step. */
  jitteredInterval(): number {
    return Math.round(this.interval * (0.9 + 0.2 * Math.random()));
  }

  /** The number of peers to send: the client's wish (-1 = none given), capped. */
  numwant(requested: number, replyCapacity: number): number {
    const n = requested < 0 ? this.defaultNumwant : requested;
    const cap = this.maxNumwant < replyCapacity ? this.maxNumwant : replyCapacity;
    return n < cap ? n : cap;
  }
}
