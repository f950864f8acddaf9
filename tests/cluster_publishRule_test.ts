/**
 * Which local announces the cluster publishes (src/cluster/publishRule.ts): each rule on its own,
 * the epoch boundary exactly, the phase spread, the re-publish window, and the default epoch; then
 * LocalChanges over a real SwarmTable records only what is due.
 */
import assert from "node:assert/strict";
import {
  epochLeavesSlack,
  LocalChanges,
  publishDue,
  refreshEpochSeconds,
} from "../src/cluster/publishRule.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { FAMILY_WS, SwarmTable } from "../src/store/swarmTable.ts";

/** A store record's tail word as AnnounceResult.previous holds it. */
function tail(stamp: number, seeder: boolean, port = 6881): number {
  return ((port << 16) | (seeder ? 0x8000 : 0) | (stamp & 0x7fff)) >>> 0;
}

const E = 100;

Deno.test("events, first sightings and seeder flips are always published", () => {
  for (const event of [1, 2, 3]) {
    assert.equal(publishDue(event, tail(1000, false), 0, false, 1000, E, -Infinity), true);
  }
  assert.equal(publishDue(0, 0, 0, false, 1000, E, -Infinity), true, "not held");
  assert.equal(publishDue(0, tail(1000, false), 0, true, 1000, E, -Infinity), true, "flip");
  assert.equal(publishDue(0, tail(1000, true), 0, false, 1000, E, -Infinity), true, "flip back");
  assert.equal(publishDue(0, tail(1000, true), 0, true, 1000, E, -Infinity), false, "same");
});

Deno.test("a refresh is due when its previous stamp lies in an older epoch, the boundary exact", () => {
  // phase 0: epochs start at multiples of E. now = 1050 is 50 s into its epoch.
  assert.equal(publishDue(0, tail(1000, false), 0, false, 1050, E, -Infinity), false, "same epoch");
  assert.equal(
    publishDue(0, tail(1000, false), 0, false, 1099, E, -Infinity),
    false,
    "last second",
  );
  assert.equal(publishDue(0, tail(1000, false), 0, false, 1100, E, -Infinity), true, "next epoch");
  assert.equal(publishDue(0, tail(999, false), 0, false, 1000, E, -Infinity), true, "one before");
  // A stamp older than E is always due, whatever the phase.
  for (let phase = 0; phase < 300; phase += 7) {
    assert.equal(publishDue(0, tail(1000, false), phase, false, 1101, E, -Infinity), true);
  }
  // Ages are modulo the 15-bit stamp period, as the store keeps them.
  assert.equal(publishDue(0, tail(32767, false), 0, false, 32768 + 5, E, -Infinity), false);
});

Deno.test("the phase moves each peer's boundaries: a second's refreshes are spread over epochs", () => {
  // Every peer refreshed at 1000 and again at 1000 + k: the share due grows with k, about k / E.
  for (const k of [1, 10, 50, 99]) {
    let due = 0;
    for (let phase = 0; phase < 65536; phase++) {
      if (publishDue(0, tail(1000, false), phase, false, 1000 + k, E, -Infinity)) due++;
    }
    const share = due / 65536;
    assert.ok(Math.abs(share - k / E) < 0.02, `k=${k}: ${share}`);
  }
});

Deno.test("the re-publish window publishes each peer seen before it once more", () => {
  // Same epoch, but last seen before the window opened at 1040: due; a later stamp is not.
  assert.equal(publishDue(0, tail(1030, false), 0, false, 1050, E, 1040), true);
  assert.equal(publishDue(0, tail(1040, false), 0, false, 1050, E, 1040), false);
});

Deno.test("the default epoch is 360 s with the defaults and leaves a client's interval slack", () => {
  assert.equal(refreshEpochSeconds(2700, 1800), 360);
  assert.ok(epochLeavesSlack(2700, 1800, 360));
  // At least 30 s where a third of the timeout allows it; never more than a third of it.
  assert.equal(refreshEpochSeconds(2000, 1800), 30);
  assert.equal(refreshEpochSeconds(12, 10), 4);
  assert.equal(refreshEpochSeconds(1, 10), 1);
  assert.equal(refreshEpochSeconds(2100, 1800), 60);
  assert.equal(epochLeavesSlack(2100, 1800, 60), true);
  // A timeout under interval + 10% + 30 s leaves none (startTracker logs it).
  assert.equal(epochLeavesSlack(2000, 1800, 30), false);
  assert.equal(epochLeavesSlack(12, 10, 4), false);
});

Deno.test("LocalChanges over a SwarmTable: in-epoch refreshes are counted, not recorded", () => {
  const store = new SwarmTable({ peerTimeout: 300 });
  const recorder = new ChangeRecorder("n");
  const counters = { suppressedRefreshes: 0 };
  const changes = new LocalChanges(recorder, E, counters);
  const hash = new Uint8Array(20); // phase key = port
  const address = Uint8Array.of(10, 0, 0, 1);
  const port = 100; // epochs start where (now + 100) % 100 == 0: at multiples of 100
  const announce = (event: number, seeder: boolean, now: number) => {
    store.announce(hash, 0, 4, address, 0, port, event, seeder, 0, now, new Uint8Array(0), 0);
    changes.announced(event, hash, 0, 4, address, 0, port, seeder, store.result.previous, now);
  };
  announce(2, false, 1000); // started
  for (let now = 1001; now < 1100; now++) announce(0, false, now); // 99 refreshes, one epoch
  assert.equal(recorder.pending, 1);
  assert.equal(counters.suppressedRefreshes, 99);
  announce(0, false, 1100); // next epoch
  announce(0, true, 1101); // flag flip
  announce(3, true, 1102); // stopped
  announce(0, true, 1103); // back: not held
  assert.equal(recorder.pending, 5);
  assert.equal(counters.suppressedRefreshes, 99);
});

Deno.test("LocalChanges: WebSocket peers refresh by their own, shorter epoch", () => {
  const store = new SwarmTable({ peerTimeout: 300, wsPeerTimeout: 60 });
  const recorder = new ChangeRecorder("n");
  const counters = { suppressedRefreshes: 0 };
  const changes = new LocalChanges(recorder, E, counters);
  changes.wsEpochSeconds = 20;
  const hash = new Uint8Array(20);
  const address = Uint8Array.of(0x80, 0, 0, 0); // a published key: phase key = port
  const port = 100;
  const announce = (family: 4 | typeof FAMILY_WS, now: number) => {
    store.announce(hash, 0, family, address, 0, port, 0, false, 0, now, new Uint8Array(0), 0);
    changes.announced(0, hash, 0, family, address, 0, port, false, store.result.previous, now);
  };
  // Both kinds first seen at 1000, then refreshed every 10 s up to 1090: IPv4 stays in its
  // 100 s epoch, the WebSocket peer crosses a 20 s boundary every other refresh.
  for (let now = 1000; now < 1100; now += 10) {
    announce(4, now);
    announce(FAMILY_WS, now);
  }
  assert.equal(recorder.pending, 1 + 1 + 4, "two first sightings, the WebSocket peer at 1020-1080");
  assert.equal(counters.suppressedRefreshes, 9 + 5);
});
