/**
 * Fuzzes access list files: mutated lists (broken and overlong hashes, comments, blanks, CRLF,
 * BOMs, binary junk, joined and split lines) parsed in process against an independent reference
 * reading of the file format — same hashes, same problem lines, never an exception — and a sample
 * fed to a running otter through its file watcher: each reload logs what the reference predicts,
 * and announces are admitted exactly for the hashes in force. Seeded: OTTER_FUZZ_SEED replays.
 */
import assert from "node:assert/strict";
import { AccessPolicy, InfoHashSet } from "../src/policy/accessList.ts";
import { fuzzLoop, fuzzSeed, hex, mutateText, oddChar, Rng, shown } from "./support/fuzz.ts";
import { startOtter } from "./support/otterProcess.ts";
import { bdecode } from "./support/bencode.ts";

const SEED = fuzzSeed(0x0dd5eed);

/** The file format as docs/operating.md and accessList.ts describe it, read the simple way. */
function reference(file: string): { hashes: Set<string>; problemLines: number[] } {
  const hashes = new Set<string>();
  const problemLines: number[] = [];
  const body = file.startsWith("\uFEFF") ? file.slice(1) : file;
  const lines = body.split("\n");
  // A final line break ends the last line rather than starting an empty one.
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((line, i) => {
    const trimmed = line.replace(/^[ \t\r]+|[ \t\r]+$/g, "");
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const m = /^([0-9a-fA-F]{40})(?:[ \t\r]*#[^]*)?$/.exec(trimmed);
    if (m) hashes.add(m[1].toLowerCase());
    else problemLines.push(i + 1);
  });
  return { hashes, problemLines };
}

function hashText(rng: Rng): string {
  const h = hex(rng.bytes(20));
  return rng.chance(0.3) ? h.toUpperCase() : h;
}

/** A well-formed list with the features the format allows. */
function baseList(rng: Rng, n: number): string {
  const lines: string[] = [];
  if (rng.chance(0.2)) lines.push("\uFEFF# list");
  for (let i = 0; i < n; i++) {
    const h = hashText(rng);
    switch (rng.int(8)) {
      case 0:
        lines.push(`${h} # torrent ${i}`);
        break;
      case 1:
        lines.push(`  \t${h}\t `);
        break;
      case 2:
        lines.push(`${h}#x`);
        break;
      case 3:
        lines.push("# a comment");
        lines.push(h);
        break;
      case 4:
        lines.push("");
        lines.push(h);
        break;
      default:
        lines.push(h);
    }
  }
  return lines.join(rng.chance(0.2) ? "\r\n" : "\n") + (rng.chance(0.7) ? "\n" : "");
}

const PIECES = [
  "\n",
  "\r\n",
  "\r",
  "#",
  " ",
  "\t",
  "\uFEFF",
  "0",
  "f",
  "F",
  "g",
  "x",
  "0x",
  "\u0000",
  "\u00a0",
  "\u0660", // Arabic-Indic zero: a digit, not a hex digit
  "\uff10", // fullwidth zero
  "0".repeat(40),
  "a".repeat(41),
  "0".repeat(39),
  "A".repeat(80),
  "\v",
  "\f",
];

function mutateList(rng: Rng, file: string): string {
  switch (rng.int(6)) {
    case 0: { // join two lines / split one
      const i = file.indexOf("\n", rng.int(file.length + 1));
      if (i < 0) return file.slice(0, rng.int(file.length + 1)) + "\n" + file;
      return file.slice(0, i) + file.slice(i + 1);
    }
    case 1:
      return file + "\n" + hashText(rng) + rng.pick(["", "x", " x", "#", "0", " # ok", "\u0000"]);
    case 2:
      return file.slice(0, rng.int(file.length + 1)) + oddChar(rng) +
        file.slice(rng.int(file.length + 1));
    default:
      return mutateText(rng, file, PIECES);
  }
}

function check(file: string): void {
  const key = new Uint32Array([1, 2]);
  const { set, problems, problemCount } = InfoHashSet.parse(file, key);
  const ref = reference(file);
  assert.equal(problemCount, ref.problemLines.length, "problem count");
  assert.deepEqual(
    problems.map((p) => p.line),
    ref.problemLines.slice(0, 1000),
    "problem lines",
  );
  for (const p of problems) {
    assert.ok(p.reason.length > 0 && p.text.length <= 100, `problem ${JSON.stringify(p)}`);
  }
  assert.equal(set.size, ref.hashes.size, "set size");
  const bytes = new Uint8Array(20);
  for (const h of ref.hashes) {
    for (let i = 0; i < 20; i++) bytes[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
    assert.ok(set.has(bytes, 0), `hash ${h} missing`);
    bytes[19] ^= 0x80; // a near miss is not in the set unless listed itself
    const near = hex(bytes);
    assert.equal(set.has(bytes, 0), ref.hashes.has(near), `near miss ${near}`);
  }
  const white = new AccessPolicy("white", set);
  const black = new AccessPolicy("black", set);
  bytes.fill(0x5c);
  assert.equal(white.allows(bytes, 0), ref.hashes.has(hex(bytes)));
  assert.equal(black.allows(bytes, 0), !ref.hashes.has(hex(bytes)));
}

Deno.test(`fuzz access lists in process (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  // Shapes that stress sizing: the parser sizes its buffer from the text length.
  const fixed = [
    "",
    "\n",
    "\uFEFF",
    "0".repeat(40),
    "0".repeat(40) + "\n",
    "\uFEFF" + "0".repeat(40),
    ("0".repeat(40) + "\n").repeat(3),
    ("a".repeat(40) + "\r\n").repeat(5),
    "0".repeat(40) + "#" + "0".repeat(40),
    "#".repeat(10000),
    "0".repeat(100000),
    ("x\n").repeat(5000),
    Array.from({ length: 3000 }, (_, i) => i.toString(16).padStart(40, "0")).join("\n"),
  ];
  let i = 0;
  for (; i < fixed.length; i++) {
    try {
      check(fixed[i]);
    } catch (e) {
      throw new Error(`fixed list ${i}: ${(e as Error).message}\n  ${shown(fixed[i], 400)}`);
    }
  }
  let problems = 0;
  const ran = fuzzLoop(2000, 100_000, () => {
    let file = baseList(rng, rng.int(30));
    for (let k = rng.small(3); k > 0; k--) file = mutateList(rng, file);
    try {
      check(file);
    } catch (e) {
      throw new Error(
        `access list input ${i} (seed ${SEED}): ${(e as Error).message}\n  ${shown(file, 1200)}`,
        { cause: e },
      );
    }
    if (reference(file).problemLines.length > 0) problems++;
    i++;
  }, 200); // at least 200 however busy the machine (it then takes longer), more on a fast one
  console.log(`  ${ran + fixed.length} lists, ${problems} with malformed lines`);
  assert.ok(problems > ran / 10 && problems < ran * 0.95, "mutations too tame or too wild");
});

Deno.test(`fuzz access lists: a running otter reloads mutated lists (seed ${SEED})`, async () => {
  const rng = new Rng(SEED ^ 0x7777);
  const dir = await Deno.makeTempDir({ prefix: "otter-fuzz-list-" });
  const path = `${dir}/whitelist.txt`;
  const first = baseList(rng, 5);
  await Deno.writeTextFile(path, first);
  try {
    await using otter = await startOtter([
      "--whitelist",
      path,
      "--http",
      "127.0.0.1:0",
      "--udp",
      "127.0.0.1:0",
    ]);
    let inForce = reference(first).hashes;
    const announce = async (hash: string, port: number) => {
      const escaped = hash.replace(/../g, "%$&");
      const response = await fetch(
        `${otter.http[0]}/announce?info_hash=${escaped}&peer_id=${"-FZ0001-".padEnd(20, "y")}` +
          `&port=${port}&left=1`,
        { signal: AbortSignal.timeout(5000) },
      );
      assert.equal(response.status, 200);
      const reply = bdecode(new Uint8Array(await response.arrayBuffer())) as Record<
        string,
        Uint8Array
      >;
      return !("failure reason" in reply);
    };
    for (let round = 0; round < 6; round++) {
      // Each round's list keeps round + 1 intact extra hashes, so its expected log line is new.
      let file = baseList(rng, rng.int(8));
      for (let k = rng.small(4); k > 0; k--) file = mutateList(rng, file);
      const extras = Array.from({ length: round + 1 }, () => hashText(rng));
      file += "\n" + extras.join("\n") + "\n";
      const ref = reference(file);
      const seen = otter.stdout.length;
      await Deno.writeTextFile(path, file);
      const n = ref.problemLines.length;
      const wanted = ref.hashes.size === 0 && n > 0
        ? `access list ${path}: reload failed`
        : `access list ${path}: ${ref.hashes.size} info hashes in force (whitelist)` +
          (n > 0 ? `, ${n} malformed lines skipped` : "");
      const deadline = Date.now() + 5000;
      let found = false;
      while (!found && Date.now() < deadline) {
        found = otter.stdout.slice(seen).some((l) => l.startsWith(wanted));
        if (!found) await new Promise((r) => setTimeout(r, 20));
      }
      const why = `round ${round}: wanted "${wanted}"\n  list: ${shown(file, 600)}\n  stdout: ${
        otter.stdout.slice(seen).join("\n  ")
      }`;
      assert.ok(found, why);
      if (!wanted.endsWith("reload failed")) inForce = ref.hashes;
      const listed = [...inForce];
      assert.ok(await announce(listed[rng.int(listed.length)], 7000 + round), `listed: ${why}`);
      assert.ok(!await announce(hashText(rng).toLowerCase(), 7100 + round), `unlisted: ${why}`);
    }
    assert.doesNotMatch(otter.stderr, /error|uncaught|panic/i, otter.stderr);
    const stopped = await otter.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
