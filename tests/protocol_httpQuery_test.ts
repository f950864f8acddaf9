import assert from "node:assert/strict";
import {
  AnnounceQuery,
  MAX_NUMWANT,
  parseAnnounceQuery,
  parseScrapeQuery,
} from "../src/protocol/httpQuery.ts";
import {
  EVENT_COMPLETED,
  EVENT_NONE,
  EVENT_STARTED,
  EVENT_STOPPED,
} from "../src/protocol/events.ts";

/** Percent-encodes every byte (upper-case hex unless told otherwise). */
function pct(bytes: Uint8Array, lower = false): string {
  let s = "";
  for (const b of bytes) {
    const h = b.toString(16).padStart(2, "0");
    s += "%" + (lower ? h : h.toUpperCase());
  }
  return s;
}

function seq(start: number, n = 20): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}

const HASH = seq(0xe0); // e0..f3: binary, must be escaped
const HASH_Q = pct(HASH);
const PEER = new TextEncoder().encode("-TR2940-abcdefghijkl");
const PEER_Q = "-TR2940-abcdefghijkl";

function base(extra = ""): string {
  return `info_hash=${HASH_Q}&peer_id=${PEER_Q}&port=6881${extra}`;
}

function parse(query: string): [string | null, AnnounceQuery] {
  const q = new AnnounceQuery();
  return [parseAnnounceQuery(query, q), q];
}

function failure(query: string): string | null {
  return parse(query)[0];
}

Deno.test("announce: full query with every known and some ignored parameters", () => {
  const [err, q] = parse(
    `info_hash=${HASH_Q}&peer_id=${PEER_Q}&port=51413&uploaded=123&downloaded=4567&left=89` +
      `&event=started&numwant=80&compact=1&key=a1B2&no_peer_id=1&supportcrypto=1&ip=1.2.3.4` +
      `&ipv6=%3A%3A1&corrupt=0&trackerid=x&unknown`,
  );
  assert.equal(err, null);
  assert.deepEqual(q.infoHash, HASH);
  assert.deepEqual(q.peerId, PEER);
  assert.equal(q.hasPeerId, true);
  assert.equal(q.port, 51413);
  assert.equal(q.uploaded, 123);
  assert.equal(q.downloaded, 4567);
  assert.equal(q.left, 89);
  assert.equal(q.leftIsZero, false);
  assert.equal(q.event, EVENT_STARTED);
  assert.equal(q.numwant, 80);
  assert.equal(q.compact, 1);
});

Deno.test("announce: defaults, and every field is reset when the object is reused", () => {
  const q = new AnnounceQuery();
  assert.equal(parseAnnounceQuery(base("&left=0&event=stopped&numwant=5&uploaded=9"), q), null);
  assert.equal(q.leftIsZero, true);
  assert.equal(q.event, EVENT_STOPPED);
  assert.equal(parseAnnounceQuery(base(), q), null);
  assert.equal(q.port, 6881);
  assert.equal(q.uploaded, 0);
  assert.equal(q.downloaded, 0);
  assert.equal(q.left, 0);
  assert.equal(q.leftIsZero, false, "missing left is a leecher");
  assert.equal(q.event, EVENT_NONE);
  assert.equal(q.numwant, -1);
  assert.equal(q.compact, 1);
  assert.equal(parseAnnounceQuery("port=1", q), "missing info_hash");
  assert.equal(q.hasPeerId, false);
});

Deno.test("announce: parameter order does not matter; empty segments are skipped", () => {
  const [err, q] = parse(`&&port=1&&peer_id=${PEER_Q}&info_hash=${HASH_Q}&`);
  assert.equal(err, null);
  assert.equal(q.port, 1);
  assert.deepEqual(q.infoHash, HASH);
});

