/**
 * The walks over the whole store that /stats needs (the sorted torrent snapshot with its top 100
 * and completed sums, for top10, top100, completed and statedump; the peer-age histogram, for
 * renew), shared by every request. A walk is built once at a time, in slices (store/slicer.ts),
 * and kept for `keepMs` (a second) after it is done: any number of stats requests, all modes
 * together, cost at most one of each walk per second plus its build time. Then it is dropped, so a
 * snapshot the size of the store does not stay in memory between polls.
 */
import type { SwarmTable } from "../store/swarmTable.ts";
import type { AccessPolicy } from "../policy/accessList.ts";
import { settleResize, Slicer } from "../store/slicer.ts";
import { snapshotTorrents, type TorrentSnapshot } from "./fullScrape.ts";

export interface TopEntry {
  infoHash: string;
  peers: number;
  seeders: number;
  /** Completed downloads counted for the torrent (`downloaded`). */
  completed: number;
}

/** The torrents at one moment, sorted, and what the stats modes read from them. */
export interface TorrentWalk {
  snapshot: TorrentSnapshot;
  /** The 100 torrents with the most peers, most first. */
  top: TopEntry[];
  /** Sum of `downloaded`, and torrents with any. */
  downloaded: number;
  downloadedTorrents: number;
}

/** One walk: the value in flight or kept, and how many were built. */
class SharedWalk<T> {
  builds = 0;
  #value: T | null = null;
  #pending: Promise<T> | null = null;
  /** The access list's generation the kept value was built under (-1: no list). */
  #builtUnder = -1;

  constructor(
    readonly build: () => Promise<T>,
    readonly keepMs: number,
    readonly generation: () => number = () => -1,
  ) {}

  get(): Promise<T> {
    // A reload that forbids torrents must not leave them in a kept walk for another second.
    if (this.#value !== null && this.#builtUnder !== this.generation()) this.#value = null;
    if (this.#value !== null) return Promise.resolve(this.#value);
    if (this.#pending === null) {
      this.builds++;
      const generation = this.generation();
      this.#pending = this.build().then(
        (value) => {
          this.#pending = null;
          this.#value = value;
          this.#builtUnder = generation;
          // Unref'd: a kept walk never holds the process open.
          Deno.unrefTimer(setTimeout(() => this.#value = null, this.keepMs));
          return value;
        },
        (error) => {
          this.#pending = null;
          throw error;
        },
      );
    }
    return this.#pending;
  }
}

export class StatsWalks {
  readonly #torrents: SharedWalk<TorrentWalk>;
  readonly #peerAges: SharedWalk<Float64Array>;

  /**
   * `uptimeSeconds` is the store's clock (whole seconds since start); `peerTimeout` sets the
   * renew histogram's length. Torrents `access` forbids are left out of the torrent walk.
   */
  constructor(
    store: SwarmTable,
    uptimeSeconds: () => number,
    peerTimeout: number,
    keepMs = 1000,
    access: AccessPolicy | null = null,
  ) {
    this.#torrents = new SharedWalk(
      () => walkTorrents(store, access),
      keepMs,
      access === null ? undefined : () => access.generation,
    );
    this.#peerAges = new SharedWalk(
      () => peerAges(store, uptimeSeconds(), peerTimeout, new Slicer()),
      keepMs,
    );
  }

  /** The sorted torrents and their top 100 and completed sums, at most a second old. */
  torrents(): Promise<TorrentWalk> {
    return this.#torrents.get();
  }

  /** Peers by minutes since their last announce, at most a second old. */
  peerAges(): Promise<Float64Array> {
    return this.#peerAges.get();
  }

  /** Torrent walks built so far (for /metrics). */
  get torrentBuilds(): number {
    return this.#torrents.builds;
  }

  /** Peer walks built so far (for /metrics). */
  get peerBuilds(): number {
    return this.#peerAges.builds;
  }
}

async function walkTorrents(
  store: SwarmTable,
  access: AccessPolicy | null,
): Promise<TorrentWalk> {
  const slicer = new Slicer();
  const snapshot = await snapshotTorrents(store, slicer, null, access);
  const top = await topByPeers(snapshot, 100, slicer);
  let downloaded = 0;
  let downloadedTorrents = 0;
  for (let k = 0; k < snapshot.count; k++) {
    const d = snapshot.counts[snapshot.order[k] * 3 + 1];
    downloaded += d;
    if (d > 0) downloadedTorrents++;
    if ((k & 4095) === 4095 && slicer.due()) await slicer.pause();
  }
  return { snapshot, top, downloaded, downloadedTorrents };
}

/** The `limit` torrents with the most peers; ties go to the lower hash. Torrents without peers never count. */
async function topByPeers(
  snapshot: TorrentSnapshot,
  limit: number,
  slicer: Slicer,
): Promise<TopEntry[]> {
  if (limit === 0) return [];
  const { order, counts } = snapshot;
  const entries = new Uint32Array(limit);
  const peers = new Float64Array(limit);
  let held = 0;
  for (let k = 0; k < snapshot.count; k++) {
    const e = order[k];
    const p = counts[e * 3] + counts[e * 3 + 2];
    if (p > 0 && (held < limit || p > peers[held - 1])) {
      let i = held < limit ? held++ : limit - 1;
      while (i > 0 && peers[i - 1] < p) {
        peers[i] = peers[i - 1];
        entries[i] = entries[i - 1];
        i--;
      }
      peers[i] = p;
      entries[i] = e;
    }
    if ((k & 4095) === 4095 && slicer.due()) await slicer.pause();
  }
  const top: TopEntry[] = [];
  for (let i = 0; i < held; i++) {
    const e = entries[i];
    top.push({
      infoHash: hexOf(snapshot.hashes, e * 20),
      peers: peers[i],
      seeders: counts[e * 3],
      completed: counts[e * 3 + 1],
    });
  }
  return top;
}

/**
 * Peers by whole minutes since their last announce, one bucket per minute of the peer timeout;
 * the last bucket also holds peers past the timeout that the cleaner has not reached yet. A walk
 * interrupted by a table resize starts over (after a few tries it finishes without pausing).
 */
async function peerAges(
  store: SwarmTable,
  now: number,
  peerTimeout: number,
  slicer: Slicer,
): Promise<Float64Array> {
  const buckets = new Float64Array(Math.max(1, Math.ceil(peerTimeout / 60)));
  const last = buckets.length - 1;
  const count = (
    _address: Uint8Array,
    _offset: number,
    _port: number,
    _seeder: boolean,
    lastSeen: number,
  ) => {
    const minute = Math.floor(Math.max(0, now - lastSeen) / 60);
    buckets[minute < last ? minute : last]++;
  };
  for (let attempt = 0;; attempt++) {
    buckets.fill(0);
    await settleResize(store, attempt < 8 ? () => slicer.pause() : null);
    const capacity = store.slotCount;
    let resized = false;
    for (let slot = 0; slot < capacity; slot++) {
      if ((slot & 255) === 255 && attempt < 8 && slicer.due()) {
        await slicer.pause();
        if (store.slotCount !== capacity) {
          resized = true;
          break;
        }
      }
      if (!store.slotInUse(slot)) continue;
      store.forEachPeer(slot, 4, count);
      store.forEachPeer(slot, 6, count);
    }
    if (!resized) return buckets;
  }
}

const HEX_DIGITS = "0123456789abcdef";

function hexOf(bytes: Uint8Array, offset: number): string {
  let s = "";
  for (let i = 0; i < 20; i++) {
    const b = bytes[offset + i];
    s += HEX_DIGITS[b >> 4] + HEX_DIGITS[b & 15];
  }
  return s;
}
