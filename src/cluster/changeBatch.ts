/**
 * Cluster change batches: the compact binary form in which a node tells the others what changed
 * in its swarms (peer announced or refreshed, stopped, completed).
 *
 * The servers call `ChangeRecorder.record` (changeRecorder.ts) on every accepted announce, so
 * recording is a handful of byte writes into a preallocated ring and allocates nothing. Once per
 * flush the cluster sync takes the pending changes as encoded batches, stamps each as it publishes
 * it and seals it (batchMac.ts: the MAC tag, then the checksum). `decodeBatch` reads a batch from
 * the stream: it validates the whole batch (header, checksum, every record) before it applies
 * anything, and returns an error reason for anything malformed instead of throwing, since the
 * stream is shared and may hold data from other versions or other programs. Whether a batch is
 * authentic is batchMac.ts's question, asked after these checks.
 *
 * Wire format, version 3, big-endian:
 *
 *   0  magic "OTCB"
 *   4  CRC-32 (IEEE) of every byte from offset 8 to the end (damage, not forgery: see the tag)
 *   8  version (3)
 *   9  flags: bit 0 "late" and bit 1 "queued" (see `markLate`); other bits zero
 *  10  delay: whole seconds the batch waited at its origin before it was published (u16)
 *  12  record count (u32)
 *  16  instance: 8 random bytes per recorder, so a node knows its own batches even when a
 *      restarted node reuses its node id (its earlier life's batches are then not its own)
 *  24  sequence: 1, 2, 3… per instance and shard, given when the batch is first published (u32),
 *      so a receiver can refuse a batch it has already applied (a retried XADD, or a replay) and
 *      see one that went missing
 *  28  publish time: milliseconds since the Unix epoch on Redis's clock, as the origin reckoned
 *      it when it sent the XADD (u64; 0 until stamped); receivers take a batch's age from it
 *  36  tag: the first 16 bytes of HMAC-SHA256 over the batch under the cluster secret (zero in
 *      a cluster run with --cluster-insecure); see batchMac.ts
 *  52  shard (u16): the shard whose stream carries it (clusterKeys.ts); every record's info hash
 *      belongs to it
 *  54  node id length L (1..64)
 *  55  node id, L bytes of UTF-8
 *  55+L records, each one flags byte, then info hash (20), address, port (u16):
 *       flags bits 0-1 op (1 announce/refresh, 2 stopped, 3 completed), bit 2 seeder, bits 3-5
 *       the peer family's code (RECORD_FAMILIES: 0 IPv4, 4-byte address; 1 IPv6, 16 bytes;
 *       2 WebSocket, 4 bytes), bits 6-7 zero. An IPv4 or WebSocket record is 27 bytes, an IPv6
 *       record 39. A WebSocket peer's address and port are not an address but the key its origin
 *       publishes it under (wsPeerKeys.ts); receivers hold it as another node's peer.
 *
 * Versions 1 and 2 are refused as unsupported versions: all nodes of a cluster upgrade together.
 */
import { crc32 } from "../hash/crc32.ts";
import { FAMILY_WS, type PeerFamily } from "../store/layout.ts";

export const OP_ANNOUNCE = 1;
export const OP_STOPPED = 2;
export const OP_COMPLETED = 3;

export const BATCH_VERSION = 3;
/** Size of the header without the node id. */
export const HEADER_SIZE = 55;
export const INSTANCE_SIZE = 8;
export const MAX_NODE_ID_BYTES = 64;
/**
 * The peer families a record can carry, by the code in its flags: the family number the store
 * knows them by and the bytes of their address. A new kind of peer adds a row here (its record is
 * flags, info hash, address, port like the others); a receiver refuses a code it has no row for.
 */
