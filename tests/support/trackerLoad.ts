/**
 * A small, bounded load of real announces for tests that watch a running otter move (the
 * dashboard's): a fixed set of peers, each with a client's peer_id prefix, re-announcing over UDP
 * (in windows of datagrams in flight) or HTTP (keep-alive fetches) until a deadline. Every
 * announce counted as answered got a reply that was an announce reply.
 */
import { announcePacket, readU32, UdpTestClient } from "./udpClient.ts";
import { percentEscape } from "./torrent.ts";

export interface LoadPeer {
  infoHash: Uint8Array;
  /** The port announced (peers are told apart by address and port). */
  port: number;
  seeder: boolean;
  /** Its peer_id's client prefix, e.g. "-qB4630-". */
  prefix: string;
}

/** A 20-byte peer_id: `prefix`, then `n` in decimal, padded with zeros. */
export function peerId(prefix: string, n: number): Uint8Array {
  const text = prefix + String(n).padStart(20 - prefix.length, "0");
  return new TextEncoder().encode(text.slice(0, 20));
}

/** What a load did: announces answered, and replies that did not come (UDP) or failed. */
export interface LoadResult {
  answered: number;
  missing: number;
}

const WINDOW = 32;

/**
 * Announces every peer over UDP to `hostname:port`, round after round, until `untilMs`
 * (performance.now()); the first round with event started (a seeder: completed), then none.
 */
export async function udpLoad(
  hostname: string,
  port: number,
  peers: readonly LoadPeer[],
  untilMs: number,
): Promise<LoadResult> {
  const client = new UdpTestClient(hostname, port);
  const result = { answered: 0, missing: 0 };
  try {
    const connectionId = await client.connect();
    const packet = (peer: LoadPeer, i: number, first: boolean) =>
      announcePacket({
        connectionId,
        transactionId: i,
        infoHash: peer.infoHash,
        peerId: peerId(peer.prefix, peer.port),
        left: peer.seeder ? 0 : 1000,
        event: first ? (peer.seeder ? 1 : 2) : 0,
        numwant: 10,
        port: peer.port,
      });
    const first = peers.map((peer, i) => packet(peer, i, true));
    const again = peers.map((peer, i) => packet(peer, i, false));
    let round = first;
    let next = 0;
    while (performance.now() < untilMs) {
      const count = Math.min(WINDOW, round.length - next);
      for (let i = 0; i < count; i++) await client.send(round[next + i]);
      for (let i = 0; i < count; i++) {
        const reply = await client.receive(2000);
        if (reply === null) {
          result.missing += count - i;
          break;
        }
        if (readU32(reply, 0) === 1) result.answered++;
        else result.missing++;
      }
      next += count;
      if (next === round.length) {
        round = again;
        next = 0;
      }
    }
  } finally {
    client.close();
  }
  return result;
}

/** The same over HTTP to `base` (e.g. "http://127.0.0.1:41234"), one request at a time. */
export async function httpLoad(
  base: string,
  peers: readonly LoadPeer[],
  untilMs: number,
): Promise<LoadResult> {
  const result = { answered: 0, missing: 0 };
  let round = 0;
  while (performance.now() < untilMs) {
    for (const peer of peers) {
      if (performance.now() >= untilMs) break;
      const id = percentEscape(peerId(peer.prefix, peer.port));
      const event = round > 0 ? "" : peer.seeder ? "&event=completed" : "&event=started";
      const url = `${base}/announce?info_hash=${percentEscape(peer.infoHash)}&peer_id=${id}` +
        `&port=${peer.port}&left=${peer.seeder ? 0 : 1000}&numwant=10&compact=1${event}`;
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const body = await response.text();
      if (response.status === 200 && !body.includes("failure reason")) result.answered++;
      else result.missing++;
    }
    round++;
  }
  return result;
}
