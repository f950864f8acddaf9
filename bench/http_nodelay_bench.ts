/**
 * Pipelined HTTP round trips against their bar (moved here from tests/http_nodelay_test.ts,
 * which keeps the behaviour: a kept-open connection gets TCP_NODELAY with its first reply).
 *
 *   deno bench --allow-all bench/http_nodelay_bench.ts
 *
 * A client sends a request, then its next one 50-200 µs later, before it has acknowledged the
 * first reply, and waits for both replies: with Nagle on, the second reply waited for the
 * client's delayed ACK (40 ms on Linux), 6-12 times in 1500 round trips. Bar: at most two of
 * 1500 round trips over 30 ms (a busy machine makes a few slow ones whatever otter does).
 */
import { startOtter } from "../tests/support/otterProcess.ts";
import { checkBars } from "./bar.ts";

const HASH = "%01".repeat(20);
const encoder = new TextEncoder();

function announce(port: number): Uint8Array {
  return encoder.encode(
    `GET /announce?info_hash=${HASH}&peer_id=-XX0001-000000000000&port=${port}&left=0&compact=1` +
      " HTTP/1.1\r\nHost: otter\r\n\r\n",
  );
}

const STATUS = encoder.encode("HTTP/");

/** Counts "HTTP/" status lines in a byte stream fed in pieces (a match may span two reads). */
class StatusLineCounter {
  #matched = 0;
  count(b: Uint8Array, n: number): number {
    let lines = 0;
    for (let i = 0; i < n; i++) {
      this.#matched = b[i] === STATUS[this.#matched]
        ? this.#matched + 1
        : b[i] === STATUS[0]
        ? 1
        : 0;
      if (this.#matched === STATUS.length) {
        lines++;
        this.#matched = 0;
      }
    }
    return lines;
  }
}

Deno.bench({
  name: "bar: pipelined HTTP round trips that wait for a delayed ACK",
  n: 1,
  warmup: 0,
  async fn() {
    await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
    const port = Number(new URL(otter.http[0]).port);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const buffer = new Uint8Array(65536);
    const slow: number[] = [];
    const counter = new StatusLineCounter();
    const deadline = performance.now() + 20_000;
    let trips = 0;
    try {
      for (; trips < 1500 && performance.now() < deadline; trips++) {
        const gapMs = [0.05, 0.1, 0.2][trips % 3];
        const started = performance.now();
        await conn.write(announce(1000 + (trips % 5000)));
        const until = performance.now() + gapMs;
        while (performance.now() < until) { /* a gap shorter than any timer */ }
        await conn.write(announce(7000 + (trips % 5000)));
        let replies = 0;
        while (replies < 2) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error("otter closed the connection");
          replies += counter.count(buffer, n);
        }
        const took = performance.now() - started;
        if (took > 30) slow.push(Math.round(took));
      }
    } finally {
      conn.close();
    }
    console.log(`${trips} round trips; over 30 ms: ${slow.join(", ") || "none"}`);
    checkBars([
      { what: "round trips", value: trips, unit: "", kind: "min", bar: 1500 },
      { what: "round trips over 30 ms", value: slow.length, unit: "", kind: "max", bar: 2 },
    ]);
  },
});
