/**
 * The dashboard page in a real browser (headless Chromium over CDP, tests/support/chromium.ts),
 * served by a small Deno.serve that answers exactly what otter will: the page's files
 * (dashboardAssets.ts) and /dashboard/data (dashboardData.ts) from a History and ClientMix fed with
 * moving, realistic figures. Checks: the charts' canvases are drawn, the numbers shown are the
 * endpoint's, the page asked for nothing outside the server, logged no error, and keeps updating.
 *
 * Set OTTER_DASHBOARD_SCREENSHOT=/some/file.png to keep the screenshot it takes.
 */
import assert from "node:assert/strict";
import { chromiumSkipReason, withChromium } from "./support/chromium.ts";
import {
  DASHBOARD_ASSET_PATHS,
  DASHBOARD_DATA_PATH,
  DASHBOARD_PATH,
  dashboardAssetResponse,
} from "../src/observe/dashboardAssets.ts";
import {
  type BusyTorrent,
  dashboardDataResponse,
  type DashboardSources,
  publicConfig,
} from "../src/observe/dashboardData.ts";
import { History, SERIES_INDEX } from "../src/observe/history.ts";
import { ClientMix } from "../src/observe/clientMix.ts";

const skip = chromiumSkipReason();
if (skip !== null) console.log(`dashboard browser test skipped: ${skip}`);

/** Counters and gauges of a plausible busy tracker, moved by `tick()`. */
class FakeTracker {
  torrents = 12_345;
  seeders4 = 40_000;
  leechers4 = 25_000;
  seeders6 = 6_000;
  leechers6 = 3_500;
  counters = new Map<string, number>();
  #step = 0;

