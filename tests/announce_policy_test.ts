/**
 * Operator policies on the announce path, over real sockets: white and black lists (HTTP failure
 * reason, BEP 15 error; reloads by the file watcher alone, and by SIGHUP alone for a change the
 * watcher cannot see), the client address from trusted proxies only, and deniability's generated
 * peers with counts that agree with scrapes. Where else the lists apply: access_scope_test.ts.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { bdecode, type Decoded, latin1 } from "./support/bencode.ts";
import {
  announcePacket,
  announcePeers,
  readU32,
  scrapePacket,
  UdpTestClient,
} from "./support/udpClient.ts";
import { percentEscape } from "./support/torrent.ts";

function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 13 + i * 11 + 1) & 0xff);
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

type Dict = Record<string, Decoded>;

async function httpAnnounce(
  base: string,
  infoHash: Uint8Array,
  port: number,
  headers: Record<string, string> = {},
  extra = "",
): Promise<Dict> {
  const url =
    `${base}/announce?info_hash=${percentEscape(infoHash)}&peer_id=${"p".repeat(20)}&port=${port}` +
    `&left=10${extra}`;
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  return bdecode(new Uint8Array(await response.arrayBuffer())) as Dict;
}

function failure(reply: Dict): string | undefined {
  const f = reply["failure reason"];
  return f instanceof Uint8Array ? new TextDecoder().decode(f) : undefined;
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("whitelist: listed hashes served, others refused over HTTP and UDP; reloads", async () => {
  const dir = await Deno.makeTempDir();
  const list = `${dir}/whitelist.txt`;
  const allowed = hash(1), other = hash(2), later = hash(3);
  await Deno.writeTextFile(list, `# allowed torrents\n${hex(allowed)}\nnot-a-hash\n`);
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--whitelist",
    list,
  ]);
  assert.match(
    otter.stdout.join("\n") + otter.stderr,
    /whitelist\.txt:3: /,
    "malformed line reported with its number",
  );
  const base = otter.http[0];
  assert.equal(failure(await httpAnnounce(base, allowed, 1000)), undefined);
  assert.match(failure(await httpAnnounce(base, other, 1000)) ?? "", /not authorized/);

  const client = new UdpTestClient("127.0.0.1", otter.udp[0].port);
  try {
    const id = await client.connect();
    const ok = await client.request(
      announcePacket({ connectionId: id, infoHash: allowed, port: 5 }),
    );
    assert.ok(ok);
    assert.equal(readU32(ok, 0), 1);
    const refused = await client.request(
      announcePacket({ connectionId: id, infoHash: other, port: 5 }),
    );
    assert.ok(refused);
    assert.equal(readU32(refused, 0), 3);
    assert.match(new TextDecoder().decode(refused.subarray(8)), /not authorized/);
  } finally {
    client.close();
  }

  // Replace the file the way deploy tools do (write a new one, rename into place).
  await Deno.writeTextFile(`${list}.new`, `${hex(allowed)}\n${hex(later)}\n`);
  await Deno.rename(`${list}.new`, list);
  await waitFor(
    async () => failure(await httpAnnounce(base, later, 1000)) === undefined,
    "the new list after a file change",
  );
  await Deno.remove(dir, { recursive: true });
});

/** Whether `infoHash` is served over HTTP and over UDP: [http, udp]. */
async function served(
  otter: { http: string[]; udp: { port: number }[] },
  infoHash: Uint8Array,
): Promise<[boolean, boolean]> {
  const http = failure(await httpAnnounce(otter.http[0], infoHash, 1000)) === undefined;
  const client = new UdpTestClient("127.0.0.1", otter.udp[0].port);
  try {
    const id = await client.connect();
    const reply = await client.request(announcePacket({ connectionId: id, infoHash, port: 5 }));
    assert.ok(reply, "a UDP announce reply");
    return [http, readU32(reply, 0) === 1];
  } finally {
    client.close();
  }
}

