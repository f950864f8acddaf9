import assert from "node:assert/strict";
import { join } from "node:path";
import { ACCESS_DENIED_REASON, AccessPolicy, InfoHashSet } from "../src/policy/accessList.ts";
import { watchAccessList } from "../src/policy/accessListFile.ts";

/** Seeded xorshift32: uint32 values, reproducible across runs. */
function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

function hashOf(hex: string): Uint8Array {
  assert.equal(hex.length, 40);
  return Uint8Array.from({ length: 20 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomHashes(random: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n * 20);
  for (let i = 0; i < out.length; i++) out[i] = random() & 255;
  return out;
}

const A = "0123456789abcdef0123456789abcdef01234567";
const B = "fedcba9876543210fedcba9876543210fedcba98";
const C = "00000000000000000000000000000000000000ff";
const D = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

function has(set: InfoHashSet, hex: string): boolean {
  return set.has(hashOf(hex), 0);
}

Deno.test("InfoHashSet.parse: accepted line forms", () => {
  const text = [
    "\uFEFF" + A, // BOM before the first line
    "  " + B.toUpperCase() + "  ",
    "",
    "# a comment",
    "   # an indented comment",
    "\t" + C + "\t# with a note",
    D + "#note right after",
    "",
  ].join("\r\n");
  const { set, problems, problemCount } = InfoHashSet.parse(text);
  assert.deepEqual(problems, []);
  assert.equal(problemCount, 0);
  assert.equal(set.size, 4);
  for (const h of [A, B, C, D]) assert.ok(has(set, h), h);
  assert.ok(!has(set, "1".repeat(40)));
  // Mixed-case hex is the same hash.
  assert.ok(
    InfoHashSet.parse("0123456789ABCDEFabcdef0123456789AbCdEf01").set.has(
      hashOf("0123456789abcdefabcdef0123456789abcdef01"),
      0,
    ),
  );
});

Deno.test("InfoHashSet.parse: empty inputs and a missing final newline", () => {
  for (const text of ["", "\uFEFF", "\n\n\r\n", "# only a comment", "   \t  "]) {
    const { set, problems } = InfoHashSet.parse(text);
    assert.equal(set.size, 0);
    assert.deepEqual(problems, []);
    assert.ok(!has(set, A));
  }
  assert.equal(InfoHashSet.parse(A).set.size, 1);
  assert.equal(InfoHashSet.parse(A + "\n" + B).set.size, 2);
});

Deno.test("InfoHashSet.parse: malformed lines are reported with line numbers and skipped", () => {
  const lines = [
    A, // 1
    A.slice(0, 39), // 2: too short
    A + "0", // 3: too long
    A.slice(0, 10) + "g" + A.slice(11), // 4: not hex
    B + " trailing words", // 5
    "", // 6
    "magnet:?xt=urn:btih:" + C, // 7
    "  " + D + "  ", // 8: fine
    "x".repeat(300), // 9: long junk, cut in the report
    "é" + A.slice(1), // 10: non-ASCII
    "0x" + A.slice(2), // 11
  ];
  const { set, problems, problemCount } = InfoHashSet.parse(lines.join("\r\n"));
  assert.equal(set.size, 2);
  assert.ok(has(set, A) && has(set, D) && !has(set, B) && !has(set, C));
  assert.equal(problemCount, 8);
  assert.deepEqual(problems.map((p) => p.line), [2, 3, 4, 5, 7, 9, 10, 11]);
  const byLine = new Map(problems.map((p) => [p.line, p]));
  assert.match(byLine.get(2)!.reason, /only 39 characters/);
  assert.equal(byLine.get(3)!.reason, "more than 40 hex digits");
  assert.equal(byLine.get(4)!.reason, "'g' at column 11 is not a hex digit");
  assert.match(byLine.get(5)!.reason, /text after the info hash/);
  assert.match(byLine.get(7)!.reason, /'m' at column 1/);
  assert.equal(byLine.get(9)!.text, "x".repeat(100));
  assert.match(byLine.get(10)!.reason, /'é' at column 1/);
  assert.equal(byLine.get(11)!.text, "0x" + A.slice(2));
  assert.ok(!byLine.get(11)!.text.includes("\r"));
});

Deno.test("InfoHashSet.parse: keeps the first 1000 problems and counts all", () => {
  const text = "junk\n".repeat(5000) + A + "\n";
  const { set, problems, problemCount } = InfoHashSet.parse(text);
  assert.equal(set.size, 1);
  assert.equal(problems.length, 1000);
  assert.equal(problemCount, 5000);
  assert.equal(problems[999].line, 1000);
});

Deno.test("InfoHashSet: duplicates are kept once; hits and misses at any offset (property)", () => {
  const random = seeded(3);
  for (const n of [1, 2, 15, 16, 17, 1000, 20000]) {
    const hashes = randomHashes(random, n);
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(hexOf(hashes.subarray(i * 20, i * 20 + 20)));
    // Every hash twice, in another case the second time.
    const text = lines.join("\n") + "\n" + lines.map((l) => l.toUpperCase()).join("\n");
    const { set } = InfoHashSet.parse(text, Uint32Array.of(random(), random()));
    assert.equal(set.size, n);
    const probe = new Uint8Array(20 + 7);
    for (let i = 0; i < n; i++) {
      probe.set(hashes.subarray(i * 20, i * 20 + 20), 7);
      assert.ok(set.has(probe, 7), `member ${i} of ${n}`);
      assert.ok(!set.has(probe, 6), `shifted probe ${i}`);
      // Any single flipped bit is a miss (a random 160-bit neighbour is never a member).
      const bit = random() % 160;
      probe[7 + (bit >> 3)] ^= 1 << (bit & 7);
      assert.ok(!set.has(probe, 7), `neighbour of member ${i}`);
    }
    const others = randomHashes(random, 2000);
    for (let i = 0; i < 2000; i++) assert.ok(!set.has(others, i * 20));
  }
});

Deno.test("InfoHashSet: collisions under one key still resolve (a tiny table, all probes)", () => {
  // 16-slot minimum table: with 8 members probe runs wrap around; all must be found.
  const random = seeded(4);
  for (let round = 0; round < 200; round++) {
    const hashes = randomHashes(random, 8);
    const lines = Array.from({ length: 8 }, (_, i) => hexOf(hashes.subarray(i * 20, i * 20 + 20)));
    const { set } = InfoHashSet.parse(lines.join("\n"), Uint32Array.of(random(), random()));
    for (let i = 0; i < 8; i++) assert.ok(set.has(hashes, i * 20));
    assert.ok(!set.has(randomHashes(random, 1), 0));
  }
  assert.equal(InfoHashSet.empty().size, 0);
  assert.ok(!InfoHashSet.empty().has(hashOf(A), 0));
});

Deno.test("AccessPolicy: white, black, off and swap", () => {
  const ab = InfoHashSet.parse(`${A}\n${B}\n`).set;
  const c = InfoHashSet.parse(C).set;
  const white = new AccessPolicy("white", ab);
  const black = new AccessPolicy("black", ab);
  const off = new AccessPolicy("off");
  const buf = new Uint8Array(60);
  buf.set(hashOf(A), 0);
  buf.set(hashOf(B), 20);
  buf.set(hashOf(C), 40);
  assert.deepEqual([0, 20, 40].map((o) => white.allows(buf, o)), [true, true, false]);
  assert.deepEqual([0, 20, 40].map((o) => black.allows(buf, o)), [false, false, true]);
  assert.deepEqual([0, 20, 40].map((o) => off.allows(buf, o)), [true, true, true]);
  white.swap(c);
  black.swap(c);
  assert.deepEqual([0, 20, 40].map((o) => white.allows(buf, o)), [false, false, true]);
  assert.deepEqual([0, 20, 40].map((o) => black.allows(buf, o)), [true, true, false]);
  assert.equal(white.set, c);
  // No set given: a whitelist admits nothing, a blacklist everything.
  assert.ok(!new AccessPolicy("white").allows(buf, 0));
  assert.ok(new AccessPolicy("black").allows(buf, 0));
  assert.equal(white.mode, "white");
  assert.equal(
    ACCESS_DENIED_REASON,
    "Requested download is not authorized for use with this tracker.",
  );
});

Deno.test("InfoHashSet.parse: a million-line file loads whole", () => {
  const n = 1_000_000;
  const random = seeded(5);
  const bytes = new Uint8Array(n * 41);
  const digits = new TextEncoder().encode("0123456789abcdef");
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 40; k++) bytes[i * 41 + k] = digits[random() & 15];
    bytes[i * 41 + 40] = 10;
  }
  const text = new TextDecoder().decode(bytes);
  // How long this takes is measured, against a bar, by bench/access_list_bench.ts.
  const { set, problemCount } = InfoHashSet.parse(text);
  assert.equal(problemCount, 0);
  assert.ok(set.size > n - 10, `size ${set.size}`);
  assert.ok(set.has(hashOf(text.slice(0, 40)), 0) && set.has(hashOf(text.slice(-41, -1)), 0));
});

