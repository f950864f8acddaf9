/**
 * The late window after an outage, step by step: a node reads its own late batches back and
 * applies them again (so that every node ends with the stream's last word on each peer), and
 * that must not undo a newer change of its own to the same peer. Node x talks to a real
 * redis-server through a proxy (support/redisProxy.ts) that fakes the outage and holds back what
 * x's stream reader gets, so the test decides when x reads each batch back; node y reads Redis
 * directly and sees the stream as every other node would.
 */
import assert from "node:assert/strict";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { RedisProxy } from "./support/redisProxy.ts";
import {
  announce,
  infoHash,
  ipv4,
  makeNode,
  NONE_REJECTED,
  stopAll,
  waitFor,
} from "./support/clusterNodes.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_late_window_test: skipped, no redis-server binary on PATH");

Deno.test({
  name: "a late batch of a node's own, read back after it changed the same peer again, " +
    "does not undo that change",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    await using proxy = new RedisProxy(redis.port);
    // Long timeouts: x's reader waits for the proxy for as long as the test holds it.
    const x = makeNode("x", proxy.url, { commandTimeoutMs: 15_000 });
    const y = makeNode("y", redis.url);
    const nodes = [x, y];
    const hash = infoHash(1);
    const peer = ipv4(1);
    /** Waits until x has published `count` batches. */
    const published = (count: number) =>
      waitFor(`x published ${count}`, () => x.sync.counters.published === count);
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));

      // An outage of x's link: a change made meanwhile is queued (batch Q).
      proxy.down();
      await waitFor("x disconnected", () => x.sync.counters.state === "disconnected");
      announce(x, infoHash(2), ipv4(2), 2222, 2, false);
      await waitFor("Q taken", () => x.sync.recorder.pending === 0);

      // x is back and publishes Q, but does not read it back yet.
      proxy.hold();
      proxy.up();
      await published(1);
      // Empty XREAD replies (from before Q) are passed on until the one with Q is held.
      await waitFor("Q held", () => {
        if (proxy.held > 0 && proxy.held < 64) proxy.passHeld();
        return proxy.held >= 64;
      });

      // The peer starts on x while Q is unread: its batch F follows Q, marked late.
      announce(x, hash, peer, 6881, 2, false);
      await published(2);

      // x reads Q back (the reply with F is held), then one flush later takes batch D.
      proxy.passHeld();
      await waitFor("Q reapplied", () => x.sync.counters.reapplied === 1);
      await waitFor("F held", () => proxy.held >= 64);
      announce(x, infoHash(3), ipv4(3), 3333, 2, false);
      await published(3);

      // The peer completes on x: batch G. F, which started it, is still unread.
      announce(x, hash, peer, 6881, 1, true);
      await published(4);
      assert.equal(x.store.scrape(hash).complete, 1, "a seeder on x once it completed");

      // x reads F, D and G back. F's start applied again on x must not leave it a leecher.
      proxy.release();
      await waitFor("x read all back", () => x.sync.counters.ownBatches === 4);
      await waitFor("y applied all", () => y.sync.counters.appliedBatches === 4);
      assert.ok(x.sync.counters.reapplied >= 2, "Q and F were applied again on x");
      assert.deepEqual(x.store.scrape(hash), { complete: 1, incomplete: 0, downloaded: 1 });
      assert.equal(x.store.snapshot(), y.store.snapshot());
      for (const node of nodes) assert.deepEqual(node.sync.counters.rejected, NONE_REJECTED);
    } finally {
      proxy.release();
      await stopAll(nodes, redis);
    }
  },
});
