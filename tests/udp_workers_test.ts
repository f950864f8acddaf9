/**
 * The multi-core UDP fast path (`--workers N`) over real loopback sockets: a running otter with
 * two I/O workers on 127.0.0.1, [::1] and dual-stack [::] answers connect, announce and scrape from
 * many client sockets; the store is one (a peer announced through one worker is returned by the
 * other); a burst gets only valid replies, spread evenly over the workers; SIGTERM stops it
 * quickly; and in process: a worker that dies is logged and the other keeps serving, close() is
 * bounded.
 */
import assert from "node:assert/strict";
import { ipv6Missing } from "./support/ipv6.ts";
import { type OtterProcess, startOtter } from "./support/otterProcess.ts";
import {
  announcePacket,
  announcePeers,
  connectPacket,
  readU32,
  REPLY_TIMEOUT_MS,
  scrapePacket,
  UdpTestClient,
} from "./support/udpClient.ts";
import { fastUdpSupport } from "../src/servers/udp/udpFastSocket.ts";
import { UdpWorkerPool } from "../src/servers/udp/udpWorkerPool.ts";

const ignore = !fastUdpSupport().ok;

const ignoreIpv6 = ignore || ipv6Missing !== null;

function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 131 + i * 17 + 5) & 0xff);
}

/** `otter_udp_worker_packets_total` of `listener`, by worker index. */
async function workerPackets(otter: OtterProcess, listener: string): Promise<number[]> {
  const response = await fetch(`${otter.http[0]}/metrics`);
  assert.equal(response.status, 200);
  const text = await response.text();
  const counts: number[] = [];
  const pattern = /^otter_udp_worker_packets_total\{listener="([^"]+)",worker="(\d+)"\} (\d+)$/gm;
  for (const match of text.matchAll(pattern)) {
    if (match[1] === listener) counts[Number(match[2])] = Number(match[3]);
  }
  return counts;
}

/** Which worker took `send()`'s datagram: the index whose packet count moved by one (nothing
 *  else talks to this otter meanwhile). */
async function workerTaking<T>(
  otter: OtterProcess,
  listener: string,
  send: () => Promise<T>,
): Promise<{ worker: number; result: T }> {
  const before = await workerPackets(otter, listener);
  const result = await send();
  const after = await workerPackets(otter, listener);
  const moved = after.flatMap((count, i) => count === before[i] + 1 ? [i] : []);
  assert.equal(moved.length, 1, `one worker moved: ${before} -> ${after}`);
  return { worker: moved[0], result };
}

