/**
 * The single binary: `deno task compile`'s own command (its exact flags; only the output moved to
 * a temporary directory) builds otter, and the binary answers real HTTP and UDP announces, keeps a
 * state file across a restart, serves the dashboard from what it carries and stops cleanly on
 * SIGTERM.
 *
 * `deno compile` downloads its runtime (denort) on first use. Where that download fails (no
 * network, as on the development machines), the test is skipped with a one-line reason taken
 * from the error; any other compile failure fails the test. `OTTER_BINARY=path` tests a binary
 * built elsewhere instead (the release workflow tests its own artifact this way).
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { fastUdpSupport } from "../src/servers/udp/udpFastSocket.ts";
import { VERSION } from "../src/version.ts";
import { makeCa, makeLeaf } from "./support/testCertificates.ts";
import {
  assertAnnounces,
  assertHttpsServes,
  launchOtter,
  REPO_ROOT,
  runToEnd,
  taskWords,
} from "./support/otterCommand.ts";

const COMPILE_TIMEOUT_MS = 60_000;

type Build =
  | { kind: "built"; binary: string; cleanup: () => Promise<void> }
  | { kind: "skip"; reason: string }
  | { kind: "failed"; output: string };

// deno prints colour codes even into a pipe when asked to; the patterns below want plain text.
// deno-lint-ignore no-control-regex
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

/** The first line of the compile output that says why the runtime download failed, if it did. */
function downloadFailure(output: string): string | undefined {
  const text = plain(output);
  if (!/denort/.test(text)) return undefined;
  const cause =
    /(dns error|error sending request|failed to lookup|connection refused|connection reset|network is unreachable|timed out|tcp connect error|certificate)/i;
  return text.split("\n").map((line) => line.trim().replace(/^\d+: /, "")).find((line) =>
    cause.test(line)
  );
}

async function build(): Promise<Build> {
  const given = Deno.env.get("OTTER_BINARY");
  if (given) return { kind: "built", binary: resolve(given), cleanup: async () => {} };

  const words = taskWords("compile");
  const output = words.indexOf("--output");
  assert.ok(output > 0, "the compile task names its --output");
  const dir = await Deno.makeTempDir({ prefix: "otter-binary-" });
  const binary = `${dir}/otter`;
  const cleanup = () => Deno.remove(dir, { recursive: true });
  const args = words.slice(1).map((word, i) => (i + 1 === output + 1 ? binary : word));
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(COMPILE_TIMEOUT_MS),
  }).output();
  const text = new TextDecoder().decode(result.stdout) +
    new TextDecoder().decode(result.stderr);
  if (result.success) return { kind: "built", binary, cleanup };
  await cleanup();
  const network = downloadFailure(text);
  if (network !== undefined) {
    return { kind: "skip", reason: `deno compile cannot download its runtime: ${network}` };
  }
  if (result.signal !== null && /Download\s.*denort/.test(plain(text))) {
    const seconds = COMPILE_TIMEOUT_MS / 1000;
    return {
      kind: "skip",
      reason: `deno compile still downloading its runtime after ${seconds} s`,
    };
  }
  return { kind: "failed", output: `deno ${args.join(" ")}: exit ${result.code}\n${text}` };
}

const built = await build();

