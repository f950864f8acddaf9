/**
 * Reads and writes BEP 15 (UDP tracker) packets at fixed offsets in caller-owned byte arrays.
 *
 * All fields are big-endian. 64-bit fields are read as two u32 halves and turned into Numbers only
 * where the tracker needs a number. Nothing here allocates; errors are constant strings that the
 * server sends back with `writeError`.
 *
 * Policy for what arrives (see `classifyPacket` and the readers):
 * - shorter than 16 bytes: dropped silently (no transaction id worth echoing);
 * - action 0 (connect) without the protocol magic: dropped (not a BEP 15 client);
 * - action 3 (error) from a client: dropped, so two trackers can never ping-pong error packets;
 * - any other unknown action: answered with the error "unknown action";
 * - announce shorter than 98 bytes: error "announce too short"; bytes after 98 (BEP 41 options)
 *   are ignored; event > 3: error "invalid event"; port 0: error "invalid port";
 *   numwant is a signed i32 and any negative value means "default" (-1);
 * - scrape with no hash, more than 74 hashes, or a length that is not 16 + 20n: an error.
 * Error replies are cut to the request's length by the server passing it as `maxLength`, so a
 * spoofed source address can never be sent more bytes than the spoofer sent.
 */

export const ACTION_CONNECT = 0;
export const ACTION_ANNOUNCE = 1;
export const ACTION_SCRAPE = 2;
export const ACTION_ERROR = 3;

/** `classifyPacket` result for datagrams that get no answer. */
export const PACKET_DROP = -1;

/** The connect request's magic 0x41727101980 as two big-endian u32 halves. */
export const PROTOCOL_ID_HI = 0x417;
export const PROTOCOL_ID_LO = 0x27101980;

/** Every request starts with connection id (8), action (4), transaction id (4). */
export const REQUEST_HEADER_LENGTH = 16;
export const CONNECT_REQUEST_LENGTH = 16;
export const CONNECT_REPLY_LENGTH = 16;
export const ANNOUNCE_REQUEST_LENGTH = 98;
/** Where an announce's info hash is (BEP 15: fixed). */
export const ANNOUNCE_INFO_HASH_OFFSET = 16;
/** Where an announce's peer id is (BEP 15: fixed, after the info hash). */
export const ANNOUNCE_PEER_ID_OFFSET = 36;
/** Peers (6 bytes each for IPv4, 18 for IPv6) follow the announce reply header. */
export const ANNOUNCE_REPLY_HEADER_LENGTH = 20;
export const SCRAPE_REPLY_HEADER_LENGTH = 8;
export const SCRAPE_ENTRY_LENGTH = 12;
export const ERROR_HEADER_LENGTH = 8;
/** Most hashes one scrape may carry (BEP 15: keeps requests and replies within one MTU). */
export const MAX_UDP_SCRAPE_HASHES = 74;
/** Where a scrape request's hashes start; hash i is at 16 + 20 * i. */
export const SCRAPE_HASHES_OFFSET = 16;

export const ERROR_UNKNOWN_ACTION = "unknown action";
export const ERROR_ANNOUNCE_TOO_SHORT = "announce too short";
export const ERROR_INVALID_EVENT = "invalid event";
export const ERROR_INVALID_PORT = "invalid port";
export const ERROR_SCRAPE_EMPTY = "scrape without info hashes";
export const ERROR_SCRAPE_TOO_MANY = "too many info hashes (max 74)";
export const ERROR_SCRAPE_LENGTH = "scrape length must be 16 + 20n";
/** For the server to send when `ConnectionIds.check` fails. */
export const ERROR_CONNECTION_ID = "invalid connection id";

function readU32BE(packet: Uint8Array, at: number): number {
  return ((packet[at] << 24) | (packet[at + 1] << 16) | (packet[at + 2] << 8) | packet[at + 3]) >>>
    0;
}

