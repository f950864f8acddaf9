/** README documents every flag (and so every config key): the table cannot drift from the code. */
import assert from "node:assert/strict";
import { OPTIONS } from "../src/config/options.ts";

Deno.test("README's command-line table names every flag", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = readme.slice(readme.indexOf("## Command line"));
  for (const option of OPTIONS) {
    assert.match(table, new RegExp("\\| `--" + option.name + "[ `]"), `--${option.name}`);
  }
});
