/**
 * One real WebTorrent client (npm `webtorrent` 3.0.21 over `node-datachannel` 0.33.4), driven
 * from the command line for end-to-end tests: it seeds a file or leeches a magnet link through one
 * WebSocket tracker and reports on stdout as JSON lines, one object per line:
 *
 *   {"event":"seeding","infoHash":"…","magnet":"magnet:?…","length":N}        (seed)
 *   {"event":"metadata","infoHash":"…","length":N}                            (leech)
 *   {"event":"wire","type":"webrtc","remote":"…"}                             (each peer connection)
 *   {"event":"progress","downloaded":N,"uploaded":N,"peers":N}                (every second)
 *   {"event":"done","path":"…","sha256":"…","length":N,"wireTypes":["webrtc"]} (leech)
 *   {"event":"error","message":"…"}                                           (then exit 1)
 *
 * Run it under Deno from this folder's node_modules (`deno install` here first):
 *
 *   deno run -A tests/webtorrent/wt_client.mjs seed  --tracker ws://127.0.0.1:PORT --file F
 *   deno run -A tests/webtorrent/wt_client.mjs leech --tracker ws://127.0.0.1:PORT \
 *     --magnet 'magnet:?…' --out DIR [--ca ca.pem] [--timeout-ms 60000] [--linger]
 *
 * Only WebRTC is on: DHT, local service discovery, uTP, UPnP, NAT-PMP and web seeds are off, so
 * the two clients can find each other only through the tracker. ICE gathers no STUN candidates
 * and binds 127.0.0.1 (without `bindAddress` no loopback candidate is gathered); run it inside a
 * loopback-only network namespace so WebRTC never sends beyond loopback. `--ca` trusts a PEM CA
 * for wss:// (npm `ws` ignores DENO_CERT; the agent goes through bittorrent-tracker's proxyOpts).
 * The process exits by itself after `--timeout-ms` (default 60 s), and a seeder on SIGTERM; a
 * leecher exits once done, or with `--linger` stays and seeds until SIGTERM.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { parseArgs } from "node:util";
import WebTorrent from "webtorrent";
import wrtc from "node-datachannel/polyfill";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    tracker: { type: "string" },
    file: { type: "string" },
    magnet: { type: "string" },
    out: { type: "string" },
    ca: { type: "string" },
    linger: { type: "boolean", default: false },
    "timeout-ms": { type: "string", default: "60000" },
  },
});

function say(object) {
  console.log(JSON.stringify(object));
}

function fail(message) {
  say({ event: "error", message });
  process.exit(1);
}

const mode = positionals[0];
if (mode !== "seed" && mode !== "leech") {
  fail("usage: wt_client.mjs seed|leech --tracker URL …");
}
if (!values.tracker) fail("--tracker URL is required");
if (mode === "seed" && !values.file) fail("seed needs --file");
if (mode === "leech" && (!values.magnet || !values.out)) {
  fail("leech needs --magnet and --out");
}

const timeoutMs = Number(values["timeout-ms"]);
const tracker = {
  wrtc,
  rtcConfig: { iceServers: [], bindAddress: "127.0.0.1" },
};
if (values.ca) {
  tracker.proxyOpts = {
    httpsAgent: new https.Agent({ ca: readFileSync(values.ca) }),
  };
}

const client = new WebTorrent({
  dht: false,
  lsd: false,
  utp: false,
  natUpnp: false,
  natPmp: false,
  webSeeds: false,
  tracker,
});
client.on("error", (err) => fail(`client: ${err?.message ?? err}`));

const timer = setTimeout(
  () => fail(`timed out after ${timeoutMs} ms`),
  timeoutMs,
);
process.on("SIGTERM", () => client.destroy(() => process.exit(0)));

const wireTypes = new Set();

function watch(torrent) {
  torrent.on(
    "warning",
    (err) => say({ event: "warning", message: String(err?.message ?? err) }),
  );
  torrent.on("error", (err) => fail(`torrent: ${err?.message ?? err}`));
  torrent.on("wire", (wire, addr) => {
    wireTypes.add(wire.type);
    say({
      event: "wire",
      type: wire.type,
      remote: String(addr ?? wire.remoteAddress ?? ""),
    });
  });
  const progress = setInterval(() => {
    say({
      event: "progress",
      downloaded: torrent.downloaded,
      uploaded: torrent.uploaded,
      peers: torrent.numPeers,
    });
  }, 1000);
  progress.unref?.();
}

function sha256File(file) {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

if (mode === "seed") {
  client.seed(values.file, { announce: [values.tracker] }, (torrent) => {
    watch(torrent);
    say({
      event: "seeding",
      infoHash: torrent.infoHash,
      magnet: torrent.magnetURI,
      length: torrent.length,
    });
  });
} else {
  const torrent = client.add(values.magnet, {
    announce: [values.tracker],
    path: values.out,
  });
  watch(torrent);
  torrent.on("metadata", () => {
    say({
      event: "metadata",
      infoHash: torrent.infoHash,
      length: torrent.length,
    });
  });
  torrent.on("done", () => {
    const file = path.join(values.out, torrent.files[0].path);
    say({
      event: "done",
      path: file,
      sha256: sha256File(file),
      length: torrent.length,
      wireTypes: [...wireTypes],
    });
    clearTimeout(timer);
    if (!values.linger) {
      client.destroy(() => process.exit(0));
      return;
    }
    // --linger: stay in the swarm as a seeder (it announced `completed`) until SIGTERM, or for
    // another --timeout-ms at most.
    setTimeout(() => client.destroy(() => process.exit(0)), timeoutMs);
  });
}
