/**
 * otter exactly as main.ts runs it, after one line that lines up V8's `--trace-gc` times (ms
 * since the isolate started) with wall-clock time: it forces a full GC (needs
 * `--v8-flags=--expose-gc`) and logs the Unix time in ms just before it; the trace's next
 * Mark-Compact line is that instant. bench/stalls.sh runs it.
 *
 *   deno run <start task flags, --v8-flags=...,--trace-gc,--expose-gc> bench/traced_otter.ts ARGS
 */
import { main } from "../main.ts";

declare const gc: undefined | (() => void);

if (typeof gc !== "function") {
  console.error("bench/traced_otter.ts needs --v8-flags=--expose-gc");
  Deno.exit(2);
}
console.log(`gc-anchor unix-ms ${Date.now()}`);
gc();
Deno.exit(await main(Deno.args));
