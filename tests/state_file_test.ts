/**
 * Warm restart: the state file format (CRC-32 vectors, round trip through a real SwarmTable,
 * ages across downtime, every corruption class rejected before anything is restored, a sliced save
 * while the table changes under it), then real otter processes: swarms and downloaded counts
 * survive a SIGTERM restart, peers that expire during the downtime are gone, a damaged file is
 * set aside with one log line, and --state-every saves without a stop.
 */
import assert from "node:assert/strict";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { crc32 } from "../src/hash/crc32.ts";
import { Clock } from "../src/config/clock.ts";
import { StateFile, writeStateFile } from "../src/persist/stateFile.ts";
import {
  checkState,
  encodeState,
  joinChunks,
  restoreState,
  STATE_VERSION,
} from "../src/persist/stateFormat.ts";
import { startOtter } from "./support/otterProcess.ts";
import {
  announcePacket,
  announcePeers,
  readU32,
  scrapePacket,
  UdpTestClient,
} from "./support/udpClient.ts";
import { bdecode, type Decoded } from "./support/bencode.ts";

// ---------------------------------------------------------------- helpers

function hashOf(n: number): Uint8Array {
  const h = new Uint8Array(20);
  new DataView(h.buffer).setUint32(0, n * 2654435761 >>> 0);
  h[19] = n & 0xff;
  return h;
}

