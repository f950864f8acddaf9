/**
 * src/protocol/wsFrame.ts: RFC 6455's example frames byte for byte, each rule the reader enforces
 * (with the close code it must give), input cut at every byte, the no-copy steady path, the
 * writers, and a seeded differential fuzz run against the whole-buffer reference decoder in
 * tests/support/wsFrames.ts (the long run is in bench/fuzz_long.ts).
 */
import assert from "node:assert/strict";
import {
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOO_BIG,
  CLOSE_UNSUPPORTED_DATA,
  frameHeaderLength,
  isValidCloseCode,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  writeCloseFrame,
  writeFrameHeader,
  writePongFrame,
  writeTextFrame,
  writeTextHeaderBefore,
  WS_FAIL,
  WS_NEED_MORE,
  WS_PING,
  WS_TEXT,
  WsFrameReader,
} from "../src/protocol/wsFrame.ts";
import { isUtf8, UTF8_COMPLETE, UTF8_INVALID, utf8Step } from "../src/protocol/utf8.ts";
import { fuzzLoop, fuzzSeed, hex, Rng } from "./support/fuzz.ts";
import {
  clientFrame,
  concat,
  type FrameEvent,
  fuzzWsFrames,
  readerEvents,
} from "./support/wsFrames.ts";

const CAP = 65536;

function events(bytes: Uint8Array, cuts: number[] = [], cap = CAP, frameCap = cap): FrameEvent[] {
  return readerEvents(new WsFrameReader(cap, frameCap), bytes, cuts);
}

/** The reader's events for `bytes` whole, cut at each single byte, and fed one byte at a time. */
function eventsEveryCut(bytes: Uint8Array, cap = CAP): FrameEvent[] {
  const whole = events(bytes, [], cap);
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(events(bytes, [cut], cap), whole, `cut at ${cut}`);
  }
  const each = Array.from({ length: bytes.length }, (_, i) => i);
  assert.deepEqual(events(bytes, each, cap), whole, "one byte at a time");
  return whole;
}

const fail = (code: number): FrameEvent[] => [{ kind: "fail", code }];
const text = (t: string): FrameEvent => ({ kind: "text", text: t });
const MORE: FrameEvent = { kind: "more" };

