/**
 * 10,000 idle WebSocket connections at one real otter (issue 11's bad input: sockets that upgrade
 * and then say nothing): otter takes them all up to --max-ws-connections (its default, 10,000),
 * refuses the next upgrade with 503, keeps serving announces, holds them in a bounded amount of
 * memory, and closes every one of them as idle after twice --ws-interval, its count back to 0.
 *
 * The clients are lean (a small buffer for the 101, then nothing but the socket), in this process; otter is
 * its own process, so each side holds 10,000 descriptors (the soft limit is raised to the hard one
 * with prlimit where it is lower). RSS per idle connection is bench/ws_compare.sh's figure; the
 * bound here only catches a connection that keeps something big while idle.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { httpAnnounce, randomHash } from "./support/otterCommand.ts";

const CONNECTIONS = 10_000;
const BATCH = 250;
/** --ws-interval's least value: idle connections are closed after 20 s. */
const WS_INTERVAL = 10;
/** A loose bound on otter's RSS growth per idle connection: about 11 KiB measured here on Deno's
 * sockets, of which Deno's own accepted socket with a read waiting is about 8.5 KiB, and under
 * 5 KiB on the TCP fast path (bench/ measures both); 64 KiB buffers kept per connection would
 * show. */
const MAX_BYTES_PER_CONNECTION = 24 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Raises this process's soft limit on open files to its hard limit (children inherit it). */
async function raiseOpenFiles(need: number): Promise<void> {
  const limits = await Deno.readTextFile("/proc/self/limits");
  const [soft, hard] = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(limits)!.slice(1)
    .map((v) => v === "unlimited" ? Infinity : Number(v));
  if (soft >= need) return;
  assert.ok(hard >= need, `the hard limit on open files (${hard}) is under ${need}`);
  const out = await new Deno.Command("prlimit", {
    args: ["--pid", String(Deno.pid), `--nofile=${hard === Infinity ? need : hard}:`],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

/** Connects and upgrades; resolves with the connection and the status line of the answer. */
async function upgrade(port: number): Promise<{ conn: Deno.TcpConn; status: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Bounded: a server that never answers gets the connection closed under the read, which throws.
  const timer = setTimeout(() => closeQuietly(conn), 30_000);
  try {
    await conn.write(encoder.encode(
      `GET /announce HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Sec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const buffer = new Uint8Array(512);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      head += decoder.decode(buffer.subarray(0, n));
    }
    return { conn, status: head.split("\r\n")[0] };
  } catch (e) {
    closeQuietly(conn);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}

/** Reads until the end of the stream (the server's close frame, then its close), or times out. */
async function readToEnd(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64);
  while ((await conn.read(buffer).catch(() => null)) !== null) {
    // The close frame: discarded.
  }
}

Deno.test("ws: 10,000 idle sockets are held, bounded, and closed as idle; otter serves throughout", async () => {
  await raiseOpenFiles(CONNECTIONS + 1000);
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-connections-per-ip",
    "0",
    "--ws-interval",
    String(WS_INTERVAL),
  ]);
  const base = otter.http[0];
  const port = Number(new URL(base).port);
  const conns: Deno.TcpConn[] = [];
  try {
    // A few first, so the baseline has the server's buffers and code paths warmed.
    for (let i = 0; i < 10; i++) conns.push((await upgrade(port)).conn);
    const before = rssBytes(otter.pid);
    while (conns.length < CONNECTIONS) {
      const batch = Math.min(BATCH, CONNECTIONS - conns.length);
      const opened = await Promise.all(Array.from({ length: batch }, () => upgrade(port)));
      for (const { conn, status } of opened) {
        conns.push(conn);
        assert.equal(status, "HTTP/1.1 101 Switching Protocols", `upgrade ${conns.length}`);
      }
    }
    assert.equal(await metric(base, "otter_ws_connections"), CONNECTIONS);
    const grown = rssBytes(otter.pid) - before;
    assert.ok(
      grown / CONNECTIONS < MAX_BYTES_PER_CONNECTION,
      `RSS grew ${Math.round(grown / 1024)} KiB for ${CONNECTIONS} idle connections`,
    );
    // --max-ws-connections (10,000 by default): the next upgrade is refused, nothing held.
    const extra = await upgrade(port);
    extra.conn.close();
    assert.equal(extra.status, "HTTP/1.1 503 Service Unavailable");
    // Plain HTTP goes on.
    const reply = await httpAnnounce(base, randomHash(), 40001);
    assert.equal(reply["failure reason"], undefined);
    assert.equal(typeof reply.interval, "number");
    // Every one is closed as idle after 2 × --ws-interval (no message at all): a close frame,
    // then otter's half-close; each client then closes its end, and otter lets go of it.
    let idleClosed = true;
    const giveUp = setTimeout(() => {
      idleClosed = false; // ends the reads below
      for (const conn of conns) closeQuietly(conn);
    }, 4 * WS_INTERVAL * 1000);
    await Promise.all(conns.map(async (conn) => {
      await readToEnd(conn);
      closeQuietly(conn);
    }));
    clearTimeout(giveUp);
    conns.length = 0;
    assert.ok(idleClosed, `not every connection was closed within ${4 * WS_INTERVAL} s`);
    const deadline = performance.now() + 15_000;
    while (await metric(base, "otter_ws_connections") !== 0) {
      assert.ok(performance.now() < deadline, "otter still holds connections its clients closed");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(
      await metric(base, 'otter_ws_connections_closed_total{reason="idle_timeout"}'),
      CONNECTIONS,
    );
  } finally {
    for (const conn of conns) closeQuietly(conn);
  }
});
