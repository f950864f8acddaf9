/**
 * A UDP announce flood for tests and benches: keeps a window of announces in flight to one
 * tracker until a total is sent or a deadline passes, with distinct random info hashes in the
 * first half and then a mix of new hashes and new peers of recent ones, so both store caps get
 * hit. It reports what it sent and what came back; it asserts nothing.
 */
import { announcePacket, connectPacket, readU32 } from "./udpClient.ts";

export interface FloodResult {
  sent: number;
  replies: number;
  errors: Map<string, number>;
  lost: number;
  sendFailed: number;
  ms: number;
}

/**
 * Sends up to `total` UDP announces, keeping `window` in flight, until done or `deadlineMs` has
 * passed. The first half are distinct random info hashes; in the second half a quarter are new
 * hashes and the rest new ports of the last 64 hashes (about 4 peers a torrent), so both caps
 * get hit. Replies that do not come within 100 ms are written off and replaced. A window of 128
 * stays within the client socket's default receive buffer (256 small replies overflow it).
 */
export async function flood(
  hostname: string,
  port: number,
  total: number,
  window: number,
  deadlineMs: number,
): Promise<FloodResult> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const target: Deno.NetAddr = { transport: "udp", hostname, port };
  const started = performance.now();
  const deadline = started + deadlineMs;
  let s = crypto.getRandomValues(new Uint32Array(1))[0] | 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  await conn.send(connectPacket(1), target);
  const [connected] = await Promise.race([
    conn.receive(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("no connect reply")), 2000)
    ),
  ]);
  const template = announcePacket({
    connectionId: connected.slice(8, 16),
    infoHash: new Uint8Array(20),
    port: 1,
    numwant: 0,
  });
  const recent = new Uint8Array(64 * 20);
  const result: FloodResult = {
    sent: 0,
    replies: 0,
    errors: new Map(),
    lost: 0,
    sendFailed: 0,
    ms: 0,
  };
  let inFlight = 0;
  const pump = () => {
    while (inFlight < window && result.sent < total && performance.now() < deadline) {
      const packet = template.slice();
      const view = new DataView(packet.buffer);
      const i = result.sent++;
      view.setUint32(12, i);
      if (i < total / 2 || next() % 4 === 0) {
        for (let w = 0; w < 5; w++) view.setUint32(16 + w * 4, next());
        recent.set(packet.subarray(16, 36), (i % 64) * 20);
      } else {
        const r = next() % 64;
        packet.set(recent.subarray(r * 20, r * 20 + 20), 16);
      }
      view.setUint16(96, 1 + next() % 65535);
      inFlight++;
      conn.send(packet, target).catch(() => result.sendFailed++);
    }
  };
  let seen = -1;
  const watchdog = setInterval(() => {
    const over = performance.now() >= deadline || (result.sent >= total && inFlight === 0);
    if (over) {
      conn.close();
    } else if (result.replies === seen && inFlight > 0) {
      result.lost += inFlight;
      inFlight = 0;
      pump();
    }
    seen = result.replies;
  }, 100);
  pump();
  try {
    for (;;) {
      const [reply] = await conn.receive();
      result.replies++;
      if (inFlight > 0) inFlight--;
      if (readU32(reply, 0) === 3) {
        const message = new TextDecoder().decode(reply.subarray(8));
        result.errors.set(message, (result.errors.get(message) ?? 0) + 1);
      }
      if (result.sent >= total && inFlight === 0) break;
      pump();
    }
  } catch {
    // closed by the watchdog at the deadline
  } finally {
    clearInterval(watchdog);
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
  result.ms = performance.now() - started;
  return result;
}
