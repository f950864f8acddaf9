/**
 * The tracker clock is monotonic: a wall clock stepped back by hours or forward past
 * --peer-timeout (NTP, a VM resume) neither expires peers nor invalidates connection ids, with
 * fake time sources and over a real UDP socket with Date.now itself stepped. Wall time stays in
 * the state file only: its saved-at stamp and the downtime a restore adds to every peer's age.
 */
import assert from "node:assert/strict";
import { Clock, type TimeSources } from "../src/config/clock.ts";
import { parseCommandLine } from "../src/config/config.ts";
import { StateFile } from "../src/persist/stateFile.ts";
import { ConnectionIds } from "../src/protocol/connectionId.ts";
import { startTracker } from "../src/servers/startTracker.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import {
  announcePacket,
  connectPacket,
  readU32,
  scrapePacket,
  UdpTestClient,
} from "./support/udpClient.ts";

const HOUR_MS = 3600_000;
const PEER_TIMEOUT = 300;
const NO_PEERS = new Uint8Array(0);
const LOCALHOST = new Uint8Array([127, 0, 0, 1]);

/** Time sources the test moves by hand: `tick` advances both, `stepWall` only the wall clock. */
class FakeTime implements TimeSources {
  mono = 5_000;
  wall = Date.UTC(2025, 0, 1);
  monotonicMs = () => this.mono;
  wallMs = () => this.wall;
  tick(ms: number): void {
    this.mono += ms;
    this.wall += ms;
  }
  stepWall(ms: number): void {
    this.wall += ms;
  }
}

function hashOf(n: number): Uint8Array {
  const h = new Uint8Array(20).fill(0x11);
  h[0] = n;
  return h;
}

function seedersAndLeechers(store: SwarmTable, n: number): [number, number] {
  assert.ok(store.scrape(hashOf(n), 0), `torrent ${n} is gone`);
  return [store.result.complete, store.result.incomplete];
}

Deno.test("Clock: wall steps both ways leave now, stored peers and connection ids alone", () => {
  const time = new FakeTime();
  const clock = new Clock(time);
  const store = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
  const ids = new ConnectionIds(new Uint32Array([1, 2]));
  time.tick(10_000);
  clock.update();
  assert.equal(clock.now, 11);
  store.announce(hashOf(1), 0, 4, LOCALHOST, 0, 6881, 2, true, 0, clock.now, NO_PEERS, 0);
  store.announce(hashOf(1), 0, 4, LOCALHOST, 0, 6882, 2, false, 0, clock.now, NO_PEERS, 0);
  const issued = new Uint8Array(8);
  ids.issue(clock.now, 4, LOCALHOST, 0, issued, 0);

  const steps = [-3 * HOUR_MS, 2 * PEER_TIMEOUT * 1000, -(clock.now + 60) * 1000];
  for (const step of steps) {
    time.stepWall(step);
    time.tick(1_000);
    const before: number = clock.now;
    clock.update();
    assert.equal(clock.now, before + 1, `a wall step of ${step} ms moved now`);
    assert.equal(clock.wallMs(), time.wall, "the wall clock is still there for wall times");
    store.cleanAll(clock.now);
    assert.deepEqual(seedersAndLeechers(store, 1), [1, 1], `after a wall step of ${step} ms`);
    assert.ok(ids.check(clock.now, 4, LOCALHOST, 0, issued, 0), "the old id is refused");
    const fresh = new Uint8Array(8);
    ids.issue(clock.now, 4, LOCALHOST, 0, fresh, 0);
    assert.ok(ids.check(clock.now, 4, LOCALHOST, 0, fresh, 0), "a new id is refused");
  }
  // Expiry itself still runs on the monotonic clock.
  time.tick((PEER_TIMEOUT + 1) * 1000);
  clock.update();
  store.cleanAll(clock.now);
  assert.equal(store.peers4, 0);
});

