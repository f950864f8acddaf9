/**
 * `releaseFreedMalloc` (what the server calls every 2 s with glibc open) hands malloc's free
 * pages back to the system: memory malloc'd and freed in the middle of the heap (as V8's compiler
 * threads do while the hot path is compiled) stays resident until it is called.
 */
import assert from "node:assert/strict";
import { libcSupport, releaseFreedMalloc } from "../src/os/libc.ts";

const reason = libcSupport();

function rssAnonKiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/RssAnon:\s+(\d+)/.exec(status)![1]);
}

Deno.test({
  name: "releaseFreedMalloc gives freed malloc pages back",
  ignore: reason !== undefined,
  fn() {
    const c = Deno.dlopen("libc.so.6", {
      malloc: { parameters: ["usize"], result: "pointer" },
      free: { parameters: ["pointer"], result: "void" },
      memset: { parameters: ["pointer", "i32", "usize"], result: "pointer" },
    }).symbols;
    // 64 MiB in 64 KiB chunks (below glibc's mmap threshold, so they come from the heap), touched,
    // then freed except the last: the heap's top cannot shrink, the pages below stay resident.
    const chunks: Deno.PointerValue[] = [];
    for (let i = 0; i < 1024; i++) {
      const p = c.malloc(65536n);
      assert.ok(p !== null);
      c.memset(p, 1, 65536n);
      chunks.push(p);
    }
    for (let i = 0; i < chunks.length - 1; i++) c.free(chunks[i]);
    const before = rssAnonKiB();
    releaseFreedMalloc();
    const after = rssAnonKiB();
    c.free(chunks[chunks.length - 1]);
    assert.ok(before - after > 32 * 1024, `RssAnon ${before} -> ${after} KiB`);
  },
});
