/**
 * Randomised checks of the protocol layer: hostile input never throws, valid input round-trips,
 * replies are always canonical bencode. Deterministic by default; set OTTER_FUZZ_SEED to explore.
 * Every loop is bounded by an iteration count and a wall-clock deadline.
 */
import assert from "node:assert/strict";
import { AnnounceQuery, parseAnnounceQuery, parseScrapeQuery } from "../src/protocol/httpQuery.ts";
import {
  maxAnnounceReplyLength,
  maxScrapeReplyLength,
  writeAnnounceReply,
  writeFailure,
  writeScrapeReply,
} from "../src/protocol/httpReply.ts";
import {
  AnnounceFields,
  classifyPacket,
  readAnnounce,
  readAnnounceFields,
  scrapeHashCount,
  UdpAnnounce,
  writeError,
} from "../src/protocol/udpPacket.ts";
import { ConnectionIds } from "../src/protocol/connectionId.ts";
import { decodeBencode, latin1 } from "./protocol_bencode.ts";

const SEED = Number(Deno.env.get("OTTER_FUZZ_SEED") ?? 0x5eed1234) >>> 0 || 1;
const TIME_LIMIT_MS = 4000;

function rng(seed: number) {
  let s = seed;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  return {
    int: (n: number) => next() % n,
    pick: <T>(xs: readonly T[]): T => xs[next() % xs.length],
    bytes: (n: number) => Uint8Array.from({ length: n }, () => next() & 0xff),
  };
}

function loop(iterations: number, body: (i: number) => void): void {
  const deadline = performance.now() + TIME_LIMIT_MS;
  for (let i = 0; i < iterations && performance.now() < deadline; i++) body(i);
}

const PIECES = [
  "info_hash",
  "peer_id",
  "port",
  "uploaded",
  "downloaded",
  "left",
  "event",
  "numwant",
  "compact",
  "key",
  "ip",
  "=",
  "=",
  "&",
  "&",
  "%",
  "%4",
  "%41",
  "%ff",
  "%FF",
  "%G1",
  "+",
  "0",
  "1",
  "9",
  "65535",
  "started",
  "stopped",
  "a",
  "Z",
  "\u00e9",
  "\x00",
  "\x7f",
  "\u{1f600}",
  "\ud800",
  "%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00",
  "aaaaaaaaaaaaaaaaaaaa",
];

Deno.test(`fuzz: random query strings never throw (seed ${SEED})`, () => {
  const r = rng(SEED);
  const q = new AnnounceQuery();
  const scrape = new Uint8Array(64 * 20);
  loop(50000, () => {
    let s = "";
    const parts = r.int(40);
    for (let k = 0; k < parts; k++) {
      s += r.int(4) === 0 ? String.fromCharCode(r.int(0x110)) : r.pick(PIECES);
    }
    const result = parseAnnounceQuery(s, q);
    assert.ok(result === null || typeof result === "string", s);
    if (result === null) {
      assert.ok(q.port >= 1 && q.port <= 65535, s);
      assert.ok(q.hasPeerId);
      assert.ok(q.event >= 0 && q.event <= 3);
    }
    const count = parseScrapeQuery(s, scrape);
    assert.ok(typeof count === "string" || (count >= 0 && count <= 64), s);
  });
});

function encodeBytes(r: ReturnType<typeof rng>, bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) {
    const safe = (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a) ||
      b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    if (b === 0x20 && r.int(2) === 0) s += "+";
    else if (safe && r.int(2) === 0) s += String.fromCharCode(b);
    else {
      const h = b.toString(16).padStart(2, "0");
      s += "%" + (r.int(2) ? h.toUpperCase() : h);
    }
  }
  return s;
}

Deno.test(`fuzz: valid announces round-trip exactly (seed ${SEED})`, () => {
  const r = rng(SEED ^ 0x9e3779b9);
  const q = new AnnounceQuery();
  const events = ["", "started", "completed", "stopped", "paused"];
  const eventNumbers = [0, 2, 1, 3, 0];
  loop(20000, () => {
    const hash = r.bytes(20), peer = r.bytes(20);
    const port = 1 + r.int(65535);
    const up = r.int(2 ** 31), down = r.int(2 ** 31), left = r.int(3) === 0 ? 0 : r.int(2 ** 31);
    const e = r.int(events.length);
    const numwant = r.int(500);
    const params = [
      `info_hash=${encodeBytes(r, hash)}`,
      `peer_id=${encodeBytes(r, peer)}`,
      `port=${port}`,
      `uploaded=${up}`,
      `downloaded=${down}`,
      `left=${left}`,
      `event=${events[e]}`,
      `numwant=${numwant}`,
      `compact=1`,
      `key=${encodeBytes(r, r.bytes(r.int(30)))}`,
      `supportcrypto=1`,
    ];
    for (let i = params.length - 1; i > 0; i--) { // shuffle
      const j = r.int(i + 1);
      [params[i], params[j]] = [params[j], params[i]];
    }
    const s = params.join("&");
    assert.equal(parseAnnounceQuery(s, q), null, s);
    assert.deepEqual(q.infoHash, hash, s);
    assert.deepEqual(q.peerId, peer, s);
    assert.equal(q.port, port);
    assert.equal(q.uploaded, up);
    assert.equal(q.downloaded, down);
    assert.equal(q.left, left);
    assert.equal(q.leftIsZero, left === 0);
    assert.equal(q.event, eventNumbers[e]);
    assert.equal(q.numwant, numwant);
  });
});

