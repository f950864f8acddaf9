/**
 * Lines up what bench/stalls.sh recorded: openloop's late-reply episodes (`--stalls`), otter's
 * GC pauses (`--trace-gc`, put on wall-clock time by bench/traced_otter.ts's anchor) and the
 * machine's load per second (`vmstat -t 1`). For each run: the latency percentiles and every
 * episode with the GC pauses and the machine's state around it; then every GC pause over 5 ms.
 *
 *   deno run --allow-read bench/stall_report.ts DIR     # DIR: stalls.sh's output directory
 */
const dir = Deno.args[0];
if (dir === undefined) {
  console.error("usage: stall_report.ts DIR");
  Deno.exit(2);
}

interface Gc {
  unixMs: number;
  kind: string;
  pauseMs: number;
}
interface Second {
  unixS: number;
  runnable: number;
  busyPercent: number;
  stealPercent: number;
}

/** V8's trace line: `  1234 ms: Scavenge 3.2 (5.0) -> 2.9 (6.0) MB, pooled: 0 MB, 0.85 / 0.00 ms`. */
const GC_LINE =
  /\s(\d+) ms: ([A-Za-z -]+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

function readGcs(text: string): Gc[] {
  const lines = text.split("\n");
  const anchorAt = lines.findIndex((line) => line.startsWith("gc-anchor unix-ms "));
  if (anchorAt < 0) throw new Error("otter.log has no gc-anchor line (bench/traced_otter.ts)");
  const anchorUnixMs = Number(lines[anchorAt].split(" ")[2]);
  let offset = NaN;
  const gcs: Gc[] = [];
  for (const line of lines.slice(anchorAt + 1)) {
    const m = GC_LINE.exec(line);
    if (m === null) continue;
    const isolateMs = Number(m[1]);
    // The forced full GC right after the anchor: its time is the anchor's.
    if (Number.isNaN(offset)) {
      if (!m[2].startsWith("Mark-Compact")) continue;
      offset = anchorUnixMs - isolateMs;
      continue;
    }
    gcs.push({ unixMs: isolateMs + offset, kind: m[2].trim(), pauseMs: Number(m[3]) });
  }
  return gcs;
}

/** `vmstat -t 1` lines: r b swpd free buff cache si so bi bo in cs us sy id wa st gu? date time. */
function readVmstat(text: string): Second[] {
  const seconds: Second[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    const date = fields.at(-2) ?? "";
    if (!/^\d{4}-\d\d-\d\d$/.test(date) || !/^\d+$/.test(fields[0])) continue;
    const unixS = Date.parse(`${date}T${fields.at(-1)}`) / 1000;
    const idle = Number(fields[14]);
    seconds.push({
      unixS,
      runnable: Number(fields[0]),
      busyPercent: 100 - idle,
      stealPercent: Number(fields[16]),
    });
  }
  return seconds;
}

/** `unix-seconds cpu-ns wait-ns slices` samples of otter's main thread (stalls.sh). */
interface Sched {
  unixMs: number;
  cpuNs: number;
  waitNs: number;
}
function readSched(text: string): Sched[] {
  const samples: Sched[] = [];
  for (const line of text.split("\n")) {
    const [t, cpu, wait] = line.trim().split(/\s+/);
    if (wait === undefined) continue;
    samples.push({ unixMs: Number(t) * 1000, cpuNs: Number(cpu), waitNs: Number(wait) });
  }
  return samples;
}

const gcs = readGcs(Deno.readTextFileSync(`${dir}/otter.log`));
let sched: Sched[] = [];
try {
  sched = readSched(Deno.readTextFileSync(`${dir}/schedstat.log`));
} catch {
  // An older recording without the sampler.
}

/** otter's main thread over [fromMs, toMs] (whole 50-ms samples around it): ms on a CPU and ms
 *  waiting for one. */
function otterAt(fromMs: number, toMs: number): string {
  const first = sched.findLast((s) => s.unixMs <= fromMs);
  const last = sched.find((s) => s.unixMs >= toMs);
  if (first === undefined || last === undefined) return "otter: ?";
  const spanMs = last.unixMs - first.unixMs;
  return `otter over ${spanMs.toFixed(0)} ms: ran ${
    ((last.cpuNs - first.cpuNs) / 1e6).toFixed(1)
  } ms, ` +
    `waited for a CPU ${((last.waitNs - first.waitNs) / 1e6).toFixed(1)} ms`;
}
let machine: Second[] = [];
try {
  machine = readVmstat(Deno.readTextFileSync(`${dir}/vmstat.log`));
} catch {
  // vmstat not installed: no machine column.
}

function machineAt(unixMs: number): string {
  const s = Math.floor(unixMs / 1000);
  const near = machine.filter((m) => Math.abs(m.unixS - s) <= 1);
  if (near.length === 0) return "machine: ?";
  const busy = near.map((m) => m.busyPercent).join("/");
  const runnable = near.map((m) => m.runnable).join("/");
  return `machine: busy ${busy} %, runnable ${runnable} (the second before, of, after)`;
}

const runFiles = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
  /^run-(http-)?\d+\.txt$/.test(n)
)
  .sort((a, b) =>
    Number(a.includes("http")) - Number(b.includes("http")) ||
    Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0])
  );
