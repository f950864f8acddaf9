/**
 * Refresh suppression between two otter processes over a real redis-server: a peer that
 * re-announces on A far more often than the refresh epoch is published about once per epoch, not
 * at every announce, while B keeps it in its replies throughout; started, a seeder flip and
 * stopped are each published at once.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { announcePeers } from "./support/udpClient.ts";
import {
  clusterArgs,
  eventually,
  hash,
  metric,
  Node,
  secretFile,
} from "./support/clusterOtters.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_refresh_test: skipped, no redis-server binary on PATH");

Deno.test({
  name: "cluster: refreshes that change nothing are published once per epoch, peers stay alive",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const secret = await secretFile("the refresh test's cluster secret");
    // --peer-timeout 6 gives a refresh epoch of 2 s (a third of it): a remote copy lives 6 s and
    // is refreshed at least every 2 s while the peer announces.
    const extra = ["--peer-timeout", "6"];
    const nodes: Node[] = [];
    try {
      for (const name of ["a", "b"]) {
        nodes.push(
          new Node(await startOtter(clusterArgs(redis.url, "refresh", name, secret, extra))),
        );
      }
      await Promise.all(nodes.map((n) => n.connect()));
      const [a, b] = nodes;
      const infoHash = hash(11);
      const published = () => metric(a, "otter_cluster_published_changes_total");
      const inB = async () => announcePeers(await b.announce(infoHash, 7001, 0), 4);

      await a.announce(infoHash, 6001, 2);
      await eventually("A's peer in B's replies", 2000, inB, (p) => p.includes("127.0.0.1:6001"));
      await eventually("started published", 2000, published, (n) => n === 1);

      // 24 re-announces over 6 s, one every 250 ms: three epochs, so at most 4 refreshes due.
      let missing = 0;
      for (let i = 0; i < 24; i++) {
        await a.announce(infoHash, 6001, 0);
        if (i % 2 === 1 && !(await inB()).includes("127.0.0.1:6001")) missing++;
        await new Promise((r) => setTimeout(r, 250));
      }
      await new Promise((r) => setTimeout(r, 400)); // a flush
      const refreshes = (await published()) - 1;
      console.log(`24 re-announces over 6 s with a 2 s epoch: ${refreshes} published`);
      assert.ok(refreshes >= 1 && refreshes <= 4, `${refreshes} refreshes published`);
      assert.equal(await metric(a, "otter_cluster_suppressed_refreshes_total"), 24 - refreshes);
      assert.equal(missing, 0, "B always had the peer");
      assert.ok((await inB()).includes("127.0.0.1:6001"), "and still has it");

      // A seeder flip and a stop are published at once, each one change.
      await a.announce(infoHash, 6001, 0, 0);
      await eventually("seeder on B", 2000, () => b.scrape(infoHash), (v) => v[0] === 1);
      await a.announce(infoHash, 6001, 3, 0);
      await eventually("stopped on B", 2000, () => b.scrape(infoHash), (v) => v[0] === 0);
      await eventually("two more published", 2000, published, (n) => n === refreshes + 3);
    } finally {
      for (const node of nodes) {
        node.client.close();
        await node.otter.stop();
      }
      await redis.stop();
    }
  },
});
