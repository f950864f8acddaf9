/**
 * `--trust-proxy` over real sockets: the client address otter stores and reports (`external ip`)
 * comes from the X-Forwarded-For chain walked right to left, all its header lines joined, past
 * trusted proxies; garbage stops at the last trusted hop; X-Real-IP counts only without
 * X-Forwarded-For. Untrusted peers' headers change nothing.
 */
import assert from "node:assert/strict";
import { bdecode, dict } from "./support/bencode.ts";
import { startWire } from "./support/wireServer.ts";

const HASH = "%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78";

function announce(port: number, headerLines: string[]): string {
  const path = `/announce?info_hash=${HASH}&peer_id=-OT0001-${
    String(port).padStart(12, "0")
  }&port=${port}&left=10`;
  return `GET ${path} HTTP/1.1\r\nHost: t\r\n${headerLines.map((l) => l + "\r\n").join("")}\r\n`;
}

function addressText(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(":");
}

/** Header lines sent through a trusted proxy on 127.0.0.1, and the client otter must see. */
const CASES: [string, string[], string][] = [
  ["appended chain", ["X-Forwarded-For: 6.6.6.6, 203.0.113.9"], "203.0.113.9"],
  [
    "two lines (HAProxy adds its own)",
    ["X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 203.0.113.9"],
    "203.0.113.9",
  ],
  [
    "three lines, other headers between, a trusted hop last",
    [
      "X-Forwarded-For: 6.6.6.6, 7.7.7.7",
      "User-Agent: test",
      "x-forwarded-for: 203.0.113.9",
      "Accept: */*",
      "X-FORWARDED-FOR: 127.0.0.5",
    ],
    "203.0.113.9",
  ],
  ["trusted addresses only", ["X-Forwarded-For: 127.0.0.9, 127.0.0.5"], "127.0.0.9"],
  [
    "trusted addresses only, two lines",
    ["X-Forwarded-For: 127.0.0.9", "X-Forwarded-For: 127.0.0.5"],
    "127.0.0.9",
  ],
  ["IPv6 with a port", ["X-Forwarded-For: 6.6.6.6, [2001:db8::7]:443"], "2001:db8:0:0:0:0:0:7"],
  ["garbage right of the client", ["X-Forwarded-For: 6.6.6.6, junk"], "127.0.0.1"],
  [
    "garbage on its own line",
    ["X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: junk", "X-Forwarded-For: 127.0.0.5"],
    "127.0.0.5",
  ],
  [
    "X-Forwarded-For wins over X-Real-IP",
    ["X-Real-IP: 198.51.100.7", "X-Forwarded-For: 203.0.113.9"],
    "203.0.113.9",
  ],
  ["X-Real-IP alone", ["X-Real-IP: 198.51.100.7"], "198.51.100.7"],
  ["two X-Real-IP lines", ["X-Real-IP: 6.6.6.6", "X-Real-IP: 198.51.100.7"], "127.0.0.1"],
];

Deno.test("trust-proxy: X-Forwarded-For chains and header lines from a trusted proxy", async () => {
  await using wire = startWire(["--trust-proxy", "127.0.0.0/8"]);
  await using client = await wire.connect();
  let port = 6000;
  for (const [what, lines, expected] of CASES) {
    await client.send(announce(port++, lines));
    const reply = dict(bdecode((await client.response()).body));
    assert.equal(addressText(reply["external ip"] as Uint8Array), expected, what);
  }
  // The swarm holds the resolved addresses: a peer list shows the appended chain's client.
  await client.send(announce(port++, ["X-Forwarded-For: 198.51.100.99"]));
  const last = dict(bdecode((await client.response()).body));
  const peers = last.peers as Uint8Array;
  const listed = new Set<string>();
  for (let i = 0; i < peers.length; i += 6) listed.add(addressText(peers.subarray(i, i + 4)));
  assert.ok(listed.has("203.0.113.9"), [...listed].join(" "));
  assert.ok(!listed.has("6.6.6.6"), [...listed].join(" "));
});

Deno.test("trust-proxy: the same headers from an untrusted peer change nothing", async () => {
  await using wire = startWire(["--trust-proxy", "10.0.0.0/8"]);
  await using client = await wire.connect();
  let port = 6100;
  for (const [what, lines] of CASES) {
    await client.send(announce(port++, lines));
    const reply = dict(bdecode((await client.response()).body));
    assert.equal(addressText(reply["external ip"] as Uint8Array), "127.0.0.1", what);
  }
});
