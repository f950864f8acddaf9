/**
 * `/stats` over real sockets: after a known HTTP + UDP workload every mode answers 200 with the
 * right figures (text and JSON), bad requests get 400, and --stats-from is checked against the
 * client address resolved through trusted proxies (forwarding headers from others: 403).
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { RawClient } from "./support/rawHttp.ts";
import { bdecode, type Decoded } from "./support/bencode.ts";
import { announcePacket, scrapePacket, UdpTestClient } from "./support/udpClient.ts";
import { STATS_MODES } from "../src/observe/stats.ts";
import { VERSION } from "../src/version.ts";
import { percentEscape } from "./support/torrent.ts";

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function makeHash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 37 + i * 11) & 0xff);
}

const A = makeHash(1); // 3 leechers + 2 seeders over HTTP
const B = makeHash(2); // 1 leecher over HTTP
const C = makeHash(3); // 1 leecher + 1 seeder over UDP

async function httpAnnounce(base: string, hash: Uint8Array, port: number, seeder: boolean) {
  const url = `${base}/announce?info_hash=${percentEscape(hash)}&peer_id=-OT0001-${
    String(port).padStart(12, "0")
  }&port=${port}&uploaded=0&downloaded=0&compact=1&left=${seeder ? 0 : 50}${
    seeder ? "&event=completed" : ""
  }`;
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const reply = bdecode(new Uint8Array(await r.arrayBuffer())) as Record<string, Decoded>;
  return reply;
}

/**
 * The workload: HTTP 6 good announces, 1 bad one, 1 scrape, 1 full scrape (9 requests); UDP 1
 * connect, 2 announces, 1 scrape (4 requests). 3 torrents, 8 peers, 3 seeders, downloaded 3.
 */
async function workload(base: string, udpHost: string, udpPort: number): Promise<void> {
  let port = 7000;
  for (let i = 0; i < 3; i++) await httpAnnounce(base, A, port++, false);
  for (let i = 0; i < 2; i++) await httpAnnounce(base, A, port++, true);
  await httpAnnounce(base, B, port++, false);
  const bad = await fetch(`${base}/announce?port=1`, { signal: AbortSignal.timeout(5000) });
  assert.ok(
    (bdecode(new Uint8Array(await bad.arrayBuffer())) as Record<string, Decoded>)[
      "failure reason"
    ],
  );
  const scrape = await fetch(
    `${base}/scrape?info_hash=${percentEscape(A)}&info_hash=${percentEscape(B)}`,
  );
  await scrape.arrayBuffer();
  const full = await fetch(`${base}/scrape`, { signal: AbortSignal.timeout(10_000) });
  await full.arrayBuffer();

  const udp = new UdpTestClient(udpHost, udpPort);
  try {
    const id = await udp.connect();
    for (const [p, seeder] of [[7100, false], [7101, true]] as const) {
      const reply = await udp.request(announcePacket({
        connectionId: id,
        infoHash: C,
        port: p,
        left: seeder ? 0 : 100,
        event: seeder ? 1 : 2,
      }));
      assert.ok(reply !== null && reply.length >= 20, "no UDP announce reply");
    }
    const reply = await udp.request(scrapePacket(id, [A]));
    assert.ok(reply !== null && reply.length === 20, "no UDP scrape reply");
  } finally {
    udp.close();
  }
}

