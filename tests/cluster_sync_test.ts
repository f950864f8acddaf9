/**
 * Cluster sync against a real redis-server (each test starts its own on a free loopback port):
 * several ClusterSync nodes over small in-memory stores share announces, stops and completions,
 * replay history, skip bad stream entries, ride out a Redis outage and a step of a node's wall
 * clock. (What strangers may put on the stream: cluster_auth_test.ts.)
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import { createClient } from "npm:@redis/client@6.3.1";
import { crc32 } from "../src/hash/crc32.ts";
import { opForEvent } from "../src/cluster/changeBatch.ts";
import { ClusterSync } from "../src/cluster/redisCluster.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { RedisProxy } from "./support/redisProxy.ts";
import {
  announce,
  infoHash,
  ipv4,
  ipv6,
  KEYS,
  makeNode,
  NONE_REJECTED,
  sealed,
  SECRET,
  sleep,
  stopAll,
  strangerStream,
  waitFor,
} from "./support/clusterNodes.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_sync_test: skipped, no redis-server binary on PATH");

Deno.test({
  name: "three nodes share announces, stops and completions",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes = ["a", "b", "c"].map((name) => makeNode(name, redis.url));
    const [a, b, c] = nodes;
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      for (const node of nodes) assert.equal(node.sync.counters.state, "connected");
      const hash = infoHash(1);

      announce(a, hash, ipv4(1), 6881, 2, false);
      announce(b, hash, ipv6(2), 51413, 0, true);
      const spread = await waitFor(
        "both peers everywhere",
        () => nodes.every((node) => node.store.peerMap.size === 2),
      );
      console.log(`announce visible on all nodes after ${spread.toFixed(0)} ms`);

      // The leecher completes, announcing to C this time: everyone counts one download.
      announce(c, hash, ipv4(1), 6881, 1, true);
      await waitFor(
        "completion everywhere",
        () => nodes.every((node) => node.store.counts(hash).complete === 2),
      );
      // A repeated completed event is not counted again, on any node.
      announce(a, hash, ipv4(1), 6881, 1, true);
      await sleep(400);
      for (const node of nodes) {
        assert.deepEqual(node.store.counts(hash), { complete: 2, incomplete: 0, downloaded: 1 });
      }

      // A stop on B removes the peer everywhere.
      announce(b, hash, ipv4(1), 6881, 3, true);
      await waitFor(
        "stop everywhere",
        () => nodes.every((node) => node.store.peerMap.size === 1),
      );
      const snapshot = a.store.snapshot();
      for (const node of nodes) {
        assert.equal(node.store.snapshot(), snapshot);
        assert.deepEqual(node.store.counts(hash), { complete: 1, incomplete: 0, downloaded: 1 });
        assert.equal(node.sync.counters.ownBatches, 0, "no node reads its own batches back");
        assert.deepEqual(node.sync.counters.rejected, NONE_REJECTED);
        assert.equal(node.sync.recorder.pending, 0, "applied changes are not re-recorded");
      }
      // A applied exactly the changes the others recorded: B's two, C's one.
      assert.equal(a.sync.counters.applied, 3);
      assert.equal(a.sync.counters.publishedChanges, 2);

      // stop() publishes what is still pending.
      announce(a, hash, ipv4(9), 9999, 2, false);
      await a.sync.stop();
      await waitFor("last change of a stopped node", () => b.store.peerMap.size === 2);
      for (const node of nodes) assert.equal(node.logs.length, 1, node.logs.join("\n"));
      assert.match(a.logs[0], /^cluster: connected to redis:\/\/127\.0\.0\.1:\d+ as node a/);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a node started later replays the history and serves existing swarms at once",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url);
    const nodes = [a];
    try {
      await a.sync.start();
      for (let i = 0; i < 3000; i++) {
        announce(
          a,
          infoHash(i % 7),
          i % 2 ? ipv4(i) : ipv6(i),
          1000 + i,
          i % 5 === 0 ? 1 : 2,
          i % 5 === 0,
        );
      }
      announce(a, infoHash(0), ipv6(0), 1000, 3, false);
      await waitFor("published", () => a.sync.recorder.pending === 0);
      await waitFor("published", () => a.sync.counters.publishedChanges === 3001);

      const late = makeNode("late", redis.url);
      nodes.push(late);
      await late.sync.start();
      // No waiting: start() resolves once the history is applied.
      assert.equal(late.store.peerMap.size, 2999);
      assert.ok(late.store.snapshot() === a.store.snapshot(), "same peers as the origin");
      for (let seed = 0; seed < 7; seed++) {
        assert.deepEqual(late.store.counts(infoHash(seed)), a.store.counts(infoHash(seed)));
      }
      assert.equal(late.sync.counters.applied, 3001);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "replayed changes keep their age, and history older than the peer timeout is skipped",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    // Long enough that a slow start of the second node still finds the change younger than it.
    const peerTimeout = 5;
    const a = makeNode("a", redis.url, { peerTimeout });
    const nodes = [a];
    try {
      await a.sync.start();
      announce(a, infoHash(1), ipv4(1), 6881, 2, false);
      await waitFor("published", () => a.sync.counters.published === 1);
      const publishedAt = performance.now();

      await sleep(1300);
      // A node younger than the change: its clock is at 1, the peer was seen 1 to 4 s before.
      const second = makeNode("second", redis.url, { peerTimeout, now: 1 });
      nodes.push(second);
      await second.sync.start();
      const [peer] = second.store.peerMap.values();
      assert.ok(peer !== undefined, "replayed peer present");
      // Its age came with it (from the snapshot, or the batch's publish time).
      assert.ok(
        peer.lastSeen <= 0 && peer.lastSeen >= 2 - peerTimeout,
        `lastSeen ${peer.lastSeen}`,
      );

      await sleep(Math.max(0, publishedAt + peerTimeout * 1000 + 300 - performance.now()));
      const third = makeNode("third", redis.url, { peerTimeout });
      nodes.push(third);
      await third.sync.start();
      // a has been silent for a peer timeout: the registry no longer lists it, and its batch
      // would be stale anyway (by its publish time: cluster_auth_test.ts).
      assert.equal(third.store.peerMap.size, 0);
      assert.equal(third.sync.counters.applied, 0);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "bad entries on the stream are skipped and counted, never applied",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url);
    const b = makeNode("b", redis.url);
    const nodes = [a, b];
    const raw = createClient({ url: redis.url, RESP: 2 });
    raw.on("error", () => {});
    try {
      await Promise.all([a.sync.start(), b.sync.start(), raw.connect()]);
      // A good batch from a third recorder, to corrupt in different ways.
      const other = makeNode("other", redis.url);
      announce(other, infoHash(5), ipv4(5), 5555, 2, false);
      announce(other, infoHash(5), ipv4(6), 5556, 2, true);
      const good = sealed(other.sync.recorder.take()!);
      const reseal = (bytes: Uint8Array) => {
        new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, crc32(bytes, 8));
        return bytes;
      };
      const truncated = good.slice(0, good.length - 3);
      const version9 = good.slice();
      version9[8] = 9;
      const flipped = good.slice();
      flipped[30] ^= 0x40;
      const garbage = crypto.getRandomValues(new Uint8Array(300));
      const key = await strangerStream(raw);
      const entries: (string | Buffer)[][] = [
        ["b", Buffer.from(truncated)],
        ["b", Buffer.from(reseal(version9))],
        ["b", Buffer.from(flipped)],
        ["b", Buffer.from(garbage)],
        ["b", ""],
        ["x", Buffer.from(good)],
        ["b", Buffer.from(good), "c", "extra"],
      ];
      for (const fields of entries) await raw.sendCommand(["XADD", key, "*", ...fields]);
      await raw.sendCommand(["XADD", key, "*", "b", Buffer.from(good)]);

      for (const node of nodes) {
        await waitFor("good batch applied", () => node.store.peerMap.size === 2);
        assert.deepEqual(node.sync.counters.rejected, {
          ...NONE_REJECTED,
          malformed: entries.length,
        });
        assert.equal(node.sync.counters.applied, 2);
        assert.equal(node.sync.counters.appliedBatches, 1);
      }
      // The sync carries on normally afterwards.
      announce(a, infoHash(6), ipv4(7), 7777, 2, false);
      await waitFor("later change", () => b.store.peerMap.size === 3);
      // A node that replays the same history skips the same entries.
      const late = makeNode("late", redis.url);
      nodes.push(late);
      await late.sync.start();
      assert.equal(late.store.peerMap.size, 3);
      assert.equal(late.sync.counters.rejected.malformed, entries.length);
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a 5 s Redis outage under traffic: nodes keep serving, reconnect, and converge",
  ignore: !haveRedis,
  async fn() {
    let redis = new RedisServer();
    await redis.start();
    // The nodes reach Redis through a proxy that keeps its port while Redis is away (another
    // test's server could take a port left free for 5 s) and then leads to a new redis-server.
    await using proxy = new RedisProxy(redis.port);
    const nodes = ["a", "b", "c"].map((name) => makeNode(name, proxy.url));
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      let serial = 0;
      // Stops and completions hit a peer announced a moment earlier: to the same node while
      // Redis is up; during the outage to the previous node, so that the queued changes of
      // different nodes conflict and only applying them in stream order everywhere converges.
      // (Outside outages such a conflict within one flush interval may leave nodes
      // disagreeing about that peer until it announces again.)
      const traffic = async (ms: number, crossNode: boolean) => {
        const end = performance.now() + ms;
        while (performance.now() < end) {
          const node = nodes[serial % 3];
          const event = serial % 11 === 0 ? 1 : serial % 13 === 0 ? 3 : 2;
          const peer = event === 2 ? serial : serial - (crossNode ? 1 : 3);
          announce(node, infoHash(peer % 4), ipv4(peer), 2000 + (peer % 100), event, event === 1);
          serial++;
          await sleep(5);
        }
      };
      await traffic(1000, false);
      // Redis goes once everything published has been read everywhere: it restarts empty, and
      // entries it loses before a node read them are lost to that node (docs/cluster.md). No node
      // reads its own batches: each applies every batch the others published.
      await waitFor("pre-outage traffic everywhere", () => {
        const published = nodes.reduce((sum, node) => sum + node.sync.counters.published, 0);
        return nodes.every((node) =>
          node.sync.recorder.pending === 0 &&
          node.sync.counters.appliedBatches === published - node.sync.counters.published &&
          node.store.snapshot() === nodes[0].store.snapshot()
        );
      });
      proxy.down();
      await redis.stop();
      await traffic(5000, true);
      for (const node of nodes) assert.equal(node.sync.counters.state, "disconnected");
      redis = new RedisServer();
      await redis.start();
      proxy.up(redis.port);
      const back = performance.now();
      await traffic(500, false);

      await waitFor("stores equal", () => {
        const snapshot = nodes[0].store.snapshot();
        return nodes.every((node) =>
          node.sync.counters.state === "connected" && node.store.snapshot() === snapshot &&
          node.sync.recorder.pending === 0
        );
      });
      console.log(
        `converged within ${(performance.now() - back).toFixed(0)} ms of Redis coming back, ` +
          `500 ms of it under traffic (${serial} announces in all)`,
      );
      for (let seed = 0; seed < 4; seed++) {
        const expected = nodes[0].store.counts(infoHash(seed));
        assert.ok(expected.downloaded > 0);
        for (const node of nodes) assert.deepEqual(node.store.counts(infoHash(seed)), expected);
      }
      for (const node of nodes) {
        assert.equal(node.logs.length, 4, node.logs.join("\n"));
        assert.match(node.logs[0], /connected to/);
        assert.match(
          node.logs[1],
          /^cluster: lost Redis at redis:\/\/127\.0\.0\.1:\d+ \(.+\); serving/,
        );
        // The test's Redis comes back empty (no persistence): the nodes notice.
        assert.match(node.logs[2], /^cluster: Redis lost the cluster's data/);
        assert.equal(node.sync.counters.redisResets, 1);
        assert.match(node.logs[3], /connected to/);
        assert.equal(node.sync.counters.connects, 2);
        assert.equal(node.sync.counters.droppedChanges, 0);
        assert.deepEqual(node.sync.counters.rejected, NONE_REJECTED);
        assert.ok(node.sync.counters.reapplied > 0, "queued changes were applied again");
      }
      // The late window closes (at most 2 s after the last queued batch was reapplied): new
      // traffic is not applied twice on its origin.
      await sleep(2500);
      const reapplied = nodes.map((node) => node.sync.counters.reapplied);
      await traffic(300, false);
      await waitFor(
        "traffic published",
        () => nodes.every((n) => n.sync.recorder.pending === 0),
      );
      await sleep(300);
      assert.deepEqual(nodes.map((node) => node.sync.counters.reapplied), reapplied);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a frozen Redis (accepts connections, never answers) counts as down until it thaws",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes = ["a", "b"].map((name) => makeNode(name, redis.url, { commandTimeoutMs: 1000 }));
    const [a, b] = nodes;
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      redis.signal("SIGSTOP");
      announce(a, infoHash(4), ipv4(4), 4444, 2, false);
      // XREAD waits blockMs + commandTimeoutMs (1.5 s here) before giving up.
      await waitFor(
        "both notice",
        () => nodes.every((node) => node.sync.counters.state === "disconnected"),
      );
      await sleep(2500); // reconnect attempts hang in the handshake and time out
      redis.signal("SIGCONT");
      await waitFor("b has the peer", () => b.store.peerMap.size === 1);
      for (const node of nodes) {
        await waitFor("connected", () => node.sync.counters.state === "connected");
        assert.equal(node.logs.length, 3, node.logs.join("\n"));
        assert.match(node.logs[1], /^cluster: lost Redis/);
      }
    } finally {
      redis.signal("SIGCONT");
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a node whose Redis is down at start serves locally, logs once, and syncs later",
  ignore: !haveRedis,
  async fn() {
    // Redis is "down" behind a proxy that holds the port (and closes every connection) until the
    // server starts: a port left free could be taken meanwhile by another test's server.
    await using proxy = new RedisProxy(0);
    proxy.down();
    let redis = new RedisServer();
    const a = makeNode("a", proxy.url);
    const nodes = [a];
    try {
      const started = performance.now();
      await a.sync.start();
      assert.ok(performance.now() - started < 2000, "start() does not wait for Redis");
      assert.equal(a.sync.counters.state, "disconnected");
      announce(a, infoHash(3), ipv4(3), 3333, 2, false);
      await sleep(1500); // several failed attempts
      assert.equal(a.logs.length, 1, a.logs.join("\n"));
      assert.match(a.logs[0], /^cluster: cannot reach Redis at .*; serving from the local store/);

      redis = new RedisServer();
      await redis.start();
      proxy.up(redis.port);
      await waitFor("connected", () => a.sync.counters.state === "connected");
      await waitFor("queued change published", () => a.sync.counters.published === 1);
      const b = makeNode("b", redis.url);
      nodes.push(b);
      await b.sync.start();
      assert.equal(b.store.snapshot(), a.store.snapshot());
      assert.equal(a.logs.length, 2);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "a key of the wrong type keeps a node out; refused writes are queued, logged once",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url);
    const b = makeNode("b", redis.url);
    const nodes = [a, b];
    const raw = createClient({ url: redis.url, RESP: 2 });
    raw.on("error", () => {});
    try {
      await raw.connect();
      await raw.sendCommand(["SET", KEYS.hello(0), "not a stream"]);
      await a.sync.start();
      assert.equal(a.sync.counters.state, "disconnected");
      await sleep(600);
      assert.deepEqual(a.logs.length, 1, a.logs.join("\n"));
      assert.match(a.logs[0], /cannot reach Redis .*holds a string, not a stream/);
      await raw.sendCommand(["DEL", KEYS.hello(0)]);
      await waitFor("connected", () => a.sync.counters.state === "connected");

      await b.sync.start();
      await raw.sendCommand(["CONFIG", "SET", "maxmemory", "1"]);
      announce(a, infoHash(8), ipv4(8), 8888, 2, false);
      await waitFor("refusal logged", () => a.logs.length === 3);
      assert.match(a.logs[2], /^cluster: Redis refuses changes \(OOM/);
      await sleep(500); // several more refused attempts
      assert.equal(a.logs.length, 3, a.logs.join("\n"));
      assert.equal(a.sync.counters.state, "connected");
      assert.equal(b.store.peerMap.size, 0);
      await raw.sendCommand(["CONFIG", "SET", "maxmemory", "0"]);
      await waitFor("queued change arrives", () => b.store.peerMap.size === 1);
      // a logs once its XADD's reply is in, which may come after b has read the entry.
      await waitFor("a logs the change accepted", () => a.logs.length === 4);
      assert.equal(a.logs[3], "cluster: Redis accepts changes again", a.logs.join("\n"));
      assert.equal(a.sync.counters.connects, 1);
    } finally {
      raw.destroy();
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "nodes over real SwarmTables agree on every scrape and total, a late node too",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const clock = { now: 1000 };
    const tables: SwarmTable[] = [];
    const syncs: ClusterSync[] = [];
    const addNode = async () => {
      const store = new SwarmTable({ peerTimeout: 600 });
      const sync = new ClusterSync({
        url: redis.url,
        name: "real",
        nodeId: `n${tables.length}`,
        peerTimeout: 600,
        secret: SECRET,
        store,
        clock,
        log: () => {},
        flushIntervalMs: 100,
      });
      tables.push(store);
      syncs.push(sync);
      await sync.start();
    };
    try {
      for (let i = 0; i < 3; i++) await addNode();
      const random = (() => {
        let x = 12345;
        return () => ((x = (x * 1103515245 + 12345) >>> 0) / 4294967296);
      })();
      // Each peer talks to one node (as a client sticks to one tracker address); it starts,
      // refreshes, completes and stops in random order.
      const state = new Map<number, "leecher" | "seeder">();
      const out = new Uint8Array(50 * 18);
      for (let n = 0; n < 3000; n++) {
        const peer = Math.floor(random() * 400);
        const node = peer % 3;
        const family = peer % 2 === 0 ? 4 : 6;
        const address = family === 4 ? ipv4(peer) : ipv6(peer);
        const hash = infoHash(peer % 10);
        const now = state.get(peer);
        const roll = random();
        let event = 0;
        if (now === undefined) event = 2;
        else if (roll < 0.15) event = 3;
        else if (roll < 0.3 && now === "leecher") event = 1;
        const seeder = event === 1 || (event !== 2 && now === "seeder");
        if (event === 3) state.delete(peer);
        else state.set(peer, seeder ? "seeder" : "leecher");
        tables[node].announce(
          hash,
          0,
          family,
          address,
          0,
          6881,
          event,
          seeder,
          50,
          clock.now,
          out,
          0,
        );
        syncs[node].recorder.record(opForEvent(event), hash, 0, family, address, 0, 6881, seeder);
        if (n % 100 === 0) await sleep(1);
      }
      const summary = (table: SwarmTable) => {
        const parts = [table.torrents, table.peers4, table.peers6, table.seeders4, table.seeders6];
        for (let seed = 0; seed < 10; seed++) {
          table.scrape(infoHash(seed), 0);
          const { complete, incomplete, downloaded } = table.result;
          parts.push(complete, incomplete, downloaded);
        }
        return parts.join(",");
      };
      await waitFor(
        "all tables agree",
        () => tables.every((table) => summary(table) === summary(tables[0])),
      );
      assert.equal(tables[0].peers4 + tables[0].peers6, state.size);
      let downloaded = 0;
      for (let seed = 0; seed < 10; seed++) {
        tables[0].scrape(infoHash(seed), 0);
        downloaded += tables[0].result.downloaded;
      }
      assert.ok(downloaded > 0);

      await addNode();
      assert.equal(summary(tables[3]), summary(tables[0]));
      for (const sync of syncs) assert.deepEqual(sync.counters.rejected, NONE_REJECTED);
    } finally {
      for (const sync of syncs) await sync.stop();
      await redis.stop();
    }
  },
});

Deno.test({
  name: "over real SwarmTables: a repeated or premature completion counts nowhere, seeders agree",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const clock = { now: 1000 };
    const tables = [0, 1].map(() => new SwarmTable({ peerTimeout: 600 }));
    const syncs = tables.map((store, i) =>
      new ClusterSync({
        url: redis.url,
        name: "real",
        nodeId: `n${i}`,
        peerTimeout: 600,
        secret: SECRET,
        store,
        clock,
        log: () => {},
        flushIntervalMs: 50,
      })
    );
    const out = new Uint8Array(50 * 18);
    const recorded = [0, 0];
    /** An accepted announce on node `i`, as the servers handle it. */
    const announceOn = (i: number, port: number, event: number, seeder: boolean) => {
      const [hash, address] = [infoHash(8), ipv4(port)];
      tables[i].announce(hash, 0, 4, address, 0, port, event, seeder, 50, clock.now, out, 0);
      syncs[i].recorder.record(opForEvent(event), hash, 0, 4, address, 0, port, seeder);
      recorded[i]++;
    };
    const counts = (table: SwarmTable) => {
      table.scrape(infoHash(8), 0);
      const { complete, incomplete, downloaded } = table.result;
      return { complete, incomplete, downloaded };
    };
    const settle = async (expected: ReturnType<typeof counts>) => {
      await waitFor(
        "every change recorded so far applied on the other node",
        () =>
          syncs[1].counters.applied === recorded[0] && syncs[0].counters.applied === recorded[1],
      );
      for (const table of tables) assert.deepEqual(counts(table), expected);
    };
    try {
      await Promise.all(syncs.map((sync) => sync.start()));
      announceOn(0, 1, 2, false);
      // "completed" while bytes are left: the peer stays a leecher, nothing is counted.
      announceOn(0, 1, 1, false);
      await settle({ complete: 0, incomplete: 1, downloaded: 0 });
      announceOn(0, 1, 1, true);
      await settle({ complete: 1, incomplete: 0, downloaded: 1 });
      // The same peer says "completed" again, to the other node: counted nowhere.
      announceOn(1, 1, 1, true);
      await settle({ complete: 1, incomplete: 0, downloaded: 1 });
    } finally {
      for (const sync of syncs) await sync.stop();
      await redis.stop();
    }
  },
});

