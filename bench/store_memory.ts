/**
 * The peer store's memory per peer, by part, for swarm shapes of the same 1M IPv4 peers, beside
 * a model of opentracker's layout: what a layout change would save, before trying it on a live
 * tracker with compare.sh --memory.
 *
 *   deno run --allow-all --v8-flags=--expose-gc bench/store_memory.ts [TxP ...]
 *
 * Default shapes: 100000x10 1000x1000 1000000x1 (the issue's three) and 10000x100 100x10000
 * 1x1000000. Each shape runs in its own process (so RSS figures do not mix) and is filled as
 * udpload -F fills a tracker: peer i of torrent t arrives interleaved with the others (random
 * order), event started, every fourth a seeder, a clean step every 10k announces.
 *
 * Columns, bytes per peer:
 *   rows      the torrent table: slots x ROW_WORDS x 4 (every slot is touched: rows are hashed)
 *   blocks    peer-list blocks in use (header + capacity records), summed over the pools
 *   store     rows + blocks: what the store keeps resident once the pools' free tails are trimmed
 *   reserved  rows + every pool's committed length (byteSize), free tails included
 *   rss       VmRSS growth of this process over the fill, after two full GCs
 *   ot        opentracker's layout (notes/opentracker.md 1.14), modelled: 40-byte torrent records
 *             in sorted vectors grown x2, two 56-byte peer lists per torrent, 8-byte peers in a
 *             vector grown x2 from 2, malloc's 8-byte header and 16-byte rounding per chunk
 * and slots/load of the torrent table, the capacity class of a typical list, the fill time.
 */

import { CLASS_CAPACITY, CLASS_COUNT } from "../src/store/classes.ts";
import {
  BLOCK_HEADER_WORDS,
  CLASS_SHIFT,
  RECORD_WORDS_V4,
  RECORD_WORDS_V6,
  ROW_V4,
  ROW_WORDS,
} from "../src/store/layout.ts";
import { CLEAN_BUDGET, SwarmTable } from "../src/store/swarmTable.ts";

declare const gc: undefined | (() => void);

