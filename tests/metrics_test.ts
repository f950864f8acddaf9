/**
 * `/metrics` over real sockets: the Prometheus text exposition is well formed (HELP and TYPE
 * before each family's samples, valid names and values, no repeated series), its values match a
 * known workload, the HTTP server's refused connections, timeouts and turned-away heads move
 * when provoked over raw sockets, and a client outside --stats-from gets 403.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { RawClient } from "./support/rawHttp.ts";
import { announcePacket, UdpTestClient } from "./support/udpClient.ts";
import { VERSION } from "../src/version.ts";
import { percentEscape } from "./support/torrent.ts";

function makeHash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 53 + i * 7) & 0xff);
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/;

interface Exposition {
  /** "name{labels}" → value */
  samples: Map<string, number>;
  types: Map<string, string>;
}

/** Parses and checks the text format; throws on anything malformed. */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith("\n"), "exposition must end with a newline");
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helped = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) {
      const name = line.split(" ")[2];
      assert.match(name, NAME);
      assert.ok(!helped.has(name), `second HELP for ${name}`);
      helped.add(name);
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      assert.ok(helped.has(name), `TYPE before HELP for ${name}`);
      assert.ok(["counter", "gauge"].includes(type), `type ${type}`);
      assert.ok(!types.has(name), `second TYPE for ${name}`);
      types.set(name, type);
      continue;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const [, name, labels = "", value] = m;
    assert.ok(types.has(name), `sample before TYPE: ${line}`);
    const number = Number(value);
    assert.ok(!Number.isNaN(number), `bad value: ${line}`);
    if (types.get(name) === "counter") assert.ok(number >= 0, `negative counter: ${line}`);
    const key = name + labels;
    assert.ok(!samples.has(key), `repeated series ${key}`);
    samples.set(key, number);
  }
  return { samples, types };
}

