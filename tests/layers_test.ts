/**
 * The layering of docs/architecture.md, checked on the code: every relative import in src/ (and
 * main.ts) points down the layer table, never up and never sideways into another room of the same
 * level, and no chain of imports comes back to where it started. Type-only imports count too: a
 * cycle of types is still a cycle for the reader.
 *
 * The table is written twice on purpose, here and in docs/architecture.md, and the test checks the
 * two agree: moving a room means saying so in the docs. Every file under src/ must belong to a row.
 */
import assert from "node:assert/strict";

/** Top to bottom. A file may import from a row of a higher level number, or from its own row. */
const LAYERS: readonly { level: number; path: string }[] = [
  { level: 0, path: "main.ts" },
  { level: 1, path: "src/servers/startTracker.ts" },
  { level: 2, path: "src/servers/http/" },
  { level: 2, path: "src/servers/udp/" },
  { level: 2, path: "src/servers/ws/" },
  { level: 3, path: "src/servers/tracker.ts" },
  { level: 3, path: "src/servers/tcp/" },
  { level: 4, path: "src/observe/" },
  { level: 4, path: "src/persist/" },
  { level: 5, path: "src/config/" },
  { level: 6, path: "src/cluster/" },
  { level: 7, path: "src/policy/" },
  { level: 7, path: "src/os/" },
  { level: 8, path: "src/protocol/" },
  { level: 8, path: "src/store/" },
  { level: 9, path: "src/hash/" },
  { level: 9, path: "src/version.ts" },
  { level: 9, path: "src/fileErrors.ts" },
];

const ROOT = new URL("../", import.meta.url);

/** The row a repository path belongs to: the longest matching path. */
function rowOf(path: string): { level: number; path: string } | undefined {
  let best: { level: number; path: string } | undefined;
  for (const row of LAYERS) {
    const match = row.path.endsWith("/") ? path.startsWith(row.path) : path === row.path;
    if (match && (best === undefined || row.path.length > best.path.length)) best = row;
  }
  return best;
}

/** Relative module specifiers of a source text: static and dynamic imports, re-exports, Workers. */
export function relativeImports(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    // import x from "…", import type { … } from "…", export { … } from "…" (across lines).
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']/gm,
    // import "…";
    /^\s*import\s*["'](\.{1,2}\/[^"']+)["']/gm,
    // await import("…")
    /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
    // new Worker(new URL("…", import.meta.url))
    /\bnew URL\(\s*["'](\.{1,2}\/[^"']+)["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) found.push(match[1]);
  }
  return found;
}

/** Joins a relative specifier onto the directory of `from` (both repository paths). */
function resolve(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

export interface Edge {
  from: string;
  to: string;
}

/** Imports that break the layer rule, as "from -> to (level a -> b)" lines. */
export function upwardImports(edges: readonly Edge[]): string[] {
  const problems: string[] = [];
  for (const { from, to } of edges) {
    const source = rowOf(from);
    const target = rowOf(to);
    if (source === undefined || target === undefined) {
      problems.push(`${from} -> ${to}: not in the layer table`);
      continue;
    }
    if (source === target || target.level > source.level) continue;
    problems.push(`${from} -> ${to} (level ${source.level} -> ${target.level})`);
  }
  return problems;
}

/** Every cycle's files in import order, found by depth-first search (each cycle once or more). */
export function importCycles(edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    if (!next.has(from)) next.set(from, []);
    next.get(from)!.push(to);
  }
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const to of next.get(file) ?? []) {
      const seen = state.get(to);
      if (seen === "open") cycles.push([...stack.slice(stack.indexOf(to)), to]);
      else if (seen === undefined) visit(to);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of [...next.keys()].sort()) if (!state.has(file)) visit(file);
  return cycles;
}

async function sourceFiles(): Promise<string[]> {
  const files = ["main.ts"];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) await walk(`${path}/`);
      else if (/\.(ts|js)$/.test(entry.name)) files.push(path);
    }
  };
  await walk("src/");
  return files.sort();
}

async function importEdges(): Promise<Edge[]> {
  const edges: Edge[] = [];
  for (const from of await sourceFiles()) {
    const source = await Deno.readTextFile(new URL(from, ROOT));
    for (const specifier of relativeImports(source)) {
      const to = resolve(from, specifier);
      // Assets (the dashboard's page and script) are data, not modules of a layer.
      if (/\.(ts|js)$/.test(to)) edges.push({ from, to });
    }
  }
  return edges;
}

Deno.test("layers: every file under src/ belongs to a row of the table", async () => {
  const outside = (await sourceFiles()).filter((file) => rowOf(file) === undefined);
  assert.deepEqual(outside, [], "files in no layer: add their room to the table (and the docs)");
});

Deno.test("layers: imports in src/ point down the table, never up or sideways", async () => {
  const edges = await importEdges();
  // The scan must see the code: a pattern that matched nothing would pass any layering.
  assert.ok(edges.length > 100, `only ${edges.length} imports found`);
  assert.ok(
    edges.some((e) => e.from === "src/servers/startTracker.ts" && e.to.includes("cluster")),
  );
  assert.deepEqual(upwardImports(edges), []);
});

Deno.test("layers: no import cycles in src/", async () => {
  assert.deepEqual(importCycles(await importEdges()), []);
});

Deno.test("layers: the checks catch an upward import, a sideways one and a cycle", () => {
  assert.deepEqual(
    relativeImports(
      'import type { A } from "../x.ts";\nimport {\n  b,\n} from "./y.ts";\n' +
        'const { C } = await import("../z.ts");\nnew Worker(new URL("./w.ts", import.meta.url));\n' +
        ' * a comment: import { d } from "./not-code.ts"',
    ),
    ["../x.ts", "./y.ts", "../z.ts", "./w.ts"],
  );
  assert.deepEqual(upwardImports([{ from: "src/store/slicer.ts", to: "src/hash/crc32.ts" }]), []);
  assert.equal(
    upwardImports([{ from: "src/store/swarmTable.ts", to: "src/policy/accessList.ts" }]).length,
    1,
  );
  assert.equal(
    upwardImports([{ from: "src/servers/udp/udpTracker.ts", to: "src/servers/http/x.ts" }])
      .length,
    1,
  );
  assert.deepEqual(
    importCycles([
      { from: "src/store/a.ts", to: "src/store/b.ts" },
      { from: "src/store/b.ts", to: "src/store/a.ts" },
    ]),
    [["src/store/a.ts", "src/store/b.ts", "src/store/a.ts"]],
  );
});

Deno.test("layers: docs/architecture.md lists the same rows in the same order", async () => {
  const docs = await Deno.readTextFile(new URL("docs/architecture.md", ROOT));
  const rows: { level: number; path: string }[] = [];
  for (const match of docs.matchAll(/^\|\s*(\d+)\s*\|\s*`([^`]+)`\s*\|/gm)) {
    rows.push({ level: Number(match[1]), path: match[2] });
  }
  assert.deepEqual(rows, LAYERS);
});
