import assert from "node:assert/strict";
import {
  failureLength,
  maxAnnounceReplyLength,
  maxScrapeReplyLength,
  writeAnnounceReply,
  writeDecimal,
  writeFailure,
  writeScrapeEnd,
  writeScrapeFile,
  writeScrapeReply,
  writeScrapeStart,
} from "../src/protocol/httpReply.ts";
import { bytes, decodeBencode, latin1 } from "./protocol_bencode.ts";

function cat(...parts: (string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? bytes(p) : p);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function written(out: Uint8Array, n: number): Uint8Array {
  return out.slice(0, n);
}

const V4_PEERS = new Uint8Array([10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0xc8, 0xd5]);
// 2001:db8::1 port 6881
const V6_PEER = new Uint8Array(18);
V6_PEER.set([0x20, 0x01, 0x0d, 0xb8]);
V6_PEER.set([1, 0x1a, 0xe1], 15);

Deno.test("announce reply, IPv4, two peers", () => {
  const out = new Uint8Array(maxAnnounceReplyLength(12));
  const n = writeAnnounceReply(out, 5, 7, 3, 1800, 900, 4, V4_PEERS, 12, null, 0, 0);
  assert.deepEqual(
    written(out, n),
    cat(
      "d8:completei5e10:downloadedi7e10:incompletei3e8:intervali1800e12:min intervali900e",
      "5:peers12:",
      V4_PEERS,
      "e",
    ),
  );
  const d = decodeBencode(written(out, n)) as Map<string, unknown>;
  assert.deepEqual([...d.keys()], [
    "complete",
    "downloaded",
    "incomplete",
    "interval",
    "min interval",
    "peers",
  ]);
});

Deno.test("announce reply, IPv6, one peer: empty peers then peers6", () => {
  const out = new Uint8Array(maxAnnounceReplyLength(18));
  const n = writeAnnounceReply(out, 0, 0, 1, 60, 30, 6, V6_PEER, 18, null, 0, 0);
  assert.deepEqual(
    written(out, n),
    cat(
      "d8:completei0e10:downloadedi0e10:incompletei1e8:intervali60e12:min intervali30e",
      "5:peers0:6:peers618:",
      V6_PEER,
      "e",
    ),
  );
  decodeBencode(written(out, n));
});

Deno.test("announce reply, empty peer lists", () => {
  const out = new Uint8Array(maxAnnounceReplyLength(0));
  let n = writeAnnounceReply(out, 0, 0, 0, 1800, 900, 4, new Uint8Array(0), 0, null, 0, 0);
  assert.equal(
    latin1(written(out, n)),
    "d8:completei0e10:downloadedi0e10:incompletei0e8:intervali1800e12:min intervali900e5:peers0:e",
  );
  n = writeAnnounceReply(out, 0, 0, 0, 1800, 900, 6, new Uint8Array(0), 0, null, 0, 0);
  assert.equal(
    latin1(written(out, n)),
    "d8:completei0e10:downloadedi0e10:incompletei0e8:intervali1800e12:min intervali900e" +
      "5:peers0:6:peers60:e",
  );
});

Deno.test("announce reply with BEP 24 external ip (IPv4 and IPv6, at an offset)", () => {
  const out = new Uint8Array(maxAnnounceReplyLength(6));
  const ip4 = new Uint8Array([9, 9, 127, 0, 0, 1]);
  let n = writeAnnounceReply(out, 1, 2, 3, 4, 5, 4, V4_PEERS, 6, ip4, 2, 4);
  assert.deepEqual(
    written(out, n),
    cat(
      "d8:completei1e10:downloadedi2e11:external ip4:",
      new Uint8Array([127, 0, 0, 1]),
      "10:incompletei3e8:intervali4e12:min intervali5e5:peers6:",
      V4_PEERS.subarray(0, 6),
      "e",
    ),
  );
  const d = decodeBencode(written(out, n)) as Map<string, unknown>;
  assert.deepEqual([...d.keys()].slice(0, 4), [
    "complete",
    "downloaded",
    "external ip",
    "incomplete",
  ]);

  const out6 = new Uint8Array(maxAnnounceReplyLength(18));
  n = writeAnnounceReply(out6, 1, 2, 3, 4, 5, 6, V6_PEER, 18, V6_PEER, 0, 16);
  assert.deepEqual(
    written(out6, n),
    cat(
      "d8:completei1e10:downloadedi2e11:external ip16:",
      V6_PEER.subarray(0, 16),
      "10:incompletei3e8:intervali4e12:min intervali5e5:peers0:6:peers618:",
      V6_PEER,
      "e",
    ),
  );
  decodeBencode(written(out6, n));
  // A length other than 4 or 16 omits the key.
  n = writeAnnounceReply(out6, 1, 2, 3, 4, 5, 4, V4_PEERS, 0, V6_PEER, 0, 0);
  assert.equal(
    latin1(written(out6, n)),
    "d8:completei1e10:downloadedi2e10:incompletei3e8:intervali4e12:min intervali5e5:peers0:e",
  );
});

Deno.test("announce reply: large counts and a too-small buffer", () => {
  const out = new Uint8Array(maxAnnounceReplyLength(0));
  const n = writeAnnounceReply(
    out,
    4294967295,
    Number.MAX_SAFE_INTEGER,
    1000000,
    10,
    99,
    4,
    V4_PEERS,
    0,
    null,
    0,
    0,
  );
  const d = decodeBencode(written(out, n)) as Map<string, number>;
  assert.equal(d.get("complete"), 4294967295);
  assert.equal(d.get("downloaded"), Number.MAX_SAFE_INTEGER);
  assert.equal(d.get("incomplete"), 1000000);
  assert.throws(
    () => writeAnnounceReply(new Uint8Array(50), 0, 0, 0, 0, 0, 4, V4_PEERS, 12, null, 0, 0),
    RangeError,
  );
});

Deno.test("writeDecimal: digit loop edge cases", () => {
  const out = new Uint8Array(32);
  const dec = (v: number) => latin1(out.subarray(0, writeDecimal(out, 0, v)));
  for (const v of [0, 1, 9, 10, 11, 99, 100, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32]) {
    assert.equal(dec(v), String(v));
  }
  assert.equal(dec(Number.MAX_SAFE_INTEGER), "9007199254740991");
  assert.equal(dec(1e300), "9007199254740991");
  assert.equal(dec(-42), "-42");
  assert.equal(dec(7.9), "7");
  assert.equal(dec(12.5), "12");
  assert.equal(dec(NaN), "0");
  assert.equal(dec(Infinity), "0");
  assert.equal(writeDecimal(out, 5, 123), 8);
  assert.equal(latin1(out.subarray(5, 8)), "123");
});

Deno.test("failure reply", () => {
  const out = new Uint8Array(256);
  let n = writeFailure(out, "missing info_hash");
  assert.equal(latin1(written(out, n)), "d14:failure reason17:missing info_hashe");
  assert.equal(failureLength("missing info_hash"), n);
  n = writeFailure(out, "");
  assert.equal(latin1(written(out, n)), "d14:failure reason0:e");
  // Non-ASCII reasons are UTF-8 and the length prefix counts bytes.
  const reason = "caf\u00e9 \u20ac \u{1f600}";
  n = writeFailure(out, reason);
  assert.deepEqual(
    written(out, n),
    cat(
      "d14:failure reason",
      `${new TextEncoder().encode(reason).length}:`,
      new TextEncoder().encode(reason),
      "e",
    ),
  );
  assert.equal(failureLength(reason), n);
  n = writeFailure(out, "a\ud800b");
  assert.deepEqual(
    written(out, n),
    cat("d14:failure reason5:", new TextEncoder().encode("a\ud800b"), "e"),
  );
  const long = "x".repeat(1234);
  const big = new Uint8Array(failureLength(long) + 20);
  n = writeFailure(big, long);
  assert.equal(latin1(written(big, n)), `d14:failure reason1234:${long}e`);
  assert.throws(() => writeFailure(new Uint8Array(30), long), RangeError);
});

function hashOf(fill: number, last = fill): Uint8Array {
  const h = new Uint8Array(20).fill(fill);
  h[19] = last;
  return h;
}

function entry(hash: Uint8Array, c: number, d: number, i: number): Uint8Array {
  return cat("20:", hash, `d8:completei${c}e10:downloadedi${d}e10:incompletei${i}ee`);
}

Deno.test("scrape reply: sorted by raw bytes, repeats once, unknown torrents as zeros", () => {
  const hs = [hashOf(0xff), hashOf(0x00, 2), hashOf(0x80), hashOf(0x00, 2), hashOf(0x00, 1)];
  const hashes = cat(...hs);
  // deno-fmt-ignore
  const counts = new Uint32Array([
    1, 2, 3, // ff..ff
    4, 5, 6, // 00..02
    0, 0, 0, // 80..80: unknown torrent
    4, 5, 6, // 00..02 again
    7, 8, 9, // 00..01
  ]);
  const out = new Uint8Array(maxScrapeReplyLength(5));
  const n = writeScrapeReply(out, hashes, 5, counts);
  assert.deepEqual(
    written(out, n),
    cat(
      "d5:filesd",
      entry(hs[4], 7, 8, 9),
      entry(hs[1], 4, 5, 6),
      entry(hs[2], 0, 0, 0),
      entry(hs[0], 1, 2, 3),
      "ee",
    ),
  );
  const d = decodeBencode(written(out, n)) as Map<string, Map<string, unknown>>;
  assert.equal(d.get("files")!.size, 4);
});

Deno.test("scrape reply: none, one, 64 and the bounds", () => {
  const out = new Uint8Array(maxScrapeReplyLength(64));
  assert.equal(
    latin1(written(out, writeScrapeReply(out, new Uint8Array(0), 0, new Uint32Array(0)))),
    "d5:filesdee",
  );
  const one = hashOf(0x41);
  let n = writeScrapeReply(out, one, 1, new Uint32Array([10, 20, 30]));
  assert.deepEqual(written(out, n), cat("d5:filesd", entry(one, 10, 20, 30), "ee"));

  // 64 distinct hashes given in descending order, with the largest counts: fits the bound.
  const hashes = new Uint8Array(64 * 20);
  for (let i = 0; i < 64; i++) hashes.set(hashOf(0x7f, 63 - i), i * 20);
  const counts = new Uint32Array(64 * 3).fill(0xffffffff);
  n = writeScrapeReply(out, hashes, 64, counts);
  assert.ok(n <= maxScrapeReplyLength(64));
  const files = (decodeBencode(written(out, n)) as Map<string, Map<string, unknown>>).get("files")!;
  assert.equal(files.size, 64);
  const keys = [...files.keys()];
  assert.deepEqual(keys, [...keys].sort());
  assert.throws(
    () =>
      writeScrapeReply(new Uint8Array(100000), new Uint8Array(65 * 20), 65, new Uint32Array(195)),
    RangeError,
  );
  assert.throws(() => writeScrapeReply(new Uint8Array(20), one, 1, new Uint32Array(3)), RangeError);
});

Deno.test("scrape reply: streaming writer for a full scrape", () => {
  const out = new Uint8Array(maxScrapeReplyLength(2) + 5);
  const h = cat(hashOf(1), hashOf(2));
  let o = writeScrapeStart(out, 5);
  o = writeScrapeFile(out, o, h, 0, 1, 2, 3);
  o = writeScrapeFile(out, o, h, 20, 4, 5, 6);
  o = writeScrapeEnd(out, o);
  assert.deepEqual(
    out.slice(5, o),
    cat("d5:filesd", entry(hashOf(1), 1, 2, 3), entry(hashOf(2), 4, 5, 6), "ee"),
  );
});
