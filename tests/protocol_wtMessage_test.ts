/**
 * src/protocol/wtMessage.ts and wtReply.ts: the message shapes real WebTorrent clients send, each
 * bad-input case of issue 11 that is the parser's matter (with its failure reason), the replies
 * byte for byte (binary ids with bytes ≥ 0x80 and control characters), what a client's JSON.parse
 * reads back from them, and seeded fuzz runs against the rules' oracle (tests/support/wtFuzz.ts;
 * the long run is in bench/fuzz_long.ts).
 */
import assert from "node:assert/strict";
import {
  EVENT_COMPLETED,
  EVENT_NONE,
  EVENT_STARTED,
  EVENT_STOPPED,
} from "../src/protocol/events.ts";
import {
  binaryIdString,
  MAX_SDP,
  parseWtMessage,
  readBinaryId,
  WT_ANNOUNCE,
  WT_ANSWER,
  WT_SCRAPE,
  WtRequest,
} from "../src/protocol/wtMessage.ts";
import {
  writeBinaryId,
  writeJsonString,
  writeWtAnnounceReply,
  writeWtAnswer,
  writeWtError,
  writeWtOffer,
  writeWtScrapeReply,
  WT_ANNOUNCE_REPLY_MAX,
  wtErrorMaxLength,
  wtScrapeReplyMaxLength,
  wtSignalMaxLength,
} from "../src/protocol/wtReply.ts";
import { fuzzLoop, fuzzSeed, oddChar, Rng } from "./support/fuzz.ts";
import { fuzzWtMessages, SAMPLE_SDP } from "./support/wtFuzz.ts";

/** 20 bytes with every awkward class: NUL, control, quote, backslash, DEL, 0x80, 0xff. */
const HASH_BYTES = Uint8Array.of(
  0x00,
  0x0a,
  0x22,
  0x5c,
  0x7f,
  0x80,
  0xff,
  0x41,
  0x1f,
  0xe9,
  ...new Array(10).fill(0x61),
);
const HASH = binaryIdString(HASH_BYTES);
const PEER = "-WW0300-abcdefghijkl";
const OTHER = "-WW0300-zyxwvutsrqpo";
const OFFER_ID = "\u00f0".repeat(20);

function parse(message: unknown): [string | null, WtRequest] {
  const request = new WtRequest();
  const text = typeof message === "string" ? message : JSON.stringify(message);
  return [parseWtMessage(new TextEncoder().encode(text), request), request];
}

/** The SDP whose JSON string lies at r.message[start, end), as a client's JSON.parse reads it. */
function sdpText(r: WtRequest, start: number, end: number): string {
  return JSON.parse(new TextDecoder().decode(r.message.subarray(start, end)));
}

const offerSdp = (r: WtRequest, i: number) => sdpText(r, r.offerSdpStarts[i], r.offerSdpEnds[i]);

function announce(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    numwant: 2,
    uploaded: 0,
    downloaded: 0,
    left: null,
    event: "started",
    action: "announce",
    info_hash: HASH,
    peer_id: PEER,
    offers: [
      { offer: { type: "offer", sdp: SAMPLE_SDP }, offer_id: OFFER_ID },
      { offer: { type: "offer", sdp: "v=0\r\n" }, offer_id: "\u0001".repeat(20) },
    ],
    ...extra,
  };
}

Deno.test("binary ids: 20 one-byte characters to bytes and back", () => {
  const out = new Uint8Array(25);
  assert.equal(readBinaryId(HASH, out, 5), true);
  assert.deepEqual(out.subarray(5), HASH_BYTES);
  assert.equal(binaryIdString(out, 5), HASH);
  for (const bad of [HASH.slice(1), HASH + "x", "\u0100" + HASH.slice(1), 12, null, [HASH]]) {
    assert.equal(readBinaryId(bad, out, 0), false, JSON.stringify(bad));
  }
});

