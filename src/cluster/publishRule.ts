/**
 * Which local announces the cluster publishes: those that change something the other nodes keep,
 * not every refresh. Publishing every announce made Redis hold one change per announce for a peer
 * timeout, whatever the swarm (issue 15: 7.7 GB at 100k announces/s); this publishes a peer about
 * once per refresh epoch however often it announces.
 *
 * An accepted announce is published when (`publishDue`):
 * 1. its event is started, stopped or completed;
 * 2. the store did not hold the peer (first sighting, or it expired and was cleaned);
 * 3. its seeder flag differs from the stored one;
 * 4. the peer's previous stamp lies in an older refresh epoch than now: epochs are E seconds long,
 *    their boundaries at `(now + phase) mod E == 0`, where `phase` (from the info hash's first two
 *    bytes and the port) spreads them over peers so that a boundary does not make every frequent
 *    announcer due in the same second;
 * 5. its previous stamp is older than `republishBefore` (after a loss the cluster cannot see:
 *    Redis restarted empty, entries lost in a failover; each such peer is published once more).
 *
 * Nothing per peer is kept for this: the store's own stamp (AnnounceResult.previous) is the
 * peer's latest sighting as this node knows it, its own announces and the changes it applied
 * from others alike, and remote refreshes never move it back (streamApply.ts). So when a peer's
 * latest announce anywhere was at s, every node holds a stamp of at least s - E (docs/cluster-
 * design.md → Refresh suppression): a remote copy expires at most E before the local one, and a
 * client that announces every interval stays alive everywhere if the peer timeout is at least the
 * jittered interval plus E, which the default E leaves room for.
 */
import { opForEvent } from "./changeBatch.ts";
import type { ChangeRecorder } from "./changeRecorder.ts";
import { FAMILY_WS, type PeerFamily, previousAge, previousSeeder } from "../store/swarmTable.ts";

const EVENT_NONE = 0;

/**
 * The default refresh epoch in seconds: a third of the peer timeout at most, else half the slack
 * between the peer timeout and the longest interval a reply may ask for (interval + 10%), and no
 * less than 30 s when a third of the timeout allows it. With the defaults (2700, 1800): 360.
 */
export function refreshEpochSeconds(peerTimeout: number, interval: number): number {
  const jittered = interval + Math.floor(interval / 10);
  const slack = Math.floor((peerTimeout - jittered) / 2);
  return Math.max(1, Math.min(Math.floor(peerTimeout / 3), Math.max(30, slack)));
}

/**
 * Whether a client that announces every (jittered) interval stays alive on every node: its
 * remote copies are refreshed at least every `epoch` seconds later than its own announces.
 */
export function epochLeavesSlack(peerTimeout: number, interval: number, epoch: number): boolean {
  return peerTimeout >= interval + Math.floor(interval / 10) + epoch;
}

/**
 * Whether an accepted announce is to be published (the rules above). `previous` is the store's
 * AnnounceResult.previous for it, `phaseKey` its info hash's first two bytes (big-endian) xor its
 * port, `now` the tracker clock, `epoch` E in seconds, `republishBefore` a clock time (or
 * -Infinity).
 */
export function publishDue(
  event: number,
  previous: number,
  phaseKey: number,
  seeder: boolean,
  now: number,
  epoch: number,
  republishBefore: number,
): boolean {
  if (event !== EVENT_NONE) return true;
  const age = previousAge(previous, now);
  if (age < 0 || previousSeeder(previous) !== seeder) return true;
  if (age > (now + phaseKey) % epoch) return true;
  return now - age < republishBefore;
}

/** The servers' side of the cluster: what they call after each announce the store accepted. */
export class LocalChanges {
  /** E, the refresh epoch in seconds (recomputed when SIGHUP changes the interval). */
  epochSeconds: number;
  /**
   * E for WebSocket peers, which announce and expire on their own, shorter clock (--ws-interval,
   * --ws-peer-timeout: 30 s with the defaults); `epochSeconds` until set.
   */
  wsEpochSeconds: number;
  /** Clock seconds: a peer last seen before it is published once more (-Infinity: none). */
  republishBefore = -Infinity;
  readonly #recorder: ChangeRecorder;
  readonly #counters: { suppressedRefreshes: number };

  constructor(
    recorder: ChangeRecorder,
    epochSeconds: number,
    counters: { suppressedRefreshes: number },
  ) {
    this.#recorder = recorder;
    this.epochSeconds = epochSeconds;
    this.wsEpochSeconds = epochSeconds;
    this.#counters = counters;
  }

  /**
   * Records the announce for publishing if it is due (`publishDue`), else counts it as
   * suppressed. On the announce path: a few comparisons, no allocation.
   */
  announced(
    event: number,
    infoHash: Uint8Array,
    hashOffset: number,
    family: PeerFamily,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
    previous: number,
    now: number,
  ): void {
    let phaseKey = ((infoHash[hashOffset] << 8) | infoHash[hashOffset + 1]) ^ port;
    let epoch = this.epochSeconds;
    if (family === FAMILY_WS) {
      // Every WebSocket peer of a node has the node's tag as its port: spread by the key instead.
      phaseKey ^= (address[addressOffset + 2] << 8) | address[addressOffset + 3];
      epoch = this.wsEpochSeconds;
    }
    if (!publishDue(event, previous, phaseKey, seeder, now, epoch, this.republishBefore)) {
      this.#counters.suppressedRefreshes++;
      return;
    }
    this.#recorder.record(
      opForEvent(event),
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      seeder,
    );
  }
}
