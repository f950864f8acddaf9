/**
 * Fuzzes a running otter over real sockets: mutated and random datagrams to both UDP I/O paths
 * (fast FFI and portable), mutated HTTP requests through fetch, and raw TCP junk (broken request
 * lines, raw binary, oversized and malformed headers, bad methods, pipelining, binary noise).
 * Every UDP reply must follow BEP 15 (right action and transaction id, no amplification); every
 * HTTP reply must have the status docs/protocols.md gives, never a 500 (a handler exception), and a 200 from
 * announce or scrape must be canonical bencode. Afterwards otter must still answer a valid
 * announce correctly, must not have exited, must not have logged an error, and must stop with
 * code 0. Seeded: OTTER_FUZZ_SEED replays; every loop and read has a deadline.
 */
import assert from "node:assert/strict";
import {
  classifyHttpBody,
  decodeBencodeOracle,
  expectHttpStatus,
  expectUdp,
  fuzzSeed,
  getU32,
  hex,
  mutateBytes,
  Rng,
  shown,
  type UdpOracleContext,
  udpReplyProblem,
} from "./support/fuzz.ts";
import {
  HttpRequestMaker,
  PACKET_CAPACITY,
  REPLY_CAPACITY,
  UdpPacketMaker,
} from "./support/fuzzTrackers.ts";
import { type OtterProcess, startOtter } from "./support/otterProcess.ts";
import { announcePacket, connectPacket } from "./support/udpClient.ts";

const SEED = fuzzSeed(0x0dd5eed);
const LOOPBACK = [127, 0, 0, 1];
/**
 * A status otter may send: anything but 500 (what a handler exception turns into) and the other
 * server errors; 501, 503 and 505 (HTTP/2 and later) are refusals, not failures.
 */
function serverStatusOk(status: number): boolean {
  return status >= 100 && status < 600 && (status < 500 || [501, 503, 505].includes(status));
}

/** Raw TCP exchanges in flight at once. */
const RAW_PARALLEL = 40;
const INTERVAL = 1800;

function hashPool(rng: Rng): (out: Uint8Array, offset: number) => number {
  const pool = rng.bytes(16 * 20);
  return (out, offset) => {
    if (rng.chance(0.1)) {
      rng.fill(out, offset, 20);
      return -1;
    }
    const i = rng.int(16);
    out.set(pool.subarray(i * 20, i * 20 + 20), offset);
    return i;
  };
}

/** Watches an otter: did it exit, and what did it say on stderr? */
function watch(otter: OtterProcess) {
  let exited = false;
  otter.exited.then(() => exited = true);
  return {
    assertHealthy(what: string) {
      assert.ok(!exited, `otter exited during ${what}: ${otter.stderr}`);
      assert.doesNotMatch(otter.stderr, /error|uncaught|panic|exception/i, otter.stderr);
    },
  };
}

/** A UDP socket whose datagrams are queued by one reader, so waits can time out cleanly. */
class UdpPeer {
  readonly conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  readonly #queue: Uint8Array[] = [];
  #wake: (() => void) | null = null;
  readonly #reading: Promise<void>;

  constructor(readonly target: Deno.NetAddr) {
    this.#reading = (async () => {
      try {
        for (;;) {
          const [data] = await this.conn.receive();
          this.#queue.push(data);
          this.#wake?.();
        }
      } catch {
        // closed
      }
    })();
  }

  get port(): number {
    return (this.conn.addr as Deno.NetAddr).port;
  }

  send(packet: Uint8Array): Promise<number> {
    return this.conn.send(packet, this.target);
  }

  /** The next datagram, or null after `ms`. */
  async next(ms: number): Promise<Uint8Array | null> {
    const deadline = Date.now() + ms;
    while (this.#queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
    return this.#queue.shift()!;
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
    await this.#reading;
  }
}

/** Datagrams each UDP fuzz sends at the least. */
const MIN_DATAGRAMS = 300;