function v4(n: number): Uint8Array {
  return new Uint8Array([10, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

function v6(n: number): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0x20;
  a[1] = 0x01;
  new DataView(a.buffer).setUint32(12, n);
  return a;
}

const NO_PEERS = new Uint8Array(0);

/** Every torrent of the store as text: hash, downloaded, and its sorted peers with lastSeen. */
function snapshot(store: SwarmTable): Map<string, string> {
  const out = new Map<string, string>();
  const hash = new Uint8Array(20);
  for (let slot = 0; slot < store.slotCount; slot++) {
    if (!store.slotInUse(slot)) continue;
    store.copyInfoHash(slot, hash, 0);
    store.slotCounts(slot);
    const peers: string[] = [];
    for (const family of [4, 6] as const) {
      store.forEachPeer(slot, family, (address, offset, port, seeder, lastSeen) => {
        const bytes = Array.from(address.subarray(offset, offset + (family === 4 ? 4 : 16)));
        peers.push(`${bytes.join(".")}:${port}${seeder ? " seed" : ""} @${lastSeen}`);
      });
    }
    const key = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
    out.set(key, `downloaded ${store.result.downloaded}: ${peers.sort().join(", ")}`);
  }
  return out;
}

/** A store with IPv4 and IPv6 peers, seeders, downloaded counts, a big swarm, and a torrent that
 * has only its downloaded count left. Announces happen at `now` 100..139. */
function sampleStore(): SwarmTable {
  const store = new SwarmTable({ peerTimeout: 2700 });
  for (let t = 0; t < 40; t++) {
    const peers = t === 0 ? 3000 : t % 7;
    for (let p = 0; p < peers; p++) {
      const family = p % 3 === 2 ? 6 : 4;
      const address = family === 4 ? v4(p) : v6(p);
      const seeder = p % 4 === 0;
      store.announce(
        hashOf(t),
        0,
        family,
        address,
        0,
        1000 + p,
        seeder ? 1 : 2,
        seeder,
        0,
        100 + (p % 40),
        NO_PEERS,
        0,
      );
    }
  }
  // Torrent 99: one completed download, then its only peer left.
  store.announce(hashOf(99), 0, 4, v4(1), 0, 5000, 1, true, 0, 120, NO_PEERS, 0);
  store.announce(hashOf(99), 0, 4, v4(1), 0, 5000, 3, true, 0, 121, NO_PEERS, 0);
  return store;
}

async function encoded(store: SwarmTable, now: number, savedAtMs = Date.now()) {
  return joinChunks((await encodeState(store, now, savedAtMs)).chunks);
}

function withCrc(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(12, crc32(copy, 16), true);
  return copy;
}

// ---------------------------------------------------------------- format

Deno.test("crc32: standard check values, incremental", () => {
  const text = new TextEncoder().encode("123456789");
  assert.equal(crc32(text), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(new TextEncoder().encode("a")), 0xe8b7be43);
  const long = crypto.getRandomValues(new Uint8Array(1001));
  assert.equal(crc32(long, 333, long.length, crc32(long, 0, 333)), crc32(long));
});

Deno.test("state format: round trip restores every torrent, peer, seeder and count", async () => {
  const store = sampleStore();
  const bytes = await encoded(store, 140);
  const summary = checkState(bytes);
  assert.equal(typeof summary, "object", String(summary));
  if (typeof summary === "string") return;
  assert.equal(summary.torrents, store.torrents);
  assert.equal(summary.peers4, store.peers4);
  assert.equal(summary.peers6, store.peers6);
  assert.deepEqual(
    Array.from(bytes.subarray(0, 8)),
    Array.from(new TextEncoder().encode("OTTRSTAT")),
  );
  assert.equal(new DataView(bytes.buffer).getUint32(8, true), STATE_VERSION);

  // Restored at now = 1000 with no downtime: each peer's lastSeen moves by 1000 - 140.
  const fresh = new SwarmTable({ peerTimeout: 2700 });
  const counts = restoreState(bytes, fresh, 1000, 0, 2700);
  assert.equal(counts.torrents, store.torrents);
  assert.equal(counts.peers, store.peers4 + store.peers6);
  assert.equal(counts.expired, 0);
  assert.equal(counts.refused, 0);
  const shift = (s: string) => s.replace(/@(\d+)/g, (_, n) => `@${Number(n) + 860}`);
  const before = new Map([...snapshot(store)].map(([k, v]) => [k, shift(v)]));
  assert.deepEqual(snapshot(fresh), before);
  assert.equal(fresh.seeders4, store.seeders4);
  assert.equal(fresh.seeders6, store.seeders6);
  assert.ok(fresh.scrape(hashOf(99), 0) && fresh.result.downloaded === 1);
});

Deno.test("state format: downtime ages peers; those reaching peer-timeout are dropped", async () => {
  const store = new SwarmTable({ peerTimeout: 100 });
  // Ages at the save (now = 200): 0, 30, 60, 90.
  for (const [i, seen] of [200, 170, 140, 110].entries()) {
    store.announce(hashOf(1), 0, 4, v4(i), 0, 2000 + i, 2, false, 0, seen, NO_PEERS, 0);
  }
  store.announce(hashOf(2), 0, 6, v6(9), 0, 3000, 2, false, 0, 110, NO_PEERS, 0);
  const bytes = await encoded(store, 200);
  const fresh = new SwarmTable({ peerTimeout: 100 });
  // Down 40 s: ages become 40, 70, 100, 130 → the last two are gone, and all of torrent 2.
  const counts = restoreState(bytes, fresh, 5, 40, 100);
  assert.deepEqual(counts, {
    torrents: 1,
    peers: 2,
    expired: 3,
    refused: 0,
    forbidden: 0,
    forbiddenPeers: 0,
  });
  const seen = [...snapshot(fresh).values()][0];
  assert.match(seen, /10\.0\.0\.0:2000 @-35/);
  assert.match(seen, /10\.0\.0\.1:2001 @-65/);
  assert.equal(fresh.torrents, 1);
  // The store still expires restored peers on time: at now 50 they are 85 and 115 s old, at 66
  // the younger one is 101.
  fresh.cleanAll(50);
  assert.equal(fresh.peers4, 1);
  fresh.cleanAll(66);
  assert.equal(fresh.torrents, 0);
});

Deno.test("state restore: counts only the peers and torrents a capped store accepts", async () => {
  // Torrent 1: 4 peers (one a seeder), torrent 2: 3 peers, torrent 3: none, downloaded 2.
  const store = new SwarmTable({ peerTimeout: 2700 });
  for (let p = 0; p < 4; p++) {
    store.announce(
      hashOf(1),
      0,
      4,
      v4(p),
      0,
      1000 + p,
      p === 0 ? 1 : 2,
      p === 0,
      0,
      50,
      NO_PEERS,
      0,
    );
  }
  for (let p = 0; p < 3; p++) {
    store.announce(hashOf(2), 0, 6, v6(p), 0, 2000 + p, 2, false, 0, 50, NO_PEERS, 0);
  }
  store.announce(hashOf(3), 0, 4, v4(9), 0, 3000, 1, true, 0, 50, NO_PEERS, 0);
  store.announce(hashOf(3), 0, 4, v4(9), 0, 3000, 3, true, 0, 50, NO_PEERS, 0);
  const bytes = await encoded(store, 60);

  // --max-peers 5: five of the seven peers fit, whichever torrent the file lists first, and both
  // torrents get some; the peerless one is not a peer.
  const capped = new SwarmTable({ peerTimeout: 2700, maxPeers: 5 });
  const counts = restoreState(bytes, capped, 100, 0, 2700);
  assert.deepEqual(counts, {
    torrents: 3,
    peers: 5,
    expired: 0,
    refused: 2,
    forbidden: 0,
    forbiddenPeers: 0,
  });
  assert.deepEqual([capped.torrents, capped.peers4 + capped.peers6], [3, 5]);
  assert.equal(capped.restoreSkipped, 2);

  // --max-torrents 1: the first torrent in the file and its peers; the other torrent's peers and
  // the peerless torrent are refused, and none of them is counted.
  const oneTorrent = new SwarmTable({ peerTimeout: 2700, maxTorrents: 1 });
  const one = restoreState(bytes, oneTorrent, 100, 0, 2700);
  assert.equal(oneTorrent.torrents, 1);
  assert.equal(one.torrents, 1);
  assert.equal(one.peers, oneTorrent.peers4 + oneTorrent.peers6);
  assert.ok(one.peers === 4 || one.peers === 3 || one.peers === 0, `${one.peers} peers`);
  assert.equal(one.peers + one.refused, 7);
});

Deno.test("state format: every flipped byte and every truncation is refused", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  store.announce(hashOf(1), 0, 4, v4(1), 0, 1111, 1, true, 0, 10, NO_PEERS, 0);
  store.announce(hashOf(1), 0, 6, v6(2), 0, 2222, 2, false, 0, 10, NO_PEERS, 0);
  store.announce(hashOf(2), 0, 4, v4(3), 0, 3333, 2, false, 0, 10, NO_PEERS, 0);
  const bytes = await encoded(store, 12);
  assert.equal(typeof checkState(bytes), "object");
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = bytes.slice();
      bad[i] ^= mask;
      assert.equal(typeof checkState(bad), "string", `flip ${mask} at ${i}`);
    }
  }
  for (let n = 0; n < bytes.length; n++) {
    assert.equal(typeof checkState(bytes.subarray(0, n)), "string", `truncated to ${n}`);
  }
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.equal(typeof checkState(longer), "string");
});

