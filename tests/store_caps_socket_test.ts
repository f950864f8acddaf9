/**
 * `--max-torrents`, `--max-peers` and `--when-full` over real sockets: a refused announce gets the
 * documented failure text over HTTP and UDP, eviction serves the newcomer and drops an old torrent,
 * a warm restart under lower caps restores up to them and logs the rest, and a UDP flood of
 * distinct random info hashes keeps the store within its caps and otter's RSS within a budget
 * computed from them.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { bdecode, type Decoded, dict, text } from "./support/bencode.ts";
import { announcePacket, readU32, scrapePacket, UdpTestClient } from "./support/udpClient.ts";
import { percentEscape } from "./support/torrent.ts";
import { flood, type FloodResult } from "./support/udpFlood.ts";

const FULL_TORRENTS = "tracker is full: too many torrents";
const FULL_PEERS = "tracker is full: too many peers";

function hash(seed: number): Uint8Array {
  const h = new Uint8Array(20).fill(0xa7);
  new DataView(h.buffer).setUint32(0, seed);
  return h;
}

async function get(url: string): Promise<Uint8Array> {
  // Generous: under the flood on a busy machine, /metrics has taken over 5 s.
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  assert.equal(response.status, 200, url);
  return new Uint8Array(await response.arrayBuffer());
}

/** An HTTP announce's decoded reply. */
async function httpAnnounce(
  base: string,
  infoHash: Uint8Array,
  port: number,
  event = "",
): Promise<Record<string, Decoded>> {
  const url = `${base}/announce?info_hash=${percentEscape(infoHash)}&peer_id=-OT0001-${
    String(port).padStart(12, "0")
  }&port=${port}&uploaded=0&downloaded=0&left=10&compact=1${event && `&event=${event}`}`;
  return dict(bdecode(await get(url)));
}

