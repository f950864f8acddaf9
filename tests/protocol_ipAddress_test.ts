/**
 * protocol/ipAddress.ts, otter's one IP address parser: IPv4, IPv6 and IPv4-mapped forms, and
 * X-Forwarded-For entries.
 */
import assert from "node:assert/strict";
import { isIP } from "node:net";
import { parseForwardedEntry, parseIpAddress } from "../src/protocol/ipAddress.ts";
import { formatV6 } from "./support/ipText.ts";

/** Seeded xorshift32: uint32 values, reproducible across runs. */
function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

function parsed(text: string): [number, number[]] {
  const out = new Uint8Array(16).fill(0xee);
  const family = parseIpAddress(text, out);
  return [family, family === 0 ? [] : Array.from(out.subarray(0, family === 4 ? 4 : 16))];
}

function v6(...words: number[]): number[] {
  return words.flatMap((w) => [w >>> 8, w & 255]);
}

Deno.test("parseIpAddress: IPv4 forms", () => {
  assert.deepEqual(parsed("1.2.3.4"), [4, [1, 2, 3, 4]]);
  assert.deepEqual(parsed("0.0.0.0"), [4, [0, 0, 0, 0]]);
  assert.deepEqual(parsed("255.255.255.255"), [4, [255, 255, 255, 255]]);
  assert.deepEqual(parsed("10.0.200.9"), [4, [10, 0, 200, 9]]);
  assert.deepEqual(parsed(" 1.2.3.4\t"), [4, [1, 2, 3, 4]]);
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "1.2.3.04",
      "1.2.3.00",
      "256.1.1.1",
      "1.2.3.256",
      "1..2.3",
      ".1.2.3",
      "1.2.3.",
      "1.2.3.4 5",
      "1.2.3.a",
      "-1.2.3.4",
      "+1.2.3.4",
      "1.2.3.4/8",
      "[1.2.3.4]",
      "1.2.3.4%eth0",
      "１.2.3.4",
      "1.2.3.99999999999",
    ]
  ) assert.equal(parseIpAddress(bad, new Uint8Array(16)), 0, bad);
});

Deno.test("parseIpAddress: IPv6 forms", () => {
  assert.deepEqual(parsed("::"), [6, v6(0, 0, 0, 0, 0, 0, 0, 0)]);
  assert.deepEqual(parsed("::1"), [6, v6(0, 0, 0, 0, 0, 0, 0, 1)]);
  assert.deepEqual(parsed("1::"), [6, v6(1, 0, 0, 0, 0, 0, 0, 0)]);
  assert.deepEqual(parsed("2001:DB8::a:B"), [6, v6(0x2001, 0xdb8, 0, 0, 0, 0, 0xa, 0xb)]);
  assert.deepEqual(parsed("1:2:3:4:5:6:7:8"), [6, v6(1, 2, 3, 4, 5, 6, 7, 8)]);
  assert.deepEqual(parsed("1:2:3:4:5:6:7::"), [6, v6(1, 2, 3, 4, 5, 6, 7, 0)]);
  assert.deepEqual(parsed("::2:3:4:5:6:7:8"), [6, v6(0, 2, 3, 4, 5, 6, 7, 8)]);
  assert.deepEqual(parsed("1:0:0:4::8"), [6, v6(1, 0, 0, 4, 0, 0, 0, 8)]);
  assert.deepEqual(parsed("0001:0002::ffff"), [6, v6(1, 2, 0, 0, 0, 0, 0, 0xffff)]);
  assert.deepEqual(parsed("[::1]"), [6, v6(0, 0, 0, 0, 0, 0, 0, 1)]);
  assert.deepEqual(parsed("::1.2.3.4"), [6, v6(0, 0, 0, 0, 0, 0, 0x102, 0x304)]);
  assert.deepEqual(parsed("64:ff9b::1.2.3.4"), [6, v6(0x64, 0xff9b, 0, 0, 0, 0, 0x102, 0x304)]);
  assert.deepEqual(parsed("1:2:3:4:5:6:1.2.3.4"), [6, v6(1, 2, 3, 4, 5, 6, 0x102, 0x304)]);
  // Zone ids are accepted and dropped.
  assert.deepEqual(parsed("fe80::1%eth0"), [6, v6(0xfe80, 0, 0, 0, 0, 0, 0, 1)]);
  assert.deepEqual(parsed("[fe80::1%25]"), [6, v6(0xfe80, 0, 0, 0, 0, 0, 0, 1)]);
  for (
    const bad of [
      ":",
      ":::",
      "1::2::3",
      "::1::",
      ":1::",
      "1:::2",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7:8::",
      "12345::",
      "1:2:3:4:5:6:7:",
      "g::1",
      "::1.2.3",
      "::01.2.3.4",
      "1.2.3.4::",
      "::1.2.3.4:5",
      "1:2:3:4:5:6:7:1.2.3.4",
      "[::1",
      "::1]",
      "[[::1]]",
      "fe80::1%",
      "%eth0",
      ":: 1",
    ]
  ) assert.equal(parseIpAddress(bad, new Uint8Array(16)), 0, bad);
});

