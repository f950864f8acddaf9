/**
 * Three otter processes and one redis-server: announces on one instance reach the others' replies,
 * stops remove peers everywhere, scrape counts agree, a late node serves the swarms at
 * once, and a 5 s Redis outage under traffic costs clients nothing. Also, with otter processes:
 * a forged batch on the stream shows in no scrape and is counted on /metrics, and a node with
 * another secret says so in one line and shares nothing.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import { createClient } from "npm:@redis/client@6.3.1";
import { setPublishTime, writeChecksum } from "../src/cluster/changeBatch.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { ClusterKeys } from "../src/cluster/clusterKeys.ts";
import { startOtter } from "./support/otterProcess.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { RedisProxy } from "./support/redisProxy.ts";
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
if (!haveRedis) console.log("cluster_e2e_test: skipped, no redis-server binary on PATH");

/**
 * How long a change may take to show on another instance, or the instances to converge, before
 * the test fails: generous for a loaded machine; each wait ends when its condition holds (how fast
 * changes spread is bench/cluster_propagation_bench.ts's measurement).
 */
const WAIT_MS = 30_000;

const SECRET_FILE = await secretFile("the e2e cluster's secret, base64 or not");

function otterArgs(redis: { url: string }, name: string, secret = SECRET_FILE): string[] {
  return clusterArgs(redis.url, "e2e", name, secret);
}

Deno.test({
  name: "cluster: three instances share swarms through Redis",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes: Node[] = [];
    try {
      for (const name of ["a", "b", "c"]) {
        nodes.push(new Node(await startOtter(otterArgs(redis, name))));
      }
      await Promise.all(nodes.map((n) => n.connect()));
      const [a, b, c] = nodes;
      const infoHash = hash(1);

      // A peer announcing to A shows up in B's and C's replies within 2 s.
      const started = performance.now();
      await a.announce(infoHash, 6001, 2);
      for (const node of [b, c]) {
        await eventually("peer from A seen", WAIT_MS, async () => {
          const reply = await node.announce(infoHash, 7000 + nodes.indexOf(node), 0);
          return announcePeers(reply, 4);
        }, (peers) => peers.includes("127.0.0.1:6001"));
      }
      console.log(`propagation A → B, C: ${Math.round(performance.now() - started)} ms`);

      // A seeder completing on C counts once everywhere; scrapes agree on all three.
      await c.announce(infoHash, 6002, 1, 0);
      const expected = [1, 1, 3]; // seeder 6002; leechers 6001, 7001, 7002
      for (const node of nodes) {
        await eventually(
          "scrape agrees",
          WAIT_MS,
          () => node.scrape(infoHash),
          (v) => JSON.stringify(v) === JSON.stringify(expected),
        );
      }

      // A stop on B removes the peer everywhere.
      await b.announce(infoHash, 6001, 3);
      for (const node of nodes) {
        await eventually(
          "stop propagated",
          WAIT_MS,
          () => node.scrape(infoHash),
          (v) => v[2] === 2,
        );
      }

      // A node started after the others serves the existing swarm at once.
      const late = new Node(await startOtter(otterArgs(redis, "d")));
      nodes.push(late);
      await late.connect();
      const first = await late.announce(infoHash, 6100, 2);
      assert.ok(announcePeers(first, 4).length >= 3, "the late node's first reply has the swarm");
      assert.deepEqual((await late.scrape(infoHash)).slice(0, 2), [1, 1], "downloaded came along");

      // The link shows on /metrics.
      const metrics = await (await fetch(`${a.otter.http[0]}/metrics`)).text();
      assert.match(metrics, /^otter_cluster_connected 1$/m);
      assert.match(metrics, /^otter_cluster_applied_changes_total [1-9]/m);
      // What this node sent and read, exactly, and what Redis says of itself (INFO at connect).
      assert.match(metrics, /^otter_cluster_published_bytes_total [1-9]/m);
      assert.match(metrics, /^otter_cluster_read_bytes_total [1-9]/m);
      const server = `redis="127.0.0.1:${redis.port}"`;
      for (const name of ["used_memory_bytes", "net_input_bytes_total", "net_output_bytes_total"]) {
        const line = new RegExp(`^otter_cluster_redis_${name}\\{${server}\\} [1-9]\\d*$`, "m");
        assert.match(metrics, line);
      }
    } finally {
      for (const node of nodes) {
        node.client.close();
        await node.otter.stop();
      }
      await redis.stop();
    }
  },
});

