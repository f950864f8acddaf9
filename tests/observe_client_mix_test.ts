/**
 * The client mix (src/observe/clientMix.ts): peer_id prefixes of real clients (BEP 20 styles, the
 * ids aria2 and python3-libtorrent on this machine send), the bounded table, the two-bucket window.
 */
import assert from "node:assert/strict";
import {
  CLIENT_SLOTS,
  clientKey,
  ClientMix,
  describeClientKey,
  KEY_OTHER,
} from "../src/observe/clientMix.ts";

/** A 20-byte peer_id: `prefix` (latin1 text) then filler bytes, at `offset` in a larger buffer. */
function peerId(prefix: string, offset = 0, fill = 0xa7): Uint8Array {
  const bytes = new Uint8Array(offset + 20).fill(fill);
  for (let i = 0; i < prefix.length; i++) bytes[offset + i] = prefix.charCodeAt(i);
  return bytes;
}

function nameOf(prefix: string): string {
  return describeClientKey(clientKey(peerId(prefix), 0)).name;
}

Deno.test("client mix: peer_id prefixes of real clients", () => {
  const cases: [string, string][] = [
    ["-qB4630-", "qBittorrent"],
    ["-TR4060-", "Transmission"],
    ["-LT2080-", "libtorrent (Rasterbar)"], // python3-libtorrent 2.0.8 here
    ["-lt0D80-", "rTorrent (libTorrent)"],
    ["-DE211s-", "Deluge"],
    ["-UT355W-", "µTorrent"],
    ["-WW0208-", "WebTorrent"],
    ["-AZ5770-", "Vuze (Azureus)"],
    ["-BI3800-", "BiglyBT"],
    ["-A~0100-", "Ares"],
    ["A2-1-36-0-", "aria2"], // aria2c --peer-id-prefix default here
    ["-aria2-", "aria2"],
    ["M4-3-6--", "Mainline"],
    ["M7-10-3-", "Mainline"],
    ["S58B-----", "Shad0w"],
    ["T03I-----", "BitTornado"],
    ["R5----", "Tribler"],
    ["TIX0283-", "Tixati"],
    ["XBT054d-", "XBT"],
    ["exbc\x00\x3c", "BitComet"],
    ["-ZZ1234-", "unknown -ZZ-"],
  ];
  for (const [prefix, name] of cases) assert.equal(nameOf(prefix), name, prefix);
  assert.equal(describeClientKey(clientKey(peerId("-qB4630-"), 0)).code, "-qB");
});

Deno.test("client mix: not a convention -> other", () => {
  const others = [
    "-qB46\x0030-", // a version byte that is not a character
    "-q\x014630-",
    "-qB4630x", // no closing dash
    "M4x3-6--",
    "S5\x008----",
    "Z58B-----", // not a Shadow letter
    "\x00\x00\x00\x00",
    "",
  ];
  for (const prefix of others) {
    assert.equal(clientKey(peerId(prefix), 0), KEY_OTHER, JSON.stringify(prefix));
    assert.equal(clientKey(peerId(prefix, 0, 0x2d), 0) >= 0, true, "dash filler never throws");
  }
  // Every random peer_id maps to a key without reading outside its 20 bytes.
  const bytes = new Uint8Array(20 * 2000);
  crypto.getRandomValues(bytes);
  for (let i = 0; i < 2000; i++) {
    const key = clientKey(bytes, i * 20);
    assert.ok(Number.isInteger(key) && key >= 0 && key < 65536);
  }
});

Deno.test("client mix: counts announces per client at an offset, most first", () => {
  const mix = new ClientMix();
  mix.advance(1);
  const udp = peerId("-qB4630-", 36); // a UDP announce's peer_id sits at offset 36
  for (let i = 0; i < 5; i++) mix.count(udp, 36);
  for (let i = 0; i < 3; i++) mix.count(peerId("-TR4060-"), 0);
  mix.count(peerId("A2-1-36-0-"), 0);
  mix.count(peerId("\x01\x02garbage"), 0);
  assert.deepEqual(mix.shares(), [
    { code: "-qB", name: "qBittorrent", announces: 5 },
    { code: "-TR", name: "Transmission", announces: 3 },
    { code: "A2", name: "aria2", announces: 1 },
    { code: "", name: "other", announces: 1 },
  ]);
});

