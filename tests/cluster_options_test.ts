/** Cluster flag checks: Redis URLs, node ids, cluster names. */
import assert from "node:assert/strict";
import {
  checkClusterName,
  checkNodeId,
  parseClusterUrl,
  randomNodeId,
  streamKey,
} from "../src/ops/cluster/clusterOptions.ts";
import { compareStreamIds } from "../src/ops/cluster/redisCluster.ts";

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
  assert.equal(streamKey("otter"), "otter:otter:changes");
});

Deno.test("compareStreamIds orders by time, then sequence", () => {
  assert.equal(compareStreamIds("0-0", "0-0"), 0);
  assert.equal(compareStreamIds("5-0", "10-0"), -1);
  assert.equal(compareStreamIds("10-0", "5-9"), 1);
  assert.equal(compareStreamIds("1795595585309-2", "1795595585309-10"), -1);
  assert.equal(compareStreamIds("1795595585309-10", "1795595585309-10"), 0);
});