/** "a served, b refused" and the like: each hash's fate over HTTP and UDP. */
async function servedOf(
  otter: { http: string[]; udp: { port: number }[] },
  a: Uint8Array,
  b: Uint8Array,
): Promise<string> {
  const fate = ([http, udp]: [boolean, boolean]) =>
    http && udp
      ? "served"
      : !http && !udp
      ? "refused"
      : `served over ${http ? "HTTP" : "UDP"} only`;
  return `a ${fate(await served(otter, a))}, b ${fate(await served(otter, b))}`;
}

/** The list text for `mode` under which, of `a` and `b`, exactly `allowed` is served. */
function listFor(mode: "white" | "black", allowed: Uint8Array, refused: Uint8Array): string {
  return `${hex(mode === "white" ? allowed : refused)}\n`;
}

for (const mode of ["white", "black"] as const) {
  Deno.test(`${mode}list: the file watcher alone reloads an in-place edit and a rename (no SIGHUP)`, async () => {
    const dir = await Deno.makeTempDir();
    const list = `${dir}/list.txt`;
    const a = hash(40), b = hash(41);
    await Deno.writeTextFile(list, listFor(mode, a, b));
    await using otter = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      `--${mode}list`,
      list,
    ]);
    assert.equal(await servedOf(otter, a, b), "a served, b refused");
    // Edited in place: the same inode, a changed size and mtime.
    await Deno.writeTextFile(list, listFor(mode, b, a));
    await waitFor(async () => (await served(otter, b))[0], "the in-place edit seen");
    assert.equal(await servedOf(otter, a, b), "a refused, b served");
    // Replaced by a rename, as editors and deploy tools do.
    await Deno.writeTextFile(`${list}.tmp`, listFor(mode, a, b));
    await Deno.rename(`${list}.tmp`, list);
    await waitFor(async () => (await served(otter, a))[0], "the renamed file seen");
    assert.equal(await servedOf(otter, a, b), "a served, b refused");
    assert.ok(!otter.stdout.some((l) => l.includes("SIGHUP")), "no SIGHUP was involved");
    await Deno.remove(dir, { recursive: true });
  });

  Deno.test(`${mode}list: SIGHUP alone reloads a change the watcher cannot see (symlink into another directory)`, async () => {
    // otter watches the directory holding the path it was given; the file that path links to
    // lives elsewhere, so editing it makes no event otter sees. Only SIGHUP can reload it.
    const dir = await Deno.makeTempDir();
    await Deno.mkdir(`${dir}/watched`);
    await Deno.mkdir(`${dir}/elsewhere`);
    const target = `${dir}/elsewhere/list.txt`;
    const list = `${dir}/watched/list.txt`;
    const a = hash(42), b = hash(43);
    await Deno.writeTextFile(target, listFor(mode, a, b));
    await Deno.symlink(target, list);
    await using otter = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      `--${mode}list`,
      list,
    ]);
    assert.equal(await servedOf(otter, a, b), "a served, b refused");
    await Deno.writeTextFile(target, listFor(mode, b, a));
    // Ten times the watcher's debounce: had it seen the edit, the new list would be in force.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(
      await servedOf(otter, a, b),
      "a served, b refused",
      "the watcher did not see the edit (else this test would not test SIGHUP)",
    );
    Deno.kill(otter.pid, "SIGHUP");
    await waitFor(async () => (await served(otter, b))[0], "the list after SIGHUP");
    assert.equal(await servedOf(otter, a, b), "a refused, b served");
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("blacklist refuses listed hashes; whitelist with blacklist exits 2", async () => {
  const dir = await Deno.makeTempDir();
  const list = `${dir}/blacklist.txt`;
  const banned = hash(7);
  await Deno.writeTextFile(list, `${hex(banned)}\n`);
  {
    await using otter = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--blacklist",
      list,
    ]);
    assert.match(failure(await httpAnnounce(otter.http[0], banned, 1)) ?? "", /not authorized/);
    assert.equal(failure(await httpAnnounce(otter.http[0], hash(8), 1)), undefined);
  }
  const both = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("../main.ts", import.meta.url).pathname,
      "--whitelist",
      list,
      "--blacklist",
      list,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(both.code, 2);
  assert.match(new TextDecoder().decode(both.stderr), /cannot be used together/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("X-Forwarded-For is believed from trusted proxies only", async () => {
  const infoHash = hash(20);
  // What a proxy that appends (nginx, HAProxy) sends for a client that wrote its own claim.
  const headers = { "x-forwarded-for": "6.6.6.6, 203.0.113.9" };
  {
    await using trusting = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--trust-proxy",
      "127.0.0.0/8",
    ]);
    const reply = await httpAnnounce(trusting.http[0], infoHash, 4000, headers);
    assert.deepEqual([...(reply["external ip"] as Uint8Array)], [203, 0, 113, 9]);
    const real = await httpAnnounce(trusting.http[0], infoHash, 4001, {
      "x-real-ip": "198.51.100.7",
    });
    assert.deepEqual([...(real["external ip"] as Uint8Array)], [198, 51, 100, 7]);
    const peers = real.peers as Uint8Array;
    assert.deepEqual([...peers.subarray(0, 4)], [203, 0, 113, 9], "the proxied client is the peer");
    const v6 = await httpAnnounce(trusting.http[0], infoHash, 4002, {
      "x-forwarded-for": "2001:db8::5",
    });
    assert.equal((v6["external ip"] as Uint8Array).length, 16);
  }
  {
    await using untrusting = await startOtter([
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
      "--trust-proxy",
      "10.0.0.0/8",
    ]);
    const reply = await httpAnnounce(untrusting.http[0], infoHash, 4000, headers);
    assert.deepEqual([...(reply["external ip"] as Uint8Array)], [127, 0, 0, 1]);
  }
});