  tick(): void {
    this.#step++;
    const wave = 1 + 0.3 * Math.sin(this.#step / 7);
    const add = (name: string, perSecond: number) =>
      this.counters.set(name, (this.counters.get(name) ?? 0) + Math.round(perSecond * wave));
    add("announces.udp", 4200);
    add("announces.http", 900);
    add("announces.v4", 4400);
    add("announces.v6", 700);
    add("scrapes.udp", 300);
    add("scrapes.http", 60);
    add("connects.udp", 1800);
    add("errors.http", 3);
    add("errors.udp", 12);
    add("refused.connection_id", 9);
    add("refused.rate_limited", this.#step % 20 < 5 ? 40 : 0);
  }

  read = (into: Float64Array): void => {
    for (const [name, value] of this.counters) into[SERIES_INDEX[name]] = value;
    into[SERIES_INDEX["torrents"]] = this.torrents;
    into[SERIES_INDEX["peers.seeders.v4"]] = this.seeders4;
    into[SERIES_INDEX["peers.leechers.v4"]] = this.leechers4;
    into[SERIES_INDEX["peers.seeders.v6"]] = this.seeders6;
    into[SERIES_INDEX["peers.leechers.v6"]] = this.leechers6;
    into[SERIES_INDEX["connections.http"]] = 120 + (this.#step % 30);
    into[SERIES_INDEX["memory.rss"]] = 96 * 1048576 + this.#step * 4096;
    into[SERIES_INDEX["memory.heap"]] = 21 * 1048576;
    into[SERIES_INDEX["loop.lag"]] = this.#step % 45 === 0 ? 38 : 1.5;
  };
}

function busiest(): BusyTorrent[] {
  const out: BusyTorrent[] = [];
  for (let i = 0; i < 10; i++) {
    const seeders = 900 - i * 70;
    const leechers = 400 - i * 30;
    out.push({
      infoHash: (i.toString(16) + "3f9a0c5e7d").repeat(4).slice(0, 40),
      peers: seeders + leechers,
      seeders,
      leechers,
      completed: 5000 - i * 300,
    });
  }
  return out;
}

/** A server answering the dashboard's paths like otter will; 404 for anything else. */
function startFakeDashboard() {
  const tracker = new FakeTracker();
  // 10 minutes of history already (samples at 0..599 s), then one sample a second on a clock
  // that goes on from there.
  const startedAt = performance.now();
  const offsetMs = 599_000;
  const now = () => offsetMs + performance.now() - startedAt;
  const history = new History(tracker.read, { wallBaseMs: Date.now() - now() });
  for (let s = 0; s < 600; s++) {
    tracker.tick();
    history.sample(s * 1000);
  }
  const clients = new ClientMix();
  const prefixes: [string, number][] = [
    ["-qB4630-", 480],
    ["-TR4060-", 260],
    ["-LT2080-", 140],
    ["-UT355W-", 70],
    ["A2-1-36-0-", 30],
    ["-DE211s-", 25],
    ["\x00\x01unknown", 9],
  ];
  for (const [prefix, n] of prefixes) {
    const id = new Uint8Array(20).fill(0x41);
    for (let i = 0; i < prefix.length; i++) id[i] = prefix.charCodeAt(i);
    for (let i = 0; i < n; i++) clients.count(id, 0);
  }
  const sources: DashboardSources = {
    history,
    uptimeSeconds: () => Math.floor(now() / 1000),
    info: () => ({
      version: "0.0.0-test",
      startedAtMs: Date.now() - now(),
      listeners: ["http [::]:6969", "udp [::]:6969"],
      config: publicConfig({
        http: ["[::]:6969"],
        udp: ["[::]:6969"],
        interval: 1800,
        cluster: "redis://otter:secret-pass@127.0.0.1:6379",
      }),
    }),
    busiest: () => ({ torrents: busiest(), ageSeconds: 12 }),
    clients,
  };
  const timer = setInterval(() => {
    tracker.tick();
    history.sample(now());
  }, 1000);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    if (url.pathname === DASHBOARD_DATA_PATH) {
      return dashboardDataResponse(url.search.slice(1), sources);
    }
    if (DASHBOARD_ASSET_PATHS.includes(url.pathname)) {
      return (await dashboardAssetResponse(url.pathname, request))!;
    }
    return new Response("not found", { status: 404 });
  });
  return {
    tracker,
    origin: `http://127.0.0.1:${server.addr.port}`,
    async stop() {
      clearInterval(timer);
      await server.shutdown();
    },
  };
}

/** Pixels of each chart canvas that are not transparent (uPlot draws on a transparent canvas). */
const CANVAS_INK = `[...document.querySelectorAll("#charts canvas")].map((c) => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) ink++;
  return { group: c.closest(".card").dataset.group, ink, width: c.width, height: c.height };
})`;

const TILE = (id: string) => `document.querySelector("#tile-${id} .value")?.textContent`;

Deno.test({
  name: "dashboard in headless chromium: drawn, numbers from the endpoint, only otter, live",
  ignore: skip !== null,
  sanitizeResources: false, // chromium's DevTools socket closes asynchronously
  sanitizeOps: false,
  async fn() {
    const fake = startFakeDashboard();
    try {
      await withChromium(async (page) => {
        await page.navigate(`${fake.origin}${DASHBOARD_PATH}`);
        await page.waitFor(`(${TILE("torrents")} ?? "–") !== "–"`, 20_000, "first data");
        // Number shown = number served.
        const served = await (await fetch(`${fake.origin}${DASHBOARD_DATA_PATH}`)).json();
        const servedTorrents = served.history.latest[SERIES_INDEX["torrents"]];
        assert.equal(servedTorrents, 12_345);
        assert.equal(await page.evaluate<string>(TILE("torrents")), "12,345");
        const peers = 40_000 + 25_000 + 6_000 + 3_500;
        assert.equal(await page.evaluate<string>(TILE("peers")), peers.toLocaleString("en-US"));
        assert.equal(
          await page.evaluate<string>(`document.getElementById("version").textContent`),
          "0.0.0-test",
        );

        // Every group with data has a chart whose canvas has ink; the others say so.
        const inked = await page.waitFor<{ group: string; ink: number }[]>(
          `(() => { const c = ${CANVAS_INK}; return c.length >= 8 && c.every((x) => x.ink > 500) && c; })()`,
          15_000,
          "drawn chart canvases",
        );
        const groups = inked.map((c) => c.group);
        for (
          const group of [
            "announces by protocol",
            "announces by family",
            "peers",
            "torrents",
            "memory",
            "event-loop lag",
            "errors and refusals by reason",
          ]
        ) assert.ok(groups.includes(group), `${group} drawn (${groups.join(", ")})`);
        assert.ok(!groups.includes("cluster"), "no cluster data: no chart");
        const clusterEmpty = await page.evaluate<boolean>(
          `!document.querySelector('[data-group="cluster"] .empty').hidden`,
        );
        assert.ok(clusterEmpty, "the cluster card says it is not recorded");

        // Tables: busiest torrents from the snapshot, the client mix, the config without secrets.
        const rows = await page.evaluate<string[][]>(
          `[...document.querySelectorAll("#busiest tbody tr")].map((r) => [...r.cells].map((c) => c.textContent))`,
        );
        assert.equal(rows.length, 10);
        assert.deepEqual(rows[0].slice(1), ["1,300", "900", "400", "5,000"]);
        const clients = await page.evaluate<string[]>(
          `[...document.querySelectorAll("#clients tbody tr td:first-child")].map((c) => c.textContent)`,
        );
        assert.deepEqual(clients.slice(0, 3), [
          "qBittorrent",
          "Transmission",
          "libtorrent (Rasterbar)",
        ]);
        const pageText = await page.evaluate<string>(`document.body.textContent`);
        assert.ok(!pageText.includes("secret-pass"), "the Redis password is not shown");
        assert.ok(pageText.includes("redis://***:***@127.0.0.1:6379"));

        // It keeps updating: a changed figure appears without a reload.
        const before = await page.evaluate<number>(
          `performance.getEntriesByType("navigation").length`,
        );
        fake.tracker.torrents = 23_456;
        await page.waitFor(`${TILE("torrents")} === "23,456"`, 10_000, "new torrent count");
        assert.equal(
          await page.evaluate<number>(`performance.getEntriesByType("navigation").length`),
          before,
        );
        assert.equal(
          await page.evaluate<string>(`document.getElementById("status").textContent`),
          "live",
        );

        // The 48 h view draws from the coarse ring (10 closed minutes here).
        await page.evaluate(`document.getElementById("range-coarse").click()`);
        await page.waitFor(
          `(() => { const c = ${CANVAS_INK}; return c.length >= 8 && c.every((x) => x.ink > 200); })()`,
          10_000,
          "charts redrawn from the coarse ring",
        );
        await page.evaluate(`document.getElementById("range-fine").click()`);
        await page.waitFor(`${CANVAS_INK}.length >= 8`, 10_000, "charts back on 15 min");

        const screenshot = Deno.env.get("OTTER_DASHBOARD_SCREENSHOT");
        const dir = screenshot ? null : await Deno.makeTempDir({ prefix: "otter-dashboard-" });
        const path = screenshot ?? `${dir}/dashboard.png`;
        try {
          await page.screenshot(path);
          const png = await Deno.readFile(path);
          assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
          assert.ok(png.length > 20_000, `${png.length} bytes`);
        } finally {
          if (dir) await Deno.remove(dir, { recursive: true });
        }

        // Nothing outside the server was asked for, and nothing went wrong in the page.
        const origin = fake.origin;
        const outside = page.requests.filter((u) =>
          !u.startsWith("data:") && new URL(u).origin !== origin
        );
        assert.deepEqual(outside, [], "requests outside otter");
        assert.ok(page.requests.some((u) => u.includes("/dashboard/uPlot.iife.min.js")));
        const polls = page.requests.filter((u) => u.includes(DASHBOARD_DATA_PATH));
        assert.equal(polls[0], `${origin}${DASHBOARD_DATA_PATH}`, "a full first load");
        assert.ok(
          polls.slice(1).every((u) => /\?since=\d+&coarseSince=\d+$/.test(u)),
          polls.join(" "),
        );
        assert.ok(polls.length >= 2, "then polls for newer points only");
        assert.deepEqual(page.errors, [], "console errors, exceptions, failed loads");
      });
    } finally {
      await fake.stop();
    }
  },
});