Deno.test("stats: every mode after a known workload, text and JSON", async (t) => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--peer-timeout",
    "600",
  ]);
  const base = otter.http[0];
  await workload(base, otter.udp[0].hostname, otter.udp[0].port);

  // Each stats request counts as one more HTTP request once answered.
  let statsRequests = 0;
  const stats = async (query: string) => {
    const r = await fetch(`${base}/stats${query}`, { signal: AbortSignal.timeout(10_000) });
    const body = await r.text();
    statsRequests++;
    return { status: r.status, type: r.headers.get("content-type") ?? "", body };
  };
  const text = async (query: string) => {
    const r = await stats(query);
    assert.equal(r.status, 200, `${query}: ${r.body}`);
    assert.match(r.type, /^text\/plain/);
    return r.body.trimEnd().split("\n");
  };
  const uptime = /^\d+ seconds \(0 hours\)$/;

  await t.step("peer (also the default) and torr", async () => {
    const lines = await text("");
    assert.deepEqual(lines, ["8", "3", "otter serving 3 torrents", "otter"]);
    assert.deepEqual(await text("?mode=peer"), lines);
    assert.deepEqual(await text("?mode=torr"), ["3", "0", "otter serving 3 torrents", "otter"]);
  });

  await t.step("conn, tcp4, udp4, scrp", async () => {
    const http = 9 + statsRequests;
    const conn = await text("?mode=conn");
    assert.equal(conn[0], String(http + 4));
    assert.equal(conn[1], String(6 + 2 + 1)); // announces (both protocols) + UDP connects
    assert.match(conn[2], uptime);
    assert.match(conn[3], /^otter requests, \d+ req\/s :: \d+ success\/s\.$/);
    const tcp = await text("?mode=tcp4");
    assert.deepEqual(tcp.slice(0, 2), [String(http + 1), "6"]);
    assert.match(tcp[2], uptime);
    const udp = await text("?mode=udp4");
    assert.deepEqual(udp.slice(0, 2), ["4", "3"]);
    assert.match(
      udp[3],
      / :: sockets: 0 truncated, 0 handler errors, 0 receive errors, 0 replies dropped\.$/,
    );
    const scrp = await text("?mode=scrp");
    assert.deepEqual(scrp.slice(0, 2), ["1", "1"]);
    assert.match(scrp[3], /^otter scrape stats/);
  });

  await t.step("fscr, completed, version", async () => {
    const fscr = await text("?mode=fscr");
    assert.deepEqual(fscr.slice(0, 2), ["1", "1"]); // served, builds
    assert.match(fscr[3], /last build 2 torrents/); // built before the UDP torrent came
    const completed = await text("?mode=completed");
    assert.deepEqual(completed.slice(0, 2), ["3", "2"]); // downloaded sum, torrents with any
    assert.deepEqual(await text("?mode=version"), [`otter ${VERSION}`]);
  });

  await t.step("top10 and top100: by peers, with seeders", async () => {
    const expected = [`${hex(A)}\t5\t2`, `${hex(C)}\t2\t1`, `${hex(B)}\t1\t0`];
    const top10 = await text("?mode=top10");
    assert.match(top10[0], /^Top 10 torrents by peers/);
    assert.deepEqual(top10.slice(1), expected);
    const top100 = await text("?mode=top100");
    assert.match(top100[0], /^Top 100 torrents by peers/);
    assert.deepEqual(top100.slice(1), expected);
  });

  await t.step("renew: peers by minutes since their last announce", async () => {
    const lines = await text("?mode=renew");
    assert.equal(lines.length, 10); // --peer-timeout 600
    assert.deepEqual(lines.map((l) => l.split(" ")[0]), [..."0123456789"].map((d) => `0${d}`));
    const counts = lines.map((l) => Number(l.split(" ")[1]));
    assert.equal(counts[0], 8);
    assert.equal(counts.reduce((a, b) => a + b, 0), 8);
  });

  await t.step("everything lists every mode; statedump lists every torrent", async () => {
    const body = (await text("?mode=everything")).join("\n");
    for (const mode of STATS_MODES) {
      if (mode === "everything" || mode === "statedump") continue;
      assert.ok(body.includes(`== ${mode} ==`), `no ${mode} section`);
    }
    assert.ok(body.includes("otter serving 3 torrents"));
    const dump = await text("?mode=statedump");
    const expected = [`${hex(A)}:2`, `${hex(B)}:0`, `${hex(C)}:1`].sort();
    assert.deepEqual(dump, expected);
  });

  await t.step("format=json: every mode, same figures", async () => {
    const r = await stats("?format=json");
    assert.equal(r.status, 200);
    assert.match(r.type, /^application\/json/);
    const all = JSON.parse(r.body);
    for (const mode of STATS_MODES) {
      if (mode === "everything" || mode === "statedump") continue;
      assert.ok(mode in all, `no ${mode} in JSON`);
    }
    assert.deepEqual(all.peer, {
      torrents: 3,
      peers: 8,
      seeders: 3,
      peers4: 8,
      peers6: 0,
      peersWs: 0,
      seeders4: 3,
      seeders6: 0,
      seedersWs: 0,
    });
    assert.deepEqual(all.torr, { torrents: 3 });
    assert.equal(all.conn.udp, 4);
    const udp = otter.udp[0];
    assert.deepEqual(all.udp4, {
      requests: 4,
      connects: 1,
      announces: 2,
      scrapes: 1,
      errors: 0,
      dropped: 0,
      sockets: [{
        listener: `udp://${udp.hostname}:${udp.port}`,
        io: udp.io,
        truncated: 0,
        handlerErrors: 0,
        receiveErrors: 0,
        sendDropped: 0,
        lastHandlerError: null,
      }],
    });
    assert.equal(all.tcp4.announces, 6);
    assert.equal(all.tcp4.scrapes, 1);
    assert.equal(all.tcp4.fullScrapes, 1);
    assert.equal(all.tcp4.errors, 1);
    assert.deepEqual(all.scrp, { http: 1, udp: 1 });
    assert.equal(all.fscr.served, 1);
    assert.equal(all.fscr.builds, 1);
    assert.equal(all.fscr.lastBuild.torrents, 2);
    assert.deepEqual(all.top10, [
      { infoHash: hex(A), peers: 5, seeders: 2 },
      { infoHash: hex(C), peers: 2, seeders: 1 },
      { infoHash: hex(B), peers: 1, seeders: 0 },
    ]);
    assert.deepEqual(all.top100, all.top10);
    assert.equal(all.renew.minutes.length, 10);
    assert.equal(all.renew.minutes[0], 8);
    assert.deepEqual(all.completed, { downloaded: 3, torrents: 2 });
    assert.deepEqual(all.version, { name: "otter", version: VERSION });

    const one = await stats("?mode=torr&format=json");
    assert.deepEqual(JSON.parse(one.body), { torr: { torrents: 3 } });
  });

  await t.step("bad requests: 400", async () => {
    for (
      const [query, reason] of [
        ["?mode=nonsense", /unknown mode 'nonsense'/],
        ["?mode=peer&format=xml", /unknown format/],
        ["?mode=statedump&format=json", /text only/],
        ["?info_hash=%01%02&mode=peer", /not an announce/],
        ["?mode=peer&info_hash=", /not an announce/],
      ] as const
    ) {
      const r = await stats(query);
      assert.equal(r.status, 400, query);
      assert.match(r.body, reason);
    }
  });
});

