/**
 * Access lists apply wherever a torrent shows, over real sockets (white and black lists):
 * - a reload that forbids a torrent: announces refused, HTTP and UDP scrapes answer zeros for it
 *   (like an unknown torrent), the full scrape (even one cached before the reload), statedump and
 *   top leave it out, and its swarm is dropped, so /stats counts it no more and allowing it again
 *   brings back no peers;
 * - a forbidden torrent still in the store (as while that drop runs) shows in no scrape or stats;
 * - a state file restore skips torrents forbidden by then, and says how many;
 * - the cluster does not apply other nodes' changes for torrents this node forbids.
 */
import assert from "node:assert/strict";
import { type OtterProcess, startOtter } from "./support/otterProcess.ts";
import { bdecode, dict, latin1 } from "./support/bencode.ts";
import { announcePacket, readU32, scrapePacket, UdpTestClient } from "./support/udpClient.ts";
import { percentEscape } from "./support/torrent.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { startTracker } from "../src/servers/startTracker.ts";

function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 41 + i * 7 + 5) & 0xff);
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const X = hash(1); // the torrent a reload forbids
const Y = hash(2); // a torrent that stays allowed
const Z = hash(3); // a marker: its state tells that a reload is in force

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  ms = 10_000,
): Promise<T> {
  const deadline = performance.now() + ms;
  let last: T;
  do {
    last = await probe();
    if (ok(last)) return last;
    await sleep(50);
  } while (performance.now() < deadline);
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
}

type Counts = [complete: number, downloaded: number, incomplete: number];

/** One tracker's HTTP base and UDP address, and a connected UDP client. */
class Client {
  readonly udp: UdpTestClient;
  #id: Uint8Array = new Uint8Array(8);

  constructor(readonly http: string, udpPort: number) {
    this.udp = new UdpTestClient("127.0.0.1", udpPort);
  }

  async connect(): Promise<this> {
    this.#id = await this.udp.connect();
    return this;
  }

  close(): void {
    this.udp.close();
  }

