/**
 * Applies what the cluster sync reads from the stream to the local store. Each entry of an XREAD
 * reply passes the gate (batchGate.ts: size, shape, checksum, MAC, age, sequence); each change of
 * an admitted batch then goes through the store's ordinary announce with numwant 0, so the store's
 * own rules (expiry, counting a completion once) hold for remote peers too. A change is applied as
 * if seen `age` seconds before the local `clock.now`, so it expires here when it expires at its
 * origin. Changes for a torrent this node's access list forbids are skipped; this node's own
 * batches, read back when they were published late, refresh what they changed without counting
 * completions again.
 */
import { type ApplyChange, applyCheckedBatch, OP_COMPLETED, OP_STOPPED } from "./changeBatch.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import type { SwarmTable } from "../store/swarmTable.ts";
import type { BatchGate } from "./batchGate.ts";
import type { ClusterCounters } from "./clusterCounters.ts";

/** What the sync needs from the peer store: its ordinary announce. */
export type ClusterStore = Pick<SwarmTable, "announce">;

const idDecoder = new TextDecoder();

export class StreamApplier {
  /** Id of the last stream entry read; the next XREAD starts after it. */
  lastId = "0-0";
  readonly #gate: BatchGate;
  readonly #store: ClusterStore;
  readonly #access: AccessPolicy | null;
  readonly #clock: { now: number };
  readonly #counters: ClusterCounters;
  readonly #ownReapplied: (batch: Uint8Array) => void;
  /** The batch being applied, for `#applyChange`: its `now` for the store, and whether it is ours. */
  #applyNow = 1;
  #applyingOwn = false;
  readonly #scratch = new Uint8Array(64);

  /** `ownReapplied` is told when one of this node's own batches was read back and applied again. */
  constructor(
    gate: BatchGate,
    store: ClusterStore,
    access: AccessPolicy | null,
    clock: { now: number },
    counters: ClusterCounters,
    ownReapplied: (batch: Uint8Array) => void,
  ) {
    this.#gate = gate;
    this.#store = store;
    this.#access = access;
    this.#clock = clock;
    this.#counters = counters;
    this.#ownReapplied = ownReapplied;
  }

  /** Applies one XREAD reply, read when Redis's clock was `redisNowMs`; returns its entries. */
  applyReply(reply: unknown, redisNowMs: number): number {
    if (reply === null) return 0;
    if (!Array.isArray(reply) || reply.length !== 1 || !Array.isArray(reply[0])) {
      throw new Error("unexpected XREAD reply");
    }
    const entries = reply[0][1];
    if (!Array.isArray(entries)) throw new Error("unexpected XREAD reply");
    for (const entry of entries) {
      if (!Array.isArray(entry) || entry.length !== 2 || !(entry[0] instanceof Uint8Array)) {
        throw new Error("unexpected XREAD entry");
      }
      const id = idDecoder.decode(entry[0]);
      if (!/^[0-9]{1,20}-[0-9]{1,20}$/.test(id)) throw new Error("unexpected XREAD entry id");
      this.lastId = id;
      this.#applyEntry(id, entry[1], redisNowMs);
    }
    return entries.length;
  }

  #applyEntry(id: string, fields: unknown, redisNowMs: number): void {
    const admitted = this.#gate.admit(id, fields, redisNowMs);
    if (!admitted.apply) return;
    const { batch, own, age } = admitted;
    // Below 1 for changes older than this process: the store keeps 15-bit modular stamps, so
    // such a peer still expires on time (as restoreState relies on too).
    this.#applyNow = this.#clock.now - age;
    this.#applyingOwn = own;
    applyCheckedBatch(batch, this.#applyChange);
    if (!own) this.#counters.appliedBatches++;
    else this.#ownReapplied(batch);
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
    const completed = op === OP_COMPLETED;
    this.#store.announce(
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      op === OP_STOPPED ? 3 : completed && !own ? 1 : 0,
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
