/**
 * A metric family as /metrics renders it: a row of name, type, help line and how to read its
 * samples from a source, and the renderer of a table of them in the Prometheus text format
 * (0.0.4). Each source's table lives beside the source (wsCounters.ts, clusterMetrics.ts, …);
 * metrics.ts lists them.
 */

/** A family's samples: its one value, or one value per label set (`name="value",…`). */
export type Samples = number | readonly (readonly [labels: string, value: number])[];

/** One metric family: name, type, help line, and how to read its samples from a source `S`. */
export type Family<S> = readonly [
  name: string,
  type: "counter" | "gauge",
  help: string,
  samples: (source: S) => Samples,
];

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Appends each family's HELP, TYPE and sample lines, read from `source`, to `lines`. */
export function renderFamilies<S>(
  lines: string[],
  families: readonly Family<S>[],
  source: S,
): void {
  for (const [name, type, help, read] of families) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const samples = read(source);
    if (typeof samples === "number") {
      lines.push(`${name} ${formatValue(samples)}`);
      continue;
    }
    for (const [labels, value] of samples) lines.push(`${name}{${labels}} ${formatValue(value)}`);
  }
}
