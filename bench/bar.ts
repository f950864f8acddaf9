/**
 * Timing bars: figures otter should stay within that depend on how fast the machine is, so they
 * live here and not in `deno task test` (tests assert behaviour, not timing). A bar bench runs
 * its scenario as one Deno.bench (deno bench runs a slow function about three times); each run
 * prints its figures beside their bars, and a figure over its bar fails that bench, so
 * `deno task bench` ends with "Bench failed" and the figure in the error.
 */

/** A measured figure, the bar it must not pass, and which way the bar points. */
export interface Figure {
  what: string;
  value: number;
  /** "ms", "µs", …; "" for a count. */
  unit: string;
  /** "max": value ≤ bar passes (durations); "min": value ≥ bar passes (counts, rates). */
  kind: "max" | "min";
  bar: number;
}

/** Prints every figure beside its bar, then throws naming those over it. */
export function checkBars(figures: Figure[]): void {
  const over: string[] = [];
  for (const f of figures) {
    const ok = f.kind === "max" ? f.value <= f.bar : f.value >= f.bar;
    const unit = f.unit === "" ? "" : ` ${f.unit}`;
    const line = `${f.what}: ${round(f.value)}${unit} (bar: ${f.kind === "max" ? "≤" : "≥"} ` +
      `${round(f.bar)}${unit})`;
    console.log(`${ok ? "  ok  " : "  OVER"} ${line}`);
    if (!ok) over.push(line);
  }
  if (over.length > 0) throw new Error(`over the bar: ${over.join("; ")}`);
}

function round(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

/** The p-th quantile (0..1) of `values`, nearest rank. */
export function quantile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}
