/**
 * A small BEP 15 client for tests: sends datagrams from its own loopback socket and waits for
 * replies with a deadline. Packet builders return exact bytes so tests can also send malformed
 * variants.
 */

/**
 * How long a reply that should come is waited for: generous, since a loaded machine can hold one
 * up for seconds, and the wait ends when it comes. Tests that expect no reply pass a short wait.
 */
export const REPLY_TIMEOUT_MS = 10_000;

export class UdpTestClient {
  readonly conn: Deno.DatagramConn;
  readonly target: Deno.NetAddr;

  /** Talks to hostname:port from an ephemeral port of `from` (default the loopback address of
   *  the target's family). */
  constructor(hostname: string, port: number, from = hostname.includes(":") ? "::1" : "127.0.0.1") {
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: from, port: 0 });
    this.target = { transport: "udp", hostname, port };
  }

  get port(): number {
    return (this.conn.addr as Deno.NetAddr).port;
  }

  async send(packet: Uint8Array): Promise<void> {
    await this.conn.send(packet, this.target);
  }

  /** Waits for one datagram; null after `timeoutMs`. */
  async receive(timeoutMs = REPLY_TIMEOUT_MS): Promise<Uint8Array | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const received = this.conn.receive().then(([data]) => data);
    try {
      return await Promise.race([received, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends and waits for the reply (null if none came). A reply that never comes leaves a
   * pending receive, which `close()` ends. */
  async request(packet: Uint8Array, timeoutMs = REPLY_TIMEOUT_MS): Promise<Uint8Array | null> {
    await this.send(packet);
    return await this.receive(timeoutMs);
  }

  /** connect → the 8-byte connection id. */
  async connect(): Promise<Uint8Array> {
    const reply = await this.request(connectPacket(0x1234));
    if (reply === null || reply.length !== 16) throw new Error("no connect reply");
    return reply.slice(8, 16);
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }
}

function u32(out: Uint8Array, o: number, v: number): void {
  new DataView(out.buffer, out.byteOffset).setUint32(o, v >>> 0);
}

export function readU32(b: Uint8Array, o: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(o);
}

export function connectPacket(transactionId: number): Uint8Array {
  const p = new Uint8Array(16);
  u32(p, 0, 0x417);
  u32(p, 4, 0x27101980);
  u32(p, 8, 0);
  u32(p, 12, transactionId);
  return p;
}

export interface UdpAnnounceFields {
  connectionId: Uint8Array;
  transactionId?: number;
  infoHash: Uint8Array;
  peerId?: Uint8Array;
  left?: number;
  event?: number;
  numwant?: number;
  port: number;
}

export function announcePacket(f: UdpAnnounceFields): Uint8Array {
  const p = new Uint8Array(98);
  p.set(f.connectionId, 0);
  u32(p, 8, 1);
  u32(p, 12, f.transactionId ?? 7);
  p.set(f.infoHash, 16);
  p.set(f.peerId ?? new Uint8Array(20).fill(0x2d), 36);
  u32(p, 68, f.left ?? 1000);
  u32(p, 80, f.event ?? 0);
  u32(p, 92, f.numwant ?? -1);
  p[96] = f.port >>> 8;
  p[97] = f.port & 0xff;
  return p;
}

export function scrapePacket(
  connectionId: Uint8Array,
  hashes: Uint8Array[],
  transactionId = 9,
): Uint8Array {
  const p = new Uint8Array(16 + 20 * hashes.length);
  p.set(connectionId, 0);
  u32(p, 8, 2);
  u32(p, 12, transactionId);
  hashes.forEach((h, i) => p.set(h, 16 + 20 * i));
  return p;
}

/** Splits an announce reply's peer list into "addr:port" strings. */
export function announcePeers(reply: Uint8Array, family: 4 | 6): string[] {
  const size = family === 4 ? 6 : 18;
  const out: string[] = [];
  for (let o = 20; o + size <= reply.length; o += size) out.push(compactPeer(reply, o, family));
  return out;
}

export function compactPeer(b: Uint8Array, o: number, family: 4 | 6): string {
  const n = family === 4 ? 4 : 16;
  const port = (b[o + n] << 8) | b[o + n + 1];
  if (family === 4) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}:${port}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i] << 8) | b[o + i + 1]).toString(16));
  return `[${parts.join(":")}]:${port}`;
}
