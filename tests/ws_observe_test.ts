/**
 * WebSocket peers through otter as a process (startTracker's wiring, the command-line flags): one
 * count with HTTP and UDP peers in scrapes over all three protocols, the full scrape, /stats and
 * /metrics; the ws stats mode and metrics families; --no-websocket; and a stop that closes every
 * WebSocket with 1001.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { announce, id, WsClient } from "./support/wsHarness.ts";
import { RawClient } from "./support/rawHttp.ts";
import { scrapePacket, UdpTestClient } from "./support/udpClient.ts";
import { bdecode } from "./support/bencode.ts";

const latin1 = new TextEncoder();
const H = id("h");
const HASH_BYTES = Uint8Array.from(H, (c) => c.charCodeAt(0));

function port(base: string): number {
  return Number(new URL(base).port);
}

Deno.test("ws peers count with the others on every page; /stats and /metrics count WebSocket", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--ws-interval",
    "60",
  ]);
  const base = otter.http[0];
  await using seeder = await WsClient.open(port(base));
  await seeder.json(announce(H, id("s"), { event: "completed", left: 0 }));
  assert.equal((await seeder.message()).complete, 1);
  await using leecher = await WsClient.open(port(base));
  await leecher.json(announce(H, id("l"), { event: "started", left: null }));
  await leecher.message();
  await seeder.json(announce(H, id("s"), { left: 0, offers: [] }));
  const again = await seeder.message();
  assert.ok((again.interval as number) >= 54 && (again.interval as number) <= 66);
  const peer = encodeURIComponent(id("c"));
  await fetch(
    `${base}/announce?info_hash=${encodeURIComponent(H)}&peer_id=${peer}&port=6881&left=9`,
  ).then((r) => r.body?.cancel());

  // HTTP scrape, UDP scrape and the full scrape agree: 1 seeder, 2 leechers, 1 download.
  const scrape = new TextDecoder("latin1").decode(
    new Uint8Array(
      await (await fetch(`${base}/scrape?info_hash=${encodeURIComponent(H)}`))
        .arrayBuffer(),
    ),
  );
  assert.match(scrape, /8:completei1e10:downloadedi1e10:incompletei2e/);
  const udp = new UdpTestClient("127.0.0.1", otter.udp[0].port);
  try {
    const connection = await udp.connect();
    const reply = (await udp.request(scrapePacket(connection, [HASH_BYTES])))!;
    const view = new DataView(reply.buffer, reply.byteOffset);
    assert.deepEqual([view.getUint32(8), view.getUint32(12), view.getUint32(16)], [1, 1, 2]);
  } finally {
    udp.close();
  }
  const full = bdecode(new Uint8Array(await (await fetch(`${base}/scrape`)).arrayBuffer())) as {
    files: Record<string, Record<string, number>>;
  };
  const files = Object.values(full.files);
  assert.equal(files.length, 1);
  assert.deepEqual([files[0].complete, files[0].incomplete, files[0].downloaded], [1, 2, 1]);

  const stats = await (await fetch(`${base}/stats?format=json`)).json();
  assert.deepEqual(
    [stats.peer.peers, stats.peer.seeders, stats.peer.peersWs, stats.peer.seedersWs],
    [3, 1, 2, 1],
  );
  assert.equal(stats.ws.connections, 2);
  assert.equal(stats.ws.received.announce, 3);
  assert.equal(stats.ws.sent.announce, 3);
  const text = await (await fetch(`${base}/stats?mode=ws`)).text();
  assert.match(text, /^2\n0\n/);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (
    const line of [
      "otter_ws_connections 2",
      'otter_peers{family="ws"} 2',
      'otter_seeders{family="ws"} 1',
      'otter_requests_total{protocol="websocket",action="announce",result="ok"} 3',
      'otter_ws_messages_received_total{kind="announce"} 3',
      'otter_ws_connections_closed_total{reason="client"} 0',
    ]
  ) assert.ok(metrics.includes(`\n${line}\n`), line);

  // The dashboard records WebSocket announces and connections, and counts their clients.
  interface DashboardData {
    series: { name: string }[];
    history: { fine: { v: (number | null)[][] }; latest: (number | null)[] };
    clients: { shares: { announces: number }[] };
  }
  let data: DashboardData | null = null;
  const at = (name: string) => data!.series.findIndex((s) => s.name === name);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
    data = await (await fetch(`${base}/dashboard/data`)).json();
    const announces = data!.history.fine.v[at("announces.ws")];
    if (announces.reduce((sum: number, x) => sum + (x ?? 0), 0) >= 3) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(data!.history.latest[at("connections.ws")], 2);
  const shares = data!.clients.shares;
  assert.equal(shares.reduce((sum, s) => sum + s.announces, 0), 4, "3 WebSocket + 1 HTTP");

  // Stopping otter closes every WebSocket with 1001 (going away).
  const stopping = otter.stop();
  assert.equal((await seeder.closed()).code, 1001);
  assert.equal((await leecher.closed()).code, 1001);
  assert.equal((await stopping).code, 0);
});

Deno.test("--no-websocket: an upgrade is plain HTTP (404 on /, a failure on /announce)", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--no-websocket",
  ]);
  await using raw = await RawClient.connect(port(otter.http[0]));
  await raw.send(latin1.encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  assert.equal((await raw.response()).status, 404);
  await assert.rejects(WsClient.open(port(otter.http[0])), /upgrade refused: HTTP\/1\.1 200/);
});
