/**
 * The late window after an outage, step by step: a node applies its own late batches again at
 * their place in the stream order (so that every node ends with the stream's last word on each
 * peer), and that must not undo a newer change of its own to the same peer. A node never reads
 * its own streams: it keeps its late batches in memory and applies each once a read of their
 * shard sent after its XADD was acknowledged comes back (shardReader.ts). Node x talks to a real
 * redis-server through a proxy (support/redisProxy.ts) that fakes the outage and holds back what
 * x's shard readers get, so the test decides when x applies each late batch: the cluster has two
 * shards, and the proxy holds one shard's reader while the other goes on. Node y reads Redis
 * directly and sees the streams as every other node would.
 */
import assert from "node:assert/strict";
import { shardOf } from "../src/cluster/changeBatch.ts";
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
  name: "a late batch of a node's own, applied again after it changed the same peer again, " +
    "does not undo that change",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    await using proxy = new RedisProxy(redis.port);
    // Long timeouts: x's readers wait for the proxy for as long as the test holds them.
    const x = makeNode("x", proxy.url, { commandTimeoutMs: 15_000, shards: 2 });
    const y = makeNode("y", redis.url, { shards: 2 });
    const nodes = [x, y];
    // Q and D on shard 0; the peer that starts and completes on shard 1.
    const [queuedHash, laterHash, hash] = [infoHash(1), infoHash(3), infoHash(4)];
    assert.deepEqual([queuedHash, laterHash, hash].map((h) => shardOf(h, 0, 2)), [0, 0, 1]);
    const peer = ipv4(1);
    /** Waits until x has published `count` batches. */
    const published = (count: number) =>
      waitFor(`x published ${count}`, () => x.sync.counters.published === count);
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));

      // An outage of x's link: a change made meanwhile is queued (batch Q).
      proxy.down();
      await waitFor("x disconnected", () => x.sync.counters.state === "disconnected");
      announce(x, queuedHash, ipv4(2), 2222, 2, false);
      await waitFor("Q taken", () => x.sync.recorder.pending === 0);

      // x is back with both readers held: it publishes Q, and does not apply it again yet.
      proxy.hold();
      proxy.up();
      await published(1);
      await waitFor("both of x's readers held", () => proxy.readers === 2);

      // The peer starts on x while Q is unapplied: its batch F follows Q, marked late.
      announce(x, hash, peer, 6881, 2, false);
      await published(2);
      assert.equal(x.sync.ownLatePending, 2);

      // x's shard 0 reader goes on and applies Q again; shard 1's stays held, F with it.
      proxy.hold("{test:1}");
      proxy.passHeld();
      await waitFor("Q reapplied", () => x.sync.counters.reapplied === 1);
      // One flush later x takes batch D: the late window of Q is over.
      announce(x, laterHash, ipv4(3), 3333, 2, false);
      await published(3);

      // The peer completes on x: batch G. F, which started it, is still unapplied.
      announce(x, hash, peer, 6881, 1, true);
      await published(4);
      assert.equal(x.store.counts(hash).complete, 1, "a seeder on x once it completed");
      assert.ok(x.sync.ownLatePending >= 2, "F and G wait for shard 1's reader");

      // x's shard 1 reader goes on: F's start applied again on x must not leave it a leecher.
      proxy.release();
      await waitFor("x applied its late batches", () => x.sync.ownLatePending === 0);
      await waitFor("y applied all", () => y.sync.counters.appliedBatches === 4);
      assert.ok(x.sync.counters.reapplied >= 3, "Q, F and G were applied again on x");
      assert.deepEqual(x.store.counts(hash), { complete: 1, incomplete: 0, downloaded: 1 });
      assert.equal(x.store.snapshot(), y.store.snapshot());
      for (const node of nodes) assert.deepEqual(node.sync.counters.rejected, NONE_REJECTED);
    } finally {
      proxy.release();
      await stopAll(nodes, redis);
    }
  },
});