function urlHost(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

Deno.test({
  name: "--workers 2: IPv4, IPv6 and dual-stack listeners share one store over both workers",
  ignore: ignoreIpv6,
  async fn(t) {
    await using otter = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--udp",
      "[::1]:0",
      "--udp",
      "[::]:0",
      "--udp-io",
      "fast",
      "--workers",
      "2",
      "--interval",
      "100",
    ]);
    for (const listener of otter.udp) {
      assert.equal(listener.io, "fast");
      assert.equal(listener.workers, 2);
    }
    // The dual-stack listener is tried with IPv4 clients (v4-mapped senders) and IPv6 ones.
    const cases = [
      { listener: otter.udp[0], target: "127.0.0.1", family: 4 },
      { listener: otter.udp[1], target: "::1", family: 6 },
      { listener: otter.udp[2], target: "127.0.0.1", family: 4 },
      { listener: otter.udp[2], target: "::1", family: 6 },
    ] as const;
    let seed = 100;
    for (const { listener, target, family } of cases) {
      const name = `udp://${urlHost(listener.hostname)}:${listener.port}`;
      await t.step(`${name} from ${target}`, async () => {
        const clients = Array.from(
          { length: 16 },
          () => new UdpTestClient(target, listener.port),
        );
        try {
          const infoHash = hash(seed++);
          const ids = await Promise.all(clients.map((client) => client.connect()));
          const announce = async (i: number, event = 2) => {
            const transactionId = 0x7000 + i;
            const reply = await clients[i].request(announcePacket({
              connectionId: ids[i],
              infoHash,
              port: 20000 + i,
              event,
              numwant: 200,
              transactionId,
            }));
            assert.ok(reply, `announce reply for client ${i}`);
            assert.equal(readU32(reply, 0), 1, "action announce");
            assert.equal(readU32(reply, 4), transactionId);
            assert.equal((reply.length - 20) % (family === 4 ? 6 : 18), 0);
            return announcePeers(reply, family).map((peer) => Number(peer.split(":").pop()))
              .sort((x, y) => x - y);
          };
          // Each announce lands on a worker (datagrams are spread over them); every reply holds
          // every peer announced before it, whichever worker took that one.
          const workers: number[] = [];
          for (let i = 0; i < clients.length; i++) {
            const { worker, result } = await workerTaking(otter, name, () => announce(i));
            workers.push(worker);
            assert.deepEqual(result, clients.slice(0, i).map((_, k) => 20000 + k));
          }
          // Client 0's peer came back through the other worker: with 16 announces the chance
          // that all went to one worker is 2^-15.
          assert.ok(
            workers.some((worker) => worker !== workers[0]),
            `announces by worker: ${workers}`,
          );
          const a = 0;
          const b = workers.findIndex((worker) => worker !== workers[0]);
          const all = await announce(a, 0);
          assert.deepEqual(all, clients.map((_, i) => 20000 + i).filter((p) => p !== 20000 + a));

          const scrape = await clients[b].request(scrapePacket(ids[b], [infoHash], 0x5151));
          assert.ok(scrape, "scrape reply");
          assert.equal(scrape.length, 20);
          assert.equal(readU32(scrape, 0), 2);
          assert.equal(readU32(scrape, 4), 0x5151);
          assert.equal(readU32(scrape, 16), clients.length, "leechers counted once each");
        } finally {
          for (const client of clients) client.close();
        }
      });
    }

    await t.step("a burst of thousands of datagrams gets only valid replies", async () => {
      const listener = otter.udp[0];
      const name = `udp://${listener.hostname}:${listener.port}`;
      const before = await workerPackets(otter, name);
      const clients = Array.from(
        { length: 8 },
        () => new UdpTestClient("127.0.0.1", listener.port),
      );
      const perClient = 500;
      const window = 64;
      try {
        const ids = await Promise.all(clients.map((client) => client.connect()));
        const results = await Promise.all(clients.map(async (client, c) => {
          const packet = (k: number) =>
            announcePacket({
              connectionId: ids[c],
              infoHash: hash(1000 + (k % 50)),
              port: 1 + c * perClient + k,
              event: k % 4 === 0 ? 2 : 0,
              numwant: 20,
              transactionId: (c << 16) | k,
            });
          // A window of 64 in flight per client, 512 in all: the server drains them in
          // batches, the clients' own receive buffers never overflow.
          let sent = 0;
          while (sent < window) await client.send(packet(sent++));
          let valid = 0;
          let invalid = 0;
          const seen = new Set<number>();
          while (seen.size < perClient) {
            const reply = await client.receive(REPLY_TIMEOUT_MS);
            if (reply === null) break;
            const transactionId = reply.length >= 8 ? readU32(reply, 4) : -1;
            const k = transactionId & 0xffff;
            const ok = reply.length >= 20 && (reply.length - 20) % 6 === 0 &&
              readU32(reply, 0) === 1 && transactionId >>> 16 === c && k < perClient &&
              !seen.has(k) && (reply.length - 20) / 6 <= 20;
            if (ok) {
              valid++;
              seen.add(k);
            } else {
              invalid++;
            }
            if (sent < perClient) await client.send(packet(sent++));
          }
          return { valid, invalid };
        }));
        const valid = results.reduce((sum, r) => sum + r.valid, 0);
        const invalid = results.reduce((sum, r) => sum + r.invalid, 0);
        const total = clients.length * perClient;
        assert.equal(invalid, 0, "no invalid replies");
        // Loopback drops nothing unless a receive buffer overflows, which the window prevents.
        assert.equal(valid, total, "every request answered");
        // Datagrams are spread evenly, not by flow: 8 client sockets could hash 7 to 1.
        const after = await workerPackets(otter, name);
        const shares = after.map((count, i) => (count - before[i]) / total);
        assert.ok(shares.every((share) => share > 0.35), `shares ${shares}`);
      } finally {
        for (const client of clients) client.close();
      }
    });

    await t.step("SIGTERM stops it cleanly within a second or two", async () => {
      const started = performance.now();
      const stopped = await otter.stop("SIGTERM");
      const ms = performance.now() - started;
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.ok(ms < 2500, `stopped in ${ms.toFixed(0)} ms`);
      assert.ok(otter.stdout.includes("otter: stopping"));
      assert.doesNotMatch(stopped.stderr, /error|panic/i);
    });
  },
});

