/**
 * src/protocol/jsonScan.ts against JSON.parse, the oracle: which texts are valid JSON (hand-picked
 * edge cases, deep nesting, and seeded fuzz runs of mutated JSON), what a string token reads as
 * (one-byte strings, equality, length in UTF-16 units), what a number token reads as, and an
 * object's fields (escaped keys, a repeated key's last value).
 */
import assert from "node:assert/strict";
import {
  forgetStrings,
  readNumber,
  readObject,
  readOneByteString,
  skipString,
  skipValue,
  skipWhitespace,
  stringEquals,
  stringUnits,
} from "../src/protocol/jsonScan.ts";
import { fuzzLoop, fuzzSeed, mutateText, oddChar, Rng, shown } from "./support/fuzz.ts";
import { randomJson } from "./support/wtFuzz.ts";

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF stays (as the server keeps it), and then the text is not JSON.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** Whether jsonScan finds `text` one valid JSON value (with whitespace around). */
function scanValid(text: string): boolean {
  const b = encoder.encode(text);
  const start = skipWhitespace(b, 0, b.length);
  const end = skipValue(b, start, b.length);
  return end >= 0 && skipWhitespace(b, end, b.length) === b.length;
}

function parseValid(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const EDGE_CASES = [
  "",
  " ",
  "0",
  "-0",
  "01",
  "-",
  "1.",
  ".5",
  "1.5e",
  "1e+",
  "1E-7",
  "2.50e+10",
  "+1",
  "0x10",
  "Infinity",
  "NaN",
  "true",
  "tru",
  "truex",
  "null",
  "nul",
  "False",
  '"',
  '""',
  '"\\"',
  '"\\u12"',
  '"\\u12g4"',
  '"\\uD800"',
  '"\\x41"',
  '"\\/\\b\\f\\n\\r\\t"',
  '"a\tb"',
  '"\u007f"',
  "[]",
  "[ ]",
  "[,]",
  "[1,]",
  "[1 2]",
  "{}",
  "{ }",
  '{"a"}',
  '{"a":}',
  '{"a":1,}',
  '{"a" : 1 , "b":[{}]}',
  "{1:2}",
  '{"a":1}}',
  "[[[]]]",
  "[[[]]",
  "\u00a0[]",
  "\ufeff{}",
  " \t\n\r[]\r\n",
  "[]\u000b",
  "{'a':1}",
  '{"__proto__":1}',
];

Deno.test("valid JSON is what JSON.parse accepts: edge cases", () => {
  for (const text of EDGE_CASES) {
    assert.equal(scanValid(text), parseValid(text), shown(text));
  }
});

Deno.test("deep nesting is walked without recursion, and closed brackets must match", () => {
  const deep = 30000;
  assert.equal(scanValid("[".repeat(deep) + "]".repeat(deep)), true);
  assert.equal(scanValid('{"a":'.repeat(deep) + "1" + "}".repeat(deep)), true);
  assert.equal(scanValid("[".repeat(deep) + "]".repeat(deep - 1)), false);
  assert.equal(scanValid("[".repeat(deep) + "}".repeat(deep)), false);
  assert.equal(scanValid("[{".repeat(deep)), false);
});

/** A string of awkward characters, and its JSON spelled with escapes wherever allowed. */
function oddJsonString(rng: Rng): { value: string; json: string } {
  let value = "";
  for (let n = rng.int(30); n > 0; n--) value += rng.chance(0.5) ? oddChar(rng) : 'a"\\/é';
  let json = '"';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    const loneSurrogate = c >= 0xd800 && c <= 0xdfff; // no UTF-8 for it: escaped
    if (rng.chance(0.3) || c < 0x20 || ch === '"' || ch === "\\" || loneSurrogate) {
      for (let k = 0; k < ch.length; k++) {
        json += "\\u" + ch.charCodeAt(k).toString(16).padStart(4, "0");
      }
    } else if (rng.chance(0.1) && ch === "/") {
      json += "\\/";
    } else json += ch;
  }
  return { value: JSON.parse(json + '"'), json: json + '"' };
}

