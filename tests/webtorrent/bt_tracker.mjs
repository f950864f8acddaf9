/**
 * bittorrent-tracker 11.2.3's server (the tracker most WebTorrent users run), as a WebSocket-only
 * tracker on 127.0.0.1 for checking the WebTorrent test recipe and as the benchmark's reference.
 * Prints one JSON line `{"event":"listening","port":N,"url":"ws://127.0.0.1:N"}` and runs until
 * SIGTERM (or `--timeout-ms`, default 10 minutes).
 *
 *   node tests/webtorrent/bt_tracker.mjs [--port 0] [--cert leaf.pem --key leaf.key]
 *
 * With `--cert` and `--key` it serves wss:// from an https server of its own, handing upgrades to
 * the tracker's WebSocket server (`ws: { noServer: true }`), since its `http` option only builds
 * plain http servers. Runs under Node or Deno.
 */
import { readFileSync } from "node:fs";
import https from "node:https";
import { parseArgs } from "node:util";
import { Server } from "bittorrent-tracker";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    cert: { type: "string" },
    key: { type: "string" },
    "timeout-ms": { type: "string", default: "600000" },
  },
});

const tls = values.cert !== undefined && values.key !== undefined;
const tracker = new Server({
  udp: false,
  http: tls ? false : undefined,
  ws: tls ? { noServer: true } : true,
  stats: false,
});
tracker.on(
  "error",
  (err) =>
    console.log(JSON.stringify({ event: "error", message: String(err) })),
);
tracker.on("warning", (err) => {
  console.log(
    JSON.stringify({ event: "warning", message: String(err?.message ?? err) }),
  );
});

function listening(port, scheme) {
  console.log(
    JSON.stringify({
      event: "listening",
      port,
      url: `${scheme}://127.0.0.1:${port}`,
    }),
  );
}

let close;
if (tls) {
  const server = https.createServer({
    cert: readFileSync(values.cert),
    key: readFileSync(values.key),
  });
  server.on("upgrade", (req, socket, head) => {
    tracker.ws.handleUpgrade(
      req,
      socket,
      head,
      (ws) => tracker.ws.emit("connection", ws, req),
    );
  });
  server.listen(
    Number(values.port),
    "127.0.0.1",
    () => listening(server.address().port, "wss"),
  );
  close = () => server.close();
} else {
  tracker.listen(Number(values.port), "127.0.0.1", () => {
    listening(tracker.http.address().port, "ws");
  });
  close = () => tracker.close();
}

const timer = setTimeout(() => process.exit(2), Number(values["timeout-ms"]));
process.on("SIGTERM", () => {
  clearTimeout(timer);
  close();
  process.exit(0);
});
