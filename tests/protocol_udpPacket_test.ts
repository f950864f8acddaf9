import assert from "node:assert/strict";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_ERROR,
  ACTION_SCRAPE,
  AnnounceFields,
  classifyPacket,
  ERROR_ANNOUNCE_TOO_SHORT,
  ERROR_INVALID_EVENT,
  ERROR_INVALID_PORT,
  ERROR_SCRAPE_EMPTY,
  ERROR_SCRAPE_LENGTH,
  ERROR_SCRAPE_TOO_MANY,
  MAX_UDP_SCRAPE_HASHES,
  PACKET_DROP,
  readAnnounce,
  readAnnounceFields,
  readTransactionId,
  scrapeHashCount,
  UdpAnnounce,
  writeAnnounceReplyHeader,
  writeConnectReply,
  writeError,
  writeScrapeEntry,
  writeScrapeReplyHeader,
} from "../src/protocol/udpPacket.ts";
import { EVENT_COMPLETED, EVENT_NONE, EVENT_STARTED } from "../src/protocol/events.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return Uint8Array.from(
    { length: clean.length / 2 },
    (_, i) => parseInt(clean.substr(i * 2, 2), 16),
  );
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const CONNECT = hex("00000417 27101980 00000000 deadbeef");

/** A valid 98-byte announce; fields are changed by the tests through `with_`. */
const ANNOUNCE = hex(
  "0123456789abcdef" + // connection id
    "00000001" + "cafebabe" + // action, transaction id
    "000102030405060708090a0b0c0d0e0f10111213" + // info hash
    "2d5452323934302d6162636465666768696a6b6c" + // peer id "-TR2940-abcdefghijkl"
    "0000010000000005" + // downloaded 2^40 + 5
    "0000000000000000" + // left 0
    "00000000ffffffff" + // uploaded 2^32 - 1
    "00000002" + // event started
    "c0a80001" + // ip 192.168.0.1
    "12345678" + // key
    "00000032" + // numwant 50
    "1ae1", // port 6881
);

function with_(offset: number, hexBytes: string, base = ANNOUNCE): Uint8Array {
  const p = base.slice();
  p.set(hex(hexBytes), offset);
  return p;
}

Deno.test("classify: policy for every packet class", () => {
  assert.equal(classifyPacket(CONNECT, 16), ACTION_CONNECT);
  assert.equal(classifyPacket(CONNECT, 15), PACKET_DROP, "< 16 bytes");
  assert.equal(classifyPacket(new Uint8Array(0), 0), PACKET_DROP);
  assert.equal(classifyPacket(with_(0, "0000041727101981", CONNECT), 16), PACKET_DROP, "bad magic");
  assert.equal(classifyPacket(with_(0, "0000000000000000", CONNECT), 16), PACKET_DROP, "no magic");
  const connectWithTail = new Uint8Array(40);
  connectWithTail.set(CONNECT);
  assert.equal(classifyPacket(connectWithTail, 40), ACTION_CONNECT, "extra bytes ignored");
  assert.equal(classifyPacket(ANNOUNCE, 98), ACTION_ANNOUNCE);
  assert.equal(classifyPacket(ANNOUNCE, 16), ACTION_ANNOUNCE, "length is the reader's job");
  assert.equal(classifyPacket(with_(8, "00000002"), 36), ACTION_SCRAPE);
  assert.equal(classifyPacket(with_(8, "00000003"), 98), PACKET_DROP, "client error packets");
  assert.equal(classifyPacket(with_(8, "00000004"), 16), ACTION_ERROR, "unknown action");
  assert.equal(classifyPacket(with_(8, "ffffffff"), 98), ACTION_ERROR);
  assert.equal(classifyPacket(with_(8, "00000100"), 98), ACTION_ERROR);
  assert.equal(classifyPacket(with_(8, "00000004"), 15), PACKET_DROP);
  assert.equal(readTransactionId(CONNECT), 0xdeadbeef);
});

