/**
 * The state file's format: the whole peer store as one compact binary image, encoded from the
 * store (in slices, for a periodic save), checked as a whole, and restored into an empty store.
 * Reading and writing the file, and when, is stateFile.ts's.
 *
 * Format (integers little-endian, addresses and ports in network order):
 *
 *   0   8  magic "OTTRSTAT"
 *   8   4  version (1)
 *   12  4  CRC-32 (IEEE) of every byte from offset 16 to the end
 *   16  8  saved at: milliseconds since the Unix epoch (wall clock)
 *   24  4  torrents          28  4  IPv4 peers          32  4  IPv6 peers          36  4  zero
 *   40  …  torrents, each:
 *          20 info hash, 4 downloaded, 4 seconds since its last activity,
 *          4 IPv4 peer count, 4 IPv6 peer count, then the peers:
 *          IPv4 4 address + 2 port + 2 flags, IPv6 16 address + 2 port + 2 flags,
 *          flags = seeder << 15 | age in seconds (0..32767)
 *
 * Times are stored as ages relative to the save, because the store's clock counts from process
 * start. On restore a peer's age grows by the wall-clock seconds the tracker was down, and peers
 * that reached `--peer-timeout` meanwhile are dropped. The whole file is checked (magic,
 * version, checksum, structure) before the first peer goes into the store: a damaged file is set
 * aside (renamed to FILE.corrupt-<time>) and otter starts empty, never half-loaded.
 *
 * A periodic save walks the store in slices (SLICE_WORK, then a `pause`), ending each slice at an
 * empty table slot, so announces keep flowing while it runs. Between slices rows only move by
 * deletion's backward shift inside their cluster, which an empty slot bounds; a table resize
 * restarts the walk.
 *
 * A torrent the access list forbids at restore time is not loaded (and counted): the list may
 * have changed while the tracker was down.
 */
import { crc32 } from "../hash/crc32.ts";
import type { PeerVisitor, SwarmTable } from "../store/swarmTable.ts";
import { settleResize } from "../store/slicer.ts";
import type { AccessPolicy } from "../policy/accessList.ts";

export const STATE_VERSION = 1;
const MAGIC = new TextEncoder().encode("OTTRSTAT");
/** Bytes before the checksummed body. */
const HEAD_BYTES = 16;
/** Bytes of the body's fixed part (saved-at, counts). */
const SUMMARY_BYTES = 24;
const TORRENT_BYTES = 36;
const PEER4_BYTES = 8;
const PEER6_BYTES = 20;
const MAX_AGE = 0x7fff;
const SEEDER_FLAG = 0x8000;
/** SwarmTable keeps a peerless torrent with a downloaded count this long after its activity. */
const KEEP_DOWNLOADED_SECONDS = 86400;

/** Work per slice of a periodic save before the event loop gets a turn: one unit per peer,
 * TORRENT_WORK per torrent (a few milliseconds; docs/performance.md has the measured pauses). */
const SLICE_WORK = 16384;
const TORRENT_WORK = 8;
const CHUNK_BYTES = 1 << 20;
/** Table resizes tolerated during one sliced save before it finishes in one go. */
const MAX_RESTARTS = 3;

// ---------------------------------------------------------------- encoding

/** Walks the store into body chunks; peer callbacks are fields so no closure is made per call. */
class StateEncoder {
  readonly chunks: Uint8Array[] = [];
  torrents = 0;
  peers4 = 0;
  peers6 = 0;
  #buf = new Uint8Array(CHUNK_BYTES);
  #pos = 0;
  #now = 0;
  #count = 0;

  constructor(readonly store: SwarmTable, now: number) {
    this.#now = now;
  }

  #ensure(bytes: number): void {
    if (this.#pos + bytes <= this.#buf.length) return;
    this.seal();
    this.#buf = new Uint8Array(bytes > CHUNK_BYTES ? bytes : CHUNK_BYTES);
  }

  /** Closes the current chunk (call once more at the end). */
  seal(): void {
    if (this.#pos > 0) this.chunks.push(this.#buf.subarray(0, this.#pos));
    this.#buf = new Uint8Array(CHUNK_BYTES);
    this.#pos = 0;
  }

  /** The forEachPeer callback that writes a peer whose address is `addressBytes` long. */
  #peerWriter(addressBytes: 4 | 16): PeerVisitor {
    return (address, offset, port, seeder, lastSeen) => {
      const bytes = this.#buf;
      let at = this.#pos;
      for (let i = 0; i < addressBytes; i++) bytes[at + i] = address[offset + i];
      at += addressBytes;
      let age = this.#now - lastSeen;
      if (age < 0) age = 0;
      else if (age > MAX_AGE) age = MAX_AGE;
      const flags = seeder ? age | SEEDER_FLAG : age;
      bytes[at] = port >>> 8;
      bytes[at + 1] = port;
      bytes[at + 2] = flags;
      bytes[at + 3] = flags >>> 8;
      this.#pos = at + 4;
      this.#count++;
    };
  }