export const RECORD_FAMILIES: readonly {
  code: number;
  family: PeerFamily;
  addressBytes: number;
}[] = [
  { code: 0, family: 4, addressBytes: 4 },
  { code: 1, family: 6, addressBytes: 16 },
  { code: 2, family: FAMILY_WS, addressBytes: 4 },
];
/** Record bytes besides the address: flags, info hash, port. */
const RECORD_FIXED = 1 + 20 + 2;
export const RECORD_SIZE_V4 = RECORD_FIXED + 4;
export const RECORD_SIZE_V6 = RECORD_FIXED + 16;
/** The largest record of any family: a recorder's ring slot. */
export const RECORD_SLOT = RECORD_FIXED + Math.max(...RECORD_FAMILIES.map((f) => f.addressBytes));
const FAMILY_SHIFT = 3;
const FAMILY_CODES = 8;
/** Record size by family code, 0 for a code without a row. */
const RECORD_SIZE_BY_CODE = new Uint8Array(FAMILY_CODES);
/** Family number by code. */
const FAMILY_BY_CODE = new Uint8Array(FAMILY_CODES);
/** Code by family number (4 and 6 index it directly). */
const CODE_BY_FAMILY = new Uint8Array(8);
for (const row of RECORD_FAMILIES) {
  RECORD_SIZE_BY_CODE[row.code] = RECORD_FIXED + row.addressBytes;
  FAMILY_BY_CODE[row.code] = row.family;
  CODE_BY_FAMILY[row.family] = row.code;
}
/** Most changes in one batch. */
export const MAX_BATCH_RECORDS = 4096;
/** The largest batch a recorder makes (159,861 bytes); a stream entry above it is refused. */
export const MAX_BATCH_BYTES = HEADER_SIZE + MAX_NODE_ID_BYTES +
  MAX_BATCH_RECORDS * RECORD_SIZE_V6;
/** Where the MAC tag sits and how long it is; it covers every byte from 8 on except itself. */
export const TAG_AT = 36;
export const TAG_SIZE = 16;
/** Where the checksummed bytes start. */
export const CRC_START = 8;
/** Most shards a cluster may have (the header's field is 16 bits; clusterKeys.ts caps it lower). */
export const MAX_SHARDS = 1024;

const MAGIC_0 = 0x4f; // "O"
const MAGIC_1 = 0x54; // "T"
const MAGIC_2 = 0x43; // "C"
const MAGIC_3 = 0x42; // "B"
const FLAG_SEEDER = 4;
const FLAGS_RESERVED = 0xc0;
const BATCH_LATE = 1;
const BATCH_QUEUED = 2;
const INSTANCE_AT = 16;
const SEQUENCE_AT = 24;
const TIME_AT = 28;
const SHARD_AT = 52;
const ID_LENGTH_AT = 54;

/** A record's size from its flags byte, 0 for an unknown family. */
export function recordSize(flags: number): number {
  return RECORD_SIZE_BY_CODE[(flags >> FAMILY_SHIFT) & (FAMILY_CODES - 1)];
}

/** The shard of an info hash at bytes[at..]: its first four bytes (big-endian) mod `shards`. */
export function shardOf(bytes: Uint8Array, at: number, shards: number): number {
  return shards === 1 ? 0 : readU32BE(bytes, at) % shards;
}

/** Receives one decoded change; the byte arrays are the batch itself, read at the offsets. */
export type ApplyChange = (
  op: number,
  infoHash: Uint8Array,
  hashOffset: number,
  family: PeerFamily,
  address: Uint8Array,
  addressOffset: number,
  port: number,
  seeder: boolean,
) => void;

export type DecodeResult = { nodeId: string; count: number } | { error: string };

/** Maps a BEP 15 event (0 none, 1 completed, 2 started, 3 stopped) to the change op to record. */
export function opForEvent(event: number): number {
  return event === 3 ? OP_STOPPED : event === 1 ? OP_COMPLETED : OP_ANNOUNCE;
}