Deno.test({
  name: "--workers 0 means one per core; --workers 1 is the single-thread fast path",
  ignore,
  async fn() {
    await using many = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--workers",
      "0",
    ]);
    const cores = navigator.hardwareConcurrency;
    assert.equal(many.udp[0].workers, cores > 1 ? cores : 1);
    await using one = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--workers",
      "1",
    ]);
    assert.equal(one.udp[0].io, "fast");
    assert.equal(one.udp[0].workers, 1);
    assert.ok(!one.stdout.some((line) => line.includes("workers:")));
    await using portable = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--udp-io",
      "portable",
      "--workers",
      "2",
    ]);
    assert.equal(portable.udp[0].io, "portable");
    assert.equal(portable.udp[0].workers, 1);
    assert.ok(portable.stdout.some((line) => line.includes("only the UDP fast path has workers")));
    const client = new UdpTestClient("127.0.0.1", portable.udp[0].port);
    try {
      await client.connect();
    } finally {
      client.close();
    }
  },
});

/** Echoes the packet back after a 1-byte marker of the family the pool reported. */
const echo = {
  handle(
    packet: Uint8Array,
    length: number,
    family: 4 | 6,
    _address: Uint8Array,
    _addressOffset: number,
    _port: number,
    out: Uint8Array,
  ): number {
    out[0] = family;
    out.set(packet.subarray(0, length), 1);
    return length + 1;
  },
};

Deno.test({
  name: "UdpWorkerPool: a worker that dies is logged, the others keep every flow answered",
  ignore,
  async fn() {
    const lines: string[] = [];
    const pool = UdpWorkerPool.open("127.0.0.1", 0, 2, { log: (line) => lines.push(line) });
    const served = pool.serve(echo);
    // Under `deno test` a Worker's module is type-checked when it starts: that can take seconds.
    await pool.ready;
    const clients = Array.from({ length: 12 }, () => new UdpTestClient("127.0.0.1", pool.port));
    try {
      const roundTrip = async () => {
        let answered = 0;
        await Promise.all(clients.map(async (client, i) => {
          const reply = await client.request(new Uint8Array([7, i]), 1000);
          if (reply !== null && reply.length === 3 && reply[0] === 4 && reply[2] === i) answered++;
        }));
        return answered;
      };
      assert.equal(await roundTrip(), clients.length);
      assert.equal(await roundTrip(), clients.length);
      // 24 datagrams spread at random: both workers got some (all on one: 2^-23).
      assert.ok(pool.workerStats(0).received > 0 && pool.workerStats(1).received > 0);

      pool.failWorkerForTest(0);
      const deadline = Date.now() + 5000;
      while (pool.aliveWorkers === 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(pool.aliveWorkers, 1);
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /I\/O worker 0 died \(.*failed on purpose.*\); 1 of 2 left$/);
      assert.equal(pool.workerStats(0).alive, false);

      // Its socket is closed, so the kernel steers every flow to worker 1.
      const received = pool.workerStats(1).received;
      assert.equal(await roundTrip(), clients.length);
      assert.equal(pool.workerStats(1).received, received + clients.length);
    } finally {
      for (const client of clients) client.close();
      const started = performance.now();
      await pool.close();
      await served;
      assert.ok(performance.now() - started < 1500, "close() within the bound");
    }
  },
});

Deno.test({
  name: "UdpWorkerPool: dual-stack [::] reports v4-mapped senders as IPv4; close() is quick",
  ignore: ignoreIpv6,
  async fn() {
    const pool = UdpWorkerPool.open("::", 0, 3);
    const served = pool.serve(echo);
    await pool.ready;
    assert.equal(pool.size, 3);
    const v4 = new UdpTestClient("127.0.0.1", pool.port);
    const v6 = new UdpTestClient("::1", pool.port);
    try {
      const r4 = await v4.request(connectPacket(1), 2000);
      assert.ok(r4);
      assert.equal(r4[0], 4);
      assert.equal(r4.length, 17);
      const r6 = await v6.request(connectPacket(2), 2000);
      assert.ok(r6);
      assert.equal(r6[0], 6);
      assert.equal(readU32(r6, 13), 2);
    } finally {
      v4.close();
      v6.close();
      const started = performance.now();
      await pool.close();
      await served;
      assert.ok(performance.now() - started < 1500, "close() within the bound");
    }
    assert.equal(pool.aliveWorkers, 0);
    // The port is free again: nothing of the pool is left bound.
    const again = UdpWorkerPool.open("::", pool.port, 1);
    await again.close();
  },
});
