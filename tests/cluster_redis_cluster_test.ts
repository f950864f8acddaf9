/**
 * The cluster sync over a Redis Cluster that the test starts (support/redisClusterServer.ts:
 * redis-server in cluster mode, joined with `redis-cli --cluster create`), given to `--cluster`
 * as a seed list: the changes are split into 16 shards by info hash, each shard's keys on the
 * master of its hash tag's slot. Three nodes share swarms, a node joining later loads every
 * shard's snapshot, and a master killed under load fails over to its replica without losing a
 * swarm: the nodes serve from their stores throughout and agree again afterwards. Two otter
 * processes given the seed list with `--cluster` share swarms too.
 */
import assert from "node:assert/strict";
import { haveRedisServer } from "./support/redisServer.ts";
import { redisCli, RedisClusterServer } from "./support/redisClusterServer.ts";
import {
  announce,
  infoHash,
  ipv4,
  KEYS,
  makeNode,
  sleep,
  type TestNode,
  waitFor,
} from "./support/clusterNodes.ts";
import { DEFAULT_CLUSTER_SHARDS } from "../src/cluster/clusterKeys.ts";
import { startOtter } from "./support/otterProcess.ts";
import { clusterArgs, eventually, hash, Node, secretFile } from "./support/clusterOtters.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_redis_cluster_test: skipped, no redis-server binary on PATH");

const QUICK = { minIntervalMs: 300, tickMs: 50 };

function seedList(cluster: RedisClusterServer): string {
  return cluster.seeds.map((seed) => `redis://${seed}`).join(",");
}

async function stopNodes(nodes: TestNode[], cluster: RedisClusterServer): Promise<void> {
  for (const node of nodes) await node.sync.stop();
  await cluster.stop();
}

Deno.test({
  name: "three nodes share swarms over a 3-master Redis Cluster given as a seed list; a node " +
    "joining later loads every shard's snapshot",
  ignore: !haveRedis,
  async fn() {
    const cluster = new RedisClusterServer({ masters: 3 });
    await cluster.start();
    const url = seedList(cluster);
    const nodes = ["a", "b", "c"].map((name) => makeNode(name, url, { snapshots: QUICK }));
    const [a, b, c] = nodes;
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      for (const node of nodes) {
        assert.equal(node.sync.counters.state, "connected");
        assert.equal(node.sync.shards, DEFAULT_CLUSTER_SHARDS);
      }
      // 2000 peers over 20 torrents, which fall in all 16 shards.
      for (let n = 0; n < 2000; n++) announce(a, infoHash(n % 20), ipv4(n), 1 + n, 2, false);
      await waitFor(
        "b and c have a's peers",
        () => b.store.peerMap.size === 2000 && c.store.peerMap.size === 2000,
      );
      // A stop on b, a completion on c: everywhere.
      announce(b, infoHash(0), ipv4(0), 1, 3, false);
      announce(c, infoHash(1), ipv4(1), 2, 1, true);
      await waitFor(
        "all agree",
        () =>
          nodes.every((node) =>
            node.store.snapshot() === a.store.snapshot() && node.store.peerMap.size === 1999
          ),
      );
      for (const node of nodes) {
        assert.deepEqual(node.store.counts(infoHash(1)), {
          complete: 1,
          incomplete: 99,
          downloaded: 1,
        });
      }
      // Every master holds some of the shards.
      for (const port of cluster.ports) {
        const keys = Number(await redisCli(["-p", String(port), "DBSIZE"]));
        assert.ok(keys > 0, `master ${port} holds keys`);
      }
      // Each shard's streams live on the master of its slot.
      const master = await cluster.masterFor(KEYS.nodeStream(5, a.sync.instance));
      const type = await redisCli([
        "-p",
        String(master),
        "TYPE",
        KEYS.nodeStream(5, a.sync.instance),
      ]);
      assert.equal(type, "stream");

      // Every shard gets a snapshot; d joins and loads them.
      const deadline = performance.now() + 30_000;
      for (let shard = 0; shard < DEFAULT_CLUSTER_SHARDS; shard++) {
        const args = ["-c", "-p", String(cluster.ports[0]), "EXISTS", KEYS.manifest(shard)];
        while ((await redisCli(args)).split("\n").pop() !== "1") {
          if (performance.now() > deadline) throw new Error(`no snapshot of shard ${shard}`);
          await sleep(100);
        }
      }
      const d = makeNode("d", url, { snapshots: QUICK });
      nodes.push(d);
      await d.sync.start();
      assert.equal(d.sync.counters.snapshots.loaded, 16, d.logs.join("\n"));
      assert.equal(d.store.peerMap.size, 1999);
      assert.equal(d.store.snapshot(), a.store.snapshot());
    } finally {
      await stopNodes(nodes, cluster);
    }
  },
});