Deno.test("readAnnounce: every field of a valid packet", () => {
  const a = new UdpAnnounce();
  assert.equal(readAnnounce(ANNOUNCE, 98, a), null);
  assert.equal(a.connIdHi, 0x01234567);
  assert.equal(a.connIdLo, 0x89abcdef);
  assert.equal(a.transactionId, 0xcafebabe);
  assert.equal(a.infoHashOffset, 16);
  assert.equal(a.peerIdOffset, 36);
  assert.equal(
    toHex(ANNOUNCE.subarray(a.infoHashOffset, a.infoHashOffset + 20)).slice(0, 4),
    "0001",
  );
  assert.equal(a.downloaded, 2 ** 40 + 5);
  assert.equal(a.left, 0);
  assert.equal(a.leftIsZero, true);
  assert.equal(a.uploaded, 2 ** 32 - 1);
  assert.equal(a.event, EVENT_STARTED);
  assert.equal(a.ipAddress, 0xc0a80001);
  assert.equal(a.key, 0x12345678);
  assert.equal(a.numwant, 50);
  assert.equal(a.port, 6881);
});

Deno.test("readAnnounceFields: what the tracker uses, the transaction id as int32", () => {
  const f = new AnnounceFields();
  assert.equal(readAnnounceFields(ANNOUNCE, 98, f), null);
  assert.equal(f.transactionId, 0xcafebabe | 0);
  assert.equal(f.leftIsZero, true);
  assert.equal(f.event, EVENT_STARTED);
  assert.equal(f.numwant, 50);
  assert.equal(f.port, 6881);
  assert.equal(readAnnounceFields(with_(64, "0000000100000000"), 98, f), null);
  assert.equal(f.leftIsZero, false, "any byte of left set is not a seeder");
  assert.equal(readAnnounceFields(with_(92, "fffffffe"), 98, f), null);
  assert.equal(f.numwant, -1);
  // An event over 3 in any byte of its u32 is refused, as readAnnounce does.
  for (const bytes of ["00000004", "00000100", "00010000", "01000000", "ffffffff"]) {
    assert.equal(readAnnounceFields(with_(80, bytes), 98, f), ERROR_INVALID_EVENT, bytes);
  }
  assert.equal(readAnnounceFields(with_(96, "0000"), 98, f), ERROR_INVALID_PORT);
  assert.equal(readAnnounceFields(ANNOUNCE, 97, f), ERROR_ANNOUNCE_TOO_SHORT);
  assert.equal(f.transactionId, 0xcafebabe | 0, "a short announce still has its transaction id");
});

Deno.test("readAnnounce: 64-bit fields, numwant sign, events, BEP 41 tail", () => {
  const a = new UdpAnnounce();
  assert.equal(readAnnounce(with_(64, "0000000000000001"), 98, a), null);
  assert.equal(a.left, 1);
  assert.equal(a.leftIsZero, false);
  assert.equal(readAnnounce(with_(64, "001fffffffffffff"), 98, a), null);
  assert.equal(a.left, Number.MAX_SAFE_INTEGER);
  assert.equal(readAnnounce(with_(64, "0000000100000000"), 98, a), null);
  assert.equal(a.left, 2 ** 32);
  assert.equal(a.leftIsZero, false, "low word zero is not enough");
  // A negative left (some clients send -1 for "unknown") reads as 0 but is no seeder.
  assert.equal(readAnnounce(with_(64, "ffffffffffffffff"), 98, a), null);
  assert.equal(a.left, 0);
  assert.equal(a.leftIsZero, false);
  assert.equal(readAnnounce(with_(56, "8000000000000000"), 98, a), null);
  assert.equal(a.downloaded, 0);
  for (
    const [bytes, want] of [["ffffffff", -1], ["80000000", -1], ["fffffffe", -1], ["00000000", 0], [
      "7fffffff",
      0x7fffffff,
    ]] as const
  ) {
    assert.equal(readAnnounce(with_(92, bytes), 98, a), null);
    assert.equal(a.numwant, want, bytes);
  }
  assert.equal(readAnnounce(with_(80, "00000000"), 98, a), null);
  assert.equal(a.event, EVENT_NONE);
  assert.equal(readAnnounce(with_(80, "00000001"), 98, a), null);
  assert.equal(a.event, EVENT_COMPLETED);
  assert.equal(readAnnounce(with_(96, "ffff"), 98, a), null);
  assert.equal(a.port, 65535);
  const long = new Uint8Array(130);
  long.set(ANNOUNCE);
  long.set([2, 5, 47, 97, 110, 110, 111], 98); // BEP 41 URLData option
  assert.equal(readAnnounce(long, 130, a), null);
  assert.equal(a.port, 6881);
});