Deno.test("percent-decoding: %00, %FF, mixed case, '+', raw safe chars", () => {
  const bytes = new Uint8Array(20);
  bytes[0] = 0x00;
  bytes[1] = 0xff;
  bytes[2] = 0xab;
  bytes[3] = 0xcd;
  bytes[4] = 0x20; // from '+'
  bytes.set(new TextEncoder().encode("AZaz09-._~!*'()"), 5);
  const query = `info_hash=%00%ff%aB%Cd+AZaz09-._~!*'()&peer_id=${PEER_Q}&port=1`;
  const [err, q] = parse(query);
  assert.equal(err, null);
  assert.deepEqual(q.infoHash, bytes);
  const [err2, q2] = parse(`info_hash=${pct(HASH, true)}&peer_id=${pct(PEER)}&port=1`);
  assert.equal(err2, null);
  assert.deepEqual(q2.infoHash, HASH);
  assert.deepEqual(q2.peerId, PEER);
  // An escaped '+' is a plus, an escaped '&' or '=' is data, not a separator.
  const h = new Uint8Array(20).fill(0x41);
  h[0] = 0x2b;
  h[1] = 0x26;
  h[2] = 0x3d;
  const [err3, q3] = parse(`info_hash=%2B%26%3D${"A".repeat(17)}&peer_id=${PEER_Q}&port=1`);
  assert.equal(err3, null);
  assert.deepEqual(q3.infoHash, h);
});

Deno.test("percent-decoding: malformed escapes fail", () => {
  const tail = `&peer_id=${PEER_Q}&port=1`;
  for (
    const bad of [
      `info_hash=${pct(seq(0, 19))}%4`, // truncated at the end of the query
      `info_hash=${pct(seq(0, 19))}%4${tail}`, // truncated before '&'
      `info_hash=${pct(seq(0, 19))}%`,
      `info_hash=%GG${pct(seq(0, 19))}${tail}`,
      `info_hash=%4G${pct(seq(0, 19))}${tail}`,
      `info_hash=%%41${pct(seq(0, 18))}${tail}`,
    ]
  ) {
    assert.equal(failure(bad), "invalid percent-encoding", bad);
  }
  // Values of ignored and unknown parameters are checked too.
  assert.equal(failure(base("&key=%zz")), "invalid percent-encoding");
  assert.equal(failure(base("&whatever=%1")), "invalid percent-encoding");
  assert.equal(failure(base("&ip=%")), "invalid percent-encoding");
});

Deno.test("raw characters outside printable ASCII are an error", () => {
  const raw = String.fromCharCode(...seq(0xe0)); // binary sent unescaped, as Latin-1
  assert.equal(failure(`info_hash=${raw}&peer_id=${PEER_Q}&port=1`), "invalid character in query");
  assert.equal(failure(base("&key=caf\u00e9")), "invalid character in query");
  assert.equal(failure(base("&k\u00e9y=1")), "invalid character in query");
  assert.equal(failure(base("&key=a\x01")), "invalid character in query");
  assert.equal(failure(base("&key=a\x7f")), "invalid character in query");
  assert.equal(failure(base("&key=\u{1f600}")), "invalid character in query");
});

