/**
 * Relative links in markdown files, checked the way GitHub renders them: the target file (or
 * folder) must exist, and an `#anchor` must name a heading of the target page. Anchors follow
 * GitHub's slugs (github-slugger): the heading's rendered text, lower-cased, every character that
 * is not a letter, mark, digit, connector punctuation (`_`), `-` or space dropped, spaces turned
 * into `-`; a repeated slug gets `-1`, `-2`, … in page order.
 */
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** One link that does not resolve. */
export interface BrokenLink {
  /** The file the link is in, relative to the root given to `brokenLinks`. */
  file: string;
  line: number;
  target: string;
  why: string;
}

/** GitHub's anchor for a heading whose rendered text is `text`. */
export function slug(text: string): string {
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "").replace(/ /g, "-");
}

/** The heading's text as GitHub renders it: code spans, links and emphasis reduced to their text. */
function renderedText(heading: string): string {
  const text = heading
    .replace(/\s+#+\s*$/, "") // closing hashes of an ATX heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1"); // a link (its text may hold code spans)
  // Code spans keep their text verbatim; emphasis is reduced only outside them.
  return text.split(/(`+[^`]*`+)/).map((part, i) => {
    if (i % 2 === 1) return part.replace(/^`+|`+$/g, "");
    return part
      .replace(/(\*\*|\*)(\S(?:.*?\S)?)\1/g, "$2")
      .replace(/(^|\W)(__?)(\S(?:.*?\S)?)\2(?=\W|$)/g, "$1$3");
  }).join("");
}

/** The lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(markdown: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | null = null;
  markdown.split("\n").forEach((text, i) => {
    const opener = /^ {0,3}(`{3,}|~{3,})/.exec(text);
    if (fence === null && opener) fence = opener[1];
    else if (
      fence !== null && opener && opener[1][0] === fence[0] && opener[1].length >= fence.length
    ) {
      fence = null;
    } else if (fence === null) out.push({ line: i + 1, text });
  });
  return out;
}

/** Every anchor a page offers, duplicates numbered as GitHub numbers them. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*)$/.exec(text);
    if (!heading) continue;
    // github-slugger: a taken slug gets the next free `-N` suffix, counted per original slug.
    const base = slug(renderedText(heading[1]));
    let name = base;
    while (seen.has(name)) {
      const count = seen.get(base)! + 1;
      seen.set(base, count);
      name = `${base}-${count}`;
    }
    seen.set(name, 0);
    out.add(name);
  }
  return out;
}

/**
 * Reference links (`[text][label]`, and `[label]` alone when the label is words) whose label has no
 * definition (`[label]: target`) on the page: GitHub shows those as plain text.
 */
export function undefinedReferences(markdown: string): { line: number; label: string }[] {
  const defined = new Set<string>();
  const used: { line: number; label: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const definition = /^ {0,3}\[([^\]]+)\]:/.exec(text);
    if (definition) {
      defined.add(definition[1].toLowerCase());
      continue;
    }
    const prose = text.replace(/(`+)[\s\S]*?\1/g, "");
    for (const m of prose.matchAll(/\]\[([^\]]+)\]/g)) used.push({ line, label: m[1] });
    for (const m of prose.matchAll(/(?<![\]\w])\[([A-Za-z][\w -]*[A-Za-z0-9])\](?![(\[:])/g)) {
      used.push({ line, label: m[1] });
    }
  }
  return used.filter((u) => !defined.has(u.label.toLowerCase()));
}

/** The links of a page: inline `[text](target)`, images, and reference definitions. */
export function links(markdown: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = text.replace(/(`+)[\s\S]*?\1/g, ""); // a link inside a code span is no link
    for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ line, target: m[1] });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(prose);
    if (definition) out.push({ line, target: definition[1] });
  }
  return out;
}

function isExternal(target: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The relative links of `files` (paths under `root`) that do not resolve. */
export async function brokenLinks(root: string, files: string[]): Promise<BrokenLink[]> {
  const broken: BrokenLink[] = [];
  const pageAnchors = new Map<string, Set<string>>();
  const anchorsOf = async (path: string) => {
    let found = pageAnchors.get(path);
    if (!found) {
      found = anchors(await Deno.readTextFile(path));
      pageAnchors.set(path, found);
    }
    return found;
  };
  for (const file of files) {
    const path = join(root, file);
    const markdown = await Deno.readTextFile(path);
    for (const { line, label } of undefinedReferences(markdown)) {
      broken.push({ file, line, target: `[${label}]`, why: "a reference without a definition" });
    }
    for (const { line, target } of links(markdown)) {
      if (isExternal(target)) continue;
      const hash = target.indexOf("#");
      const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
      const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
      const targetPath = pathPart === "" ? path : join(dirname(path), pathPart);
      const report = (why: string) => broken.push({ file, line, target, why });
      if (relative(root, targetPath).startsWith("..")) {
        report("points outside the repository");
      } else if (!(await exists(targetPath))) {
        report("no such file");
      } else if (anchor !== null) {
        if (!targetPath.endsWith(".md")) report("an anchor into a file that is not markdown");
        else if (!(await anchorsOf(targetPath)).has(anchor)) {
          report(`no heading with the anchor #${anchor}`);
        }
      }
    }
  }
  return broken;
}

/** The markdown files the repository's documentation consists of: README.md and docs/**.md. */
export async function documentationFiles(root: string): Promise<string[]> {
  const files = ["README.md"];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(join(root, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".md")) files.push(path);
    }
  };
  await walk("docs");
  return files.sort();
}

/** The repository root, from this file's place in it. */
export const REPO_ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