Deno.test("readAnnounce: malformed packets", () => {
  const a = new UdpAnnounce();
  assert.equal(readAnnounce(ANNOUNCE, 97, a), ERROR_ANNOUNCE_TOO_SHORT);
  assert.equal(a.transactionId, 0xcafebabe, "still readable for the error reply");
  assert.equal(readAnnounce(ANNOUNCE, 16, a), ERROR_ANNOUNCE_TOO_SHORT);
  assert.equal(readAnnounce(ANNOUNCE, 3, a), ERROR_ANNOUNCE_TOO_SHORT);
  assert.equal(readAnnounce(with_(80, "00000004"), 98, a), ERROR_INVALID_EVENT);
  assert.equal(readAnnounce(with_(80, "ffffffff"), 98, a), ERROR_INVALID_EVENT);
  assert.equal(readAnnounce(with_(96, "0000"), 98, a), ERROR_INVALID_PORT);
});

Deno.test("scrapeHashCount: 1..74 whole hashes", () => {
  assert.equal(scrapeHashCount(36), 1);
  assert.equal(scrapeHashCount(16 + 20 * MAX_UDP_SCRAPE_HASHES), 74);
  assert.equal(scrapeHashCount(16 + 20 * 75), ERROR_SCRAPE_TOO_MANY);
  assert.equal(scrapeHashCount(16), ERROR_SCRAPE_EMPTY);
  assert.equal(scrapeHashCount(10), ERROR_SCRAPE_EMPTY);
  assert.equal(scrapeHashCount(35), ERROR_SCRAPE_LENGTH);
  assert.equal(scrapeHashCount(37), ERROR_SCRAPE_LENGTH);
  assert.equal(scrapeHashCount(16 + 20 * 80 + 1), ERROR_SCRAPE_LENGTH);
});

Deno.test("connect reply", () => {
  const out = new Uint8Array(64).fill(0xee);
  const id = hex("00 11 22 33 44 55 66 77 88 99");
  assert.equal(writeConnectReply(out, 0xdeadbeef, id, 2), 16);
  assert.equal(toHex(out.subarray(0, 17)), "00000000deadbeef2233445566778899ee");
  // The id may already sit where the reply puts it.
  const inPlace = new Uint8Array(16);
  inPlace.set(hex("0102030405060708"), 8);
  writeConnectReply(inPlace, 7, inPlace, 8);
  assert.equal(toHex(inPlace), "00000000000000070102030405060708");
});

Deno.test("announce reply header", () => {
  const out = new Uint8Array(20);
  assert.equal(writeAnnounceReplyHeader(out, 0xcafebabe, 1800, 3, 0xffffffff), 20);
  assert.equal(toHex(out), "00000001cafebabe0000070800000003ffffffff");
});

Deno.test("scrape reply header and entries", () => {
  const out = new Uint8Array(8 + 24);
  let o = writeScrapeReplyHeader(out, 0x01020304);
  assert.equal(o, 8);
  o = writeScrapeEntry(out, o, 1, 2, 3);
  o = writeScrapeEntry(out, o, 0xffffffff, 0, 0x10000);
  assert.equal(o, 32);
  assert.equal(
    toHex(out),
    "0000000201020304" + "000000010000000200000003" + "ffffffff0000000000010000",
  );
});

Deno.test("error packets, cut to maxLength", () => {
  const out = new Uint8Array(64);
  let n = writeError(out, 0xcafebabe, ERROR_ANNOUNCE_TOO_SHORT, 98);
  assert.equal(n, 8 + 18);
  assert.equal(toHex(out.subarray(0, 8)), "00000003cafebabe");
  assert.equal(new TextDecoder().decode(out.subarray(8, n)), "announce too short");
  n = writeError(out, 1, ERROR_ANNOUNCE_TOO_SHORT, 16);
  assert.equal(n, 16);
  assert.equal(new TextDecoder().decode(out.subarray(8, n)), "announce");
  assert.equal(writeError(out, 1, "x", 4), 8, "never shorter than the header");
  assert.equal(writeError(out, 1, "", 100), 8);
  n = writeError(out, 1, "d\u00e9j\u00e0", 100);
  assert.equal(new TextDecoder().decode(out.subarray(8, n)), "d?j?");
  const small = new Uint8Array(12);
  assert.equal(writeError(small, 1, "a long message", 1000), 12, "never past the buffer");
});
