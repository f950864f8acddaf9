/**
 * The cluster's snapshot format: one shard's swarms as a few chunks and a manifest naming them
 * (docs/cluster-design.md → Short stream and snapshot). A node that joins loads the manifest and
 * its chunks, then reads the streams from the manifest's position, instead of a peer timeout of
 * changes (snapshotStore.ts writes and loads them).
 *
 * Both are sealed like batches (batchMac.ts, each under its own context, so one cannot pass for
 * the other or for a batch, and the cluster name is bound in) and checked whole, structure,
 * checksum and MAC, before anything is applied. Big-endian, as batches.
 *
 * Chunk (at most MAX_CHUNK_BYTES: a value 64 bytes under 1 MiB takes 1.05 MB in Redis, one of
 * exactly 1 MiB 1.31 MB):
 *
 *   0  magic "OTSC"   4  CRC-32 of 8..end   8  format (1)   9  flags (0)   10  shard (u16)
 *  12  snapshot version (u32)   16  chunk index (u32)   20  torrents in the chunk (u32)
 *  24  taken at: ms on Redis's clock when the chunk was walked (u64)
 *  32  tag (16)
 *  48  torrents, each: info hash (20), downloaded (u32), seconds since its last activity (u32),
 *      then per peer family of RECORD_FAMILIES in order: peers (u32), then each peer's address,
 *      port (u16) and seeder << 15 | age in seconds (u16). A torrent never spans two chunks.
 *
 * Manifest (at most MAX_MANIFEST_BYTES):
 *
 *   0  magic "OTSM"   4  CRC-32 of 8..end   8  format (1)   9  flags (0)   10  shard (u16)
 *  12  snapshot version (u32)   16  chunks (u32)   20  bytes in chunks (u64)   28  peers (u64)
 *  36  position: the stream id (ms u64, seq u64) up to which the writer had applied the shard
 *  52  the position of the snapshot it replaced (ms, seq; 0 for the first): streams are trimmed
 *      to it, so a joiner still loading that one finds its tail
 *  68  started at, 76 finished at: ms on Redis's clock (u64 each)
 *  84  writer instance (8)
 *  92  tag (16)
 * 108  node id length L (1..64), node id (L bytes of UTF-8)
 */
import { crc32 } from "../hash/crc32.ts";
import { CRC_START, MAX_NODE_ID_BYTES, RECORD_FAMILIES } from "./changeBatch.ts";
import type { PeerFamily } from "../store/layout.ts";
import { ClusterMac } from "./batchMac.ts";
import type { SnapshotRejects } from "./clusterCounters.ts";

export const SNAPSHOT_FORMAT = 1;
/** Largest chunk a node writes or reads. */
export const MAX_CHUNK_BYTES = 1_048_512;
/** Largest manifest. */
export const MAX_MANIFEST_BYTES = 4096;
export const CHUNK_HEADER = 48;
/** Smallest chunk a writer makes: room for a torrent and a peer of any family. */
const MIN_CHUNK_BYTES = 256;
const CHUNK_TAG_AT = 32;
const MANIFEST_TAG_AT = 92;
const MANIFEST_FIXED = 109;
/** A torrent's bytes besides its peers: hash, downloaded, idle, a count per family. */
export const TORRENT_FIXED = 28 + 4 * RECORD_FAMILIES.length;
/** A peer's bytes besides its address: port, flags. */
const PEER_FIXED = 4;
const MAX_AGE = 0x7fff;
const SEEDER_FLAG = 0x8000;

const CHUNK_MAGIC = [0x4f, 0x54, 0x53, 0x43]; // "OTSC"
const MANIFEST_MAGIC = [0x4f, 0x54, 0x53, 0x4d]; // "OTSM"

