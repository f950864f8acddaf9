/**
 * Full scrape (`GET /scrape` without info_hash): every torrent's counts as one bencoded `files`
 * dictionary, keys in raw byte order.
 *
 * With a million torrents the reply is ~75 MB, so it is never built per request. A build copies
 * the store into dense arrays, sorts them, and writes the reply as ≤ 64 KiB chunks plus their gzip
 * form; requests are answered from the cached chunks of the last build, streamed. A build runs on
 * the event loop in slices of SLICE_MS, yielding with setTimeout(0) in between, so announces keep
 * flowing while it runs. A cached build is served while it is younger than `everySeconds`
 * (measured from when it started copying the store), so what a client sees is at most that old;
 * after that the next request starts a new build and every request waits for it (one build in
 * flight, shared).
 *
 * The store changes between slices: a row can move to a lower slot when a torrent before it is
 * deleted, and a resize reshuffles every slot. A resize restarts the copy; a moved row may be seen
 * twice (duplicates are dropped after sorting) or missed by one build (it is in the next).
 *
 * With an access list, torrents it forbids are left out, and a build made under an older list
 * is not served once the list has been reloaded: a newly forbidden torrent disappears from the
 * next full scrape at once, before its swarm is dropped (accessPurge.ts).
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import { writeScrapeEnd, writeScrapeFile, writeScrapeStart } from "../protocol/httpReply.ts";
import { settleResize, SLICE_MS, Slicer } from "../store/slicer.ts";
import { acceptsGzip } from "../protocol/acceptEncoding.ts";

/** Largest chunk a build produces (plain and gzip). */
export const CHUNK_BYTES = 65536;
/** Bytes one `files` entry takes at most: 3 + 20 + 42 of keys + 3 × 10 digits + 2. */
const ENTRY_MAX = 128;
/** Ranges this short are sorted by insertion instead of radix passes. */
const INSERTION_MAX = 24;
/** A copy restarted this often (the table kept resizing) finishes in one blocking pass. */
const MAX_COPY_RESTARTS = 8;

/**
 * The torrents of a store at one moment, sorted: entry `order[i]` (i < count) has its info hash at
 * `hashes[order[i] * 20]` and counts `counts[order[i] * 3 + 0..2]` = complete, downloaded,
 * incomplete. Hashes ascend in raw byte order, without repeats.
 */
export interface TorrentSnapshot {
  count: number;
  order: Uint32Array;
  hashes: Uint8Array;
  counts: Uint32Array;
}

/**
 * Generated peers a torrent shows besides its real ones (`--deniability`), added to incomplete
 * so full scrapes agree with announces and scrapes.
 */
export type ExtraLeechers = (hashes: Uint8Array, offset: number, peers: number) => number;

/** Copies and sorts every torrent of `store` that `access` allows (all without it), in slices. */
export async function snapshotTorrents(
  store: SwarmTable,
  slicer: Slicer,
  extraLeechers: ExtraLeechers | null = null,
  access: AccessPolicy | null = null,
): Promise<TorrentSnapshot> {
  const copy = await copyTorrents(store, slicer, extraLeechers, access);
  const order = await sortByHash(copy.count, copy.hashes, slicer);
  return { count: order.length, order, hashes: copy.hashes, counts: copy.counts };
}

interface TorrentCopy {
  count: number;
  hashes: Uint8Array;
  counts: Uint32Array;
}

