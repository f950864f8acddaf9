/**
 * The dashboard of a real otter process: in headless Chromium (tests/support/chromium.ts) while
 * UDP and HTTP announces load it, then after the load: the charts' canvases are drawn, the numbers
 * shown agree with /stats?format=json, the page asked for nothing outside otter, logged no error,
 * and kept updating without a reload. Without a browser: /dashboard/data's history agrees with
 * /stats over real sockets (through UDP I/O workers where the fast path exists), two nodes of a
 * cluster on a real redis-server record the link and the changes one publishes and the other
 * applies, `--no-dashboard` answers 404, and a client outside --stats-from (behind a trusted
 * proxy) 403.
 *
 * OTTER_DASHBOARD_SCREENSHOT=docs/dashboard.png keeps the screenshot taken under load (README
 * shows it); OTTER_DASHBOARD_LOAD_SECONDS makes the load longer for it (default 6).
 */
import assert from "node:assert/strict";
import { chromiumSkipReason, withChromium } from "./support/chromium.ts";
import { ipv6Missing } from "./support/ipv6.ts";
import { startOtter } from "./support/otterProcess.ts";
import { httpLoad, type LoadPeer, udpLoad } from "./support/trackerLoad.ts";
import { announcePacket, UdpTestClient } from "./support/udpClient.ts";
import { percentEscape, toHex } from "./support/torrent.ts";
import { fastUdpSupport } from "../src/servers/udp/udpFastSocket.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("dashboard cluster test skipped: no redis-server binary on PATH");

const skip = chromiumSkipReason();
if (skip !== null) console.log(`dashboard e2e browser test skipped: ${skip}`);

function infoHash(t: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (t * 97 + i * 31 + 11) & 0xff);
}

/**
 * The swarms: torrent t of 0..39 has 40 - t UDP peers (every third a seeder), the first 20 also
 * 10 - t/2 HTTP peers, the first 10 five IPv6 peers; five clients' peer_id prefixes in turn.
 */
function swarms(): { udp4: LoadPeer[]; udp6: LoadPeer[]; http: LoadPeer[] } {
  const prefixes = ["-qB4630-", "-TR4060-", "-LT2080-", "-UT355W-", "A2-1-36-0-"];
  const udp4: LoadPeer[] = [];
  const udp6: LoadPeer[] = [];
  const http: LoadPeer[] = [];
  let n = 0;
  const peer = (t: number, port: number): LoadPeer => ({
    infoHash: infoHash(t),
    port,
    seeder: n % 3 === 0,
    prefix: prefixes[n++ % prefixes.length],
  });
  for (let t = 0; t < 40; t++) {
    for (let i = 0; i < 40 - t; i++) udp4.push(peer(t, 20_000 + t * 100 + i));
    if (t < 20) { for (let i = 0; i < 10 - t / 2; i++) http.push(peer(t, 30_000 + t * 100 + i)); }
    if (t < 10) { for (let i = 0; i < 5; i++) udp6.push(peer(t, 40_000 + t * 100 + i)); }
  }
  return { udp4, udp6, http };
}

/** Announces answered by the load, by how they came. */
interface Answered {
  udp4: number;
  udp6: number;
  http: number;
  total: number;
}

