/**
 * WebSocket peers in the cluster's snapshots, over a real redis-server: a node writes its own
 * WebSocket peers under the key it publishes them by (wsPeerKeys.ts), not under its local entry
 * number, and another node's as it holds them; a node that joins holds both as other nodes'
 * peers (WS_REMOTE_BIT), and a node loading a snapshot that holds one of its own peers skips it.
 * And the keys themselves: a bijection over 31 bits whose inverse finds the entry again.
 */
import assert from "node:assert/strict";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import {
  announce,
  hex,
  infoHash,
  ipv4,
  makeNode,
  stopAll,
  waitFor,
} from "./support/clusterNodes.ts";
import type { TestNode } from "./support/clusterNodes.ts";
import { WsPeerKeys } from "../src/cluster/wsPeerKeys.ts";
import { FAMILY_WS } from "../src/store/swarmTable.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_ws_snapshot_test: skipped, no redis-server binary on PATH");

Deno.test("WebSocket peer keys: a bijection of the entry, the tag as port, the remote bit set", () => {
  let seed = 12345;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let round = 0; round < 20; round++) {
    const keys = new WsPeerKeys(random);
    assert.ok(keys.tag >= 1 && keys.tag <= 0xffff);
    const seen = new Set<number>();
    for (const entry of [0, 1, 2, 3, 255, 65536, 0x7ffffffe, 0x7fffffff, random() & 0x7fffffff]) {
      const word = keys.published(entry);
      assert.ok(word >= 0x80000000 && word <= 0xffffffff, `${word}`);
      assert.equal(keys.entryOf(word), entry);
      seen.add(word);
    }
    assert.equal(seen.size, 9, "no two entries share a key");
    for (let entry = 0; entry < 4096; entry++) {
      assert.equal(keys.entryOf(keys.published(entry)), entry);
    }
  }
  // Two processes' keys for the same entries do not line up.
  const a = new WsPeerKeys();
  const b = new WsPeerKeys();
  let same = 0;
  for (let entry = 0; entry < 1000; entry++) if (a.published(entry) === b.published(entry)) same++;
  assert.ok(same <= 1, `${same} of 1000 alike`);
});

const H = infoHash(7);

/** Puts a WebSocket peer into `node`'s store as the WebSocket tracker or a remote batch would. */
function holdWs(node: TestNode, word: number, port: number, seeder: boolean): void {
  const address = Uint8Array.of(word >>> 24, word >>> 16, word >>> 8, word);
  const out = new Uint8Array(0);
  node.store.announce(H, 0, FAMILY_WS, address, 0, port, 2, seeder, 0, node.clock.now, out, 0);
}

function wsKeysOf(node: TestNode): string[] {
  return [...node.store.peerMap.keys()].filter((key) => key.split("|")[1] === "1").sort();
}

Deno.test({
  name: "snapshots carry WebSocket peers under their published keys; a loader skips its own",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    // a's WebSocket tracker holds entry 5 of torrent H (generation 3).
    const keys = new WsPeerKeys();
    keys.owns = (entry, hash, at) => entry === 5 && hex(hash, at, 20) === hex(H, 0, 20);
    const snapshots = { minIntervalMs: 300, tickMs: 50 };
    const a = makeNode("a", redis.url, { snapshots, wsKeys: keys });
    const nodes = [a];
    try {
      await a.sync.start();
      holdWs(a, 5, 3, true); // a's own peer: entry 5, generation 3
      holdWs(a, 0x80090909, 77, false); // another node's, as a holds it
      announce(a, H, ipv4(1), 6881, 2, false); // a published peer, so a has a shard to write
      await waitFor("a snapshot", () => a.sync.counters.snapshots.written >= 1);

      const c = makeNode("c", redis.url, { snapshots });
      nodes.push(c);
      await c.sync.start();
      assert.equal(c.sync.counters.snapshots.loaded, 1);
      const own = keys.published(5).toString(16);
      const t = hex(H, 0, 20);
      assert.deepEqual(wsKeysOf(c), [`${t}|1|${own}|${keys.tag}`, `${t}|1|80090909|77`].sort());
      assert.equal(c.store.peerMap.get(`${t}|1|${own}|${keys.tag}`)?.seeder, true);
      assert.deepEqual(c.store.counts(H), a.store.counts(H));

      // A node with a's keys (a itself, loading the snapshot over its store after a gap) does
      // not take its own peer for another node's: it would count it twice.
      const again = makeNode("a-again", redis.url, { snapshots, wsKeys: keys });
      nodes.push(again);
      await again.sync.start();
      assert.deepEqual(wsKeysOf(again), [`${t}|1|80090909|77`]);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});
