/**
 * WebSocket peers in a cluster, two otter processes and one redis-server: a WebSocket peer's
 * counts reach the other node's scrape (and a completion counts once there), its socket's close
 * takes it out everywhere, and a peer held for another node never receives an offer (offers reach
 * only peers connected to the same node).
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { announce, id, offers, WsClient } from "./support/wsHarness.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_ws_test: skipped, no redis-server binary on PATH");

const H = id("h");

async function scrape(base: string): Promise<number[]> {
  const body = new TextDecoder("latin1").decode(
    new Uint8Array(
      await (await fetch(`${base}/scrape?info_hash=${encodeURIComponent(H)}`))
        .arrayBuffer(),
    ),
  );
  const figure = (key: string) => Number(new RegExp(`${key}i(\\d+)e`).exec(body)?.[1] ?? NaN);
  return [figure("complete"), figure("incomplete"), figure("downloaded")];
}

async function eventually(what: string, probe: () => Promise<number[]>, want: number[]) {
  const deadline = performance.now() + 3000;
  let last: number[] = [];
  while (performance.now() < deadline) {
    last = await probe();
    if (JSON.stringify(last) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
}

Deno.test({
  name: "cluster: WebSocket peers' counts reach every node, offers stay on their node",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const args = (name: string) => [
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--cluster",
      redis.url,
      "--cluster-name",
      "ws",
      "--node-id",
      name,
      "--cluster-insecure",
    ];
    const a = await startOtter(args("a"));
    const b = await startOtter(args("b"));
    try {
      const portOf = (base: string) => Number(new URL(base).port);
      await using seeder = await WsClient.open(portOf(a.http[0]));
      await seeder.json(announce(H, id("s"), { event: "completed", left: 0 }));
      await seeder.message();
      await using leecher = await WsClient.open(portOf(a.http[0]));
      await leecher.json(announce(H, id("l"), { event: "started" }));
      await leecher.message();
      await eventually("B counts A's WebSocket peers", () => scrape(b.http[0]), [1, 1, 1]);

      // On B, a WebSocket announce with offers: B's swarm holds A's two peers, but they are
      // reachable only through A's sockets, so no offer goes anywhere.
      await using onB = await WsClient.open(portOf(b.http[0]));
      await onB.json(announce(H, id("b"), { event: "started", offers: offers(3) }));
      const reply = await onB.message();
      assert.deepEqual([reply.complete, reply.incomplete], [1, 2]);
      assert.deepEqual(await seeder.drain(300), []);
      assert.deepEqual(await leecher.drain(100), []);
      await eventually("A counts B's WebSocket peer", () => scrape(a.http[0]), [1, 2, 1]);

      // Closing the seeder's socket on A takes it out on both nodes.
      seeder.conn.close();
      await eventually("A forgets the closed seeder", () => scrape(a.http[0]), [0, 2, 1]);
      await eventually("B forgets it too", () => scrape(b.http[0]), [0, 2, 1]);
      const metrics = await (await fetch(`${b.http[0]}/metrics`)).text();
      assert.match(metrics, /\notter_peers\{family="ws"\} 2\n/);
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  },
});
