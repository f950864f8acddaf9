/**
 * What a Redis Cluster offers the cluster sync, tried on a local one (issue 15, "Beyond one
 * Redis"): prints what each step saw, so the design's claims about the engine are checked here.
 *
 *   deno run -A bench/redis_cluster_probe.ts [--shards 8] [--failover]
 *
 * Starts 3 masters (with --failover, 3 masters + 3 replicas) through
 * tests/support/redisClusterServer.ts, then:
 *   1. where the shard streams `otter:{NAME:s}:…` land (CLUSTER KEYSLOT, CLUSTER SHARDS);
 *   2. node-redis's cluster client (createCluster, RESP2) XADDs to every shard stream, routing
 *      by key slot;
 *   3. a plain connection to the wrong master gets `MOVED slot host:port` as an error reply (what
 *      streamReader.ts would see: it must follow it itself);
 *   4. XREAD over two keys: CROSSSLOT unless they share a hash tag, so a blocking read covers one
 *      slot: one reader connection per shard, and per-node streams of one shard share its tag;
 *   5. INFO server run_id and XINFO STREAM (entries-added, max-deleted-entry-id, first entry),
 *      what a node uses to notice a Redis restarted empty or a tail trimmed past it;
 *   6. a slot migration by hand (CLUSTER SETSLOT … IMPORTING/MIGRATING, MIGRATE): once the key
 *      has moved, the old master answers `ASK slot host:port`, the new one `MOVED` unless the
 *      command follows ASKING on the same connection (what a reader must do during a reshard);
 *   7. (--failover) XADDs every 20 ms through the cluster client while the master of shard 0 is
 *      SIGKILLed: how long writes fail, whether the client finds the promoted replica by itself,
 *      and how many acknowledged entries the promoted replica lacks (replication is
 *      asynchronous).
 */
import { Buffer } from "node:buffer";
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { createClient, createCluster, ErrorReply } from "npm:@redis/client@6.3.1";
import { haveRedisServer } from "../tests/support/redisServer.ts";
import { redisCli, RedisClusterServer } from "../tests/support/redisClusterServer.ts";

const args = Deno.args;
const SHARDS = Number(args[args.indexOf("--shards") + 1] || 8) || 8;
const FAILOVER = args.includes("--failover");
const NAME = "probe";

function shardKey(shard: number, node?: string): string {
  return node === undefined
    ? `otter:{${NAME}:${shard}}:changes`
    : `otter:{${NAME}:${shard}}:n:${node}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (!(await haveRedisServer())) {
  console.log("redis_cluster_probe: no redis-server here; skipped");
  Deno.exit(0);
}

const cluster = new RedisClusterServer({ masters: 3, replicasPerMaster: FAILOVER ? 1 : 0 });
const started = performance.now();
await cluster.start();
console.log(
  `cluster up in ${Math.round(performance.now() - started)} ms: ${cluster.seeds.join(",")}`,
);
const topology = await cluster.topology();
for (const node of topology) {
  console.log(`  ${node.port} ${node.role} ${node.slots.map(([a, b]) => `${a}-${b}`).join(",")}`);
}

// 1. Shard streams and their masters.
const masterOf = new Map<number, number>();
const perMaster = new Map<number, number>();
for (let s = 0; s < SHARDS; s++) {
  const key = shardKey(s);
  const slot = await redisCli(["-p", String(cluster.ports[0]), "CLUSTER", "KEYSLOT", key]);
  const master = await cluster.masterFor(key);
  masterOf.set(s, master);
  perMaster.set(master, (perMaster.get(master) ?? 0) + 1);
  console.log(`1. shard ${s}: ${key} slot ${slot} on master ${master}`);
}
console.log(
  `1. shards per master: ${[...perMaster.entries()].map(([p, n]) => `${p}:${n}`).join(" ")}`,
);

// 2. The cluster client routes XADD by key.
const client = createCluster({
  rootNodes: cluster.seeds.map((seed) => ({ url: `redis://${seed}` })),
  RESP: 2,
  defaults: { socket: { reconnectStrategy: () => 200, connectTimeout: 1000 } },
});
client.on("error", () => {});
await client.connect();
for (let s = 0; s < SHARDS; s++) {
  const id = await client.sendCommand(shardKey(s), false, [
    "XADD",
    shardKey(s),
    "MINID",
    "~",
    "0",
    "*",
    "b",
    Buffer.from([s]),
  ]);
  if (s < 2) console.log(`2. XADD via createCluster to shard ${s}: id ${id}`);
}
console.log(`2. createCluster XADDed to all ${SHARDS} shard streams (each routed to its master)`);

