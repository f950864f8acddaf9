/**
 * Full scrape: over real sockets (every torrent with its counts, keys in byte order, gzip decoded
 * by the system's `gzip -d`, caching for --full-scrape-every, one build for a flood, 403 with
 * --no-full-scrape), and the builder on a SwarmTable directly (200k torrents with shared
 * prefixes: correct, sorted, chunked, and sliced so timers run between slices; a store changing
 * under the build still yields valid output).
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { bdecode, dict, latin1 } from "./support/bencode.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { acceptsGzip } from "../src/protocol/acceptEncoding.ts";
import { buildFullScrape, CHUNK_BYTES, type FullScrapeBuild } from "../src/observe/fullScrape.ts";
import { Slicer } from "../src/store/slicer.ts";
import { percentEscape } from "./support/torrent.ts";

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function indexOf(haystack: Uint8Array, needle: string, from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle.charCodeAt(j)) continue outer;
    }
    return i;
  }
  return -1;
}

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/**
 * GET over a plain TCP socket, so the body arrives exactly as sent (fetch would undo gzip).
 * Handles Content-Length and chunked bodies; gives up after `timeoutMs`.
 */
async function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<RawResponse> {
  const url = new URL(base);
  const conn = await Deno.connect({
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port),
  });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    let head = `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    await conn.write(new TextEncoder().encode(head + "\r\n"));
    const parts: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      parts.push(buffer.slice(0, n));
    }
    const all = concat(parts);
    const end = indexOf(all, "\r\n\r\n");
    assert.ok(end > 0, "no end of headers");
    const lines = latin1(all.subarray(0, end)).split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const map = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    let body = all.subarray(end + 4);
    if (map.get("transfer-encoding") === "chunked") {
      const chunks: Uint8Array[] = [];
      let o = 0;
      for (;;) {
        const lineEnd = indexOf(body, "\r\n", o);
        const size = parseInt(latin1(body.subarray(o, lineEnd)), 16);
        if (size === 0) break;
        chunks.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
        o = lineEnd + 2 + size + 2;
      }
      body = concat(chunks);
    } else if (map.has("content-length")) {
      assert.equal(body.length, Number(map.get("content-length")), "body length");
    }
    return { status, headers: map, body };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer or the server
    }
  }
}

/** Decompresses with the system's gzip, an implementation independent of ours. */
async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("gzip", {
    args: ["-d", "-c"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(data);
  await writer.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

interface Swarm {
  hash: Uint8Array;
  leechers: number;
  seeders: number;
}

function makeHash(fill: (i: number) => number): Uint8Array {
  return new Uint8Array(20).map((_, i) => fill(i) & 0xff);
}

/** Torrents whose hashes test the byte order: extremes, shared prefixes, a last-byte difference. */
const SWARMS: Swarm[] = [
  { hash: makeHash(() => 0xff), leechers: 1, seeders: 0 },
  { hash: makeHash(() => 0x00), leechers: 0, seeders: 2 },
  { hash: makeHash((i) => (i < 8 ? 0x41 : i)), leechers: 2, seeders: 1 },
  { hash: makeHash((i) => (i < 8 ? 0x41 : 100 - i)), leechers: 1, seeders: 1 },
  { hash: makeHash((i) => (i === 19 ? 1 : 0x80)), leechers: 3, seeders: 0 },
  { hash: makeHash((i) => (i === 19 ? 2 : 0x80)), leechers: 0, seeders: 1 },
  { hash: makeHash((i) => i * 13 + 7), leechers: 1, seeders: 2 },
];

let nextPort = 20000;

async function announce(base: string, hash: Uint8Array, seeder: boolean): Promise<void> {
  const port = nextPort++;
  const url = `${base}/announce?info_hash=${percentEscape(hash)}&peer_id=-OT0001-${
    String(port).padStart(12, "0")
  }&port=${port}&uploaded=0&downloaded=0&compact=1&left=${seeder ? 0 : 100}${
    seeder ? "&event=completed" : "&event=started"
  }`;
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = dict(bdecode(new Uint8Array(await response.arrayBuffer())));
  assert.equal(body["failure reason"], undefined);
}

async function populate(base: string, swarms: Swarm[]): Promise<void> {
  for (const s of swarms) {
    for (let i = 0; i < s.leechers; i++) await announce(base, s.hash, false);
    for (let i = 0; i < s.seeders; i++) await announce(base, s.hash, true);
  }
}

/** Checks a full scrape body: exactly `swarms`, with their counts, keys in raw byte order. */
function checkBody(body: Uint8Array, swarms: Swarm[]): void {
  const files = dict(dict(bdecode(body)).files);
  const keys = Object.keys(files);
  assert.equal(keys.length, swarms.length);
  const bytes = keys.map((k) => Uint8Array.from(k, (c) => c.charCodeAt(0)));
  for (let i = 1; i < bytes.length; i++) {
    assert.ok(compareBytes(bytes[i - 1], bytes[i]) < 0, `key ${i} out of order`);
  }
  for (const s of swarms) {
    assert.deepEqual(dict(files[latin1(s.hash)]), {
      complete: s.seeders,
      downloaded: s.seeders,
      incomplete: s.leechers,
    });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("full scrape over HTTP: all torrents sorted, gzip, cached per --full-scrape-every", async () => {
  // Room for the requests below to come within one build's life on a loaded machine.
  const every = 5;
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--full-scrape-every",
    String(every),
  ]);
  const base = otter.http[0];
  await populate(base, SWARMS);

  const started = performance.now();
  const plain = await rawGet(base, "/scrape");
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get("content-encoding"), undefined);
  assert.equal(plain.headers.get("content-type"), "application/octet-stream");
  checkBody(plain.body, SWARMS);

  const zipped = await rawGet(base, "/scrape", { "Accept-Encoding": "br, gzip;q=0.8" });
  assert.equal(zipped.status, 200);
  assert.equal(zipped.headers.get("content-encoding"), "gzip");
  assert.deepEqual([...zipped.body.subarray(0, 2)], [0x1f, 0x8b], "gzip magic");
  assert.deepEqual(await gunzip(zipped.body), plain.body);

  const refused = await rawGet(base, "/scrape", { "Accept-Encoding": "gzip;q=0, identity" });
  assert.equal(refused.headers.get("content-encoding"), undefined);
  assert.deepEqual(refused.body, plain.body);

  // A new torrent is not in the cached build...
  const late: Swarm = { hash: makeHash((i) => 0x30 + i), leechers: 1, seeders: 0 };
  await populate(base, [late]);
  const cached = await rawGet(base, "/scrape");
  assert.ok(
    performance.now() - started < every * 1000,
    "machine too slow for this check: the cache expired before the second request",
  );
  assert.deepEqual(cached.body, plain.body);

  // ...but is once the build has aged past --full-scrape-every.
  await sleep(every * 1000 - (performance.now() - started) + 200);
  const fresh = await rawGet(base, "/scrape");
  checkBody(fresh.body, [...SWARMS, late]);
  const freshZipped = await rawGet(base, "/scrape", { "Accept-Encoding": "gzip" });
  assert.deepEqual(await gunzip(freshZipped.body), fresh.body);
});

Deno.test("full scrape: a flood of requests shares one build; an empty tracker gives d5:filesdee", async () => {
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const base = otter.http[0];
  const bodies = await Promise.all(
    Array.from({ length: 25 }, async () => {
      const r = await fetch(`${base}/scrape`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(r.status, 200);
      return new Uint8Array(await r.arrayBuffer());
    }),
  );
  for (const body of bodies) assert.equal(latin1(body), "d5:filesdee");
  const stats = await fetch(`${base}/stats?mode=fscr&format=json`);
  const fscr = (await stats.json()).fscr;
  assert.equal(fscr.builds, 1);
  assert.equal(fscr.served, 25);
});

Deno.test("full scrape: --no-full-scrape answers 403 with a plain-text reason", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--no-full-scrape",
  ]);
  const base = otter.http[0];
  await populate(base, SWARMS.slice(0, 1));
  const r = await fetch(`${base}/scrape`, { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 403);
  assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
  assert.match(await r.text(), /full scrape is disabled/);
  // A normal scrape still works.
  const one = await fetch(`${base}/scrape?info_hash=${percentEscape(SWARMS[0].hash)}`);
  assert.equal(one.status, 200);
  assert.ok(dict(dict(bdecode(new Uint8Array(await one.arrayBuffer()))).files));
});

Deno.test("acceptsGzip reads Accept-Encoding with q-values", () => {
  assert.equal(acceptsGzip(null), false);
  assert.equal(acceptsGzip(""), false);
  assert.equal(acceptsGzip("gzip"), true);
  assert.equal(acceptsGzip("deflate, GZIP"), true);
  assert.equal(acceptsGzip("x-gzip"), true);
  assert.equal(acceptsGzip("br;q=1.0, gzip;q=0.5"), true);
  assert.equal(acceptsGzip("gzip;q=0"), false);
  assert.equal(acceptsGzip("gzip; q=0.000"), false);
  assert.equal(acceptsGzip("*"), true);
  assert.equal(acceptsGzip("*;q=0"), false);
  assert.equal(acceptsGzip("gzip;q=0, *"), false);
  assert.equal(acceptsGzip("identity, br"), false);
  assert.equal(acceptsGzip("gzip;q=bogus"), false);
});

// ---------------------------------------------------------------- the builder on a store

/**
 * Walks a plain full scrape body; checks the layout, strictly ascending keys, and calls `entry`
 * per torrent. Returns the number of torrents.
 */
function walkBody(
  body: Uint8Array,
  entry: (body: Uint8Array, hashAt: number, counts: number[]) => void,
): number {
  assert.equal(latin1(body.subarray(0, 9)), "d5:filesd");
  let o = 9;
  let previous = -1;
  let n = 0;
  const readInt = (prefix: string): number => {
    assert.equal(latin1(body.subarray(o, o + prefix.length)), prefix, `at ${o}`);
    o += prefix.length;
    const end = body.indexOf(0x65, o);
    const value = Number(latin1(body.subarray(o, end)));
    o = end + 1;
    return value;
  };
  while (body[o] !== 0x65) {
    assert.equal(latin1(body.subarray(o, o + 3)), "20:", `at ${o}`);
    const hashAt = o + 3;
    if (previous >= 0) {
      assert.ok(
        compareBytes(body.subarray(previous, previous + 20), body.subarray(hashAt, hashAt + 20)) <
          0,
        `entry ${n} not above the one before`,
      );
    }
    previous = hashAt;
    o = hashAt + 20;
    const complete = readInt("d8:completei");
    const downloaded = readInt("10:downloadedi");
    const incomplete = readInt("10:incompletei");
    assert.equal(body[o], 0x65);
    o++;
    entry(body, hashAt, [complete, downloaded, incomplete]);
    n++;
  }
  assert.equal(o, body.length - 2);
  assert.equal(latin1(body.subarray(o)), "ee");
  return n;
}

async function gunzipStream(chunks: Uint8Array[]): Promise<Uint8Array> {
  const stream = new Blob(chunks as BlobPart[]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function checkChunks(build: FullScrapeBuild): void {
  for (const chunk of [...build.plain, ...build.gzip]) {
    assert.ok(chunk.length > 0 && chunk.length <= CHUNK_BYTES, `chunk of ${chunk.length}`);
  }
  assert.equal(build.plain.reduce((n, c) => n + c.length, 0), build.plainBytes);
  assert.equal(build.gzip.reduce((n, c) => n + c.length, 0), build.gzipBytes);
}

Deno.test("full scrape builder: 200k torrents, correct and sorted, in slices with timers between", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  const hash = new Uint8Array(20);
  const address = new Uint8Array([10, 0, 0, 0]);
  const out = new Uint8Array(0);
  const total = 200_000;
  for (let i = 0; i < total; i++) {
    crypto.getRandomValues(hash);
    // One in ten shares its first 12 bytes with the others of its kind, one in a hundred its
    // first 18: the sort must go past the first word and down to the last bytes.
    if (i % 10 === 0) hash.fill(0x5a, 0, 12);
    if (i % 100 === 0) {
      hash.fill(0xa5, 0, 18);
      hash[18] = i / 100 >> 8;
      hash[19] = i / 100;
    }
    address[2] = i >> 8;
    address[3] = i;
    store.announce(hash, 0, 4, address, 0, 6881, i % 3 === 0 ? 1 : 2, i % 3 === 0, 0, 5, out, 0);
    if (i % 7 === 0) {
      address[1] = 1;
      store.announce(hash, 0, 4, address, 0, 6882, 2, false, 0, 5, out, 0);
      address[1] = 0;
    }
  }
  const torrents = store.torrents;
  assert.equal(torrents, total);

  // Timers run between the slices while the build goes on: a build that held the event loop
  // throughout would let none run. How long each slice holds it is measured, against a bar, by
  // bench/full_scrape_bench.ts.
  let building = true;
  let timerTurns = 0;
  const turn = () => {
    if (!building) return;
    timerTurns++;
    setTimeout(turn, 0);
  };
  setTimeout(turn, 0);
  const build = await buildFullScrape(store, new Slicer());
  building = false;
  checkChunks(build);
  assert.equal(build.torrents, torrents);

  const plain = concat(build.plain);
  const r = store.result;
  const n = walkBody(plain, (body, at, counts) => {
    assert.ok(store.scrape(body, at), "a torrent the store does not know");
    assert.deepEqual(counts, [r.complete, r.downloaded, r.incomplete]);
  });
  assert.equal(n, torrents);
  assert.deepEqual(await gunzipStream(build.gzip), plain);

  assert.ok(build.slices > 5, `the build was not sliced: ${build.slices} slice(s)`);
  assert.ok(timerTurns > 5, `timers ran ${timerTurns} times during ${build.slices} slices`);
});

Deno.test("full scrape builder: a store changing during the build still gives valid output", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  const address = new Uint8Array([10, 0, 0, 1]);
  const out = new Uint8Array(0);
  const hashOf = (i: number) => makeHash((b) => (b < 4 ? (i >>> (8 * (3 - b))) : i * 31 + b));
  for (let i = 0; i < 20_000; i++) {
    store.announce(hashOf(i), 0, 4, address, 0, 6881, 2, false, 0, 5, out, 0);
  }
  // Between every slice, stop some torrents (rows shift back into freed slots) and add more
  // (the table grows, and the copy restarts).
  let next = 20_000;
  let stopped = 0;
  let running = true;
  const churn = () => {
    if (!running) return;
    for (let k = 0; k < 50; k++) {
      store.announce(hashOf(stopped), 0, 4, address, 0, 6881, 3, false, 0, 5, out, 0);
      stopped += 3;
      store.announce(hashOf(next++), 0, 4, address, 0, 6881, 2, false, 0, 5, out, 0);
    }
    setTimeout(churn, 0);
  };
  setTimeout(churn, 0);
  let build: FullScrapeBuild;
  try {
    build = await buildFullScrape(store, new Slicer(0)); // pause at every check
  } finally {
    running = false;
  }
  assert.ok(stopped > 0, "the store did not change during the build");
  checkChunks(build);
  const n = walkBody(concat(build.plain), () => {});
  assert.equal(n, build.torrents);
  assert.ok(n > 10_000 && n <= next, `${n} torrents`);
});
