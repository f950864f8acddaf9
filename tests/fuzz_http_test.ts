/**
 * Fuzzes otter's whole HTTP request path in process (HttpTracker on a real Tracker and
 * SwarmTable): announce and scrape URLs with random, repeated and missing parameters, broken
 * escapes, binary junk, overlong values and bad methods, plus forwarding headers behind a trusted
 * proxy. Every reply must have the status docs/protocols.md gives; a 200 must be canonical bencode with either a
 * failure reason or the announce/scrape keys, agreeing with the store; valid announces must
 * succeed; the store must pass its invariant checker. Seeded: OTTER_FUZZ_SEED replays a run.
 */
import { fuzzSeed } from "./support/fuzz.ts";
import { describeKinds, HttpFuzzer, PROFILES } from "./support/fuzzTrackers.ts";

const SEED = fuzzSeed(0x0dd5eed);
const MS_PER_PROFILE = 1000;
const MIN_INPUTS = 300;

for (const [i, profile] of PROFILES.entries()) {
  const seed = (SEED + 100 + i) >>> 0;
  Deno.test(`fuzz HTTP in process: ${profile.name} (seed ${seed})`, async () => {
    const fuzzer = new HttpFuzzer(seed, profile);
    // At least MIN_INPUTS however busy the machine (it then takes longer), more on a fast one.
    const inputs = await fuzzer.run(MS_PER_PROFILE, 200_000, MIN_INPUTS);
    const w = fuzzer.world;
    console.log(
      `  ${inputs} requests, clock ${w.clock.now} s, ${w.store.torrents} torrents, ` +
        `${w.store.peers4 + w.store.peers6} peers, ${w.invariantChecks} invariant checks: ` +
        describeKinds(fuzzer.tally),
    );
  });
}
