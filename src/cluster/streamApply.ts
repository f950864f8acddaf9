/**
 * Applies what the cluster sync reads from the stream to the local store. Each entry of an XREAD
 * reply passes the gate (batchGate.ts: size, shape, checksum, MAC, age, sequence); each change of
 * an admitted batch then goes through the store's ordinary announce with numwant 0, so the store's
 * own rules (expiry, counting a completion once) hold for remote peers too. A change is applied as
 * if seen `age` seconds before the local `clock.now`, so it expires here when it expires at its
 * origin. Changes for a torrent this node's access list forbids are skipped; this node's own
 * batches, read back when they were published late, refresh what they changed without counting
 * completions again.
 *
 * A WebSocket peer (FAMILY_WS) is stored with WS_REMOTE_BIT set in its address word, whatever the
 * batch says, so this node never routes an offer to it (it is reachable only through its own
 * node's socket); this node's own WebSocket changes are skipped when read back, since it holds
 * those peers under their local key already.
 */
import {
  type ApplyChange,
  applyCheckedBatch,
  OP_ANNOUNCE,
  OP_COMPLETED,
  OP_STOPPED,
} from "./changeBatch.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import { FAMILY_WS, type SwarmTable } from "../store/swarmTable.ts";
import type { BatchGate } from "./batchGate.ts";
import type { ClusterCounters } from "./clusterCounters.ts";

/**
 * The peer store the sync works on: its announce (stops, completions), its refresh (a refresh
 * never makes a peer look older than this node knows it), its restore and walks (snapshots).
 */
export type ClusterStore = SwarmTable;

export class StreamApplier {
  readonly #gate: BatchGate;
  readonly #store: ClusterStore;
  readonly #access: AccessPolicy | null;
  readonly #clock: { now: number };
  readonly #counters: ClusterCounters;
  readonly #ownLateReapplied: (batch: Uint8Array) => void;
  /** The batch being applied, for `#applyChange`: its `now` for the store, and whether it is ours. */
  #applyNow = 1;
  #applyingOwn = false;
  readonly #scratch = new Uint8Array(64);
  /** A remote WebSocket peer's address word, WS_REMOTE_BIT set. */
  readonly #remoteWs = new Uint8Array(4);

  /** `ownLateReapplied` is told when one of this node's late batches was applied again. */
  constructor(
    gate: BatchGate,
    store: ClusterStore,
    access: AccessPolicy | null,
    clock: { now: number },
    counters: ClusterCounters,
    ownLateReapplied: (batch: Uint8Array) => void,
  ) {
    this.#gate = gate;
    this.#store = store;
    this.#access = access;
    this.#clock = clock;
    this.#counters = counters;
    this.#ownLateReapplied = ownLateReapplied;
  }

  /**
   * Applies one stream entry (its id, and its fields as the reader gave them) of shard `shard`,
   * read when Redis's clock was `redisNowMs`, if the gate admits it. Returns whether entries of
   * its origin went missing before it (a gap: trimmed before this node read them, or lost).
   */
  applyEntry(id: string, fields: unknown, redisNowMs: number, shard: number): boolean {
    const admitted = this.#gate.admit(id, fields, redisNowMs, shard);
    if (!admitted.apply) return false;
    const { batch, own, age } = admitted;
    // Below 1 for changes older than this process: the store keeps 15-bit modular stamps, so
    // such a peer still expires on time (as restoreState relies on too).
    this.#applyNow = this.#clock.now - age;
    this.#applyingOwn = own;
    applyCheckedBatch(batch, this.#applyChange);
    if (!own) this.#counters.appliedBatches++;
    else this.#ownLateReapplied(batch);
    return admitted.gap;
  }

  readonly #applyChange: ApplyChange = (
    op,
    infoHash,
    hashOffset,
    family,
    address,
    addressOffset,
    port,
    seeder,
  ) => {
    if (this.#access !== null && !this.#access.allows(infoHash, hashOffset)) {
      this.#counters.forbidden++;
      return;
    }
    // Our own completions were counted when they happened; applied again they only refresh.
    // `seeder` is the origin's (left == 0): a "completed" with bytes left leaves a leecher, and
    // counts nowhere, as at the origin.
    const own = this.#applyingOwn;
    if (family === FAMILY_WS) {
      if (own) return;
      const remote = this.#remoteWs;
      remote[0] = address[addressOffset] | 0x80; // WS_REMOTE_BIT: never offered to here
      remote[1] = address[addressOffset + 1];
      remote[2] = address[addressOffset + 2];
      remote[3] = address[addressOffset + 3];
      address = remote;
      addressOffset = 0;
    }
    const completed = op === OP_COMPLETED;
    if (op === OP_ANNOUNCE || (completed && own)) {
      // A late or replayed refresh (an outage's queue, a stream tail read over a newer snapshot)
      // never moves a peer's stamp back, which the refresh epochs rely on (publishRule.ts); its
      // seeder flag is applied as before, so flags still end as the stream's last word.
      this.#store.refreshPeer(
        infoHash,
        hashOffset,
        family,
        address,
        addressOffset,
        port,
        seeder,
        this.#applyNow,
      );
      if (own) this.#counters.reapplied++;
      else this.#counters.applied++;
      return;
    }
    this.#store.announce(
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      op === OP_STOPPED ? 3 : 1,
      seeder,
      0,
      this.#applyNow,
      this.#scratch,
      0,
    );
    if (own) this.#counters.reapplied++;
    else this.#counters.applied++;
  };
}