/** An announce as the servers make it: stored, then published if the rule says so. */
function serverAnnounce(node: TestNode, n: number, seeder: boolean): void {
  const [hash, address, port] = [infoHash(n % 40), ipv4(n), 1 + n];
  node.store.announce(
    hash,
    0,
    4,
    address,
    0,
    port,
    0,
    seeder,
    0,
    node.clock.now,
    new Uint8Array(0),
    0,
  );
  node.sync.changes.announced(
    0,
    hash,
    0,
    4,
    address,
    0,
    port,
    seeder,
    node.store.result.previous,
    node.clock.now,
  );
}

Deno.test({
  name: "a Redis Cluster master killed under load fails over; the nodes serve throughout and " +
    "lose no swarm",
  ignore: !haveRedis,
  async fn() {
    const cluster = new RedisClusterServer({ masters: 3, replicasPerMaster: 1 });
    await cluster.start();
    const url = seedList(cluster);
    const nodes = ["a", "b"].map((name) => makeNode(name, url, { snapshots: QUICK }));
    const [a, b] = nodes;
    let running = true;
    let announces = 0;
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      // Load: a's clients announce, new peers and re-announces, b's a few of their own.
      const load = (async () => {
        for (let round = 0; running; round++) {
          for (let i = 0; i < 100; i++) {
            serverAnnounce(a, (round * 100 + i) % 3000, false);
            announces++;
          }
          if (round % 5 === 0) serverAnnounce(b, 10_000 + ((round / 5) % 100), true);
          await sleep(10);
        }
      })();
      await waitFor("b follows a", () => b.store.peerMap.size > 1000);

      // The master of shard 3 dies; its replica takes over within seconds.
      const victim = await cluster.masterFor(KEYS.nodes(3));
      const before = announces;
      await cluster.kill(victim);
      await cluster.waitHealthy(30_000);
      assert.ok(announces > before, "a served announces while the master was gone");
      await waitFor(
        "both back",
        () =>
          nodes.every((node) =>
            node.sync.counters.state === "connected" && node.sync.counters.connects > 1
          ),
      );
      await sleep(1000);
      running = false;
      await load;

      // Every client announces once more, as it would at its next interval: whatever Redis lost
      // in the failover is published again (its loss was seen) and reaches b.
      for (let n = 0; n < 3000; n++) serverAnnounce(a, n, false);
      console.log(
        `failover: ${announces - before} announces while the master was gone; a lost ` +
          `${a.sync.counters.lostEntries} entries (published again), b saw ` +
          `${b.sync.counters.gaps} gaps`,
      );
      await waitFor("b agrees with a", () => {
        const known = b.store.snapshot();
        return a.store.peerMap.size >= 3000 && known === a.store.snapshot();
      });
    } finally {
      running = false;
      await stopNodes(nodes, cluster);
    }
  },
});

Deno.test({
  name: "cluster: two otter processes given the Redis Cluster's seed list with --cluster share " +
    "swarms; /metrics shows each master",
  ignore: !haveRedis,
  async fn() {
    const cluster = new RedisClusterServer({ masters: 3 });
    await cluster.start();
    const secret = await secretFile("the Redis Cluster test's secret");
    const otters: Node[] = [];
    try {
      for (const name of ["p", "q"]) {
        otters.push(new Node(await startOtter(clusterArgs(seedList(cluster), "rc", name, secret))));
      }
      await Promise.all(otters.map((node) => node.connect()));
      const [p, q] = otters;
      for (let seed = 0; seed < 8; seed++) await p.announce(hash(seed), 6000 + seed, 2);
      for (let seed = 0; seed < 8; seed++) {
        await eventually("p's peer on q", 30_000, () => q.scrape(hash(seed)), (v) => v[2] === 1);
      }
      const metrics = await (await fetch(`${q.otter.http[0]}/metrics`)).text();
      for (const port of cluster.ports) {
        assert.match(
          metrics,
          new RegExp(
            `^otter_cluster_redis_used_memory_bytes\\{redis="127.0.0.1:${port}"\\} \\d+$`,
            "m",
          ),
        );
      }
    } finally {
      for (const node of otters) {
        node.client.close();
        await node.otter.stop();
      }
      await cluster.stop();
    }
  },
});
