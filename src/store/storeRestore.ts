/**
 * Writing into the store what it learned elsewhere rather than from an announce: a warm restart's
 * state file (persist/stateFormat.ts) and a cluster snapshot restore peers as they were and set a
 * torrent's downloaded count; another node's refresh (cluster/streamApply.ts) refreshes a peer.
 * SwarmTable's `restorePeer`, `refreshPeer` and `setDownloaded` are these.
 *
 * What differs from an announce: a peer already older than the peer timeout is skipped; a stored
 * record newer than the one given wins (it is kept whole by a restore, and keeps its stamp under a
 * refresh, so a late or replayed change never makes a peer look older than this node knows it);
 * a new torrent or peer past a cap is skipped, counted in `skipped`, never evicting: what is
 * restored is older than what clients announce later. Like an announce, none of it allocates.
 */
import {
  COUNTER_TORRENTS,
  LIST_META,
  type PeerFamily,
  ROW_DOWNLOADED,
  ROW_LAST_ACTIVITY,
  ROW_V4,
  ROW_V6,
  ROW_WORDS,
  ROW_WS,
  TIME_MASK,
} from "./layout.ts";
import type { BlockPools } from "./blockPools.ts";
import type { TorrentKey, TorrentTable } from "./torrentTable.ts";
import type { PeerSets } from "./peerSets.ts";
import type { PeerKey } from "./peerKey.ts";
import type { StoreCaps } from "./storeCaps.ts";

export class StoreRestore {
  /** Peers `peer` skipped, and peerless torrents `setDownloaded` skipped, at a cap. */
  skipped = 0;
  readonly #table: TorrentTable;
  readonly #pools: BlockPools;
  readonly #peers: PeerSets;
  readonly #caps: StoreCaps;
  readonly #counters: Uint32Array;
  readonly #peerTimeout: number;
  /** The store's scratch keys (SwarmTable's): read once per call, never across calls. */
  readonly #torrent: TorrentKey;
  readonly #peer: PeerKey;

  constructor(
    table: TorrentTable,
    pools: BlockPools,
    peers: PeerSets,
    caps: StoreCaps,
    counters: Uint32Array,
    peerTimeout: number,
    torrent: TorrentKey,
    peer: PeerKey,
  ) {
    this.#table = table;
    this.#pools = pools;
    this.#peers = peers;
    this.#caps = caps;
    this.#counters = counters;
    this.#peerTimeout = peerTimeout;
    this.#torrent = torrent;
    this.#peer = peer;
  }

  /**
   * Stores a peer last seen at `lastSeen`, ages taken at `latest` (the store's latest time, at
   * least `lastSeen`); `older` (peerSets.ts) says what a stored record newer than it does:
   * OLDER_SKIPPED (a restore) or OLDER_KEEPS_STAMP (a refresh). Returns whether the peer is held.
   */
  peer(
    infoHash: Uint8Array,
    hashOffset: number,
    family: PeerFamily,
    address: Uint8Array,
    addressOffset: number,
    port: number,
    seeder: boolean,
    lastSeen: number,
    latest: number,
    older: number,
  ): boolean {
    if (latest - lastSeen > this.#peerTimeout || (port & 0xffff) === 0) return false;
    this.#pools.earnTrim();
    const table = this.#table;
    const torrent = this.#torrent;
    torrent.read(infoHash, hashOffset);
    let slot = table.find(torrent);
    const peer = this.#peer;
    peer.read(family, address, addressOffset, port);
    const peersFull = this.#caps.peersFull();
    if (slot < 0) {
      if (this.#caps.newTorrentFull()) {
        this.skipped++;
        return false;
      }
      slot = table.insert(torrent, slot);
    } else if (peersFull && !this.#peers.contains(slot, family, peer)) {
      this.skipped++;
      return false;
    }
    const row = slot * ROW_WORDS;
    const active = lastSeen > 1 ? lastSeen : 1;
    if (table.rows[row + ROW_LAST_ACTIVITY] < active) table.rows[row + ROW_LAST_ACTIVITY] = active;
    const stamp = lastSeen & TIME_MASK;
    return this.#peers.upsert(slot, family, peer, seeder, false, stamp, older, latest) >= 0;
  }

  /**
   * Sets a torrent's downloaded count, creating a peerless torrent if needed; a new one past the
   * torrent cap is skipped (counted in `skipped`).
   */
  downloaded(infoHash: Uint8Array, hashOffset: number, downloaded: number, now: number): void {
    const table = this.#table;
    const torrent = this.#torrent;
    torrent.read(infoHash, hashOffset);
    let slot = table.find(torrent);
    if (slot < 0) {
      if (downloaded <= 0) return;
      if (this.#counters[COUNTER_TORRENTS] >= this.#caps.maxTorrents) {
        this.skipped++;
        return;
      }
      slot = table.insert(torrent, slot);
    }
    const rows = table.rows;
    const row = slot * ROW_WORDS;
    rows[row + ROW_DOWNLOADED] = downloaded;
    rows[row + ROW_LAST_ACTIVITY] = now > 1 ? now : 1;
    if (
      rows[row + ROW_DOWNLOADED] === 0 && rows[row + ROW_V4 + LIST_META] === 0 &&
      rows[row + ROW_V6 + LIST_META] === 0 && rows[row + ROW_WS + LIST_META] === 0
    ) {
      table.delete(slot);
    }
  }
}