  async #get(path: string): Promise<Uint8Array> {
    const response = await fetch(`${this.http}${path}`, { signal: AbortSignal.timeout(10_000) });
    return new Uint8Array(await response.arrayBuffer());
  }

  /** HTTP announce; the failure reason, or "" when served. */
  async httpAnnounce(infoHash: Uint8Array, port: number, left = 10): Promise<string> {
    const reply = dict(bdecode(
      await this.#get(
        `/announce?info_hash=${percentEscape(infoHash)}&peer_id=${"p".repeat(20)}` +
          `&port=${port}&left=${left}`,
      ),
    ));
    const failure = reply["failure reason"];
    return failure instanceof Uint8Array ? new TextDecoder().decode(failure) : "";
  }

  /** UDP announce; the BEP 15 error text, or "" when served. */
  async udpAnnounce(infoHash: Uint8Array, port: number, left = 10): Promise<string> {
    const reply = await this.udp.request(
      announcePacket({ connectionId: this.#id, infoHash, port, left, transactionId: port }),
    );
    assert.ok(reply, "an announce reply");
    if (readU32(reply, 0) === 1) return "";
    assert.equal(readU32(reply, 0), 3);
    return new TextDecoder().decode(reply.subarray(8));
  }

  /** HTTP scrape: each hash's counts, or null when `files` leaves it out. */
  async httpScrape(hashes: Uint8Array[]): Promise<(Counts | null)[]> {
    const query = hashes.map((h) => `info_hash=${percentEscape(h)}`).join("&");
    const files = dict(dict(bdecode(await this.#get(`/scrape?${query}`))).files);
    return hashes.map((h) => {
      const entry = files[latin1(h)];
      if (entry === undefined) return null;
      const d = dict(entry);
      return [d.complete, d.downloaded, d.incomplete] as Counts;
    });
  }

  /** UDP scrape: counts in request order (BEP 15: seeders, completed, leechers). */
  async udpScrape(hashes: Uint8Array[]): Promise<Counts[]> {
    const reply = await this.udp.request(scrapePacket(this.#id, hashes));
    assert.ok(reply, "a scrape reply");
    assert.equal(readU32(reply, 0), 2);
    return hashes.map((_, i) => [
      readU32(reply, 8 + 12 * i),
      readU32(reply, 12 + 12 * i),
      readU32(reply, 16 + 12 * i),
    ]);
  }

  /** The info hashes (hex) a full scrape lists. */
  async fullScrape(): Promise<string[]> {
    const files = dict(dict(bdecode(await this.#get("/scrape"))).files);
    return Object.keys(files).map((key) => hex(Uint8Array.from(key, (c) => c.charCodeAt(0))));
  }

  async stats(mode: string): Promise<string[]> {
    const body = new TextDecoder().decode(await this.#get(`/stats?mode=${mode}`));
    return body.trimEnd().split("\n");
  }

  /** Torrents in the store (/stats mode torr). */
  async torrents(): Promise<number> {
    return Number((await this.stats("torr"))[0]);
  }
}

async function clientOf(otter: OtterProcess): Promise<Client> {
  return await new Client(otter.http[0], otter.udp[0].port).connect();
}

/** The list file's text for `mode` that lets exactly `allowed` of X, Y, Z through. */
function listText(mode: "white" | "black", allowed: Uint8Array[]): string {
  const listed = mode === "white" ? allowed : [X, Y, Z].filter((h) => !allowed.includes(h));
  return `# ${mode}list\n${listed.map(hex).join("\n")}\n`;
}

/** Replaces the list as deploy tools do, then also sends SIGHUP: either reloads it. */
async function rewrite(otter: OtterProcess, path: string, text: string): Promise<void> {
  await Deno.writeTextFile(`${path}.new`, text);
  await Deno.rename(`${path}.new`, path);
  Deno.kill(otter.pid, "SIGHUP");
}

/**
 * Z marks which list is in force: `zBefore` adds it to `allowed` where a blacklist then does not
 * list it, `zAfter` where a whitelist then lists it, so Z flips between the two and
 * `waitForZAfter` knows when the second list is in force (announcing Z is harmless: Z plays no
 * other part).
 */
function zBefore(mode: "white" | "black", allowed: Uint8Array[]): Uint8Array[] {
  return mode === "black" ? [...allowed, Z] : allowed;
}
function zAfter(mode: "white" | "black", allowed: Uint8Array[]): Uint8Array[] {
  return mode === "white" ? [...allowed, Z] : allowed;
}
async function waitForZAfter(client: Client, mode: "white" | "black"): Promise<void> {
  const allowed = mode === "white";
  await eventually(
    `Z ${allowed ? "allowed" : "refused"}`,
    () => client.httpAnnounce(Z, 9),
    (failure) => (failure === "") === allowed,
  );
}

for (const mode of ["black", "white"] as const) {
  Deno.test(`${mode}list reload: a newly forbidden torrent is refused, scrapes zero, leaves the full scrape and /stats, and its swarm is dropped`, async () => {
    const dir = await Deno.makeTempDir();
    const list = `${dir}/list.txt`;
    await Deno.writeTextFile(list, listText(mode, [X, Y]));
    await using otter = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      `--${mode}list`,
      list,
    ]);
    const client = await clientOf(otter);
    try {
      // X: a leecher over HTTP, a seeder over UDP; Y: one leecher.
      assert.equal(await client.httpAnnounce(X, 1001), "");
      assert.equal(await client.udpAnnounce(X, 1002, 0), "");
      assert.equal(await client.httpAnnounce(Y, 1003), "");
      assert.deepEqual(await client.httpScrape([X, Y]), [[1, 0, 1], [0, 0, 1]]);
      assert.deepEqual(await client.udpScrape([X, Y]), [[1, 0, 1], [0, 0, 1]]);
      // Cached now (--full-scrape-every 60): the reload must not let this build be served.
      assert.deepEqual((await client.fullScrape()).sort(), [hex(X), hex(Y)].sort());
      assert.equal(await client.torrents(), 2);

      await rewrite(otter, list, listText(mode, zBefore(mode, [Y])));
      await eventually(
        "X refused over HTTP",
        () => client.httpAnnounce(X, 1001),
        (f) => /not authorized/.test(f),
      );
      assert.match(await client.udpAnnounce(X, 1002, 0), /not authorized/);
      // Zeros for X, like an unknown torrent; Y untouched, over both protocols.
      assert.deepEqual(await client.httpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
      assert.deepEqual(await client.udpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
      assert.deepEqual(await client.fullScrape(), [hex(Y)]);
      assert.deepEqual(await client.stats("statedump"), [`${hex(Y)}:0`]);
      assert.deepEqual((await client.stats("top10")).slice(1), [`${hex(Y)}\t1\t0`]);
      // The swarm is dropped (the log says so) and /stats counts it no more.
      await eventually("X's swarm dropped", () => client.torrents(), (n) => n === 1);
      assert.ok(
        otter.stdout.some((l) => /dropped 1 torrents \(2 peers\) it now forbids/.test(l)),
        otter.stdout.join("\n"),
      );

      // Allowed again (Z's change shows the list is in force), X comes back without its peers:
      // they were dropped, not hidden.
      await rewrite(otter, list, listText(mode, zAfter(mode, [X, Y])));
      await waitForZAfter(client, mode);
      assert.deepEqual(await client.httpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
      assert.deepEqual(await client.udpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
      assert.equal(await client.httpAnnounce(X, 1001), "");
      assert.deepEqual(await client.httpScrape([X]), [[0, 0, 1]]);
    } finally {
      client.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Starts otter in this process; returns it, a client and its log. */
async function startInProcess(args: string[]) {
  const parsed = parseCommandLine(args);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") throw new Error("unreachable");
  const logs: string[] = [];
  const running = await startTracker(parsed.config, new Clock(), (line) => logs.push(line));
  const http = logs.map((l) => /^HTTP listening on (\S+)\/announce$/.exec(l)?.[1]).find((u) => u);
  const udp = logs.map((l) => /^UDP listening on udp:\/\/[^ ]+:(\d+)\//.exec(l)?.[1]).find((p) =>
    p
  );
  assert.ok(http && udp, logs.join("\n"));
  const client = await new Client(http, Number(udp)).connect();
  return { running, client, logs };
}

Deno.test("a forbidden torrent still in the store (as while its swarm is dropped) shows in no scrape or stats", async () => {
  const dir = await Deno.makeTempDir();
  const list = `${dir}/blacklist.txt`;
  await Deno.writeTextFile(list, `${hex(X)}\n`);
  const { running, client } = await startInProcess([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--udp-io",
    "portable",
    "--blacklist",
    list,
  ]);
  try {
    assert.equal(await client.httpAnnounce(Y, 1003), "");
    // Put X's peers straight into the store, past the announce check: what a purge has not
    // reached yet looks like this.
    const store = running.tracker.store;
    const address = Uint8Array.of(127, 0, 0, 1);
    const none = new Uint8Array(0);
    store.announce(X, 0, 4, address, 0, 1001, 2, false, 0, running.tracker.clock.now, none, 0);
    store.announce(X, 0, 4, address, 0, 1002, 1, true, 0, running.tracker.clock.now, none, 0);
    assert.equal(store.torrents, 2);

    assert.deepEqual(await client.httpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
    assert.deepEqual(await client.udpScrape([Y, X, Y]), [[0, 0, 1], [0, 0, 0], [0, 0, 1]]);
    assert.deepEqual(await client.fullScrape(), [hex(Y)]);
    assert.deepEqual(await client.stats("statedump"), [`${hex(Y)}:0`]);
    assert.deepEqual((await client.stats("top100")).slice(1), [`${hex(Y)}\t1\t0`]);
    // `completed` sums downloaded over listed torrents only: X's completion is not counted.
    assert.deepEqual((await client.stats("completed")).slice(0, 2), ["0", "0"]);
  } finally {
    client.close();
    await running.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

for (const mode of ["black", "white"] as const) {
  Deno.test(`state restore under a ${mode}list: forbidden torrents are not loaded, and the log says how many`, async () => {
    const dir = await Deno.makeTempDir();
    const state = `${dir}/state`;
    const list = `${dir}/list.txt`;
    const listen = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--state", state];
    try {
      {
        await using otter = await startOtter(listen);
        const client = await clientOf(otter);
        assert.equal(await client.httpAnnounce(X, 1001), "");
        assert.equal(await client.udpAnnounce(X, 1002, 0), "");
        assert.equal(await client.httpAnnounce(Y, 1003), "");
        client.close();
        const stopped = await otter.stop();
        assert.equal(stopped.code, 0);
      }
      await Deno.writeTextFile(list, listText(mode, zBefore(mode, [Y])));
      await using otter = await startOtter([...listen, `--${mode}list`, list]);
      const client = await clientOf(otter);
      try {
        const restored = otter.stdout.find((l) => l.startsWith(`state ${state}: restored`));
        assert.match(
          restored ?? otter.stdout.join("\n"),
          /restored 1 torrents, 1 peers .*; skipped 1 torrents \(2 peers\) the access list forbids/,
        );
        assert.equal(await client.torrents(), 1);
        assert.deepEqual(await client.udpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
        // Allowed again, X has no peers: it was never loaded.
        await rewrite(otter, list, listText(mode, zAfter(mode, [X, Y])));
        await waitForZAfter(client, mode);
        assert.deepEqual(await client.httpScrape([X, Y]), [[0, 0, 0], [0, 0, 1]]);
        assert.deepEqual(await client.udpScrape([X]), [[0, 0, 0]]);
      } finally {
        client.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("access_scope_test: cluster test skipped, no redis-server on PATH");

Deno.test({
  name: "cluster: a node does not apply other nodes' changes for torrents its list forbids",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const dir = await Deno.makeTempDir();
    const list = `${dir}/blacklist.txt`;
    await Deno.writeTextFile(list, listText("black", zBefore("black", [Y])));
    const secret = `${dir}/cluster.secret`;
    await Deno.writeTextFile(secret, "access-scope-test-secret-0123456789\n", { mode: 0o600 });
    const cluster = (name: string) => [
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--cluster",
      redis.url,
      "--cluster-name",
      "access",
      "--cluster-secret-file",
      secret,
      "--node-id",
      name,
    ];
    const clients: Client[] = [];
    try {
      await using a = await startOtter(cluster("a"));
      await using b = await startOtter([...cluster("b"), "--blacklist", list]);
      const [onA, onB] = [await clientOf(a), await clientOf(b)];
      clients.push(onA, onB);
      assert.equal(await onA.httpAnnounce(X, 1001), "");
      assert.equal(await onA.udpAnnounce(X, 1002, 0), "");
      assert.equal(await onA.httpAnnounce(Y, 1003), "");
      // B learns Y, not X: its store holds one torrent, and it counts X's changes as skipped.
      await eventually(
        "Y reaches B",
        () => onB.udpScrape([Y]),
        (c) => c[0][2] === 1,
      );
      const metric = async () => {
        const text = new TextDecoder().decode(
          new Uint8Array(await (await fetch(`${onB.http}/metrics`)).arrayBuffer()),
        );
        return Number(/^otter_cluster_forbidden_changes_total (\d+)$/m.exec(text)?.[1]);
      };
      await eventually("B skipped X's two changes", metric, (n) => n === 2);
      assert.equal(await onB.torrents(), 1);
      // B's refusal is not published either: A still has only its own two peers of X.
      assert.match(await onB.udpAnnounce(X, 1004), /not authorized/);

      // Allowed on B again (Z now banned shows the list is in force): the old changes stay
      // unapplied, and the next change for X is applied.
      await rewrite(b, list, listText("black", zAfter("black", [X, Y])));
      await waitForZAfter(onB, "black");
      assert.deepEqual(await onB.udpScrape([X]), [[0, 0, 0]]);
      assert.equal(await onA.httpAnnounce(X, 1005), "");
      await eventually("X's new peer reaches B", () => onB.udpScrape([X]), (c) => c[0][2] === 1);
      assert.deepEqual(await onA.udpScrape([X]), [[1, 0, 2]]);
    } finally {
      for (const c of clients) c.close();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