Deno.test("RFC 6455 §5.7: a masked 'Hello' and a masked ping, byte for byte", () => {
  const hello = Uint8Array.of(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
  assert.deepEqual(clientFrame(OP_TEXT, "Hello"), hello); // the builder agrees with the RFC
  assert.deepEqual(eventsEveryCut(hello), [text("Hello"), MORE]);
  const ping = Uint8Array.of(0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
  assert.deepEqual(eventsEveryCut(ping), [{ kind: "ping", hex: "48656c6c6f" }, MORE]);
});

Deno.test("lengths: 7-, 16- and 64-bit, up to the cap", () => {
  for (const n of [0, 1, 125, 126, 127, 65535, 65536]) {
    const body = "q".repeat(n);
    assert.deepEqual(events(clientFrame(OP_TEXT, body)), [text(body), MORE], `length ${n}`);
  }
  const header64 = clientFrame(OP_TEXT, "q".repeat(65536)).subarray(0, 2);
  assert.deepEqual([...header64], [0x81, 0xff]);
});

Deno.test("fragments reassemble, with control frames between them and UTF-8 split across them", () => {
  const euro = new TextEncoder().encode("€"); // e2 82 ac
  const stream = concat(
    clientFrame(OP_TEXT, Uint8Array.of(0x41, euro[0]), { fin: false }),
    clientFrame(OP_PING, "p1"),
    clientFrame(OP_CONTINUATION, euro.subarray(1, 2), { fin: false, mask: 0x01020304 }),
    clientFrame(OP_PONG, ""),
    clientFrame(OP_CONTINUATION, Uint8Array.of(euro[2], 0x42), { mask: 0xdeadbeef }),
    clientFrame(OP_TEXT, "next"),
  );
  assert.deepEqual(eventsEveryCut(stream), [
    { kind: "ping", hex: "7031" },
    { kind: "pong", hex: "" },
    text("A€B"),
    text("next"),
    MORE,
  ]);
});

Deno.test("a leading BOM stays part of the text, on the whole-frame and the split path", () => {
  const frame = clientFrame(OP_TEXT, "\uFEFF{}");
  assert.deepEqual(eventsEveryCut(frame), [text("\uFEFF{}"), MORE]);
});

Deno.test("header violations close with 1002, before the payload", () => {
  for (const rsv of [0x10, 0x20, 0x40]) {
    assert.deepEqual(events(clientFrame(OP_TEXT, "x", { rsv })), fail(CLOSE_PROTOCOL_ERROR));
  }
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    assert.deepEqual(events(clientFrame(opcode, "x")), fail(CLOSE_PROTOCOL_ERROR), `op ${opcode}`);
  }
  // Unmasked client frame.
  assert.deepEqual(events(clientFrame(OP_TEXT, "x", { mask: null })), fail(CLOSE_PROTOCOL_ERROR));
  // Lengths not in their shortest form, and the 64-bit high bit.
  assert.deepEqual(
    events(clientFrame(OP_TEXT, "x".repeat(125), { lengthBytes: 2 })),
    fail(CLOSE_PROTOCOL_ERROR),
  );
  assert.deepEqual(
    events(clientFrame(OP_TEXT, "x".repeat(65535), { lengthBytes: 8 })),
    fail(CLOSE_PROTOCOL_ERROR),
  );
  const high = clientFrame(OP_TEXT, "", { lengthBytes: 8, declared: 2 ** 63 }).subarray(0, 3);
  assert.deepEqual(events(high), fail(CLOSE_PROTOCOL_ERROR)); // known from the first length byte
  // Control frames: fragmented, or over 125 bytes.
  for (const op of [OP_CLOSE, OP_PING, OP_PONG]) {
    assert.deepEqual(events(clientFrame(op, "", { fin: false })), fail(CLOSE_PROTOCOL_ERROR));
    assert.deepEqual(events(clientFrame(op, "x".repeat(126))), fail(CLOSE_PROTOCOL_ERROR));
  }
  // Fragmentation: continuation with no message, new message inside one.
  assert.deepEqual(events(clientFrame(OP_CONTINUATION, "x")), fail(CLOSE_PROTOCOL_ERROR));
  assert.deepEqual(
    events(concat(clientFrame(OP_TEXT, "a", { fin: false }), clientFrame(OP_TEXT, "b"))),
    fail(CLOSE_PROTOCOL_ERROR),
  );
});

Deno.test("binary messages close with 1003 from the first header byte", () => {
  assert.deepEqual(events(clientFrame(OP_BINARY, "x")), fail(CLOSE_UNSUPPORTED_DATA));
  assert.deepEqual(events(Uint8Array.of(0x82)), fail(CLOSE_UNSUPPORTED_DATA));
  assert.deepEqual(
    events(concat(clientFrame(OP_TEXT, "a", { fin: false }), clientFrame(OP_BINARY, "b"))),
    fail(CLOSE_PROTOCOL_ERROR),
  );
});

Deno.test("a frame or message over the cap closes with 1009 from the header, nothing buffered", () => {
  // 64 MiB declared: the header alone (and none of the payload) gets the refusal.
  const huge = clientFrame(OP_TEXT, "", { declared: 64 * 1024 * 1024 });
  assert.equal(huge.length, 14);
  assert.deepEqual(events(huge), fail(CLOSE_TOO_BIG));
  assert.deepEqual(events(clientFrame(OP_TEXT, "", { declared: CAP + 1 })), fail(CLOSE_TOO_BIG));
  // A frame over a smaller frame cap, and fragments adding up to more than the message cap.
  assert.deepEqual(
    events(clientFrame(OP_TEXT, "x".repeat(101)), [], 1000, 100),
    fail(CLOSE_TOO_BIG),
  );
  const pieces = concat(
    clientFrame(OP_TEXT, "x".repeat(600), { fin: false }),
    clientFrame(OP_CONTINUATION, "x".repeat(400), { fin: false }),
    clientFrame(OP_CONTINUATION, "x", { declared: 1 }).subarray(0, 6),
  );
  assert.deepEqual(events(pieces, [], 1000), fail(CLOSE_TOO_BIG));
  assert.deepEqual(events(pieces.subarray(0, pieces.length - 6), [], 1000), [MORE]);
});

Deno.test("invalid UTF-8 closes with 1007, at the first bad byte, even mid-message", () => {
  for (
    const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80]]
  ) {
    assert.deepEqual(events(clientFrame(OP_TEXT, Uint8Array.from(bad))), fail(CLOSE_INVALID_DATA));
  }
  // Truncated at the end of the message.
  assert.deepEqual(events(clientFrame(OP_TEXT, Uint8Array.of(0x41, 0xe2, 0x82))), fail(1007));
  // The first fragment is already bad: refused before the rest arrives.
  assert.deepEqual(
    events(clientFrame(OP_TEXT, Uint8Array.of(0x41, 0xff), { fin: false })),
    fail(CLOSE_INVALID_DATA),
  );
  // A frame still arriving: its first bytes are bad.
  const partial = clientFrame(OP_TEXT, Uint8Array.of(0xff, 0x41, 0x42, 0x43)).subarray(0, 7);
  assert.deepEqual(events(partial), fail(CLOSE_INVALID_DATA));
});

