/**
 * The announce interval's jitter (Tracker.jitteredInterval): whole seconds within ±10% of the
 * interval, every value of that range drawn, none outside it. The jitter comes from an integer
 * xorshift, not Math.random (which allocates a heap number per call on the announce path).
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { Tracker } from "../src/servers/tracker.ts";

function trackerWithInterval(interval: number): Tracker {
  const parsed = parseCommandLine(["--interval", String(interval)]);
  if (parsed.kind !== "run") throw new Error("flags do not run");
  return new Tracker(new SwarmTable({ peerTimeout: 60 }), new Clock(), parsed.config);
}

for (const interval of [1800, 120, 15, 10]) {
  Deno.test(`jittered interval ${interval}: whole seconds within ±10%, every value drawn`, () => {
    const tracker = trackerWithInterval(interval);
    const span = Math.floor(interval / 10);
    const seen = new Map<number, number>();
    const draws = 20000;
    for (let i = 0; i < draws; i++) {
      const value = tracker.jitteredInterval();
      assert.ok(Number.isInteger(value), `${value} is whole`);
      assert.ok(value >= interval - span && value <= interval + span, `${value} within ±10%`);
      seen.set(value, (seen.get(value) ?? 0) + 1);
    }
    assert.equal(seen.size, 2 * span + 1, "every value of the range is drawn");
    // Roughly uniform: no value drawn more than three times its fair share.
    for (const [value, count] of seen) {
      assert.ok(count < 3 * draws / seen.size, `${value} drawn ${count} times`);
    }
  });
}
