/**
 * Every relative link in README.md and docs/ resolves: the file exists, and an `#anchor` names a
 * heading of the target page by GitHub's slug rules. The checker itself is held to those rules on
 * small pages, including links that must be reported.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  anchors,
  brokenLinks,
  documentationFiles,
  links,
  REPO_ROOT,
  slug,
  undefinedReferences,
} from "./support/markdownLinks.ts";

Deno.test("every relative link in README.md and docs/ resolves, anchors included", async () => {
  const files = await documentationFiles(REPO_ROOT);
  assert.ok(files.includes("README.md") && files.includes("docs/architecture.md"), `${files}`);
  const broken = await brokenLinks(REPO_ROOT, files);
  assert.deepEqual(
    broken.map((b) => `${b.file}:${b.line}: (${b.target}) ${b.why}`),
    [],
  );
});

Deno.test("anchors follow GitHub's slugs: case, punctuation, code spans, links, duplicates", () => {
  assert.equal(
    slug("Cluster: several instances through Redis"),
    "cluster-several-instances-through-redis",
  );
  assert.equal(slug("UDP (BEP 15)"), "udp-bep-15");
  assert.equal(slug("Stats: GET /stats?mode=…"), "stats-get-statsmode");
  assert.equal(slug("Access lists, proxies, deniability"), "access-lists-proxies-deniability");
  assert.equal(slug("peer_id and --max-peers"), "peer_id-and---max-peers");
  const page = [
    "# Title",
    "## `--config FILE`",
    "## Warm restart: [`--state`](x.md)",
    "## **Bold** _words_ and snake_case",
    "## Notes",
    "```sh",
    "# not a heading",
    "```",
    "## Notes",
    "## Notes-1",
    "## Notes",
  ].join("\n");
  assert.deepEqual([...anchors(page)], [
    "title",
    "--config-file",
    "warm-restart---state",
    "bold-words-and-snake_case",
    "notes",
    "notes-1",
    "notes-1-1",
    "notes-2",
  ]);
});

Deno.test("links: inline, images, definitions; none from code spans or fenced blocks", () => {
  const page = [
    'See [a](a.md), ![b](img/b.png) and [c](c.md#part "title").',
    "`[not](code.md)` and [d](<d.md>)",
    "```",
    "[e](fenced.md)",
    "```",
    "[f]: f.md",
  ].join("\n");
  assert.deepEqual(links(page), [
    { line: 1, target: "a.md" },
    { line: 1, target: "img/b.png" },
    { line: 1, target: "c.md#part" },
    { line: 2, target: "d.md" },
    { line: 6, target: "f.md" },
  ]);
});

Deno.test("reference links need a definition; literal brackets are not references", () => {
  const page = [
    "See [the list][lists], [caps] and [Rate limit] here.",
    "Listen on [::1]:6969 or redis://[user:password@]host, a box [x], [done](x.md).",
    "`[code span]` and [missing][nowhere] and [gone too].",
    "",
    "[lists]: a.md",
    "[caps]: b.md#caps",
    "[rate limit]: c.md",
  ].join("\n");
  assert.deepEqual(undefinedReferences(page), [
    { line: 3, label: "nowhere" },
    { line: 3, label: "gone too" },
  ]);
});

Deno.test("brokenLinks reports a missing file, a missing anchor, and a path out of the tree", async () => {
  const root = await Deno.makeTempDir({ prefix: "otter-links-" });
  try {
    await Deno.mkdir(join(root, "docs"));
    await Deno.writeTextFile(
      join(root, "README.md"),
      [
        "# Front",
        "## Run it",
        "[ok](docs/page.md#second-part) [ok too](#run-it) [dir](docs/) [web](https://example.org/x)",
        "[gone](docs/missing.md) [bad anchor](docs/page.md#no-such) [here](#nowhere)",
        "[outside](../elsewhere.md)",
      ].join("\n"),
    );
    await Deno.writeTextFile(
      join(root, "docs", "page.md"),
      "# Page\n## Second part\n[back](../README.md#front) [wrong](../README.md#back)\n",
    );
    const broken = await brokenLinks(root, await documentationFiles(root));
    assert.deepEqual(broken.map((b) => `${b.file}:${b.line} ${b.target}: ${b.why}`), [
      "README.md:4 docs/missing.md: no such file",
      "README.md:4 docs/page.md#no-such: no heading with the anchor #no-such",
      "README.md:4 #nowhere: no heading with the anchor #nowhere",
      "README.md:5 ../elsewhere.md: points outside the repository",
      "docs/page.md:3 ../README.md#back: no heading with the anchor #back",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
