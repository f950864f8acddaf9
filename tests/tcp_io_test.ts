/**
 * `--tcp-io` both ways: the same HTTP and WebSocket traffic over the TCP fast path (servers/tcp)
 * and over Deno's sockets (`portable`), so the path that is not the default here stays covered.
 * Pipelined announces with a slow-path reply among them, a kept-open connection, and a WebSocket
 * offer relayed and answered between two clients.
 */
import assert from "node:assert/strict";
import { bdecode, dict } from "./support/bencode.ts";
import { startWire } from "./support/wireServer.ts";
import { announce, id, offers, startWs, type WsClient } from "./support/wsHarness.ts";
import { fastTcpSupport } from "../src/servers/tcp/tcpFastListener.ts";

const fast = fastTcpSupport().ok;
const HASH = "%02".repeat(20);

function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
}

function announcePath(port: number): string {
  return `/announce?info_hash=${HASH}&peer_id=-XX0001-${
    String(port).padStart(12, "0")
  }&port=${port}&left=1&numwant=0`;
}

/** The next message on `client` that has `key`, skipping others (bounded by the client's reads). */
async function messageWith(client: WsClient, key: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 10; i++) {
    const message = await client.message();
    if (key in message) return message;
  }
  throw new Error(`no message with ${key}`);
}

for (const io of ["fast", "portable"] as const) {
  const expected = io === "fast" && fast ? "fast" : "portable";
  const ignore = io === "fast" && !fast;

  Deno.test(
    { name: `tcp-io ${io}: pipelined HTTP on a kept-open connection`, ignore },
    async () => {
      await using wire = startWire(["--tcp-io", io]);
      assert.equal(wire.server.io, expected);
      await using client = await wire.connect();
      const requests: string[] = [];
      for (let i = 0; i < 30; i++) {
        requests.push(i % 7 === 3 ? get(`/unknown-${i}`) : get(announcePath(3000 + i)));
      }
      await client.send(requests.join(""));
      let peers = 0;
      for (let i = 0; i < 30; i++) {
        const r = await client.response();
        assert.equal(r.status, i % 7 === 3 ? 404 : 200, `response ${i}`);
        if (i % 7 !== 3) assert.equal(dict(bdecode(r.body)).incomplete, ++peers, `response ${i}`);
      }
      // The connection stays open for more.
      await client.send(get(announcePath(4000)));
      assert.equal((await client.response()).status, 200);
    },
  );

  Deno.test({ name: `tcp-io ${io}: a WebSocket offer relayed and answered`, ignore }, async () => {
    await using ws = startWs(["--tcp-io", io]);
    assert.equal(ws.server.io, expected);
    const hash = id("h");
    await using seeder = await ws.connect();
    await using leecher = await ws.connect();
    await seeder.json(announce(hash, id("s"), { left: 0, event: "completed" }));
    await messageWith(seeder, "interval");
    await leecher.json(announce(hash, id("l"), { offers: offers(2) }));
    await messageWith(leecher, "interval");
    const offer = await messageWith(seeder, "offer");
    assert.equal(offer.peer_id, id("l"));
    await seeder.json({
      action: "announce",
      info_hash: hash,
      peer_id: id("s"),
      to_peer_id: id("l"),
      offer_id: offer.offer_id,
      answer: { type: "answer", sdp: "v=0\r\nANSWER" },
    });
    const answer = await messageWith(leecher, "answer");
    assert.equal(answer.offer_id, offer.offer_id);
    assert.equal(answer.peer_id, id("s"));
  });
}
