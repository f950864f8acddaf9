/**
 * Authenticates change batches with the cluster secret, so that only nodes holding it can put
 * peers into the cluster: anyone who can XADD to the stream could otherwise do so, since the
 * batch checksum (CRC-32) only detects damage.
 *
 * The tag is HMAC-SHA256, keyed with the secret file's bytes (clusterSecret.ts), truncated to its
 * first 16 bytes (128 bits; RFC 2104 section 5 allows truncation to half the hash or more). The
 * HMAC covers a context string naming the format and the cluster (so a batch from another cluster
 * with the same secret does not verify), then every batch byte from offset 8 on except the tag
 * itself: version, flags, delay, record count, instance, sequence, publish time, shard, node id
 * and every record, which is everything a receiver reads. Snapshot chunks and manifests
 * (snapshotFormat.ts) are sealed the same way under their own context. node:crypto computes it synchronously in
 * native code; a batch carries up to 4096 changes, so the cost per change is small
 * (bench/cluster_mac_bench.ts).
 *
 * Without a secret (`--cluster-insecure`) the tag is left zero and not checked.
 */
import { createHmac } from "node:crypto";
import { CRC_START, TAG_AT, TAG_SIZE, writeChecksum } from "./changeBatch.ts";

const encoder = new TextEncoder();

/**
 * A MAC over a sealed cluster record (a batch, a snapshot chunk or manifest): the tag sits at
 * `tagAt`, the CRC-32 at 4 covers every byte from CRC_START on, and the HMAC covers a context
 * string (format and cluster name), then every byte from CRC_START on except the tag.
 */
export class ClusterMac {
  readonly #key: Uint8Array | null;
  readonly #context: Uint8Array;
  readonly #tagAt: number;
  readonly #tag = new Uint8Array(TAG_SIZE);

  /**
   * @param key the cluster secret's bytes, or null for a cluster without authentication
   * @param context what is sealed and in which cluster, bound into every tag
   */
  constructor(key: Uint8Array | null, context: string, tagAt: number) {
    this.#key = key === null ? null : key.slice();
    this.#context = encoder.encode(context);
    this.#tagAt = tagAt;
  }

  /** Whether tags are checked (a secret was given). */
  get authenticated(): boolean {
    return this.#key !== null;
  }

  /** Writes the tag (zero without a secret), then the checksum. */
  seal(bytes: Uint8Array): void {
    if (this.#key === null) bytes.fill(0, this.#tagAt, this.#tagAt + TAG_SIZE);
    else this.#compute(bytes, bytes, this.#tagAt);
    writeChecksum(bytes);
  }

  /**
   * Whether the tag of a record whose structure was checked is right; always true without a
   * secret. Compares in constant time.
   */
  verify(bytes: Uint8Array): boolean {
    if (this.#key === null) return true;
    const tagAt = this.#tagAt;
    if (bytes.length < tagAt + TAG_SIZE) return false;
    const tag = this.#tag;
    this.#compute(bytes, tag, 0);
    let difference = 0;
    for (let i = 0; i < TAG_SIZE; i++) difference |= tag[i] ^ bytes[tagAt + i];
    return difference === 0;
  }

  #compute(bytes: Uint8Array, out: Uint8Array, at: number): void {
    const digest = createHmac("sha256", this.#key!)
      .update(this.#context)
      .update(bytes.subarray(CRC_START, this.#tagAt))
      .update(bytes.subarray(this.#tagAt + TAG_SIZE))
      .digest();
    out.set(digest.subarray(0, TAG_SIZE), at);
  }
}

/** The MAC of change batches (changeBatch.ts, version 3) of the cluster `clusterName`. */
export class BatchMac extends ClusterMac {
  constructor(key: Uint8Array | null, clusterName: string) {
    super(key, `otter cluster batch v3\0${clusterName}\0`, TAG_AT);
  }
}
