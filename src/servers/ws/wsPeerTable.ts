/**
 * Who owns which WebTorrent peer: one entry per (info hash, peer_id) announced over a WebSocket,
 * bound to the connection that announced it first, until that connection stops it or closes. An
 * entry is what the store holds for the peer (FAMILY_WS: its number is the record's "address", its
 * generation the "port"), what an offer is routed to, and what a pending offer remembers. So:
 * - ownership: a peer_id is bound to one connection per torrent; another connection's announce,
 *   stop or answer with it is refused (`find` + `connectionOf`);
 * - routing: the store's sample of a swarm's WebSocket peers gives entries, each naming the
 *   connection to write the offer to;
 * - cleanup: a closing connection's entries are listed (`firstOf`/`nextOf`) so its peers leave
 *   the store at once.
 *
 * Typed arrays only, no object per peer: the ids, the owning connection, a generation (1..65535,
 * bumped on reuse, so a stale reference to a reused entry is told apart), a doubly linked list per
 * connection, and a chained hash index keyed by HalfSipHash (random key) of the info hash and
 * peer_id, so clients cannot aim collisions. Arrays grow by doubling; freed entries are reused.
 */
import { hashBytes, randomKey } from "../../hash/halfSipHash.ts";

const ID = 20;
const NONE = -1;
const INITIAL_ENTRIES = 256;
const INITIAL_CONNECTIONS = 256;

export class WsPeerTable {
  /** Entry e's info hash at [20 e, 20 e + 20), peer_id likewise. */
  hashes = new Uint8Array(INITIAL_ENTRIES * ID);
  peerIds = new Uint8Array(INITIAL_ENTRIES * ID);
  /** Entries in use. */
  size = 0;
  #connection = new Int32Array(INITIAL_ENTRIES);
  #generation = new Uint16Array(INITIAL_ENTRIES);
  #next = new Int32Array(INITIAL_ENTRIES);
  #previous = new Int32Array(INITIAL_ENTRIES);
  #chain = new Int32Array(INITIAL_ENTRIES);
  #buckets = new Int32Array(INITIAL_ENTRIES).fill(NONE);
  /** Per connection slot: its first entry and how many it owns. */
  #heads = new Int32Array(INITIAL_CONNECTIONS).fill(NONE);
  #counts = new Int32Array(INITIAL_CONNECTIONS);
  #free = NONE;
  /** Entries ever handed out (the next never-used one). */
  #used = 0;
  readonly #k0: number;
  readonly #k1: number;
  readonly #key = new Uint8Array(2 * ID);

  constructor(hashKey: Uint32Array = randomKey()) {
    this.#k0 = hashKey[0] | 0;
    this.#k1 = hashKey[1] | 0;
  }

  /** The entry of (info hash, peer_id) read at the given offsets, or -1. */
  find(infoHash: Uint8Array, hashAt: number, peerId: Uint8Array, peerAt: number): number {
    const hashes = this.hashes;
    const peerIds = this.peerIds;
    let e = this.#buckets[this.#bucketOf(infoHash, hashAt, peerId, peerAt)];
    while (e !== NONE) {
      if (sameId(hashes, e * ID, infoHash, hashAt) && sameId(peerIds, e * ID, peerId, peerAt)) {
        return e;
      }
      e = this.#chain[e];
    }
    return NONE;
  }