/** The MACs of a cluster's chunks and manifests. */
export class SnapshotMacs {
  readonly chunk: ClusterMac;
  readonly manifest: ClusterMac;
  constructor(secret: Uint8Array | null, clusterName: string) {
    this.chunk = new ClusterMac(
      secret,
      `otter cluster snapshot chunk v1\0${clusterName}\0`,
      CHUNK_TAG_AT,
    );
    this.manifest = new ClusterMac(
      secret,
      `otter cluster snapshot manifest v1\0${clusterName}\0`,
      MANIFEST_TAG_AT,
    );
  }
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function writeU64(b: Uint8Array, at: number, v: number): void {
  const whole = Math.max(0, Math.floor(v));
  writeU32(b, at, Math.floor(whole / 4294967296));
  writeU32(b, at + 4, whole >>> 0);
}

function readU64(b: Uint8Array, at: number): number {
  return readU32(b, at) * 4294967296 + readU32(b, at + 4);
}

function hasMagic(b: Uint8Array, magic: number[]): boolean {
  return magic.every((byte, i) => b[i] === byte);
}

/** A stream id as two numbers. */
export interface StreamPosition {
  ms: number;
  seq: number;
}

export function positionOf(id: string): StreamPosition {
  const dash = id.indexOf("-");
  return { ms: Number(id.slice(0, dash)), seq: Number(id.slice(dash + 1)) };
}

export function idOf(position: StreamPosition): string {
  return `${position.ms}-${position.seq}`;
}

// ---------------------------------------------------------------- chunks

/**
 * Fills chunks with torrents, one at a time: `begin` a torrent, `peer` for each of its peers by
 * family in RECORD_FAMILIES order (`family` before each family's peers), `end`. A torrent that
 * does not fit in what is left of the chunk goes to the next; one larger than a chunk is cut at a
 * chunk's end (its peers continue under the same hash in the next chunk).
 */
export class ChunkWriter {
  readonly #maxBytes: number;
  readonly #shard: number;
  readonly #version: number;
  #buffer: Uint8Array;
  #at = CHUNK_HEADER;
  #torrents = 0;
  #index = 0;
  /** The torrent being written: where it starts, its hash, downloaded and idle, and its counts. */
  #torrentAt = -1;
  readonly #hash = new Uint8Array(20);
  #downloaded = 0;
  #idle = 0;
  #familyIndex = -1;
  #countAt = 0;
  #count = 0;
  readonly #full: (chunk: Uint8Array) => void;
  /** Peers written, all chunks. */
  peers = 0;

  /** `full` receives each chunk when it is done (header written, not sealed). */
  constructor(
    shard: number,
    version: number,
    maxBytes: number,
    full: (chunk: Uint8Array) => void,
  ) {
    this.#shard = shard;
    this.#version = version;
    this.#maxBytes = Math.max(MIN_CHUNK_BYTES, Math.min(MAX_CHUNK_BYTES, maxBytes));
    this.#buffer = new Uint8Array(this.#maxBytes);
    this.#full = full;
  }

  /** Chunks handed out so far. */
  get chunks(): number {
    return this.#index;
  }