Deno.test("state format: each corruption class has its own reason", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  store.announce(hashOf(1), 0, 4, v4(1), 0, 1111, 2, false, 0, 10, NO_PEERS, 0);
  store.announce(hashOf(2), 0, 4, v4(2), 0, 2222, 2, false, 0, 10, NO_PEERS, 0);
  const good = await encoded(store, 12);
  const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset);
  const cases: [string, Uint8Array, RegExp][] = [];
  cases.push(["empty", new Uint8Array(0), /too short/]);
  cases.push(["header only", good.subarray(0, 20), /too short/]);
  const magic = good.slice();
  magic[0] = 0x58;
  cases.push(["magic", magic, /bad magic/]);
  const version = good.slice();
  view(version).setUint32(8, 2, true);
  cases.push(["version", version, /unsupported state file version 2/]);
  const flipped = good.slice();
  flipped[good.length - 3] ^= 1;
  cases.push(["flipped", flipped, /checksum mismatch/]);
  cases.push(["truncated", good.subarray(0, good.length - 1), /checksum mismatch/]);
  // Structural damage behind a valid checksum (a writer bug, or a crafted file).
  const moreTorrents = good.slice();
  view(moreTorrents).setUint32(24, 3, true);
  cases.push(["torrent count", withCrc(moreTorrents), /truncated in torrent 3 of 3/]);
  const fewerPeers = good.slice();
  view(fewerPeers).setUint32(28, 1, true);
  cases.push(["peer count", withCrc(fewerPeers), /more peers than the header/]);
  const morePeers = good.slice();
  view(morePeers).setUint32(28, 3, true);
  cases.push(["peer total", withCrc(morePeers), /peer counts disagree/]);
  const port0 = good.slice();
  port0[40 + 36 + 4] = 0;
  port0[40 + 36 + 5] = 0;
  cases.push(["port 0", withCrc(port0), /port 0/]);
  const trailing = new Uint8Array(good.length + 4);
  trailing.set(good);
  cases.push(["trailing", withCrc(trailing), /4 bytes after the last torrent/]);
  const reserved = good.slice();
  reserved[36] = 1;
  cases.push(["reserved", withCrc(reserved), /reserved/]);
  for (const [name, bytes, reason] of cases) {
    const result = checkState(bytes);
    assert.equal(typeof result, "string", name);
    assert.match(result as string, reason, name);
  }
});

