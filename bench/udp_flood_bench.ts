/**
 * A UDP flood at the store caps against its bar (moved here from tests/store_caps_socket_test.ts,
 * which keeps the behaviour: the caps hold and RSS stays within its budget).
 *
 *   deno bench --allow-all bench/udp_flood_bench.ts
 *
 * An otter with the start task's runtime flags (through `deno run --allow-all`), --max-torrents
 * 20000, --max-peers 40000 and --when-full evict gets tests/support/udpFlood.ts's flood for 10 s
 * (128 announces in flight, half of them new torrents): at least 200,000 replies.
 */
import { startOtter } from "../tests/support/otterProcess.ts";
import { flood } from "../tests/support/udpFlood.ts";
import { checkBars } from "./bar.ts";

Deno.bench({
  name: "bar: UDP flood at the caps, replies in 10 s",
  n: 1,
  warmup: 0,
  async fn() {
    await using otter = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--max-torrents",
      "20000",
      "--max-peers",
      "40000",
      "--when-full",
      "evict",
    ]);
    const { hostname, port, io } = otter.udp[0];
    const r = await flood(hostname, port, 300_000, 128, 10_000);
    console.log(
      `UDP io ${io}: ${r.sent} sent, ${r.replies} replies in ${Math.round(r.ms)} ms ` +
        `(${Math.round(r.replies / (r.ms / 1000))}/s; ${r.lost} missing, ${r.sendFailed} not sent)`,
    );
    checkBars([{ what: "replies", value: r.replies, unit: "", kind: "min", bar: 200_000 }]);
  },
});
