/**
 * The WebSocket (WebTorrent) tracker over real sockets: the upgrade on the HTTP listener, the
 * announce reply, offers to other WebSocket peers and answers back to the offerer only, scrapes,
 * the stop and the socket's close taking peers out at once, ownership of a peer_id, and counts that
 * are one with HTTP's. Message shapes as ../shared/notes/webtorrent.md records real clients'.
 */
import assert from "node:assert/strict";
import { announce, id, offers, startWs, until, WsClient } from "./support/wsHarness.ts";
import { RawClient } from "./support/rawHttp.ts";
import { assertInvariants } from "../src/store/invariants.ts";

const H = id("h");

function scrapeUrl(port: number, hash: string): string {
  return `http://127.0.0.1:${port}/scrape?info_hash=${encodeURIComponent(hash)}`;
}

/** complete / incomplete / downloaded of `hash` over HTTP (bencoded, read loosely). */
async function httpScrape(port: number, hash: string): Promise<number[]> {
  const body = await (await fetch(scrapeUrl(port, hash))).text();
  const figure = (key: string) => Number(new RegExp(`${key}i(\\d+)e`).exec(body)?.[1] ?? NaN);
  return [figure("complete"), figure("incomplete"), figure("downloaded")];
}

Deno.test("ws: the upgrade is taken on /announce and /, refused when malformed, HTTP elsewhere", async () => {
  await using otter = startWs();
  await using onAnnounce = await otter.connect("/announce");
  await using onRoot = await otter.connect("/");
  assert.match(onAnnounce.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(onRoot.head, /Upgrade: websocket\r\n/i);
  // Another path with an Upgrade header is plain HTTP.
  await using other = await RawClient.connect(otter.port);
  await other.send(
    "GET /elsewhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  assert.equal((await other.response()).status, 404);
  // A wrong version: 426 naming the version spoken; no key: 400.
  await using version = await RawClient.connect(otter.port);
  await version.send(
    "GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
  );
  const refused = await version.response();
  assert.equal(refused.status, 426);
  assert.equal(refused.headers.get("sec-websocket-version"), "13");
  await using keyless = await RawClient.connect(otter.port);
  await keyless.send(
    "GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  );
  assert.equal((await keyless.response()).status, 400);
  assert.equal(otter.ws.counters.upgradesRefused[0], 2);
  assert.equal(otter.ws.counters.open, 2);
});

Deno.test("ws: an announce is answered with action, info_hash, counts and the ws interval", async () => {
  await using otter = startWs(["--ws-interval", "100"]);
  await using client = await otter.connect();
  await client.json(announce(H, id("a"), { event: "started", left: 0 }));
  const reply = await client.message();
  assert.equal(reply.action, "announce");
  assert.equal(reply.info_hash, H);
  assert.equal(reply.complete, 1);
  assert.equal(reply.incomplete, 0);
  assert.ok((reply.interval as number) >= 90 && (reply.interval as number) <= 110);
  // Bytes ≥ 0x80 in an id travel as 2-byte UTF-8 and come back as the same characters.
  const high = "\u00ff\u0080".repeat(10);
  await client.json(announce(high, id("a")));
  assert.equal((await client.message()).info_hash, high);
});

Deno.test("ws: offers go to other WebSocket peers, the answer only back to the offerer", async () => {
  await using otter = startWs();
  const peers: WsClient[] = [];
  for (let n = 0; n < 4; n++) {
    const client = await otter.connect();
    peers.push(client);
    await client.json(announce(H, id("p", n), { event: "started" }));
    await client.message();
  }
  await using offerer = await otter.connect();
  await offerer.json(announce(H, id("x"), { event: "started", offers: offers(3, "o") }));
  assert.equal((await offerer.message()).complete, 0);
  // Three of the four others get one offer each, with the offerer's peer_id and its offer.
  const received: { peer: number; offer: Record<string, unknown> }[] = [];
  for (let n = 0; n < 4; n++) {
    for (const message of await peers[n].drain()) received.push({ peer: n, offer: message });
  }
  assert.equal(received.length, 3);
  assert.equal(new Set(received.map((r) => r.peer)).size, 3);
  for (const { offer } of received) {
    assert.equal(offer.peer_id, id("x"));
    assert.equal(offer.info_hash, H);
    assert.deepEqual(offer.offer, { type: "offer", sdp: "v=0\r\nOFFER" });
  }
  // The first receiver answers: the offerer alone gets it, the answerer gets nothing back.
  const { peer, offer } = received[0];
  const answer = {
    action: "announce",
    info_hash: H,
    peer_id: id("p", peer),
    to_peer_id: id("x"),
    offer_id: offer.offer_id,
    answer: { type: "answer", sdp: "v=0\r\nANSWER" },
  };
  await peers[peer].json(answer);
  const relayed = await offerer.message();
  assert.deepEqual(relayed, {
    action: "announce",
    info_hash: H,
    peer_id: id("p", peer),
    offer_id: offer.offer_id,
    answer: { type: "answer", sdp: "v=0\r\nANSWER" },
  });
  assert.deepEqual(await peers[peer].drain(), []);
  for (let n = 0; n < 4; n++) if (n !== peer) assert.deepEqual(await peers[n].drain(100), []);
  // A second answer to the same offer: no matching offer any more.
  await peers[peer].json(answer);
  const second = await peers[peer].message();
  assert.equal(second.info_hash, H);
  assert.match(String(second["failure reason"]), /no matching offer/);
  assert.deepEqual(await offerer.drain(), []);
  assert.equal(otter.ws.counters.offersForwarded, 3);
  assert.equal(otter.ws.counters.answersRelayed, 1);
  for (const client of peers) await client[Symbol.asyncDispose]();
});

Deno.test("ws: a seeder's offers go to leechers only; left null is a leecher", async () => {
  await using otter = startWs();
  await using seeder = await otter.connect();
  await seeder.json(announce(H, id("s"), { event: "completed", left: 0 }));
  const first = await seeder.message();
  assert.deepEqual([first.complete, first.incomplete], [1, 0]);
  await using magnet = await otter.connect();
  await magnet.json(announce(H, id("m"), { event: "started", left: null }));
  assert.deepEqual((await magnet.message()).incomplete, 1);
  await using other = await otter.connect();
  await other.json(announce(H, id("t"), { event: "completed", left: 0 }));
  await other.message();
  // The completed-before-started seeders were counted as downloads.
  assert.deepEqual(await httpScrape(otter.port, H), [2, 1, 2]);
  await seeder.json(announce(H, id("s"), { left: 0, offers: offers(5) }));
  await seeder.message();
  assert.equal((await magnet.drain()).length, 1);
  assert.deepEqual(await other.drain(100), []);
});

Deno.test("ws: a stop and a closed socket take the peer out at once; counts are one with HTTP", async () => {
  await using otter = startWs();
  const a = await otter.connect();
  const b = await otter.connect();
  await a.json(announce(H, id("a"), { event: "started", left: 0 }));
  await a.message();
  await b.json(announce(H, id("b"), { event: "started" }));
  await b.message();
  // An HTTP peer in the same swarm: counted together, but never sent an offer, never shown ws peers.
  const peerId = encodeURIComponent(id("c"));
  const httpAnnounce = await fetch(
    `http://127.0.0.1:${otter.port}/announce?info_hash=${encodeURIComponent(H)}&peer_id=${peerId}` +
      "&port=6881&left=5&compact=1&numwant=50",
  );
  const body = new Uint8Array(await httpAnnounce.arrayBuffer());
  const text = new TextDecoder("latin1").decode(body);
  assert.match(text, /5:peers0:/, "an HTTP client is shown no WebSocket peer");
  assert.match(text, /8:completei1e/);
  assert.match(text, /10:incompletei2e/);
  assert.deepEqual(await httpScrape(otter.port, H), [1, 2, 0]);
  await b.json(announce(H, id("b"), { offers: offers(4) }));
  const reply = await b.message();
  assert.deepEqual([reply.complete, reply.incomplete], [1, 2]);
  assert.equal((await a.drain()).length, 1, "one offer: to the other WebSocket peer only");
  // Scrape over WebSocket agrees with HTTP's, for one hash and for a list.
  await a.json({ action: "scrape", info_hash: [H, id("z")] });
  const scrape = await a.message();
  assert.deepEqual(scrape.files, {
    [H]: { complete: 1, incomplete: 2, downloaded: 0 },
    [id("z")]: { complete: 0, incomplete: 0, downloaded: 0 },
  });
  // The stop takes b out; closing a's socket takes a out, with no stop sent.
  await b.json(announce(H, id("b"), { event: "stopped" }));
  await b.message();
  assert.deepEqual(await httpScrape(otter.port, H), [1, 1, 0]);
  a.conn.close();
  await until("a's socket closed", () => otter.ws.counters.open === 1);
  assert.deepEqual(await httpScrape(otter.port, H), [0, 1, 0]);
  assert.equal(otter.store.peersWs, 0);
  assertInvariants(otter.store);
  await b[Symbol.asyncDispose]();
});

Deno.test("ws: a peer_id belongs to the connection that announced it", async () => {
  await using otter = startWs();
  await using owner = await otter.connect();
  await using thief = await otter.connect();
  await owner.json(announce(H, id("a"), { event: "started" }));
  await owner.message();
  for (const event of ["started", "stopped", undefined]) {
    await thief.json(announce(H, id("a"), event === undefined ? {} : { event }));
    const refused = await thief.message();
    assert.equal(refused.info_hash, H);
    assert.match(String(refused["failure reason"]), /in use on another connection/);
  }
  // An answer in its name is refused too.
  await thief.json({
    action: "announce",
    info_hash: H,
    peer_id: id("a"),
    to_peer_id: id("b"),
    offer_id: id("o"),
    answer: { type: "answer", sdp: "x" },
  });
  assert.match(String((await thief.message())["failure reason"]), /in use on another/);
  assert.deepEqual(await httpScrape(otter.port, H), [0, 1, 0]);
  assert.equal(otter.ws.counters.refused[4], 4);
  // The owner keeps it; the same peer_id in another torrent is another peer.
  await thief.json(announce(id("g"), id("a"), { event: "started" }));
  assert.equal((await thief.message()).incomplete, 1);
});

Deno.test("ws: two peer_ids on one socket (clients sharing it) get each other's offers", async () => {
  await using otter = startWs();
  await using shared = await otter.connect();
  await shared.json(announce(H, id("a"), { event: "started", left: 0 }));
  await shared.message();
  await shared.json(announce(H, id("b"), { event: "started", offers: offers(1) }));
  const messages = await shared.drain();
  assert.equal(messages.length, 2);
  const offer = messages.find((m) => m.offer !== undefined)!;
  assert.equal(offer.peer_id, id("b"));
  await shared.json({
    action: "announce",
    info_hash: H,
    peer_id: id("a"),
    to_peer_id: id("b"),
    offer_id: offer.offer_id,
    answer: { type: "answer", sdp: "ok" },
  });
  assert.equal((await shared.message()).peer_id, id("a"));
});

Deno.test("ws: ping gets pong, and a client's close is echoed and takes its peers", async () => {
  await using otter = startWs();
  await using client = await otter.connect();
  await client.ping("abc");
  const pong = await client.frame();
  assert.equal(pong.kind, "pong");
  assert.equal(new TextDecoder().decode((pong as { payload: Uint8Array }).payload), "abc");
  await client.json(announce(H, id("a"), { left: 0, event: "completed" }));
  await client.message();
  assert.equal(otter.ws.counters.received[4], 1);
  assert.equal(otter.store.peersWs, 1);
  await client.close(4000);
  assert.deepEqual(await client.closed(), { code: 4000, reason: "" });
  client.conn.close();
  await until("closed", () => otter.ws.counters.open === 0);
  assert.equal(otter.ws.counters.closed[0], 1);
  assert.equal(otter.store.peersWs, 0);
  assert.equal(otter.ws.buffersInUse, 0);
});
