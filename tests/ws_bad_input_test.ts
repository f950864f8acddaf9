/**
 * Bad input over real WebSocket connections, one case per test step (issue 11's list): each gets
 * a clear failure reason (carrying the message's action and info_hash when it had one) or a close
 * with the right code, applies nothing, and leaves otter serving: after every step a fresh
 * connection still gets its announce answered.
 */
import assert from "node:assert/strict";
import {
  announce,
  id,
  offers,
  startWs,
  until,
  WsClient,
  type WsHarness,
} from "./support/wsHarness.ts";
import { clientFrame, concat } from "./support/wsFrames.ts";
import { OP_BINARY, OP_CONTINUATION, OP_PING, OP_TEXT } from "../src/protocol/wsFrame.ts";
import { assertInvariants } from "../src/store/invariants.ts";
import { InfoHashSet } from "../src/policy/accessList.ts";

const H = id("h");

async function stillServes(otter: WsHarness): Promise<void> {
  await using probe = await otter.connect();
  await probe.json(announce(id("q"), id("q"), { event: "stopped" }));
  const reply = await probe.message();
  assert.equal(reply.info_hash, id("q"));
  assertInvariants(otter.store);
}

/** Sends `message` (text or JSON) and returns the failure reply. */
async function refusal(client: WsClient, message: unknown): Promise<Record<string, unknown>> {
  await (typeof message === "string" ? client.text(message) : client.json(message));
  const reply = await client.message();
  assert.ok("failure reason" in reply, `no failure for ${JSON.stringify(message)}`);
  return reply;
}

Deno.test("ws bad input: messages that are not requests get a failure reason", async (t) => {
  await using otter = startWs();
  await using client = await otter.connect();

  await t.step("non-JSON", async () => {
    assert.deepEqual(await refusal(client, "{nope"), {
      action: "announce",
      "failure reason": "message is not JSON",
    });
  });
  await t.step("JSON that is not an object", async () => {
    for (const text of ["[1,2]", '"x"', "null", "42"]) {
      assert.equal((await refusal(client, text))["failure reason"], "message is not a JSON object");
    }
  });
  await t.step("missing or wrong-typed fields", async () => {
    const cases: [Record<string, unknown>, string, boolean][] = [
      [{ action: "announce" }, "invalid info_hash", false],
      [{ action: "fetch", info_hash: H }, "unknown action", false],
      [announce(H, id("a"), { uploaded: "1" }), "invalid uploaded", true],
      [announce(H, id("a"), { downloaded: -1 }), "invalid downloaded", true],
      [announce(H, id("a"), { left: "0" }), "invalid left", true],
      [announce(H, id("a"), { numwant: {} }), "invalid numwant", true],
      [announce(H, id("a"), { event: "paused" }), "invalid event", true],
      [{ action: "announce", info_hash: H }, "invalid peer_id", true],
      [{ action: "scrape" }, "scrape needs info_hash", false],
      [{ action: "scrape", info_hash: [] }, "scrape needs info_hash", false],
    ];
    for (const [message, reason, hasHash] of cases) {
      const reply = await refusal(client, message);
      assert.equal(reply["failure reason"], reason);
      assert.equal(reply.info_hash, hasHash ? H : undefined, reason);
    }
    const scrape = await refusal(client, { action: "scrape", info_hash: 5 });
    assert.equal(scrape.action, "scrape");
  });
  await t.step("ids that are not 20 one-byte characters", async () => {
    for (
      const bad of ["h".repeat(19), "h".repeat(21), "\u0100" + "h".repeat(19), "😀".repeat(10)]
    ) {
      assert.equal(
        (await refusal(client, announce(bad, id("a"))))["failure reason"],
        "invalid info_hash",
      );
      const reply = await refusal(client, announce(H, bad));
      assert.deepEqual([reply["failure reason"], reply.info_hash], ["invalid peer_id", H]);
      const offer = await refusal(client, announce(H, id("a"), { offers: offers(1, bad) }));
      assert.equal(offer["failure reason"], "invalid offer_id");
    }
  });
  await t.step("a scrape of over 64 hashes", async () => {
    const hashes = Array.from({ length: 65 }, (_, i) => id("s", i));
    const reply = await refusal(client, { action: "scrape", info_hash: hashes });
    assert.equal(reply.action, "scrape");
    assert.match(String(reply["failure reason"]), /over 64/);
  });
  assert.equal(otter.store.torrents, 0, "nothing was applied");
  assert.ok(otter.ws.counters.refused[0] >= 20);
  await stillServes(otter);
});

