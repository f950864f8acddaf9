/**
 * The client-address resolver (src/policy/clientAddress.ts): X-Forwarded-For walked right to left past
 * trusted proxies, garbage stopping the walk at the last trusted hop, X-Real-IP only without
 * X-Forwarded-For, headers ignored from untrusted peers.
 */
import assert from "node:assert/strict";
import { CidrSet } from "../src/policy/cidr.ts";
import { parseIpAddress } from "../src/protocol/ipAddress.ts";
import { resolveClient } from "../src/policy/clientAddress.ts";

const TRUSTED = CidrSet.parse(["127.0.0.0/8", "10.0.0.0/8", "::1/128", "fd00::/8"]);

/** The address text otter resolves for a request from `peer` carrying `headers`. */
function resolve(
  peer: string,
  headers: Record<string, string>,
  trusted: CidrSet | null = TRUSTED,
): string {
  const address = new Uint8Array(16);
  const family = resolveClient(parseIpAddress(peer, address), address, trusted, {
    get: (name) => headers[name] ?? null,
  });
  if (family === 0) return "unusable";
  if (family === 4) return Array.from(address.subarray(0, 4)).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((address[i] << 8) | address[i + 1]).toString(16));
  return groups.join(":");
}

Deno.test("resolveClient: an appended chain gives the rightmost untrusted address", () => {
  const cases: [string, string][] = [
    // nginx $proxy_add_x_forwarded_for / HAProxy forwardfor after a client that sent its own.
    ["6.6.6.6, 203.0.113.9", "203.0.113.9"],
    ["6.6.6.6, 7.7.7.7, 203.0.113.9", "203.0.113.9"],
    // Two of our proxies in front: skipped.
    ["6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"],
    ["203.0.113.9, 10.0.0.2, 127.0.0.1", "203.0.113.9"],
    ["203.0.113.9,10.0.0.2,10.0.0.3", "203.0.113.9"],
    // The client put a trusted address in front of its claim: still its real address.
    ["10.0.0.5, 203.0.113.9", "203.0.113.9"],
    // Ports, brackets, quotes, IPv6, IPv4-mapped.
    ["6.6.6.6, 203.0.113.9:4711", "203.0.113.9"],
    ['6.6.6.6, "[2001:db8::7]:443", [fd00::1]:80', "2001:db8:0:0:0:0:0:7"],
    ["2001:db8::8, ::1", "2001:db8:0:0:0:0:0:8"],
    ["::ffff:203.0.113.10", "203.0.113.10"],
  ];
  for (const [xff, client] of cases) {
    assert.equal(resolve("127.0.0.1", { "x-forwarded-for": xff }), client, xff);
  }
});

Deno.test("resolveClient: a chain made only of trusted addresses gives its leftmost", () => {
  assert.equal(resolve("127.0.0.1", { "x-forwarded-for": "10.1.2.3" }), "10.1.2.3");
  assert.equal(resolve("127.0.0.1", { "x-forwarded-for": "10.1.2.3, 10.0.0.2" }), "10.1.2.3");
  assert.equal(resolve("::1", { "x-forwarded-for": "fd00::5, 127.0.0.1" }), "fd00:0:0:0:0:0:0:5");
});

Deno.test("resolveClient: garbage stops the walk at the last trusted hop", () => {
  const cases: [string, string, string][] = [
    ["127.0.0.1", "6.6.6.6, junk", "127.0.0.1"],
    ["127.0.0.1", "6.6.6.6, junk, 10.0.0.2", "10.0.0.2"],
    ["127.0.0.1", "6.6.6.6, unknown, 10.0.0.2", "10.0.0.2"],
    ["127.0.0.1", "6.6.6.6,, 10.0.0.2", "10.0.0.2"],
    ["127.0.0.1", "6.6.6.6, 10.0.0.2,", "127.0.0.1"],
    ["127.0.0.1", "", "127.0.0.1"],
    ["127.0.0.1", ",", "127.0.0.1"],
    ["127.0.0.1", "01.2.3.4", "127.0.0.1"],
    ["127.0.0.1", "6.6.6.6 7.7.7.7", "127.0.0.1"],
    ["127.0.0.1", "a".repeat(3000), "127.0.0.1"],
    // Garbage left of the client's address is never reached.
    ["127.0.0.1", "junk, 203.0.113.9", "203.0.113.9"],
  ];
  for (const [peer, xff, client] of cases) {
    assert.equal(resolve(peer, { "x-forwarded-for": xff }), client, JSON.stringify(xff));
  }
});

Deno.test("resolveClient: X-Real-IP only without X-Forwarded-For", () => {
  assert.equal(resolve("127.0.0.1", { "x-real-ip": "198.51.100.7" }), "198.51.100.7");
  assert.equal(resolve("127.0.0.1", { "x-real-ip": " 2001:db8::3 " }), "2001:db8:0:0:0:0:0:3");
  // X-Forwarded-For wins, whatever it holds.
  const both = { "x-forwarded-for": "6.6.6.6, 203.0.113.9", "x-real-ip": "198.51.100.7" };
  assert.equal(resolve("127.0.0.1", both), "203.0.113.9");
  assert.equal(
    resolve("127.0.0.1", { "x-forwarded-for": "junk", "x-real-ip": "1.2.3.4" }),
    "127.0.0.1",
  );
  // One address only: a list (two header lines joined) or a port is ignored.
  assert.equal(resolve("127.0.0.1", { "x-real-ip": "6.6.6.6, 198.51.100.7" }), "127.0.0.1");
  assert.equal(resolve("127.0.0.1", { "x-real-ip": "198.51.100.7:80" }), "127.0.0.1");
});

Deno.test("resolveClient: headers from untrusted peers, or with no trusted networks, are ignored", () => {
  const headers = { "x-forwarded-for": "203.0.113.9", "x-real-ip": "198.51.100.7" };
  assert.equal(resolve("192.0.2.1", headers), "192.0.2.1");
  assert.equal(resolve("2001:db8::9", headers), "2001:db8:0:0:0:0:0:9");
  assert.equal(resolve("127.0.0.1", headers, null), "127.0.0.1");
  assert.equal(resolve("not an address", headers), "unusable");
});