Deno.test("a magnet leecher's started announce with offers, as webtorrent sends it", () => {
  const [reason, r] = parse(announce());
  assert.equal(reason, null);
  assert.equal(r.kind, WT_ANNOUNCE);
  assert.deepEqual(r.infoHash, HASH_BYTES);
  assert.equal(binaryIdString(r.peerId), PEER);
  assert.equal(r.event, EVENT_STARTED);
  assert.equal(r.left, -1, "left: null is unknown: a leecher");
  assert.equal(r.numwant, 2);
  assert.equal(r.offerCount, 2);
  assert.equal(binaryIdString(r.offerIds, 0), OFFER_ID);
  assert.equal(binaryIdString(r.offerIds, 20), "\u0001".repeat(20));
  assert.deepEqual([offerSdp(r, 0), offerSdp(r, 1)], [SAMPLE_SDP, "v=0\r\n"]);
});

Deno.test("events: completed (also before any started), stopped, update, absent", () => {
  const cases: [unknown, number][] = [
    ["completed", EVENT_COMPLETED],
    ["stopped", EVENT_STOPPED],
    ["update", EVENT_NONE],
    [undefined, EVENT_NONE],
  ];
  for (const [event, number] of cases) {
    const [reason, r] = parse(announce({ event, offers: undefined, left: 0, uploaded: 7 }));
    assert.equal(reason, null);
    assert.equal(r.event, number);
    assert.equal(r.offerCount, 0);
    assert.equal(r.left, 0);
    assert.equal(r.uploaded, 7);
  }
  assert.equal(parse(announce({ left: undefined }))[1].left, -1);
  assert.equal(parse(announce({ numwant: undefined }))[1].numwant, -1);
});

Deno.test("an answer to an offer", () => {
  const [reason, r] = parse({
    action: "announce",
    info_hash: HASH,
    peer_id: PEER,
    to_peer_id: OTHER,
    answer: { type: "answer", sdp: "v=0 answer" },
    offer_id: OFFER_ID,
  });
  assert.equal(reason, null);
  assert.equal(r.kind, WT_ANSWER);
  assert.equal(binaryIdString(r.toPeerId), OTHER);
  assert.equal(binaryIdString(r.offerId), OFFER_ID);
  assert.equal(sdpText(r, r.answerSdpStart, r.answerSdpEnd), "v=0 answer");
  // `answer: null` is no answer: an ordinary announce.
  assert.equal(parse(announce({ answer: null }))[1].kind, WT_ANNOUNCE);
});

Deno.test("scrape of one hash and of a list of up to 64", () => {
  const [reason, r] = parse({ action: "scrape", info_hash: HASH });
  assert.equal(reason, null);
  assert.equal(r.kind, WT_SCRAPE);
  assert.equal(r.scrapeCount, 1);
  assert.deepEqual(r.scrapeHashes.subarray(0, 20), HASH_BYTES);
  const list = Array.from({ length: 64 }, (_, i) => String.fromCharCode(i + 0x80).repeat(20));
  const [reason64, r64] = parse({ action: "scrape", info_hash: list });
  assert.equal(reason64, null);
  assert.equal(r64.scrapeCount, 64);
  assert.equal(binaryIdString(r64.scrapeHashes, 63 * 20), list[63]);
  assert.deepEqual(
    parse({ action: "scrape", info_hash: [...list, HASH] })[0],
    "scrape of over 64 info_hash",
  );
});

