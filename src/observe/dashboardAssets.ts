/**
 * The dashboard page's files, served by otter itself: the HTML, its CSS and script, and uPlot
 * (npm:uplot, MIT, pinned) for the charts. All are imported as text, so they are part of the module
 * graph and `deno compile` bundles them: the page needs no CDN and works offline.
 *
 * Each file is prepared once, at its first request: UTF-8 bytes, a gzip copy (CompressionStream),
 * and an ETag per encoding from a SHA-256 of the bytes. A request that accepts gzip gets the gzip
 * copy; a matching If-None-Match gets 304. The page is sent with a Content-Security-Policy that
 * allows nothing but this origin, so the browser itself refuses any outside request.
 *
 * operatorRoutes.ts imports this module at the first request for one of the files, not at start:
 * the texts are a few hundred KB of an idle otter's heap that most operators never ask for.
 */
import pageHtml from "./dashboard/page.html" with { type: "text" };
import dashboardCss from "./dashboard/dashboard.css" with { type: "text" };
import dashboardJs from "./dashboard/dashboard.js" with { type: "text" };
// Pinned here rather than in deno.json, like the project's other npm imports.
// deno-lint-ignore no-import-prefix
import uplotJs from "npm:uplot@1.6.32/dist/uPlot.iife.min.js" with { type: "text" };
// deno-lint-ignore no-import-prefix
import uplotCss from "npm:uplot@1.6.32/dist/uPlot.min.css" with { type: "text" };
import { acceptsGzip } from "../protocol/acceptEncoding.ts";
import { DASHBOARD_ASSET_PATHS, DASHBOARD_PATH } from "./dashboardPaths.ts";

export { DASHBOARD_ASSET_PATHS, DASHBOARD_DATA_PATH, DASHBOARD_PATH } from "./dashboardPaths.ts";

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The files by path, in DASHBOARD_ASSET_PATHS' order (dashboardPaths.ts). */
const [PAGE, CSS, JS, UPLOT_CSS, UPLOT_JS] = DASHBOARD_ASSET_PATHS;
const CSS_TYPE = "text/css; charset=utf-8";
const JS_TYPE = "text/javascript; charset=utf-8";
const FILES: ReadonlyMap<string, { type: string; text: string }> = new Map([
  [PAGE, { type: "text/html; charset=utf-8", text: pageHtml }],
  [CSS, { type: CSS_TYPE, text: dashboardCss }],
  [JS, { type: JS_TYPE, text: dashboardJs }],
  [UPLOT_CSS, { type: CSS_TYPE, text: uplotCss }],
  [UPLOT_JS, { type: JS_TYPE, text: uplotJs }],
]);

interface PreparedAsset {
  type: string;
  plain: Uint8Array<ArrayBuffer>;
  gzip: Uint8Array<ArrayBuffer>;
  etag: string;
  gzipEtag: string;
}

const prepared = new Map<string, Promise<PreparedAsset>>();

async function prepare(type: string, text: string): Promise<PreparedAsset> {
  const plain = new TextEncoder().encode(text);
  const gzipped = new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip"));
  const gzip = new Uint8Array(await new Response(gzipped).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", plain));
  let hex = "";
  for (let i = 0; i < 12; i++) hex += digest[i].toString(16).padStart(2, "0");
  return { type, plain, gzip, etag: `"${hex}"`, gzipEtag: `"${hex}-gz"` };
}

/** True if If-None-Match lists `etag` (or is `*`). */
function etagMatches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  return header.split(",").some((tag) => {
    const t = tag.trim();
    return t === "*" || t === etag || t === `W/${etag}`;
  });
}

/**
 * Answers GET/HEAD of the page or one of its files (`path` without the query), or null for a path
 * that is not one of them. Access is checked by the caller.
 */
export async function dashboardAssetResponse(
  path: string,
  request: Request,
): Promise<Response | null> {
  const file = FILES.get(path === `${DASHBOARD_PATH}/` ? DASHBOARD_PATH : path);
  if (file === undefined) return null;
  let asset = prepared.get(path);
  if (asset === undefined) {
    asset = prepare(file.type, file.text);
    prepared.set(path, asset);
  }
  const a = await asset;
  const gzip = acceptsGzip(request.headers.get("accept-encoding"));
  const etag = gzip ? a.gzipEtag : a.etag;
  const headers: Record<string, string> = {
    "content-type": a.type,
    "cache-control": "no-cache",
    etag,
    vary: "accept-encoding",
    "x-content-type-options": "nosniff",
  };
  if (file.type.startsWith("text/html")) {
    headers["content-security-policy"] = CSP;
    headers["referrer-policy"] = "no-referrer";
  }
  if (etagMatches(request.headers.get("if-none-match"), etag)) {
    return new Response(null, { status: 304, headers });
  }
  if (gzip) headers["content-encoding"] = "gzip";
  const body = gzip ? a.gzip : a.plain;
  headers["content-length"] = String(body.byteLength);
  // A HEAD gets the body too: the server drops it but keeps its length.
  return new Response(body, { headers });
}