Deno.test("client mix: the table is bounded; a flood of made-up codes lands in other", () => {
  const mix = new ClientMix(300);
  mix.advance(0);
  const before = mix.byteSize;
  let flood = 0;
  for (let a = 0x41; a <= 0x5a; a++) {
    for (let b = 0x41; b <= 0x5a; b++) {
      mix.count(peerId(`-${String.fromCharCode(a, b)}0001-`), 0);
      flood++;
    }
  }
  assert.equal(mix.slotsUsed, CLIENT_SLOTS);
  const shares = mix.shares();
  assert.equal(shares.length, CLIENT_SLOTS);
  const other = shares.find((s) => s.name === "other")!;
  assert.equal(other.announces, flood - (CLIENT_SLOTS - 1));
  mix.count(peerId("-qB4630-"), 0);
  assert.ok(!mix.shares().some((s) => s.code === "-qB"), "table full: qB counted as other");
  assert.equal(mix.byteSize, before, "memory fixed");

  // One window later the flood is in the previous bucket (still shown); qB keeps announcing.
  mix.advance(300);
  mix.count(peerId("-qB4630-"), 0);
  assert.ok(!mix.shares().some((s) => s.code === "-qB"), "slots still held by the last window");
  // Another window with only qB: the flood's slots are given back and qB gets one.
  mix.advance(600);
  assert.equal(mix.slotsUsed, 1, "only other kept (it held qB's announces)");
  mix.count(peerId("-qB4630-"), 0);
  mix.count(peerId("-qB4630-"), 0);
  const after = mix.shares();
  assert.deepEqual(after.map((s) => s.code), ["-qB", ""]);
  assert.equal(after[0].announces, 2);
  assert.equal(after[1].announces, 1, "qB's announce of the previous window, counted as other");
});

Deno.test("client mix: window of two buckets; a long silence clears both", () => {
  const mix = new ClientMix(60);
  mix.advance(1000);
  mix.count(peerId("-TR4060-"), 0);
  mix.advance(1059);
  mix.count(peerId("-TR4060-"), 0);
  assert.equal(mix.shares()[0].announces, 2);
  mix.advance(1060); // switch: the first bucket becomes "previous"
  mix.count(peerId("-LT2080-"), 0);
  assert.deepEqual(mix.shares().map((s) => [s.code, s.announces]), [["-TR", 2], ["-LT", 1]]);
  mix.advance(1120); // switch again: Transmission's bucket is dropped
  assert.deepEqual(mix.shares().map((s) => [s.code, s.announces]), [["-LT", 1]]);
  mix.advance(1300); // more than two windows of silence
  assert.deepEqual(mix.shares(), []);
  assert.equal(mix.slotsUsed, 1);
});

Deno.test("client mix: a client's letters, once they hold a slot, count without the full check", () => {
  const mix = new ClientMix();
  mix.advance(1);
  const odd = peerId("-qB46\x0030-"); // a version byte that is not a character
  mix.count(odd, 0);
  assert.deepEqual(mix.shares().map((s) => s.name), ["other"], "no slot yet: the full check");
  mix.count(peerId("-qB4630-"), 0);
  mix.count(odd, 0);
  assert.deepEqual(mix.shares(), [
    { code: "-qB", name: "qBittorrent", announces: 2 },
    { code: "", name: "other", announces: 1 },
  ]);
  // A zero second byte never reaches the one-byte keys (Mainline's "M" is 0x4d).
  mix.count(peerId("M4-3-6--"), 0);
  mix.count(peerId("-\x00M4630-"), 0);
  assert.equal(mix.shares().find((s) => s.name === "Mainline")?.announces, 1);
  assert.equal(mix.shares().find((s) => s.name === "other")?.announces, 2);
});
