/**
 * The dashboard's server side without a browser: the page's files over a real socket (gzip,
 * ETag, 304, CSP, HEAD), the data endpoint's full and incremental answers and its 400s, the
 * config with secrets left out, and the busiest torrents' cache (one walk per refresh interval).
 */
import assert from "node:assert/strict";
import {
  DASHBOARD_ASSET_PATHS,
  DASHBOARD_PATH,
  dashboardAssetResponse,
} from "../src/observe/dashboardAssets.ts";
import {
  BusiestTorrentsCache,
  dashboardDataResponse,
  publicConfig,
} from "../src/observe/dashboardData.ts";
import type { TopEntry } from "../src/observe/statsWalks.ts";
import { History, SERIES, SERIES_INDEX } from "../src/observe/history.ts";
import { ClientMix } from "../src/observe/clientMix.ts";

async function withAssetServer(test: (origin: string) => Promise<void>): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    return (await dashboardAssetResponse(path, request)) ?? new Response("nope", { status: 404 });
  });
  try {
    await test(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("dashboard assets: Accept-Encoding read by the full scrape's rule", async () => {
  const encoding = async (acceptEncoding: string) => {
    const request = new Request("http://otter/dashboard", {
      headers: { "accept-encoding": acceptEncoding },
    });
    const response = await dashboardAssetResponse(DASHBOARD_PATH, request);
    await response!.body?.cancel();
    return response!.headers.get("content-encoding");
  };
  assert.equal(await encoding("x-gzip"), "gzip");
  // An explicit gzip;q=0 refuses gzip whatever `*` says, in any order.
  assert.equal(await encoding("*;q=1, gzip;q=0"), null);
  assert.equal(await encoding("gzip;q=0, *"), null);
});

Deno.test("dashboard assets: page and files over a socket, gzip, ETag and 304", async () => {
  await withAssetServer(async (origin) => {
    const page = await fetch(`${origin}${DASHBOARD_PATH}`, {
      headers: { "accept-encoding": "identity" },
    });
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(page.headers.get("content-encoding"), null);
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    const html = await page.text();
    // Every file the page refers to is one otter serves, under /dashboard/.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length >= 4, refs.join(" "));
    for (const ref of refs) {
      if (ref.startsWith("data:")) continue;
      assert.ok(DASHBOARD_ASSET_PATHS.includes(ref), `${ref} is served`);
    }

    for (const path of DASHBOARD_ASSET_PATHS) {
      const plain = await fetch(`${origin}${path}`, { headers: { "accept-encoding": "identity" } });
      const plainBytes = new Uint8Array(await plain.arrayBuffer());
      assert.equal(plain.status, 200, path);
      assert.ok(plainBytes.length > 500, `${path}: ${plainBytes.length} bytes`);
      // fetch() undoes the gzip; the bytes must come out the same, with another ETag.
      const gzip = await fetch(`${origin}${path}`, { headers: { "accept-encoding": "gzip" } });
      assert.equal(gzip.headers.get("content-encoding"), "gzip", path);
      assert.deepEqual(new Uint8Array(await gzip.arrayBuffer()), plainBytes, path);
      const etag = gzip.headers.get("etag")!;
      assert.notEqual(etag, plain.headers.get("etag"));
      const again = await fetch(`${origin}${path}`, {
        headers: { "accept-encoding": "gzip", "if-none-match": etag },
      });
      assert.equal(again.status, 304, path);
      await again.body?.cancel();
      const stale = await fetch(`${origin}${path}`, {
        headers: { "accept-encoding": "gzip", "if-none-match": '"something-else"' },
      });
      assert.equal(stale.status, 200);
      await stale.body?.cancel();
    }
    const uplot = await fetch(`${origin}/dashboard/uPlot.iife.min.js`);
    assert.match(await uplot.text(), /uPlot \(v1\.6\.32\)/, "the pinned uPlot");
    const head = await fetch(`${origin}/dashboard/dashboard.js`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    const missing = await fetch(`${origin}/dashboard/nothing.js`);
    assert.equal(missing.status, 404, "only the listed files");
    await missing.body?.cancel();
  });
});

function dataSources() {
  const values = { torrents: 42, udp: 0 };
  const history = new History((into) => {
    into[SERIES_INDEX["torrents"]] = values.torrents;
    into[SERIES_INDEX["announces.udp"]] = values.udp;
  }, { wallBaseMs: 1_000_000 });
  const clients = new ClientMix();
  const peerId = new TextEncoder().encode("-qB4630-abcdefghijkl");
  clients.count(peerId, 0);
  return {
    values,
    history,
    sources: {
      history,
      uptimeSeconds: () => 61,
      info: () => ({
        version: "9.9.9",
        startedAtMs: 1_000_000,
        listeners: ["udp 127.0.0.1:6969"],
        config: publicConfig({ interval: 1800 }),
      }),
      busiest: () => ({
        torrents: [{ infoHash: "ab".repeat(20), peers: 3, seeders: 1, leechers: 2, completed: 7 }],
        ageSeconds: 4,
      }),
      clients,
    },
  };
}

Deno.test("dashboard data: a full first load, then only newer points", async () => {
  const { values, history, sources } = dataSources();
  for (let s = 0; s < 5; s++) {
    values.udp += 100;
    history.sample(s * 1000);
  }
  const full = await dashboardDataResponse("", sources).json();
  assert.equal(full.uptime, 61);
  assert.equal(full.series.length, SERIES.length);
  assert.equal(full.info.version, "9.9.9");
  assert.deepEqual(full.history.fine.t, [0, 1000, 2000, 3000, 4000]);
  assert.equal(full.history.latest[SERIES_INDEX["announces.udp"]], 100);
  assert.equal(full.busiest.torrents[0].completed, 7);
  assert.deepEqual(full.clients.shares, [{ code: "-qB", name: "qBittorrent", announces: 1 }]);

  values.torrents = 43;
  history.sample(5000);
  const next = await dashboardDataResponse("since=4000&coarseSince=-1", sources).json();
  assert.equal(next.series, undefined, "the table only on a full load");
  assert.equal(next.info, undefined);
  assert.deepEqual(next.history.fine.t, [5000]);
  assert.deepEqual(next.history.fine.v[SERIES_INDEX["torrents"]], [43]);
  assert.equal(next.busiest.torrents.length, 1, "busiest and clients each time");

  const none = await dashboardDataResponse("since=5000", sources).json();
  assert.deepEqual(none.history.fine.t, []);

  for (const bad of ["since=abc", "since=", "coarseSince=NaN", "since=1&coarseSince=Infinity"]) {
    const response = dashboardDataResponse(bad, sources);
    assert.equal(response.status, 400, bad);
    await response.body?.cancel();
  }
  const bare = dashboardDataResponse("", { history, uptimeSeconds: () => 1, info: sources.info });
  const bareJson = await bare.json();
  assert.equal(bareJson.busiest, null, "no snapshot source: null");
  assert.equal(bareJson.clients, null);
});

Deno.test("dashboard data: config without secrets", () => {
  const shown = publicConfig({
    http: ["[::]:6969"],
    cluster: "redis://otter:hunter2@10.0.0.5:6379/0",
    clusterPasswordFile: "/etc/otter/pass",
    apiToken: "abc",
    sharedSecret: "xyz",
    interval: 1800,
    noFullScrape: false,
    whitelist: "",
    odd: "user:pw@host://nothing-url-like",
  });
  assert.deepEqual(shown, {
    http: ["[::]:6969"],
    cluster: "redis://***:***@10.0.0.5:6379/0",
    interval: 1800,
    noFullScrape: false,
    whitelist: "",
    odd: "***",
  });
  assert.ok(!JSON.stringify(shown).includes("hunter2"));
  assert.equal(
    publicConfig({ cluster: "redis://:pw@h:1" }).cluster,
    "redis://:***@h:1",
    "password without a user name",
  );
  assert.equal(publicConfig({ cluster: "redis://h:1" }).cluster, "redis://h:1");
});

Deno.test("busiest torrents: polls share one walk per refresh interval; a reload drops the list", async () => {
  let walks = 0;
  let generation = 1;
  const top: TopEntry[] = Array.from({ length: 12 }, (_, i) => ({
    infoHash: String(i).padStart(40, "0"),
    peers: 100 - i,
    seeders: 40 - i,
    completed: 7 * i,
  }));
  const cache = new BusiestTorrentsCache(
    () => {
      walks++;
      return Promise.resolve({ top });
    },
    () => generation,
    5000,
  );
  assert.equal(cache.get(), null, "nothing before the first walk");
  await cache.ready();
  assert.equal(walks, 1, "the first get started the walk ready() waited for");
  const list = cache.get()!;
  assert.equal(list.torrents.length, 10);
  assert.deepEqual(list.torrents[1], {
    infoHash: top[1].infoHash,
    peers: 99,
    seeders: 39,
    leechers: 60,
    completed: 7,
  });
  assert.ok(list.ageSeconds < 1);
  // A second of polls: no new walk.
  for (let i = 0; i < 100; i++) cache.get();
  await cache.ready();
  assert.equal(walks, 1);
  // Past the refresh interval: one new walk in the background, the old list meanwhile.
  const later = performance.now() + 6000;
  const stale = cache.get(later)!;
  assert.ok(stale.ageSeconds >= 6, `age ${stale.ageSeconds}`);
  cache.get(later);
  assert.equal(walks, 2, "one walk for any number of polls");
  await cache.refresh(); // the walk running: no new one
  assert.equal(walks, 2);
  // An access-list reload: the list taken before it is not shown, nor one from a walk that
  // started before it.
  generation = 2;
  assert.equal(cache.get(), null);
  assert.equal(walks, 3);
  const running = cache.refresh();
  generation = 3;
  await cache.ready();
  await running;
  assert.equal(walks, 4, "the walk begun under generation 2 is not enough");
  assert.equal(cache.get()!.torrents.length, 10);
  assert.equal(walks, 4);
});