// 3. MOVED on a plain connection.
const key0 = shardKey(0);
const wrong = cluster.ports.find((port) =>
  port !== masterOf.get(0) && topology.some((n) => n.port === port && n.role === "master")
)!;
const plain = createClient({ url: `redis://127.0.0.1:${wrong}`, RESP: 2 });
plain.on("error", () => {});
await plain.connect();
try {
  await plain.sendCommand(["XREAD", "COUNT", "1", "STREAMS", key0, "0-0"]);
  console.log("3. unexpected: the wrong master answered");
} catch (error) {
  console.log(
    `3. XREAD on master ${wrong} for a key it does not serve: ${
      error instanceof ErrorReply ? "ErrorReply" : "error"
    } "${(error as Error).message}"`,
  );
}

// 4. CROSSSLOT, and one tag for a shard's per-node streams.
const right = createClient({ url: `redis://127.0.0.1:${masterOf.get(0)}`, RESP: 2 });
right.on("error", () => {});
await right.connect();
await right.sendCommand(["XADD", shardKey(0, "a"), "*", "b", "x"]);
await right.sendCommand(["XADD", shardKey(0, "b"), "*", "b", "y"]);
const sameTag = await right.sendCommand([
  "XREAD",
  "COUNT",
  "10",
  "STREAMS",
  shardKey(0, "a"),
  shardKey(0, "b"),
  "0-0",
  "0-0",
]) as unknown[];
console.log(`4. XREAD of two per-node streams with one hash tag: ${sameTag.length} streams back`);
const other = [...masterOf.entries()].find(([s, port]) => s !== 0 && port === masterOf.get(0));
if (other !== undefined) {
  try {
    await right.sendCommand(["XREAD", "STREAMS", key0, shardKey(other[0]), "0-0", "0-0"]);
    console.log("4. unexpected: XREAD across two slots of one master worked");
  } catch (error) {
    console.log(
      `4. XREAD of shards 0 and ${other[0]} (same master, two slots): "${
        (error as Error).message
      }"`,
    );
  }
}

// 5. What tells a node that Redis lost its data or trimmed past it.
const info = String(await right.sendCommand(["INFO", "server"]));
console.log(`5. INFO server run_id: ${/run_id:([0-9a-f]+)/.exec(info)?.[1]}`);
await right.sendCommand(["XADD", key0, "MAXLEN", "1", "*", "b", "z"]);
const xinfo = await right.sendCommand(["XINFO", "STREAM", key0]) as unknown[];
const fields: string[] = [];
for (let i = 0; i + 1 < xinfo.length; i += 2) {
  const value = xinfo[i + 1];
  if (typeof value === "string" || typeof value === "number") fields.push(`${xinfo[i]}=${value}`);
}
console.log(`5. XINFO STREAM after MAXLEN 1: ${fields.join(" ")}`);