Deno.test({
  name: "cluster: a 5 s Redis outage under traffic costs clients nothing, then instances converge",
  ignore: !haveRedis,
  async fn() {
    let redis = new RedisServer();
    await redis.start();
    // Through a proxy that keeps its port while Redis is away (another test's server could take
    // a port left free for 5 s), then leads to a new redis-server.
    await using proxy = new RedisProxy(redis.port);
    const nodes: Node[] = [];
    try {
      for (const name of ["x", "y"]) nodes.push(new Node(await startOtter(otterArgs(proxy, name))));
      await Promise.all(nodes.map((n) => n.connect()));
      const [x, y] = nodes;
      const infoHash = hash(2);
      await x.announce(infoHash, 8000, 2);
      await eventually("initial sync", WAIT_MS, () => y.scrape(infoHash), (v) => v[2] === 1);

      proxy.down();
      await redis.stop();
      // Traffic during the outage: every announce is answered normally by both instances.
      const outageEnd = performance.now() + 5000;
      let port = 8001;
      while (performance.now() < outageEnd) {
        await x.announce(infoHash, port++, 2);
        await y.announce(hash(3), port++, 2);
        await new Promise((r) => setTimeout(r, 100));
      }
      redis = new RedisServer();
      await redis.start();
      proxy.up(redis.port);
      // After Redis returns, both instances converge on the same swarms.
      for (const h of [infoHash, hash(3)]) {
        await eventually("converged after outage", WAIT_MS, async () => {
          const [sx, sy] = [await x.scrape(h), await y.scrape(h)];
          return [sx, sy];
        }, ([sx, sy]) => JSON.stringify(sx) === JSON.stringify(sy) && sx[2] > 10);
      }
      for (const node of nodes) {
        assert.doesNotMatch(node.otter.stderr, /Uncaught|error:/i);
      }
    } finally {
      for (const node of nodes) {
        node.client.close();
        await node.otter.stop();
      }
      await redis.stop();
    }
  },
});