Deno.test("StateFile: saved-at and downtime come from the wall clock, ages from the new process's clock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter-clock-" });
  const path = `${dir}/state.bin`;
  const lines: string[] = [];
  const options = { every: 3600, peerTimeout: PEER_TIMEOUT, log: (l: string) => lines.push(l) };
  try {
    // First process: one peer announced at second 1, one at second 201; saved at second 201.
    const before = new FakeTime();
    const first = new Clock(before);
    const store = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
    const state = await StateFile.open(path, store, first, options);
    first.update();
    store.announce(hashOf(1), 0, 4, LOCALHOST, 0, 1001, 2, false, 0, first.now, NO_PEERS, 0);
    before.tick(200_000);
    first.update();
    store.announce(hashOf(1), 0, 4, LOCALHOST, 0, 1002, 2, false, 0, first.now, NO_PEERS, 0);
    // A wall step while running changes nothing that is saved but the saved-at stamp.
    before.stepWall(-3 * HOUR_MS);
    assert.equal(await state.close(), true);
    const savedAt = new DataView((await Deno.readFile(path)).buffer).getBigUint64(16, true);
    assert.equal(Number(savedAt), before.wall, "saved-at is the wall clock");

    // Second process, 60 s of wall time later: its monotonic clock starts anywhere.
    const after = new FakeTime();
    after.mono = 123_456_789;
    after.wall = before.wall + 60_000;
    const second = new Clock(after);
    second.update();
    const restored = new SwarmTable({ peerTimeout: PEER_TIMEOUT });
    lines.length = 0;
    const reopened = await StateFile.open(path, restored, second, options);
    reopened.abandon();
    // Ages 200 + 60 (kept) and 0 + 60.
    assert.match(lines[0], /restored 1 torrents, 2 peers \(0 expired during 60 s down/);
    // The older peer, 260 s old now, expires 41 s later; the other 240 s after that.
    after.tick(40_000);
    second.update();
    restored.cleanAll(second.now);
    assert.equal(restored.peers4, 2);
    after.stepWall(2 * HOUR_MS);
    after.tick(2_000);
    second.update();
    restored.cleanAll(second.now);
    assert.equal(restored.peers4, 1, "the older peer expires on the monotonic clock");

    // Restored once more after the wall clock went back past the save: no downtime, no ages lost.
    lines.length = 0;
    const third = new FakeTime();
    third.wall = before.wall - HOUR_MS;
    const again = await StateFile.open(
      path,
      new SwarmTable({ peerTimeout: PEER_TIMEOUT }),
      new Clock(third),
      options,
    );
    again.abandon();
    assert.match(lines[0], /restored 1 torrents, 2 peers \(0 expired during 0 s down/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------- over a real socket

function scrapeCounts(reply: Uint8Array | null): string {
  if (reply === null) return "no reply";
  if (readU32(reply, 0) === 3) return `error: ${new TextDecoder().decode(reply.subarray(8))}`;
  return `seeders ${readU32(reply, 8)}, leechers ${readU32(reply, 16)}`;
}

Deno.test("otter in-process: Date.now stepped back 3 h and forward past --peer-timeout keeps peers and connection ids", async () => {
  const parsed = parseCommandLine([
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--udp-io",
    "portable",
    "--peer-timeout",
    String(PEER_TIMEOUT),
  ]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  const logs: string[] = [];
  const realNow = Date.now;
  const running = await startTracker(parsed.config, new Clock(), (line) => logs.push(line));
  const client = (() => {
    const port = logs.map((l) => /UDP listening on udp:\/\/127\.0\.0\.1:(\d+)\//.exec(l))
      .find((m) => m !== null)?.[1];
    assert.ok(port !== undefined, logs.join("\n"));
    return new UdpTestClient("127.0.0.1", Number(port));
  })();
  try {
    const hash = hashOf(7);
    const id = await client.connect();
    for (const [port, left] of [[7001, 0], [7002, 0], [7003, 500]]) {
      const reply = await client.request(
        announcePacket({ connectionId: id, infoHash: hash, port, left, event: 2 }),
      );
      assert.ok(reply !== null && readU32(reply, 0) === 1, "announce answered");
    }
    assert.equal(
      scrapeCounts(await client.request(scrapePacket(id, [hash]))),
      "seeders 2, leechers 1",
    );

    for (const stepMs of [-3 * HOUR_MS, 3 * HOUR_MS + 2 * PEER_TIMEOUT * 1000]) {
      Date.now = () => realNow() + stepMs;
      // What the clock's timer does within a second, then a full clean pass on top of the
      // server's own cleaner (every 25 ms).
      running.tracker.clock.update();
      await new Promise((resolve) => setTimeout(resolve, 100));
      running.tracker.store.cleanAll(running.tracker.clock.now);
      assert.equal(
        scrapeCounts(await client.request(scrapePacket(id, [hash]))),
        "seeders 2, leechers 1",
        `Date.now stepped by ${stepMs / 1000} s: with the id issued before the step`,
      );
      const fresh = await client.request(connectPacket(99));
      assert.ok(fresh !== null && fresh.length === 16, "connect answered");
      const again = await client.request(
        announcePacket({ connectionId: fresh.slice(8, 16), infoHash: hash, port: 7003, left: 0 }),
      );
      assert.ok(again !== null && readU32(again, 0) === 1, "announce with a new id answered");
      assert.equal(
        scrapeCounts(await client.request(scrapePacket(fresh.slice(8, 16), [hash]))),
        "seeders 3, leechers 0",
      );
      // Back to a leecher for the next round.
      await client.request(
        announcePacket({ connectionId: fresh.slice(8, 16), infoHash: hash, port: 7003, left: 9 }),
      );
    }
  } finally {
    Date.now = realNow;
    client.close();
    await running.stop();
  }
});
