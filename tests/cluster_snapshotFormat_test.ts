/**
 * The snapshot format (src/cluster/snapshotFormat.ts): chunks and manifests round-trip, torrents
 * larger than a chunk continue in the next, and every refusal has its reason: truncated,
 * damaged, forged (MAC), sealed for another cluster or as the other kind, of another shard,
 * version or index, oversized. Nothing refused is read.
 */
import assert from "node:assert/strict";
import { crc32 } from "../src/hash/crc32.ts";
import {
  checkChunk,
  CHUNK_HEADER,
  ChunkWriter,
  decodeManifest,
  encodeManifest,
  type Manifest,
  MAX_CHUNK_BYTES,
  MAX_MANIFEST_BYTES,
  readChunk,
  sealChunk,
  SnapshotMacs,
  TORRENT_FIXED,
} from "../src/cluster/snapshotFormat.ts";
import { FAMILY_WS, type PeerFamily } from "../src/store/swarmTable.ts";

const SECRET = new TextEncoder().encode("the snapshot tests' cluster secret");
const MACS = new SnapshotMacs(SECRET, "prod");

interface Peer {
  hash: string;
  family: PeerFamily;
  address: string;
  port: number;
  seeder: boolean;
  age: number;
}

function hex(bytes: Uint8Array, at: number, length: number): string {
  return Array.from(bytes.subarray(at, at + length), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** Peer p's family: every third IPv6, of the others every fifth a WebSocket peer. */
function familyOf(p: number): PeerFamily {
  return p % 3 === 2 ? 6 : p % 5 === 1 ? FAMILY_WS : 4;
}

/** Writes `torrents` torrents of `peers` peers each (`familyOf`) into sealed chunks. */
function writeChunks(torrents: number, peers: number, chunkBytes: number) {
  const chunks: Uint8Array[] = [];
  const writer = new ChunkWriter(3, 7, chunkBytes, (chunk) => chunks.push(chunk));
  const expected: Peer[] = [];
  for (let t = 0; t < torrents; t++) {
    const hash = new Uint8Array(20).fill(t + 1);
    writer.begin(hash, 0, t * 10, t);
    for (const [index, family] of [[0, 4], [1, 6], [2, FAMILY_WS]] as const) {
      writer.family(index);
      for (let p = 0; p < peers; p++) {
        if (familyOf(p) !== family) continue;
        const address = new Uint8Array(family === 6 ? 16 : 4).fill(p + 1);
        const port = 1000 + p;
        writer.peer(address, 0, port, p % 2 === 0, p);
        expected.push({
          hash: hex(hash, 0, 20),
          family,
          address: hex(address, 0, address.length),
          port,
          seeder: p % 2 === 0,
          age: p,
        });
      }
    }
    writer.end();
  }
  writer.finish();
  for (const chunk of chunks) sealChunk(chunk, 1_800_000_000_000, MACS);
  return { chunks, expected, peers: writer.peers };
}

function readAll(chunks: Uint8Array[]) {
  const peers: Peer[] = [];
  const torrents: { hash: string; downloaded: number; idle: number }[] = [];
  chunks.forEach((chunk, index) => {
    assert.equal(checkChunk(chunk, { shard: 3, version: 7, index }, MACS), null);
    readChunk(
      chunk,
      (hash, at, downloaded, idle) => torrents.push({ hash: hex(hash, at, 20), downloaded, idle }),
      (hash, hashAt, family, address, at, port, seeder, age) =>
        peers.push({
          hash: hex(hash, hashAt, 20),
          family,
          address: hex(address, at, family === 6 ? 16 : 4),
          port,
          seeder,
          age,
        }),
    );
  });
  return { peers, torrents };
}

const byKey = (a: Peer, b: Peer) =>
  `${a.hash}${a.family}${a.address}${a.port}` < `${b.hash}${b.family}${b.address}${b.port}`
    ? -1
    : 1;

Deno.test("chunks round-trip torrents and peers of every family", () => {
  const { chunks, expected, peers } = writeChunks(20, 12, MAX_CHUNK_BYTES);
  assert.equal(chunks.length, 1);
  assert.equal(peers, expected.length);
  const read = readAll(chunks);
  assert.deepEqual(read.peers.sort(byKey), expected.sort(byKey));
  assert.deepEqual(read.torrents[5], {
    hash: hex(new Uint8Array(20).fill(6), 0, 20),
    downloaded: 50,
    idle: 5,
  });
});

Deno.test("a torrent larger than a chunk continues under its hash in the next ones", () => {
  const { chunks, expected } = writeChunks(3, 300, 1000);
  assert.ok(chunks.length > 5, `${chunks.length} chunks`);
  for (const chunk of chunks) assert.ok(chunk.length <= 1000);
  const read = readAll(chunks);
  assert.deepEqual(read.peers.sort(byKey), expected.sort(byKey));
});

/** Recomputes a chunk's or manifest's checksum, so a test reaches the checks behind it. */
function reseal(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, crc32(bytes, 8));
  return bytes;
}

Deno.test("a chunk that is truncated, damaged, forged, foreign or misplaced is refused", () => {
  const { chunks } = writeChunks(4, 6, MAX_CHUNK_BYTES);
  const chunk = chunks[0];
  const here = { shard: 3, version: 7, index: 0 };
  for (let length = 0; length < chunk.length; length += 7) {
    assert.equal(checkChunk(chunk.subarray(0, length), here, MACS), "malformed", `${length}`);
  }
  for (let at = 0; at < chunk.length; at += 3) {
    const flipped = chunk.slice();
    flipped[at] ^= 0x10;
    assert.notEqual(checkChunk(flipped, here, MACS), null, `flip at ${at}`);
    // With the checksum made right again, the MAC still catches it (the format byte and flags
    // are refused as malformed before).
    if (at >= 10 && (at < 32 || at >= 48)) {
      assert.equal(checkChunk(reseal(flipped), here, MACS), "bad_mac", `forged at ${at}`);
    }
  }
  // Sealed under another secret, or by a cluster of another name with the same secret.
  const other = [new SnapshotMacs(new TextEncoder().encode("another secret altogether"), "prod")];
  other.push(new SnapshotMacs(SECRET, "staging"));
  for (const macs of other) {
    const copy = chunk.slice();
    sealChunk(copy, 1_800_000_000_000, macs);
    assert.equal(checkChunk(copy, here, MACS), "bad_mac");
  }
  // Sound, but not the chunk the manifest names.
  assert.equal(checkChunk(chunk, { ...here, shard: 2 }, MACS), "mismatched");
  assert.equal(checkChunk(chunk, { ...here, version: 8 }, MACS), "mismatched");
  assert.equal(checkChunk(chunk, { ...here, index: 1 }, MACS), "mismatched");
  // More than a chunk may hold: refused before anything else is looked at.
  const huge = new Uint8Array(MAX_CHUNK_BYTES + 1);
  huge.set(chunk);
  assert.equal(checkChunk(huge, here, MACS), "oversized");
  // Torrents that do not fill it exactly (checksum and MAC made right): malformed.
  const short = chunk.slice();
  new DataView(short.buffer).setUint32(20, 5);
  MACS.chunk.seal(short);
  assert.equal(checkChunk(short, here, MACS), "malformed");
  const port0 = chunk.slice();
  // The first peer (IPv4): its port after the torrent's fixed part and its 4-byte address.
  port0.fill(0, CHUNK_HEADER + TORRENT_FIXED + 4, CHUNK_HEADER + TORRENT_FIXED + 6);
  MACS.chunk.seal(port0);
  assert.equal(checkChunk(port0, here, MACS), "malformed");
});

function manifest(): Manifest {
  return {
    shard: 3,
    version: 7,
    chunks: 2,
    chunkBytes: 2_000_000,
    peers: 123_456,
    position: { ms: 1_800_000_000_123, seq: 4 },
    previous: { ms: 1_799_999_000_000, seq: 0 },
    startedAtMs: 1_800_000_000_000,
    finishedAtMs: 1_800_000_001_000,
    writer: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
    nodeId: "node-a",
  };
}

Deno.test("a manifest round-trips; a foreign, damaged or oversized one is refused", () => {
  const bytes = encodeManifest(manifest(), MACS);
  assert.deepEqual(decodeManifest(bytes, 3, MACS), manifest());
  assert.equal(decodeManifest(bytes, 2, MACS), "mismatched");
  assert.equal(decodeManifest(bytes, 3, new SnapshotMacs(SECRET, "staging")), "bad_mac");
  for (let length = 0; length < bytes.length; length++) {
    assert.equal(decodeManifest(bytes.subarray(0, length), 3, MACS), "malformed");
  }
  const forged = bytes.slice();
  forged[20] ^= 1; // bytes in chunks
  assert.equal(decodeManifest(reseal(forged), 3, MACS), "bad_mac");
  const huge = new Uint8Array(MAX_MANIFEST_BYTES + 1);
  huge.set(bytes);
  assert.equal(decodeManifest(huge, 3, MACS), "oversized");
  // A chunk is not a manifest, nor a manifest a chunk, even under the right secret.
  const { chunks } = writeChunks(1, 1, MAX_CHUNK_BYTES);
  assert.equal(decodeManifest(chunks[0], 3, MACS), "malformed");
  assert.equal(checkChunk(bytes, { shard: 3, version: 7, index: 0 }, MACS), "malformed");
  // Without a secret nothing is sealed, and a keyed node refuses it.
  const open = new SnapshotMacs(null, "prod");
  assert.equal(decodeManifest(encodeManifest(manifest(), open), 3, MACS), "bad_mac");
  assert.deepEqual(decodeManifest(encodeManifest(manifest(), open), 3, open), manifest());
});