async function copyTorrents(
  store: SwarmTable,
  slicer: Slicer,
  extraLeechers: ExtraLeechers | null,
  access: AccessPolicy | null,
): Promise<TorrentCopy> {
  const r = store.result;
  if (access !== null && access.mode === "off") access = null;
  for (let attempt = 0;; attempt++) {
    const sliced = attempt < MAX_COPY_RESTARTS;
    await settleResize(store, sliced ? () => slicer.pause() : null);
    const capacity = store.slotCount;
    let room = store.torrents + (store.torrents >>> 4) + 64;
    let hashes = new Uint8Array(room * 20);
    let counts = new Uint32Array(room * 3);
    let n = 0;
    let resized = false;
    for (let slot = 0; slot < capacity; slot++) {
      if ((slot & 1023) === 1023 && sliced && slicer.due()) {
        await slicer.pause();
        if (store.slotCount !== capacity) {
          resized = true;
          break;
        }
      }
      if (!store.slotInUse(slot)) continue;
      if (n === room) {
        room = room * 2;
        const moreHashes = new Uint8Array(room * 20);
        moreHashes.set(hashes);
        hashes = moreHashes;
        const moreCounts = new Uint32Array(room * 3);
        moreCounts.set(counts);
        counts = moreCounts;
      }
      store.copyInfoHash(slot, hashes, n * 20);
      if (access !== null && !access.allows(hashes, n * 20)) continue;
      store.slotCounts(slot);
      counts[n * 3] = r.complete;
      counts[n * 3 + 1] = r.downloaded;
      counts[n * 3 + 2] = r.incomplete;
      if (extraLeechers !== null) {
        counts[n * 3 + 2] += extraLeechers(hashes, n * 20, r.complete + r.incomplete);
      }
      n++;
    }
    if (!resized) return { count: n, hashes, counts };
  }
}

/** Big-endian 32-bit word of `hashes` at byte `p`. */
function u32BE(hashes: Uint8Array, p: number): number {
  return ((hashes[p] << 24) | (hashes[p + 1] << 16) | (hashes[p + 2] << 8) | hashes[p + 3]) >>> 0;
}

/** Compares entries a and b from byte `from` on. */
function compareFrom(hashes: Uint8Array, a: number, b: number, from: number): number {
  const pa = a * 20;
  const pb = b * 20;
  for (let i = from; i < 20; i++) {
    const d = hashes[pa + i] - hashes[pb + i];
    if (d !== 0) return d;
  }
  return 0;
}

function insertionSort(order: Uint32Array, a: number, b: number, hashes: Uint8Array, from: number) {
  for (let i = a + 1; i < b; i++) {
    const item = order[i];
    let j = i;
    while (j > a && compareFrom(hashes, order[j - 1], item, from) > 0) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = item;
  }
}

/**
 * Entry numbers 0..n-1 sorted by hash, repeats dropped. Most-significant-word first: a range is
 * radix-sorted (four 8-bit LSD passes) on one 32-bit word of the hash, then each run of equal
 * words is sorted on the next word. Random hashes almost never share a first word, so this is
 * about one radix sort of n 32-bit keys; hashes chosen to share prefixes cost more passes, never
 * quadratic time. Memory: four u32 arrays of n.
 */
async function sortByHash(n: number, hashes: Uint8Array, slicer: Slicer): Promise<Uint32Array> {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (n < 2) return order;
  const keys = new Uint32Array(n);
  const tmpKeys = new Uint32Array(n);
  const tmpOrder = new Uint32Array(n);
  const histograms = new Uint32Array(4 * 256);
  /** Pending ranges as (start, end, word) triples. */
  const pending: number[] = [0, n, 0];
  while (pending.length > 0) {
    const word = pending.pop()!;
    const end = pending.pop()!;
    const start = pending.pop()!;
    if (end - start <= INSERTION_MAX) {
      insertionSort(order, start, end, hashes, word * 4);
      if (slicer.due()) await slicer.pause();
      continue;
    }
    histograms.fill(0);
    for (let k = start; k < end; k++) {
      const key = u32BE(hashes, order[k] * 20 + word * 4);
      keys[k] = key;
      histograms[key & 255]++;
      histograms[256 + ((key >>> 8) & 255)]++;
      histograms[512 + ((key >>> 16) & 255)]++;
      histograms[768 + (key >>> 24)]++;
      if ((k & 4095) === 4095 && slicer.due()) await slicer.pause();
    }
    for (let d = 0; d < 4; d++) {
      const base = d * 256;
      const shift = d * 8;
      // Every key has the same digit here: the pass would not move anything.
      if (histograms[base + ((keys[start] >>> shift) & 255)] === end - start) continue;
      let position = start;
      for (let v = 0; v < 256; v++) {
        const c = histograms[base + v];
        histograms[base + v] = position;
        position += c;
      }
      for (let k = start; k < end; k++) {
        const key = keys[k];
        const to = histograms[base + ((key >>> shift) & 255)]++;
        tmpKeys[to] = key;
        tmpOrder[to] = order[k];
        if ((k & 4095) === 4095 && slicer.due()) await slicer.pause();
      }
      keys.set(tmpKeys.subarray(start, end), start);
      order.set(tmpOrder.subarray(start, end), start);
    }
    if (word === 4) continue; // equal last words: repeats, dropped below
    let runStart = start;
    for (let k = start + 1; k <= end; k++) {
      if (k === end || keys[k] !== keys[runStart]) {
        if (k - runStart > 1) pending.push(runStart, k, word + 1);
        runStart = k;
      }
      if ((k & 4095) === 4095 && slicer.due()) await slicer.pause();
    }
    if (slicer.due()) await slicer.pause();
  }
  let unique = 1;
  for (let k = 1; k < n; k++) {
    const entry = order[k];
    if (compareFrom(hashes, order[unique - 1], entry, 0) !== 0) order[unique++] = entry;
    if ((k & 4095) === 4095 && slicer.due()) await slicer.pause();
  }
  return order.subarray(0, unique);
}