function value(e: Exposition, key: string): number {
  const v = e.samples.get(key);
  assert.ok(v !== undefined, `no series ${key}`);
  return v;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("metrics: well-formed exposition whose values match a known workload", async () => {
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const base = otter.http[0];
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const r = await fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(10_000) });
    return { status: r.status, type: r.headers.get("content-type") ?? "", body: await r.text() };
  };

  // HTTP: 2 leechers and 1 seeder on one torrent, a bad announce, a scrape, two full scrapes
  // (one gzip). UDP: a connect and one announce on a second torrent.
  const hash = makeHash(1);
  for (const [port, seeder] of [[8001, false], [8002, false], [8003, true]] as const) {
    const r = await get(
      `/announce?info_hash=${percentEscape(hash)}&peer_id=-OT0001-${
        String(port).padStart(12, "0")
      }&port=${port}&left=${seeder ? 0 : 9}${seeder ? "&event=completed" : ""}`,
    );
    assert.equal(r.status, 200);
  }
  await get("/announce?port=5");
  await get(`/scrape?info_hash=${percentEscape(hash)}`);
  await get("/scrape", { "accept-encoding": "identity" }); // fetch asks for gzip by default
  await get("/scrape", { "accept-encoding": "gzip" });
  const udp = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
  try {
    const id = await udp.connect();
    const reply = await udp.request(
      announcePacket({ connectionId: id, infoHash: makeHash(2), port: 8100 }),
    );
    assert.ok(reply !== null && reply.length >= 20);
    const forged = new Uint8Array(8).fill(7);
    const refused = await udp.request(
      announcePacket({ connectionId: forged, infoHash: makeHash(2), port: 8101 }),
    );
    assert.ok(refused !== null && refused[3] === 3, "an error reply");
  } finally {
    udp.close();
  }
  // The clean timer looks at an empty store once a second, then steps every 25 ms: on a table this
  // small a step is a pass.
  await sleep(1300);

  const r = await get("/metrics");
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  const e = parseExposition(r.body);
  const requests = (protocol: string, action: string, result: string) =>
    value(e, `otter_requests_total{protocol="${protocol}",action="${action}",result="${result}"}`);

  assert.equal(e.types.get("otter_requests_total"), "counter");
  assert.equal(requests("http", "announce", "ok"), 3);
  assert.equal(requests("http", "announce", "error"), 1);
  assert.equal(requests("http", "scrape", "ok"), 1);
  assert.equal(requests("http", "full_scrape", "ok"), 2);
  assert.equal(requests("http", "other", "ok"), 0); // this request counts once answered
  assert.equal(requests("udp", "connect", "ok"), 1);
  assert.equal(requests("udp", "announce", "ok"), 1);
  assert.equal(requests("udp", "scrape", "ok"), 0);
  assert.equal(requests("udp", "announce", "error"), 1);

  // The same answers by the client's family, and the errors by reason.
  const answered = (protocol: string, action: string, family: number) =>
    value(e, `otter_answered_total{protocol="${protocol}",action="${action}",family="${family}"}`);
  assert.equal(answered("http", "announce", 4), 3);
  assert.equal(answered("http", "announce", 6), 0);
  assert.equal(answered("http", "scrape", 4), 1);
  assert.equal(answered("udp", "announce", 4), 1);
  assert.equal(answered("udp", "scrape", 6), 0);
  const refusedFor = (protocol: string, reason: string) =>
    value(e, `otter_refused_total{protocol="${protocol}",reason="${reason}"}`);
  assert.equal(refusedFor("http", "bad_request"), 1);
  assert.equal(refusedFor("http", "access_denied"), 0);
  assert.equal(refusedFor("udp", "connection_id"), 1);
  assert.equal(refusedFor("udp", "bad_request"), 0);
  assert.ok(!e.samples.has(`otter_refused_total{protocol="http",reason="connection_id"}`));
  assert.ok(![...e.samples.keys()].some((k) => k.includes(`protocol="ws"`)), "no ws server yet");

  assert.equal(e.types.get("otter_torrents"), "gauge");
  assert.equal(value(e, "otter_torrents"), 2);
  assert.equal(value(e, `otter_peers{family="4"}`), 4);
  assert.equal(value(e, `otter_peers{family="6"}`), 0);
  assert.equal(value(e, `otter_seeders{family="4"}`), 1);
  assert.equal(value(e, `otter_seeders{family="6"}`), 0);

  assert.equal(value(e, "otter_full_scrape_builds_total"), 1);
  const buildSeconds = value(e, "otter_full_scrape_last_build_seconds");
  assert.ok(buildSeconds > 0 && buildSeconds < 10, `last build ${buildSeconds} s`);
  assert.ok(value(e, "otter_full_scrape_build_seconds_total") >= buildSeconds);
  assert.equal(value(e, "otter_full_scrape_last_build_torrents"), 1);
  const plainBytes = value(e, `otter_full_scrape_last_build_bytes{encoding="identity"}`);
  const gzipBytes = value(e, `otter_full_scrape_last_build_bytes{encoding="gzip"}`);
  assert.equal(
    plainBytes,
    "d5:filesd20:".length + 20 + "d8:completei1e10:downloadedi1e10:incompletei2eeee".length,
  );
  assert.ok(gzipBytes > 18, `gzip ${gzipBytes}`);
  assert.equal(value(e, `otter_full_scrape_served_total{encoding="identity"}`), 1);
  assert.equal(value(e, `otter_full_scrape_served_total{encoding="gzip"}`), 1);
  assert.equal(value(e, "otter_full_scrape_served_bytes_total"), plainBytes + gzipBytes);
  assert.equal(value(e, "otter_full_scrape_refused_total"), 0);

  assert.ok(value(e, "otter_clean_steps_total") >= 1);
  assert.ok(value(e, "otter_clean_passes_total") >= 1);
  assert.ok(value(e, "otter_clean_seconds_total") > 0);
  assert.ok(value(e, "otter_resident_memory_bytes") > 1e6);
  assert.ok(value(e, "otter_heap_used_bytes") > 0);
  assert.ok(value(e, "otter_store_bytes") > 0);
  assert.ok(value(e, "otter_uptime_seconds") >= 0);
  assert.equal(value(e, `otter_build_info{version="${VERSION}"}`), 1);

  // The metrics request itself shows up in the next scrape.
  const again = parseExposition((await get("/metrics")).body);
  assert.equal(
    value(again, `otter_requests_total{protocol="http",action="other",result="ok"}`),
    1,
  );
});

Deno.test("metrics: refused full scrapes are counted; outside --stats-from gets 403", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--no-full-scrape",
    "--stats-from",
    "127.0.0.1/32",
  ]);
  const base = otter.http[0];
  const full = await fetch(`${base}/scrape`);
  assert.equal(full.status, 403);
  await full.body?.cancel();
  const ok = await fetch(`${base}/metrics`);
  assert.equal(ok.status, 200);
  const e = parseExposition(await ok.text());
  assert.equal(value(e, "otter_full_scrape_refused_total"), 1);
  assert.equal(
    value(e, `otter_requests_total{protocol="http",action="full_scrape",result="error"}`),
    1,
  );

  await using outside = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--stats-from",
    "10.0.0.0/8",
  ]);
  const refused = await fetch(`${outside.http[0]}/metrics`);
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /--stats-from/);
});

