/**
 * Propagation delay between otter cluster nodes under whatever load they carry (for
 * bench/cluster_scale.sh): a probe peer announces `started` on a torrent of its own to one node
 * over UDP, and each other node is scraped every few milliseconds until it counts that peer; the
 * delay is from the announce's reply to the first scrape that shows it (so it includes up to one
 * poll interval).
 *
 *   deno run --allow-net bench/cluster_probe.ts --from UDP_PORT --to UDP_PORT[,UDP_PORT...]
 *     [--duration 20] [--lanes 4] [--poll-ms 5] [--timeout-ms 10000]
 *
 * `--lanes` probes run at once, one after the other in each lane. Prints one line per target and
 * a RESULT line of JSON (ms): samples, p50, p90, p99, max, and probes that never arrived.
 */
import {
  announcePacket,
  readU32,
  scrapePacket,
  UdpTestClient,
} from "../tests/support/udpClient.ts";

function option(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
}

const from = Number(option("from", "0"));
const targets = option("to", "").split(",").filter((p) => p !== "").map(Number);
const durationMs = Number(option("duration", "20")) * 1000;
const lanes = Number(option("lanes", "4"));
const pollMs = Number(option("poll-ms", "5"));
const timeoutMs = Number(option("timeout-ms", "10000"));
if (from <= 0 || targets.length === 0) {
  console.error("usage: cluster_probe.ts --from UDP_PORT --to UDP_PORT[,...] [--duration S]");
  Deno.exit(2);
}

/** A fresh torrent per probe: "probe" marker bytes, the run's random tag, the probe's number. */
const runTag = crypto.getRandomValues(new Uint8Array(4));
function probeHash(n: number): Uint8Array {
  const hash = new Uint8Array(20);
  hash.set([0x70, 0x72, 0x6f, 0x62, 0x65], 0);
  hash.set(runTag, 5);
  new DataView(hash.buffer).setUint32(9, n);
  return hash;
}

const delays: number[][] = targets.map(() => []);
const missing: number[] = targets.map(() => 0);
let next = 0;
const until = performance.now() + durationMs;

async function lane(): Promise<void> {
  const source = new UdpTestClient("127.0.0.1", from);
  const sinks = targets.map((port) => new UdpTestClient("127.0.0.1", port));
  try {
    const sourceId = await source.connect();
    const sinkIds = await Promise.all(sinks.map((sink) => sink.connect()));
    while (performance.now() < until) {
      const n = next++;
      const hash = probeHash(n);
      const reply = await source.request(
        announcePacket({
          connectionId: sourceId,
          infoHash: hash,
          port: 1 + (n % 60000),
          event: 2,
          left: 1,
          transactionId: n,
        }),
      );
      if (reply === null) continue;
      const sent = performance.now();
      await Promise.all(sinks.map(async (sink, t) => {
        for (;;) {
          const scraped = await sink.request(scrapePacket(sinkIds[t], [hash]), timeoutMs);
          const now = performance.now();
          if (scraped !== null && readU32(scraped, 0) === 2 && readU32(scraped, 16) >= 1) {
            delays[t].push(now - sent);
            return;
          }
          if (now - sent > timeoutMs) {
            missing[t]++;
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, pollMs));
        }
      }));
    }
  } finally {
    source.close();
    for (const sink of sinks) sink.close();
  }
}

await Promise.all(Array.from({ length: lanes }, () => lane()));

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const all: number[] = [];
targets.forEach((port, t) => {
  const sorted = delays[t].sort((a, b) => a - b);
  all.push(...sorted);
  console.log(
    `propagation :${from} -> :${port}: ${sorted.length} probes, p50 ${
      quantile(sorted, 0.5).toFixed(0)
    } ms, p99 ${quantile(sorted, 0.99).toFixed(0)} ms, max ${
      (sorted[sorted.length - 1] ?? NaN).toFixed(0)
    } ms, ${missing[t]} not within ${timeoutMs} ms`,
  );
});
all.sort((a, b) => a - b);
console.log(
  "RESULT " + JSON.stringify({
    samples: all.length,
    p50: Math.round(quantile(all, 0.5)),
    p90: Math.round(quantile(all, 0.9)),
    p99: Math.round(quantile(all, 0.99)),
    max: Math.round(all[all.length - 1] ?? NaN),
    missing: missing.reduce((a, b) => a + b, 0),
  }),
);