/** A sample's value from /metrics (`name` with its labels, as printed). */
async function metric(base: string, name: string): Promise<number> {
  const body = new TextDecoder().decode(await get(`${base}/metrics`));
  const line = body.split("\n").find((l) => l.startsWith(name + " "));
  assert.ok(line !== undefined, `no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

/** A BEP 15 error reply's message, or null for any other reply. */
function udpError(reply: Uint8Array | null): string | null {
  assert.ok(reply !== null, "no UDP reply");
  if (readU32(reply, 0) !== 3) return null;
  return new TextDecoder().decode(reply.subarray(8));
}

Deno.test("refuse: the 101st torrent and the 151st peer get the documented failure, HTTP and UDP", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-torrents",
    "100",
    "--max-peers",
    "150",
  ]);
  const base = otter.http[0];
  for (let i = 0; i < 100; i++) {
    const reply = await httpAnnounce(base, hash(i), 1000 + i, "started");
    assert.equal(reply["failure reason"], undefined, `torrent ${i}`);
  }
  const refused = await httpAnnounce(base, hash(100), 2000, "started");
  assert.equal(text(refused["failure reason"]), FULL_TORRENTS);
  assert.deepEqual(Object.keys(refused), ["failure reason"]);

  const udp = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
  try {
    const id = await udp.connect();
    const announce = (infoHash: Uint8Array, port: number) =>
      udp.request(announcePacket({ connectionId: id, infoHash, port, transactionId: port }));
    assert.equal(udpError(await announce(hash(101), 3000)), FULL_TORRENTS);
    // Stored torrents still take new peers up to the peer cap: 50 more.
    for (let i = 0; i < 50; i++) {
      assert.equal(udpError(await announce(hash(i % 10), 4000 + i)), null);
    }
    assert.equal(udpError(await announce(hash(0), 5000)), FULL_PEERS);
    const httpPeer = await httpAnnounce(base, hash(1), 5001);
    assert.equal(text(httpPeer["failure reason"]), FULL_PEERS);
    // Refreshes and stops of stored peers work when full; a stop makes room for a new peer.
    const refresh = await announce(hash(0), 4000);
    assert.equal(udpError(refresh), null);
    assert.equal(readU32(refresh!, 0), 1);
    // Leechers: the HTTP peer and the UDP peers 4000, 4010, ..., 4040; no seeders.
    assert.deepEqual([readU32(refresh!, 12), readU32(refresh!, 16)], [6, 0]);
    const stop = await httpAnnounce(base, hash(0), 1000, "stopped");
    assert.equal(stop["failure reason"], undefined);
    assert.equal(udpError(await announce(hash(0), 5002)), null);
    // The refused torrents were never stored.
    const scrape = await udp.request(scrapePacket(id, [hash(100), hash(101)]));
    assert.ok(scrape !== null);
    assert.equal(readU32(scrape, 0), 2);
    assert.deepEqual(Array.from(scrape.subarray(8)), new Array(24).fill(0));
  } finally {
    udp.close();
  }
  assert.equal(await metric(base, "otter_torrents"), 100);
  assert.equal(await metric(base, 'otter_peers{family="4"}'), 150);
  assert.equal(await metric(base, 'otter_store_refused_total{reason="torrents"}'), 2);
  assert.equal(await metric(base, 'otter_store_refused_total{reason="peers"}'), 2);
  assert.equal(await metric(base, "otter_store_evicted_torrents_total"), 0);
});

Deno.test("evict: a new torrent is served and an old one disappears from scrape", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-torrents",
    "100",
    "--when-full",
    "evict",
  ]);
  const base = otter.http[0];
  for (let i = 0; i < 100; i++) await httpAnnounce(base, hash(i), 1000 + i, "started");
  // The store's clock has whole seconds; let at least one pass before the recent announces.
  await new Promise((resolve) => setTimeout(resolve, 2200));
  for (let i = 80; i < 100; i++) await httpAnnounce(base, hash(i), 1000 + i);

  const udp = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
  try {
    const id = await udp.connect();
    for (let i = 0; i < 20; i++) {
      const torrent = hash(1000 + i);
      if (i % 2 === 0) {
        const reply = await httpAnnounce(base, torrent, 3000 + i, "started");
        assert.equal(reply["failure reason"], undefined);
        assert.equal(reply.incomplete, 1);
      } else {
        const reply = await udp.request(
          announcePacket({ connectionId: id, infoHash: torrent, port: 3000 + i }),
        );
        assert.equal(udpError(reply), null);
        assert.equal(readU32(reply!, 12), 1);
      }
    }
    // Which torrents are left: scrape in batches of up to 74 hashes.
    const present = async (seeds: number[]) => {
      const reply = await udp.request(scrapePacket(id, seeds.map(hash)));
      assert.ok(reply !== null && readU32(reply, 0) === 2);
      return seeds.filter((_, i) => readU32(reply, 8 + i * 12 + 8) > 0);
    };
    const range = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => from + i);
    const old = [...await present(range(0, 40)), ...await present(range(40, 80))];
    // 20 evictions, each of the least recently announced of 16 samples: old torrents.
    assert.equal(old.length, 60, `old torrents left: ${old.length}`);
    assert.deepEqual(await present(range(80, 100)), range(80, 100));
    assert.deepEqual(await present(range(1000, 1020)), range(1000, 1020));
  } finally {
    udp.close();
  }
  assert.equal(await metric(base, "otter_torrents"), 100);
  assert.equal(await metric(base, "otter_store_evicted_torrents_total"), 20);
  assert.equal(await metric(base, 'otter_store_refused_total{reason="torrents"}'), 0);
});

Deno.test("a warm restart under lower caps restores up to them and says how many it skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-caps-" });
  try {
    const state = `${dir}/state`;
    const listeners = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--state", state];
    const first = await startOtter(listeners);
    for (let i = 0; i < 30; i++) await httpAnnounce(first.http[0], hash(i), 1000 + i, "started");
    assert.equal((await first.stop()).code, 0);
    await using second = await startOtter([...listeners, "--max-torrents", "10"]);
    assert.equal(await metric(second.http[0], "otter_torrents"), 10);
    const line = second.stdout.find((l) => l.includes("not restored"));
    assert.equal(
      line,
      `state ${state}: 20 peers and peerless torrents not restored: over --max-torrents 10 / ` +
        "--max-peers 8000000",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Resident and peak resident bytes of a process (Linux /proc). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

const FLOOD_TORRENTS = 20_000;
const FLOOD_PEERS = 40_000;
const FLOOD_TOTAL = 200_000;

/**
 * Budgets for the flood test, from the caps. The store: twice its worst measured cost at the
 * caps, 180 B a single-peer torrent while the table grows and 50 B an IPv6 peer. RSS: otter's
 * idle RSS, plus what the runtime itself takes on under a UDP flood (JIT code, the V8 heap at
 * its working size, socket buffers; measured with the store at these caps: 25-27 MB on the fast
 * path, up to 63 MB on the portable one, whose per-datagram garbage the heap grows for before it
 * shrinks back), plus the store's budget.
 */
const STORE_BUDGET = 2 * (FLOOD_TORRENTS * 180 + FLOOD_PEERS * 50);
const RUNTIME_ALLOWANCE: Record<string, number> = { fast: 35e6, portable: 80e6 };

Deno.test({
  name: "a flood of distinct random info hashes stays within the caps and the RSS budget",
  // RSS comes from /proc.
  ignore: Deno.build.os !== "linux",
}, async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-torrents",
    String(FLOOD_TORRENTS),
    "--max-peers",
    String(FLOOD_PEERS),
    "--when-full",
    "evict",
  ]);
  const base = otter.http[0];
  const { hostname, port } = otter.udp[0];
  const idle = memoryOf(otter.pid);
  let polling = true;
  let polls = 0;
  let most = { torrents: 0, peers: 0, storeBytes: 0 };
  const poller = (async () => {
    while (polling) {
      const torrents = await metric(base, "otter_torrents");
      const peers = await metric(base, 'otter_peers{family="4"}');
      const storeBytes = await metric(base, "otter_store_bytes");
      most = {
        torrents: Math.max(most.torrents, torrents),
        peers: Math.max(most.peers, peers),
        storeBytes: Math.max(most.storeBytes, storeBytes),
      };
      polls++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  let result: FloodResult;
  try {
    // 120 s bounds the test (it took 13 s on an idle 2-core machine, 31 s on a loaded one); how
    // many replies come back in 10 s is bench/udp_flood_bench.ts's bar.
    result = await flood(hostname, port, FLOOD_TOTAL, 128, 120_000);
  } finally {
    polling = false;
    await poller;
  }
  const after = memoryOf(otter.pid);
  const evicted = await metric(base, "otter_store_evicted_torrents_total");
  const torrents = await metric(base, "otter_torrents");
  const peers = await metric(base, 'otter_peers{family="4"}');
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const budget = idle.rss + RUNTIME_ALLOWANCE[otter.udp[0].io] + STORE_BUDGET;
  const r = result;
  console.log(
    `flood: ${r.sent} sent, ${r.replies} replies in ${Math.round(r.ms)} ms (${r.lost} ` +
      `replies missing, ${r.sendFailed} not sent, errors ${
        JSON.stringify([...r.errors])
      })\n  store: at most ${most.torrents} torrents, ${most.peers} peers ` +
      `(${polls} polls), ${torrents}/${peers} at the end, ${evicted} evicted; its arrays at ` +
      `most ${mb(most.storeBytes)} MB (budget ${mb(STORE_BUDGET)} MB)\n  RSS (UDP io ` +
      `${otter.udp[0].io}): idle ${mb(idle.rss)} MB, end ${mb(after.rss)} MB, peak ` +
      `${mb(after.peak)} MB; budget ${mb(budget)} MB`,
  );
  const replies = r.replies;
  // Half of them are distinct new torrents: enough answered to pass the torrent cap twice over.
  assert.ok(replies >= 4 * FLOOD_TORRENTS, `only ${replies} of ${r.sent} announces answered`);
  assert.equal(r.errors.size, 0, "evict never refuses here");
  assert.ok(polls >= 5, `only ${polls} polls of /metrics during the flood`);
  assert.ok(most.torrents <= FLOOD_TORRENTS && torrents <= FLOOD_TORRENTS);
  assert.ok(most.peers <= FLOOD_PEERS && peers <= FLOOD_PEERS);
  assert.ok(evicted >= replies / 2 - FLOOD_TORRENTS, `only ${evicted} evictions`);
  assert.ok(most.storeBytes <= STORE_BUDGET, `store arrays reached ${mb(most.storeBytes)} MB`);
  assert.ok(after.peak <= budget, `peak RSS ${mb(after.peak)} MB over the budget ${mb(budget)} MB`);
});