Deno.test("sliced save that starts during a table resize still has every torrent", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  // Stop right after the table starts to grow: most rows are still in the old table.
  let torrents = 0;
  do {
    for (let p = 0; p < 4; p++) {
      store.announce(hashOf(torrents), 0, 4, v4(p), 0, 1000 + p, 2, false, 0, 50, NO_PEERS, 0);
    }
    torrents++;
  } while (!store.resizing || torrents < 20000);
  // Between slices clients refresh torrents, which moves their rows to the new table.
  let pauses = 0;
  let refreshed = 0;
  const pause = () => {
    pauses++;
    for (let i = 0; i < 200; i++) {
      const t = (refreshed++ * 7919) % torrents;
      store.announce(hashOf(t), 0, 4, v4(0), 0, 1000, 0, false, 0, 55, NO_PEERS, 0);
    }
    return Promise.resolve();
  };
  const result = await encodeState(store, 60, Date.now(), pause);
  assert.equal(result.torrents, torrents);
  const fresh = new SwarmTable({ peerTimeout: 2700 });
  restoreState(joinChunks(result.chunks), fresh, 60, 0, 2700);
  for (let t = 0; t < torrents; t++) {
    assert.ok(fresh.scrape(hashOf(t), 0), `torrent ${t}`);
    assert.equal(fresh.result.incomplete, 4);
  }
  assert.ok(pauses >= 2, `only ${pauses} pauses`);
});

Deno.test("sliced save: announces and table resizes between slices still give a valid file", async () => {
  const store = new SwarmTable({ peerTimeout: 2700 });
  for (let t = 0; t < 10000; t++) {
    for (let p = 0; p < 12; p++) {
      store.announce(hashOf(t), 0, 4, v4(p), 0, 1000 + p, 2, false, 0, 50, NO_PEERS, 0);
    }
  }
  let pauses = 0;
  let resizes = 0;
  let next = 100_000;
  const pause = () => {
    pauses++;
    const slots = store.slotCount;
    // New torrents grow the table under the walk (forcing restarts) at the first pauses.
    const burst = pauses <= 2 ? 8000 : 1;
    for (let i = 0; i < burst; i++) {
      store.announce(hashOf(next++), 0, 4, v4(1), 0, 7, 2, false, 0, 60, NO_PEERS, 0);
    }
    // And a deletion (stopped event) now and then, which shifts rows back.
    store.announce(hashOf(next - 2), 0, 4, v4(1), 0, 7, 3, false, 0, 60, NO_PEERS, 0);
    if (store.slotCount !== slots) resizes++;
    return Promise.resolve();
  };
  const result = await encodeState(store, 60, Date.now(), pause);
  const bytes = joinChunks(result.chunks);
  const summary = checkState(bytes);
  assert.equal(typeof summary, "object", String(summary));
  const fresh = new SwarmTable({ peerTimeout: 2700 });
  restoreState(bytes, fresh, 60, 0, 2700);
  // Every torrent that existed throughout the save is in the file, with all its peers.
  for (let t = 0; t < 10000; t++) {
    assert.ok(fresh.scrape(hashOf(t), 0), `torrent ${t}`);
    assert.equal(fresh.result.incomplete, 12);
  }
  assert.ok(resizes >= 1, "the table never grew under the walk");
  assert.ok(pauses >= 8, `only ${pauses} pauses`);
});