Deno.test("deniability: generated public peers, counts agree with scrape", async () => {
  await using otter = await startOtter([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--deniability",
    "1",
    "--deniability-max",
    "3",
  ]);
  const base = otter.http[0];
  const infoHash = hash(30);
  await httpAnnounce(base, infoHash, 5001);
  const reply = await httpAnnounce(base, infoHash, 5002, {}, "&numwant=50");
  const peers = reply.peers as Uint8Array;
  const listed: string[] = [];
  for (let o = 0; o < peers.length; o += 6) {
    listed.push(`${peers[o]}.${peers[o + 1]}.${peers[o + 2]}.${peers[o + 3]}`);
  }
  const fakes = listed.filter((a) => a !== "127.0.0.1");
  assert.equal(listed.filter((a) => a === "127.0.0.1").length, 1, "the real peer is still listed");
  assert.ok(fakes.length >= 1 && fakes.length <= 3, `fakes: ${fakes}`);
  for (const a of fakes) {
    const [x, y] = a.split(".").map(Number);
    assert.ok(x !== 10 && x !== 127 && x < 224 && !(x === 192 && y === 168), a);
  }
  // Counts include the generated peers, and scrapes say the same within the interval.
  assert.equal(reply.incomplete, 2 + fakes.length);
  const scrape = bdecode(
    new Uint8Array(
      await (await fetch(`${base}/scrape?info_hash=${percentEscape(infoHash)}`)).arrayBuffer(),
    ),
  ) as Dict;
  const files = scrape.files as Dict;
  assert.equal((files[latin1(infoHash)] as Dict).incomplete, 2 + fakes.length);
  // A repeated announce in the same interval shows the same generated addresses.
  const again = await httpAnnounce(base, infoHash, 5002, {}, "&numwant=50");
  assert.deepEqual(again.peers, reply.peers);

  // The same over UDP.
  const client = new UdpTestClient("127.0.0.1", otter.udp[0].port);
  try {
    const id = await client.connect();
    const udpReply = await client.request(
      announcePacket({ connectionId: id, infoHash, port: 5003 }),
    );
    assert.ok(udpReply);
    const udpPeers = announcePeers(udpReply, 4);
    assert.equal(readU32(udpReply, 12), 3 + fakes.length, "leechers include generated peers");
    assert.ok(udpPeers.length >= 2);
    const udpScrape = await client.request(scrapePacket(id, [infoHash]));
    assert.ok(udpScrape);
    assert.equal(readU32(udpScrape, 16), 3 + fakes.length);
  } finally {
    client.close();
  }
});
