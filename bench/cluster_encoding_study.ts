/**
 * Sizes of cluster change encodings and of a swarm snapshot, for docs/cluster-design.md (issue 15):
 * bytes per change of today's batch format against grouping by torrent and deflate, on batches
 * shaped like real traffic (random public IPv4 and IPv6 addresses: the load tools' peers all share
 * 127.0.0.1, which any compressor would flatter), and what Redis itself adds per stream entry.
 *
 *   deno run -A bench/cluster_encoding_study.ts
 *
 * Prints four tables:
 *   1. bytes per change in a batch of N changes (header, node id and RESP framing of its XADD
 *      spread over them), for torrents drawn uniformly from 100k (the bench's swarms) or by Zipf
 *      (s = 1) from 1M (popular torrents repeat within a batch), 10 % of changes IPv6:
 *        v2        today's format: 53 + id header, 27 B per IPv4 change, 39 per IPv6
 *        grouped   records sorted by info hash; per torrent: hash (20) + count (varint);
 *                  per change: flags (1) + address + port (7 B IPv4, 19 IPv6)
 *        +deflate  the grouped body through deflateRawSync (level 1), header left plain
 *      and the CPU time of grouping + deflate per change;
 *   2. snapshot bytes per peer (per torrent: hash, downloaded, counts; per peer: address, port,
 *      one byte of seeder flag and coarse age), for swarms of 10 peers each and for a skewed
 *      population (Zipf over torrents), IPv4 only and with 10 % IPv6;
 *   3. Redis memory per stream entry beyond its value (MEMORY USAGE of a stream of 1000 entries),
 *      by entry size (skipped without redis-server);
 *   4. the same for a string key (a snapshot chunk) of 64 KiB and 1 MiB.
 */
import { deflateRawSync } from "node:zlib";
import { Buffer } from "node:buffer";
import { haveRedisServer, RedisServer } from "../tests/support/redisServer.ts";

const HEADER = 53 + 2; // v2 header + a two-byte node id
const XADD_FRAMING = 100; // *8 … MINID ~ <ms> * b $<len>: measured ~100 B by bench/cluster_scale.sh

let seed = 0x2545f491;
function random32(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

/** Zipf(s = 1) sampler over [0, n) by inverse CDF on a table. */
function zipfSampler(n: number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1);
  for (let i = 0; i < n; i++) cdf[i] /= sum;
  return () => {
    const u = random32() / 4294967296;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

interface Change {
  torrent: number;
  v6: boolean;
  address: Uint8Array;
  port: number;
  flags: number;
}

/** 20 bytes that look random (murmur3's finalizer over torrent and byte index), as info hashes. */
function hashOf(torrent: number): Uint8Array {
  const out = new Uint8Array(20);
  for (let i = 0; i < 5; i++) {
    let h = Math.imul(torrent, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    out[i * 4] = h >>> 24;
    out[i * 4 + 1] = h >>> 16;
    out[i * 4 + 2] = h >>> 8;
    out[i * 4 + 3] = h;
  }
  return out;
}

function makeChanges(count: number, pick: () => number, v6Share: number): Change[] {
  const out: Change[] = [];
  for (let i = 0; i < count; i++) {
    const v6 = random32() / 4294967296 < v6Share;
    const address = new Uint8Array(v6 ? 16 : 4);
    for (let b = 0; b < address.length; b++) address[b] = random32() & 255;
    if (v6) address.set([0x20, 0x01], 0); // global unicast prefix, as most are
    out.push({
      torrent: pick(),
      v6,
      address,
      port: 1024 + (random32() % 64512),
      flags: 1 | (v6 ? 4 : 0) | ((random32() & 3) === 0 ? 8 : 0),
    });
  }
  return out;
}

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

function v2Size(changes: Change[]): number {
  let size = HEADER;
  for (const c of changes) size += c.v6 ? 39 : 27;
  return size;
}

/** The grouped body: per torrent hash + varint count, then 1 + address + 2 per change. */
function groupedBody(changes: Change[]): Uint8Array {
  const sorted = changes.slice().sort((a, b) => a.torrent - b.torrent);
  let size = 0;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j < sorted.length && sorted[j].torrent === sorted[i].torrent) j++;
    size += 20 + varintSize(j - i);
    for (let k = i; k < j; k++) size += 3 + sorted[k].address.length;
    i = j;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j < sorted.length && sorted[j].torrent === sorted[i].torrent) j++;
    out.set(hashOf(sorted[i].torrent), at);
    at += 20;
    let n = j - i;
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[at++] = n;
    for (let k = i; k < j; k++) {
      const c = sorted[k];
      out[at++] = c.flags;
      out.set(c.address, at);
      at += c.address.length;
      out[at++] = c.port >>> 8;
      out[at++] = c.port & 255;
    }
    i = j;
  }
  return out;
}

function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

