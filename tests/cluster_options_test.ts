/**
 * Cluster flag checks: Redis URLs, node ids, cluster names, the secret flags (command line and
 * config file), and otter refusing to start a cluster without a secret.
 */
import assert from "node:assert/strict";
import { ConfigError, helpText, parseCommandLine } from "../src/config/config.ts";
import { defaultConfigToml, loadConfig } from "../src/config/configFile.ts";
import { runOtter } from "./support/otterProcess.ts";
import { ClusterKeys } from "../src/cluster/clusterKeys.ts";
import { crc16, keySlot } from "../src/hash/crc16.ts";
import {
  checkClusterName,
  checkNodeId,
  parseClusterUrl,
  randomNodeId,
} from "../src/cluster/clusterOptions.ts";
import { compareStreamIds } from "../src/cluster/redisCommands.ts";

Deno.test("parseClusterUrl accepts redis and rediss URLs", () => {
  for (
    const text of [
      "redis://127.0.0.1:6379",
      "redis://localhost:6379/",
      "redis://[::1]:6379/3",
      "rediss://cache.example:6380/15",
      "redis://user:secret@host:6379/0",
      "redis://:secret@host:6379",
    ]
  ) {
    const parsed = parseClusterUrl(text);
    assert.ok(!("error" in parsed), text);
    assert.equal(parsed.url, text);
    assert.ok(!parsed.redacted.includes("secret"), parsed.redacted);
  }
  const parsed = parseClusterUrl("redis://user:secret@host:6379/2");
  assert.ok(!("error" in parsed));
  assert.equal(parsed.redacted, "redis://user:***@host:6379/2");
});

Deno.test("parseClusterUrl rejects what is not a Redis URL", () => {
  for (
    const text of [
      "",
      "localhost:6379",
      "http://host:6379",
      "redis://host",
      "redis://:6379",
      "redis://host:6379/db",
      "redis://host:6379/1/2",
      "redis://host:6379/01",
      "redis://host:6379?x=1",
      "redis://host:6379#x",
      "http://user:secret@host:6379",
      "redis://user:secret@host",
    ]
  ) {
    const parsed = parseClusterUrl(text);
    assert.ok("error" in parsed, text);
    assert.ok(!parsed.error.includes("secret"), "the reason never repeats the URL's password");
  }
});

Deno.test("node ids and cluster names", () => {
  const a = randomNodeId();
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.notEqual(a, randomNodeId());
  assert.equal(checkNodeId(a), null);
  assert.equal(checkNodeId("x".repeat(64)), null);
  assert.notEqual(checkNodeId(""), null);
  assert.notEqual(checkNodeId("x".repeat(65)), null);
  assert.notEqual(checkNodeId("has space"), null);
  assert.notEqual(checkNodeId("é"), null);
  assert.equal(checkClusterName("otter"), null);
  assert.equal(checkClusterName("prod-eu_1.a"), null);
  assert.notEqual(checkClusterName(""), null);
  assert.notEqual(checkClusterName("a:b"), null);
  assert.notEqual(checkClusterName("x".repeat(65)), null);
  // A shard's keys share the hash tag {NAME:s}: one slot in a Redis Cluster.
  const keys = new ClusterKeys("otter");
  assert.equal(keys.nodeStream(3, "00ff00ff00ff00ff"), "otter:{otter:3}:n:00ff00ff00ff00ff");
  assert.equal(keys.instanceOf(3, keys.nodeStream(3, "00ff00ff00ff00ff")), "00ff00ff00ff00ff");
  assert.equal(keys.instanceOf(2, keys.nodeStream(3, "00ff00ff00ff00ff")), null);
  assert.equal(keys.config, "otter:{otter}:config");
  for (const key of [keys.nodes(3), keys.hello(3), keys.manifest(3), keys.lease(3)]) {
    assert.equal(keySlot(key), keySlot(keys.nodeStream(3, "00ff00ff00ff00ff")));
  }
});

Deno.test("key slots are CRC-16/XMODEM of the hash tag, as CLUSTER KEYSLOT says", () => {
  // The check value of CRC-16/XMODEM, and slots Redis gives (redis-cli CLUSTER KEYSLOT).
  assert.equal(crc16(new TextEncoder().encode("123456789")), 0x31c3);
  assert.equal(keySlot("foo"), 12182);
  assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
  assert.equal(keySlot("foo{}{bar}"), keySlot("foo{}{bar}"));
  assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
  assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
});

