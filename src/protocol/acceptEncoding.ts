/**
 * Content negotiation for the replies otter can send gzipped (the full scrape, the dashboard's
 * files): whether a request's Accept-Encoding (RFC 9110 section 12.5.3) takes gzip.
 */

/** Does an Accept-Encoding value allow gzip (`gzip`, `x-gzip` or `*` with a non-zero q)? */
export function acceptsGzip(acceptEncoding: string | null): boolean {
  if (acceptEncoding === null) return false;
  let star = false;
  for (const part of acceptEncoding.split(",")) {
    const [name, ...params] = part.split(";");
    const coding = name.trim().toLowerCase();
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split("=");
      if (key.trim().toLowerCase() === "q") q = Number(value?.trim());
    }
    const allowed = q > 0; // NaN (a malformed q) counts as refused
    if (coding === "gzip" || coding === "x-gzip") return allowed;
    if (coding === "*") star = allowed;
  }
  return star;
}
