/**
 * The dashboard's history rings (src/observe/history.ts) on an injected clock: rates from counter
 * deltas, gauges as read, minute aggregation (mean, or max for loop lag), wraparound of both rings,
 * the JSON `since` filter, and memory that stays at HISTORY_BYTES.
 */
import assert from "node:assert/strict";
import {
  COARSE_POINTS,
  FINE_POINTS,
  History,
  HISTORY_BYTES,
  MINUTE_MS,
  SERIES,
  SERIES_INDEX,
} from "../src/observe/history.ts";
import { ClientMix } from "../src/observe/clientMix.ts";

const ANNOUNCES_UDP = SERIES_INDEX["announces.udp"];
const TORRENTS = SERIES_INDEX["torrents"];
const LAG = SERIES_INDEX["loop.lag"];

interface Parsed {
  base: number;
  now: number | null;
  latest: (number | null)[];
  fine: { t: number[]; v: (number | null)[][] };
  coarse: { t: number[]; v: (number | null)[][] };
}

/** A history fed by plain variables the test moves. */
function fixture() {
  const source = { udpAnnounces: 0, torrents: 0, lag: 0 };
  const history = new History((into) => {
    into[ANNOUNCES_UDP] = source.udpAnnounces;
    into[TORRENTS] = source.torrents;
    into[LAG] = source.lag;
  }, { wallBaseMs: 1_700_000_000_000 });
  const json = (fine = -Infinity, coarse = -Infinity) =>
    JSON.parse(history.toJson(fine, coarse)) as Parsed;
  return { source, history, json };
}

Deno.test("history: every series has a unique name and a known kind", () => {
  assert.equal(new Set(SERIES.map((s) => s.name)).size, SERIES.length);
  for (const s of SERIES) assert.ok(s.kind === "rate" || s.kind === "gauge", s.name);
  assert.equal(SERIES_INDEX["announces.udp"], SERIES.findIndex((s) => s.name === "announces.udp"));
});

Deno.test("history: rates from counter deltas, gauges as read, NaN where unknown", () => {
  const { source, history, json } = fixture();
  source.torrents = 7;
  source.udpAnnounces = 1000;
  history.sample(10_000);
  assert.ok(Number.isNaN(history.latest[ANNOUNCES_UDP]), "no rate before a second sample");
  assert.equal(history.latest[TORRENTS], 7);
  source.udpAnnounces = 1500;
  history.sample(11_000);
  assert.equal(history.latest[ANNOUNCES_UDP], 500);
  source.udpAnnounces = 1800;
  history.sample(13_000); // a late tick: 300 events over 2 s
  assert.equal(history.latest[ANNOUNCES_UDP], 150);
  source.udpAnnounces = 10; // a counter that went backwards is not a negative rate
  history.sample(14_000);
  assert.ok(Number.isNaN(history.latest[ANNOUNCES_UDP]));
  const data = json();
  assert.deepEqual(data.fine.t, [10_000, 11_000, 13_000, 14_000]);
  assert.deepEqual(data.fine.v[ANNOUNCES_UDP], [null, 500, 150, null]);
  assert.deepEqual(data.fine.v[TORRENTS], [7, 7, 7, 7]);
  assert.equal(data.latest[TORRENTS], 7);
  assert.equal(data.base, 1_700_000_000_000);
  assert.equal(data.now, 14_000);
  const unread = SERIES_INDEX["announces.http"];
  assert.deepEqual(data.fine.v[unread], [null, null, null, null], "a series nobody reads");
  assert.equal(data.fine.v.length, SERIES.length);
});

Deno.test("history: a minute of fine points becomes one coarse point (mean; max for lag)", () => {
  const { source, history, json } = fixture();
  // Minute 0: 60 samples at 0..59 s. Counter grows 10/s for 30 s, then 30/s; torrents 0..59.
  for (let s = 0; s < 60; s++) {
    source.torrents = s;
    source.lag = s === 17 ? 250 : 3;
    history.sample(s * 1000);
    source.udpAnnounces += s < 30 ? 10 : 30;
  }
  assert.equal(history.coarsePoints, 0, "the minute is not over yet");
  source.torrents = 1000;
  history.sample(60_000); // the first sample of minute 1 closes minute 0
  const data = json();
  assert.deepEqual(data.coarse.t, [0]);
  // Rates: the first sample has none; then 29 seconds at 10/s... the sample at s sees the step
  // added after sample s-1: s = 1..30 -> 10, s = 31..59 -> 30.
  const expectedRate = (30 * 10 + 29 * 30) / 59;
  assert.equal(data.coarse.v[ANNOUNCES_UDP][0], Math.round(expectedRate * 1000) / 1000);
  assert.equal(data.coarse.v[TORRENTS][0], 29.5, "mean of 0..59");
  assert.equal(data.coarse.v[LAG][0], 250, "loop lag keeps the minute's longest pause");
  assert.equal(data.coarse.v[SERIES_INDEX["announces.http"]][0], null, "never read: null");
});

