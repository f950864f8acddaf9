/**
 * Authenticates change batches with the cluster secret, so that only nodes holding it can put
 * peers into the cluster: anyone who can XADD to the stream could otherwise do so, since the
 * batch checksum (CRC-32) only detects damage.
 *
 * The tag is HMAC-SHA256, keyed with the secret file's bytes (clusterSecret.ts), truncated to its
 * first 16 bytes (128 bits; RFC 2104 section 5 allows truncation to half the hash or more). The
 * HMAC covers a context string naming the format and the cluster (so a batch from another cluster
 * with the same secret does not verify), then every batch byte from offset 8 on except the tag
 * itself: version, flags, delay, record count, instance, sequence, publish time, node id and
 * every record, which is everything a receiver reads. node:crypto computes it synchronously in
 * native code; a batch carries up to 4096 changes, so the cost per change is small
 * (bench/cluster_mac_bench.ts).
 *
 * Without a secret (`--cluster-insecure`) the tag is left zero and not checked.
 */
import { createHmac } from "node:crypto";
import { CRC_START, HEADER_SIZE, TAG_AT, TAG_SIZE, writeChecksum } from "./changeBatch.ts";

const encoder = new TextEncoder();

export class BatchMac {
  readonly #key: Uint8Array | null;
  readonly #context: Uint8Array;
  readonly #tag = new Uint8Array(TAG_SIZE);

  /**
   * @param key the cluster secret's bytes, or null for a cluster without authentication
   * @param clusterName the cluster's name (`--cluster-name`), bound into every tag
   */
  constructor(key: Uint8Array | null, clusterName: string) {
    this.#key = key === null ? null : key.slice();
    this.#context = encoder.encode(`otter cluster batch v2\0${clusterName}\0`);
  }

  /** Whether batches are authenticated (a secret was given). */
  get authenticated(): boolean {
    return this.#key !== null;
  }

  /** Writes the tag (zero without a secret), then the checksum. */
  seal(batch: Uint8Array): void {
    if (this.#key === null) batch.fill(0, TAG_AT, TAG_AT + TAG_SIZE);
    else this.#compute(batch, batch, TAG_AT);
    writeChecksum(batch);
  }

  /**
   * Whether the tag of a batch that `checkBatch` accepted is right; always true without a
   * secret. Compares in constant time.
   */
  verify(batch: Uint8Array): boolean {
    if (this.#key === null) return true;
    if (batch.length < HEADER_SIZE) return false;
    const tag = this.#tag;
    this.#compute(batch, tag, 0);
    let difference = 0;
    for (let i = 0; i < TAG_SIZE; i++) difference |= tag[i] ^ batch[TAG_AT + i];
    return difference === 0;
  }

  #compute(batch: Uint8Array, out: Uint8Array, at: number): void {
    const digest = createHmac("sha256", this.#key!)
      .update(this.#context)
      .update(batch.subarray(CRC_START, TAG_AT))
      .update(batch.subarray(TAG_AT + TAG_SIZE))
      .digest();
    out.set(digest.subarray(0, TAG_SIZE), at);
  }
}