let stallsOver20 = 0;
for (const name of runFiles) {
  const text = Deno.readTextFileSync(`${dir}/${name}`);
  const result = /RESULT (\{.*\})/.exec(text);
  const r = result === null ? null : JSON.parse(result[1]);
  console.log(
    `== ${name}: ` +
      (r === null
        ? "no RESULT line"
        : `rate ${r.target_rps}/s, p50 ${r.p50_us} us, p99 ${r.p99_us} us, p99.9 ${r.p999_us} us, ` +
          `max ${
            (r.max_us / 1000).toFixed(1)
          } ms, timeouts ${r.timeouts}, kept schedule ${r.kept_schedule} ` +
          `(send lateness p99 ${r.send_late_p99_us} us, max ${
            (r.send_late_max_us / 1000).toFixed(1)
          } ms)`),
  );
  for (
    const m of text.matchAll(
      /stall: +at \+([\d.]+) s \(unix ([\d.]+)\): (\d+) replies late, requests due over ([\d.]+) ms, worst ([\d.]+) ms(?:, sent up to ([\d.]+) ms late)?/g,
    )
  ) {
    const startMs = Number(m[2]) * 1000;
    const worst = Number(m[5]);
    if (worst > 20) stallsOver20++;
    const endMs = startMs + Number(m[4]) + worst;
    const near = gcs.filter((g) => g.unixMs >= startMs - 50 && g.unixMs <= endMs + 50);
    const gcText = near.length === 0
      ? "no GC within 50 ms"
      : near.map((g) => `${g.kind} ${g.pauseMs} ms at ${(g.unixMs - startMs).toFixed(0)} ms`)
        .join(", ");
    const sentLate = m[6] === undefined ? "" : `, the tool sent them up to ${m[6]} ms late`;
    console.log(
      `   stall at +${m[1]} s: ${m[3]} late, worst ${worst} ms${sentLate}; ${gcText}; ` +
        `${otterAt(startMs, endMs)}; ${machineAt(startMs)}`,
    );
  }
}
const pauses = gcs.filter((g) => g.pauseMs > 5);
const scavenges = gcs.filter((g) => g.kind === "Scavenge").map((g) => g.pauseMs).sort((a, b) =>
  a - b
);
console.log(
  `== GC over the whole recording: ${gcs.length} (${scavenges.length} scavenges, median ` +
    `${scavenges[Math.floor(scavenges.length / 2)] ?? 0} ms, max ${scavenges.at(-1) ?? 0} ms); ` +
    `${pauses.length} pauses over 5 ms`,
);
for (const g of pauses) {
  console.log(
    `   ${new Date(g.unixMs).toISOString()} ${g.kind} ${g.pauseMs} ms; ${machineAt(g.unixMs)}`,
  );
}
console.log(`== episodes with a reply later than 20 ms: ${stallsOver20}`);
