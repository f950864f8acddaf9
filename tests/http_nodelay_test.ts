/**
 * Replies on a kept-open HTTP connection are not held back by Nagle's algorithm: a client that
 * sends its next request before acknowledging the last reply (pipelining, in separate segments)
 * must not wait for its own delayed ACK (40 ms on Linux) to get the next reply. So otter sets
 * TCP_NODELAY on a connection that stays open, with its first reply. The test runs otter's HTTP
 * server in process and reads the option off the server's end of each connection (getsockopt);
 * a connection upgraded to a WebSocket (offers and answers: small writes a peer waits for) gets
 * it with the upgrade. How long the round trips take is bench/http_nodelay_bench.ts's measurement, not a test's.
 */
import assert from "node:assert/strict";
import { libc, libcSupport } from "../src/os/libc.ts";
import { startWire } from "./support/wireServer.ts";
import { startWs } from "./support/wsHarness.ts";

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const HASH = "%01".repeat(20);

/** The inode of the TCP socket from 127.0.0.1:`localPort` to 127.0.0.1:`remotePort`, if any. */
function socketInode(localPort: number, remotePort: number): string | null {
  const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  const local = `0100007F:${hexPort(localPort)}`;
  const remote = `0100007F:${hexPort(remotePort)}`;
  for (const line of Deno.readTextFileSync("/proc/self/net/tcp").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === local && fields[2] === remote) return fields[9];
  }
  return null;
}

/** This process's descriptor for the server's end of `client`'s connection, once accepted. */
async function serverFd(
  serverPort: number,
  client: { conn: Deno.TcpConn | Deno.TlsConn },
): Promise<number> {
  const clientPort = client.conn.localAddr.port;
  const deadline = performance.now() + 10_000;
  for (;;) {
    const inode = socketInode(serverPort, clientPort);
    if (inode !== null) {
      for (const entry of Deno.readDirSync("/proc/self/fd")) {
        try {
          if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === `socket:[${inode}]`) {
            return Number(entry.name);
          }
        } catch {
          // closed meanwhile
        }
      }
    }
    if (performance.now() > deadline) throw new Error("the server never accepted the connection");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** TCP_NODELAY on descriptor `fd`, read with getsockopt. */
function noDelay(fd: number): boolean {
  const value = new Int32Array(1);
  const length = new Uint32Array([4]);
  const result = libc().getsockopt(
    fd,
    IPPROTO_TCP,
    TCP_NODELAY,
    new Uint8Array(value.buffer),
    new Uint8Array(length.buffer),
  );
  assert.equal(result, 0, "getsockopt failed");
  return value[0] !== 0;
}

Deno.test({
  name: "HTTP: a kept-open connection gets TCP_NODELAY with its first reply, on either path",
  ignore: libcSupport() !== undefined,
}, async () => {
  await using wire = startWire();
  const announce = `/announce?info_hash=${HASH}&peer_id=-XX0001-000000000000&port=1&left=0`;
  // An announce takes the hot path (one write); any other route the streamed one, through
  // handle() (here a 404).
  for (const [path, status] of [[announce, 200], ["/elsewhere", 404]] as const) {
    await using client = await wire.connect();
    const fd = await serverFd(wire.port, client);
    assert.equal(noDelay(fd), false, "off until the first reply (as Deno accepts a socket)");
    await client.send(`GET ${path} HTTP/1.1\r\nHost: otter\r\n\r\n`);
    assert.equal((await client.response()).status, status, path);
    assert.equal(noDelay(fd), true, `on after the first reply to ${path}`);
  }
});

Deno.test({
  name: "WebSocket: an upgraded connection gets TCP_NODELAY with the upgrade",
  ignore: libcSupport() !== undefined,
}, async () => {
  await using otter = startWs();
  await using client = await otter.connect();
  assert.equal(noDelay(await serverFd(otter.port, client)), true);
});