Deno.test("StateFile: missing file starts empty, corrupt file is set aside, good file restores", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/state.bin`;
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);
  try {
    const clock = new Clock();
    const empty = new SwarmTable({ peerTimeout: 2700 });
    const first = await StateFile.open(path, empty, clock, { every: 3600, peerTimeout: 2700, log });
    assert.deepEqual(lines, [`state ${path}: no such file yet; starting empty`]);
    empty.announce(hashOf(5), 0, 4, v4(5), 0, 55, 1, true, 0, clock.now, NO_PEERS, 0);
    assert.equal(await first.close(), true);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["state.bin"]);

    lines.length = 0;
    const restored = new SwarmTable({ peerTimeout: 2700 });
    const second = await StateFile.open(path, restored, clock, {
      every: 3600,
      peerTimeout: 2700,
      log,
    });
    second.abandon();
    assert.equal(lines.length, 1);
    assert.match(lines[0], /restored 1 torrents, 1 peers \(0 expired/);
    assert.ok(restored.scrape(hashOf(5), 0));
    assert.deepEqual([restored.result.complete, restored.result.downloaded], [1, 1]);

    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 1] ^= 0x40;
    await Deno.writeFile(path, bytes);
    lines.length = 0;
    const third = await StateFile.open(path, new SwarmTable({ peerTimeout: 2700 }), clock, {
      every: 3600,
      peerTimeout: 2700,
      log,
    });
    third.abandon();
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      /checksum mismatch .*moved to .*state\.bin\.corrupt-\d{8}T\d{6}Z; starting empty/,
    );
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.equal(names.length, 1);
    assert.match(names[0], /^state\.bin\.corrupt-/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StateFile: the restore line counts only the peers a --max-peers store took", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/state.bin`;
  try {
    const full = new SwarmTable({ peerTimeout: 2700 });
    for (let p = 0; p < 6; p++) {
      full.announce(hashOf(7), 0, 4, v4(p), 0, 4000 + p, 2, false, 0, 20, NO_PEERS, 0);
    }
    await writeStateFile(path, (await encodeState(full, 20, Date.now())).chunks);
    const lines: string[] = [];
    const capped = new SwarmTable({ peerTimeout: 2700, maxPeers: 4 });
    const state = await StateFile.open(path, capped, new Clock(), {
      every: 3600,
      peerTimeout: 2700,
      log: (line) => lines.push(line),
    });
    state.abandon();
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(
      lines[0],
      /: restored 1 torrents, 4 peers \(0 expired during \d+ s down, 2 refused by the store\) in/,
    );
    assert.equal(capped.peers4, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeStateFile: replaces the file whole and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  try {
    const path = `${dir}/s`;
    await Deno.writeTextFile(path, "old");
    await writeStateFile(path, [new Uint8Array([1, 2]), new Uint8Array([3])]);
    assert.deepEqual(Array.from(await Deno.readFile(path)), [1, 2, 3]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["s"]);
    await assert.rejects(writeStateFile(`${dir}/missing/s`, [new Uint8Array(1)]));
    await assert.rejects(
      StateFile.open(`${dir}/missing/s`, new SwarmTable({ peerTimeout: 10 }), new Clock(), {
        every: 60,
        peerTimeout: 10,
        log: () => {},
      }),
      /directory .*missing does not exist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------- real processes

const LISTEN = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** UDP announce from the client's socket on behalf of peer port `port`; returns the reply. */
async function udpAnnounce(
  client: UdpTestClient,
  infoHash: Uint8Array,
  port: number,
  options: { seeder?: boolean; event?: number; numwant?: number } = {},
): Promise<Uint8Array> {
  const connectionId = await client.connect();
  const reply = await client.request(announcePacket({
    connectionId,
    infoHash,
    port,
    left: options.seeder ? 0 : 100,
    event: options.event ?? 2,
    numwant: options.numwant ?? 50,
  }));
  if (reply === null || readU32(reply, 0) !== 1) throw new Error("no announce reply");
  return reply;
}

/** [seeders, completed, leechers] per hash, over UDP. */
async function udpScrape(client: UdpTestClient, hashes: Uint8Array[]): Promise<number[][]> {
  const connectionId = await client.connect();
  const reply = await client.request(scrapePacket(connectionId, hashes));
  if (reply === null || readU32(reply, 0) !== 2) throw new Error("no scrape reply");
  return hashes.map((_, i) => [0, 4, 8].map((o) => readU32(reply, 8 + 12 * i + o)));
}

function percent(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

async function httpAnnounce(
  base: string,
  infoHash: Uint8Array,
  port: number,
  left: number,
  event = "started",
): Promise<Record<string, Decoded>> {
  const url =
    `${base}/announce?info_hash=${percent(infoHash)}&peer_id=${"-OT0001-".padEnd(20, "p")}` +
    `&port=${port}&uploaded=0&downloaded=0&left=${left}&event=${event}&compact=1`;
  const response = await fetch(url);
  return bdecode(new Uint8Array(await response.arrayBuffer())) as Record<string, Decoded>;
}

function compactPorts(peers: Decoded | undefined): number[] {
  const bytes = peers as Uint8Array;
  const ports: number[] = [];
  for (let o = 0; o + 6 <= bytes.length; o += 6) ports.push((bytes[o + 4] << 8) | bytes[o + 5]);
  return ports.sort((a, b) => a - b);
}

function stateLines(lines: string[]): string[] {
  return lines.filter((line) => line.startsWith("state "));
}

Deno.test("otter --state: swarms and downloaded counts survive a SIGTERM restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/otter.state`;
  const udpHash = hashOf(1);
  const httpHash = hashOf(2);
  try {
    {
      await using otter = await startOtter([...LISTEN, "--state", path]);
      assert.deepEqual(stateLines(otter.stdout), [
        `state ${path}: no such file yet; starting empty`,
      ]);
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        for (let p = 0; p < 5; p++) await udpAnnounce(client, udpHash, 6000 + p);
        // Two of them finish: seeders now, and downloaded 2.
        await udpAnnounce(client, udpHash, 6000, { seeder: true, event: 1 });
        await udpAnnounce(client, udpHash, 6001, { seeder: true, event: 1 });
        assert.deepEqual(await udpScrape(client, [udpHash]), [[2, 2, 3]]);
      } finally {
        client.close();
      }
      await httpAnnounce(otter.http[0], httpHash, 7000, 0, "completed");
      await httpAnnounce(otter.http[0], httpHash, 7001, 50);
      const stopped = await otter.stop();
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stateLines(otter.stdout).at(-1)!, /saved 2 torrents, 7 peers/);
    }
    {
      await using otter = await startOtter([...LISTEN, "--state", path]);
      const lines = stateLines(otter.stdout);
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /restored 2 torrents, 7 peers \(0 expired/);
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        assert.deepEqual(await udpScrape(client, [udpHash, httpHash]), [[2, 2, 3], [1, 1, 1]]);
        // A newcomer is handed the restored peers.
        const reply = await udpAnnounce(client, udpHash, 6100, { numwant: 50 });
        const ports = announcePeers(reply, 4).map((peer) => Number(peer.split(":")[1])).sort();
        assert.deepEqual(ports, [6000, 6001, 6002, 6003, 6004]);
      } finally {
        client.close();
      }
      const http = await httpAnnounce(otter.http[0], httpHash, 7002, 10);
      assert.deepEqual(compactPorts(http.peers), [7000, 7001]);
      assert.equal(http.downloaded, 1);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("otter --state with a lower --max-peers: the restore line counts only peers kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/otter.state`;
  const hash = hashOf(8);
  try {
    {
      await using otter = await startOtter([...LISTEN, "--state", path]);
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        for (let p = 0; p < 6; p++) await udpAnnounce(client, hash, 6600 + p);
      } finally {
        client.close();
      }
      assert.equal((await otter.stop()).code, 0);
      assert.match(stateLines(otter.stdout).at(-1)!, /saved 1 torrents, 6 peers/);
    }
    {
      await using otter = await startOtter([...LISTEN, "--state", path, "--max-peers", "4"]);
      const lines = stateLines(otter.stdout);
      assert.equal(lines.length, 2, lines.join("\n"));
      assert.match(
        lines[0],
        /restored 1 torrents, 4 peers \(0 expired during \d+ s down, 2 refused by the store\)/,
      );
      assert.match(lines[1], /2 peers and peerless torrents not restored: over .*--max-peers 4/);
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        assert.deepEqual(await udpScrape(client, [hash]), [[0, 0, 4]]);
      } finally {
        client.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("otter --state: a peer whose age passes --peer-timeout during the downtime is gone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/otter.state`;
  const hash = hashOf(3);
  const args = [...LISTEN, "--state", path, "--peer-timeout", "8"];
  try {
    {
      await using otter = await startOtter(args);
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        await udpAnnounce(client, hash, 6500); // old: about 7 s before the stop
        await sleep(7000);
        await udpAnnounce(client, hash, 6501); // fresh at the stop
      } finally {
        client.close();
      }
      assert.equal((await otter.stop()).code, 0);
    }
    // Down 1.5 s: the old peer is 8.5+ s old at restart, the fresh one 1.5 s plus the time otter
    // takes to stop and start, which may be up to 6.5 s on a loaded machine.
    await sleep(1500);
    {
      await using otter = await startOtter(args);
      assert.match(stateLines(otter.stdout)[0], /restored 1 torrents, 1 peers \(1 expired/);
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        const reply = await udpAnnounce(client, hash, 6502);
        assert.deepEqual(announcePeers(reply, 4).map((peer) => peer.split(":")[1]), ["6501"]);
      } finally {
        client.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("otter --state: a flipped byte or a truncated file is set aside and otter starts empty", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/otter.state`;
  const hash = hashOf(4);
  try {
    {
      await using otter = await startOtter([...LISTEN, "--state", path]);
      await httpAnnounce(otter.http[0], hash, 7100, 0);
      assert.equal((await otter.stop()).code, 0);
    }
    const good = await Deno.readFile(path);
    const damages: [string, Uint8Array, RegExp][] = [
      ["flipped", good.map((b, i) => i === 50 ? b ^ 0x10 : b), /checksum mismatch/],
      ["truncated", good.subarray(0, good.length - 7), /checksum mismatch/],
      ["cut short", good.subarray(0, 10), /too short/],
    ];
    for (const [name, bytes, reason] of damages) {
      await Deno.writeFile(path, bytes);
      await using otter = await startOtter([...LISTEN, "--state", path]);
      const lines = stateLines(otter.stdout);
      assert.equal(lines.length, 1, `${name}: ${lines.join("\n")}`);
      assert.match(lines[0], reason, name);
      assert.match(
        lines[0],
        /moved to .*otter\.state\.corrupt-\d{8}T\d{6}Z; starting empty$/,
        name,
      );
      const client = new UdpTestClient(otter.udp[0].hostname, otter.udp[0].port);
      try {
        assert.deepEqual(await udpScrape(client, [hash]), [[0, 0, 0]], name);
      } finally {
        client.close();
      }
      const aside = [...Deno.readDirSync(dir)].filter((e) => e.name.includes(".corrupt-"));
      assert.ok(aside.length >= 1, name);
      for (const entry of aside) await Deno.remove(`${dir}/${entry.name}`);
      assert.equal((await otter.stop()).code, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("otter --state-every 1: the file is written while otter runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/otter.state`;
  const hash = hashOf(5);
  try {
    await using otter = await startOtter([...LISTEN, "--state", path, "--state-every", "1"]);
    await httpAnnounce(otter.http[0], hash, 7200, 0);
    await httpAnnounce(otter.http[0], hash, 7201, 10);
    const deadline = Date.now() + 10_000;
    let summary: ReturnType<typeof checkState> = "not written yet";
    while (typeof summary === "string" || summary.peers4 < 2) {
      if (Date.now() > deadline) throw new Error(`no periodic save: ${JSON.stringify(summary)}`);
      await sleep(100);
      try {
        summary = checkState(await Deno.readFile(path));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    assert.deepEqual([summary.torrents, summary.peers4, summary.peers6], [1, 2, 0]);
    assert.ok(!otter.stdout.includes("otter: stopping"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("otter: SIGHUP with a new state-every reschedules the periodic save", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-state-" });
  const path = `${dir}/otter.state`;
  const config = `${dir}/otter.toml`;
  const base = `http = ["127.0.0.1:0"]\nudp = ["127.0.0.1:0"]\nstate = ${JSON.stringify(path)}\n`;
  try {
    await Deno.writeTextFile(config, `${base}state-every = 3600\n`);
    await using otter = await startOtter(["--config", config], { expect: { http: 1, udp: 1 } });
    await httpAnnounce(otter.http[0], hashOf(6), 7300, 0);
    await sleep(1500);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    await Deno.writeTextFile(config, `${base}state-every = 1\n`);
    Deno.kill(otter.pid, "SIGHUP");
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const summary = checkState(await Deno.readFile(path));
        assert.equal(typeof summary, "object");
        break;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      if (Date.now() > deadline) throw new Error("no save after SIGHUP set state-every = 1");
      await sleep(100);
    }
    assert.ok(
      otter.stdout.some((line) => /state-every 3600 -> 1/.test(line)),
      otter.stdout.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("otter --state without write permission: one clear line at start, exit 1", async () => {
  const dir = await Deno.makeTempDir();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-ffi",
      new URL("../main.ts", import.meta.url).pathname,
      ...LISTEN,
      "--state",
      `${dir}/otter.state`,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 1, stderr);
  assert.equal(stderr.split("\n").length, 1, stderr);
  assert.match(stderr, /^otter: cannot write state file .*otter\.state/);
  await Deno.remove(dir, { recursive: true });
});