// ---------------------------------------------------------------- 1. batches
console.log("1. bytes per change in one batch (incl. header and XADD framing), 10 % IPv6");
console.log(
  `${"torrents".padEnd(22)}${pad("changes", 8)}${pad("v2", 8)}${pad("grouped", 9)}${
    pad("+deflate", 10)
  }${pad("per torrent", 12)}${pad("µs/change", 11)}`,
);
const uniform = () => random32() % 100_000;
const zipf = zipfSampler(1_000_000);
for (const [name, pick] of [["uniform over 100k", uniform], ["Zipf(1) over 1M", zipf]] as const) {
  for (const n of [100, 1000, 4096]) {
    const changes = makeChanges(n, pick, 0.1);
    const framing = HEADER + XADD_FRAMING;
    const v2 = (v2Size(changes) + XADD_FRAMING) / n;
    const started = performance.now();
    const rounds = 20;
    let body = groupedBody(changes);
    let deflated = 0;
    for (let r = 0; r < rounds; r++) {
      body = groupedBody(changes);
      deflated = deflateRawSync(Buffer.from(body), { level: 1 }).length;
    }
    const micros = (performance.now() - started) * 1000 / rounds / n;
    const torrents = new Set(changes.map((c) => c.torrent)).size;
    console.log(
      `${name.padEnd(22)}${pad(n, 8)}${pad(v2.toFixed(1), 8)}${
        pad(((body.length + framing) / n).toFixed(1), 9)
      }${pad(((deflated + framing) / n).toFixed(1), 10)}${pad((n / torrents).toFixed(2), 12)}${
        pad(micros.toFixed(2), 11)
      }`,
    );
  }
}

// ---------------------------------------------------------------- 2. snapshot
console.log("\n2. snapshot bytes per peer (per torrent 20 + 3 + counts; per peer address + 2 + 1)");
function snapshotPerPeer(peersPerTorrent: number[], v6Share: number): number {
  let bytes = 0;
  let peers = 0;
  for (const n of peersPerTorrent) {
    const v6 = Math.round(n * v6Share);
    bytes += 20 + 3 + varintSize(n - v6) + varintSize(v6) + (n - v6) * 7 + v6 * 19;
    peers += n;
  }
  return bytes / peers;
}
const tenEach = new Array(100_000).fill(10);
// Skewed: 1M peers placed on 1M torrent ids by Zipf(1); only torrents that got a peer exist.
const counts = new Map<number, number>();
for (let i = 0; i < 1_000_000; i++) {
  const t = zipf();
  counts.set(t, (counts.get(t) ?? 0) + 1);
}
const skewed = [...counts.values()];
for (
  const [name, dist] of [["100k torrents x 10", tenEach], ["1M peers by Zipf(1)", skewed]] as const
) {
  console.log(
    `${name.padEnd(22)} torrents ${pad(dist.length, 8)}  IPv4 ${
      snapshotPerPeer(dist, 0).toFixed(1)
    } B/peer  10 % IPv6 ${snapshotPerPeer(dist, 0.1).toFixed(1)} B/peer`,
  );
}

// ---------------------------------------------------------------- 3, 4. Redis overheads
if (!(await haveRedisServer())) {
  console.log("\n3. skipped: no redis-server");
  Deno.exit(0);
}
const redis = new RedisServer();
await redis.start();
const conn = await Deno.connect({ hostname: "127.0.0.1", port: redis.port });
const encoder = new TextEncoder();
const replyBuffer = new Uint8Array(1 << 16);

/** Sends one command and returns the first reply line (enough for integers and ids). */
async function command(...args: (string | Uint8Array)[]): Promise<string> {
  const parts: Uint8Array[] = [encoder.encode(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? encoder.encode(arg) : arg;
    parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes, encoder.encode("\r\n"));
  }
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  let written = 0;
  while (written < out.length) written += await conn.write(out.subarray(written));
  let text = "";
  for (;;) {
    const n = await conn.read(replyBuffer);
    if (n === null) throw new Error("redis closed");
    text += new TextDecoder().decode(replyBuffer.subarray(0, n));
    const line = text.indexOf("\r\n");
    if (line < 0) continue;
    if (text[0] === "$") {
      const length = Number(text.slice(1, line));
      if (length >= 0 && text.length < line + 2 + length + 2) continue;
      return text.slice(line + 2, line + 2 + length);
    }
    return text.slice(0, line);
  }
}

console.log("\n3. Redis memory per stream entry beyond its value (1000 entries, MEMORY USAGE)");
for (const size of [30, 300, 3000, 30_000, 110_000]) {
  await command("DEL", "s");
  const value = new Uint8Array(size);
  for (let i = 0; i < 1000; i++) {
    for (let b = 0; b < size; b += 4) value[b] = random32() & 255;
    await command("XADD", "s", "*", "b", value);
  }
  const used = Number((await command("MEMORY", "USAGE", "s", "SAMPLES", "0")).slice(1));
  console.log(
    `  value ${pad(size, 7)} B: ${pad((used / 1000).toFixed(0), 7)} B an entry, overhead ${
      pad((used / 1000 - size).toFixed(1), 6)
    } B (${((used / 1000 / size - 1) * 100).toFixed(1)} %)`,
  );
}
console.log("\n4. Redis memory of a string key (a snapshot chunk)");
for (const size of [65536, 65536 - 64, 1 << 20, (1 << 20) - 64]) {
  const value = new Uint8Array(size);
  for (let b = 0; b < size; b++) value[b] = random32() & 255;
  await command("SET", "k", value);
  const used = Number((await command("MEMORY", "USAGE", "k", "SAMPLES", "0")).slice(1));
  console.log(`  value ${pad(size, 8)} B: ${used} B (overhead ${used - size} B)`);
}
conn.close();
await redis.stop();