/** Status of GET `path` with `headers`, closing the body. */
async function statusOf(url: string, headers: Record<string, string>): Promise<number> {
  const r = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  const body = await r.text();
  if (r.status === 403) assert.match(body, /--stats-from/);
  return r.status;
}

Deno.test("stats: --stats-from judges the client a trusted proxy vouches for", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--stats-from",
    "127.0.0.0/8",
    "--stats-from",
    "10.0.0.0/8",
    "--trust-proxy",
    "127.0.0.1",
  ]);
  const base = otter.http[0];
  const cases: [Record<string, string>, number][] = [
    [{}, 200], // the proxy's own request, or a local one
    [{ "x-forwarded-for": "10.1.2.3" }, 200],
    [{ "x-forwarded-for": "127.0.0.1" }, 200], // through the proxy from the same host
    [{ "x-real-ip": "10.1.2.3" }, 200],
    // Through the local proxy from outside: the proxy's loopback address no longer opens the door.
    [{ "x-forwarded-for": "203.0.113.9" }, 403],
    [{ "x-forwarded-for": "203.0.113.9, 127.0.0.1" }, 403],
    [{ "x-real-ip": "203.0.113.9" }, 403],
    // A client claiming an allowed address in front of what the proxy appended.
    [{ "x-forwarded-for": "10.1.2.3, 203.0.113.9" }, 403],
    [{ "x-forwarded-for": "127.0.0.1, 203.0.113.9" }, 403],
  ];
  for (const path of ["/stats", "/stats?format=json", "/metrics"]) {
    for (const [headers, status] of cases) {
      assert.equal(
        await statusOf(`${base}${path}`, headers),
        status,
        `${path} ${JSON.stringify(headers)}`,
      );
    }
  }
});