Deno.test({
  name: "cluster: a forged batch reaches no scrape and is counted; another secret is one line",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes: Node[] = [];
    const raw = createClient({ url: redis.url, RESP: 2 });
    raw.on("error", () => {});
    try {
      const otherSecret = await secretFile("not the e2e cluster's secret at all");
      for (const [name, secret] of [["p", SECRET_FILE], ["q", SECRET_FILE], ["z", otherSecret]]) {
        nodes.push(new Node(await startOtter(otterArgs(redis, name, secret))));
      }
      await Promise.all([...nodes.map((n) => n.connect()), raw.connect()]);
      const [p, q, z] = nodes;
      const forgedHash = hash(7);
      // A stranger's batch: well formed, checksum right, stamped now, but no MAC.
      const recorder = new ChangeRecorder("p", 4, 4);
      recorder.record(1, forgedHash, 0, 4, Uint8Array.of(6, 6, 6, 6), 0, 6666, true);
      const forged = recorder.take()!;
      setPublishTime(forged, Date.now());
      writeChecksum(forged);
      // On a stream of its own, listed where the nodes look for streams to read.
      const keys = new ClusterKeys("e2e");
      const stranger = "57a4e4c0de000001";
      await raw.sendCommand(["ZADD", keys.nodes(0), String(Date.now()), stranger]);
      const stream = keys.nodeStream(0, stranger);
      await raw.sendCommand(["XADD", stream, "*", "b", Buffer.from(forged)]);
      // z, with another secret, announces too; p's announce is the right secret's.
      await z.announce(forgedHash, 7100, 2);
      await p.announce(forgedHash, 7200, 2);
      await eventually(
        "p's peer reaches q",
        WAIT_MS,
        () => q.scrape(forgedHash),
        (v) => v[2] === 1,
      );
      const metrics = async (node: Node) =>
        await (await fetch(`${node.otter.http[0]}/metrics`)).text();
      for (const node of [p, q]) {
        await eventually(
          "forged and z's batches counted",
          WAIT_MS,
          () => metrics(node),
          (text) => /^otter_cluster_rejected_total\{reason="bad_mac"\} 2$/m.test(text),
        );
        const stats = await (await fetch(`${node.otter.http[0]}/stats?mode=cluster&format=json`))
          .json();
        assert.deepEqual(stats.cluster.rejected, {
          malformed: 0,
          oversized: 0,
          bad_mac: 2,
          replayed: 0,
        });
        const statsText = await (await fetch(`${node.otter.http[0]}/stats?mode=cluster`)).text();
        assert.match(statsText, /^\d+\n2\n.*\notter cluster \(connected\): .*bad_mac 2, /s);
        // Only p's peer: neither the forged one nor z's.
        assert.deepEqual(await node.scrape(forgedHash), [0, 0, 1]);
        const lines = node.otter.stdout.filter((line) => /fail authentication/.test(line));
        assert.equal(lines.length, 2, node.otter.stdout.join("\n"));
        assert.match(lines.join("\n"), /node "p": they fail authentication/);
        assert.match(lines.join("\n"), /node "z": they fail authentication/);
      }
      await eventually(
        "z refuses p's batch",
        WAIT_MS,
        () => metrics(z),
        (text) => /^otter_cluster_rejected_total\{reason="bad_mac"\} [2-9]/m.test(text),
      );
      assert.deepEqual(await z.scrape(forgedHash), [0, 0, 1], "z has only its own peer");
      for (const node of nodes) {
        assert.doesNotMatch(node.otter.stdout.join("\n"), /e2e cluster's secret/);
      }
    } finally {
      raw.destroy();
      for (const node of nodes) {
        node.client.close();
        await node.otter.stop();
      }
      await redis.stop();
    }
  },
});

Deno.test({
  name: "cluster: --cluster-snapshot-interval sets how often snapshots may be rewritten; a node " +
    "started afterwards loads one",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes: Node[] = [];
    const args = (name: string) => [
      ...otterArgs(redis, name),
      "--cluster-snapshot-interval",
      "1",
    ];
    try {
      nodes.push(new Node(await startOtter(args("s1"))));
      await nodes[0].connect();
      // Changes keep coming for a while: with a 1 s floor the snapshot follows them several times
      // (with the default 30 s, once).
      const deadline = performance.now() + WAIT_MS;
      let written = 0;
      for (let round = 0; written < 3; round++) {
        if (performance.now() > deadline) throw new Error(`${written} snapshots written`);
        for (let n = 0; n < 50; n++) {
          await nodes[0].announce(hash(n % 5), 1 + ((round * 50 + n) % 60_000), 2);
        }
        written = await metric(nodes[0], "otter_cluster_snapshots_written_total");
      }
      nodes.push(new Node(await startOtter(args("s2"))));
      await nodes[1].connect();
      assert.equal(await metric(nodes[1], "otter_cluster_snapshots_loaded_total"), 1);
      const [expected, seen] = [await nodes[0].scrape(hash(1)), await nodes[1].scrape(hash(1))];
      assert.deepEqual(seen, expected);
    } finally {
      for (const node of nodes) {
        node.client.close();
        await node.otter.stop();
      }
      await redis.stop();
    }
  },
});