Deno.test("string tokens read as JSON.parse reads them (seeded fuzz)", () => {
  const seed = fuzzSeed(0x6a73);
  const rng = new Rng(seed);
  const out = new Uint8Array(1024);
  const inputs = fuzzLoop(1500, 50_000, () => {
    const { value, json } = oddJsonString(rng);
    const b = encoder.encode(json);
    const context = `seed ${seed}: ${shown(json)}`;
    assert.equal(stringUnits(b, 0, b.length), value.length, context);
    assert.equal(stringEquals(b, 0, b.length, value), true, context);
    assert.equal(stringEquals(b, 0, b.length, value + "x"), false, context);
    const oneByte = [...value].every((ch) => ch.charCodeAt(0) <= 0xff && ch.length === 1);
    assert.equal(readOneByteString(b, 0, b.length, out, 0, value.length), oneByte, context);
    if (oneByte) {
      assert.deepEqual([...out.subarray(0, value.length)], [...value].map((c) => c.charCodeAt(0)));
    }
    if (value.length > 0) {
      assert.equal(readOneByteString(b, 0, b.length, out, 0, value.length - 1), false, context);
    }
  });
  assert.ok(inputs > 100);
});

Deno.test("number tokens read as JSON.parse reads them", () => {
  const numbers = ["0", "-0", "7", "123456789012345", "1234567890123456789", "-12", "1.5", "1e3"];
  numbers.push("2.5E-3", "9007199254740993", "1e400", "-1e-400", "0.1", "5".repeat(400));
  for (const text of numbers) {
    const b = encoder.encode(text);
    assert.ok(Object.is(readNumber(b, 0, b.length), JSON.parse(text)), text);
  }
  for (const text of ['"1"', "true", "null", "[1]", "{}"]) {
    const b = encoder.encode(text);
    assert.ok(Number.isNaN(readNumber(b, 0, b.length)), text);
  }
});

Deno.test("an object's fields: escaped keys, a repeated key's last value, -1 when absent", () => {
  const names = ["", "action", "sdp"];
  const keyOf = (b: Uint8Array, start: number, end: number) => {
    for (let k = 1; k < names.length; k++) if (stringEquals(b, start, end, names[k])) return k;
    return 0;
  };
  const starts = new Int32Array(3);
  const ends = new Int32Array(3);
  const text = '{ "act\\u0069on" : "x", "other": {"action": 1}, "action" :[1, "y"] }';
  const b = encoder.encode(text);
  assert.equal(readObject(b, 0, b.length, keyOf, starts, ends), b.length);
  assert.equal(decoder.decode(b.subarray(starts[1], ends[1])), '[1, "y"]');
  assert.equal(starts[2], -1);
  assert.equal(ends[2], -1);
  const bad = encoder.encode('{"action": [1, "y"}');
  assert.equal(readObject(bad, 0, bad.length, keyOf, starts, ends), -1);
});

Deno.test("a long string's end is remembered for its input only, until the next input", () => {
  const b = encoder.encode(`["${"x".repeat(100)}", "${"y".repeat(200)}"]`);
  forgetStrings(b);
  assert.equal(skipValue(b, 0, b.length), b.length);
  assert.equal(skipString(b, 1, b.length), 103);
  // The same buffer with other bytes: a new input, scanned again.
  b.set(encoder.encode(`"${"z".repeat(50)}"`), 1);
  forgetStrings(b);
  assert.equal(skipString(b, 1, b.length), 53);
  // A copy is another input: never looked up.
  const copy = b.slice();
  copy[20] = 0x0a; // a raw newline: not a valid string
  assert.equal(skipString(copy, 1, copy.length), -1);
  forgetStrings(new Uint8Array(0));
});

const PIECES = [
  '"',
  "\\",
  "\\u00",
  "\\ud800",
  "null",
  ",",
  "{",
  "}",
  "[",
  "]",
  ":",
  "1e",
  "-",
  " ",
];

Deno.test("fuzz: jsonScan and JSON.parse agree on which mutated texts are JSON (seeded)", () => {
  const seed = fuzzSeed(0x6a73);
  const rng = new Rng(seed);
  let valid = 0;
  const inputs = fuzzLoop(3000, 200_000, () => {
    let text = JSON.stringify(randomJson(rng));
    for (let edits = rng.int(4); edits > 0; edits--) text = mutateText(rng, text, PIECES);
    // As the frame reader passes it on: UTF-8 (a lone surrogate is U+FFFD by then).
    text = decoder.decode(encoder.encode(text));
    const want = parseValid(text);
    if (want) valid++;
    assert.equal(scanValid(text), want, `seed ${seed}: ${shown(text)}`);
  });
  assert.ok(valid > inputs / 20 && valid < inputs, `${valid} of ${inputs} valid`);
});
