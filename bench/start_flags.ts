/**
 * Prints the runtime flags of deno.json's `start` task (permissions and V8 flags), one a line,
 * so bench scripts run otter exactly as `deno task start` does:
 *   mapfile -t FLAGS < <(deno run --allow-read bench/start_flags.ts)
 * Exits 1 if the task has none.
 */
const path = new URL("../deno.json", import.meta.url);
const task: string = JSON.parse(Deno.readTextFileSync(path)).tasks.start;
const flags = task.split(/\s+/).filter((word) => /^--(allow-|v8-flags)/.test(word));
if (flags.length === 0) {
  console.error("no flags in deno.json's start task");
  Deno.exit(1);
}
console.log(flags.join("\n"));
