/**
 * `deno task loadtest`: a load generator for operators to test their own otter (or any
 * tracker): UDP (BEP 15 connect + announce/scrape) or HTTP announces, a fixed number of requests
 * in flight, every reply validated, and a report of replies/s, errors and latency percentiles.
 *
 * For headline figures use ../shared/load/ (C and wrk): a generator written in the same runtime
 * as the server measures itself as much as the server.
 *
 *   deno task loadtest -- --udp 127.0.0.1:6969 --seconds 10 --window 64 --torrents 1000
 *   deno task loadtest -- --http http://127.0.0.1:6969/announce --seconds 10 --connections 32
 */
import { parseArgs } from "node:util";

interface Options {
  udp: string;
  http: string;
  seconds: number;
  window: number;
  connections: number;
  torrents: number;
  peers: number;
  numwant: number;
  scrape: number;
  json: boolean;
}

const USAGE = `usage: deno task loadtest -- (--udp HOST:PORT | --http URL) [options]
  --seconds N       how long to run (default 10, at most 3600)
  --window N        UDP requests in flight (default 64)
  --connections N   HTTP requests in flight (default 32)
  --torrents N      distinct info hashes (default 1000)
  --peers N         distinct ports announced per torrent (default 10)
  --numwant N       peers asked for (default 50)
  --scrape PCT      share of UDP requests that are scrapes, 0..100 (default 0)
  --json            print one JSON line instead of text`;

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      udp: { type: "string", default: "" },
      http: { type: "string", default: "" },
      seconds: { type: "string", default: "10" },
      window: { type: "string", default: "64" },
      connections: { type: "string", default: "32" },
      torrents: { type: "string", default: "1000" },
      peers: { type: "string", default: "10" },
      numwant: { type: "string", default: "50" },
      scrape: { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const int = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) {
      throw new Error(`--${name}: expected a whole number in ${min}..${max}, got '${text}'`);
    }
    return n;
  };
  const options: Options = {
    udp: values.udp,
    http: values.http,
    seconds: int("seconds", values.seconds, 1, 3600),
    window: int("window", values.window, 1, 4096),
    connections: int("connections", values.connections, 1, 1024),
    torrents: int("torrents", values.torrents, 1, 10_000_000),
    peers: int("peers", values.peers, 1, 60000),
    numwant: int("numwant", values.numwant, 0, 1000),
    scrape: int("scrape", values.scrape, 0, 100),
    json: values.json,
  };
  if ((options.udp === "") === (options.http === "")) throw new Error("give --udp or --http");
  return options;
}

/** Latencies in microseconds, bucketed logarithmically (2% resolution) so memory stays fixed. */
class LatencyHistogram {
  readonly #buckets = new Float64Array(1200);
  count = 0;

  add(micros: number): void {
    const i = micros <= 1 ? 0 : Math.min(1199, Math.floor(Math.log(micros) / Math.log(1.02)));
    this.#buckets[i]++;
    this.count++;
  }

  percentile(p: number): number {
    let seen = 0;
    const target = this.count * p;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i];
      if (seen >= target && seen > 0) return Math.round(1.02 ** (i + 1));
    }
    return 0;
  }
}

interface Tally {
  replies: number;
  errors: number;
  invalid: number;
  timeouts: number;
  late: number;
  latency: LatencyHistogram;
}

function infoHash(index: number, out: Uint8Array, offset: number): void {
  // A fixed pseudo-random 20-byte hash per index, so runs re-announce the same swarms.
  let x = (index + 1) * 0x9e3779b1;
  for (let i = 0; i < 20; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[offset + i] = x & 0xff;
  }
}

function hostPort(text: string): Deno.NetAddr {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (m === null) throw new Error(`--udp: expected HOST:PORT or [IPv6]:PORT, got '${text}'`);
  return { transport: "udp", hostname: m[1], port: Number(m[2]) };
}

