/**
 * Access list loading against its bar (moved here from tests/policy_access_list_test.ts, which
 * keeps the behaviour: a million-line list loads whole).
 *
 *   deno bench --allow-all bench/access_list_bench.ts
 *
 * InfoHashSet.parse of a million random 40-hex-digit lines: the best of three parses within
 * 1500 ms (a reload on SIGHUP or a file change must not stall the tracker for long), and the
 * parse on its own as an ordinary bench.
 */
import { InfoHashSet } from "../src/policy/accessList.ts";
import { checkBars } from "./bar.ts";

const LINES = 1_000_000;

/** A million lines of 40 random hex digits, from a fixed seed. */
function list(): string {
  let s = 5;
  const bytes = new Uint8Array(LINES * 41);
  const digits = new TextEncoder().encode("0123456789abcdef");
  for (let i = 0; i < LINES; i++) {
    for (let k = 0; k < 40; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      bytes[i * 41 + k] = digits[s & 15];
    }
    bytes[i * 41 + 40] = 10;
  }
  return new TextDecoder().decode(bytes);
}

const text = list();

Deno.bench("InfoHashSet.parse, 1M lines", () => {
  InfoHashSet.parse(text);
});

Deno.bench({
  name: "bar: InfoHashSet.parse of a 1M-line list, best of three",
  n: 1,
  warmup: 0,
  fn() {
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      const start = performance.now();
      const { problemCount } = InfoHashSet.parse(text);
      times.push(performance.now() - start);
      if (problemCount !== 0) throw new Error(`${problemCount} problems in a valid list`);
    }
    console.log(`1M-line parses: ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
    checkBars([{
      what: "best parse",
      value: Math.min(...times),
      unit: "ms",
      kind: "max",
      bar: 1500,
    }]);
  },
});
