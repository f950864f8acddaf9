/**
 * Fuzzes otter's whole UDP request path in process (UdpTracker on a real Tracker and SwarmTable):
 * random datagrams and mutated connect, announce and scrape packets, many with valid connection
 * ids so announces and scrapes reach the store. Every reply must follow BEP 15 and docs/protocols.md
 * (right action and transaction id, no amplification before a valid id, errors that say what is
 * wrong), agree with the store's counts, and the store must pass its invariant checker.
 * Seeded: OTTER_FUZZ_SEED replays a run; each profile is bounded in time.
 */
import { fuzzSeed } from "./support/fuzz.ts";
import { describeKinds, PROFILES, UdpFuzzer } from "./support/fuzzTrackers.ts";

const SEED = fuzzSeed(0x0dd5eed);
const MS_PER_PROFILE = 1000;
const MIN_INPUTS = 1000;

for (const [i, profile] of PROFILES.entries()) {
  const seed = (SEED + i) >>> 0;
  Deno.test(`fuzz UDP in process: ${profile.name} (seed ${seed})`, () => {
    const fuzzer = new UdpFuzzer(seed, profile);
    // At least MIN_INPUTS however busy the machine (it then takes longer), more on a fast one.
    const inputs = fuzzer.run(MS_PER_PROFILE, 400_000, MIN_INPUTS);
    const w = fuzzer.world;
    console.log(
      `  ${inputs} datagrams, clock ${w.clock.now} s, ${w.store.torrents} torrents, ` +
        `${w.store.peers4 + w.store.peers6} peers, ${w.invariantChecks} invariant checks: ` +
        describeKinds(fuzzer.tally),
    );
  });
}
