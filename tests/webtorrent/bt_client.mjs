/**
 * A second, independent WebSocket tracker client: bittorrent-tracker 11.2.3's own client library
 * (not webtorrent), playing one fixed scenario against a tracker and printing a JSON line per step:
 *
 *   1. seeder A (left 0) starts             → {"step":"A started","complete":N,"incomplete":N}
 *   2. leecher B (left 1000) starts; B's offers reach A through the tracker, A's answers come
 *      back, and the two connect over WebRTC → {"step":"B started",…}, {"step":"A peer"},
 *      {"step":"B peer"}
 *   3. a scrape                             → {"step":"scrape","complete":N,"incomplete":N,"downloaded":N}
 *   4. B completes, then a scrape           → {"step":"B completed",…}, {"step":"scrape",…}
 *   5. A and B stop; a third client scrapes → {"step":"final scrape",…}
 *   {"step":"done"} (exit 0), or {"step":"error","message":…} (exit 1)
 *
 * Against bittorrent-tracker 11.2.3 the counts are 1/0, 1/1, 1/1/1, 2/0, 2/0/2, 0/0/0 (it counts
 * a seeder's first announce as a download, and forgets an empty swarm). ~16 s, mostly ICE.
 *
 *   deno run -A tests/webtorrent/bt_client.mjs --tracker ws://127.0.0.1:PORT [--ca ca.pem]
 *
 * WebRTC through node-datachannel bound to 127.0.0.1, as wt_client.mjs: run it inside a
 * loopback-only network namespace. Gives up after `--timeout-ms` (default 60 s).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { parseArgs } from "node:util";
import { Client } from "bittorrent-tracker";
import wrtc from "node-datachannel/polyfill";

const { values } = parseArgs({
  options: {
    tracker: { type: "string" },
    ca: { type: "string" },
    "info-hash": { type: "string" },
    "timeout-ms": { type: "string", default: "60000" },
  },
});

function say(object) {
  console.log(JSON.stringify(object));
}

function fail(message) {
  say({ step: "error", message });
  process.exit(1);
}

if (!values.tracker) fail("--tracker URL is required");
setTimeout(() => fail("timed out"), Number(values["timeout-ms"]));

const infoHash = values["info-hash"] ?? randomBytes(20).toString("hex");
const proxyOpts = values.ca
  ? { httpsAgent: new https.Agent({ ca: readFileSync(values.ca) }) }
  : undefined;

function client(name, left) {
  const c = new Client({
    infoHash,
    peerId: Buffer.from(`-BT1123-${name}`.padEnd(20, "0")).toString("hex"),
    announce: [values.tracker],
    port: 6881,
    wrtc,
    rtcConfig: { iceServers: [], bindAddress: "127.0.0.1" },
    proxyOpts,
    getAnnounceOpts: () => ({ uploaded: 0, downloaded: 0, left: left() }),
  });
  c.on("error", (err) => fail(`${name}: ${err?.message ?? err}`));
  c.on(
    "warning",
    (err) =>
      say({ step: `${name} warning`, message: String(err?.message ?? err) }),
  );
  return c;
}

/** The next `event` from `emitter`, as a promise. */
function next(emitter, event) {
  return new Promise((resolve) => emitter.once(event, resolve));
}

function counts(data) {
  return {
    complete: data.complete,
    incomplete: data.incomplete,
    downloaded: data.downloaded,
  };
}

let bLeft = 1000;
const a = client("A", () => 0);
const b = client("B", () => bLeft);

let update = next(a, "update");
a.start();
say({ step: "A started", ...counts(await update) });

const aPeer = next(a, "peer");
const bPeer = next(b, "peer");
update = next(b, "update");
b.start();
say({ step: "B started", ...counts(await update) });
await aPeer;
say({ step: "A peer" });
await bPeer;
say({ step: "B peer" });

let scrape = next(a, "scrape");
a.scrape();
say({ step: "scrape", ...counts(await scrape) });

bLeft = 0;
update = next(b, "update");
b.complete();
say({ step: "B completed", ...counts(await update) });
scrape = next(a, "scrape");
a.scrape();
say({ step: "scrape", ...counts(await scrape) });

a.stop();
b.stop();
// stop has no reply to wait for: give the tracker a moment, then scrape from a fresh client.
await new Promise((resolve) => setTimeout(resolve, 500));
a.destroy();
b.destroy();
const c = client("C", () => 0);
scrape = next(c, "scrape");
c.scrape();
say({ step: "final scrape", ...counts(await scrape) });
c.destroy();
say({ step: "done" });
process.exit(0);
