/**
 * What an idle TCP connection costs a Deno process before any WebSocket code: the floor under
 * otter's RSS per idle WebSocket connection (docs/ws-bench.md). The server accepts --conns
 * connections and keeps one read waiting on each, into a 1 KiB view of a shared slab that no
 * data ever touches (as otter's WebSocket server does); a child process opens the connections
 * and holds them. Printed: the server's VmRSS growth per connection (after --settle seconds),
 * and the V8 heap's share of it; --no-read accepts without reading, to show what the waiting
 * read alone costs; --fast accepts through otter's TCP fast path (src/servers/tcp: epoll over
 * FFI) instead of `Deno.listen`.
 *
 *   taskset -c 0 deno run -A bench/ws_socket_floor.ts [--conns 10000] [--settle 3] [--no-read]
 *     [--fast]
 */
import { parseArgs } from "node:util";
import { FastTcpListener } from "../src/servers/tcp/tcpFastListener.ts";
import type { StreamConn } from "../src/servers/tcp/streamConn.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string", default: "10000" },
    settle: { type: "string", default: "3" },
    "no-read": { type: "boolean", default: false },
    fast: { type: "boolean", default: false },
    client: { type: "string" },
  },
});
const conns = Number(args.values.conns);

function rssKiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

if (args.values.client !== undefined) {
  // The client: open the connections a few at a time, say so, hold them until stdin closes.
  const port = Number(args.values.client);
  const held: Deno.TcpConn[] = [];
  for (let i = 0; i < conns; i += 100) {
    const batch = Array.from(
      { length: Math.min(100, conns - i) },
      () => Deno.connect({ hostname: "127.0.0.1", port }),
    );
    held.push(...await Promise.all(batch));
  }
  console.log("connected");
  for await (const _ of Deno.stdin.readable) {
    // Held until the server closes our stdin.
  }
  for (const conn of held) conn.close();
} else {
  const listener = args.values.fast
    ? FastTcpListener.listen("127.0.0.1", 0)
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const read = !args.values["no-read"];
  const slab = new ArrayBuffer(conns * 1024);
  let accepted = 0;
  const held: StreamConn[] = [];
  (async () => {
    for (;;) {
      const conn: StreamConn = await listener.accept();
      const buffer = new Uint8Array(slab, (accepted % conns) * 1024, 1024);
      accepted++;
      if (read) {
        const again = (n: unknown) => {
          if (typeof n === "number") conn.read(buffer).then(again, again);
        };
        conn.read(buffer).then(again, again);
      } else held.push(conn);
    }
  })();
  // Let startup settle before the baseline.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const before = rssKiB();
  const heapBefore = Deno.memoryUsage().heapUsed;
  const client = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--client",
      String(listener.addr.port),
      "--conns",
      String(conns),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = client.stdout.getReader();
  await reader.read(); // "connected"
  const until = performance.now() + 60_000;
  while (accepted < conns && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, Number(args.values.settle) * 1000));
  const after = rssKiB();
  const heapAfter = Deno.memoryUsage().heapUsed;
  const result = {
    conns: accepted,
    read,
    fast: args.values.fast,
    rss_before_kib: before,
    rss_after_kib: after,
    rss_per_conn_b: Math.round((after - before) * 1024 / Math.max(1, accepted)),
    heap_used_per_conn_b: Math.round((heapAfter - heapBefore) / Math.max(1, accepted)),
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  await client.stdin.close();
  reader.releaseLock();
  await client.stdout.cancel();
  await client.status;
  Deno.exit(0);
}