Deno.test("stats: forwarding headers from a proxy otter does not trust get 403", async () => {
  // A reverse proxy on the same host, left out of --trust-proxy: every request is loopback.
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const base = otter.http[0];
  for (const path of ["/stats", "/metrics"]) {
    assert.equal(await statusOf(`${base}${path}`, {}), 200, path);
    const forwarded: Record<string, string>[] = [
      { "x-forwarded-for": "203.0.113.9" },
      { "x-real-ip": "127.0.0.1" },
    ];
    for (const headers of forwarded) {
      assert.equal(
        await statusOf(`${base}${path}`, headers),
        403,
        `${path} ${JSON.stringify(headers)}`,
      );
    }
  }
});

Deno.test("stats: concurrent requests share one walk of the store; a second later it is fresh", async () => {
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const base = otter.http[0];
  const port = Number(new URL(base).port);
  let peerPort = 8000;
  for (let t = 10; t < 40; t++) {
    for (let i = 0; i < 1 + (t % 3); i++) await httpAnnounce(base, makeHash(t), peerPort++, false);
  }
  const walks = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const count = (walk: string) =>
      Number(
        new RegExp(`^otter_stats_walks_total\\{walk="${walk}"\\} (\\d+)$`, "m").exec(text)![1],
      );
    return { torrents: count("torrents"), peers: count("peers") };
  };
  assert.deepEqual(await walks(), { torrents: 0, peers: 0 });

  // 24 requests on their own connections, sent together: every mode, top100 and statedump.
  const queries = ["?format=json", "?mode=top100", "?mode=statedump", "?mode=everything"];
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 24; i++) clients.push(await RawClient.connect(port));
    await Promise.all(
      clients.map((client, i) =>
        client.send(`GET /stats${queries[i % queries.length]} HTTP/1.1\r\nHost: t\r\n\r\n`)
      ),
    );
    const bodies = await Promise.all(clients.map(async (client) => {
      const r = await client.response({ timeoutMs: 10_000 });
      assert.equal(r.status, 200);
      return new TextDecoder().decode(r.body);
    }));
    // What the walks gave is the same in every reply (counters are read live, so may differ).
    const walked = (body: string) => {
      const { top100, completed, renew } = JSON.parse(body);
      return { top100, completed, renew };
    };
    assert.deepEqual(walked(bodies[0]), walked(bodies[20]));
    assert.equal(JSON.parse(bodies[0]).top10[0].peers, 3);
    assert.equal(bodies[2].trimEnd().split("\n").length, 30);
  } finally {
    for (const client of clients) client.close();
  }
  assert.deepEqual(await walks(), { torrents: 1, peers: 1 });

  // A new torrent with the most peers: shown once the kept walk has expired.
  const newcomer = makeHash(99);
  for (let i = 0; i < 5; i++) await httpAnnounce(base, newcomer, peerPort++, false);
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const top = JSON.parse(await (await fetch(`${base}/stats?mode=top10&format=json`)).text()).top10;
  assert.deepEqual(top[0], { infoHash: hex(newcomer), peers: 5, seeders: 0 });
  assert.deepEqual(await walks(), { torrents: 2, peers: 1 });
});
