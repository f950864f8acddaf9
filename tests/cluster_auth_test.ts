/**
 * What strangers may put on the cluster stream, against a real redis-server: batches without the
 * cluster secret's MAC (forged, unsigned, another secret) are refused and counted, never applied,
 * and logged once per claimed node; oversized entries are refused unread; an authentic batch
 * added again is not applied again; nodes with the right secret go on sharing.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import { createClient, RESP_TYPES } from "npm:@redis/client@6.3.1";
import { MAX_BATCH_BYTES, writeChecksum } from "../src/cluster/changeBatch.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { startTracker } from "../src/servers/startTracker.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import {
  announce,
  infoHash,
  ipv4,
  makeNode,
  NONE_REJECTED,
  sealed,
  sleep,
  stopAll,
  strangerStream,
  type TestNode,
  waitFor,
} from "./support/clusterNodes.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_auth_test: skipped, no redis-server binary on PATH");

const OTHER_SECRET = new TextEncoder().encode("some other cluster's secret, not ours");

/** A plain client, to XADD what a stranger would. */
async function rawClient(url: string) {
  const raw = createClient({
    url,
    RESP: 2,
    commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
  });
  raw.on("error", () => {});
  await raw.connect();
  return raw;
}

/** One change (a started peer) taken as a batch from a recorder of `nodeId`, not yet sealed. */
function batchOf(nodeId: string, port: number): Uint8Array {
  const recorder = new ChangeRecorder(nodeId, 4, 4);
  recorder.record(1, infoHash(9), 0, 4, ipv4(port), 0, port, false);
  return recorder.take()!;
}

function badMacLines(node: TestNode): string[] {
  return node.logs.filter((line) => /fail authentication/.test(line));
}