Deno.test("ws bad input: bad offers refuse the whole announce", async (t) => {
  await using otter = startWs();
  await using other = await otter.connect();
  await other.json(announce(H, id("b"), { event: "started" }));
  await other.message();
  await using client = await otter.connect();

  const expect = async (offerList: unknown, reason: string) => {
    const reply = await refusal(client, announce(H, id("a"), { offers: offerList }));
    assert.deepEqual([reply["failure reason"], reply.info_hash], [reason, H]);
  };
  await t.step("offers: [null] (which kills bittorrent-tracker's process)", async () => {
    await expect([null], "an offer is not an object");
  });
  await t.step("offers that are not objects, or not an array", async () => {
    await expect([1], "an offer is not an object");
    await expect(["x"], "an offer is not an object");
    await expect([[]], "an offer is not an object");
    await expect("x", "offers is not an array");
    await expect([{ offer_id: id("o") }], "offer is not an object");
  });
  await t.step("an SDP over 16 KiB", async () => {
    await expect(offers(1, "o", "x".repeat(16385)), "offer sdp over 16384 characters");
    await expect(
      [{ offer_id: id("o"), offer: { type: "offer", sdp: 5 } }],
      "offer sdp is not a string",
    );
  });
  await t.step("a type other than offer / answer", async () => {
    await expect(
      [{ offer_id: id("o"), offer: { type: "answer", sdp: "x" } }],
      'offer type is not "offer"',
    );
    const answer = await refusal(client, {
      action: "announce",
      info_hash: H,
      peer_id: id("a"),
      to_peer_id: id("b"),
      offer_id: id("o"),
      answer: { type: "offer", sdp: "x" },
    });
    assert.equal(answer["failure reason"], 'answer type is not "answer"');
  });
  await t.step("nothing was forwarded or stored", async () => {
    assert.deepEqual(await other.drain(100), []);
    assert.equal(otter.store.peersWs, 1);
    assert.equal(otter.ws.counters.offersForwarded, 0);
  });
  await stillServes(otter);
});

Deno.test("ws bad input: 1,000 offers forward 10 at most", async () => {
  await using otter = startWs();
  const others: WsClient[] = [];
  for (let n = 0; n < 12; n++) {
    const client = await otter.connect();
    others.push(client);
    await client.json(announce(H, id("p", n), { event: "started" }));
    await client.message();
  }
  await using client = await otter.connect();
  // A message holds at most 64 KiB: 10 offers, then 990 entries that are never read.
  const thousand = [...offers(10), ...new Array(990).fill(0)];
  await client.json(announce(H, id("a"), { event: "started", offers: thousand }));
  assert.equal((await client.message()).incomplete, 13);
  let received = 0;
  for (const other of others) received += (await other.drain(200)).length;
  assert.equal(received, 10);
  assert.equal(otter.ws.counters.offersForwarded, 10);
  for (const other of others) await other[Symbol.asyncDispose]();
  await stillServes(otter);
});