  /** A new entry for (info hash, peer_id), which `find` did not find, owned by `connection`. */
  add(
    infoHash: Uint8Array,
    hashAt: number,
    peerId: Uint8Array,
    peerAt: number,
    connection: number,
  ): number {
    let e = this.#free;
    if (e !== NONE) {
      this.#free = this.#next[e];
    } else {
      if (this.#used === this.#connection.length) this.#grow();
      e = this.#used++;
    }
    this.hashes.set(infoHash.subarray(hashAt, hashAt + ID), e * ID);
    this.peerIds.set(peerId.subarray(peerAt, peerAt + ID), e * ID);
    const generation = this.#generation[e] + 1;
    this.#generation[e] = generation > 0xffff ? 1 : generation;
    this.#connection[e] = connection;
    const bucket = this.#bucketOf(infoHash, hashAt, peerId, peerAt);
    this.#chain[e] = this.#buckets[bucket];
    this.#buckets[bucket] = e;
    if (connection >= this.#heads.length) this.#growConnections(connection);
    const head = this.#heads[connection];
    this.#next[e] = head;
    this.#previous[e] = NONE;
    if (head !== NONE) this.#previous[head] = e;
    this.#heads[connection] = e;
    this.#counts[connection]++;
    this.size++;
    return e;
  }

  /** Frees entry `e` (its generation changes when it is reused). */
  remove(e: number): void {
    const at = e * ID;
    const bucket = this.#bucketOf(this.hashes, at, this.peerIds, at);
    let link = this.#buckets[bucket];
    if (link === e) {
      this.#buckets[bucket] = this.#chain[e];
    } else {
      while (this.#chain[link] !== e) link = this.#chain[link];
      this.#chain[link] = this.#chain[e];
    }
    const connection = this.#connection[e];
    const next = this.#next[e];
    const previous = this.#previous[e];
    if (previous === NONE) this.#heads[connection] = next;
    else this.#next[previous] = next;
    if (next !== NONE) this.#previous[next] = previous;
    this.#counts[connection]--;
    this.#connection[e] = NONE;
    this.#next[e] = this.#free;
    this.#free = e;
    this.size--;
  }

  /** The connection slot owning entry `e`. */
  connectionOf(e: number): number {
    return this.#connection[e];
  }

  generationOf(e: number): number {
    return this.#generation[e];
  }

  /** Whether `e` is in use with generation `generation` (a reference to it is not stale). */
  isLive(e: number, generation: number): boolean {
    return e < this.#used && this.#connection[e] !== NONE && this.#generation[e] === generation;
  }

  /** Whether `e` is in use for the torrent at infoHash[hashAt..] (any generation). */
  holds(e: number, infoHash: Uint8Array, hashAt: number): boolean {
    return e >= 0 && e < this.#used && this.#connection[e] !== NONE &&
      sameId(this.hashes, e * ID, infoHash, hashAt);
  }

  /** Entries owned by connection slot `connection`. */
  countOf(connection: number): number {
    return connection < this.#counts.length ? this.#counts[connection] : 0;
  }

  /** The first entry of a connection, or -1; then `nextOf` until -1. */
  firstOf(connection: number): number {
    return connection < this.#heads.length ? this.#heads[connection] : NONE;
  }

  nextOf(e: number): number {
    return this.#next[e];
  }

  /** Bytes of the arrays. */
  get byteSize(): number {
    return this.hashes.byteLength + this.peerIds.byteLength + this.#connection.byteLength +
      this.#generation.byteLength + this.#next.byteLength + this.#previous.byteLength +
      this.#chain.byteLength + this.#buckets.byteLength + this.#heads.byteLength +
      this.#counts.byteLength;
  }

  #bucketOf(infoHash: Uint8Array, hashAt: number, peerId: Uint8Array, peerAt: number): number {
    const key = this.#key;
    for (let i = 0; i < ID; i++) {
      key[i] = infoHash[hashAt + i];
      key[ID + i] = peerId[peerAt + i];
    }
    // Buckets are a power of two, as many as entries: chains stay about one entry long.
    return hashBytes(this.#k0, this.#k1, key, 0, 2 * ID) & (this.#buckets.length - 1);
  }

  #grow(): void {
    const entries = this.#connection.length * 2;
    this.hashes = grown(this.hashes, entries * ID);
    this.peerIds = grown(this.peerIds, entries * ID);
    this.#connection = grownInt(this.#connection, entries);
    this.#generation = Uint16Array.from({ length: entries }, (_, i) => this.#generation[i] ?? 0);
    this.#next = grownInt(this.#next, entries);
    this.#previous = grownInt(this.#previous, entries);
    this.#chain = new Int32Array(entries);
    // Rehash every entry in use into twice the buckets.
    this.#buckets = new Int32Array(entries).fill(NONE);
    for (let e = 0; e < this.#used; e++) {
      if (this.#connection[e] === NONE) continue;
      const bucket = this.#bucketOf(this.hashes, e * ID, this.peerIds, e * ID);
      this.#chain[e] = this.#buckets[bucket];
      this.#buckets[bucket] = e;
    }
  }

  #growConnections(connection: number): void {
    let length = this.#heads.length * 2;
    while (length <= connection) length *= 2;
    const heads = new Int32Array(length).fill(NONE);
    heads.set(this.#heads);
    this.#heads = heads;
    this.#counts = grownInt(this.#counts, length);
  }
}

function sameId(a: Uint8Array, at: number, b: Uint8Array, bt: number): boolean {
  for (let i = 0; i < ID; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

function grown(bytes: Uint8Array, length: number): Uint8Array<ArrayBuffer> {
  const next = new Uint8Array(length);
  next.set(bytes);
  return next;
}

function grownInt(words: Int32Array, length: number): Int32Array<ArrayBuffer> {
  const next = new Int32Array(length);
  next.set(words);
  return next;
}