Deno.test("each bad message gets its failure reason and the action and info_hash to reply with", () => {
  const bigOffer = { offer: { type: "offer", sdp: "s".repeat(MAX_SDP + 1) }, offer_id: OFFER_ID };
  const cases: [unknown, string, "announce" | "scrape", boolean][] = [
    ["not json", "message is not JSON", "announce", false],
    ["", "message is not JSON", "announce", false],
    ["[1,2]", "message is not a JSON object", "announce", false],
    ["null", "message is not a JSON object", "announce", false],
    ['"announce"', "message is not a JSON object", "announce", false],
    [{ info_hash: HASH }, "unknown action", "announce", false],
    [{ action: "connect", info_hash: HASH }, "unknown action", "announce", false],
    [announce({ info_hash: undefined }), "invalid info_hash", "announce", false],
    [announce({ info_hash: HASH.slice(1) }), "invalid info_hash", "announce", false],
    [announce({ info_hash: "\u0100" + HASH.slice(1) }), "invalid info_hash", "announce", false],
    [announce({ peer_id: 5 }), "invalid peer_id", "announce", true],
    [announce({ peer_id: PEER + "x" }), "invalid peer_id", "announce", true],
    [announce({ event: "paused" }), "invalid event", "announce", true],
    [announce({ event: "" }), "invalid event", "announce", true],
    [announce({ event: null }), "invalid event", "announce", true],
    [announce({ uploaded: "0" }), "invalid uploaded", "announce", true],
    [announce({ downloaded: -1 }), "invalid downloaded", "announce", true],
    [announce({ left: "10" }), "invalid left", "announce", true],
    [announce({ left: 2 ** 60 }), "invalid left", "announce", true],
    [announce({ numwant: [] }), "invalid numwant", "announce", true],
    [announce({ offers: {} }), "offers is not an array", "announce", true],
    [announce({ offers: [null] }), "an offer is not an object", "announce", true],
    [announce({ offers: [1] }), "an offer is not an object", "announce", true],
    [announce({ offers: [[]] }), "an offer is not an object", "announce", true],
    [
      announce({ offers: [{ offer: { type: "offer", sdp: "x" } }] }),
      "invalid offer_id",
      "announce",
      true,
    ],
    [announce({ offers: [{ offer_id: OFFER_ID }] }), "offer is not an object", "announce", true],
    [
      announce({ offers: [{ offer_id: OFFER_ID, offer: { type: "answer", sdp: "x" } }] }),
      'offer type is not "offer"',
      "announce",
      true,
    ],
    [
      announce({ offers: [{ offer_id: OFFER_ID, offer: { type: "offer", sdp: 5 } }] }),
      "offer sdp is not a string",
      "announce",
      true,
    ],
    [announce({ offers: [bigOffer] }), "offer sdp over 16384 characters", "announce", true],
    [
      announce({ answer: "x", to_peer_id: OTHER, offer_id: OFFER_ID }),
      "answer is not an object",
      "announce",
      true,
    ],
    [
      announce({ answer: { type: "offer", sdp: "x" }, to_peer_id: OTHER, offer_id: OFFER_ID }),
      'answer type is not "answer"',
      "announce",
      true,
    ],
    [
      announce({ answer: { type: "answer", sdp: "x" }, offer_id: OFFER_ID }),
      "invalid to_peer_id",
      "announce",
      true,
    ],
    [
      announce({ answer: { type: "answer", sdp: "x" }, to_peer_id: OTHER }),
      "invalid offer_id",
      "announce",
      true,
    ],
    [{ action: "scrape" }, "scrape needs info_hash", "scrape", false],
    [{ action: "scrape", info_hash: [] }, "scrape needs info_hash", "scrape", false],
    [{ action: "scrape", info_hash: [HASH, 5] }, "invalid info_hash", "scrape", false],
    [{ action: "scrape", info_hash: "short" }, "invalid info_hash", "scrape", false],
    ["x".repeat(65537), "message too long", "announce", false],
  ];
  for (const [message, expected, action, hasHash] of cases) {
    const [reason, r] = parse(message);
    const label = JSON.stringify(message).slice(0, 120);
    assert.equal(reason, expected, label);
    assert.equal(r.kind, 0, label);
    assert.equal(r.action, action, label);
    assert.equal(r.hasInfoHash, hasHash, label);
    if (hasHash) assert.deepEqual(r.infoHash, HASH_BYTES, label);
  }
});

