/**
 * otter's HTTP tracker over real loopback sockets, IPv4 and IPv6: announce and scrape replies
 * decoded by an independent bencode reader, failure reasons, and HTTP-level refusals.
 */
import assert from "node:assert/strict";
import { ipv6Missing, needsIpv6 } from "./support/ipv6.ts";
import { startOtter } from "./support/otterProcess.ts";
import { bdecode, type Decoded, dict, latin1 } from "./support/bencode.ts";
import { percentEscape } from "./support/torrent.ts";

function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 17 + i * 3) & 0xff);
}

function bytes(value: Decoded | undefined): Uint8Array {
  assert.ok(value instanceof Uint8Array, "expected a byte string");
  return value;
}

async function get(url: string): Promise<{ status: number; body: Uint8Array }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: new Uint8Array(await response.arrayBuffer()) };
}

Deno.test("HTTP tracker: announce and scrape over IPv4 and IPv6", async (t) => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    ...(ipv6Missing === null ? ["--http", "[::1]:0"] : []),
    "--udp",
    "127.0.0.1:0",
    "--interval",
    "600",
  ]);
  for (const [index, family] of [[0, 4], [1, 6]] as const) {
    if (family === 6 && ipv6Missing !== null) {
      await t.step({ ...needsIpv6("IPv6: every step"), fn: () => {} });
      continue;
    }
    const base = otter.http[index];
    const infoHash = hash(family);
    const announce = async (port: number, extra = "") => {
      const url = `${base}/announce?info_hash=${percentEscape(infoHash)}&peer_id=-OT0001-${
        String(port).padStart(12, "0")
      }&port=${port}&uploaded=0&downloaded=0&compact=1${extra}`;
      const r = await get(url);
      assert.equal(r.status, 200);
      return { raw: r.body, reply: dict(bdecode(r.body)) };
    };

    await t.step(`IPv${family}: reply keys in order, peers of my family, external ip`, async () => {
      const first = await announce(2001, "&left=100&event=started");
      assert.equal(first.reply["failure reason"], undefined);
      const keys = Object.keys(first.reply);
      const expected = [
        "complete",
        "downloaded",
        "external ip",
        "incomplete",
        "interval",
        "min interval",
        "peers",
      ];
      if (family === 6) expected.push("peers6");
      assert.deepEqual(keys, expected);
      assert.equal(first.reply.incomplete, 1);
      assert.equal(first.reply.complete, 0);
      const interval = first.reply.interval as number;
      assert.ok(interval >= 540 && interval <= 660, `interval ${interval}`);
      assert.equal(first.reply["min interval"], 300);
      const ext = bytes(first.reply["external ip"]);
      assert.deepEqual([...ext], family === 4 ? [127, 0, 0, 1] : [...new Uint8Array(15), 1]);
      // The raw body is in sorted key order as bencode requires.
      const text = latin1(first.raw);
      assert.ok(text.startsWith("d8:completei0e10:downloadedi0e11:external ip"), text);

      const second = await announce(2002, "&left=100");
      const list = bytes(second.reply[family === 4 ? "peers" : "peers6"]);
      const entry = family === 4 ? 6 : 18;
      assert.equal(list.length, entry);
      assert.equal((list[entry - 2] << 8) | list[entry - 1], 2001);
      if (family === 6) assert.equal(bytes(second.reply.peers).length, 0);
    });

    await t.step(`IPv${family}: seeders, completed, numwant, stopped`, async () => {
      const seeder = await announce(2003, "&left=0&event=completed");
      assert.equal(seeder.reply.complete, 1);
      assert.equal(seeder.reply.downloaded, 1);
      const few = await announce(2001, "&left=5&numwant=1");
      assert.equal(
        bytes(few.reply[family === 4 ? "peers" : "peers6"]).length,
        family === 4 ? 6 : 18,
      );
      const stopped = await announce(2002, "&left=5&event=stopped");
      assert.equal(stopped.reply.incomplete, 1);
      const listKey = family === 4 ? "peers" : "peers6";
      assert.equal(bytes(stopped.reply[listKey] ?? new Uint8Array()).length, 0);
    });

    await t.step(
      `IPv${family}: scrape several hashes, sorted, unknown ones with zeros`,
      async () => {
        const other = hash(50 + family);
        const r = await get(
          `${base}/scrape?info_hash=${percentEscape(other)}&info_hash=${percentEscape(infoHash)}`,
        );
        assert.equal(r.status, 200);
        const files = dict(dict(bdecode(r.body)).files);
        assert.equal(Object.keys(files).length, 2);
        const key = latin1(infoHash);
        const mine = dict(files[key]);
        assert.deepEqual(mine, { complete: 1, downloaded: 1, incomplete: 1 });
        const unknown = dict(files[latin1(other)]);
        assert.deepEqual(unknown, { complete: 0, downloaded: 0, incomplete: 0 });
      },
    );

    await t.step(`IPv${family}: bad announces get a bencoded failure reason`, async () => {
      const cases: [string, RegExp][] = [
        [`${base}/announce?peer_id=${"a".repeat(20)}&port=1`, /info_hash/],
        [`${base}/announce?info_hash=abc&peer_id=${"a".repeat(20)}&port=1`, /info_hash/],
        [
          `${base}/announce?info_hash=${percentEscape(infoHash)}&peer_id=${"a".repeat(20)}&port=0`,
          /port/,
        ],
        [
          `${base}/announce?info_hash=${percentEscape(infoHash)}&peer_id=${
            "a".repeat(20)
          }&port=99999`,
          /port/,
        ],
        [
          `${base}/announce?info_hash=${percentEscape(infoHash)}&peer_id=${
            "a".repeat(20)
          }&port=1&numwant=x`,
          /numwant/,
        ],
        [
          `${base}/announce?info_hash=%zz${percentEscape(infoHash)}&peer_id=${
            "a".repeat(20)
          }&port=1`,
          /./,
        ],
        [`${base}/scrape?info_hash=short`, /info_hash/],
      ];
      for (const [url, reason] of cases) {
        const r = await get(url);
        assert.equal(r.status, 200, url);
        const failure = dict(bdecode(r.body))["failure reason"];
        assert.ok(failure instanceof Uint8Array, url);
        assert.match(new TextDecoder().decode(failure), reason, url);
      }
    });
  }

  await t.step("HTTP refusals: unknown path 404, bad method 405, oversized 414", async () => {
    const base = otter.http[0];
    assert.equal((await get(`${base}/nothing-here`)).status, 404);
    const post = await fetch(`${base}/announce`, { method: "POST", body: "x" });
    await post.body?.cancel();
    assert.equal(post.status, 405);
    const long = await get(`${base}/announce?key=${"a".repeat(9000)}`);
    assert.equal(long.status, 414);
    // Still serving.
    assert.equal((await get(`${base}/scrape?info_hash=${percentEscape(hash(1))}`)).status, 200);
  });
});