Deno.test("close frames: code and reason, no code, and the invalid ones", () => {
  const close = (body: Uint8Array) => events(clientFrame(OP_CLOSE, body));
  const coded = (code: number, reason = "") =>
    close(concat(Uint8Array.of(code >> 8, code & 0xff), new TextEncoder().encode(reason)));
  assert.deepEqual(close(new Uint8Array(0)), [{
    kind: "close",
    code: CLOSE_NO_STATUS,
    reason: "",
  }]);
  assert.deepEqual(coded(1000, "bye é"), [{ kind: "close", code: 1000, reason: "bye é" }]);
  assert.deepEqual(coded(4999), [{ kind: "close", code: 4999, reason: "" }]);
  assert.deepEqual(close(Uint8Array.of(3)), fail(CLOSE_PROTOCOL_ERROR));
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
    assert.deepEqual(coded(code), fail(CLOSE_PROTOCOL_ERROR), `code ${code}`);
    assert.equal(isValidCloseCode(code), false);
  }
  assert.deepEqual(
    close(Uint8Array.of(0x03, 0xe8, 0xff)),
    fail(CLOSE_INVALID_DATA),
  );
});

Deno.test("after a failure or a close the reader answers the same and reads no further", () => {
  const reader = new WsFrameReader();
  const input = concat(clientFrame(OP_BINARY, "x"), clientFrame(OP_TEXT, "later"));
  reader.feed(input);
  assert.equal(reader.next(), WS_FAIL);
  reader.feed(clientFrame(OP_TEXT, "more"));
  assert.equal(reader.next(), WS_FAIL);
  assert.equal(reader.failCode, CLOSE_UNSUPPORTED_DATA);
  assert.deepEqual(
    events(concat(clientFrame(OP_CLOSE, Uint8Array.of(3, 232)), clientFrame(OP_TEXT, "x"))),
    [{ kind: "close", code: 1000, reason: "" }],
  );
});

