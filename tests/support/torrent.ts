/**
 * Builds single-file .torrent metainfo (BEP 3) for tests that need real clients to share a file.
 * Pieces are hashed with SHA-1 through `crypto.subtle`; the info hash is SHA-1 of the bencoded
 * `info` dictionary, exactly as clients compute it.
 */
import { bencode } from "./bencode.ts";

export interface Torrent {
  /** The bencoded .torrent file. */
  metainfo: Uint8Array;
  /** SHA-1 of the bencoded info dictionary (20 bytes). */
  infoHash: Uint8Array;
  /** `infoHash` as 40 lowercase hex digits. */
  infoHashHex: string;
}

export interface TorrentOptions {
  /** File name inside the torrent (what clients save it as). */
  name: string;
  /** The tracker's announce URL. */
  announce: string;
  /** Bytes per piece; default 256 KiB. */
  pieceLength?: number;
}

/** Metainfo for one file whose whole content is `content`. */
export async function makeTorrent(
  content: Uint8Array<ArrayBuffer>,
  options: TorrentOptions,
): Promise<Torrent> {
  const pieceLength = options.pieceLength ?? 256 * 1024;
  const pieceCount = Math.ceil(content.length / pieceLength);
  const pieces = new Uint8Array(pieceCount * 20);
  for (let i = 0; i < pieceCount; i++) {
    const piece = content.subarray(i * pieceLength, (i + 1) * pieceLength);
    pieces.set(await sha1(piece), i * 20);
  }
  const info = { name: options.name, length: content.length, "piece length": pieceLength, pieces };
  const infoHash = await sha1(bencode(info));
  const metainfo = bencode({ announce: options.announce, "created by": "otter tests", info });
  return { metainfo, infoHash, infoHashHex: toHex(infoHash) };
}

/** `length` random bytes (crypto.getRandomValues fills at most 64 KiB per call). */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65536)));
  }
  return out;
}

export async function sha1(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", bytes));
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every byte percent-escaped, as a URL query value (info_hash=…, peer_id=…). */
export function percentEscape(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => "%" + b.toString(16).padStart(2, "0")).join("");
}