Deno.test(`fuzz: random datagrams never throw (seed ${SEED})`, () => {
  const r = rng(SEED ^ 0x12345);
  const a = new UdpAnnounce();
  const ids = new ConnectionIds(new Uint32Array([1, 2]));
  const out = new Uint8Array(2048);
  loop(50000, () => {
    const packet = r.bytes(r.int(200));
    if (packet.length >= 12 && r.int(2) === 0) packet[8] = packet[9] = packet[10] = 0;
    const length = r.int(packet.length + 1);
    const action = classifyPacket(packet, length);
    assert.ok(action >= -1 && action <= 3);
    const reason = readAnnounce(packet, length, a);
    assert.ok(reason === null || typeof reason === "string");
    if (reason === null) assert.ok(length >= 98 && a.port > 0 && a.event <= 3);
    const count = scrapeHashCount(length);
    assert.ok(typeof count === "string" || (count >= 1 && count <= 74));
    assert.equal(
      typeof ids.check(r.int(2 ** 32), 4, packet, 0, packet, 0),
      "boolean",
    );
    if (reason !== null) {
      assert.ok(writeError(out, a.transactionId, reason, length) <= Math.max(8, length));
    }
  });
});

Deno.test(`fuzz: readAnnounceFields agrees with readAnnounce (seed ${SEED})`, () => {
  const r = rng(SEED ^ 0x77aa);
  const full = new UdpAnnounce();
  const lean = new AnnounceFields();
  loop(50000, () => {
    const packet = r.bytes(16 + r.int(100));
    // Mostly zero event and numwant bytes, so valid announces are common too.
    for (let i = 80; i < packet.length && i < 98; i++) if (r.int(3) !== 0) packet[i] = 0;
    if (packet.length >= 98 && r.int(2) === 0) packet[83] = r.int(5);
    if (packet.length >= 72 && r.int(2) === 0) packet.fill(0, 64, 72 - r.int(2));
    const length = 16 + r.int(packet.length - 15);
    const reason = readAnnounce(packet, length, full);
    assert.equal(readAnnounceFields(packet, length, lean), reason);
    assert.equal(lean.transactionId >>> 0, full.transactionId);
    if (reason !== null) return;
    assert.equal(lean.leftIsZero, full.leftIsZero);
    assert.equal(lean.event, full.event);
    assert.equal(lean.numwant, full.numwant);
    assert.equal(lean.port, full.port);
  });
});

Deno.test(`fuzz: announce replies are canonical bencode (seed ${SEED})`, () => {
  const r = rng(SEED ^ 0xabcdef);
  const out = new Uint8Array(maxAnnounceReplyLength(50 * 18));
  const ip = r.bytes(16);
  loop(5000, () => {
    const family = r.int(2) ? 4 : 6;
    const entry = family === 4 ? 6 : 18;
    const peers = r.bytes(entry * r.int(51));
    const used = entry * r.int(peers.length / entry + 1);
    const ipLength = r.pick([0, 4, 16]);
    const nums = [0, 1, 2, 3, 4].map(() => r.pick([0, r.int(10), r.int(2 ** 32), 2 ** 32 - 1]));
    const n = writeAnnounceReply(
      out,
      nums[0],
      nums[1],
      nums[2],
      nums[3],
      nums[4],
      family,
      peers,
      used,
      ipLength ? ip : null,
      0,
      ipLength,
    );
    const d = decodeBencode(out.subarray(0, n)) as Map<string, unknown>;
    assert.equal(d.get("complete"), nums[0]);
    assert.equal(d.get("incomplete"), nums[2]);
    assert.deepEqual(d.get(family === 4 ? "peers" : "peers6"), peers.subarray(0, used));
    assert.equal(d.has("external ip"), ipLength !== 0);
  });
});

Deno.test(`fuzz: scrape replies sort and de-duplicate like a reference (seed ${SEED})`, () => {
  const r = rng(SEED ^ 0x777);
  const out = new Uint8Array(maxScrapeReplyLength(64));
  loop(3000, () => {
    const count = r.int(65);
    const hashes = new Uint8Array(count * 20);
    const counts = new Uint32Array(count * 3);
    const expected = new Map<string, number[]>();
    for (let i = 0; i < count; i++) {
      // Few distinct first bytes and frequent repeats, to exercise ties deep into the hash.
      if (i > 0 && r.int(4) === 0) {
        const j = r.int(i);
        hashes.copyWithin(i * 20, j * 20, j * 20 + 20);
      } else {
        for (let b = 0; b < 20; b++) hashes[i * 20 + b] = r.int(3);
      }
      const key = latin1(hashes.subarray(i * 20, i * 20 + 20));
      const c = expected.get(key) ?? [r.int(1000), r.int(1000), r.int(1000)];
      expected.set(key, c);
      counts.set(c, i * 3);
    }
    const n = writeScrapeReply(out, hashes, count, counts);
    const files =
      (decodeBencode(out.subarray(0, n)) as Map<string, Map<string, Map<string, number>>>)
        .get("files")!;
    assert.deepEqual([...files.keys()], [...expected.keys()].sort());
    for (const [k, [c, d, i]] of expected) {
      const f = files.get(k)!;
      assert.deepEqual([f.get("complete"), f.get("downloaded"), f.get("incomplete")], [c, d, i]);
    }
  });
});

Deno.test(`fuzz: failure reasons survive UTF-8 encoding (seed ${SEED})`, () => {
  const r = rng(SEED ^ 0x4242);
  const out = new Uint8Array(4096);
  loop(5000, () => {
    let reason = "";
    for (let k = r.int(60); k > 0; k--) reason += String.fromCharCode(r.int(0x10000));
    const n = writeFailure(out, reason);
    const d = decodeBencode(out.subarray(0, n)) as Map<string, Uint8Array>;
    const expected = new TextEncoder().encode(reason);
    assert.deepEqual(d.get("failure reason"), expected);
  });
});