Deno.test("info_hash and peer_id: presence, length, duplicates", () => {
  const p = `&peer_id=${PEER_Q}&port=1`;
  assert.equal(failure(""), "missing info_hash");
  assert.equal(failure("&&"), "missing info_hash");
  assert.equal(failure(`peer_id=${PEER_Q}&port=1`), "missing info_hash");
  assert.equal(failure(`info_hash=${HASH_Q}&port=1`), "missing peer_id");
  assert.equal(failure(`info_hash=${HASH_Q}&peer_id=${PEER_Q}`), "missing port");
  assert.equal(failure(`info_hash=${pct(seq(0, 19))}${p}`), "info_hash must be 20 bytes");
  assert.equal(failure(`info_hash=${pct(seq(0, 21))}${p}`), "info_hash must be 20 bytes");
  assert.equal(failure(`info_hash=${"a".repeat(200)}${p}`), "info_hash must be 20 bytes");
  assert.equal(failure(`info_hash=${p}`), "info_hash must be 20 bytes");
  assert.equal(failure(`info_hash${p}`), "info_hash must be 20 bytes");
  assert.equal(failure(`info_hash=${HASH_Q}&info_hash=${HASH_Q}${p}`), "duplicate info_hash");
  assert.equal(failure(base(`&peer_id=${PEER_Q}`)), "duplicate peer_id");
  assert.equal(failure(`info_hash=${HASH_Q}&peer_id=abc&port=1`), "peer_id must be 20 bytes");
  // Escaped parameter names are unknown names, so the hash counts as missing.
  assert.equal(failure(`info%5Fhash=${HASH_Q}&peer_id=${PEER_Q}&port=1`), "missing info_hash");
  // Names are case-sensitive.
  assert.equal(failure(`INFO_HASH=${HASH_Q}&peer_id=${PEER_Q}&port=1`), "missing info_hash");
});

Deno.test("port: 1..65535 decimal", () => {
  const at = (v: string) => parse(`info_hash=${HASH_Q}&peer_id=${PEER_Q}&port=${v}`);
  assert.equal(at("1")[1].port, 1);
  assert.equal(at("65535")[1].port, 65535);
  assert.equal(at("00080")[1].port, 80);
  assert.equal(at("%36%38%38%31")[1].port, 6881);
  for (
    const bad of ["0", "65536", "99999", "000080", "", "-1", "+1", "1.0", "0x50", "abc", "8 0"]
  ) {
    assert.equal(at(bad)[0], "invalid port", bad);
  }
  assert.equal(failure(`info_hash=${HASH_Q}&peer_id=${PEER_Q}&port`), "invalid port");
});

Deno.test("uploaded, downloaded, left: non-negative, at most 20 digits", () => {
  const [err, q] = parse(
    base("&uploaded=99999999999999999999&downloaded=18446744073709551615&left=9007199254740993"),
  );
  assert.equal(err, null);
  // Above 2^53 a Number cannot be exact; the parse stays within a few units in the last place.
  assert.ok(Math.abs(q.uploaded - 1e20) / 1e20 < 1e-14, String(q.uploaded));
  assert.ok(Math.abs(q.downloaded - 2 ** 64) / 2 ** 64 < 1e-14, String(q.downloaded));
  assert.equal(q.left, 9007199254740992);
  assert.equal(parse(base("&uploaded=9007199254740991"))[1].uploaded, Number.MAX_SAFE_INTEGER);
  assert.equal(q.leftIsZero, false);
  assert.equal(parse(base("&left=000"))[1].leftIsZero, true);
  assert.equal(parse(base("&left=0"))[1].leftIsZero, true);
  assert.equal(parse(base("&left=1"))[1].leftIsZero, false);
  assert.equal(failure(base("&uploaded=123456789012345678901")), "invalid uploaded");
  assert.equal(failure(base("&downloaded=-5")), "invalid downloaded");
  assert.equal(failure(base("&left=")), "invalid left");
  assert.equal(failure(base("&left=1e3")), "invalid left");
  assert.equal(failure(base("&uploaded")), "invalid uploaded");
});

Deno.test("event: BEP 15 numbering; paused, empty and blank mean none", () => {
  const ev = (v: string) => parse(base(`&event=${v}`));
  assert.equal(ev("started")[1].event, EVENT_STARTED);
  assert.equal(ev("completed")[1].event, EVENT_COMPLETED);
  assert.equal(ev("stopped")[1].event, EVENT_STOPPED);
  assert.equal(ev("sto%70ped")[1].event, EVENT_STOPPED);
  for (const none of ["", "paused", "empty"]) {
    const [err, q] = ev(none);
    assert.equal(err, null, none);
    assert.equal(q.event, EVENT_NONE);
  }
  for (const bad of ["STARTED", "start", "startedx", "completedcompleted", "%00", "update"]) {
    assert.equal(ev(bad)[0], "invalid event", bad);
  }
});

