/**
 * The UDP socket loops' own counters over real sockets, on every I/O path (fast with one socket,
 * fast with I/O workers, portable): a datagram longer than the receive slot and announces whose
 * handling throws must show up on /metrics and /stats (read over HTTP), and the first handler
 * error must be logged once. otter runs in-process (startTracker) so that the test can make the
 * store throw, standing in for a bug: nothing a packet holds can make the handler throw.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { startTracker } from "../src/servers/startTracker.ts";
import { fastUdpSupport } from "../src/servers/udp/udpFastSocket.ts";
import { PACKET_CAPACITY } from "../src/servers/udp/udpBatchArena.ts";
import { announcePacket, UdpTestClient } from "./support/udpClient.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const PATHS = [
  { io: "fast", workers: 1 },
  { io: "fast", workers: 2 },
  { io: "portable", workers: 1 },
] as const;

for (const { io, workers } of PATHS) {
  const unsupported = io === "fast" && !fastUdpSupport().ok;
  Deno.test({
    name: `UDP ${io} path, ${workers} worker(s): truncated datagrams and handler errors on ` +
      `/metrics and /stats; the first handler error logged once`,
    ignore: unsupported,
    fn: () => provokeAndRead(io, workers),
  });
}

async function provokeAndRead(io: "fast" | "portable", workers: number): Promise<void> {
  const parsed = parseCommandLine([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--udp-io",
    io,
    "--workers",
    String(workers),
  ]);
  assert.ok(parsed.kind === "run");
  const logs: string[] = [];
  const running = await startTracker(parsed.config, new Clock(), (line) => logs.push(line));
  const udp = (() => {
    for (const line of logs) {
      const m = /^UDP listening on udp:\/\/127\.0\.0\.1:(\d+)\/announce/.exec(line);
      if (m) return Number(m[1]);
    }
    throw new Error(`no UDP listener line in ${logs.join("\n")}`);
  })();
  const http = logs.map((line) => /^HTTP listening on (\S+)\/announce$/.exec(line)?.[1])
    .find((base) => base !== undefined);
  assert.ok(http, logs.join("\n"));
  const client = new UdpTestClient("127.0.0.1", udp);
  const listener = `udp://127.0.0.1:${udp}`;
  try {
    const id = await client.connect();
    // A bug stand-in: every announce that reaches the store throws.
    running.tracker.store.announce = () => {
      throw new Error("store bug on purpose");
    };
    const infoHash = new Uint8Array(20).fill(7);
    for (let i = 0; i < 3; i++) {
      await client.send(announcePacket({ connectionId: id, infoHash, port: 1000 + i }));
    }
    await client.send(new Uint8Array(PACKET_CAPACITY + 500));

    const metric = (body: string, name: string): number | undefined => {
      const prefix = `${name}{listener="${listener}",io="${io}"} `;
      const line = body.split("\n").find((l) => l.startsWith(prefix));
      return line === undefined ? undefined : Number(line.slice(prefix.length));
    };
    // The datagrams are handled after their sends return: wait (bounded) until all are counted.
    let body = "";
    const deadline = Date.now() + 10_000;
    for (;;) {
      const response: Response = await fetch(`${http}/metrics`, {
        signal: AbortSignal.timeout(5000),
      });
      body = await response.text();
      assert.equal(response.status, 200);
      if (
        metric(body, "otter_udp_handler_errors_total") === 3 &&
        metric(body, "otter_udp_truncated_total") === 1
      ) break;
      if (Date.now() > deadline) assert.fail(`counters never got to 3 and 1:\n${body}`);
      await sleep(50);
    }
    assert.equal(metric(body, "otter_udp_receive_errors_total"), 0);
    assert.equal(metric(body, "otter_udp_send_dropped_total"), 0);
    assert.ok(body.includes("# TYPE otter_udp_handler_errors_total counter"));
    assert.equal(await client.receive(200), null, "no reply to a failed announce");

    const response = await fetch(`${http}/stats?mode=udp4&format=json`, {
      signal: AbortSignal.timeout(5000),
    });
    const stats = await response.json();
    assert.deepEqual(stats.udp4.sockets, [{
      listener,
      io,
      truncated: 1,
      handlerErrors: 3,
      receiveErrors: 0,
      sendDropped: 0,
      lastHandlerError: "Error: store bug on purpose",
    }]);
    const text = await (await fetch(`${http}/stats?mode=udp4`)).text();
    assert.match(text, / 1 truncated, 3 handler errors, 0 receive errors, 0 replies dropped\./);

    const logged = logs.filter((line) => line.includes("handler error"));
    assert.equal(logged.length, 1, logs.join("\n"));
    assert.ok(logged[0].startsWith(`UDP ${listener}: handler error`), logged[0]);
    assert.ok(logged[0].includes("store bug on purpose"), logged[0]);
  } finally {
    client.close();
    await running.stop();
  }
}