Deno.test("read as JSON.parse reads it: escaped keys, a repeated key's last value, whitespace", () => {
  const hash = JSON.stringify(HASH);
  const [reason, r] = parse(
    ` { "act\\u0069on" : "scrape", "info_hash" : 5, "action":"announce", "info_hash":${hash},\n` +
      `\t"peer_id": ${JSON.stringify(PEER)}, "x": [[{"offers": 1}]], "offers": [ { "offer_id":` +
      ` "${
        "\\u00f0".repeat(20)
      }", "offer": {"sdp": 1, "type": "offer", "sdp": "v=0\\r\\n\\/é\\ud83d\\ude00"} } ] }\r\n`,
  );
  assert.equal(reason, null);
  assert.equal(r.kind, WT_ANNOUNCE);
  assert.deepEqual(r.infoHash, HASH_BYTES);
  assert.equal(binaryIdString(r.offerIds, 0), OFFER_ID);
  assert.equal(offerSdp(r, 0), "v=0\r\n/é\u{1F600}");
  // The SDP stays as sent (escapes and all): the frame that forwards it copies these bytes.
  assert.equal(
    new TextDecoder().decode(r.message.subarray(r.offerSdpStarts[0], r.offerSdpEnds[0])),
    '"v=0\\r\\n\\/é\\ud83d\\ude00"',
  );
});

Deno.test("1,000 offers: only the first 10 are read, the rest ignored unread", () => {
  const offers = Array.from(
    { length: 1000 },
    (_, i) =>
      i < 10
        ? { offer_id: String.fromCharCode(i).repeat(20), offer: { type: "offer", sdp: `s${i}` } }
        : null,
  );
  const [reason, r] = parse(announce({ offers }));
  assert.equal(reason, null);
  assert.equal(r.offerCount, 10);
  assert.equal(offerSdp(r, 9), "s9");
  assert.equal(binaryIdString(r.offerIds, 9 * 20), "\u0009".repeat(20));
  // A bad offer among the first ten refuses the whole announce.
  offers[9] = null;
  assert.equal(parse(announce({ offers }))[0], "an offer is not an object");
});

const decode = (bytes: Uint8Array) => new TextDecoder("utf-8", { fatal: true }).decode(bytes);

Deno.test("replies byte for byte, and what a client's JSON.parse reads from them", () => {
  const out = new Uint8Array(100_000);
  // The hash's bytes as JSON: \u0000 \n \" \\ DEL, then 0x80 0xff 0xe9 as 2-byte UTF-8.
  const hashJson = '"\\u0000\\n\\"\\\\\u007f\u0080\u00ffA\\u001f\u00e9aaaaaaaaaa"';
  let n = writeWtAnnounceReply(out, 0, HASH_BYTES, 3, 1, 120);
  assert.equal(
    decode(out.subarray(0, n)),
    `{"action":"announce","info_hash":${hashJson},"complete":3,"incomplete":1,"interval":120}`,
  );
  assert.deepEqual(
    out.subarray(0, n),
    new TextEncoder().encode(
      JSON.stringify({
        action: "announce",
        info_hash: HASH,
        complete: 3,
        incomplete: 1,
        interval: 120,
      }),
    ),
  );
  assert.ok(n <= WT_ANNOUNCE_REPLY_MAX);

  const peerBytes = new Uint8Array(20);
  readBinaryId(PEER, peerBytes, 0);
  const ids = new Uint8Array(40);
  readBinaryId(OFFER_ID, ids, 20);
  const sdpJson = new TextEncoder().encode(`xx${JSON.stringify(SAMPLE_SDP)}yy`);
  n = writeWtOffer(out, 0, HASH_BYTES, peerBytes, ids, 20, sdpJson, 2, sdpJson.length - 2);
  assert.deepEqual(JSON.parse(decode(out.subarray(0, n))), {
    action: "announce",
    info_hash: HASH,
    peer_id: PEER,
    offer_id: OFFER_ID,
    offer: { type: "offer", sdp: SAMPLE_SDP },
  });
  assert.ok(n <= wtSignalMaxLength(sdpJson.length - 4));
  const answerJson = new TextEncoder().encode('"v=0\\r\\n\u00e9\u{1F600}"');
  n = writeWtAnswer(
    out,
    0,
    HASH_BYTES,
    peerBytes,
    ids.subarray(20),
    answerJson,
    0,
    answerJson.length,
  );
  assert.equal(
    decode(out.subarray(0, n)),
    `{"action":"announce","info_hash":${hashJson},"peer_id":"${PEER}","offer_id":"${
      "\u00f0".repeat(20)
    }","answer":{"type":"answer","sdp":"v=0\\r\\n\u00e9\u{1F600}"}}`,
  );

  n = writeWtError(out, 0, "scrape", HASH_BYTES, 'invalid "x"');
  assert.equal(
    decode(out.subarray(0, n)),
    `{"action":"scrape","info_hash":${hashJson},"failure reason":"invalid \\"x\\""}`,
  );
  n = writeWtError(out, 0, "announce", null, "message is not JSON");
  assert.equal(
    decode(out.subarray(0, n)),
    '{"action":"announce","failure reason":"message is not JSON"}',
  );
  assert.ok(n <= wtErrorMaxLength(19));
});