Deno.test("steady path: a whole frame is unmasked in place; split ones reuse one buffer", () => {
  const reader = new WsFrameReader();
  const input = concat(clientFrame(OP_TEXT, "first"), clientFrame(OP_TEXT, "second"));
  reader.feed(input);
  assert.equal(reader.next(), WS_TEXT);
  assert.equal(reader.message.buffer, input.buffer, "a view of the input, not a copy");
  assert.equal(reader.text(), "first");
  assert.equal(reader.next(), WS_TEXT);
  assert.equal(reader.text(), "second");
  assert.equal(reader.next(), WS_NEED_MORE);

  let buffer: ArrayBufferLike | null = null;
  for (let round = 0; round < 5; round++) {
    const frame = clientFrame(OP_TEXT, `split message ${round}`);
    reader.feed(frame, 0, 9);
    assert.equal(reader.next(), WS_NEED_MORE);
    assert.equal(reader.midMessage, true);
    reader.feed(frame, 9);
    assert.equal(reader.next(), WS_TEXT);
    assert.equal(reader.text(), `split message ${round}`);
    buffer ??= reader.message.buffer;
    assert.equal(reader.message.buffer, buffer, "the same reassembly buffer every time");
  }
  assert.equal(reader.midMessage, false);
  reader.releaseBuffer();
  const frame = clientFrame(OP_TEXT, "after release");
  reader.feed(frame, 0, 3);
  reader.next();
  reader.feed(frame, 3);
  assert.equal(reader.next(), WS_TEXT);
  assert.notEqual(reader.message.buffer, buffer, "released, so a new one");
  assert.equal(reader.text(), "after release");
});

Deno.test("a used-up chunk is let go: no view of it, nor the last message, is kept", () => {
  const reader = new WsFrameReader();
  const input = concat(clientFrame(OP_TEXT, "last words"), clientFrame(OP_PING, "p"));
  reader.feed(input);
  assert.equal(reader.next(), WS_TEXT);
  assert.equal(reader.text(), "last words");
  assert.equal(reader.next(), WS_PING);
  assert.equal(reader.payload.buffer, input.buffer);
  assert.equal(reader.next(), WS_NEED_MORE);
  // An idle connection would otherwise hold its last read buffer (pooled, 16 KiB) and the text.
  assert.notEqual(reader.message.buffer, input.buffer);
  assert.notEqual(reader.payload.buffer, input.buffer);
  assert.equal(reader.message.length, 0);
  assert.equal(reader.text(), "");
});

Deno.test("writers: headers byte for byte, and the reader reads what they write once masked", () => {
  const out = new Uint8Array(70000);
  assert.deepEqual([...out.subarray(0, writeFrameHeader(out, 0, OP_TEXT, 5))], [0x81, 5]);
  assert.deepEqual([...out.subarray(0, writeFrameHeader(out, 0, OP_TEXT, 126))], [
    0x81,
    126,
    0,
    126,
  ]);
  assert.deepEqual(
    [...out.subarray(0, writeFrameHeader(out, 0, OP_TEXT, 65536))],
    [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0],
  );
  assert.deepEqual([frameHeaderLength(125), frameHeaderLength(65535), frameHeaderLength(65536)], [
    2,
    4,
    10,
  ]);

  const payload = new TextEncoder().encode("Hello");
  assert.deepEqual([...out.subarray(0, writeTextFrame(out, 0, payload))], [
    0x81,
    5,
    ...payload,
  ]); // RFC 6455 §5.7's unmasked "Hello"
  assert.deepEqual([...out.subarray(0, writePongFrame(out, 0, payload))], [0x8a, 5, ...payload]);
  assert.deepEqual([...out.subarray(0, writeCloseFrame(out, 0, 0))], [0x88, 0]);
  assert.deepEqual([...out.subarray(0, writeCloseFrame(out, 0, 1009, "big"))], [
    0x88,
    5,
    0x03,
    0xf1,
    0x62,
    0x69,
    0x67,
  ]);
  // A long reason is cut to 123 bytes at a character boundary ("é" is 2 bytes: 61 fit).
  const end = writeCloseFrame(out, 0, 1000, "é".repeat(100));
  assert.equal(end, 2 + 2 + 122);
  assert.equal(
    new TextDecoder("utf-8", { fatal: true }).decode(out.subarray(4, end)),
    "é".repeat(61),
  );

  // A reply encoded in place after MAX_SERVER_HEADER bytes gets its header just before it.
  const body = new TextEncoder().encode("x".repeat(300));
  out.set(body, 10);
  const start = writeTextHeaderBefore(out, 10, body.length);
  assert.equal(start, 6);
  assert.deepEqual([...out.subarray(6, 10)], [0x81, 126, 1, 44]);
  assert.throws(() => writeTextHeaderBefore(out, 1, 300), RangeError);
});