/** One finished full scrape: the reply, plain and gzipped, as chunks of at most CHUNK_BYTES. */
export interface FullScrapeBuild {
  /** performance.now() when the build started copying the store. */
  startedAt: number;
  /** The access list's generation when it started (0 without a list). */
  accessGeneration: number;
  /** Wall time of the build, slices and the pauses between them, in ms. */
  buildMs: number;
  torrents: number;
  plain: Uint8Array[];
  plainBytes: number;
  gzip: Uint8Array[];
  gzipBytes: number;
  slices: number;
  maxSliceMs: number;
}

/** Collects a byte stream into full CHUNK_BYTES chunks (the last one may be shorter). */
class ChunkCollector {
  readonly chunks: Uint8Array[] = [];
  bytes = 0;
  #current = new Uint8Array(CHUNK_BYTES);
  #used = 0;

  add(data: Uint8Array): void {
    let from = 0;
    while (from < data.length) {
      const n = Math.min(CHUNK_BYTES - this.#used, data.length - from);
      this.#current.set(data.subarray(from, from + n), this.#used);
      this.#used += n;
      from += n;
      if (this.#used === CHUNK_BYTES) this.flush();
    }
  }

  flush(): void {
    if (this.#used === 0) return;
    this.chunks.push(
      this.#used === CHUNK_BYTES ? this.#current : this.#current.slice(0, this.#used),
    );
    this.bytes += this.#used;
    this.#current = new Uint8Array(CHUNK_BYTES);
    this.#used = 0;
  }
}

/** Builds a full scrape of `store` now, in slices of `slicer`'s budget. */
export async function buildFullScrape(
  store: SwarmTable,
  slicer: Slicer = new Slicer(),
  extraLeechers: ExtraLeechers | null = null,
  access: AccessPolicy | null = null,
): Promise<FullScrapeBuild> {
  const startedAt = performance.now();
  const accessGeneration = access?.generation ?? 0;
  const snapshot = await snapshotTorrents(store, slicer, extraLeechers, access);
  const compressor = new CompressionStream("gzip");
  const writer = compressor.writable.getWriter();
  const gzip = new ChunkCollector();
  const reading = (async () => {
    const reader = compressor.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      gzip.add(value);
    }
    gzip.flush();
  })();
  const plain: Uint8Array[] = [];
  let plainBytes = 0;
  const { order, hashes, counts } = snapshot;
  let out = new Uint8Array(CHUNK_BYTES);
  let o = writeScrapeStart(out, 0);
  for (let k = 0; k < snapshot.count; k++) {
    if (o + ENTRY_MAX > CHUNK_BYTES) {
      const chunk = out.subarray(0, o);
      plain.push(chunk);
      plainBytes += o;
      // Awaiting the write keeps the compression work inside this slice, where it is measured.
      await writer.write(chunk);
      out = new Uint8Array(CHUNK_BYTES);
      o = 0;
      if (slicer.due()) await slicer.pause();
    }
    const e = order[k];
    o = writeScrapeFile(
      out,
      o,
      hashes,
      e * 20,
      counts[e * 3],
      counts[e * 3 + 1],
      counts[e * 3 + 2],
    );
  }
  o = writeScrapeEnd(out, o);
  const last = out.slice(0, o);
  plain.push(last);
  plainBytes += o;
  await writer.write(last);
  await writer.close();
  await reading;
  slicer.finish();
  return {
    startedAt,
    accessGeneration,
    buildMs: performance.now() - startedAt,
    torrents: snapshot.count,
    plain,
    plainBytes,
    gzip: gzip.chunks,
    gzipBytes: gzip.bytes,
    slices: slicer.slices,
    maxSliceMs: slicer.maxSliceMs,
  };
}

/** Streams cached chunks; each request gets its own stream over the shared chunks. */
function chunkStream(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next < chunks.length) controller.enqueue(chunks[next++]);
      else controller.close();
    },
  }, { highWaterMark: 0 });
}

