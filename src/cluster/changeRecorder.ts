/**
 * A node's local changes, collected between flushes: the servers call `record` on every accepted
 * announce (publishRule.ts decides which), which writes the change in its wire form
 * (changeBatch.ts) into a preallocated ring and allocates nothing; once per flush the cluster sync
 * takes them as encoded batches, by shard (publishQueue.ts).
 */
import type { PeerFamily } from "../store/layout.ts";
import {
  batchWithHeader,
  encodeNodeId,
  HEADER_SIZE,
  INSTANCE_SIZE,
  MAX_BATCH_RECORDS,
  MAX_NODE_ID_BYTES,
  RECORD_SLOT,
  recordSize,
  shardOf,
  writeChecksum,
  writeRecord,
} from "./changeBatch.ts";

/**
 * Collects a node's local changes in a fixed ring of records. When the ring is full the oldest
 * change is overwritten and counted in `dropped`: the newest state of a swarm matters most.
 */
export class ChangeRecorder {
  /** Changes lost because the ring was full. */
  dropped = 0;
  readonly capacity: number;
  readonly maxBatchRecords: number;
  /** Random bytes that mark this recorder's batches as its own. */
  readonly instance: Uint8Array;
  readonly #nodeId: Uint8Array;
  /** One RECORD_SLOT slot per change, each holding the change in its wire form. */
  readonly #ring: Uint8Array;
  #first = 0;
  #pending = 0;

  /**
   * @param capacity most changes held between two `take` calls
   * @param maxBatchRecords most changes in one batch (at most MAX_BATCH_RECORDS); `take` again
   *   for the rest
   * @param instance INSTANCE_SIZE bytes; random unless given (tests)
   */
  constructor(
    nodeId: string,
    capacity = 65536,
    maxBatchRecords = MAX_BATCH_RECORDS,
    instance = crypto.getRandomValues(new Uint8Array(INSTANCE_SIZE)),
  ) {
    const id = encodeNodeId(nodeId);
    if (id === null) throw new RangeError(`node id must be 1 to ${MAX_NODE_ID_BYTES} bytes`);
    if (!(capacity >= 1) || !(maxBatchRecords >= 1 && maxBatchRecords <= MAX_BATCH_RECORDS)) {
      throw new RangeError("bad recorder size");
    }
    if (instance.length !== INSTANCE_SIZE) throw new RangeError("bad instance size");
    this.instance = instance.slice();
    this.#nodeId = id;
    this.capacity = capacity;
    this.maxBatchRecords = maxBatchRecords;
    this.#ring = new Uint8Array(capacity * RECORD_SLOT);
  }

  /** Changes waiting for `take`. */
  get pending(): number {
    return this.#pending;
  }

  /** Notes one change. Called on the announce path: writes bytes, allocates nothing. */
  record(
    op: number,
    infoHash: Uint8Array,
    hashOffset: number,
    family: PeerFamily,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
  ): void {
    let slot = this.#first + this.#pending;
    if (slot >= this.capacity) slot -= this.capacity;
    if (this.#pending === this.capacity) {
      this.#first = this.#first + 1 === this.capacity ? 0 : this.#first + 1;
      this.dropped++;
    } else {
      this.#pending++;
    }
    writeRecord(
      this.#ring,
      slot * RECORD_SLOT,
      op,
      infoHash,
      hashOffset,
      family,
      address,
      addressOffset,
      port,
      seeder,
    );
  }

  /**
   * Takes up to `maxBatchRecords` pending changes, oldest first, as one encoded batch of shard 0
   * (sequence 0, not late, delay 0, no publish time, zero tag, valid checksum), or returns null
   * if nothing is pending. For a cluster of one shard; `takeAll` splits by shard.
   */
  take(): Uint8Array | null {
    const count = Math.min(this.#pending, this.maxBatchRecords);
    if (count === 0) return null;
    const ring = this.#ring;
    let size = HEADER_SIZE + this.#nodeId.length;
    let slot = this.#first;
    for (let n = 0; n < count; n++) {
      size += recordSize(ring[slot * RECORD_SLOT]);
      if (++slot === this.capacity) slot = 0;
    }
    const out = this.#header(size, count, 0);
    let at = HEADER_SIZE + this.#nodeId.length;
    slot = this.#first;
    for (let n = 0; n < count; n++) {
      const from = slot * RECORD_SLOT;
      const length = recordSize(ring[from]);
      for (let i = 0; i < length; i++) out[at++] = ring[from + i];
      if (++slot === this.capacity) slot = 0;
    }
    this.#first = slot;
    this.#pending -= count;
    writeChecksum(out);
    return out;
  }

  /**
   * Takes every pending change, oldest first, as batches by shard (an info hash's shard is
   * `shardOf` it): each batch holds changes of one shard, in the order they were recorded, at
   * most `maxBatchRecords` of them. Returns the batches in shard order (empty when nothing is
   * pending).
   */
  takeAll(shards: number): Uint8Array[] {
    if (shards === 1) {
      const batches: Uint8Array[] = [];
      for (let batch = this.take(); batch !== null; batch = this.take()) batches.push(batch);
      return batches;
    }
    const ring = this.#ring;
    const max = this.maxBatchRecords;
    const idBytes = this.#nodeId.length;
    // First pass: the size of each batch of each shard.
    const counts = new Uint32Array(shards);
    const sizes: number[][] = Array.from({ length: shards }, () => []);
    let slot = this.#first;
    for (let n = 0; n < this.#pending; n++) {
      const at = slot * RECORD_SLOT;
      const shard = shardOf(ring, at + 1, shards);
      const list = sizes[shard];
      if (counts[shard] % max === 0) list.push(HEADER_SIZE + idBytes);
      list[list.length - 1] += recordSize(ring[at]);
      counts[shard]++;
      if (++slot === this.capacity) slot = 0;
    }
    // Second pass: copy each record into its shard's current batch.
    const batches: Uint8Array[][] = sizes.map((list, shard) =>
      list.map((size, i) => this.#header(size, Math.min(max, counts[shard] - i * max), shard))
    );
    const filled = new Uint32Array(shards);
    const offsets = new Uint32Array(shards).fill(HEADER_SIZE + idBytes);
    slot = this.#first;
    for (let n = 0; n < this.#pending; n++) {
      const from = slot * RECORD_SLOT;
      const shard = shardOf(ring, from + 1, shards);
      const index = Math.floor(filled[shard] / max);
      if (filled[shard] % max === 0) offsets[shard] = HEADER_SIZE + idBytes;
      const out = batches[shard][index];
      const length = recordSize(ring[from]);
      let at = offsets[shard];
      for (let i = 0; i < length; i++) out[at++] = ring[from + i];
      offsets[shard] = at;
      filled[shard]++;
      if (++slot === this.capacity) slot = 0;
    }
    this.#first = slot;
    this.#pending = 0;
    const all = batches.flat();
    for (const batch of all) writeChecksum(batch);
    return all;
  }

  /** A batch of `size` bytes with its header written (checksum and records to follow). */
  #header(size: number, count: number, shard: number): Uint8Array {
    return batchWithHeader(size, count, shard, this.instance, this.#nodeId);
  }
}
