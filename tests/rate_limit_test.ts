/**
 * `--rate-limit N/s`: the bucket table on its own (burst, refill, steady rates, many sources,
 * bounded memory under a flood of sources, IPv6 /64 grouping, on/off), then over real sockets on
 * both UDP paths: a flood from one source gets about a burst of replies and the rest is dropped
 * and counted on /metrics, while a second source address (127.0.0.2) is unaffected; SIGHUP
 * changes the limit.
 */
import assert from "node:assert/strict";
import { RateLimiter } from "../src/policy/rateLimit.ts";
import { startOtter } from "./support/otterProcess.ts";
import { announcePacket, connectPacket, readU32 } from "./support/udpClient.ts";

const KEY = new Uint32Array([0x01234567, 0x89abcdef]);

function v4(a: number, b: number, c: number, d: number): Uint8Array {
  return new Uint8Array([a, b, c, d]);
}

/** An IPv6 address from eight 16-bit groups. */
function v6(...groups: number[]): Uint8Array {
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

function limiter(perSecond: number, slots?: number): RateLimiter {
  return new RateLimiter(perSecond, { key: KEY, slots });
}

/** How many of `count` requests at time `t` get through. */
function burst(l: RateLimiter, family: 4 | 6, address: Uint8Array, t: number, count: number) {
  let allowed = 0;
  for (let i = 0; i < count; i++) if (l.allowAt(family, address, 0, t)) allowed++;
  return allowed;
}

Deno.test("rate limit: a burst of N, then N a second", () => {
  const l = limiter(50);
  const a = v4(192, 0, 2, 1);
  assert.equal(burst(l, 4, a, 1000, 80), 50);
  assert.equal(l.limited, 30);
  // 100 ms refill 5 tokens; 1 s of silence refills the whole burst, and no more.
  assert.equal(burst(l, 4, a, 1100, 20), 5);
  assert.equal(burst(l, 4, a, 1100 + 1000, 80), 50);
  assert.equal(burst(l, 4, a, 1100 + 10_000, 80), 50);
  assert.equal(l.shared, 0);
});

Deno.test("rate limit: a sender at the rate is never limited, one at twice the rate gets the rate", () => {
  const at = limiter(50);
  const a = v4(192, 0, 2, 1);
  let allowed = 0;
  for (let i = 0; i < 500; i++) if (at.allowAt(4, a, 0, 5000 + i * 20)) allowed++;
  assert.equal(allowed, 500);

  const twice = limiter(50);
  allowed = 0;
  for (let i = 0; i < 1000; i++) if (twice.allowAt(4, a, 0, 5000 + i * 10)) allowed++;
  // 10 s at 100/s: the burst plus 50 a second.
  assert.ok(allowed >= 50 + 50 * 10 - 2 && allowed <= 50 + 50 * 10 + 1, `allowed ${allowed}`);

  const odd = limiter(3); // 1000/3 ms steps: float sums must not cost the burst a token
  assert.equal(burst(odd, 4, a, 1000, 10), 3);
  assert.equal(burst(odd, 4, a, 1000 + 1000, 10), 3);
});

Deno.test("rate limit: many sources each get their own bucket", () => {
  const l = limiter(20);
  const sources = 2000;
  for (let s = 0; s < sources; s++) {
    const a = v4(10, (s >> 8) & 0xff, s & 0xff, 7);
    assert.equal(burst(l, 4, a, 1000, 21), 20, `source ${s}`);
  }
  assert.equal(l.limited, sources);
  assert.equal(l.shared, 0);
  assert.equal(l.sources(1000), sources);
  assert.equal(l.sources(1000 + 1001), 0, "every bucket is full again after a second");
});

Deno.test("rate limit: memory stays fixed under a flood of sources, and the flood is bounded", () => {
  const slots = 1024;
  const l = limiter(50, slots);
  assert.equal(l.byteSize, slots * 12);
  const address = new Uint8Array(4);
  const view = new DataView(address.buffer);
  let allowed = 0;
  const flood = 200_000;
  for (let s = 0; s < flood; s++) {
    view.setUint32(0, 0x0b000000 + s);
    if (l.allowAt(4, address, 0, 1000)) allowed++;
  }
  assert.equal(l.byteSize, slots * 12, "no growth");
  assert.ok(l.sources(1000) <= slots);
  // At one instant every slot can give at most one burst, whatever the number of sources.
  assert.ok(allowed <= slots * 50, `allowed ${allowed}`);
  assert.equal(l.limited, flood - allowed);
  assert.ok(l.shared > 0);
  // Once the flood stops, buckets are full again a second later: a newcomer gets a full burst.
  assert.equal(burst(l, 4, v4(198, 51, 100, 9), 2001, 60), 50);
});

Deno.test("rate limit: IPv6 sources share a bucket per /64, IPv4 per address", () => {
  const l = limiter(10);
  assert.equal(burst(l, 6, v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 1000, 6), 6);
  assert.equal(burst(l, 6, v6(0x2001, 0xdb8, 0, 0, 0xffff, 0x1234, 0x5678, 0x9abc), 1000, 10), 4);
  assert.equal(burst(l, 6, v6(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1), 1000, 12), 10, "another /64");
  assert.equal(burst(l, 4, v4(192, 0, 2, 1), 1000, 12), 10);
  assert.equal(burst(l, 4, v4(192, 0, 2, 2), 1000, 12), 10, "the next IPv4 address");
  // The address may sit anywhere in a buffer (the fast path passes sockaddr offsets).
  const inName = new Uint8Array(24);
  inName.set(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2), 8);
  assert.equal(l.allowAt(6, inName, 8, 1000), false, "same /64 as the first two, drained");
});