// ---- the file watcher ----

/** Waits for `ready()` for up to `ms`, polling; fails with `what` if it never holds. */
async function waitFor(what: string, ready: () => boolean, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!ready()) {
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function withWatch(
  body: (ctx: {
    dir: string;
    file: string;
    policy: AccessPolicy;
    logs: string[];
    watch: { close(): void; reload(): Promise<boolean> };
  }) => Promise<void> | void,
  initial = `${A}\n`,
  signal = false,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "otter_acl_" });
  const file = join(dir, "whitelist.txt");
  await Deno.writeTextFile(file, initial);
  const policy = new AccessPolicy("white");
  const logs: string[] = [];
  const watch = await watchAccessList(file, policy, (line) => logs.push(line), { signal });
  try {
    await body({ dir, file, policy, logs, watch });
  } finally {
    watch.close();
    await sleep(50); // lets the watcher loop see the close before the op sanitizer looks
    await Deno.remove(dir, { recursive: true });
  }
}

function allows(policy: AccessPolicy, hex: string): boolean {
  return policy.allows(hashOf(hex), 0);
}

Deno.test("watchAccessList: an unreadable file at start is a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter_acl_" });
  try {
    const policy = new AccessPolicy("white");
    await assert.rejects(
      watchAccessList(join(dir, "missing.txt"), policy, () => {}),
      /cannot read access list '.*missing\.txt': file not found/,
    );
    await assert.rejects(watchAccessList(dir, policy, () => {}), /cannot read access list/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchAccessList: loads at start and logs problems with line numbers", async () => {
  await withWatch(({ policy, logs }) => {
    assert.ok(allows(policy, A) && allows(policy, B) && !allows(policy, C));
    assert.equal(policy.set.size, 2);
    assert.ok(
      logs.some((l) => /whitelist\.txt:3: .*not a hex digit, line skipped: zz/.test(l)),
      logs.join("\n"),
    );
    assert.ok(
      logs.some((l) => /2 info hashes in force \(whitelist\), 1 malformed lines skipped/.test(l)),
    );
  }, `${A}\n# b next\nzz${B.slice(2)}x\n${B}\n`);
});