function writeU32BE(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

/** An announce request; one object is reused for every packet. */
export class UdpAnnounce {
  connIdHi = 0;
  connIdLo = 0;
  transactionId = 0;
  /** Offsets of the 20-byte info hash and peer id in the packet (fixed by BEP 15). */
  infoHashOffset = 16;
  peerIdOffset = ANNOUNCE_PEER_ID_OFFSET;
  downloaded = 0;
  /** Bytes left; a negative i64 reads as 0 and is not a seeder. Use `leftIsZero` for seeders. */
  left = 0;
  leftIsZero = false;
  uploaded = 0;
  /** BEP 15 numbering (events.ts). */
  event = 0;
  /** The optional IPv4 the client claims, as a u32 (0 = use the source address). */
  ipAddress = 0;
  key = 0;
  /** -1 = default. */
  numwant = -1;
  port = 0;
}

/**
 * Classifies a datagram of `length` bytes: returns ACTION_CONNECT, ACTION_ANNOUNCE or
 * ACTION_SCRAPE for requests to handle (lengths are checked by the readers), ACTION_ERROR when the
 * answer is an error packet with ERROR_UNKNOWN_ACTION, or PACKET_DROP.
 */
export function classifyPacket(packet: Uint8Array, length: number): number {
  if (length < REQUEST_HEADER_LENGTH) return PACKET_DROP;
  const action = readU32BE(packet, 8);
  if (action === ACTION_CONNECT) {
    return readU32BE(packet, 0) === PROTOCOL_ID_HI && readU32BE(packet, 4) === PROTOCOL_ID_LO
      ? ACTION_CONNECT
      : PACKET_DROP;
  }
  if (action === ACTION_ANNOUNCE || action === ACTION_SCRAPE) return action;
  if (action === ACTION_ERROR) return PACKET_DROP;
  return ACTION_ERROR;
}

/** The transaction id of any request of at least 16 bytes. */
export function readTransactionId(packet: Uint8Array): number {
  return readU32BE(packet, 12);
}

/** Reads an unsigned 64-bit field as a Number; negative (top bit set) reads as 0. */
function readU64BE(packet: Uint8Array, at: number): number {
  const hi = readU32BE(packet, at);
  if (hi >= 0x80000000) return 0;
  return hi * 0x100000000 + readU32BE(packet, at + 4);
}

/** Reads an announce request into `into`; returns an error reason or null. */
export function readAnnounce(packet: Uint8Array, length: number, into: UdpAnnounce): string | null {
  if (length < REQUEST_HEADER_LENGTH) return ERROR_ANNOUNCE_TOO_SHORT;
  into.connIdHi = readU32BE(packet, 0);
  into.connIdLo = readU32BE(packet, 4);
  into.transactionId = readU32BE(packet, 12);
  if (length < ANNOUNCE_REQUEST_LENGTH) return ERROR_ANNOUNCE_TOO_SHORT;
  into.infoHashOffset = 16;
  into.peerIdOffset = ANNOUNCE_PEER_ID_OFFSET;
  into.downloaded = readU64BE(packet, 56);
  into.left = readU64BE(packet, 64);
  into.leftIsZero = (packet[64] | packet[65] | packet[66] | packet[67] | packet[68] | packet[69] |
    packet[70] | packet[71]) === 0;
  into.uploaded = readU64BE(packet, 72);
  const event = readU32BE(packet, 80);
  if (event > 3) return ERROR_INVALID_EVENT;
  into.event = event;
  into.ipAddress = readU32BE(packet, 84);
  into.key = readU32BE(packet, 88);
  const numwant = readU32BE(packet, 92) | 0;
  into.numwant = numwant < 0 ? -1 : numwant;
  const port = (packet[96] << 8) | packet[97];
  if (port === 0) return ERROR_INVALID_PORT;
  into.port = port;
  return null;
}

/**
 * The announce fields the tracker acts on; one object is reused for every packet. The transaction
 * id is an int32 (its bytes are what matters: it is only echoed back), so passing it to a call
 * that is not inlined never boxes it.
 */
export class AnnounceFields {
  transactionId = 0;
  leftIsZero = false;
  /** BEP 15 numbering (events.ts). */
  event = 0;
  /** -1 = default. */
  numwant = -1;
  port = 0;
}

/**
 * Reads what the tracker uses of an announce of `length` >= 16 bytes (`classifyPacket` checked
 * it) into `into`, with the same errors as `readAnnounce`, which reads every field; returns an
 * error reason or null. The hot path's parser: no 64-bit fields turned into Numbers, no fields
 * nobody reads.
 */
export function readAnnounceFields(
  packet: Uint8Array,
  length: number,
  into: AnnounceFields,
): string | null {
  into.transactionId = (packet[12] << 24) | (packet[13] << 16) | (packet[14] << 8) | packet[15];
  if (length < ANNOUNCE_REQUEST_LENGTH) return ERROR_ANNOUNCE_TOO_SHORT;
  into.leftIsZero = (packet[64] | packet[65] | packet[66] | packet[67] | packet[68] | packet[69] |
    packet[70] | packet[71]) === 0;
  // The event is a u32: over 3 if any of its top three bytes is set.
  const event = packet[83];
  if ((packet[80] | packet[81] | packet[82]) !== 0 || event > 3) return ERROR_INVALID_EVENT;
  into.event = event;
  const numwant = (packet[92] << 24) | (packet[93] << 16) | (packet[94] << 8) | packet[95];
  into.numwant = numwant < 0 ? -1 : numwant;
  const port = (packet[96] << 8) | packet[97];
  if (port === 0) return ERROR_INVALID_PORT;
  into.port = port;
  return null;
}

/**
 * Checks a scrape request's length (the hashes need no parsing): returns the number of hashes
 * (1..74, hash i at SCRAPE_HASHES_OFFSET + 20 * i) or an error reason.
 */
export function scrapeHashCount(length: number): number | string {
  if (length <= REQUEST_HEADER_LENGTH) return ERROR_SCRAPE_EMPTY;
  const bytes = length - REQUEST_HEADER_LENGTH;
  if (bytes % 20 !== 0) return ERROR_SCRAPE_LENGTH;
  const count = bytes / 20;
  if (count > MAX_UDP_SCRAPE_HASHES) return ERROR_SCRAPE_TOO_MANY;
  return count;
}

/** Writes a connect reply with the 8-byte id at connectionId[connectionIdOffset]; returns 16. */
export function writeConnectReply(
  out: Uint8Array,
  transactionId: number,
  connectionId: Uint8Array,
  connectionIdOffset: number,
): number {
  // Copy first: the id may already sit in `out` (issued straight into the reply buffer).
  for (let i = 0; i < 8; i++) out[8 + i] = connectionId[connectionIdOffset + i];
  writeU32BE(out, 0, ACTION_CONNECT);
  writeU32BE(out, 4, transactionId);
  return CONNECT_REPLY_LENGTH;
}

/** Writes the announce reply header; peers go at offset 20. Returns 20. */
export function writeAnnounceReplyHeader(
  out: Uint8Array,
  transactionId: number,
  interval: number,
  leechers: number,
  seeders: number,
): number {
  writeU32BE(out, 0, ACTION_ANNOUNCE);
  writeU32BE(out, 4, transactionId);
  writeU32BE(out, 8, interval);
  writeU32BE(out, 12, leechers);
  writeU32BE(out, 16, seeders);
  return ANNOUNCE_REPLY_HEADER_LENGTH;
}

/** Writes the scrape reply header; entries go at offset 8. Returns 8. */
export function writeScrapeReplyHeader(out: Uint8Array, transactionId: number): number {
  writeU32BE(out, 0, ACTION_SCRAPE);
  writeU32BE(out, 4, transactionId);
  return SCRAPE_REPLY_HEADER_LENGTH;
}

/** Writes one 12-byte scrape entry at `offset`; returns the offset after it. */
export function writeScrapeEntry(
  out: Uint8Array,
  offset: number,
  seeders: number,
  completed: number,
  leechers: number,
): number {
  writeU32BE(out, offset, seeders);
  writeU32BE(out, offset + 4, completed);
  writeU32BE(out, offset + 8, leechers);
  return offset + SCRAPE_ENTRY_LENGTH;
}

/**
 * Writes an error packet and returns its length, cutting the message so the total is at most
 * `maxLength` (and at least the 8-byte header). The message should be ASCII; other chars are
 * written as '?'. Copying chars from the (interned, constant) string costs the same as copying a
 * pre-encoded array and needs no lookup, so callers pass the ERROR_* strings directly.
 */
export function writeError(
  out: Uint8Array,
  transactionId: number,
  message: string,
  maxLength: number,
): number {
  writeU32BE(out, 0, ACTION_ERROR);
  writeU32BE(out, 4, transactionId);
  let n = message.length;
  const room = Math.min(maxLength, out.length) - ERROR_HEADER_LENGTH;
  if (n > room) n = room > 0 ? room : 0;
  for (let i = 0; i < n; i++) {
    const c = message.charCodeAt(i);
    out[ERROR_HEADER_LENGTH + i] = c < 0x80 ? c : 63;
  }
  return ERROR_HEADER_LENGTH + n;
}
