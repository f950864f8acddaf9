/**
 * What an idle otter loads: main.ts's static import graph (what `deno task start` evaluates before
 * it reads a flag) leaves out the code most operators never use — the config file's reader and
 * writer with smol-toml, the access-list file watcher with node:path, the state file, the portable
 * UDP path, the I/O Workers, the cluster (and node:crypto, which its MACs use), the WebSocket
 * server and the dashboard's files with uPlot — and each of those is still reached by a dynamic
 * import of a fixed specifier, so `deno compile` bundles it (docs/performance.md → Idle RSS).
 * That they work when configured, under the start task's permissions, is permissions_test.ts's;
 * that the first WebSocket upgrade and the first dashboard request are answered, under the start
 * task's own command line, is the second test's.
 */
import assert from "node:assert/strict";
import { launchOtter, REPO_ROOT, runToEnd, taskWords } from "./support/otterCommand.ts";
import { announce, id, WsClient } from "./support/wsHarness.ts";

interface Dependency {
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface Module {
  specifier: string;
  dependencies?: Dependency[];
}

/** Only when used: paths under the checkout, or node:/npm: specifiers as deno info names them. */
const LOADED_WHEN_USED = [
  "src/config/configFile.ts",
  "npm:/smol-toml@1.9.1",
  "src/policy/accessListFile.ts",
  "node:path",
  "src/persist/stateFile.ts",
  "src/servers/udp/udpPortableSocket.ts",
  "src/servers/udp/udpWorkerPool.ts",
  "src/cluster/redisCluster.ts",
  "npm:/@redis/client@6.3.1",
  "src/observe/dashboardAssets.ts",
  "npm:/uplot@1.6.32/dist/uPlot.iife.min.js",
  "src/servers/ws/wsServer.ts",
];

/** Not at start either, but loaded by what LOADED_WHEN_USED loads rather than by their own import. */
const LOADED_WITH_THOSE = [
  "src/cluster/batchMac.ts",
  "node:crypto",
  "src/servers/ws/wtTracker.ts",
  "src/protocol/wsFrame.ts",
  "src/protocol/jsonScan.ts",
];

function short(specifier: string): string {
  const root = new URL(REPO_ROOT, "file:///").href;
  return specifier.startsWith(root) ? specifier.slice(root.length) : specifier;
}

Deno.test("main.ts imports what an idle tracker never runs only when it is used", async () => {
  const info = await runToEnd(Deno.execPath(), ["info", "--json", "main.ts"], 60_000);
  assert.equal(info.code, 0, info.stderr);
  const modules = new Map<string, Module>();
  for (const module of (JSON.parse(info.stdout) as { modules: Module[] }).modules) {
    modules.set(short(module.specifier), module);
  }
  const staticGraph = new Set<string>();
  const dynamicTargets = new Set<string>();
  const walk = (name: string) => {
    if (staticGraph.has(name)) return;
    staticGraph.add(name);
    for (const dependency of modules.get(name)?.dependencies ?? []) {
      if (dependency.code === undefined) continue; // `import type`: erased
      const target = short(dependency.code.specifier);
      if (dependency.isDynamic) dynamicTargets.add(target);
      else walk(target);
    }
  };
  walk("main.ts");
  assert.ok(staticGraph.has("src/servers/startTracker.ts"), "the walk follows static imports");
  for (const name of [...LOADED_WHEN_USED, ...LOADED_WITH_THOSE]) {
    assert.ok(modules.has(name), `${name} is in the graph (so deno compile includes it)`);
    assert.ok(!staticGraph.has(name), `${name} is loaded at start`);
  }
  for (const name of LOADED_WHEN_USED.filter((n) => n.startsWith("src/"))) {
    assert.ok(dynamicTargets.has(name), `${name} is reached by a dynamic import`);
  }
});

Deno.test("the first WebSocket upgrade and the first dashboard request load their code and are answered", async () => {
  // `deno task start`'s own command line: its permissions must allow the loads.
  const [deno, ...start] = taskWords("start");
  await using otter = await launchOtter(deno, [
    ...start,
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
  ]);
  const base = otter.http[0];
  const port = Number(new URL(base).port);
  // Both first requests at once, and an HTTP announce beside them.
  const [page, ws, plain] = await Promise.all([
    fetch(`${base}/dashboard`, { signal: AbortSignal.timeout(10_000) }),
    WsClient.open(port),
    fetch(`${base}/announce?info_hash=${"%01".repeat(20)}&peer_id=${"%02".repeat(20)}&port=1`, {
      signal: AbortSignal.timeout(10_000),
    }),
  ]);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
  assert.equal(plain.status, 200);
  await plain.body?.cancel();
  await using client = ws;
  await client.json(announce(id("h"), id("p"), { event: "started" }));
  const reply = await client.message(10_000);
  assert.equal(reply.action, "announce");
  assert.equal(reply.incomplete, 1);
  const uplot = await fetch(`${base}/dashboard/uPlot.iife.min.js`);
  assert.equal(uplot.status, 200);
  assert.match(await uplot.text(), /uPlot/);
});