Deno.test("ws bad input: answers with no matching offer, and another socket's peer_id", async (t) => {
  await using otter = startWs();
  await using a = await otter.connect();
  await using b = await otter.connect();
  await a.json(announce(H, id("a"), { event: "started" }));
  await a.message();
  await b.json(announce(H, id("b"), { event: "started", offers: offers(1) }));
  await b.message();
  const offer = await a.message();
  const answer = (extra: Record<string, unknown>) => ({
    action: "announce",
    info_hash: H,
    peer_id: id("a"),
    to_peer_id: id("b"),
    offer_id: offer.offer_id,
    answer: { type: "answer", sdp: "x" },
    ...extra,
  });
  await t.step("an answer with no matching offer", async () => {
    for (
      const extra of [
        { offer_id: id("z") }, // never sent
        { to_peer_id: id("c") }, // sent by someone else
        { info_hash: id("g") }, // another torrent
        { peer_id: id("n") }, // not the peer it was sent to
      ]
    ) {
      const reply = await refusal(a, answer(extra));
      assert.match(String(reply["failure reason"]), /no matching offer/);
    }
    // From the other socket, which was never sent it: refused (and b's own peer_id is b's).
    const fromB = await refusal(b, answer({ peer_id: id("b") }));
    assert.match(String(fromB["failure reason"]), /no matching offer/);
    assert.deepEqual(await b.drain(100), []);
  });
  await t.step("a stop with another socket's peer_id", async () => {
    const reply = await refusal(b, announce(H, id("a"), { event: "stopped" }));
    assert.match(String(reply["failure reason"]), /in use on another connection/);
    assert.equal(otter.store.peersWs, 2, "a is still there");
  });
  await t.step("the real answer still goes through, once", async () => {
    await a.json(answer({}));
    assert.equal((await b.message()).peer_id, id("a"));
    const again = await refusal(a, answer({}));
    assert.match(String(again["failure reason"]), /no matching offer/);
  });
  await t.step("an answer over 120 s after its offer", async () => {
    await b.json(announce(H, id("b"), { offers: offers(1, "l") }));
    await b.message();
    const late = await a.message();
    // The store's clock, frozen and moved past the offer's 120 s (peers live 180 s).
    otter.clock.stop();
    otter.clock.now += 121;
    const reply = await refusal(a, answer({ offer_id: late.offer_id }));
    assert.match(String(reply["failure reason"]), /no matching offer/);
    assert.deepEqual(await b.drain(100), []);
  });
  await stillServes(otter);
});

Deno.test("ws bad input: frames that break RFC 6455 close with the right code", async (t) => {
  await using otter = startWs();
  const cases: [string, Uint8Array, number, number][] = [
    ["a binary frame", clientFrame(OP_BINARY, "{}"), 1003, 3],
    ["an unmasked frame", clientFrame(OP_TEXT, "{}", { mask: null }), 1002, 2],
    ["invalid UTF-8", clientFrame(OP_TEXT, Uint8Array.of(0x7b, 0xc3, 0x28, 0x7d)), 1007, 4],
    ["an RSV bit", clientFrame(OP_TEXT, "{}", { rsv: 0x40 }), 1002, 2],
    ["a fragmented control frame", clientFrame(OP_PING, "x", { fin: false }), 1002, 2],
    ["a continuation with no message", clientFrame(OP_CONTINUATION, "x"), 1002, 2],
    // Only the header of a frame over the cap is sent: refused before any payload.
    ["a frame over the cap", clientFrame(OP_TEXT, new Uint8Array(0), { declared: 70000 }), 1009, 5],
    [
      // 60,000 bytes, then a continuation whose header takes the message past 64 KiB.
      "a message over 64 KiB",
      concat(
        clientFrame(OP_TEXT, new Uint8Array(60000).fill(0x20), { fin: false }),
        clientFrame(OP_CONTINUATION, new Uint8Array(0), { declared: 10000 }),
      ),
      1009,
      5,
    ],
  ];
  for (const [what, bytes, code, reason] of cases) {
    await t.step(what, async () => {
      await using client = await otter.connect();
      await client.json(announce(H, id("a"), { event: "started" }));
      await client.message();
      const before = otter.ws.counters.closed[reason];
      await client.send(bytes);
      const close = await client.closed();
      assert.equal(close.code, code);
      assert.equal(otter.ws.counters.closed[reason], before + 1);
      assert.equal(otter.store.peersWs, 0, "its peer left with it");
      await stillServes(otter);
    });
  }
  await until("all closed", () => otter.ws.counters.open === 0);
  assert.equal(otter.ws.buffersInUse, 0);
});