export interface FullScrapeOptions {
  /** Seconds a build is served before the next request rebuilds it. */
  everySeconds: number;
  /** false: full scrapes are refused with 403 (`--no-full-scrape`). */
  enabled: boolean;
  /** Work per slice in ms (SLICE_MS). */
  sliceMs?: number;
  extraLeechers?: ExtraLeechers;
  /** Torrents it forbids are left out; a reload makes the cached build stale. */
  access?: AccessPolicy;
}

/** The cached full scrape of one store, and what it has done (for stats and metrics). */
export class FullScrape {
  everySeconds: number;
  enabled: boolean;
  readonly sliceMs: number;
  readonly extraLeechers: ExtraLeechers | null;
  readonly access: AccessPolicy | null;
  builds = 0;
  servedPlain = 0;
  servedGzip = 0;
  refused = 0;
  /** Body bytes handed out (as sent: gzip bytes for gzip replies). */
  bytesServed = 0;
  /** Sum of every build's wall time, in ms. */
  buildMsTotal = 0;
  readonly #store: SwarmTable;
  #last: FullScrapeBuild | null = null;
  #building: Promise<FullScrapeBuild> | null = null;
  #buildingGeneration = 0;

  constructor(store: SwarmTable, options: FullScrapeOptions) {
    this.#store = store;
    this.everySeconds = options.everySeconds;
    this.enabled = options.enabled;
    this.sliceMs = options.sliceMs ?? SLICE_MS;
    this.extraLeechers = options.extraLeechers ?? null;
    this.access = options.access ?? null;
  }

  /** The last finished build, if any. */
  get last(): FullScrapeBuild | null {
    return this.#last;
  }

  /**
   * A build younger than everySeconds and made under the access list in force: the cached one,
   * or the one in flight, or a new one.
   */
  current(): Promise<FullScrapeBuild> {
    const last = this.#last;
    const generation = this.access?.generation ?? 0;
    if (
      last !== null && last.accessGeneration === generation &&
      performance.now() - last.startedAt < this.everySeconds * 1000
    ) {
      return Promise.resolve(last);
    }
    if (this.#building !== null && this.#buildingGeneration !== generation) {
      // Started under the list before a reload: wait for it, then build anew.
      return this.#building.then(() => this.current(), () => this.current());
    }
    if (this.#building === null) {
      this.#buildingGeneration = generation;
      this.#building = buildFullScrape(
        this.#store,
        new Slicer(this.sliceMs),
        this.extraLeechers,
        this.access,
      ).then(
        (build) => {
          this.#last = build;
          this.#building = null;
          this.builds++;
          this.buildMsTotal += build.buildMs;
          return build;
        },
        (error) => {
          this.#building = null;
          throw error;
        },
      );
    }
    return this.#building;
  }

  /** Answers a full scrape request: 403 when disabled, else the cached build, streamed. */
  async respond(request: Request): Promise<Response> {
    if (!this.enabled) {
      this.refused++;
      return new Response("full scrape is disabled on this tracker\n", {
        status: 403,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    const build = await this.current();
    const gzip = acceptsGzip(request.headers.get("accept-encoding"));
    const headers: Record<string, string> = {
      // Not text/*: Deno would otherwise compress it again for clients that accept br.
      "content-type": "application/octet-stream",
      "vary": "accept-encoding",
      "content-length": String(gzip ? build.gzipBytes : build.plainBytes),
    };
    if (gzip) {
      headers["content-encoding"] = "gzip";
      this.servedGzip++;
      this.bytesServed += build.gzipBytes;
    } else {
      this.servedPlain++;
      this.bytesServed += build.plainBytes;
    }
    return new Response(chunkStream(gzip ? build.gzip : build.plain), { headers });
  }
}
