/**
 * Micro load target for the UDP fast path (not part of the test suite): a BEP 15 responder with
 * no store that answers connect, announce and scrape with fixed, valid replies, so udpload can
 * measure the socket loop alone.
 *
 *   taskset -c 0 deno run --allow-all bench/udp_fast_echo.ts --port 17000 [--peers 10]
 *                                                            [--batches 16] [--portable]
 *   taskset -c 1 /tmp/udpload -p 17000 -t 100000 -P 10 -c 128 -d 10 -j
 *
 * `--portable` answers through Deno.listenDatagram with one reused receive buffer instead, for a
 * same-minute reference. SIGINT/SIGTERM stop it and print the counters.
 */

import { parseArgs } from "node:util";
import { FastUdpSocket, fastUdpSupport } from "../src/servers/udp/udpFastSocket.ts";
import { type DatagramHandler } from "../src/servers/udp/udpBatchArena.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "17000" },
    peers: { type: "string", default: "10" },
    batches: { type: "string", default: "16" },
    portable: { type: "boolean", default: false },
  },
});

const PROTOCOL_HI = 0x417;
const PROTOCOL_LO = 0x27101980;
const peers = Number(values.peers);

/** Fixed answers; reads and writes at offsets only. */
class FixedTracker implements DatagramHandler {
  handle(
    packet: Uint8Array,
    length: number,
    _family: 4 | 6,
    _address: Uint8Array,
    _addressOffset: number,
    _port: number,
    out: Uint8Array,
  ): number {
    if (length < 16) return 0;
    const action = readU32(packet, 8);
    // Transaction id, copied as is.
    out[4] = packet[12];
    out[5] = packet[13];
    out[6] = packet[14];
    out[7] = packet[15];
    if (action === 0 && readU32(packet, 0) === PROTOCOL_HI && readU32(packet, 4) === PROTOCOL_LO) {
      writeU32(out, 0, 0);
      writeU32(out, 8, 0x01020304);
      writeU32(out, 12, 0x05060708);
      return 16;
    }
    if (action === 1 && length >= 98) {
      writeU32(out, 0, 1);
      writeU32(out, 8, 1800);
      writeU32(out, 12, 5);
      writeU32(out, 16, 5);
      for (let i = 0; i < peers; i++) {
        const at = 20 + 6 * i;
        out[at] = 10;
        out[at + 1] = 0;
        out[at + 2] = i >> 8;
        out[at + 3] = i & 0xff;
        out[at + 4] = 0x1a;
        out[at + 5] = 0xe1;
      }
      return 20 + 6 * peers;
    }
    if (action === 2 && length >= 36) {
      const hashes = Math.min(74, ((length - 16) / 20) | 0);
      writeU32(out, 0, 2);
      for (let i = 0; i < hashes; i++) {
        writeU32(out, 8 + 12 * i, 5);
        writeU32(out, 12 + 12 * i, 1);
        writeU32(out, 16 + 12 * i, 5);
      }
      return 8 + 12 * hashes;
    }
    writeU32(out, 0, 3);
    out[8] = 0x3f; // "?"
    return 9;
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

const handler = new FixedTracker();
const port = Number(values.port);

if (values.portable) {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: values.host, port });
  const packet = new Uint8Array(2048);
  const out = new Uint8Array(4096);
  const address = new Uint8Array(16);
  let answered = 0;
  const stop = () => {
    console.log(JSON.stringify({ mode: "portable", answered }));
    conn.close();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(`portable UDP on ${values.host}:${port}`);
  try {
    while (true) {
      const [data, from] = await conn.receive(packet);
      const length = handler.handle(data, data.length, 4, address, 0, 0, out);
      if (length > 0) {
        conn.send(out.subarray(0, length), from).catch(() => {});
        answered++;
      }
    }
  } catch {
    // closed by the signal handler
  }
  Deno.exit(0);
} else {
  const support = fastUdpSupport();
  if (!support.ok) throw new Error(support.reason);
  const socket = FastUdpSocket.open(values.host, port, { batchesPerWake: Number(values.batches) });
  const stop = () => socket.close();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(`fast UDP on ${values.host}:${socket.port}, rcvbuf ${socket.receiveBufferBytes}`);
  await socket.serve(handler);
  const c = socket.counters;
  console.log(
    JSON.stringify({ mode: "fast", ...c, perBatch: +(c.received / c.batches).toFixed(1) }),
  );
  Deno.exit(0);
}