Deno.test({
  name: "a node's wall clock stepped forward past the peer timeout, then back, changes nothing",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes = ["a", "b"].map((name) => makeNode(name, redis.url, { peerTimeout: 300 }));
    const [a, b] = nodes;
    const realNow = Date.now;
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      const hash = infoHash(3);
      // This process's Date.now steps (NTP, a VM resume); redis-server keeps the real time.
      for (const [i, stepMs] of [[1, 3 * 3600_000 + 600_000], [2, -3 * 3600_000]]) {
        Date.now = () => realNow() + stepMs;
        announce(a, hash, ipv4(i), 6881, 2, false);
        await waitFor(`peer ${i} on b after a step of ${stepMs / 1000} s`, () => {
          return b.store.peerMap.size === i;
        });
      }
      assert.equal(b.sync.counters.staleBatches, 0);
      assert.equal(b.sync.counters.appliedBatches, 2);
    } finally {
      Date.now = realNow;
      await stopAll(nodes, redis);
    }
  },
});

Deno.test({
  name: "each node polls Redis's memory and byte counters, and counts its own bytes exactly",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const nodes = ["a", "b"].map((name) => makeNode(name, redis.url, { infoPollMs: 200 }));
    const [a, b] = nodes;
    try {
      await Promise.all(nodes.map((node) => node.sync.start()));
      for (let i = 0; i < 2000; i++) announce(a, infoHash(i % 5), ipv4(i), 1000 + i, 2, false);
      await waitFor("applied on b", () => b.store.peerMap.size === 2000);
      // A poll after the traffic (an earlier one may have come while a still published).
      await waitFor("polled since", () => {
        const figures = a.sync.counters.redis;
        return figures.length === 1 && figures[0].inputPerSecond > 0 &&
          figures[0].netInputBytes >= a.sync.counters.publishedBytes &&
          figures[0].netOutputBytes >= b.sync.counters.readBytes;
      });
      const [figures] = a.sync.counters.redis;
      assert.equal(figures.server, `127.0.0.1:${redis.port}`);
      assert.ok(figures.usedMemory > 0);
      // 2000 IPv4 changes: 27 bytes each, plus one batch header each flush.
      assert.ok(a.sync.counters.publishedBytes >= 2000 * 27);
      assert.ok(b.sync.counters.readBytes >= a.sync.counters.publishedBytes);
    } finally {
      await stopAll(nodes, redis);
    }
  },
});