  begin(hash: Uint8Array, hashAt: number, downloaded: number, idle: number): void {
    this.#hash.set(hash.subarray(hashAt, hashAt + 20));
    this.#downloaded = downloaded;
    this.#idle = idle;
    if (this.#at + TORRENT_FIXED > this.#maxBytes) this.#close();
    this.#openTorrent();
  }

  #openTorrent(): void {
    const b = this.#buffer;
    this.#torrentAt = this.#at;
    b.set(this.#hash, this.#at);
    writeU32(b, this.#at + 20, this.#downloaded);
    writeU32(b, this.#at + 24, this.#idle);
    // Counts of families before the current one are zero in a continuation.
    for (let f = 0; f < RECORD_FAMILIES.length; f++) writeU32(b, this.#at + 28 + 4 * f, 0);
    this.#at += TORRENT_FIXED;
    this.#torrents++;
    this.#countAt = this.#torrentAt + 28 + 4 * Math.max(0, this.#familyIndex);
    this.#count = 0;
  }

  /** Starts the peers of RECORD_FAMILIES[index]. */
  family(index: number): void {
    if (this.#familyIndex >= 0) writeU32(this.#buffer, this.#countAt, this.#count);
    this.#familyIndex = index;
    this.#countAt = this.#torrentAt + 28 + 4 * index;
    this.#count = 0;
  }

  peer(address: Uint8Array, at: number, port: number, seeder: boolean, age: number): void {
    const bytes = RECORD_FAMILIES[this.#familyIndex].addressBytes;
    if (this.#at + bytes + PEER_FIXED > this.#maxBytes) {
      // Cut here: the rest of the torrent's peers continue in the next chunk.
      writeU32(this.#buffer, this.#countAt, this.#count);
      this.#close();
      this.#openTorrent();
    }
    const b = this.#buffer;
    let o = this.#at;
    for (let i = 0; i < bytes; i++) b[o++] = address[at + i];
    b[o++] = port >>> 8;
    b[o++] = port;
    const flags = (seeder ? SEEDER_FLAG : 0) | Math.min(MAX_AGE, Math.max(0, age));
    b[o++] = flags >>> 8;
    b[o++] = flags;
    this.#at = o;
    this.#count++;
    this.peers++;
  }

  end(): void {
    if (this.#familyIndex >= 0) writeU32(this.#buffer, this.#countAt, this.#count);
    this.#familyIndex = -1;
    this.#torrentAt = -1;
  }

  /** Hands out the last chunk (if it holds anything). */
  finish(): void {
    if (this.#torrents > 0) this.#close();
  }

  #close(): void {
    const chunk = this.#buffer.subarray(0, this.#at);
    chunk.set(CHUNK_MAGIC, 0);
    chunk[8] = SNAPSHOT_FORMAT;
    chunk[9] = 0;
    chunk[10] = this.#shard >>> 8;
    chunk[11] = this.#shard;
    writeU32(chunk, 12, this.#version);
    writeU32(chunk, 16, this.#index++);
    writeU32(chunk, 20, this.#torrents);
    this.#full(chunk);
    this.#buffer = new Uint8Array(this.#maxBytes);
    this.#at = CHUNK_HEADER;
    this.#torrents = 0;
  }
}

/** Stamps a finished chunk's walk time and seals it. */
export function sealChunk(chunk: Uint8Array, takenAtMs: number, macs: SnapshotMacs): void {
  writeU64(chunk, 24, takenAtMs);
  macs.chunk.seal(chunk);
}

/** What a chunk must be, from its manifest. */
export interface ChunkExpectation {
  shard: number;
  version: number;
  index: number;
}

/**
 * Checks a whole chunk: size, magic, format, checksum, MAC, that it is the chunk the manifest
 * names, and that its torrents fill it exactly. Returns null if it is sound, else the reason
 * (a key of SnapshotRejects). Never throws.
 */
export function checkChunk(
  chunk: Uint8Array,
  expected: ChunkExpectation,
  macs: SnapshotMacs,
): keyof SnapshotRejects | null {
  if (chunk.length > MAX_CHUNK_BYTES) return "oversized";
  if (chunk.length < CHUNK_HEADER || !hasMagic(chunk, CHUNK_MAGIC)) return "malformed";
  if (chunk[8] !== SNAPSHOT_FORMAT || chunk[9] !== 0) return "malformed";
  if (readU32(chunk, 4) !== crc32(chunk, CRC_START)) return "malformed";
  if (!macs.chunk.verify(chunk)) return "bad_mac";
  const shard = (chunk[10] << 8) | chunk[11];
  if (
    shard !== expected.shard || readU32(chunk, 12) !== expected.version ||
    readU32(chunk, 16) !== expected.index
  ) return "mismatched";
  const torrents = readU32(chunk, 20);
  let o = CHUNK_HEADER;
  for (let t = 0; t < torrents; t++) {
    if (o + TORRENT_FIXED > chunk.length) return "malformed";
    const countsAt = o + 28;
    let peersBytes = 0;
    for (let f = 0; f < RECORD_FAMILIES.length; f++) {
      const count = readU32(chunk, countsAt + 4 * f);
      peersBytes += count * (RECORD_FAMILIES[f].addressBytes + PEER_FIXED);
    }
    o += TORRENT_FIXED;
    if (o + peersBytes > chunk.length) return "malformed";
    for (let f = 0; f < RECORD_FAMILIES.length; f++) {
      const size = RECORD_FAMILIES[f].addressBytes;
      const count = readU32(chunk, countsAt + 4 * f);
      for (let i = 0; i < count; i++, o += size + PEER_FIXED) {
        if (chunk[o + size] === 0 && chunk[o + size + 1] === 0) return "malformed";
      }
    }
  }
  return o === chunk.length ? null : "malformed";
}

/** The walk time of a checked chunk (ms on Redis's clock). */
export function chunkTakenAt(chunk: Uint8Array): number {
  return readU64(chunk, 24);
}

/** Receives one peer of a checked chunk; the byte arrays are the chunk, read at the offsets. */
export type SnapshotPeer = (
  hash: Uint8Array,
  hashAt: number,
  family: PeerFamily,
  address: Uint8Array,
  addressAt: number,
  port: number,
  seeder: boolean,
  age: number,
) => void;

/** Receives one torrent of a checked chunk before its peers. */
export type SnapshotTorrent = (
  hash: Uint8Array,
  hashAt: number,
  downloaded: number,
  idle: number,
  peers: number,
) => void;

/** Passes each torrent and peer of a chunk `checkChunk` accepted, in order. */
export function readChunk(chunk: Uint8Array, torrent: SnapshotTorrent, peer: SnapshotPeer): void {
  const torrents = readU32(chunk, 20);
  let o = CHUNK_HEADER;
  for (let t = 0; t < torrents; t++) {
    const hashAt = o;
    let peers = 0;
    for (let f = 0; f < RECORD_FAMILIES.length; f++) peers += readU32(chunk, o + 28 + 4 * f);
    torrent(chunk, hashAt, readU32(chunk, o + 20), readU32(chunk, o + 24), peers);
    const countsAt = o + 28;
    o += TORRENT_FIXED;
    for (let f = 0; f < RECORD_FAMILIES.length; f++) {
      const { family, addressBytes } = RECORD_FAMILIES[f];
      const count = readU32(chunk, countsAt + 4 * f);
      for (let i = 0; i < count; i++) {
        const portAt = o + addressBytes;
        const flags = (chunk[portAt + 2] << 8) | chunk[portAt + 3];
        peer(
          chunk,
          hashAt,
          family,
          chunk,
          o,
          (chunk[portAt] << 8) | chunk[portAt + 1],
          (flags & SEEDER_FLAG) !== 0,
          flags & MAX_AGE,
        );
        o = portAt + PEER_FIXED;
      }
    }
  }
}

// ---------------------------------------------------------------- manifests

export interface Manifest {
  shard: number;
  version: number;
  chunks: number;
  chunkBytes: number;
  peers: number;
  position: StreamPosition;
  previous: StreamPosition;
  startedAtMs: number;
  finishedAtMs: number;
  writer: Uint8Array;
  nodeId: string;
}

const encoder = new TextEncoder();
const nodeIdDecoder = new TextDecoder("utf-8", { fatal: true });

/** A manifest's bytes, sealed. */
export function encodeManifest(manifest: Manifest, macs: SnapshotMacs): Uint8Array {
  const id = encoder.encode(manifest.nodeId).subarray(0, MAX_NODE_ID_BYTES);
  const b = new Uint8Array(MANIFEST_FIXED + id.length);
  b.set(MANIFEST_MAGIC, 0);
  b[8] = SNAPSHOT_FORMAT;
  b[10] = manifest.shard >>> 8;
  b[11] = manifest.shard;
  writeU32(b, 12, manifest.version);
  writeU32(b, 16, manifest.chunks);
  writeU64(b, 20, manifest.chunkBytes);
  writeU64(b, 28, manifest.peers);
  writeU64(b, 36, manifest.position.ms);
  writeU64(b, 44, manifest.position.seq);
  writeU64(b, 52, manifest.previous.ms);
  writeU64(b, 60, manifest.previous.seq);
  writeU64(b, 68, manifest.startedAtMs);
  writeU64(b, 76, manifest.finishedAtMs);
  b.set(manifest.writer.subarray(0, 8), 84);
  b[MANIFEST_FIXED - 1] = id.length;
  b.set(id, MANIFEST_FIXED);
  macs.manifest.seal(b);
  return b;
}

/**
 * A manifest from its bytes, or why it is refused (a key of SnapshotRejects); `shard` is the
 * shard whose key held it. Never throws.
 */
export function decodeManifest(
  bytes: Uint8Array,
  shard: number,
  macs: SnapshotMacs,
): Manifest | keyof SnapshotRejects {
  if (bytes.length > MAX_MANIFEST_BYTES) return "oversized";
  if (bytes.length < MANIFEST_FIXED || !hasMagic(bytes, MANIFEST_MAGIC)) return "malformed";
  if (bytes[8] !== SNAPSHOT_FORMAT || bytes[9] !== 0) return "malformed";
  const idLength = bytes[MANIFEST_FIXED - 1];
  if (idLength < 1 || idLength > MAX_NODE_ID_BYTES) return "malformed";
  if (bytes.length !== MANIFEST_FIXED + idLength) return "malformed";
  if (readU32(bytes, 4) !== crc32(bytes, CRC_START)) return "malformed";
  if (!macs.manifest.verify(bytes)) return "bad_mac";
  if (((bytes[10] << 8) | bytes[11]) !== shard) return "mismatched";
  let nodeId: string;
  try {
    nodeId = nodeIdDecoder.decode(bytes.subarray(MANIFEST_FIXED));
  } catch {
    return "malformed";
  }
  return {
    shard,
    version: readU32(bytes, 12),
    chunks: readU32(bytes, 16),
    chunkBytes: readU64(bytes, 20),
    peers: readU64(bytes, 28),
    position: { ms: readU64(bytes, 36), seq: readU64(bytes, 44) },
    previous: { ms: readU64(bytes, 52), seq: readU64(bytes, 60) },
    startedAtMs: readU64(bytes, 68),
    finishedAtMs: readU64(bytes, 76),
    writer: bytes.slice(84, 92),
    nodeId,
  };
}
