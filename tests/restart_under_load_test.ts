/**
 * Warm restart under load (issue 5): otter with --state is stopped (SIGTERM) and started again on
 * the same ports while UDP and HTTP clients keep announcing a known population over hundreds of
 * torrents. Afterwards every torrent has exactly the seeders, leechers and downloaded count it had
 * before the stop, the clients got answers from both processes, and the stop was prompt despite
 * open keep-alive connections.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { announcePacket, connectPacket, readU32, scrapePacket } from "./support/udpClient.ts";

const TORRENTS = 300;
const UDP_WORKERS = 6;
const RECEIVE_TIMEOUT_MS = 300;

function hashOf(t: number): Uint8Array {
  const h = new Uint8Array(20);
  new DataView(h.buffer).setUint32(0, 0x5eed0000 + t);
  for (let i = 4; i < 20; i++) h[i] = (t * 37 + i * 11) & 0xff;
  return h;
}

/** Torrent t has 1 + t % 8 peers (ports 20000..), the first min(t % 3, peers) of them seeders. */
function peersOf(t: number): number {
  return 1 + (t % 8);
}
function seedersOf(t: number): number {
  return Math.min(t % 3, peersOf(t));
}
interface Peer {
  torrent: number;
  port: number;
  seeder: boolean;
}
const POPULATION: Peer[] = [];
for (let t = 0; t < TORRENTS; t++) {
  for (let i = 0; i < peersOf(t); i++) {
    POPULATION.push({ torrent: t, port: 20000 + i, seeder: i < seedersOf(t) });
  }
}

/** One UDP socket whose replies are matched to requests by transaction id. */
class Client {
  readonly #conn: Deno.DatagramConn;
  readonly #target: Deno.NetAddr;
  readonly #waiting = new Map<number, (reply: Uint8Array) => void>();
  readonly #reading: Promise<void>;
  #closed = false;
  #nextTid = 1;

  constructor(port: number) {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#conn = conn;
    this.#target = { transport: "udp", hostname: "127.0.0.1", port };
    this.#reading = (async () => {
      while (!this.#closed) {
        try {
          const [data] = await conn.receive();
          if (data.length >= 8) this.#waiting.get(readU32(data, 4))?.(data);
        } catch {
          // Closed, or an ICMP error reported while otter was down: go on unless closed.
        }
      }
    })();
  }

  tid(): number {
    this.#nextTid = (this.#nextTid + 1) >>> 0 || 1;
    return this.#nextTid;
  }

  /** Sends and waits for the reply with the packet's transaction id; null after the timeout. */
  async request(packet: Uint8Array, timeoutMs = RECEIVE_TIMEOUT_MS): Promise<Uint8Array | null> {
    const tid = readU32(packet, 12);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reply = new Promise<Uint8Array | null>((resolve) => {
      this.#waiting.set(tid, resolve);
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      await this.#conn.send(packet, this.#target);
      return await reply;
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
      this.#waiting.delete(tid);
    }
  }

  async connect(): Promise<Uint8Array | null> {
    const reply = await this.request(connectPacket(this.tid()));
    return reply !== null && reply.length === 16 && readU32(reply, 0) === 0
      ? reply.slice(8, 16)
      : null;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#conn.close();
    await this.#reading;
  }
}

interface Tally {
  ok: number;
  errors: number;
  timeouts: number;
}

/** Announces `peer` once; 'ok', 'error' (action 3: reconnect) or 'timeout'. */
async function announce(
  client: Client,
  id: Uint8Array,
  peer: Peer,
  event: number,
): Promise<"ok" | "error" | "timeout"> {
  const reply = await client.request(announcePacket({
    connectionId: id,
    transactionId: client.tid(),
    infoHash: hashOf(peer.torrent),
    port: peer.port,
    event,
    left: peer.seeder ? 0 : 1000,
    numwant: 20,
  }));
  if (reply === null) return "timeout";
  if (readU32(reply, 0) === 1 && reply.length >= 20 && (reply.length - 20) % 6 === 0) return "ok";
  return "error";
}

/** Fills the population: every peer starts, then the seeders complete. Retries what is lost. */
async function fill(client: Client): Promise<void> {
  const deadline = Date.now() + 60_000;
  let id: Uint8Array | null = null;
  const steps: [Peer, number][] = [
    ...POPULATION.map((p): [Peer, number] => [{ ...p, seeder: false }, 2]),
    ...POPULATION.filter((p) => p.seeder).map((p): [Peer, number] => [p, 1]),
  ];
  for (const [peer, event] of steps) {
    for (;;) {
      assert.ok(Date.now() < deadline, "fill took over 60 s");
      id ??= await client.connect();
      if (id === null) continue;
      const outcome = await announce(client, id, peer, event);
      if (outcome === "ok") break;
      id = null;
    }
  }
}

/** [seeders, downloaded, leechers] of every torrent, over UDP scrapes of 74 hashes. */
async function scrapeAll(client: Client): Promise<number[][]> {
  const out: number[][] = [];
  for (let first = 0; first < TORRENTS; first += 74) {
    const hashes: Uint8Array[] = [];
    for (let t = first; t < Math.min(first + 74, TORRENTS); t++) hashes.push(hashOf(t));
    const id = await client.connect();
    assert.ok(id, "connect for scrape");
    const reply = await client.request(scrapePacket(id, hashes, client.tid()), 10_000);
    assert.ok(reply && readU32(reply, 0) === 2, "scrape reply");
    assert.equal(reply.length, 8 + 12 * hashes.length);
    for (let i = 0; i < hashes.length; i++) {
      out.push([0, 4, 8].map((o) => readU32(reply, 8 + 12 * i + o)));
    }
  }
  return out;
}