/** Runs the swarms' announces against `otter` until `untilMs`; returns the answers counted. */
async function load(
  otter: Awaited<ReturnType<typeof startOtter>>,
  untilMs: number,
): Promise<Answered> {
  const { udp4, udp6, http } = swarms();
  const none = Promise.resolve({ answered: 0, missing: 0 });
  const results = await Promise.all([
    udpLoad(otter.udp[0].hostname, otter.udp[0].port, udp4, untilMs),
    otter.udp.length > 1 ? udpLoad(otter.udp[1].hostname, otter.udp[1].port, udp6, untilMs) : none,
    httpLoad(otter.http[0], http, untilMs),
  ]);
  for (const r of results) assert.equal(r.missing, 0, `every announce answered`);
  assert.ok(results[0].answered > 0 && results[2].answered > 0, "the load got answers");
  const [u4, u6, h] = results.map((r) => r.answered);
  return { udp4: u4, udp6: u6, http: h, total: u4 + u6 + h };
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function statsJson(base: string): Promise<Json> {
  const response = await fetch(`${base}/stats?format=json`, {
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(response.status, 200);
  return await response.json();
}

function listenArgs(): string[] {
  const args = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
  if (ipv6Missing === null) args.push("--udp", "[::1]:0");
  return args;
}

/** A tile's value as a number ("1,234" → 1234, "–" → NaN). */
const TILE = (id: string) =>
  `Number((document.querySelector("#tile-${id} .value")?.textContent ?? "").replaceAll(",", ""))`;

/** Pixels of each chart canvas that are not transparent (uPlot draws on a transparent canvas). */
const CANVAS_INK = `[...document.querySelectorAll("#charts canvas")].map((c) => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) ink++;
  return { group: c.closest(".card").dataset.group, ink };
})`;

const TABLE = (id: string) =>
  `[...document.querySelectorAll("#${id} tbody tr")].map((r) => [...r.cells].map((c) => c.title || c.textContent))`;

Deno.test({
  name: "dashboard of a running otter under load in headless chromium: drawn, agrees with /stats",
  ignore: skip !== null,
  sanitizeResources: false, // chromium's DevTools socket closes asynchronously
  sanitizeOps: false,
  async fn() {
    await using otter = await startOtter(listenArgs());
    const base = otter.http[0];
    const origin = new URL(base).origin;
    const seconds = Number(Deno.env.get("OTTER_DASHBOARD_LOAD_SECONDS") ?? "6");
    const untilMs = performance.now() + seconds * 1000;
    const loaded = load(otter, untilMs);
    await withChromium(async (page) => {
      await page.navigate(`${base}/dashboard`);
      // Live under load: announces per second above zero, and the charts drawn.
      await page.waitFor(`${TILE("announces")} > 0`, 20_000, "announces/s under load");
      const inked = await page.waitFor<{ group: string; ink: number }[]>(
        `(() => { const c = ${CANVAS_INK}; return c.length >= 8 && c.every((x) => x.ink > 300) && c; })()`,
        20_000,
        "drawn chart canvases",
      );
      const groups = inked.map((c) => c.group);
      for (
        const group of [
          "announces by protocol",
          "announces by family",
          "connects",
          "peers",
          "torrents",
          "open connections",
          "memory",
          "event-loop lag",
        ]
      ) assert.ok(groups.includes(group), `${group} drawn (${groups.join(", ")})`);
      assert.ok(!groups.includes("cluster"), "standalone: no cluster chart");
      const screenshot = Deno.env.get("OTTER_DASHBOARD_SCREENSHOT");
      if (screenshot) {
        // The last seconds of the load, so the charts show it.
        await new Promise((r) => setTimeout(r, Math.max(0, untilMs - performance.now() - 1500)));
        await page.screenshot(screenshot);
      }
      const answered = (await loaded).total;

      // After the load: what the page shows is what /stats says.
      const stats = await statsJson(base);
      assert.equal(stats.udp4.announces + stats.tcp4.announces, answered);
      await page.waitFor(
        `${TILE("torrents")} === ${stats.torr.torrents} && ${
          TILE("peers")
        } === ${stats.peer.peers}`,
        10_000,
        `torrents ${stats.torr.torrents} and peers ${stats.peer.peers} shown`,
      );
      assert.equal(stats.torr.torrents, 40);
      const sub = await page.evaluate<string>(
        `document.querySelector("#tile-peers .sub").textContent`,
      );
      const seeders = stats.peer.seeders.toLocaleString("en-US");
      const leechers = (stats.peer.peers - stats.peer.seeders).toLocaleString("en-US");
      assert.equal(sub, `seeders ${seeders} · leechers ${leechers}`);
      // The busiest torrents are /stats's top 10 (the page's list is at most 5 s old).
      const top = stats.top10.map((t: Json) => [t.infoHash, String(t.peers), String(t.seeders)]);
      assert.equal(top[0][0], toHex(infoHash(0)));
      await page.waitFor(
        `JSON.stringify(${TABLE("busiest")}.map((r) => r.slice(0, 3))) === ${
          JSON.stringify(JSON.stringify(top))
        }`,
        15_000,
        "the busiest torrents of /stats",
      );
      // The client mix counted every answered announce, by its peer_id prefix.
      const clients = await page.waitFor<string[][]>(
        `(() => { const t = ${
          TABLE("clients")
        }; return t.reduce((s, r) => s + Number(r[2].replaceAll(",", "")), 0) === ${answered} && t; })()`,
        5_000,
        `client mix summing to ${answered} announces`,
      );
      assert.deepEqual(
        clients.map((r) => r[0]).sort(),
        ["aria2", "libtorrent (Rasterbar)", "qBittorrent", "Transmission", "µTorrent"].sort(),
      );
      // It keeps updating without a reload: the rate falls to zero once the load has stopped.
      await page.waitFor(`${TILE("announces")} === 0`, 10_000, "announces/s back to 0");
      assert.equal(
        await page.evaluate<number>(`performance.getEntriesByType("navigation").length`),
        1,
      );
      assert.equal(
        await page.evaluate<string>(`document.getElementById("status").textContent`),
        "live",
      );
      const listeners = await page.evaluate<string[]>(
        `[...document.querySelectorAll("#listeners li")].map((l) => l.textContent)`,
      );
      assert.ok(listeners.includes(`${base}/announce`), listeners.join(", "));

      // Nothing outside otter was asked for, and nothing went wrong in the page.
      const outside = page.requests.filter((u) =>
        !u.startsWith("data:") && new URL(u).origin !== origin
      );
      assert.deepEqual(outside, [], "requests outside otter");
      assert.ok(page.requests.filter((u) => u.includes("/dashboard/data")).length >= 5);
      assert.deepEqual(page.errors, [], "console errors, exceptions, failed loads");
    });
  },
});

/** Σ rate × seconds over the fine ring: the count a rate series stands for. */
function integrate(history: Json, index: number): number {
  const { t, v } = history.fine;
  let total = 0;
  for (let i = 1; i < t.length; i++) {
    if (v[index][i] !== null) total += (v[index][i] * (t[i] - t[i - 1])) / 1000;
  }
  return total;
}

Deno.test("dashboard data of a running otter agrees with /stats (UDP through I/O workers)", async () => {
  const workers = fastUdpSupport().ok ? ["--workers", "2"] : [];
  await using otter = await startOtter([...listenArgs(), ...workers]);
  const base = otter.http[0];
  await new Promise((r) => setTimeout(r, 1100)); // a first sample before any request
  const answered = await load(otter, performance.now() + 2500);
  assert.ok(ipv6Missing !== null || answered.udp6 > 0, "IPv6 announces");
  // Two refusals of each kind, UDP and HTTP.
  const udp = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
  try {
    for (let i = 0; i < 2; i++) {
      const forged = announcePacket({
        connectionId: new Uint8Array(8),
        infoHash: infoHash(0),
        port: 9,
      });
      assert.ok(await udp.request(forged), "an error reply");
      const reply = await fetch(`${base}/announce?info_hash=${percentEscape(infoHash(1))}&port=0`);
      assert.match(await reply.text(), /failure reason/);
    }
  } finally {
    udp.close();
  }
  await new Promise((r) => setTimeout(r, 2200)); // two more samples
  const stats = await statsJson(base);
  const data: Json = await (await fetch(`${base}/dashboard/data`)).json();
  const at = (name: string) => data.series.findIndex((s: Json) => s.name === name);
  const near = (name: string, expected: number) => {
    const got = integrate(data.history, at(name));
    assert.ok(Math.abs(got - expected) <= 0.01 * expected + 2, `${name}: ${got} ≈ ${expected}`);
  };
  assert.equal(stats.udp4.announces, answered.udp4 + answered.udp6);
  assert.equal(stats.tcp4.announces, answered.http);
  near("announces.udp", stats.udp4.announces);
  near("announces.http", stats.tcp4.announces);
  near("announces.v4", answered.udp4 + answered.http);
  near("announces.v6", answered.udp6);
  near("connects.udp", stats.udp4.connects);
  near("refused.connection_id", 2);
  near("refused.bad_request", 2);
  near("errors.udp", stats.udp4.errors);
  const latest = data.history.latest;
  assert.equal(latest[at("torrents")], stats.torr.torrents);
  assert.equal(
    latest[at("peers.seeders.v4")] + latest[at("peers.seeders.v6")],
    stats.peer.seeders,
  );
  assert.equal(latest[at("peers.leechers.v6")] + latest[at("peers.seeders.v6")], stats.peer.peers6);
  assert.ok(latest[at("memory.rss")] > 1e6);
  // The HTTP listener serves WebSocket too: its series are recorded, and no browser announced.
  assert.equal(integrate(data.history, at("announces.ws")), 0);
  assert.equal(latest[at("connections.ws")], 0);
  const shares: { announces: number }[] = data.clients.shares;
  assert.equal(shares.reduce((sum, s) => sum + s.announces, 0), answered.total);
  assert.deepEqual(
    data.busiest.torrents.map((t: Json) => [t.infoHash, t.peers, t.seeders]),
    stats.top10.map((t: Json) => [t.infoHash, t.peers, t.seeders]),
  );
  assert.equal(data.info.config.workers, workers.length > 0 ? 2 : 1);
});

Deno.test("dashboard: --no-dashboard answers 404; outside --stats-from behind a proxy 403", async () => {
  await using off = await startOtter([...listenArgs(), "--no-dashboard"]);
  for (const path of ["/dashboard", "/dashboard/data", "/dashboard/dashboard.js"]) {
    const response = await fetch(`${off.http[0]}${path}`);
    assert.equal(response.status, 404, path);
    await response.body?.cancel();
  }
  const stats = await fetch(`${off.http[0]}/stats?format=json`);
  assert.equal(stats.status, 200, "/stats is still there");
  await stats.body?.cancel();

  await using on = await startOtter([...listenArgs(), "--trust-proxy", "127.0.0.1/32"]);
  for (const path of ["/dashboard", "/dashboard/data", "/dashboard/uPlot.iife.min.js"]) {
    const outside = await fetch(`${on.http[0]}${path}`, {
      headers: { "x-forwarded-for": "203.0.113.9" },
    });
    assert.equal(outside.status, 403, `${path} for 203.0.113.9`);
    assert.match(await outside.text(), /--stats-from/);
    const inside = await fetch(`${on.http[0]}${path}`, {
      headers: { "x-forwarded-for": "127.0.0.5" },
    });
    assert.equal(inside.status, 200, `${path} for 127.0.0.5`);
    await inside.body?.cancel();
  }
});

Deno.test({
  name:
    "dashboard of two cluster nodes: the link, changes published on one and applied on the other",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const secret = await Deno.makeTempFile({ prefix: "otter-dashboard-secret-" });
    try {
      await Deno.writeTextFile(secret, "the dashboard test's cluster secret\n");
      await Deno.chmod(secret, 0o600);
      const node = (name: string) =>
        startOtter([
          ...listenArgs().slice(0, 4),
          ...["--cluster", redis.url, "--cluster-name", "dash", "--node-id", name],
          ...["--cluster-secret-file", secret],
        ]);
      await using a = await node("a");
      await using b = await node("b");
      // Twelve new peers on a: twelve changes a publishes and b applies.
      const udp = new UdpTestClient(a.udp[0].hostname, a.udp[0].port);
      try {
        const connectionId = await udp.connect();
        for (let port = 50_000; port < 50_012; port++) {
          const packet = announcePacket({
            connectionId,
            infoHash: infoHash(port % 3),
            port,
            event: 2,
          });
          assert.ok(await udp.request(packet), "an announce reply");
        }
      } finally {
        udp.close();
      }
      const changes = 12;
      const data = async (otter: typeof a): Promise<Json> =>
        await (await fetch(`${otter.http[0]}/dashboard/data`)).json();
      const deadline = performance.now() + 30_000;
      let last = "";
      for (;;) {
        const [da, db] = await Promise.all([data(a), data(b)]);
        const at = (d: Json, name: string) => d.series.findIndex((s: Json) => s.name === name);
        const published = integrate(da.history, at(da, "cluster.published"));
        const applied = integrate(db.history, at(db, "cluster.applied"));
        const connected = [da, db].map((d) => d.history.latest[at(d, "cluster.connected")]);
        last = JSON.stringify({ published, applied, connected });
        if (
          connected.every((c) => c === 1) && Math.round(published) >= changes &&
          Math.round(applied) >= changes
        ) break;
        assert.ok(performance.now() < deadline, `cluster series within 30 s: ${last}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const stats: Json = await (await fetch(`${b.http[0]}/stats?format=json`)).json();
      assert.equal(stats.peer.peers, 12, "b holds a's peers");
    } finally {
      await Deno.remove(secret);
      await redis.stop();
    }
  },
});
