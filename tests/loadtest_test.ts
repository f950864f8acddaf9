/** `deno task loadtest` against a real otter: both protocols report replies and no invalid ones. */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";

const TOOL = new URL("../tools/loadtest.ts", import.meta.url).pathname;

/**
 * Runs the tool for 3 s: on a loaded machine 1 s once passed without a single reply (the first
 * connect was still unanswered), which says nothing about the tool.
 */
async function loadtest(args: string[]): Promise<Record<string, number>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", TOOL, ...args, "--seconds", "3", "--json"],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
  return JSON.parse(text);
}

Deno.test("loadtest reports replies/s, errors and latency for UDP and HTTP", async () => {
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const udp = await loadtest(["--udp", `127.0.0.1:${otter.udp[0].port}`, "--scrape", "20"]);
  assert.ok(udp.replies > 0, JSON.stringify(udp));
  assert.equal(udp.invalid, 0);
  assert.equal(udp.errors, 0);
  const http = await loadtest(["--http", `${otter.http[0]}/announce`, "--connections", "4"]);
  assert.ok(http.replies > 0, JSON.stringify(http));
  assert.equal(http.invalid, 0);
  assert.equal(http.errors, 0);
});

Deno.test("loadtest counts tracker errors: a whitelist refuses its torrents", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/list`, "");
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--whitelist",
    `${dir}/list`,
  ]);
  const http = await loadtest(["--http", `${otter.http[0]}/announce`, "--connections", "2"]);
  assert.equal(http.replies, 0);
  assert.ok(http.errors > 0);
  await Deno.remove(dir, { recursive: true });
});
