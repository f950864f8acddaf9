/**
 * Seeded socket-level fuzzing of the WebSocket tracker: rounds of clients at a live server, each
 * sending a random mix of real announces and answers on a small pool of torrents (so offers and
 * answers flow), broken and random WebTorrent messages (tests/support/wtFuzz.ts), and random or
 * broken frame streams (tests/support/wsFrames.ts), written in random pieces. Every frame otter
 * sends must be well formed: unmasked, a text message that is a JSON object with an `action`, a
 * failure with a string reason, a close with a code otter may send (never 1011, a bug). After
 * each round the server must be consistent: once every client is gone, no connection, no peer
 * (in the store and in its peer table), no pooled buffer held; the store's invariants hold; and a
 * fresh client is served. OTTER_FUZZ_SEED replays a run.
 */
import assert from "node:assert/strict";
import { fuzzSeed, Rng } from "./support/fuzz.ts";
import { randomWtText, realisticMessage } from "./support/wtFuzz.ts";
import { clientFrame, randomFrameStream } from "./support/wsFrames.ts";
import { announce, id, startWs, until, WsClient } from "./support/wsHarness.ts";
import { OP_TEXT } from "../src/protocol/wsFrame.ts";
import { assertInvariants } from "../src/store/invariants.ts";

const SEED = fuzzSeed(0x5eed_0b5);
const ROUNDS_MS = 4000;
const CLIENTS = 6;
const ACTIONS = 12;
/** Close codes otter sends: normal, going away, protocol, binary, UTF-8, policy, too big. */
const OTTER_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009];

/** A real request on the small pool: an announce with offers, a scrape, or an answer. */
function realRequest(rng: Rng, peer: string, offersSeen: Record<string, unknown>[]): unknown {
  const hash = id("h", rng.int(3));
  const roll = rng.int(10);
  if (roll < 3 && offersSeen.length > 0) {
    const offer = offersSeen[rng.int(offersSeen.length)];
    return {
      action: "announce",
      info_hash: offer.info_hash,
      peer_id: peer,
      to_peer_id: offer.peer_id,
      offer_id: offer.offer_id,
      answer: { type: "answer", sdp: "v=0\r\nANSWER" },
    };
  }
  if (roll < 4) return { action: "scrape", info_hash: rng.chance(0.5) ? hash : [hash, id("z")] };
  const offers = Array.from({ length: rng.int(6) }, (_, i) => ({
    offer_id: id("o", rng.int(100000) * 10 + i),
    offer: { type: "offer", sdp: "v=0\r\nOFFER" },
  }));
  return announce(hash, peer, {
    event: rng.pick(["started", "completed", "stopped", undefined, "update"]),
    left: rng.pick([0, 100, null]),
    offers,
  });
}

/** Reads every frame until the end or a quiet spell; returns the problems seen. */
async function readAll(client: WsClient, offersSeen: Record<string, unknown>[]): Promise<string[]> {
  const problems: string[] = [];
  for (;;) {
    let frame;
    try {
      frame = await client.frame(150);
    } catch (error) {
      const text = String(error);
      if (text.includes("timed out")) return problems;
      problems.push(`bad frame: ${text}`);
      return problems;
    }
    if (frame.kind === "eof") return problems;
    if (frame.kind === "text") {
      const m = frame.json;
      if (typeof m !== "object" || m === null || Array.isArray(m)) problems.push("not an object");
      else if (m.action !== "announce" && m.action !== "scrape") problems.push("no action");
      else if ("failure reason" in m && typeof m["failure reason"] !== "string") {
        problems.push("failure reason not a string");
      } else if (m.offer !== undefined) offersSeen.push(m);
    } else if (frame.kind === "close") {
      if (!OTTER_CODES.includes(frame.code) && !(frame.code >= 3000 && frame.code < 5000)) {
        problems.push(`close code ${frame.code}`);
      }
    } else if (frame.kind !== "pong") problems.push(`unexpected ${frame.kind} frame`);
  }
}

async function sendInPieces(client: WsClient, bytes: Uint8Array, rng: Rng): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const piece = rng.chance(0.7) ? bytes.length - at : 1 + rng.int(bytes.length - at);
    await client.send(bytes.subarray(at, at + piece)).catch(() => {});
    at += piece;
  }
}

async function runClient(otter: { connect(): Promise<WsClient> }, rng: Rng, n: number) {
  const client = await otter.connect();
  const peer = id("p", n);
  const offersSeen: Record<string, unknown>[] = [];
  const problems: string[] = [];
  try {
    for (let a = 0; a < ACTIONS; a++) {
      const roll = rng.int(10);
      let bytes: Uint8Array;
      if (roll < 5) {
        bytes = clientFrame(OP_TEXT, JSON.stringify(realRequest(rng, peer, offersSeen)));
      } else if (roll < 7) bytes = clientFrame(OP_TEXT, randomWtText(rng));
      else if (roll < 8) bytes = clientFrame(OP_TEXT, JSON.stringify(realisticMessage(rng)));
      else bytes = randomFrameStream(rng, 65536);
      await sendInPieces(client, bytes, rng);
      if (rng.chance(0.3)) problems.push(...await readAll(client, offersSeen));
    }
    problems.push(...await readAll(client, offersSeen));
  } finally {
    await client[Symbol.asyncDispose]();
  }
  return problems;
}

Deno.test(`fuzz: random frames and messages at a live WebSocket server (seed ${SEED})`, async () => {
  const rng = new Rng(SEED);
  await using otter = startWs([], { messageTimeoutMs: 500 });
  const started = performance.now();
  let rounds = 0;
  while (performance.now() - started < ROUNDS_MS) {
    rounds++;
    const results = await Promise.all(
      Array.from({ length: CLIENTS }, (_, n) => runClient(otter, new Rng(rng.next()), n)),
    );
    for (const problems of results) assert.deepEqual(problems, [], `round ${rounds}`);
    await until("every connection closed", () => otter.ws.counters.open === 0, 8000);
    assert.equal(otter.store.peersWs, 0, "no WebSocket peer left in the store");
    assert.equal(otter.ws.tracker.peers.size, 0, "no entry left in the peer table");
    await until("every pooled buffer back", () => otter.ws.buffersInUse === 0, 4000);
    assertInvariants(otter.store);
  }
  const c = otter.ws.counters;
  console.log(
    `${rounds} rounds of ${CLIENTS} clients, ${c.opened} connections, ${c.offersForwarded} offers ` +
      `forwarded, ${c.answersRelayed} answers relayed, closes ${c.closed.join(" ")}`,
  );
  await using probe = await otter.connect();
  await probe.json(announce(id("f"), id("f"), { event: "started" }));
  assert.equal((await probe.message()).incomplete, 1);
});