Deno.test("watchAccessList: an in-place write is picked up within 2 s", async () => {
  await withWatch(async ({ file, policy }) => {
    assert.ok(allows(policy, A));
    await Deno.writeTextFile(file, `${B}\n`);
    await waitFor("B in force", () => allows(policy, B) && !allows(policy, A));
    // Same length, same second: still seen because the event names the file.
    await Deno.writeTextFile(file, `${C}\n`);
    await waitFor("C in force", () => allows(policy, C) && !allows(policy, B));
    // Same size and mtime put back: only the event naming the file can tell it changed.
    const { mtime } = await Deno.stat(file);
    await Deno.writeTextFile(file, `${D}\n`);
    await Deno.utime(file, mtime!, mtime!);
    await waitFor("D in force", () => allows(policy, D) && !allows(policy, C));
  });
});

Deno.test("watchAccessList: write-then-rename into place is picked up within 2 s", async () => {
  await withWatch(async ({ dir, file, policy }) => {
    const temp = join(dir, ".whitelist.txt.tmp");
    await Deno.writeTextFile(temp, `${B}\n${C}\n`);
    await Deno.rename(temp, file);
    await waitFor(
      "B and C in force",
      () => allows(policy, B) && allows(policy, C) && !allows(policy, A),
    );
    await Deno.writeTextFile(temp, `${D}\n`);
    await Deno.rename(temp, file);
    await waitFor("D in force", () => allows(policy, D) && !allows(policy, B));
  });
});