Deno.test("rate limit: off allocates nothing and allows all; setRate turns it on and off", () => {
  const l = limiter(0);
  assert.equal(l.enabled, false);
  assert.equal(l.byteSize, 0);
  assert.equal(burst(l, 4, v4(192, 0, 2, 1), 1000, 1000), 1000);
  l.setRate(5);
  assert.equal(l.enabled, true);
  assert.equal(l.perSecond, 5);
  assert.equal(burst(l, 4, v4(192, 0, 2, 1), 1000, 10), 5);
  l.setRate(0);
  assert.equal(burst(l, 4, v4(192, 0, 2, 1), 1000, 10), 10);
  assert.equal(l.limited, 5);

  assert.throws(() => new RateLimiter(5, { slots: 1000 }), RangeError);
});

Deno.test("rate limit: allow() reads the clock afresh after each synchronous run", async () => {
  const l = new RateLimiter(5, { slots: 64 });
  const a = v4(192, 0, 2, 1);
  let allowed = 0;
  for (let i = 0; i < 10; i++) if (l.allow(4, a, 0)) allowed++;
  assert.equal(allowed, 5, "the burst");
  await Promise.resolve(); // a new run, but hardly any time has passed
  assert.equal(l.allow(4, a, 0), false);
  await new Promise((r) => setTimeout(r, 450)); // at least 2.25 tokens refilled
  allowed = 0;
  for (let i = 0; i < 10; i++) if (l.allow(4, a, 0)) allowed++;
  assert.ok(allowed >= 2 && allowed <= 5, `allowed ${allowed}`);
  assert.equal(l.sources(), 1);
});

// ---------------------------------------------------------------- over real sockets

/** A UDP client on a chosen loopback source address that counts replies in the background. */
class Source {
  readonly conn: Deno.DatagramConn;
  replies = 0;
  lastReply: Uint8Array | null = null;
  readonly #target: Deno.NetAddr;
  readonly #reading: Promise<void>;

  constructor(source: string, port: number) {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: source, port: 0 });
    this.conn = conn;
    this.#target = { transport: "udp", hostname: "127.0.0.1", port };
    this.#reading = (async () => {
      try {
        for (;;) {
          const [data] = await conn.receive();
          this.replies++;
          this.lastReply = data;
        }
      } catch { /* closed */ }
    })();
  }

  send(packet: Uint8Array): Promise<number> {
    return this.conn.send(packet, this.#target);
  }

  /** Waits until `replies` reaches `count`, or `ms` pass; returns the count. */
  async waitFor(count: number, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    while (this.replies < count && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.replies;
  }

  /** Waits until no reply came for `quietMs` (at most `ms` in all). */
  async settle(quietMs: number, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    let seen = -1;
    while (seen !== this.replies && Date.now() < deadline) {
      seen = this.replies;
      await new Promise((r) => setTimeout(r, quietMs));
    }
    return this.replies;
  }

  async connect(): Promise<Uint8Array> {
    const before = this.replies;
    await this.send(connectPacket(0x55));
    assert.equal(await this.waitFor(before + 1, 3000), before + 1, "connect reply");
    const reply = this.lastReply!;
    assert.equal(reply.length, 16);
    return reply.slice(8, 16);
  }

  async close(): Promise<void> {
    this.conn.close();
    await this.#reading;
  }
}

/**
 * Datagrams the kernel dropped on the UDP sockets bound to `port` (a full receive buffer), from
 * /proc/net/udp and udp6: the flood's requests that never reached otter.
 */
function kernelDrops(port: number): number {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let drops = 0;
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let table = "";
    try {
      table = Deno.readTextFileSync(file);
    } catch {
      continue; // not Linux: no counts, and none needed on an idle machine
    }
    for (const line of table.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 12 && fields[1].endsWith(hexPort)) drops += Number(fields.at(-1));
    }
  }
  return drops;
}

function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 29 + i * 13 + 1) & 0xff);
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

/**
 * Sends `count` announces from `source` quickly; returns the seconds it took. Every 20 sends it
 * yields a millisecond, so the portable path (default-sized socket buffer) is not overrun and
 * every drop is the limiter's.
 */
async function flood(source: Source, id: Uint8Array, count: number, port: number) {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1));
    await source.send(
      announcePacket({ connectionId: id, infoHash: hash(i % 7), port, transactionId: i }),
    );
  }
  return (performance.now() - started) / 1000;
}