/** Sends mutated datagrams one at a time; checks each reply (or its absence) at once. */
async function fuzzUdp(otter: OtterProcess, seed: number, ms: number): Promise<number> {
  const rng = new Rng(seed);
  const target: Deno.NetAddr = {
    transport: "udp",
    hostname: otter.udp[0].hostname,
    port: otter.udp[0].port,
  };
  const peer = new UdpPeer(target);
  const ids: Uint8Array[] = [];
  const ctx: UdpOracleContext = {
    idValid: (p) => ids.some((id) => id.every((b, i) => p[i] === b)),
    allows: () => true,
    defaultNumwant: 50,
    maxNumwant: 200,
    replyCapacity: REPLY_CAPACITY,
    family: 4,
  };
  const make = new UdpPacketMaker(rng, hashPool(rng), new Uint8Array(PACKET_CAPACITY + 600));
  const address = Uint8Array.from(LOOPBACK);
  let sent = 0;
  try {
    const deadline = performance.now() + ms;
    // At least MIN_DATAGRAMS however busy the machine (it then takes longer), more on a fast one.
    while (sent < MIN_DATAGRAMS || (performance.now() < deadline && sent < 4000)) {
      const id = ids.at(-1) ?? null;
      const r = rng.int(100);
      let length: number;
      if (r < 8) length = make.junk();
      else if (r < 16 || id === null) length = make.connect();
      else if (r < 60) length = make.announce(id);
      else if (r < 82) length = make.scrape(id);
      else if (r < 90) length = rng.chance(0.5) ? make.announce(null) : make.scrape(null);
      else length = make.otherAction(id);
      if (rng.chance(0.3)) length = make.mutate(length);
      if (rng.chance(0.01)) {
        // Longer than otter's receive slot: ignored, whatever it holds.
        length = PACKET_CAPACITY + rng.range(1, 600);
        rng.fill(make.packet, 16, length - 16);
      }
      const packet = make.packet.slice(0, length);
      const expect = length > PACKET_CAPACITY ? { kind: "drop" as const } : expectUdp(
        packet,
        length,
        ctx,
      );
      await peer.send(packet);
      sent++;
      if (expect.kind === "drop") continue; // a stray reply shows up at the next wait
      const reply = await peer.next(3000);
      const problem = reply === null
        ? `expected ${expect.kind}, got nothing in 3 s`
        : udpReplyProblem(packet, length, reply, reply.length, expect, ctx, {
          interval: INTERVAL,
          address,
          port: (packet[96] << 8) | packet[97],
        });
      if (problem !== null) {
        throw new Error(
          `UDP datagram ${sent} to ${otter.udp[0].io} I/O (seed ${seed}): ${problem}\n` +
            `  request (${length} bytes): ${hex(packet)}\n  reply: ${reply ? hex(reply) : "none"}`,
        );
      }
      if (expect.kind === "connect") ids.push(reply!.slice(8, 16));
    }
    const stray = await peer.next(300);
    assert.equal(stray, null, `a reply nobody asked for: ${stray ? hex(stray) : ""}`);
  } finally {
    await peer.close();
  }
  return sent;
}

/** A valid UDP announce of `hash` from a fresh socket; returns the reply's peers. */
async function udpAnnounce(otter: OtterProcess, hash: Uint8Array, port: number) {
  const peer = new UdpPeer({ transport: "udp", hostname: "127.0.0.1", port: otter.udp[0].port });
  try {
    await peer.send(connectPacket(77));
    const connected = await peer.next(3000);
    assert.ok(connected !== null && connected.length === 16 && getU32(connected, 4) === 77);
    await peer.send(
      announcePacket({
        connectionId: connected.slice(8, 16),
        transactionId: 78,
        infoHash: hash,
        port,
      }),
    );
    const reply = await peer.next(3000);
    assert.ok(reply !== null, "no announce reply");
    assert.equal(getU32(reply, 0), 1, `action ${getU32(reply, 0)}: ${hex(reply)}`);
    assert.equal(getU32(reply, 4), 78);
    const peers: string[] = [];
    for (let o = 20; o + 6 <= reply.length; o += 6) {
      peers.push(`${reply.slice(o, o + 4).join(".")}:${(reply[o + 4] << 8) | reply[o + 5]}`);
    }
    return peers;
  } finally {
    await peer.close();
  }
}

