/**
 * What the HTTP and UDP front ends share: the peer store, the clock, the announce policy
 * (numwant defaults and caps, jittered intervals) and the request counters. Built once by main.ts
 * and handed to every server, so both protocols see one swarm. The policy fields are plain fields
 * the servers read per request; `applySettings` replaces them when SIGHUP reloads the config.
 */
import type { Config } from "../config/options.ts";
import type { Clock } from "../config/clock.ts";
import { RequestCounters } from "../observe/requestCounters.ts";
import type { ClientMix } from "../observe/clientMix.ts";
import { AccessPolicy } from "../policy/accessList.ts";
import { CidrSet } from "../policy/cidr.ts";
import { DeniabilityMixer } from "../policy/deniability.ts";
import type { LocalChanges } from "../cluster/publishRule.ts";
import type { ClusterCounters } from "../cluster/clusterCounters.ts";
import { RateLimiter } from "../policy/rateLimit.ts";
import { hashBytes, randomKey } from "../hash/halfSipHash.ts";
import type { SwarmTable } from "../store/swarmTable.ts";

export class Tracker {
  readonly counters = new RequestCounters();
  interval: number;
  minInterval: number;
  maxNumwant: number;
  defaultNumwant: number;
  /** The settings in force; replaced as a whole by `applySettings`. Features that have no field
   * here read their reloadable values from it or subscribe with `onSettings`. */
  settings: Config;
  /** `maxNumwant` at start: the HTTP front end sized its peer buffers for it. */
  readonly #numwantCeiling: number;
  readonly #settingsListeners: ((settings: Config) => void)[] = [];
  /** White or black list of info hashes (mode "off" without --whitelist/--blacklist). */
  access: AccessPolicy;
  /** Networks whose X-Forwarded-For / X-Real-IP headers we believe; null: none. */
  trustProxy: CidrSet | null;
  /** Where the servers tell the cluster about announces (`--cluster`); null when standalone. */
  changes: LocalChanges | null = null;
  /** The cluster link's counters for stats and metrics; null when standalone. */
  cluster: ClusterCounters | null = null;
  /** The dashboard's client mix, counted per answered announce; null with --no-dashboard. */
  clients: ClientMix | null = null;
  /** The WebSocket server's open connections, for the dashboard; null while there is none. */
  websocket: { readonly open: number } | null = null;
  /** Generated-peer mixing (`--deniability`); null when off. */
  deniability: DeniabilityMixer | null;
  readonly #deniabilityKey = randomKey();
  /** Per-source UDP limit (`--rate-limit`); the UDP front end checks `enabled` first. */
  readonly rateLimit: RateLimiter;
  #deniabilityState = 1;
  /** xorshift32 state for interval jitter (Math.random returns a fresh heap number each call). */
  #jitterState = crypto.getRandomValues(new Int32Array(1))[0] | 1;

  constructor(readonly store: SwarmTable, readonly clock: Clock, config: Config) {
    this.access = new AccessPolicy(
      config.whitelist !== "" ? "white" : config.blacklist !== "" ? "black" : "off",
    );
    this.trustProxy = config.trustProxy.length > 0 ? CidrSet.parse(config.trustProxy) : null;
    this.deniability = config.deniability > 0
      ? new DeniabilityMixer(config.deniability, config.deniabilityMax, () => this.#seededNext())
      : null;
    this.interval = config.interval;
    this.minInterval = Math.max(1, Math.floor(config.interval / 2));
    this.maxNumwant = config.maxNumwant;
    this.defaultNumwant = config.defaultNumwant;
    this.settings = config;
    this.#numwantCeiling = config.maxNumwant;
    this.rateLimit = new RateLimiter(config.rateLimit);
  }

  /**
   * Puts reloadable settings in force (SIGHUP): interval, numwant caps, trusted proxies, rate limit,
   * deniability; then tells `onSettings` listeners. Returns notes on values it could not apply
   * as given (for the reload's log line).
   */
  applySettings(config: Config): string[] {
    const notes: string[] = [];
    const before = this.settings;
    this.settings = config;
    this.interval = config.interval;
    this.minInterval = Math.max(1, Math.floor(config.interval / 2));
    let max = config.maxNumwant;
    if (max > this.#numwantCeiling) {
      notes.push(`max-numwant capped at ${this.#numwantCeiling} until a restart`);
      max = this.#numwantCeiling;
    }
    this.maxNumwant = max;
    this.defaultNumwant = config.defaultNumwant < max ? config.defaultNumwant : max;
    if (config.trustProxy.join() !== before.trustProxy.join()) {
      this.trustProxy = config.trustProxy.length > 0 ? CidrSet.parse(config.trustProxy) : null;
    }
    if (
      config.deniability !== before.deniability || config.deniabilityMax !== before.deniabilityMax
    ) {
      this.deniability = config.deniability > 0
        ? new DeniabilityMixer(config.deniability, config.deniabilityMax, () => this.#seededNext())
        : null;
    }
    if (config.rateLimit !== before.rateLimit) this.rateLimit.setRate(config.rateLimit);
    for (const listener of this.#settingsListeners) listener(config);
    return notes;
  }

  /** Calls `listener` with the new settings after each `applySettings`. */
  onSettings(listener: (settings: Config) => void): void {
    this.#settingsListeners.push(listener);
  }

  /**
   * The interval for one reply: ±10% random jitter (whole seconds) so clients do not re-announce
   * in lock-step. Integer arithmetic on an int32 xorshift state: nothing is allocated.
   */
  jitteredInterval(): number {
    let x = this.#jitterState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#jitterState = x;
    const interval = this.interval;
    const span = Math.floor(interval / 10);
    return interval - span + (x >>> 0) % (2 * span + 1);
  }

  /** The number of peers to send: the client's wish (-1 = none given), capped. */
  numwant(requested: number, replyCapacity: number): number {
    const n = requested < 0 ? this.defaultNumwant : requested;
    const cap = this.maxNumwant < replyCapacity ? this.maxNumwant : replyCapacity;
    return n < cap ? n : cap;
  }

  /** xorshift32 over the per-torrent seed set by `generatedPeersFor`. */
  #seededNext(): number {
    let x = this.#deniabilityState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#deniabilityState = x;
    return x >>> 0;
  }

  /**
   * How many generated peers the torrent shows in this announce interval (0 when deniability is
   * off, not drawn for it, or the swarm has fewer than 2 peers, where a fake would be a tell).
   * Reseeds the mixer's generator from a keyed hash of the info hash and the interval number, so
   * announces (`mixIn` right after this call) and scrapes agree until the next interval.
   */
  generatedPeersFor(infoHash: Uint8Array, offset: number, peers: number): number {
    const mixer = this.deniability;
    if (mixer === null || peers < 2) return 0;
    const k = this.#deniabilityKey;
    const epoch = Math.floor(this.clock.now / this.interval);
    this.#deniabilityState = (hashBytes(k[0], k[1], infoHash, offset, 20) ^
      Math.imul(epoch + 1, 0x9e3779b1)) | 1;
    return mixer.decide();
  }
}