Deno.test("parseIpAddress: IPv4-mapped IPv6 is IPv4", () => {
  assert.deepEqual(parsed("::ffff:1.2.3.4"), [4, [1, 2, 3, 4]]);
  assert.deepEqual(parsed("::FFFF:102:304"), [4, [1, 2, 3, 4]]);
  assert.deepEqual(parsed("0:0:0:0:0:ffff:a00:1"), [4, [10, 0, 0, 1]]);
  assert.deepEqual(parsed("[::ffff:127.0.0.1]"), [4, [127, 0, 0, 1]]);
  // Not mapped: ::fffe:… and ::ffff:0:… (SIIT) stay IPv6.
  assert.equal(parsed("::fffe:1.2.3.4")[0], 6);
  assert.equal(parsed("::ffff:0:1.2.3.4")[0], 6);
});

Deno.test("parseIpAddress: random addresses round-trip (property)", () => {
  const random = seeded(7);
  const out = new Uint8Array(16);
  for (let n = 0; n < 20000; n++) {
    const a = [random() & 255, random() & 255, random() & 255, random() & 255];
    assert.equal(parseIpAddress(a.join("."), out), 4);
    assert.deepEqual(Array.from(out.subarray(0, 4)), a);

    const b = Array.from({ length: 16 }, () => random() & 255);
    // Zero some words so `::` shows up in many positions.
    for (let i = 0; i < 16; i += 2) if ((random() & 3) === 0) b[i] = b[i + 1] = 0;
    const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 255 && b[11] === 255;
    for (const compress of [false, true]) {
      const text = formatV6(b, compress);
      const family = parseIpAddress(text, out);
      if (mapped) {
        assert.equal(family, 4, text);
        assert.deepEqual(Array.from(out.subarray(0, 4)), b.slice(12), text);
      } else {
        assert.equal(family, 6, text);
        assert.deepEqual(Array.from(out), b, text);
      }
    }
  }
});

Deno.test("parseIpAddress: agrees with node:net isIP on random junk (differential)", () => {
  const random = seeded(99);
  const alphabet = "0123456789abcdefABCDEFg:.:.::..  ";
  const out = new Uint8Array(16);
  let valid = 0;
  for (let n = 0; n < 100000; n++) {
    const length = 1 + (random() % 20);
    let text = "";
    for (let i = 0; i < length; i++) text += alphabet[random() % alphabet.length];
    // Node does not trim blanks; compare on texts without edge blanks.
    if (text.trim() !== text) continue;
    const ours = parseIpAddress(text, out);
    const node = isIP(text);
    assert.equal(ours === 0 ? 0 : node === 6 && ours === 4 ? 6 : ours, node, JSON.stringify(text));
    if (node !== 0) valid++;
  }
  assert.ok(valid > 50, `only ${valid} valid addresses generated`);
});

/** The first entry of an X-Forwarded-For list, as the resolver cuts it (up to the first comma). */
function firstEntry(list: string, out: Uint8Array): 0 | 4 | 6 {
  const comma = list.indexOf(",");
  return parseForwardedEntry(list, 0, comma < 0 ? list.length : comma, out);
}

Deno.test("parseForwardedEntry: one address, blanks, ports, brackets", () => {
  const out = new Uint8Array(16);
  const cases: [string, number, number[]][] = [
    ["1.2.3.4", 4, [1, 2, 3, 4]],
    ["1.2.3.4, 5.6.7.8", 4, [1, 2, 3, 4]],
    ["  10.1.1.1 ,10.2.2.2", 4, [10, 1, 1, 1]],
    ["1.2.3.4:5678", 4, [1, 2, 3, 4]],
    ["1.2.3.4:5678, 9.9.9.9", 4, [1, 2, 3, 4]],
    ["[::1]:80", 6, v6(0, 0, 0, 0, 0, 0, 0, 1)],
    ["[::1]", 6, v6(0, 0, 0, 0, 0, 0, 0, 1)],
    ["2001:db8::1, 1.2.3.4", 6, v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)],
    ["::ffff:1.2.3.4", 4, [1, 2, 3, 4]],
    ["[::ffff:1.2.3.4]:443", 4, [1, 2, 3, 4]],
    ['"[2001:db8::2]:8080"', 6, v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)],
    ["\t1.2.3.4\t", 4, [1, 2, 3, 4]],
  ];
  for (const [text, family, bytes] of cases) {
    out.fill(0xee);
    assert.equal(firstEntry(text, out), family, text);
    assert.deepEqual(Array.from(out.subarray(0, family === 4 ? 4 : 16)), bytes, text);
  }
  for (
    const bad of [
      "",
      " ",
      ",1.2.3.4",
      "unknown",
      "unknown, 1.2.3.4",
      "1.2.3.4:",
      "1.2.3.4:123456",
      "1.2.3.4:80a",
      "[::1]:",
      "[::1]x",
      "[::1",
      "[1.2.3.4]:80",
      "::1:80:",
      "_hidden",
      "01.2.3.4",
    ]
  ) assert.equal(firstEntry(bad, out), 0, JSON.stringify(bad));
});