Deno.test("numwant: non-negative, huge values clamped", () => {
  assert.equal(parse(base("&numwant=0"))[1].numwant, 0);
  assert.equal(parse(base("&numwant=200"))[1].numwant, 200);
  assert.equal(parse(base("&numwant=2147483647"))[1].numwant, MAX_NUMWANT);
  assert.equal(parse(base("&numwant=2147483648"))[1].numwant, MAX_NUMWANT);
  assert.equal(parse(base(`&numwant=${"9".repeat(400)}`))[1].numwant, MAX_NUMWANT);
  for (const bad of ["-1", "", "ten", "5x"]) {
    assert.equal(failure(base(`&numwant=${bad}`)), "invalid numwant", bad);
  }
});

Deno.test("compact: only 1 is served", () => {
  assert.equal(failure(base("&compact=1")), null);
  assert.equal(
    failure(base("&compact=0")),
    "this tracker sends compact peer lists only (compact=1)",
  );
  for (const bad of ["2", "", "01", "true"]) {
    assert.equal(failure(base(`&compact=${bad}`)), "invalid compact", bad);
  }
});

Deno.test("key: at most 100 bytes after decoding", () => {
  assert.equal(failure(base(`&key=${"k".repeat(100)}`)), null);
  assert.equal(failure(base(`&key=${"%41".repeat(100)}`)), null);
  assert.equal(failure(base(`&key=${"k".repeat(101)}`)), "key is too long");
  assert.equal(failure(base("&key=")), null);
});

Deno.test("the first failing parameter is reported", () => {
  assert.equal(failure(`port=0&info_hash=x`), "invalid port");
  assert.equal(failure(`info_hash=x&port=0`), "info_hash must be 20 bytes");
});

Deno.test("scrape: hashes in order, repeats kept, others ignored", () => {
  const out = new Uint8Array(64 * 20);
  assert.equal(parseScrapeQuery("", out), 0);
  assert.equal(parseScrapeQuery("foo=bar&&", out), 0);
  const a = seq(0), b = seq(0x80);
  assert.equal(
    parseScrapeQuery(`info_hash=${pct(b)}&x=1&info_hash=${pct(a)}&info_hash=${pct(b)}`, out),
    3,
  );
  assert.deepEqual(out.subarray(0, 20), b);
  assert.deepEqual(out.subarray(20, 40), a);
  assert.deepEqual(out.subarray(40, 60), b);
});

Deno.test("scrape: 64 hashes accepted, 65 refused", () => {
  const out = new Uint8Array(64 * 20);
  const parts: string[] = [];
  for (let i = 0; i < 65; i++) parts.push(`info_hash=${pct(seq(i))}`);
  assert.equal(parseScrapeQuery(parts.slice(0, 64).join("&"), out), 64);
  for (let i = 0; i < 64; i++) assert.deepEqual(out.subarray(i * 20, i * 20 + 20), seq(i));
  assert.equal(parseScrapeQuery(parts.join("&"), out), "too many info hashes (max 64)");
});

Deno.test("scrape: malformed hashes", () => {
  const out = new Uint8Array(64 * 20);
  assert.equal(parseScrapeQuery(`info_hash=${pct(seq(0, 19))}`, out), "info_hash must be 20 bytes");
  assert.equal(parseScrapeQuery(`info_hash=`, out), "info_hash must be 20 bytes");
  assert.equal(
    parseScrapeQuery(`info_hash=%G0${pct(seq(0, 19))}`, out),
    "invalid percent-encoding",
  );
  assert.equal(parseScrapeQuery(`info_hash=${pct(seq(0))}&x=%`, out), "invalid percent-encoding");
  assert.equal(parseScrapeQuery(`info_hash=\u00ff`, out), "invalid character in query");
  assert.throws(() => parseScrapeQuery("", new Uint8Array(20)), RangeError);
});