Deno.test("ws bad input: a client that never finishes a frame is closed", async () => {
  await using otter = startWs([], { messageTimeoutMs: 300 });
  await using client = await otter.connect();
  const frame = clientFrame(OP_TEXT, JSON.stringify(announce(H, id("a"))));
  await client.send(frame.subarray(0, frame.length - 5));
  const started = performance.now();
  const close = await client.closed(5000);
  assert.equal(close.code, 1008);
  assert.ok(performance.now() - started < 4000);
  assert.equal(otter.ws.counters.closed[7], 1);
  await stillServes(otter);
});

Deno.test("ws bad input: an idle connection is closed; pings do not keep it open", async () => {
  await using otter = startWs([], { interval: 1 });
  await using client = await otter.connect();
  const pings = setInterval(() => client.ping().catch(() => {}), 300);
  try {
    const close = await client.closed(6000);
    assert.deepEqual(close, { code: 1000, reason: "idle" });
  } finally {
    clearInterval(pings);
  }
  assert.equal(otter.ws.counters.closed[6], 1);
});

Deno.test("ws bad input: a client that does not read is closed at its queue cap", async () => {
  await using otter = startWs([], { maxQueuedBytes: 64 * 1024 });
  await using victim = await otter.connect();
  for (let n = 0; n < 3; n++) await victim.json(announce(H, id("v", n), { event: "started" }));
  await using offerer = await otter.connect();
  // Each announce sends the victim's three peers an offer of 20 KB: its socket buffers fill,
  // then otter's queue for it passes the cap.
  const sdp = "\u00e9".repeat(10000);
  for (let n = 0; n < 2000 && otter.ws.counters.closed[8] === 0; n++) {
    await offerer.json(announce(H, id("x"), { offers: offers(3, "o", sdp, 3 * n) }));
    await offerer.message();
  }
  await until("the slow reader is closed", () => otter.ws.counters.closed[8] === 1);
  assert.equal(otter.store.peersWs, 1, "its peers left at once");
  await until("released", () => otter.ws.counters.open === 1, 6000);
  await stillServes(otter);
});

Deno.test("ws bad input: connections are bounded by --max-ws-connections and the per-address cap", async () => {
  await using otter = startWs(["--max-ws-connections", "5"], {}, { maxConnectionsPerIp: 8 });
  const clients: WsClient[] = [];
  for (let n = 0; n < 5; n++) clients.push(await otter.connect());
  await assert.rejects(otter.connect(), /503 Service Unavailable/);
  assert.equal(otter.ws.counters.upgradesRefused[1], 1);
  // WebSocket connections keep their place in the per-address count: 5 open, 3 more plain HTTP
  // connections fit, the next is closed at accept.
  const plain = [];
  for (let n = 0; n < 3; n++) {
    plain.push(await Deno.connect({ hostname: "127.0.0.1", port: otter.port }));
  }
  await until("3 plain connections accepted", () => otter.server.connections === 3);
  const extra = await Deno.connect({ hostname: "127.0.0.1", port: otter.port });
  assert.equal(await extra.read(new Uint8Array(1)).catch(() => null), null);
  extra.close();
  for (const conn of plain) conn.close();
  for (const client of clients) await client[Symbol.asyncDispose]();
  await until("all closed", () => otter.ws.counters.open === 0);
  assert.equal(otter.http.serverCounters.refusedPerIp, 1);
  await stillServes(otter);
});