Deno.test({
  name: "forged batches (valid checksum, no or a wrong MAC) are refused, counted, never applied",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes = ["a", "b"].map((name) => makeNode(name, redis.url));
    const raw = await rawClient(redis.url);
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      const key = await strangerStream(raw);
      const unsigned = sealed(batchOf("mallory", 1001), null);
      const otherSecret = sealed(batchOf("mallory", 1002), OTHER_SECRET);
      // An authentic batch with its port changed and its checksum made to match.
      const tampered = sealed(batchOf("alice", 1003));
      tampered[tampered.length - 1] ^= 0x40;
      writeChecksum(tampered);
      for (const batch of [unsigned, otherSecret, tampered, unsigned, unsigned]) {
        await raw.sendCommand(["XADD", key, "*", "b", Buffer.from(batch)]);
      }
      // Then one batch with the right secret, which every node applies.
      await raw.sendCommand(["XADD", key, "*", "b", Buffer.from(sealed(batchOf("alice", 2000)))]);
      for (const node of nodes) {
        await waitFor("the authentic batch", () => node.store.peerMap.size === 1);
        assert.ok([...node.store.peerMap.keys()][0].endsWith("|2000"), "only the authentic peer");
        assert.deepEqual(node.sync.counters.rejected, { ...NONE_REJECTED, bad_mac: 5 });
        assert.equal(node.sync.counters.applied, 1);
        // One line per claimed node id, not one per batch.
        const lines = badMacLines(node);
        assert.equal(lines.length, 2, node.logs.join("\n"));
        assert.match(lines[0], /^cluster: refusing batches from node "mallory": they fail auth/);
        assert.match(lines[1], /^cluster: refusing batches from node "alice": /);
      }
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "nodes with another secret: neither applies the other's; one line each; counted",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url);
    const b = makeNode("b", redis.url, { secret: OTHER_SECRET });
    const c = makeNode("c", redis.url);
    const nodes = [a, b, c];
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      // Several batches from each of a and b (one per flush).
      for (let i = 0; i < 4; i++) {
        announce(a, infoHash(1), ipv4(100 + i), 6000 + i, 2, false);
        announce(b, infoHash(1), ipv4(200 + i), 7000 + i, 2, false);
        await sleep(150);
      }
      await waitFor("a's peers reach c", () => c.store.peerMap.size === 4);
      // Every batch of a's is refused by b, every one of b's by a and c.
      const published = () => [a, b].map((node) => node.sync.counters.published);
      await waitFor("each refuses the other's batches", () => {
        const [fromA, fromB] = published();
        return a.sync.recorder.pending === 0 && b.sync.recorder.pending === 0 && fromA >= 2 &&
          b.sync.counters.rejected.bad_mac === fromA &&
          a.sync.counters.rejected.bad_mac === fromB &&
          c.sync.counters.rejected.bad_mac === fromB && fromB >= 2;
      });
      assert.equal(a.store.peerMap.size, 4, "a holds only its own peers");
      assert.equal(b.store.peerMap.size, 4, "b holds only its own peers");
      for (const key of c.store.peerMap.keys()) assert.match(key, /\|600\d$/, "c has a's, not b's");
      for (const [node, other] of [[a, "b"], [b, "a"], [c, "b"]] as const) {
        const lines = badMacLines(node);
        assert.equal(lines.length, 1, node.logs.join("\n"));
        assert.match(lines[0], new RegExp(`^cluster: refusing batches from node "${other}": `));
      }
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name:
    "a node without a secret (--cluster-insecure) takes anything; keyed nodes refuse its batches",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const keyed = makeNode("keyed", redis.url);
    const open = makeNode("open", redis.url, { secret: null });
    const nodes = [keyed, open];
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      announce(keyed, infoHash(2), ipv4(1), 6001, 2, false);
      announce(open, infoHash(2), ipv4(2), 6002, 2, false);
      await waitFor("open has keyed's peer", () => open.store.peerMap.size === 2);
      await waitFor("keyed refuses", () => keyed.sync.counters.rejected.bad_mac === 1);
      assert.equal(keyed.store.peerMap.size, 1);
      assert.deepEqual(open.sync.counters.rejected, NONE_REJECTED);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "oversized entries are refused unread and counted, logged once; the sync goes on",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes = ["a", "b"].map((name) => makeNode(name, redis.url));
    const raw = await rawClient(redis.url);
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      const key = await strangerStream(raw);
      const good = sealed(batchOf("alice", 3000));
      const huge = Buffer.alloc(8 * 1024 * 1024, 0x61);
      await raw.sendCommand(["XADD", key, "*", "b", huge]);
      await raw.sendCommand(["XADD", key, "*", "b", Buffer.alloc(MAX_BATCH_BYTES + 1)]);
      // A big value in a field past the batch: the entry is malformed, the value read past.
      await raw.sendCommand(["XADD", key, "*", "b", Buffer.from(good), "x", huge]);
      await raw.sendCommand(["XADD", key, "*", "b", Buffer.from(good)]);
      for (const node of nodes) {
        await waitFor("the good batch", () => node.store.peerMap.size === 1);
        assert.deepEqual(node.sync.counters.rejected, {
          ...NONE_REJECTED,
          oversized: 2,
          malformed: 1,
        });
        const lines = node.logs.filter((line) => /oversized/.test(line));
        assert.equal(lines.length, 1, node.logs.join("\n"));
        assert.match(
          lines[0],
          new RegExp(
            `^cluster: refusing stream entries over ${MAX_BATCH_BYTES} bytes, unread \\(the ` +
              `first: 8388608 bytes, entry \\d+-\\d+\\); counted as rejected, reason "oversized"$`,
          ),
        );
      }
      announce(nodes[0], infoHash(3), ipv4(3), 3001, 2, false);
      await waitFor("later change", () => nodes[1].store.peerMap.size === 2);
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "an authentic batch added to the stream again is not applied again",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url);
    const b = makeNode("b", redis.url);
    const nodes = [a, b];
    const raw = await rawClient(redis.url);
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      const key = a.sync.streamKey;
      announce(a, infoHash(4), ipv4(4), 4444, 2, false);
      await waitFor("b has the peer", () => b.store.peerMap.size === 1);
      // What an eavesdropper on the stream saw: a's batch announcing the peer.
      const history = await raw.sendCommand(["XRANGE", key, "-", "+"]) as [Buffer, Buffer[]][];
      assert.equal(history.length, 1);
      const announced = history[0][1][1];

      announce(a, infoHash(4), ipv4(4), 4444, 3, false);
      await waitFor("b drops the stopped peer", () => b.store.peerMap.size === 0);
      await raw.sendCommand(["XADD", key, "*", "b", announced]);
      announce(a, infoHash(4), ipv4(5), 5555, 2, false);
      await waitFor("b has the next peer", () => b.store.peerMap.size === 1);
      assert.ok([...b.store.peerMap.keys()][0].endsWith("|5555"), "the stopped peer stays gone");
      assert.deepEqual(b.sync.counters.rejected, { ...NONE_REJECTED, replayed: 1 });

      // A node reading the whole history applies the original once, the copy not at all.
      const late = makeNode("late", redis.url);
      nodes.push(late);
      await late.sync.start();
      assert.equal(late.store.snapshot(), b.store.snapshot());
      assert.deepEqual(late.sync.counters.rejected, { ...NONE_REJECTED, replayed: 1 });
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a batch added again after the peer timeout is stale by its publish time, not its new id",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url, { peerTimeout: 3 });
    const nodes = [a];
    const raw = await rawClient(redis.url);
    try {
      await a.sync.start();
      announce(a, infoHash(5), ipv4(5), 5005, 2, false);
      await waitFor("published", () => a.sync.counters.published === 1);
      const key = a.sync.streamKey;
      const history = await raw.sendCommand(["XRANGE", key, "-", "+"]) as [Buffer, Buffer[]][];
      await sleep(3300);
      // a's stream is trimmed or gone by now, and a out of the registry: a stranger adds the
      // copy to a stream of its own that every node reads.
      const copy = await strangerStream(raw);
      await raw.sendCommand(["XADD", copy, "*", "b", history[0][1][1]]);
      const late = makeNode("late", redis.url, { peerTimeout: 3 });
      nodes.push(late);
      await late.sync.start();
      assert.equal(late.store.peerMap.size, 0);
      assert.equal(late.sync.counters.staleBatches, 1);
      assert.equal(late.sync.counters.applied, 0);
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "startTracker says in one line that a cluster runs insecure, or that its secret is open",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const dir = await Deno.makeTempDir();
    try {
      const secret = `${dir}/cluster.secret`;
      await Deno.writeTextFile(secret, "a secret anyone on this host may read\n");
      await Deno.chmod(secret, 0o644);
      const base = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--cluster", redis.url];
      for (
        const [extra, expected] of [
          [
            ["--cluster-insecure"],
            "cluster: --cluster-insecure: batches are not authenticated; anyone who can write " +
            "to the Redis stream can add peers to every node",
          ],
          [
            ["--cluster-secret-file", secret],
            `cluster: secret file ${secret} is accessible to group or others (mode 0644); ` +
            "chmod 600 it",
          ],
        ]
      ) {
        const parsed = parseCommandLine([...base, ...extra]);
        assert.ok(parsed.kind === "run");
        const logs: string[] = [];
        const running = await startTracker(parsed.config, new Clock(), (line) => logs.push(line));
        await running.stop();
        assert.equal(logs[0], expected);
        assert.match(logs[1], /^cluster: connected to /);
        assert.equal(logs.filter((line) => line === expected).length, 1);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
      await redis.stop();
    }
  },
});
