/** IPv6 text written independently of otter, for the parser's and the CIDR set's property tests. */

/** The 16 bytes as 8 hex groups; with `compress`, the longest run of zero groups as `::`. */
export function formatV6(bytes: number[], compress: boolean): string {
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  if (!compress) return words.join(":");
  // Compress the longest run of zero words (the RFC 5952 way).
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && words[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (bestLen < 1) return words.join(":");
  return words.slice(0, best).join(":") + "::" + words.slice(best + bestLen).join(":");
}