// 6. ASK during a slot migration (on a shard stream of its own, so the others stay put).
const moving = shardKey(SHARDS - 1);
const slot = await redisCli(["-p", String(cluster.ports[0]), "CLUSTER", "KEYSLOT", moving]);
const source = masterOf.get(SHARDS - 1)!;
const target = topology.find((n) => n.role === "master" && n.port !== source)!.port;
const nodeId = (port: number) => redisCli(["-p", String(port), "CLUSTER", "MYID"]);
const sourceId = await nodeId(source);
const targetId = await nodeId(target);
await redisCli(["-p", String(target), "CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId]);
await redisCli(["-p", String(source), "CLUSTER", "SETSLOT", slot, "MIGRATING", targetId]);
await redisCli([
  "-p",
  String(source),
  "MIGRATE",
  "127.0.0.1",
  String(target),
  "",
  "0",
  "5000",
  "KEYS",
  moving,
]);
const onSource = createClient({ url: `redis://127.0.0.1:${source}`, RESP: 2 });
const onTarget = createClient({ url: `redis://127.0.0.1:${target}`, RESP: 2 });
for (const c of [onSource, onTarget]) {
  c.on("error", () => {});
  await c.connect();
}
const read = ["XREAD", "COUNT", "1", "STREAMS", moving, "0-0"];
const attempt = (c: typeof onSource) =>
  c.sendCommand(read).then(
    (reply) => `${JSON.stringify(reply).slice(0, 60)}…`,
    (error) => `"${(error as Error).message}"`,
  );
console.log(`6. key moved mid-migration: XREAD on the old master: ${await attempt(onSource)}`);
console.log(`6. XREAD on the new master without ASKING: ${await attempt(onTarget)}`);
await onTarget.sendCommand(["ASKING"]);
console.log(`6. ASKING, then XREAD on the new master: ${await attempt(onTarget)}`);
for (const port of topology.filter((n) => n.role === "master").map((n) => n.port)) {
  await redisCli(["-p", String(port), "CLUSTER", "SETSLOT", slot, "NODE", targetId]);
}
console.log(`6. after CLUSTER SETSLOT ${slot} NODE on every master: ${await attempt(onSource)}`);
onSource.destroy();
onTarget.destroy();
masterOf.set(SHARDS - 1, target);
plain.destroy();
right.destroy();

// 7. Failover under writes.
if (FAILOVER) {
  const victim = masterOf.get(0)!;
  const acked: string[] = [];
  let failures = 0;
  let firstFailure = -1;
  let lastFailure = -1;
  let running = true;
  const writer = (async () => {
    let n = 0;
    while (running) {
      const at = performance.now();
      try {
        const id = await Promise.race([
          client.sendCommand(key0, false, ["XADD", key0, "*", "b", String(n++)]),
          sleep(1000).then(() => {
            throw new Error("timeout");
          }),
        ]);
        acked.push(String(id));
      } catch {
        failures++;
        if (firstFailure < 0) firstFailure = at;
        lastFailure = performance.now();
      }
      await sleep(20);
    }
  })();
  await sleep(500);
  const killedAt = performance.now();
  const before = acked.length;
  await cluster.kill(victim);
  console.log(`7. SIGKILLed master ${victim} (shard 0) after ${before} acknowledged XADDs`);
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    await sleep(100);
    if (lastFailure > 0 && performance.now() - lastFailure > 2000) break;
  }
  running = false;
  await writer;
  console.log(
    `7. writes failed ${failures} times, from ${Math.round(firstFailure - killedAt)} ms to ` +
      `${
        Math.round(lastFailure - killedAt)
      } ms after the kill; ${acked.length} acknowledged in all`,
  );
  const promoted = await cluster.masterFor(key0);
  const direct = createClient({ url: `redis://127.0.0.1:${promoted}`, RESP: 2 });
  direct.on("error", () => {});
  await direct.connect();
  const held = await direct.sendCommand(["XRANGE", key0, "-", "+"]) as unknown[][];
  const heldIds = new Set(held.map((entry) => String(entry[0])));
  const lost = acked.filter((id) => !heldIds.has(id)).length;
  console.log(
    `7. promoted replica ${promoted} holds ${held.length} entries; acknowledged but lost: ${lost}`,
  );
  direct.destroy();
}

client.destroy();
await cluster.stop();