Deno.test(`fuzz over sockets: UDP datagrams, fast and portable I/O (seed ${SEED})`, async () => {
  await using fast = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  await using portable = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--udp-io",
    "portable",
  ]);
  const watches = [watch(fast), watch(portable)];
  const counts = await Promise.all([fuzzUdp(fast, SEED, 2500), fuzzUdp(portable, SEED + 1, 2500)]);
  console.log(`  ${counts[0]} datagrams (${fast.udp[0].io} I/O), ${counts[1]} (portable)`);
  for (const [k, otter] of [fast, portable].entries()) {
    const hash = new Rng(SEED + 9).bytes(20);
    await udpAnnounce(otter, hash, 40001);
    assert.deepEqual(await udpAnnounce(otter, hash, 40002), ["127.0.0.1:40001"]);
    watches[k].assertHealthy("the UDP fuzz");
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
  }
});

// ------------------------------------------------------------------ HTTP

/** Parsed HTTP/1.x responses from a byte stream, as far as they are complete. */
interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");

function indexOfBytes(hay: Uint8Array, needle: number[], from: number): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** `head(i)`: was request i a HEAD (its response has a length but no body)? */
function parseResponses(
  bytes: Uint8Array,
  closed: boolean,
  head: (i: number) => boolean,
): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = indexOfBytes(bytes, [13, 10, 13, 10], at);
    if (end < 0) break;
    const lines = latin1(bytes.subarray(at, end)).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`not an HTTP/1 status line: ${shown(lines[0])}`);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    let p = end + 4;
    let body: Uint8Array;
    if (m[1].startsWith("1")) {
      at = p; // 100 Continue and the like: the real response follows
      continue;
    }
    if (head(out.length)) {
      body = new Uint8Array(0);
    } else if (headers.has("content-length")) {
      const n = Number(headers.get("content-length"));
      if (p + n > bytes.length) break;
      body = bytes.slice(p, p + n);
      p += n;
    } else if (headers.get("transfer-encoding")?.includes("chunked")) {
      const parts: number[] = [];
      for (;;) {
        const eol = indexOfBytes(bytes, [13, 10], p);
        if (eol < 0) return out;
        const size = parseInt(latin1(bytes.subarray(p, eol)), 16);
        p = eol + 2;
        if (size === 0) {
          p += 2;
          break;
        }
        if (p + size > bytes.length) return out;
        parts.push(...bytes.subarray(p, p + size));
        p += size + 2;
      }
      body = Uint8Array.from(parts);
    } else if (closed) {
      body = bytes.slice(p);
      p = bytes.length;
    } else break;
    out.push({ status: Number(m[1]), headers, body });
    at = p;
  }
  return out;
}