Deno.test("scrape reply: files by binary hash, BEP 15 count order in, repeats written once", () => {
  const out = new Uint8Array(wtScrapeReplyMaxLength(3));
  const hashes = new Uint8Array(60);
  hashes.set(HASH_BYTES, 0);
  hashes.fill(0x62, 20, 40);
  hashes.set(HASH_BYTES, 40);
  // complete, downloaded, incomplete per hash
  const n = writeWtScrapeReply(out, 0, hashes, 3, [5, 9, 2, 0, 0, 0, 5, 9, 2], 120);
  const reply = JSON.parse(decode(out.subarray(0, n)));
  assert.deepEqual(reply, {
    action: "scrape",
    files: {
      [HASH]: { complete: 5, incomplete: 2, downloaded: 9 },
      ["b".repeat(20)]: { complete: 0, incomplete: 0, downloaded: 0 },
    },
    flags: { min_request_interval: 120 },
  });
  assert.equal(
    decode(out.subarray(0, n)).split(HASH.slice(-10)).length,
    2,
    "the repeat written once",
  );
  assert.throws(() => writeWtScrapeReply(new Uint8Array(100), 0, hashes, 3, [], 1), RangeError);
});

const SEED = fuzzSeed(0x5eed_77e1);

Deno.test(`fuzz: writeJsonString and writeBinaryId equal JSON.stringify's UTF-8 (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const out = new Uint8Array(2000);
  const encoder = new TextEncoder();
  fuzzLoop(2000, 30_000, (i) => {
    let text = "";
    // Up to 40 characters through the loop, longer ones (SDPs) through JSON.stringify.
    for (let k = rng.int(rng.chance(0.5) ? 40 : 300); k > 0; k--) text += oddChar(rng);
    const n = writeJsonString(out, 0, text);
    assert.ok(n <= 2 + 6 * text.length, "within the bound callers reserve");
    const expected = encoder.encode(JSON.stringify(text));
    if (JSON.stringify([...out.subarray(0, n)]) !== JSON.stringify([...expected])) {
      assert.fail(`input ${i}: ${JSON.stringify(text)}`);
    }
    const id = rng.bytes(20);
    const m = writeBinaryId(out, 0, id);
    assert.deepEqual(out.subarray(0, m), encoder.encode(JSON.stringify(binaryIdString(id))));
    assert.equal(JSON.parse(decode(out.subarray(0, m))), binaryIdString(id));
  });
});

Deno.test(`fuzz: the parser follows the rules' oracle on mutated messages (seed ${SEED})`, () => {
  // At least 2000 inputs however busy the machine (it then takes longer), more on a fast one.
  const { inputs, kinds, failure } = fuzzWtMessages(new Rng(SEED ^ 0x1111), 4000, 30_000, 2000);
  if (failure !== null) assert.fail(failure);
  // Every kind must be reached, refusals most of all.
  for (const kind of ["fail", "announce", "answer", "scrape"]) {
    assert.ok((kinds.get(kind) ?? 0) > inputs / 50, `${kind}: ${kinds.get(kind)} of ${inputs}`);
  }
});