Deno.test("ws: the access list, the rate limit and the store's caps apply", async (t) => {
  const list = await Deno.makeTempFile();
  const allowed = id("\u00aa");
  await Deno.writeTextFile(list, "aa".repeat(20) + "\n");
  try {
    await t.step("a torrent off the whitelist is refused", async () => {
      await using otter = startWs(["--whitelist", list]);
      // The harness does not watch the file: load it as startTracker's watch would.
      otter.tracker.access.swap(InfoHashSet.parse(await Deno.readTextFile(list)).set);
      await using client = await otter.connect();
      const refused = await refusal(client, announce(H, id("a")));
      assert.match(String(refused["failure reason"]), /not authorized/);
      await client.json(announce(allowed, id("a")));
      assert.equal((await client.message()).incomplete, 1);
    });
    await t.step("--rate-limit: a burst past it is refused", async () => {
      await using otter = startWs(["--rate-limit", "2/s"]);
      await using client = await otter.connect();
      const replies = [];
      for (let n = 0; n < 4; n++) {
        await client.json(announce(H, id("a")));
        replies.push(await client.message());
      }
      assert.equal(replies.filter((r) => "failure reason" in r).length, 2);
      assert.match(String(replies[3]["failure reason"]), /rate limited/);
    });
    await t.step("--max-torrents: a new torrent past it is refused", async () => {
      await using otter = startWs(["--max-torrents", "1"]);
      await using client = await otter.connect();
      await client.json(announce(H, id("a")));
      await client.message();
      const refused = await refusal(client, announce(id("g"), id("a")));
      assert.equal(refused["failure reason"], "tracker is full: too many torrents");
      assert.equal(otter.ws.tracker.peers.size, 1, "the refused peer holds no entry");
    });
    await t.step("--when-full evict: a new torrent takes an old one's place", async () => {
      await using otter = startWs(["--max-torrents", "1", "--when-full", "evict"]);
      await using old = await otter.connect();
      await old.json(announce(H, id("a"), { event: "started" }));
      await old.message();
      await using client = await otter.connect();
      await client.json(announce(id("g"), id("b"), { event: "started" }));
      assert.equal((await client.message()).incomplete, 1);
      assert.equal(otter.store.torrents, 1);
      assert.equal(otter.store.peersWs, 1, "the evicted torrent's WebSocket peer went with it");
      // Its connection goes on: the next announce takes the place back.
      await old.json(announce(H, id("a")));
      assert.equal((await old.message()).incomplete, 1);
      assertInvariants(otter.store);
    });
    await t.step(
      "--rate-limit counts each client's own address (forwarded by a proxy)",
      async () => {
        await using otter = startWs(["--rate-limit", "2/s", "--trust-proxy", "127.0.0.0/8"]);
        const forwarded = (address: string) =>
          WsClient.open(otter.port, "/announce", `X-Forwarded-For: ${address}\r\n`);
        await using first = await forwarded("10.0.0.1");
        await using second = await forwarded("10.0.0.2");
        await using third = await forwarded("10.0.0.1");
        const replies = [];
        for (const [client, peer] of [[first, "a"], [second, "b"], [third, "c"]] as const) {
          for (let n = 0; n < 2; n++) {
            await client.json(announce(H, id(peer)));
            replies.push(await client.message());
          }
        }
        // 10.0.0.1 used its 2 on the first connection: its second connection is refused, while
        // 10.0.0.2, between them, has its own.
        assert.deepEqual(replies.map((r) => "failure reason" in r), [
          false,
          false,
          false,
          false,
          true,
          true,
        ]);
      },
    );
    await t.step("--max-peers: a new peer past it is refused", async () => {
      await using otter = startWs(["--max-peers", "1"]);
      await using client = await otter.connect();
      await client.json(announce(H, id("a")));
      await client.message();
      const refused = await refusal(client, announce(H, id("b")));
      assert.equal(refused["failure reason"], "tracker is full: too many peers");
      assert.equal(otter.ws.tracker.peers.size, 1, "the refused peer holds no entry");
    });
  } finally {
    await Deno.remove(list);
  }
});