Deno.test("utf8Step agrees with TextDecoder on edge cases, whole and split at every byte", () => {
  const cases = [
    [0x7f],
    [0xc2, 0x80],
    [0xdf, 0xbf],
    [0xe0, 0xa0, 0x80],
    [0xe0, 0x9f, 0xbf],
    [0xed, 0x9f, 0xbf],
    [0xed, 0xa0, 0x80],
    [0xef, 0xbf, 0xbf],
    [0xf0, 0x90, 0x80, 0x80],
    [0xf0, 0x8f, 0xbf, 0xbf],
    [0xf4, 0x8f, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80],
    [0xc1, 0xbf],
    [0xe2, 0x82],
    [0x41, 0x80],
  ].map((c) => Uint8Array.from(c));
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (const bytes of cases) {
    let expected = true;
    try {
      decoder.decode(bytes);
    } catch {
      expected = false;
    }
    assert.equal(isUtf8(bytes), expected, hex(bytes));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const first = utf8Step(bytes, 0, cut, UTF8_COMPLETE);
      const state = utf8Step(bytes, cut, bytes.length, first);
      assert.equal(state === UTF8_COMPLETE, expected, `${hex(bytes)} cut at ${cut}`);
    }
  }
  assert.equal(utf8Step(Uint8Array.of(0x41), 0, 1, UTF8_INVALID), UTF8_INVALID);
});

const SEED = fuzzSeed(0x5eed_f4a3);

Deno.test(`fuzz: the reader agrees with the reference decoder in any chunking (seed ${SEED})`, () => {
  // At least 1000 inputs however busy the machine (it then takes longer), more on a fast one.
  const { inputs, kinds, failure } = fuzzWsFrames(new Rng(SEED), 4000, 20_000, 1000);
  if (failure !== null) assert.fail(`seed ${SEED}, ${failure}`);
  // The generator must reach messages and every close code, or the run proves little.
  for (
    const kind of [
      "text",
      "ping",
      "pong",
      "close",
      "more",
      "fail 1002",
      "fail 1003",
      "fail 1007",
      "fail 1009",
    ]
  ) {
    assert.ok((kinds.get(kind) ?? 0) > inputs / 200, `${kind}: ${kinds.get(kind)} of ${inputs}`);
  }
});

Deno.test(`fuzz: utf8Step agrees with TextDecoder, split anywhere (seed ${SEED})`, () => {
  const rng = new Rng(SEED ^ 0x0075_7466);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const alphabet = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf];
  alphabet.push(0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xff);
  let valid = 0;
  const ran = fuzzLoop(2000, 100_000, (i) => {
    const bytes = Uint8Array.from({ length: rng.int(8) }, () => rng.pick(alphabet));
    let expected = true;
    try {
      decoder.decode(bytes);
    } catch {
      expected = false;
    }
    const cut = rng.int(bytes.length + 1);
    const state = utf8Step(bytes, cut, bytes.length, utf8Step(bytes, 0, cut, UTF8_COMPLETE));
    if ((state === UTF8_COMPLETE) !== expected) assert.fail(`input ${i}: ${hex(bytes)} cut ${cut}`);
    if (expected) valid++;
  }, 1000);
  assert.ok(valid > ran / 20, `only ${valid} of ${ran} valid`);
});