async function runUdp(o: Options, tally: Tally): Promise<void> {
  const target = hostPort(o.udp);
  const conn = Deno.listenDatagram({
    transport: "udp",
    hostname: target.hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  });
  const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  // Per slot: its own transaction id and send time; replies are matched by transaction id.
  const sentAt = new Float64Array(o.window);
  const kind = new Uint8Array(o.window); // 0 connect, 1 announce, 2 scrape
  const pending = new Uint32Array(o.window); // the transaction id each slot waits for
  let connectionId: Uint8Array | null = null;
  let sequence = 0;
  const deadline = performance.now() + o.seconds * 1000;
  // One packet buffer per slot: a send may read its bytes after the next send has started.
  const packets = Array.from({ length: o.window }, () => new Uint8Array(98));
  const views = packets.map(view);

  let closed = false;
  const send = async (slot: number) => {
    const packet = packets[slot];
    const pv = views[slot];
    const txid = (((sequence++ & 0xfffff) << 12) | slot) >>> 0;
    let length = 16;
    if (connectionId === null) {
      pv.setUint32(0, 0x417);
      pv.setUint32(4, 0x27101980);
      pv.setUint32(8, 0);
      kind[slot] = 0;
    } else if (Math.random() * 100 < o.scrape) {
      packet.set(connectionId, 0);
      pv.setUint32(8, 2);
      infoHash(Math.floor(Math.random() * o.torrents), packet, 16);
      kind[slot] = 2;
      length = 36;
    } else {
      packet.set(connectionId, 0);
      pv.setUint32(8, 1);
      const t = Math.floor(Math.random() * o.torrents);
      infoHash(t, packet, 16);
      packet.fill(0x2d, 36, 56);
      pv.setUint32(64, 0);
      pv.setUint32(68, Math.random() < 0.2 ? 0 : 1000);
      pv.setUint32(80, 0);
      pv.setUint32(92, o.numwant);
      pv.setUint16(96, 1 + Math.floor(Math.random() * o.peers));
      kind[slot] = 1;
      length = 98;
    }
    pv.setUint32(12, txid);
    pending[slot] = txid;
    sentAt[slot] = performance.now();
    if (closed) return;
    try {
      await conn.send(packet.subarray(0, length), target);
    } catch (e) {
      if (!closed) throw e; // the run ended while this send was under way
    }
  };

  const buffer = new Uint8Array(65536);
  const receiver = (async () => {
    while (performance.now() < deadline) {
      let data: Uint8Array;
      try {
        [data] = await conn.receive(buffer);
      } catch {
        return;
      }
      if (data.length < 8) {
        tally.invalid++;
        continue;
      }
      const dv = view(data);
      const action = dv.getUint32(0);
      const txid = dv.getUint32(4);
      const slot = txid & 0xfff;
      if (slot >= o.window) {
        tally.invalid++;
        continue;
      }
      if (pending[slot] !== txid || sentAt[slot] === 0) {
        tally.late++; // the answer to a request already counted as timed out
        continue;
      }
      const expected = kind[slot];
      const ok = action === 3 ||
        (action === expected &&
          (expected === 0
            ? data.length >= 16
            : expected === 1
            ? data.length >= 20 && (data.length - 20) % 6 === 0
            : data.length === 20));
      if (!ok) {
        tally.invalid++;
        if (Deno.env.get("LOADTEST_DEBUG") && tally.invalid < 5) {
          console.error("invalid", action, expected, data.length);
        }
      } else if (action === 3) {
        tally.errors++;
        connectionId = null; // expired or refused: reconnect
      } else {
        if (action === 0) connectionId = data.slice(8, 16);
        tally.replies++;
        tally.latency.add((performance.now() - sentAt[slot]) * 1000);
      }
      sentAt[slot] = 0;
      if (performance.now() < deadline) await send(slot);
    }
  })();
  // A slot without a reply after 1 s counts as a timeout and is resent.
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (let slot = 0; slot < o.window; slot++) {
      if (sentAt[slot] > 0 && now - sentAt[slot] > 1000) {
        tally.timeouts++;
        send(slot).catch(() => {});
      }
    }
  }, 250);
  await send(0);
  await new Promise((r) => setTimeout(r, 200));
  for (let slot = 1; slot < o.window; slot++) await send(slot);
  await new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())));
  clearInterval(watchdog);
  closed = true;
  conn.close();
  await receiver;
}

async function runHttp(o: Options, tally: Tally): Promise<void> {
  const base = o.http.includes("?") ? o.http + "&" : o.http + "?";
  const deadline = performance.now() + o.seconds * 1000;
  const hash = new Uint8Array(20);
  const escape = (bytes: Uint8Array) => {
    let s = "";
    for (const b of bytes) s += "%" + (b < 16 ? "0" : "") + b.toString(16);
    return s;
  };
  const worker = async () => {
    while (performance.now() < deadline) {
      infoHash(Math.floor(Math.random() * o.torrents), hash, 0);
      const url = `${base}info_hash=${escape(hash)}&peer_id=-LT0001-loadtest0000&port=${
        1 + Math.floor(Math.random() * o.peers)
      }&uploaded=0&downloaded=0&left=${
        Math.random() < 0.2 ? 0 : 1000
      }&compact=1&numwant=${o.numwant}`;
      const started = performance.now();
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
        const body = new Uint8Array(await response.arrayBuffer());
        const text = new TextDecoder("latin1").decode(body.subarray(0, 64));
        if (response.status !== 200 || body[0] !== 0x64) tally.invalid++;
        else if (text.includes("failure reason")) tally.errors++;
        else {
          tally.replies++;
          tally.latency.add((performance.now() - started) * 1000);
        }
      } catch (e) {
        if (e instanceof DOMException && e.name === "TimeoutError") tally.timeouts++;
        else tally.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: o.connections }, worker));
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(Deno.args);
  } catch (e) {
    console.error(`loadtest: ${e instanceof Error ? e.message : e}\n${USAGE}`);
    return 2;
  }
  const tally: Tally = {
    replies: 0,
    errors: 0,
    invalid: 0,
    timeouts: 0,
    late: 0,
    latency: new LatencyHistogram(),
  };
  const started = performance.now();
  if (options.udp !== "") await runUdp(options, tally);
  else await runHttp(options, tally);
  const seconds = (performance.now() - started) / 1000;
  const report = {
    target: options.udp !== "" ? `udp://${options.udp}` : options.http,
    seconds: Math.round(seconds * 10) / 10,
    replies: tally.replies,
    repliesPerSecond: Math.round(tally.replies / seconds),
    errors: tally.errors,
    invalid: tally.invalid,
    timeouts: tally.timeouts,
    late: tally.late,
    latencyMicros: {
      p50: tally.latency.percentile(0.5),
      p90: tally.latency.percentile(0.9),
      p99: tally.latency.percentile(0.99),
      p999: tally.latency.percentile(0.999),
    },
  };
  if (options.json) console.log(JSON.stringify(report));
  else {
    console.log(`${report.target}: ${report.repliesPerSecond} replies/s over ${report.seconds} s`);
    console.log(
      `replies ${report.replies}  errors ${report.errors}  invalid ${report.invalid}  timeouts ${report.timeouts}  late ${report.late}`,
    );
    const l = report.latencyMicros;
    console.log(`latency µs: p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}`);
  }
  return report.invalid > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