  readonly #onPeer4 = this.#peerWriter(4);
  readonly #onPeer6 = this.#peerWriter(16);

  /** Writes one torrent (slot in use); returns the peers written. */
  writeSlot(slot: number): number {
    const store = this.store;
    store.slotCounts(slot);
    const result = store.result;
    const peers = result.complete + result.incomplete;
    this.#ensure(TORRENT_BYTES + peers * PEER6_BYTES);
    const b = this.#buf;
    const start = this.#pos;
    store.copyInfoHash(slot, b, start);
    const activity = store.slotLastActivity(slot);
    const idle = this.#now > activity ? this.#now - activity : 0;
    writeU32LE(b, start + 20, result.downloaded);
    writeU32LE(b, start + 24, idle);
    this.#pos = start + TORRENT_BYTES;
    this.#count = 0;
    store.forEachPeer(slot, 4, this.#onPeer4);
    const n4 = this.#count;
    this.#count = 0;
    store.forEachPeer(slot, 6, this.#onPeer6);
    const n6 = this.#count;
    writeU32LE(b, start + 28, n4);
    writeU32LE(b, start + 32, n6);
    this.torrents++;
    this.peers4 += n4;
    this.peers6 += n6;
    return n4 + n6;
  }
}

function writeU32LE(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

function readU32LE(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

/** One pass over the table; false if the table was resized under a paused walk. */
async function walk(encoder: StateEncoder, pause: (() => Promise<void>) | null): Promise<boolean> {
  const store = encoder.store;
  await settleResize(store, pause);
  const capacity = store.slotCount;
  let budget = SLICE_WORK;
  for (let slot = 0; slot < capacity; slot++) {
    if (!store.slotInUse(slot)) {
      if (budget <= 0 && pause !== null) {
        await pause();
        if (store.slotCount !== capacity) return false;
        budget = SLICE_WORK;
      }
      continue;
    }
    budget -= TORRENT_WORK + encoder.writeSlot(slot);
  }
  return true;
}

export interface EncodedState {
  /** The file's bytes in order: write them one after the other. */
  chunks: Uint8Array[];
  torrents: number;
  peers4: number;
  peers6: number;
  bytes: number;
}

/**
 * Encodes the store as a state file. `now` is the store's clock (`clock.now`), `savedAtMs` the
 * wall clock at the same moment. With `pause`, the walk yields to it between slices (a running
 * tracker); without, it runs in one go.
 */
export async function encodeState(
  store: SwarmTable,
  now: number,
  savedAtMs: number,
  pause: (() => Promise<void>) | null = null,
): Promise<EncodedState> {
  let encoder = new StateEncoder(store, now);
  for (let attempt = 0;; attempt++) {
    const usePause = attempt < MAX_RESTARTS ? pause : null;
    if (await walk(encoder, usePause)) break;
    encoder = new StateEncoder(store, now);
  }
  encoder.seal();
  const head = new Uint8Array(HEAD_BYTES + SUMMARY_BYTES);
  head.set(MAGIC, 0);
  writeU32LE(head, 8, STATE_VERSION);
  writeU32LE(head, 16, savedAtMs % 0x100000000);
  writeU32LE(head, 20, Math.floor(savedAtMs / 0x100000000));
  writeU32LE(head, 24, encoder.torrents);
  writeU32LE(head, 28, encoder.peers4);
  writeU32LE(head, 32, encoder.peers6);
  let crc = crc32(head, HEAD_BYTES);
  let bytes = head.length;
  for (const chunk of encoder.chunks) {
    crc = crc32(chunk, 0, chunk.length, crc);
    bytes += chunk.length;
    if (pause !== null) await pause();
  }
  writeU32LE(head, 12, crc);
  return {
    chunks: [head, ...encoder.chunks],
    torrents: encoder.torrents,
    peers4: encoder.peers4,
    peers6: encoder.peers6,
    bytes,
  };
}

/** Concatenates encoded chunks (tests, small states). */
export function joinChunks(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const chunk of chunks) {
    out.set(chunk, o);
    o += chunk.length;
  }
  return out;
}

// ---------------------------------------------------------------- decoding

export interface StateSummary {
  savedAtMs: number;
  torrents: number;
  peers4: number;
  peers6: number;
}

/**
 * Checks a whole state file: magic, version, checksum, and that its torrents and peers fill it
 * exactly as its header says. Returns the summary, or a sentence saying what is wrong.
 */
export function checkState(bytes: Uint8Array): StateSummary | string {
  if (bytes.length < HEAD_BYTES + SUMMARY_BYTES) {
    return `too short for a state file (${bytes.length} bytes)`;
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) return "not an otter state file (bad magic)";
  }
  const version = readU32LE(bytes, 8);
  if (version !== STATE_VERSION) return `unsupported state file version ${version}`;
  if (crc32(bytes, HEAD_BYTES) !== readU32LE(bytes, 12)) {
    return "checksum mismatch (damaged or truncated)";
  }
  const savedAtMs = readU32LE(bytes, 16) + readU32LE(bytes, 20) * 0x100000000;
  const torrents = readU32LE(bytes, 24);
  const peers4 = readU32LE(bytes, 28);
  const peers6 = readU32LE(bytes, 32);
  if (readU32LE(bytes, 36) !== 0) return "reserved header field is not zero";
  let o = HEAD_BYTES + SUMMARY_BYTES;
  let seen4 = 0;
  let seen6 = 0;
  const end = bytes.length;
  for (let t = 0; t < torrents; t++) {
    if (o + TORRENT_BYTES > end) return `truncated in torrent ${t + 1} of ${torrents}`;
    const n4 = readU32LE(bytes, o + 28);
    const n6 = readU32LE(bytes, o + 32);
    o += TORRENT_BYTES;
    if (n4 > peers4 - seen4 || n6 > peers6 - seen6) {
      return `torrent ${t + 1} holds more peers than the header counts`;
    }
    if (o + n4 * PEER4_BYTES + n6 * PEER6_BYTES > end) {
      return `truncated in torrent ${t + 1} of ${torrents}`;
    }
    for (let i = 0; i < n4; i++, o += PEER4_BYTES) {
      if (bytes[o + 4] === 0 && bytes[o + 5] === 0) return `peer with port 0 in torrent ${t + 1}`;
    }
    for (let i = 0; i < n6; i++, o += PEER6_BYTES) {
      if (bytes[o + 16] === 0 && bytes[o + 17] === 0) return `peer with port 0 in torrent ${t + 1}`;
    }
    seen4 += n4;
    seen6 += n6;
  }
  if (seen4 !== peers4 || seen6 !== peers6) return "peer counts disagree with the header";
  if (o !== end) return `${end - o} bytes after the last torrent`;
  return { savedAtMs, torrents, peers4, peers6 };
}

export interface RestoreCounts {
  /** Torrents now in the store because of the file. */
  torrents: number;
  /** Peers the store accepted. */
  peers: number;
  /** Peers left out because their age reached the peer timeout. */
  expired: number;
  /** Peers the store refused: over --max-peers/--max-torrents (it logs those), or invalid. */
  refused: number;
  /** Torrents left out because the access list forbids them, and the peers they held. */
  forbidden: number;
  forbiddenPeers: number;
}

/**
 * Puts a checked state (checkState returned a summary) into the store. `downSeconds` is the
 * wall-clock time since the save; each peer's age grows by it, and peers whose age reaches
 * `peerTimeout` are dropped, and so are torrents `access` forbids.
 */
export function restoreState(
  bytes: Uint8Array,
  store: SwarmTable,
  now: number,
  downSeconds: number,
  peerTimeout: number,
  access: AccessPolicy | null = null,
): RestoreCounts {
  const torrents = readU32LE(bytes, 24);
  const counts: RestoreCounts = {
    torrents: 0,
    peers: 0,
    expired: 0,
    refused: 0,
    forbidden: 0,
    forbiddenPeers: 0,
  };
  let o = HEAD_BYTES + SUMMARY_BYTES;
  for (let t = 0; t < torrents; t++) {
    const hashAt = o;
    const downloaded = readU32LE(bytes, o + 20);
    const idle = readU32LE(bytes, o + 24) + downSeconds;
    const n4 = readU32LE(bytes, o + 28);
    const n6 = readU32LE(bytes, o + 32);
    o += TORRENT_BYTES;
    if (access !== null && !access.allows(bytes, hashAt)) {
      counts.forbidden++;
      counts.forbiddenPeers += n4 + n6;
      o += n4 * PEER4_BYTES + n6 * PEER6_BYTES;
      continue;
    }
    let kept = 0;
    for (let i = 0; i < n4 + n6; i++) {
      const v4 = i < n4;
      const size = v4 ? 4 : 16;
      const flags = bytes[o + size + 2] | (bytes[o + size + 3] << 8);
      const age = (flags & MAX_AGE) + downSeconds;
      if (age >= peerTimeout) {
        counts.expired++;
      } else {
        const port = (bytes[o + size] << 8) | bytes[o + size + 1];
        const seeder = (flags & SEEDER_FLAG) !== 0;
        // Only what the store took counts: at a cap it refuses, and the log must not claim more.
        if (store.restorePeer(bytes, hashAt, v4 ? 4 : 6, bytes, o, port, seeder, now - age)) {
          kept++;
        } else {
          counts.refused++;
        }
      }
      o += size + 4;
    }
    // A peerless torrent is kept only for its downloaded count, and only as long as the store would.
    const keptForDownloads = downloaded > 0 && idle <= KEEP_DOWNLOADED_SECONDS;
    let stored = kept > 0;
    if (downloaded > 0 && (kept > 0 || keptForDownloads)) {
      // setDownloaded counts a peerless torrent it refuses at --max-torrents in restoreSkipped.
      const skipped = store.restoreSkipped;
      store.setDownloaded(bytes, hashAt, downloaded, now - idle);
      if (!stored) stored = store.restoreSkipped === skipped;
    }
    if (stored) counts.torrents++;
    counts.peers += kept;
  }
  return counts;
}