for (const io of ["fast", "portable"] as const) {
  Deno.test(`rate limit over UDP (${io}): a flood gets a burst, another source is unaffected`, async () => {
    await using otter = await startOtter([
      "--udp",
      "127.0.0.1:0",
      "--http",
      "127.0.0.1:0",
      "--udp-io",
      io,
      "--rate-limit",
      "50/s",
    ]);
    const port = otter.udp[0].port;
    const a = new Source("127.0.0.1", port);
    const b = new Source("127.0.0.2", port);
    try {
      assert.equal(await metric(otter.http[0], "otter_udp_rate_limit_per_second"), 50);
      const idA = await a.connect();
      const dropped = kernelDrops(port);
      const seconds = await flood(a, idA, 500, 6881);
      // 1 connect + 500 announces: the burst of 50 covers the connect and 49 announces, and
      // the bucket refills 50 a second while the flood lasts (longer on a busy machine).
      const most = 49 + Math.ceil(50 * seconds) + 1;
      assert.ok(most <= 250, `500 sends took ${seconds} s: too slow to outrun the limit`);
      await a.settle(300, 5000);

      // 127.0.0.2 is another source: its own full bucket.
      const idB = await b.connect();
      for (let i = 0; i < 30; i++) {
        await b.send(announcePacket({ connectionId: idB, infoHash: hash(1), port: 7000 + i }));
      }
      assert.equal(await b.waitFor(31, 5000), 31, "every request from 127.0.0.2 answered");

      // otter has read the flood by now (before 127.0.0.2's requests); what overran its socket
      // on a busy machine the kernel counted as drops.
      const repliesA = (await a.settle(300, 5000)) - 1;
      assert.ok(repliesA >= 49 && repliesA <= most, `${repliesA} replies (at most ${most})`);
      assert.equal(readU32(a.lastReply!, 0), 1, "the replies are announce replies");
      assert.equal(
        await metric(otter.http[0], "otter_udp_rate_limited_total"),
        500 - repliesA - (kernelDrops(port) - dropped),
        "each dropped announce counted once",
      );
      assert.ok(await metric(otter.http[0], "otter_udp_rate_limit_sources") >= 1);
      assert.equal(await metric(otter.http[0], "otter_udp_rate_limit_shared_total"), 0);
    } finally {
      await a.close();
      await b.close();
    }
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
  });
}

Deno.test("rate limit: SIGHUP turns it off and on again", async () => {
  const path = await Deno.makeTempFile({ suffix: ".toml" });
  const loopback = `http = ["127.0.0.1:0"]\nudp = ["127.0.0.1:0"]\n`;
  try {
    await Deno.writeTextFile(path, `${loopback}rate-limit = "20/s"\n`);
    await using otter = await startOtter(["--config", path], { expect: { http: 1, udp: 1 } });
    const reloads = () => otter.stdout.filter((line) => line.includes("config ")).length;
    const hangUp = async () => {
      const before = reloads();
      Deno.kill(otter.pid, "SIGHUP");
      const deadline = Date.now() + 10_000;
      while (reloads() === before) {
        assert.ok(Date.now() < deadline, "no reload line after SIGHUP");
        await new Promise((r) => setTimeout(r, 20));
      }
      return otter.stdout.filter((line) => line.includes("config "))[before];
    };
    const port = otter.udp[0].port;
    const base = otter.http[0];

    const limited = new Source("127.0.0.1", port);
    try {
      const id = await limited.connect();
      await flood(limited, id, 100, 6881);
      const replies = (await limited.settle(300, 5000)) - 1;
      assert.ok(replies >= 19 && replies < 60, `limited to about 20: ${replies}`);
    } finally {
      await limited.close();
    }

    await Deno.writeTextFile(path, `${loopback}rate-limit = 0\n`);
    assert.match(await hangUp(), /reloaded/);
    assert.equal(await metric(base, "otter_udp_rate_limit_per_second"), 0);
    const droppedBefore = await metric(base, "otter_udp_rate_limited_total");
    const free = new Source("127.0.0.1", port);
    try {
      const id = await free.connect();
      await flood(free, id, 100, 6882);
      assert.equal(await free.waitFor(101, 5000), 101, "no limit: every announce answered");
    } finally {
      await free.close();
    }
    assert.equal(await metric(base, "otter_udp_rate_limited_total"), droppedBefore);

    await Deno.writeTextFile(path, `${loopback}rate-limit = "5/s"\n`);
    await hangUp();
    assert.equal(await metric(base, "otter_udp_rate_limit_per_second"), 5);
    const again = new Source("127.0.0.2", port);
    try {
      const id = await again.connect();
      await flood(again, id, 50, 6883);
      const replies = (await again.settle(300, 5000)) - 1;
      assert.ok(replies >= 4 && replies < 20, `limited to about 5: ${replies}`);
    } finally {
      await again.close();
    }
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
  } finally {
    await Deno.remove(path);
  }
});
