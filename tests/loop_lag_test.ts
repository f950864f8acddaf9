/**
 * The event-loop pause monitor: lateness of a 10 ms tick, the longest since start and over the
 * last minute (synthetic times), a real blocked loop, and its figures on /metrics and /stats.
 */
import assert from "node:assert/strict";
import { LoopLag } from "../src/observe/loopLag.ts";
import { startOtter } from "./support/otterProcess.ts";

Deno.test("loop lag: lateness beyond the 10 ms tick; the minute window forgets", () => {
  const lag = new LoopLag();
  for (let t = 5_000; t <= 6_000; t += 10) lag.record(t);
  assert.equal(lag.maxMs, 0, "on-time ticks add nothing");
  lag.record(6_250); // 240 ms late, in second 6
  lag.record(6_260);
  assert.equal(lag.maxMs, 240);
  assert.equal(lag.recentMaxMs(6_300), 240);
  for (let t = 6_270; t < 70_000; t += 10) lag.record(t);
  assert.equal(lag.recentMaxMs(70_000), 0, "a minute later the window is empty");
  assert.equal(lag.maxMs, 240, "the since-start maximum stays");
  lag.record(70_080); // 80 ms after the tick due at 70 000
  assert.equal(lag.recentMaxMs(70_080), 80);
  assert.equal(lag.recentMaxMs(70_080 + 61_000), 0, "skipping over a whole minute clears it");
  assert.equal(lag.ticks, 101 + 2 + 6373 + 1);
});

Deno.test("loop lag: takeMaxMs gives the longest pause since the previous call", () => {
  const lag = new LoopLag();
  for (let t = 1_000; t <= 1_500; t += 10) lag.record(t);
  assert.equal(lag.takeMaxMs(), 0);
  lag.record(1_600); // 90 ms late
  lag.record(1_640); // 30 ms late
  assert.equal(lag.takeMaxMs(), 90);
  assert.equal(lag.takeMaxMs(), 0, "taken: starts over");
  lag.record(1_690); // 40 ms late
  assert.equal(lag.takeMaxMs(), 40, "a smaller pause after a larger one is its own second's");
  assert.equal(lag.maxMs, 90, "the since-start maximum is not reset");
});

Deno.test("loop lag: a blocked event loop shows up", async () => {
  const lag = new LoopLag();
  lag.start();
  try {
    await new Promise((r) => setTimeout(r, 50));
    const until = performance.now() + 150;
    while (performance.now() < until) { /* block the loop */ }
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(lag.maxMs >= 100, `max ${lag.maxMs} ms`);
    assert.ok(lag.recentMaxMs() >= 100);
    assert.ok(lag.ticks >= 3);
  } finally {
    lag.stop();
  }
});

Deno.test("loop lag: on /metrics and /stats?mode=loop", async () => {
  await using otter = await startOtter(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
  const base = otter.http[0];
  await new Promise((r) => setTimeout(r, 100));
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (
    const name of ["otter_event_loop_lag_max_seconds", "otter_event_loop_lag_recent_max_seconds"]
  ) {
    const line = metrics.split("\n").find((l) => l.startsWith(`${name} `));
    assert.ok(line, `no ${name}`);
    const value = Number(line.split(" ")[1]);
    assert.ok(value >= 0 && value < 60, `${line}`);
    assert.ok(metrics.includes(`# TYPE ${name} gauge`));
  }
  const text = (await (await fetch(`${base}/stats?mode=loop`)).text()).trimEnd().split("\n");
  assert.equal(text.length, 4);
  assert.match(text[0], /^\d+$/);
  assert.match(text[1], /^\d+$/);
  assert.match(text[3], /event loop/);
  const json = await (await fetch(`${base}/stats?mode=loop&format=json`)).json();
  assert.equal(typeof json.loop.maxSeconds, "number");
  assert.equal(typeof json.loop.recentMaxSeconds, "number");
  assert.ok(json.loop.maxSeconds >= json.loop.recentMaxSeconds);
  const stopped = await otter.stop();
  assert.equal(stopped.code, 0, stopped.stderr);
});