Deno.test("history: rings wrap around and keep the newest points, memory fixed", () => {
  const { source, history, json } = fixture();
  assert.equal(history.byteSize, HISTORY_BYTES);
  const seconds = 49 * 60 * 60; // 49 hours of samples: both rings wrap
  for (let s = 0; s < seconds; s++) {
    source.torrents = s;
    source.udpAnnounces += 2;
    history.sample(s * 1000);
  }
  assert.equal(history.finePoints, FINE_POINTS);
  assert.equal(history.coarsePoints, COARSE_POINTS);
  assert.equal(history.byteSize, HISTORY_BYTES, "no growth after 176 400 samples");
  const data = json();
  assert.equal(data.fine.t.length, FINE_POINTS);
  assert.equal(data.fine.t[0], (seconds - FINE_POINTS) * 1000, "oldest fine point kept");
  assert.equal(data.fine.t[FINE_POINTS - 1], (seconds - 1) * 1000);
  for (let i = 1; i < FINE_POINTS; i++) assert.equal(data.fine.t[i] - data.fine.t[i - 1], 1000);
  assert.equal(data.fine.v[TORRENTS][FINE_POINTS - 1], seconds - 1);
  assert.ok(data.fine.v[ANNOUNCES_UDP].every((v) => v === 2));
  assert.equal(data.coarse.t.length, COARSE_POINTS);
  const lastClosedMinute = seconds / 60 - 1 - 1; // the current minute is still open
  assert.equal(data.coarse.t[COARSE_POINTS - 1], lastClosedMinute * MINUTE_MS);
  assert.equal(data.coarse.t[0], (lastClosedMinute - COARSE_POINTS + 1) * MINUTE_MS);
  for (let i = 1; i < COARSE_POINTS; i++) {
    assert.equal(data.coarse.t[i] - data.coarse.t[i - 1], MINUTE_MS);
  }
  // Minute m holds torrents m*60..m*60+59: mean m*60+29.5, sent rounded (values of 1000 or more
  // go out as integers).
  assert.equal(data.coarse.v[TORRENTS][COARSE_POINTS - 1], lastClosedMinute * 60 + 30);
  assert.equal(data.coarse.v[TORRENTS][0], (lastClosedMinute - COARSE_POINTS + 1) * 60 + 30);
});

Deno.test("history: JSON since-filter returns only newer points", () => {
  const { source, history, json } = fixture();
  for (let s = 0; s < 125; s++) {
    source.torrents = s;
    history.sample(s * 1000 + 0.4); // sub-ms times are kept in whole ms
  }
  const full = json();
  assert.equal(full.fine.t.length, 125);
  assert.deepEqual(full.coarse.t, [0, MINUTE_MS]);
  const lastFine = full.fine.t[full.fine.t.length - 1];
  const lastCoarse = full.coarse.t[full.coarse.t.length - 1];
  const none = json(lastFine, lastCoarse);
  assert.deepEqual(none.fine.t, []);
  assert.deepEqual(none.coarse.t, []);
  assert.equal(none.fine.v.length, SERIES.length, "one (empty) column per series");
  source.torrents = 500;
  history.sample(125_000);
  history.sample(126_000);
  const next = json(lastFine, lastCoarse);
  assert.deepEqual(next.fine.t, [125_000, 126_000]);
  assert.deepEqual(next.fine.v[TORRENTS], [500, 500]);
  assert.deepEqual(next.coarse.t, []);
  for (let s = 127; s <= 180; s++) history.sample(s * 1000);
  const later = json(126_000, lastCoarse);
  assert.deepEqual(later.coarse.t, [2 * MINUTE_MS], "the minute closed since the last poll");
  assert.equal(later.fine.t.length, 180 - 126);
  assert.ok(history.toJson(-Infinity, -Infinity).length < 200_000);
});

Deno.test("history: 15 minutes at one point a second, 48 hours at one a minute; the memory the docs state", async () => {
  assert.equal(FINE_POINTS, 15 * 60);
  assert.equal(COARSE_POINTS, 48 * 60);
  assert.equal(MINUTE_MS, 60_000);
  const clients = new ClientMix().byteSize;
  const number = (n: number) => n.toLocaleString("en-US");
  const operating = await Deno.readTextFile(new URL("../docs/operating.md", import.meta.url));
  const flat = operating.replaceAll(/\s+/g, " ");
  assert.ok(
    flat.includes(
      `${SERIES.length} series, ${FINE_POINTS} fine and ${COARSE_POINTS} coarse points`,
    ),
  );
  assert.ok(flat.includes(`${number(HISTORY_BYTES)} bytes`), `operating states ${HISTORY_BYTES}`);
  assert.ok(flat.includes(`client mix ${number(clients)} bytes`), `operating states ${clients}`);
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const mb = ((HISTORY_BYTES + clients) / 1e6).toFixed(1);
  assert.match(readme.replaceAll(/\s+/g, " "), new RegExp(`fixed rings of ${mb} MB`));
});
