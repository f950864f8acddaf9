/**
 * The wire form of a WebTorrent signal between cluster nodes (wtSignal.ts). A node publishes one
 * on the channel of the node it is for (wtRelay.ts), sealed like a batch (its own MAC context with the cluster name, so a signal of another
 * cluster, or with another secret, does not verify) and checked whole before anything is used.
 *
 * Wire format, big-endian:
 *
 *    0  magic "OTWS"
 *    4  CRC-32 (IEEE) of every byte from 8 on
 *    8  version (1)
 *    9  kind: 1 offer, 2 answer
 *   10  to tag (u16): the node it is for (wsPeerKeys.ts: the port of that node's keys)
 *   12  from tag (u16): the node that sent it, where an answer goes
 *   14  sent at: ms since the epoch on Redis's clock (u64): refused SIGNAL_TTL_MS after
 *   22  MAC tag (16): HMAC-SHA256 under the cluster secret, first 16 bytes (zero when insecure)
 *   38  info hash (20)
 *   58  to key (u32): an offer's target peer, an answer's offerer, as their node publishes them
 *   62  from key (u32): an offer's offerer, an answer's answerer, as the sender publishes them
 *   66  offer id (20)
 *   86  peer id (20): the offerer's (offer), the answerer's (answer)
 *  106  to peer id (20): an answer's `to_peer_id` (the offerer's peer_id); zero in an offer
 *  126  SDP length (u16), then the SDP as the offering or answering client wrote it: a JSON string
 *       token (quotes and escapes included) of valid UTF-8 and at most MAX_SDP UTF-16 units, which
 *       the receiving node copies into the frame it forwards
 */
import { crc32 } from "../hash/crc32.ts";
import { CRC_START } from "./changeBatch.ts";
import { ClusterMac } from "./batchMac.ts";
import { MAX_SDP } from "../protocol/wtMessage.ts";
import { isString, skipString, stringUnits } from "../protocol/jsonScan.ts";
import { isUtf8 } from "../protocol/utf8.ts";
import { SIGNAL_ANSWER, SIGNAL_OFFER, type WtSignal } from "./wtSignal.ts";
import type { SignalRejects } from "./clusterCounters.ts";

export const SIGNAL_VERSION = 1;
/** How long a signal is good for, in ms: as long as a pending offer waits for its answer. */
export const SIGNAL_TTL_MS = 120_000;
/**
 * The most bytes of an SDP's JSON string: a client's whole message is at most 64 KiB (the frame
 * reader's cap), so its SDP is less.
 */
export const MAX_SDP_BYTES = 65535;
export const SIGNAL_HEADER = 128;
/** The largest signal a node sends (65,663 bytes); a bigger one is read past and refused. */
export const MAX_SIGNAL_BYTES = SIGNAL_HEADER + MAX_SDP_BYTES;

const ID = 20;
const MAGIC = [0x4f, 0x54, 0x57, 0x53]; // "OTWS"
const TAG_AT = 22;

/** The MAC of the WebTorrent signals of cluster `clusterName`. */
export class SignalMac extends ClusterMac {
  constructor(key: Uint8Array | null, clusterName: string) {
    super(key, `otter cluster webtorrent signal v1\0${clusterName}\0`, TAG_AT);
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

/**
 * Encodes a signal, sealed with `mac` (sent at `signal.sentAtMs`), or returns null if its SDP is
 * longer than a signal carries.
 */
export function encodeSignal(signal: WtSignal, mac: SignalMac): Uint8Array | null {
  const sdpLength = signal.sdpEnd - signal.sdpStart;
  if (sdpLength > MAX_SDP_BYTES) return null;
  const out = new Uint8Array(SIGNAL_HEADER + sdpLength);
  out.set(MAGIC, 0);
  out[8] = SIGNAL_VERSION;
  out[9] = signal.kind;
  out[10] = signal.toTag >>> 8;
  out[11] = signal.toTag;
  out[12] = signal.fromTag >>> 8;
  out[13] = signal.fromTag;
  const ms = Math.max(0, Math.floor(signal.sentAtMs));
  writeU32(out, 14, Math.floor(ms / 4294967296));
  writeU32(out, 18, ms >>> 0);
  out.set(signal.infoHash, 38);
  writeU32(out, 58, signal.toKey);
  writeU32(out, 62, signal.fromKey);
  out.set(signal.offerId, 66);
  out.set(signal.peerId, 86);
  if (signal.kind === SIGNAL_ANSWER) out.set(signal.toPeerId, 106);
  out[126] = sdpLength >>> 8;
  out[127] = sdpLength;
  out.set(signal.sdp.subarray(signal.sdpStart, signal.sdpEnd), SIGNAL_HEADER);
  mac.seal(out);
  return out;
}

/**
 * Checks a signal whole (size, magic, checksum, version, kind, lengths, the MAC, then that its SDP
 * is one JSON string of valid UTF-8 and at most MAX_SDP units) and reads it into `out` (its SDP
 * a view of `bytes`). Returns null if it is sound, else the reason. Never throws.
 */
export function decodeSignal(
  bytes: Uint8Array,
  mac: SignalMac,
  out: WtSignal,
): keyof SignalRejects | null {
  if (bytes.length > MAX_SIGNAL_BYTES) return "oversized";
  if (bytes.length < SIGNAL_HEADER || !MAGIC.every((b, i) => bytes[i] === b)) return "malformed";
  if (readU32(bytes, 4) !== crc32(bytes, CRC_START)) return "malformed";
  const kind = bytes[9];
  if (bytes[8] !== SIGNAL_VERSION || (kind !== SIGNAL_OFFER && kind !== SIGNAL_ANSWER)) {
    return "malformed";
  }
  const end = bytes.length;
  if (SIGNAL_HEADER + ((bytes[126] << 8) | bytes[127]) !== end) return "malformed";
  if (!mac.verify(bytes)) return "bad_mac";
  // Copied into a client's frame as it is: it must be exactly one JSON string, as a client's
  // message would have had it.
  if (
    !isString(bytes, SIGNAL_HEADER) || skipString(bytes, SIGNAL_HEADER, end) !== end ||
    !isUtf8(bytes, SIGNAL_HEADER, end) || stringUnits(bytes, SIGNAL_HEADER, end) > MAX_SDP
  ) {
    return "malformed";
  }
  out.kind = kind;
  out.toTag = (bytes[10] << 8) | bytes[11];
  out.fromTag = (bytes[12] << 8) | bytes[13];
  out.sentAtMs = readU32(bytes, 14) * 4294967296 + readU32(bytes, 18);
  out.infoHash.set(bytes.subarray(38, 38 + ID));
  out.toKey = readU32(bytes, 58);
  out.fromKey = readU32(bytes, 62);
  out.offerId.set(bytes.subarray(66, 66 + ID));
  out.peerId.set(bytes.subarray(86, 86 + ID));
  out.toPeerId.set(bytes.subarray(106, 106 + ID));
  out.sdp = bytes;
  out.sdpStart = SIGNAL_HEADER;
  out.sdpEnd = end;
  return null;
}

/** The to tag of a signal at least SIGNAL_HEADER long (to route it before decoding it). */
export function signalToTag(bytes: Uint8Array): number {
  return (bytes[10] << 8) | bytes[11];
}
