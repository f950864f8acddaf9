/**
 * A process that imports the modules named on its command line (paths relative to the checkout,
 * or `node:`/`npm:` specifiers) and then waits, doing nothing: bench/idle_rss.sh reads its RSS to
 * measure what each module costs an idle process on top of the bare runtime.
 *
 *   deno run <start task flags> bench/idle_import.ts src/persist/stateFile.ts ...
 */
for (const name of Deno.args) {
  const specifier = /^(node|npm):/.test(name) ? name : new URL(`../${name}`, import.meta.url).href;
  const module = await import(specifier);
  // Kept reachable, as a running otter keeps what it imported.
  (globalThis as Record<string, unknown>)[`module:${name}`] = module;
}
console.log("imported");
setTimeout(() => {}, 3_600_000);