Deno.test("watchAccessList: a symlink swap in the directory (Kubernetes style) is picked up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "otter_acl_" });
  try {
    await Deno.mkdir(join(dir, "v1"));
    await Deno.writeTextFile(join(dir, "v1", "list.txt"), `${A}\n`);
    await Deno.symlink("v1", join(dir, "..data"));
    await Deno.symlink(join("..data", "list.txt"), join(dir, "list.txt"));
    const policy = new AccessPolicy("black");
    const logs: string[] = [];
    const watch = await watchAccessList(join(dir, "list.txt"), policy, (l) => logs.push(l), {
      signal: false,
    });
    try {
      assert.ok(!allows(policy, A) && allows(policy, B));
      await Deno.mkdir(join(dir, "v2"));
      await Deno.writeTextFile(join(dir, "v2", "list.txt"), `${B}\n`);
      await Deno.symlink("v2", join(dir, "..data_tmp"));
      await Deno.rename(join(dir, "..data_tmp"), join(dir, "..data"));
      await waitFor("B blacklisted", () => !allows(policy, B) && allows(policy, A));
      // An unrelated file in the directory does not cause a reload.
      const loads = logs.filter((l) => l.includes("in force")).length;
      await Deno.writeTextFile(join(dir, "unrelated.txt"), "hello");
      await sleep(400);
      assert.equal(logs.filter((l) => l.includes("in force")).length, loads, logs.join("\n"));
    } finally {
      watch.close();
      await sleep(50);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchAccessList: a broken or missing file keeps the old set and says why", async () => {
  await withWatch(async ({ file, policy, logs, watch }) => {
    await Deno.writeTextFile(file, "this is not\nan access list\n");
    await waitFor("a failed-reload log line", () => logs.some((l) => l.includes("reload failed")));
    assert.ok(allows(policy, A) && !allows(policy, B));
    assert.ok(
      logs.some((l) =>
        /reload failed, no valid info hash among 2 malformed lines; keeping the previous 1 info hashes/
          .test(l)
      ),
      logs.join("\n"),
    );
    await Deno.remove(file);
    assert.equal(await watch.reload(), false);
    assert.ok(allows(policy, A));
    assert.ok(logs.some((l) => /reload failed, file not found; keeping the previous 1/.test(l)));
    // A deliberately emptied list (comments only) is accepted.
    await Deno.writeTextFile(file, "# nothing allowed for now\n");
    await waitFor("the empty list in force", () => !allows(policy, A));
    assert.equal(policy.set.size, 0);
    await Deno.writeTextFile(file, `${B}\n`);
    await waitFor("B in force", () => allows(policy, B));
  });
});

Deno.test("watchAccessList: SIGHUP to our own process reloads", async () => {
  await withWatch(
    async ({ file, policy, logs }) => {
      const loadsBefore = logs.filter((l) => l.includes("in force")).length;
      Deno.kill(Deno.pid, "SIGHUP");
      await waitFor(
        "a SIGHUP reload",
        () => logs.filter((l) => l.includes("in force")).length > loadsBefore,
      );
      assert.ok(logs.some((l) => l.includes("SIGHUP, reloading")));
      // The content reloaded is the file's current one.
      await Deno.writeTextFile(file, `${C}\n`);
      Deno.kill(Deno.pid, "SIGHUP");
      await waitFor("C in force", () => allows(policy, C) && !allows(policy, A));
    },
    `${A}\n`,
    true,
  );
});

Deno.test("watchAccessList: reloads run one at a time; close stops everything", async () => {
  let reads = 0;
  await withWatch(async ({ file, policy, logs, watch }) => {
    const before = logs.filter((l) => l.includes("in force")).length;
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => watch.reload()));
    assert.deepEqual(results, [true, true, true, true, true]);
    reads = logs.filter((l) => l.includes("in force")).length - before;
    assert.ok(reads >= 1 && reads <= 2, `${reads} loads for five overlapping reloads`);
    watch.close();
    await Deno.writeTextFile(file, `${B}\n`);
    await sleep(400);
    assert.ok(allows(policy, A) && !allows(policy, B));
    assert.equal(await watch.reload(), false);
  });
});