function rng(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function rss(): number {
  if (typeof gc === "function") {
    gc();
    gc();
  }
  return Deno.memoryUsage().rss;
}

/** malloc's chunk for `bytes` of payload (glibc, 64-bit): 8-byte header, 16-byte rounding. */
function chunk(bytes: number): number {
  return Math.max(32, Math.ceil((bytes + 8) / 16) * 16);
}

/** A vector grown x2 from `min` members: its capacity once it holds n. */
function pow2Capacity(n: number, min: number): number {
  let c = min;
  while (c < n) c *= 2;
  return c;
}

/** opentracker's bytes for `torrents` torrents of `perTorrent` IPv4 peers (model). */
function opentrackerModel(torrents: number, perTorrent: number): number {
  // 1024 buckets of sorted ot_torrent (40 B) vectors, each grown x2.
  const perBucket = Math.max(1, torrents / 1024);
  const torrentBytes = 1024 * chunk(40 * pow2Capacity(perBucket, 2));
  // Two ot_peerlist (56 B) per torrent, and the v4 peer vector; the cleaner's split into hashed
  // sub-vectors (>= 512 peers) only happens on its 2-minute pass, after a fast fill.
  const listBytes = torrents * (2 * chunk(56) + chunk(8 * pow2Capacity(perTorrent, 2)));
  return torrentBytes + listBytes;
}

function measure(torrents: number, perTorrent: number): Record<string, unknown> {
  const random = rng(12345);
  const hashes = new Uint8Array(torrents * 20);
  const view = new DataView(hashes.buffer);
  for (let i = 0; i < hashes.length; i += 4) view.setUint32(i, random());
  const total = torrents * perTorrent;
  const order = new Uint32Array(total);
  for (let i = 0; i < total; i++) order[i] = i;
  for (let i = total - 1; i > 0; i--) {
    const j = random() % (i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const address = new Uint8Array(4);
  const out = new Uint8Array(0);
  const fill = (table: SwarmTable, upTo: number) => {
    for (let k = 0; k < upTo; k++) {
      const peer = order[k];
      const t = peer % torrents;
      const a = 0x0a000000 + peer;
      address[0] = a >>> 24;
      address[1] = a >>> 16;
      address[2] = a >>> 8;
      address[3] = a;
      table.announce(hashes, t * 20, 4, address, 0, 6881, 2, (peer & 3) === 0, 0, 1, out, 0);
      if (k % 10_000 === 9_999) table.clean(1, CLEAN_BUDGET);
    }
  };
  // Compile every path on another table first, so RSS growth is the table's. It stays referenced
  // until the end: freeing it during the measurement would hide part of the growth.
  const warm = new SwarmTable({ peerTimeout: 2700 });
  fill(warm, Math.min(total, 200_000));
  const before = rss();
  const table = new SwarmTable({ peerTimeout: 2700 });
  const t0 = performance.now();
  fill(table, total);
  const fillMs = performance.now() - t0;
  // Let the clean steps give back what the fill's list moves left in the smaller pools, as the
  // server's 25-ms steps do within a second or two.
  for (let i = 0; i < 200; i++) table.clean(1, CLEAN_BUDGET);
  const after = rss();

  const v = table.view();
  let blocks = 0;
  let reserved = v.rows.byteLength;
  for (let pi = 0; pi < v.pools.length; pi++) {
    const c = pi % CLASS_COUNT;
    const r = pi < CLASS_COUNT ? RECORD_WORDS_V4 : RECORD_WORDS_V6;
    blocks += v.poolUsed[pi] * (BLOCK_HEADER_WORDS + CLASS_CAPACITY[c] * r) * 4;
    reserved += v.pools[pi].byteLength;
  }
  // The class of the first torrent's list, as a sample of what a list of this size occupies.
  let sampleClass = -1;
  for (let s = 0; s < v.capacity && sampleClass < 0; s++) {
    const meta = v.rows[s * ROW_WORDS + ROW_V4 + 1];
    if (meta !== 0) sampleClass = meta >>> CLASS_SHIFT;
  }
  const peers = table.peers4;
  if (warm.peers4 === 0) throw new Error("warm-up table is empty");
  const perPeer = (bytes: number) => +(bytes / peers).toFixed(2);
  return {
    shape: `${torrents}x${perTorrent}`,
    peers,
    rows: perPeer(v.rows.byteLength),
    blocks: perPeer(blocks),
    store: perPeer(v.rows.byteLength + blocks),
    reserved: perPeer(reserved),
    rss: perPeer(after - before),
    ot: perPeer(opentrackerModel(torrents, perTorrent)),
    slots: v.capacity,
    load: +(table.torrents / v.capacity).toFixed(3),
    listCapacity: sampleClass < 0 ? 0 : CLASS_CAPACITY[sampleClass],
    fillMs: Math.round(fillMs),
  };
}

const DEFAULT_SHAPES = [
  "100000x10",
  "1000x1000",
  "1000000x1",
  "10000x100",
  "100x10000",
  "1x1000000",
];

if (Deno.args[0] === "--one") {
  const [t, p] = Deno.args[1].split("x").map(Number);
  console.log(JSON.stringify(measure(t, p)));
} else {
  const shapes = Deno.args.length > 0 ? Deno.args : DEFAULT_SHAPES;
  const columns = ["shape", "rows", "blocks", "store", "reserved", "rss", "ot", "slots", "load"];
  console.log(
    "bytes per peer; " + columns.join(" ") + " listCapacity fillMs   (deno " + Deno.version.deno +
      ")",
  );
  for (const shape of shapes) {
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--v8-flags=--expose-gc,--max-semi-space-size=2",
        import.meta.filename!,
        "--one",
        shape,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(child.stdout));
    console.log(
      [...columns, "listCapacity", "fillMs"].map((c) =>
        String(r[c]).padStart(c === "shape" ? 11 : 8)
      )
        .join(" "),
    );
  }
}