function expected(): number[][] {
  const out: number[][] = [];
  for (let t = 0; t < TORRENTS; t++) {
    out.push([seedersOf(t), seedersOf(t), peersOf(t) - seedersOf(t)]);
  }
  return out;
}

/** Re-announces random peers of the population until `running()` is false. */
async function udpWorker(port: number, running: () => boolean, tally: Tally): Promise<void> {
  const client = new Client(port);
  let id: Uint8Array | null = null;
  try {
    while (running()) {
      if (id === null) {
        id = await client.connect();
        if (id === null) {
          tally.timeouts++;
          continue;
        }
      }
      const peer = POPULATION[Math.floor(Math.random() * POPULATION.length)];
      const outcome = await announce(client, id, peer, 0);
      if (outcome === "ok") tally.ok++;
      else {
        if (outcome === "error") tally.errors++;
        else tally.timeouts++;
        id = null; // a restarted otter no longer knows the old connection id
      }
    }
  } finally {
    await client.close();
  }
}

function percent(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

/** The same peers over HTTP (keep-alive fetch); failures while otter is down are counted. */
async function httpWorker(base: () => string, running: () => boolean, tally: Tally) {
  const peerId = "-OT0001-".padEnd(20, "r");
  while (running()) {
    const peer = POPULATION[Math.floor(Math.random() * POPULATION.length)];
    const url = `${base()}/announce?info_hash=${percent(hashOf(peer.torrent))}` +
      `&peer_id=${peerId}&port=${peer.port}&uploaded=0&downloaded=0` +
      `&left=${peer.seeder ? 0 : 1000}&compact=1&numwant=20`;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      const body = new Uint8Array(await response.arrayBuffer());
      const text = new TextDecoder().decode(body);
      if (response.ok && text.startsWith("d") && !text.includes("failure reason")) tally.ok++;
      else tally.errors++;
    } catch {
      tally.timeouts++;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

Deno.test("otter --state: a restart under announce load loses no swarm", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-restart-" });
  const path = `${dir}/otter.state`;
  const udp: Tally = { ok: 0, errors: 0, timeouts: 0 };
  const http: Tally = { ok: 0, errors: 0, timeouts: 0 };
  let loading = true;
  const running = () => loading;
  const workers: Promise<void>[] = [];
  const first = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--state",
    path,
  ]);
  let second: Awaited<ReturnType<typeof startOtter>> | undefined;
  try {
    const udpPort = first.udp[0].port;
    let httpBase = first.http[0];
    const setup = new Client(udpPort);
    let before: number[][];
    try {
      await fill(setup);
      before = await scrapeAll(setup);
    } finally {
      await setup.close();
    }
    assert.deepEqual(before, expected(), "the fill made the population");

    for (let w = 0; w < UDP_WORKERS; w++) workers.push(udpWorker(udpPort, running, udp));
    workers.push(httpWorker(() => httpBase, running, http));
    // The load runs (a loaded machine takes longer to get there) before otter stops under it.
    const loadDeadline = Date.now() + 30_000;
    while (udp.ok <= 100 || http.ok <= 10) {
      assert.ok(
        Date.now() < loadDeadline,
        `load did not get going: ${JSON.stringify({ udp, http })}`,
      );
      await sleep(50);
    }

    const stopStarted = performance.now();
    const stopped = await first.stop();
    const stopMs = performance.now() - stopStarted;
    assert.equal(stopped.code, 0, stopped.stderr);
    // Prompt: it does not wait for keep-alive clients to go idle (30 s), however loaded the machine.
    assert.ok(stopMs < 15_000, `stop took ${stopMs} ms with clients connected`);
    const saved = first.stdout.filter((l) => l.startsWith("state ")).at(-1) ?? "";
    assert.match(saved, new RegExp(`saved ${TORRENTS} torrents, ${POPULATION.length} peers`));

    await sleep(300); // clients keep sending into the void
    second = await startOtter([
      "--http",
      first.http[0].replace("http://", ""),
      "--udp",
      `127.0.0.1:${udpPort}`,
      "--state",
      path,
    ]);
    httpBase = second.http[0];
    const restored = second.stdout.find((l) => l.startsWith("state ")) ?? "";
    assert.match(
      restored,
      new RegExp(`restored ${TORRENTS} torrents, ${POPULATION.length} peers \\(0 expired`),
    );
    const restartedAt = { udp: udp.ok, http: http.ok };
    const deadline = Date.now() + 30_000;
    while (udp.ok < restartedAt.udp + 500 || http.ok < restartedAt.http + 50) {
      assert.ok(Date.now() < deadline, `load did not resume: ${JSON.stringify({ udp, http })}`);
      await sleep(50);
    }
    loading = false;
    await Promise.all(workers);
    workers.length = 0;
    assert.ok(udp.timeouts + udp.errors > 0, "the UDP clients saw the restart");

    const check = new Client(udpPort);
    try {
      assert.deepEqual(await scrapeAll(check), before, "every swarm as before the stop");
    } finally {
      await check.close();
    }
    console.log(
      `restart under load: stop ${Math.round(stopMs)} ms; UDP ${JSON.stringify(udp)}, ` +
        `HTTP ${JSON.stringify(http)}; ${POPULATION.length} peers in ${TORRENTS} torrents kept`,
    );
    const end = await second.stop();
    assert.equal(end.code, 0, end.stderr);
  } finally {
    loading = false;
    await Promise.all(workers);
    await first.stop();
    await second?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