/** Writes `chunks` to a fresh connection and reads until EOF, `responses` replies, or `ms`. */
async function rawExchange(
  port: number,
  chunks: Uint8Array[],
  responses: number,
  head: (i: number) => boolean,
  ms: number,
): Promise<{ responses: RawResponse[]; bytes: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const deadline = Date.now() + ms;
  const received: number[] = [];
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    for (const chunk of chunks) {
      try {
        await conn.write(chunk);
      } catch {
        break; // the server may hang up before reading everything: fine
      }
    }
    const buf = new Uint8Array(65536);
    while (Date.now() < deadline && received.length < 1 << 20) {
      let n: number | null;
      try {
        n = await Promise.race([conn.read(buf), expired]);
      } catch {
        closed = true; // reset by the server
        break;
      }
      if (n === null) {
        closed = Date.now() < deadline;
        break;
      }
      for (let i = 0; i < n; i++) received.push(buf[i]);
      if (parseResponses(Uint8Array.from(received), false, head).length >= responses) break;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
  const bytes = Uint8Array.from(received);
  return { responses: parseResponses(bytes, closed, head), bytes };
}

/** A request target as raw bytes: chars above 0xff become their low byte (binary junk). */
const bytesOf = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

function request(method: string, target: string, headers: string[] = [], close = true): string {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", ...headers];
  if (close) lines.push("Connection: close");
  return lines.join("\r\n") + "\r\n\r\n";
}

const VALID_QUERY = `info_hash=${"%CD".repeat(20)}&peer_id=${"-FZ0001-".padEnd(20, "z")}` +
  "&port=5555&left=0";

/** Hand-made raw requests: [name, bytes, responses to wait for]. */
function rawCases(rng: Rng): [string, Uint8Array[], number][] {
  const cases: [string, Uint8Array[], number][] = [];
  const add = (name: string, data: string | Uint8Array, responses = 1) =>
    cases.push([name, [typeof data === "string" ? bytesOf(data) : data], responses]);
  let binary = "";
  for (let i = 0; i < 20; i++) {
    let c = rng.int(256);
    if (c === 32 || c === 13 || c === 10 || c === 35) c = 0x80;
    binary += String.fromCharCode(c);
  }
  add("raw binary info_hash", request("GET", `/announce?info_hash=${binary}&port=1&peer_id=x`));
  add("valid", request("GET", `/announce?${VALID_QUERY}`));
  add("HEAD", request("HEAD", `/announce?${VALID_QUERY}`));
  add("absolute-form target", request("GET", `http://127.0.0.1/announce?${VALID_QUERY}`));
  add("asterisk", request("OPTIONS", "*"));
  add("bad method", request("BREW", "/announce"));
  add("lower-case method", request("get", "/announce"));
  add("method with junk", request("G\u0001T", "/announce"));
  add("no target", "GET HTTP/1.1\r\nHost: x\r\n\r\n");
  add("two spaces", "GET  /announce  HTTP/1.1\r\nHost: x\r\n\r\n");
  add("relative target", request("GET", "announce?x=1"));
  add("HTTP/1.0 without host", `GET /announce?${VALID_QUERY} HTTP/1.0\r\n\r\n`);
  add("HTTP/9.9", `GET /announce HTTP/9.9\r\nHost: x\r\n\r\n`);
  add("HTTP/0.9", "GET /announce\r\n");
  add("leading blank lines", "\r\n\r\n" + request("GET", `/scrape?info_hash=${"%01".repeat(20)}`));
  add("bare LF", `GET /announce?${VALID_QUERY} HTTP/1.1\nHost: x\nConnection: close\n\n`);
  add("NUL in target", request("GET", "/announce?info_hash=\u0000\u0000"));
  add("DEL and C1 in target", request("GET", "/announce?peer_id=\u007f\u0085"));
  add("percent junk", request("GET", "/announce?info_hash=%zz%4%%&port=%"));
  add("huge target", request("GET", "/announce?" + "a".repeat(70_000)));
  add("target just over 8 KiB", request("GET", "/announce?" + "k=v&".repeat(2100)));
  add("huge header", request("GET", "/announce", ["X-Junk: " + "j".repeat(200_000)]));
  add(
    "many headers",
    request("GET", "/announce", Array.from({ length: 3000 }, (_, i) => `X-H${i}: ${i}`)),
  );
  add("header without colon", request("GET", "/announce", ["NoColonHere"]));
  add("NUL in header", request("GET", "/announce", ["X-A: a\u0000b"]));
  add("obs-fold", request("GET", "/announce", ["X-A: a", " folded"]));
  add("two hosts", request("GET", `/announce?${VALID_QUERY}`, ["Host: other"]));
  add("forwarded junk", request("GET", `/announce?${VALID_QUERY}`, ["X-Forwarded-For: ::::"]));
  add("negative length", request("GET", "/announce", ["Content-Length: -1"]));
  add("huge length", request("POST", "/announce", ["Content-Length: 99999999999999999999"]));
  add(
    "length and chunked",
    request("GET", "/announce", ["Content-Length: 5", "Transfer-Encoding: chunked"]) + "zz\r\n",
  );
  add("bad chunk", request("POST", "/announce", ["Transfer-Encoding: chunked"]) + "zz\r\nxx\r\n");
  add("body on GET", request("GET", `/announce?${VALID_QUERY}`, ["Content-Length: 4"]) + "abcd");
  add("expect 100", request("PUT", "/announce", ["Expect: 100-continue", "Content-Length: 3"]));
  add("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  add("TLS hello", Uint8Array.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03]));
  add("incomplete", `GET /announce?${VALID_QUERY} HTTP/1.1\r\nHost: x\r\n`, 0);
  add(
    "pipelined with junk",
    request("GET", `/announce?${VALID_QUERY}`, [], false) +
      request("GET", `/scrape?info_hash=${"%CD".repeat(20)}`, [], false) +
      "JUNK\r\n\r\n",
    3,
  );
  for (let i = 0; i < 20; i++) add(`random bytes ${i}`, rng.bytes(rng.range(1, 3000)));
  // Mutated valid requests, byte-level.
  for (let i = 0; i < 60; i++) {
    const base = bytesOf(request(rng.pick(["GET", "HEAD"]), `/announce?${VALID_QUERY}`));
    const buf = new Uint8Array(base.length + 256);
    buf.set(base);
    let length = base.length;
    for (let k = rng.small(4); k > 0; k--) length = mutateBytes(rng, buf, length);
    add(`mutated request ${i}`, buf.slice(0, length));
  }
  // The same request dribbled in small pieces.
  const whole = bytesOf(request("GET", `/announce?${VALID_QUERY}`));
  cases.push(["in pieces", [whole.slice(0, 7), whole.slice(7, 30), whole.slice(30)], 1]);
  return cases;
}

function routeOf(target: string): "announce" | "scrape" | "other" {
  const path = target.split("?")[0];
  return path === "/announce" ? "announce" : path === "/scrape" ? "scrape" : "other";
}

Deno.test(`fuzz over sockets: HTTP requests and raw TCP (seed ${SEED})`, async () => {
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const health = watch(otter);
  const base = otter.http[0];
  const port = Number(new URL(base).port);
  const rng = new Rng(SEED ^ 0x600d);
  const make = new HttpRequestMaker(rng, hashPool(rng));
  const limits = {
    family: 4 as const,
    address: Uint8Array.from(LOOPBACK),
    port: null,
    maxPeers: 200,
    interval: INTERVAL,
    minInterval: INTERVAL / 2,
  };

  // 1. fetch: mutated targets, normalised by fetch the way clients' URL libraries do.
  let fetched = 0;
  let skipped = 0;
  const deadline = performance.now() + 3000;
  // At least 100 however busy the machine (it then takes longer), more on a fast one.
  for (let batches = 0; batches < 200; batches++) {
    if (fetched >= 600 || (fetched >= 100 && performance.now() > deadline)) break;
    const batch = Array.from({ length: 8 }, () => make.make());
    await Promise.all(batch.map(async (input) => {
      let req: Request;
      try {
        req = new Request(base + input.target, {
          method: input.method,
          headers: input.headers,
          signal: AbortSignal.timeout(5000),
        });
      } catch {
        skipped++; // not a URL or method fetch can send
        return;
      }
      const url = new URL(req.url);
      url.hash = "";
      const sent = url.href.slice(url.origin.length);
      const expect = expectHttpStatus(base + sent, req.method);
      let response: Response;
      try {
        response = await fetch(req);
      } catch (e) {
        throw new Error(`fetch ${req.method} ${shown(req.url)} failed: ${e}`);
      }
      const body = new Uint8Array(await response.arrayBuffer());
      fetched++;
      const why = `${req.method} ${shown(sent, 400)} -> ${response.status} ${shown(latin1(body))}`;
      assert.ok(serverStatusOk(response.status), why);
      // The server caps the whole head at 8 KiB: a URL a little under the 414 limit plus
      // fetch's headers gets 431, one a little over it may be measured either way.
      const nearLimit = base.length + sent.length > 8192 - 1024 &&
        base.length + sent.length < 8192 + 64;
      if (!(nearLimit && [200, 404, 414, 431].includes(response.status))) {
        if (expect.route === "other" && expect.status === 404) {
          // Operator routes (stats, metrics) may answer other paths; never with a 500.
          if (!/^\/(stats|metrics)/.test(sent)) assert.equal(response.status, 404, why);
        } else assert.equal(response.status, expect.status, why);
      }
      if (response.status === 200 && expect.route !== "other" && req.method !== "HEAD") {
        const reply = classifyHttpBody(body, expect.route, limits, decodeBencodeOracle);
        assert.notEqual(reply.kind, "bad", `${reply.kind === "bad" && reply.problem}: ${why}`);
      }
    }));
  }
  console.log(`  ${fetched} requests through fetch (${skipped} not sendable)`);
  assert.ok(fetched >= 100, `only ${fetched} of ${fetched + skipped} requests sendable`);
  health.assertHealthy("the fetch fuzz");

  // 2. raw TCP: whatever comes back must be HTTP/1 without a 500, and bencode where promised.
  const cases = rawCases(rng);
  const answered = new Map<number, number>();
  const silent: string[] = [];
  for (let start = 0; start < cases.length; start += RAW_PARALLEL) {
    await Promise.all(
      cases.slice(start, start + RAW_PARALLEL).map(async ([name, chunks, responses]) => {
        const sentText = latin1(chunks[0]);
        // Pipelined requests are answered in order: response i belongs to request line i.
        const targets = [
          ...sentText.matchAll(/(?:^|\r\n)([A-Za-z]+) (\/\S*) HTTP\/1\.1\r?\n/g),
        ];
        const head = (i: number) => targets[i]?.[1].toUpperCase() === "HEAD";
        let result;
        try {
          result = await rawExchange(port, chunks, responses, head, 800);
          if (result.responses.length === 0) silent.push(name);
        } catch (e) {
          throw new Error(`raw case '${name}': ${(e as Error).message}`);
        }
        for (const [i, r] of result.responses.entries()) {
          answered.set(r.status, (answered.get(r.status) ?? 0) + 1);
          const why = `raw case '${name}': ${r.status} ${shown(latin1(r.body))}\n  sent ${
            shown(sentText.slice(0, 300))
          }`;
          assert.ok(serverStatusOk(r.status), why);
          const target = targets[i]?.[2];
          const route = target === undefined ? "other" : routeOf(target);
          if (r.status === 200 && route !== "other" && r.body.length > 0) {
            const reply = classifyHttpBody(r.body, route, limits, decodeBencodeOracle);
            assert.notEqual(reply.kind, "bad", `${reply.kind === "bad" && reply.problem}: ${why}`);
          }
        }
      }),
    );
  }
  const statuses = [...answered].sort().map(([status, n]) => `${n}× ${status}`).join(", ");
  console.log(`  ${cases.length} raw TCP exchanges: ${statuses}; no reply to ${silent.length}`);
  console.log(`  (no reply: ${silent.join(", ")})`);
  health.assertHealthy("the raw TCP fuzz");

  // 3. Still a working tracker: an HTTP peer is seen by a UDP peer and the other way round.
  const hash = new Rng(SEED + 7).bytes(20);
  const escaped = Array.from(hash, (b) => "%" + b.toString(16).padStart(2, "0")).join("");
  const response = await fetch(
    `${base}/announce?info_hash=${escaped}&peer_id=${"-FZ0001-".padEnd(20, "w")}&port=41001`,
  );
  const first = classifyHttpBody(
    new Uint8Array(await response.arrayBuffer()),
    "announce",
    limits,
    decodeBencodeOracle,
  );
  assert.equal(first.kind, "announce");
  assert.deepEqual(await udpAnnounce(otter, hash, 41002), ["127.0.0.1:41001"]);
  health.assertHealthy("the final announces");
  const stopped = await otter.stop();
  assert.equal(stopped.code, 0, stopped.stderr);
});