function writeU32BE(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

function readU32BE(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** Encodes a node id, or returns null if it is empty or longer than the header allows. */
export function encodeNodeId(nodeId: string): Uint8Array | null {
  const bytes = new TextEncoder().encode(nodeId);
  return bytes.length >= 1 && bytes.length <= MAX_NODE_ID_BYTES ? bytes : null;
}

/**
 * Writes one change as a record (its wire form) at out[at..], which must have room for
 * RECORD_SLOT bytes. Writes bytes and allocates nothing: changeRecorder.ts calls it on the
 * announce path.
 */
export function writeRecord(
  out: Uint8Array,
  at: number,
  op: number,
  infoHash: Uint8Array,
  hashOffset: number,
  family: PeerFamily,
  address: Uint8Array,
  addressOffset: number,
  port: number,
  seeder: boolean,
): void {
  const code = CODE_BY_FAMILY[family];
  out[at++] = (op & 3) | (seeder ? FLAG_SEEDER : 0) | (code << FAMILY_SHIFT);
  for (let i = 0; i < 20; i++) out[at++] = infoHash[hashOffset + i];
  const addressLength = RECORD_SIZE_BY_CODE[code] - RECORD_FIXED;
  for (let i = 0; i < addressLength; i++) out[at++] = address[addressOffset + i];
  out[at++] = port >>> 8;
  out[at] = port;
}

/**
 * A batch of `size` bytes for `count` records of `shard`, its header written (sequence 0, not
 * late, delay 0, no publish time, zero tag) with `instance` and the encoded `nodeId`; the records
 * and the checksum are the caller's to write.
 */
export function batchWithHeader(
  size: number,
  count: number,
  shard: number,
  instance: Uint8Array,
  nodeId: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(size);
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = MAGIC_2;
  out[3] = MAGIC_3;
  out[8] = BATCH_VERSION;
  writeU32BE(out, 12, count);
  out.set(instance, INSTANCE_AT);
  out[SHARD_AT] = shard >>> 8;
  out[SHARD_AT + 1] = shard;
  out[ID_LENGTH_AT] = nodeId.length;
  out.set(nodeId, HEADER_SIZE);
  return out;
}

/** Writes the checksum of a batch whose other bytes are final (the tag included). */
export function writeChecksum(batch: Uint8Array): void {
  writeU32BE(batch, 4, crc32(batch, CRC_START));
}

/**
 * Marks a batch late: its origin applies it again when it reads it back from the stream, so
 * that changes queued during an outage end up applied in the same (stream) order on every node.
 * `queued` says it was queued across a reconnect (rather than late only because it followed
 * queued ones). Sets the delay (whole seconds it waited, capped at 65535). The batch, which must
 * come from `take`, needs sealing again afterwards (batchMac.ts).
 */
export function markLate(batch: Uint8Array, waitedSeconds: number, queued: boolean): void {
  const delay = Math.max(0, Math.min(65535, Math.floor(waitedSeconds)));
  batch[9] = queued ? BATCH_LATE | BATCH_QUEUED : BATCH_LATE;
  batch[10] = delay >>> 8;
  batch[11] = delay;
}

/**
 * Stamps the publish time (milliseconds since the epoch on Redis's clock, a whole number); the
 * batch needs sealing again afterwards.
 */
export function setPublishTime(batch: Uint8Array, ms: number): void {
  const whole = Math.max(0, Math.floor(ms));
  writeU32BE(batch, TIME_AT, Math.floor(whole / 4294967296));
  writeU32BE(batch, TIME_AT + 4, whole >>> 0);
}

/** The publish time of a batch that `checkBatch` accepted. */
export function batchPublishTime(batch: Uint8Array): number {
  return readU32BE(batch, TIME_AT) * 4294967296 + readU32BE(batch, TIME_AT + 4);
}

/** The sequence number of a batch that `checkBatch` accepted. */
export function batchSequence(batch: Uint8Array): number {
  return readU32BE(batch, SEQUENCE_AT);
}

/** Gives a batch its sequence number (once, when first published); it needs sealing again. */
export function setSequence(batch: Uint8Array, sequence: number): void {
  writeU32BE(batch, SEQUENCE_AT, sequence);
}

/** The shard of a batch that `checkBatch` accepted. */
export function batchShard(batch: Uint8Array): number {
  return (batch[SHARD_AT] << 8) | batch[SHARD_AT + 1];
}

/** The node id of a batch that `checkBatch` accepted, for log lines. */
export function batchNodeId(batch: Uint8Array): string {
  return nodeIdOf(batch) ?? "";
}

/** The delay field of a batch that `checkBatch` accepted. */
export function batchDelay(batch: Uint8Array): number {
  return (batch[10] << 8) | batch[11];
}

/** Whether a batch that `checkBatch` accepted is marked late. */
export function batchIsLate(batch: Uint8Array): boolean {
  return (batch[9] & BATCH_LATE) !== 0;
}

/** Whether a batch that `checkBatch` accepted is marked queued (see `markLate`). */
export function batchIsQueued(batch: Uint8Array): boolean {
  return (batch[9] & BATCH_QUEUED) !== 0;
}

/** Whether the batch header carries `instance` (a recorder's); checks nothing else. */
export function batchIsFrom(batch: Uint8Array, instance: Uint8Array): boolean {
  if (batch.length < HEADER_SIZE) return false;
  for (let i = 0; i < INSTANCE_SIZE; i++) if (batch[INSTANCE_AT + i] !== instance[i]) return false;
  return true;
}

const HEX = "0123456789abcdef";

/** The instance bytes of a batch as 16 hex digits, as stream keys name an instance. */
export function batchInstanceKey(batch: Uint8Array): string {
  return instanceHex(batch.subarray(INSTANCE_AT, INSTANCE_AT + INSTANCE_SIZE));
}

/** An instance's 8 bytes as 16 hex digits. */
export function instanceHex(instance: Uint8Array): string {
  let key = "";
  for (let i = 0; i < INSTANCE_SIZE; i++) key += HEX[instance[i] >> 4] + HEX[instance[i] & 15];
  return key;
}

/** The record count in a batch's header (meaningful once the batch has been checked). */
export function batchRecordCount(batch: Uint8Array): number {
  return readU32BE(batch, 12);
}

/**
 * Validates a whole batch: header, checksum, node id, every record, exact length. Returns null
 * if it is sound, else the reason. Never throws.
 */
export function checkBatch(bytes: Uint8Array): string | null {
  const length = bytes.length;
  if (length < HEADER_SIZE) return "truncated header";
  if (
    bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1 || bytes[2] !== MAGIC_2 || bytes[3] !== MAGIC_3
  ) {
    return "bad magic";
  }
  if (bytes[8] !== BATCH_VERSION) return `unsupported version ${bytes[8]}`;
  if ((bytes[9] & ~(BATCH_LATE | BATCH_QUEUED)) !== 0) return "unknown batch flags";
  const idLength = bytes[ID_LENGTH_AT];
  if (idLength < 1 || idLength > MAX_NODE_ID_BYTES) return "bad node id length";
  const recordsStart = HEADER_SIZE + idLength;
  if (length < recordsStart) return "truncated node id";
  if (readU32BE(bytes, 4) !== crc32(bytes, CRC_START)) return "checksum mismatch";
  const count = readU32BE(bytes, 12);
  let at = recordsStart;
  if (batchShard(bytes) >= MAX_SHARDS) return "bad shard";
  for (let n = 0; n < count; n++) {
    if (at >= length) return "fewer records than counted";
    const flags = bytes[at];
    if ((flags & 3) === 0 || (flags & FLAGS_RESERVED) !== 0) return "bad record flags";
    const size = recordSize(flags);
    if (size === 0) return "unknown peer family";
    at += size;
    if (at > length) return "truncated record";
  }
  if (at !== length) return "bytes after the last record";
  if (nodeIdOf(bytes) === null) return "node id is not UTF-8";
  return null;
}

const nodeIdDecoder = new TextDecoder("utf-8", { fatal: true });

function nodeIdOf(bytes: Uint8Array): string | null {
  try {
    return nodeIdDecoder.decode(bytes.subarray(HEADER_SIZE, HEADER_SIZE + bytes[ID_LENGTH_AT]));
  } catch {
    return null;
  }
}

/**
 * Validates a whole batch (`checkBatch`), then, only if all of it is sound, passes each change
 * to `apply` in recorded order. Never throws on bad input (an exception from `apply` propagates).
 */
export function decodeBatch(bytes: Uint8Array, apply: ApplyChange): DecodeResult {
  const error = checkBatch(bytes);
  if (error !== null) return { error };
  return { nodeId: nodeIdOf(bytes)!, count: applyCheckedBatch(bytes, apply) };
}

/**
 * Passes each change of a batch that `checkBatch` has just accepted to `apply`, in recorded
 * order, and returns their number. For callers that must look at a sound batch's header
 * (origin, delay) before applying it, without a second checksum pass.
 */
export function applyCheckedBatch(bytes: Uint8Array, apply: ApplyChange): number {
  const count = readU32BE(bytes, 12);
  let at = HEADER_SIZE + bytes[ID_LENGTH_AT];
  for (let n = 0; n < count; n++) {
    const flags = bytes[at];
    const code = (flags >> FAMILY_SHIFT) & (FAMILY_CODES - 1);
    const addressAt = at + 21;
    const portAt = at + RECORD_SIZE_BY_CODE[code] - 2;
    apply(
      flags & 3,
      bytes,
      at + 1,
      FAMILY_BY_CODE[code] as PeerFamily,
      bytes,
      addressAt,
      (bytes[portAt] << 8) | bytes[portAt + 1],
      (flags & FLAG_SEEDER) !== 0,
    );
    at = portAt + 2;
  }
  return count;
}