Deno.test({
  name: "the compiled binary: version, HTTP and UDP announces, state file, clean stop" +
    (built.kind === "skip" ? ` (skipped: ${built.reason})` : ""),
  ignore: built.kind === "skip",
  async fn(t) {
    if (built.kind === "failed") assert.fail(built.output);
    if (built.kind !== "built") return;
    const binary = built.binary;
    const dir = await Deno.makeTempDir({ prefix: "otter-binary-state-" });
    try {
      await t.step("--version needs nothing but the binary", async () => {
        const r = await runToEnd(binary, ["--version"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `otter ${VERSION}\n`);
      });

      const args = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--state", `${dir}/state`];
      await t.step("announces over HTTP and UDP, saves its state on SIGTERM", async () => {
        await using otter = await launchOtter(binary, args);
        // The binary carries the compile task's --allow-ffi: fast wherever the host allows it.
        assert.equal(otter.udp[0].io, fastUdpSupport().ok ? "fast" : "portable", otter.log());
        await assertAnnounces(otter);
        const stopped = await otter.stop();
        assert.equal(stopped.code, 0, otter.log());
        assert.equal(stopped.stderr, "");
        assert.ok(otter.lines.some((l) => /^state .*: saved 2 torrents, 4 peers/.test(l)));
      });

      await t.step("restores that state on the next start", async () => {
        await using otter = await launchOtter(binary, args);
        assert.ok(otter.lines.some((l) => /^state .*: restored 2 torrents, 4 peers/.test(l)));
        assert.equal((await otter.stop()).code, 0, otter.log());
      });

      // --https reloads by binding a second socket with SO_REUSEPORT, an unstable Deno option:
      // the binary must carry deno.json's "unstable": ["net"].
      await t.step("--https: TLS from certificate files, SIGHUP re-reads them", async () => {
        const ca = await makeCa(dir, "binary");
        const leaf = await makeLeaf(dir, ca, "binary");
        await using otter = await launchOtter(binary, [
          "--http",
          "127.0.0.1:0",
          "--udp",
          "127.0.0.1:0",
          "--https",
          "127.0.0.1:0",
          "--tls-cert",
          leaf.certPath,
          "--tls-key",
          leaf.keyPath,
        ]);
        await assertHttpsServes(otter, ca.pem);
        const stopped = await otter.stop();
        assert.equal(stopped.code, 0, otter.log());
        assert.equal(stopped.stderr, "");
      });

      // The page's files are text imports (otter's own and npm's uPlot): the binary carries them.
      await t.step(
        "the dashboard: its page, uPlot and its data, from the binary alone",
        async () => {
          await using otter = await launchOtter(binary, [
            "--http",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
          ]);
          await assertAnnounces(otter);
          const base = otter.http[0];
          const page = await fetch(`${base}/dashboard`);
          assert.equal(page.status, 200);
          assert.match(await page.text(), /<script src="\/dashboard\/uPlot\.iife\.min\.js"/);
          const uplot = await fetch(`${base}/dashboard/uPlot.iife.min.js`);
          assert.equal(uplot.status, 200);
          assert.match(await uplot.text(), /uPlot/);
          const data = await (await fetch(`${base}/dashboard/data`)).json();
          assert.equal(data.info.version, VERSION);
          assert.equal(
            data.clients.shares.reduce((n: number, s: { announces: number }) => n + s.announces, 0),
            4,
          );
          const stopped = await otter.stop();
          assert.equal(stopped.code, 0, otter.log());
          assert.equal(stopped.stderr, "");
        },
      );

      // The I/O Workers run a module of their own, which the binary must carry (--include).
      await t.step({
        name: "--workers 2: UDP through I/O Workers",
        ignore: !fastUdpSupport().ok,
        fn: async () => {
          const listen = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--workers", "2"];
          await using otter = await launchOtter(binary, listen);
          assert.equal(otter.udp[0].io, "fast", otter.log());
          assert.ok(otter.lines.some((l) => /workers: 2\)$/.test(l)), otter.log());
          await assertAnnounces(otter);
          const stopped = await otter.stop();
          assert.equal(stopped.code, 0, otter.log());
          assert.equal(stopped.stderr, "");
        },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
      await built.cleanup();
    }
  },
});

Deno.test("a compile failure is a skip only when the runtime download failed", () => {
  const offline = [
    "Compile main.ts to /tmp/otter-binary-1/otter",
    "Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
    "error: Writing deno compile executable to temporary file '/tmp/otter-binary-1/otter.tmp-1'",
    "Caused by:",
    "    0: Setting up base binary.",
    "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-" +
    "unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address " +
    "information: Name or service not known",
  ].join("\n");
  assert.match(downloadFailure(offline) ?? "", /^error sending request .*dns error/);
  const typeError = [
    "Check main.ts",
    "TS2345 [ERROR]: Argument of type 'number' is not assignable to parameter of type 'bigint'.",
    "error: Type checking failed.",
  ].join("\n");
  assert.equal(downloadFailure(typeError), undefined);
});