Deno.test("--cluster takes one URL, or a Redis Cluster's seeds as a comma-separated list", () => {
  const one = parseClusterUrl("redis://u:secret@h1:7000");
  assert.ok(!("error" in one));
  assert.deepEqual(one.urls, ["redis://u:secret@h1:7000"]);
  assert.equal(one.redacted, "redis://u:***@h1:7000");
  const list = parseClusterUrl("redis://u:secret@h1:7000,redis://h2:7001, redis://h3:7002");
  assert.ok(!("error" in list));
  assert.deepEqual(list.urls, ["redis://u:secret@h1:7000", "redis://h2:7001", "redis://h3:7002"]);
  assert.equal(list.redacted, "redis://u:***@h1:7000,redis://h2:7001,redis://h3:7002");
  const mixed = parseClusterUrl("redis://h1:7000,rediss://h2:7001");
  assert.deepEqual(mixed, { error: "the URLs of a list must all be redis:// or all rediss://" });
  const database = parseClusterUrl("redis://h1:7000,redis://h2:7001/2");
  assert.ok("error" in database && /database 0 only/.test(database.error));
  const bad = parseClusterUrl("redis://h1:7000,redis://h2");
  assert.deepEqual(bad, {
    error: "URL 2 of the list: the URL needs a port, e.g. redis://host:6379",
  });
});

Deno.test("compareStreamIds orders by time, then sequence", () => {
  assert.equal(compareStreamIds("0-0", "0-0"), 0);
  assert.equal(compareStreamIds("5-0", "10-0"), -1);
  assert.equal(compareStreamIds("10-0", "5-9"), 1);
  assert.equal(compareStreamIds("1795595585309-2", "1795595585309-10"), -1);
  assert.equal(compareStreamIds("1795595585309-10", "1795595585309-10"), 0);
});

Deno.test("--cluster-secret-file and --cluster-insecure, as flags and config keys", () => {
  const run = (args: string[], file = "") => {
    const parsed = loadConfig(args, () => file);
    assert.equal(parsed.kind, "run");
    return parsed.kind === "run" ? parsed.config : null!;
  };
  const plain = run([]);
  assert.equal(plain.clusterSecretFile, "");
  assert.equal(plain.clusterInsecure, false);
  const flags = run(["--cluster", "redis://h:6379", "--cluster-secret-file", "/etc/otter/s"]);
  assert.equal(flags.clusterSecretFile, "/etc/otter/s");
  assert.equal(run(["--cluster-insecure"]).clusterInsecure, true);
  const file = run(["--config", "o.toml"], 'cluster-secret-file = "/etc/otter/cluster.secret"\n');
  assert.equal(file.clusterSecretFile, "/etc/otter/cluster.secret");
  assert.equal(run(["--config", "o.toml"], "cluster-insecure = true\n").clusterInsecure, true);
  assert.throws(
    () => parseCommandLine(["--cluster-secret-file", "/s", "--cluster-insecure"]),
    (e) =>
      e instanceof ConfigError &&
      e.message === "--cluster-secret-file and --cluster-insecure cannot be used together",
  );
  assert.throws(
    () =>
      loadConfig(["--config", "o.toml", "--cluster-insecure"], () => 'cluster-secret-file = "/s"'),
    ConfigError,
  );
  assert.match(helpText("0"), /--cluster-secret-file FILE +authenticate cluster batches/);
  assert.match(defaultConfigToml(), /^cluster-secret-file = ""$/m);
  assert.match(defaultConfigToml(), /^cluster-insecure = false$/m);
});

Deno.test("otter --cluster without a secret, or with a bad one, exits 1 with one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/short`, "too short\n");
    const listen = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"];
    // Nothing listens on port 1: the secret is checked before Redis is tried.
    const cluster = ["--cluster", "redis://127.0.0.1:1"];
    const cases: [string[], string][] = [
      [
        [],
        "otter: --cluster needs --cluster-secret-file FILE (the same secret of 16 bytes or more " +
        "on every node), or --cluster-insecure to run without authentication",
      ],
      [
        ["--cluster-secret-file", `${dir}/short`],
        `otter: --cluster-secret-file ${dir}/short: the secret must be at least 16 bytes (it has ` +
        "9); make one with: head -c 32 /dev/urandom | base64 > FILE",
      ],
      [
        ["--cluster-secret-file", `${dir}/missing`],
        `otter: --cluster-secret-file ${dir}/missing: file not found`,
      ],
    ];
    for (const [extra, line] of cases) {
      const r = await runOtter([...listen, ...cluster, ...extra]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr, line + "\n");
      assert.doesNotMatch(r.stdout, /listening/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