Deno.test("metrics: HTTP connections refused at the cap, timed out, and heads turned away", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-connections",
    "3",
    "--header-timeout",
    "1",
    "--idle-timeout",
    "2",
  ]);
  const port = Number(new URL(otter.http[0]).port);
  const announce = `/announce?info_hash=${
    percentEscape(makeHash(3))
  }&peer_id=-OT0001-000000000001&port=1`;
  const request = (path: string, headers = "") =>
    `GET ${path} HTTP/1.1\r\nHost: t\r\n${headers}\r\n`;
  // Connections our own reads found closed at accept (all slots taken for a moment).
  let readsRefused = 0;
  /** GET `path` on a fresh connection closed by the server after the reply. */
  const read = async (path: string): Promise<string> => {
    const deadline = performance.now() + 5000;
    for (;;) {
      await using client = await RawClient.connect(port);
      try {
        await client.send(request(path, "Connection: close\r\n"));
        const r = await client.response();
        assert.equal(r.status, 200);
        return new TextDecoder().decode(r.body);
      } catch (error) {
        if (performance.now() > deadline) throw error;
        readsRefused++;
        await sleep(50);
      }
    }
  };
  const turnedAway = async (bytes: string, status: number) => {
    await using client = await RawClient.connect(port);
    await client.send(bytes);
    const r = await client.response();
    assert.equal(r.status, status, bytes.slice(0, 40));
    assert.equal(await client.closesWithin(2000), true);
  };

  const before = parseExposition(await read("/metrics"));
  assert.equal(before.types.get("otter_http_connections"), "gauge");
  assert.equal(value(before, "otter_http_connections"), 1); // this read
  for (
    const name of [
      "otter_http_connections_refused_total",
      "otter_http_connections_timed_out_total",
      "otter_http_rejected_requests_total",
    ]
  ) {
    assert.equal(before.types.get(name), "counter", name);
  }
  for (const [key, v] of before.samples) {
    if (key.startsWith("otter_http_") && key !== "otter_http_connections") {
      assert.equal(v, 0, key);
    }
  }

  // Heads turned away: request line and head over 8 KiB, garbage, HTTP/2.
  await turnedAway(request(`${announce}&key=${"a".repeat(9000)}`), 414);
  await turnedAway(request(announce, `X-Filler: ${"b".repeat(9000)}\r\n`), 431);
  await turnedAway("NOT HTTP AT ALL\r\n\r\n", 400);
  await turnedAway("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);

  // The cap: three keep-alive clients hold every slot, a fourth is closed unanswered.
  const held: RawClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const client = await RawClient.connect(port);
      held.push(client);
      await client.send(request(announce));
      assert.equal((await client.response()).status, 200);
    }
    await using extra = await RawClient.connect(port);
    await extra.send(request(announce)).catch(() => {});
    assert.equal(await extra.closesWithin(2000), true);
    assert.equal(extra.pending, 0);
  } finally {
    for (const client of held) client.close();
  }
  // otter sees those closes a moment later: until it has, new connections would still be refused.
  for (const deadline = performance.now() + 5000;;) {
    if (value(parseExposition(await read("/metrics")), "otter_http_connections") === 1) break;
    assert.ok(performance.now() < deadline, "the held connections are still open after 5 s");
    await sleep(20);
  }

  // A silent connection meets the header timeout (1 s), an idle keep-alive one the idle one (2 s).
  await using silent = await RawClient.connect(port);
  await using idle = await RawClient.connect(port);
  await idle.send(request(announce));
  assert.equal((await idle.response()).status, 200);
  assert.equal(await silent.closesWithin(4000), true);
  assert.equal(await idle.closesWithin(5000), true);

  const after = parseExposition(await read("/metrics"));
  assert.equal(value(after, "otter_http_connections"), 1);
  assert.equal(
    value(after, `otter_http_connections_refused_total{reason="max_connections"}`),
    1 + readsRefused,
  );
  assert.equal(value(after, `otter_http_connections_refused_total{reason="per_ip"}`), 0);
  assert.equal(value(after, `otter_http_connections_timed_out_total{reason="header"}`), 1);
  assert.equal(value(after, `otter_http_connections_timed_out_total{reason="idle"}`), 1);
  assert.equal(value(after, `otter_http_connections_timed_out_total{reason="send"}`), 0);
  assert.equal(value(after, "otter_http_pending_write_bytes"), 0);
  const rejected = (status: number) =>
    value(after, `otter_http_rejected_requests_total{status="${status}"}`);
  assert.deepEqual(
    [400, 405, 414, 431, 500, 505].map(rejected),
    [1, 0, 1, 1, 0, 1],
  );

  // /stats JSON (tcp4) shows the same figures.
  const stats = JSON.parse(await read("/stats?mode=tcp4&format=json")).tcp4;
  assert.deepEqual(stats.connections, {
    open: 1,
    refused: 1 + readsRefused,
    refusedPerIp: 0,
    headerTimeouts: 1,
    idleTimeouts: 1,
    sendTimeouts: 0,
    pendingWriteBytes: 0,
  });
  assert.deepEqual(stats.rejected, { 400: 1, 405: 0, 414: 1, 431: 1, 500: 0, 505: 1 });
});
