/**
 * The reply decoder of the socket-level tests (tests/support/bencode.ts `bdecode`): npm:bencode
 * reads, and the canonical re-encoding refuses what npm:bencode alone lets through. Each refused
 * input is shown to be accepted by plain npm:bencode first, so the strictness is the helper's.
 */
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import npmBencode from "npm:bencode@4.0.1";
import { bdecode, dict } from "./support/bencode.ts";

function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

Deno.test("bdecode: canonical replies decode, binary keys and values as bytes", () => {
  assert.deepEqual(
    bdecode(bytes("d8:completei3e10:incompletei0e5:peers6:\x7f\x00\x00\x01\x1a\xe1e")),
    {
      complete: 3,
      incomplete: 0,
      peers: bytes("\x7f\x00\x00\x01\x1a\xe1"),
    },
  );
  assert.deepEqual(bdecode(bytes("li-7ei0e0:lee")), [-7, 0, new Uint8Array(0), []]);
  // A scrape: one key is not UTF-8 (npm:bencode hexes it), one is; both come back as bytes.
  const binary = "\xff\x01" + "\x80".repeat(18);
  const ascii = "ABCDEFGHIJKLMNOPQRST";
  const scrape = `d5:filesd20:${ascii}d8:completei1ee20:${binary}d8:completei2eeee`;
  const files = dict(dict(bdecode(bytes(scrape))).files);
  assert.deepEqual(Object.keys(files), [ascii, binary]);
  assert.deepEqual(files[binary], { complete: 2 });
});

Deno.test("bdecode: refuses what npm:bencode alone accepts", () => {
  const lenient = [
    ["unsorted keys", "d1:bi1e1:ai2ee"],
    ["a repeated key", "d1:ai1e1:ai2ee"],
    ["unsorted binary keys", "d2:\xff\xffi1e2:\xff\x01i2ee"],
    ["a leading zero in an integer", "i03e"],
    ["negative zero", "i-0e"],
    ["an empty integer", "ie"],
    ["a plus sign", "i+4e"],
    ["a leading zero in a length", "03:abc"],
    ["a string running past the end", "5:abc"],
    ["trailing bytes", "i1ei2e"],
    ["a float", "i1.5e"],
  ];
  for (const [what, input] of lenient) {
    npmBencode.decode(bytes(input)); // does not throw: npm:bencode has no strict mode
    assert.throws(() => bdecode(bytes(input)), SyntaxError, what);
  }
  for (const broken of ["", "d", "l", "i12", "4:ab", "x"]) {
    assert.throws(() => bdecode(bytes(broken)), SyntaxError, JSON.stringify(broken));
  }
});

Deno.test("bdecode: hex-looking keys, text or bytes, come back as they were sent", () => {
  // npm:bencode gives "aa" for both the text key "aa" and the byte key 0xaa.
  assert.deepEqual(bdecode(bytes("d2:aai1ee")), { aa: 1 });
  assert.deepEqual(bdecode(bytes("d1:\xaai1ee")), { "\xaa": 1 });
  // An ASCII info hash of hex digits next to a binary one (npm:bencode hexes that to "8901…").
  const digits = "01234567890123456789";
  const binary = "\x89\x01\x23\x45\x67\x89\x01\x23\x45\x67\x89\x01\x23\x45\x67\x89\x01\x23\x45\x67";
  const scrape = `d5:filesd20:${digits}d8:completei1ee20:${binary}d8:completei2eeee`;
  const files = dict(dict(bdecode(bytes(scrape))).files);
  assert.deepEqual(Object.keys(files), [digits, binary]);
  assert.deepEqual(files[digits], { complete: 1 });
  assert.deepEqual(files[binary], { complete: 2 });
  // npm:bencode cannot hold both the text "0123456789" and the bytes 01 23 45 67 89: refused.
  assert.throws(
    () => bdecode(bytes("d5:\x01\x23\x45\x67\x89i1e10:0123456789i2ee")),
    /not canonical/,
  );
});
