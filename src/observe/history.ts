/**
 * The dashboard's history: fixed-size typed-array rings of the series in SERIES, one point a
 * second for the last 15 minutes (fine) and one a minute for the last 48 hours (coarse).
 *
 * Once a second `sample()` asks a plain callback to write the current counter and gauge values
 * into a reused Float64Array (slots it does not know stay NaN), turns counters into per-second
 * rates from the difference to the previous sample, appends the result to the fine ring and folds
 * it into the current minute's accumulator; when a sample falls in a new minute, the finished
 * minute becomes one coarse point (the mean of its samples, or their maximum for event-loop lag,
 * so a single long pause is not averaged away). Nothing is allocated per sample, and the memory is
 * the same from the first sample to the millionth: HISTORY_BYTES.
 *
 * Time is the monotonic clock (performance.now(), ms) so a wall-clock step never reorders points;
 * `wallBaseMs` (performance.timeOrigin by default) turns it into a date for display. Values are
 * kept as float32 (7 significant digits is plenty for a chart); the latest sample is also kept in
 * float64 for the page's headline numbers.
 */

/** A series is a rate (from a monotonically increasing counter, per second) or a gauge. */
export type SeriesKind = "rate" | "gauge";

export interface SeriesSpec {
  /** Stable key, also the JSON name. */
  readonly name: string;
  /** The chart it is drawn in. */
  readonly group: string;
  /** Legend text. */
  readonly label: string;
  readonly unit: string;
  readonly kind: SeriesKind;
  /** How a minute of fine points becomes one coarse point. */
  readonly minute: "mean" | "max";
}

function rate(name: string, group: string, label: string): SeriesSpec {
  return { name, group, label, unit: "/s", kind: "rate", minute: "mean" };
}

function gauge(
  name: string,
  group: string,
  label: string,
  unit: string,
  minute: "mean" | "max" = "mean",
): SeriesSpec {
  return { name, group, label, unit, kind: "gauge", minute };
}

/**
 * Every series the dashboard records, in ring order. A reader that has no source for one (no
 * WebSocket server yet, no cluster) leaves it NaN; the page hides series that are NaN throughout.
 */
export const SERIES: readonly SeriesSpec[] = [
  rate("announces.http", "announces by protocol", "HTTP"),
  rate("announces.udp", "announces by protocol", "UDP"),
  rate("announces.ws", "announces by protocol", "WebSocket"),
  rate("announces.v4", "announces by family", "IPv4"),
  rate("announces.v6", "announces by family", "IPv6"),
  rate("scrapes.http", "scrapes by protocol", "HTTP"),
  rate("scrapes.udp", "scrapes by protocol", "UDP"),
  rate("scrapes.ws", "scrapes by protocol", "WebSocket"),
  rate("scrapes.v4", "scrapes by family", "IPv4"),
  rate("scrapes.v6", "scrapes by family", "IPv6"),
  rate("connects.udp", "connects", "UDP connect"),
  rate("errors.http", "error replies by protocol", "HTTP"),
  rate("errors.udp", "error replies by protocol", "UDP"),
  rate("errors.ws", "error replies by protocol", "WebSocket"),
  rate("refused.bad_request", "errors and refusals by reason", "bad request"),
  rate("refused.access_denied", "errors and refusals by reason", "access denied"),
  rate("refused.connection_id", "errors and refusals by reason", "bad connection id"),
  rate("refused.store_full", "errors and refusals by reason", "store full"),
  rate("refused.rate_limited", "errors and refusals by reason", "rate limited"),
  rate("refused.udp_dropped", "errors and refusals by reason", "UDP garbage dropped"),
  rate("refused.http_rejected", "errors and refusals by reason", "HTTP turned away"),
  rate("refused.http_max_connections", "errors and refusals by reason", "HTTP at max connections"),
  rate("refused.http_timeout", "errors and refusals by reason", "HTTP timed out"),
  gauge("peers.seeders.v4", "peers", "seeders IPv4", "peers"),
  gauge("peers.leechers.v4", "peers", "leechers IPv4", "peers"),
  gauge("peers.seeders.v6", "peers", "seeders IPv6", "peers"),
  gauge("peers.leechers.v6", "peers", "leechers IPv6", "peers"),
  gauge("torrents", "torrents", "torrents", "torrents"),
  gauge("connections.http", "open connections", "HTTP", "connections"),
  gauge("connections.ws", "open connections", "WebSocket", "connections"),
  gauge("memory.rss", "memory", "RSS", "bytes"),
  gauge("memory.heap", "memory", "V8 heap used", "bytes"),
  gauge("loop.lag", "event-loop lag", "longest pause", "ms", "max"),
  gauge("cluster.connected", "cluster", "connected (1) / not (0)", "state"),
  rate("cluster.applied", "cluster", "changes applied"),
  rate("cluster.published", "cluster", "changes published"),
];

/** Series index by name, for readers: `into[SERIES_INDEX["torrents"]] = store.torrents`. */
export const SERIES_INDEX: Readonly<Record<string, number>> = Object.fromEntries(
  SERIES.map((spec, i) => [spec.name, i]),
);

/** Points in the fine ring: one a second for 15 minutes. */
export const FINE_POINTS = 900;
/** Points in the coarse ring: one a minute for 48 hours. */
export const COARSE_POINTS = 2880;
/** Milliseconds a coarse point covers. */
export const MINUTE_MS = 60_000;

const COUNT = SERIES.length;

/**
 * Bytes the history holds, all allocated at construction: per ring a float64 time and a float32
 * value per series per point, plus five float64 rows of scratch (read, latest, previous counters,
 * minute sums, minute sample counts).
 */
export const HISTORY_BYTES = (FINE_POINTS + COARSE_POINTS) * (8 + 4 * COUNT) + 5 * 8 * COUNT;

/** Fills `into` (NaN on entry, one slot per SERIES entry) with counter totals and gauge values. */
export type ReadCounters = (into: Float64Array) => void;

/** A ring of points: a time column and one float32 column per series. */
class Ring {
  readonly times: Float64Array;
  /** Series-major: series s, point p at s * capacity + p. */
  readonly values: Float32Array;
  readonly capacity: number;
  /** Points held (≤ capacity) and where the next one goes. */
  length = 0;
  #next = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    this.values = new Float32Array(capacity * COUNT);
  }

  /** Appends a point; its time is kept in whole ms, so a time sent back as `since` matches it. */
  push(timeMs: number, row: Float64Array): void {
    const p = this.#next;
    this.times[p] = Math.round(timeMs);
    for (let s = 0; s < COUNT; s++) this.values[s * this.capacity + p] = row[s];
    this.#next = p + 1 === this.capacity ? 0 : p + 1;
    if (this.length < this.capacity) this.length++;
  }

  /** Ring slot of the i-th oldest point held. */
  slot(i: number): number {
    const oldest = this.length < this.capacity ? 0 : this.#next;
    const p = oldest + i;
    return p >= this.capacity ? p - this.capacity : p;
  }

  /** How many of the newest points have a time after `sinceMs` (scans back from the newest). */
  countAfter(sinceMs: number): number {
    let n = 0;
    while (n < this.length && this.times[this.slot(this.length - 1 - n)] > sinceMs) n++;
    return n;
  }

  get byteSize(): number {
    return this.times.byteLength + this.values.byteLength;
  }
}

export interface HistoryOptions {
  /** Wall-clock ms at monotonic time 0; default performance.timeOrigin. */
  wallBaseMs?: number;
}

export class History {
  readonly wallBaseMs: number;
  readonly #read: ReadCounters;
  readonly #fine = new Ring(FINE_POINTS);
  readonly #coarse = new Ring(COARSE_POINTS);
  /** What the reader wrote this sample. */
  readonly #raw = new Float64Array(COUNT);
  /** The latest point: rates and gauges, float64. */
  readonly latest = new Float64Array(COUNT).fill(NaN);
  /** Counter totals of the previous sample (NaN before the first). */
  readonly #previous = new Float64Array(COUNT).fill(NaN);
  readonly #minuteSum = new Float64Array(COUNT);
  readonly #minuteCount = new Float64Array(COUNT);
  #previousMs = NaN;
  #minute = -1;
  /** Monotonic ms of the latest sample (NaN before the first). */
  latestMs = NaN;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(read: ReadCounters, options: HistoryOptions = {}) {
    this.#read = read;
    this.wallBaseMs = options.wallBaseMs ?? performance.timeOrigin;
  }

  /** Takes one sample at monotonic time `nowMs`; the 1 s timer calls it, tests may too. */
  sample(nowMs: number = performance.now()): void {
    const raw = this.#raw;
    raw.fill(NaN);
    this.#read(raw);
    const seconds = (nowMs - this.#previousMs) / 1000;
    const latest = this.latest;
    for (let s = 0; s < COUNT; s++) {
      const value = raw[s];
      if (SERIES[s].kind === "gauge") {
        latest[s] = value;
        continue;
      }
      const before = this.#previous[s];
      this.#previous[s] = value;
      // NaN on the first sample, after a gap in the source, or if a counter went backwards.
      latest[s] = value >= before && seconds > 0 ? (value - before) / seconds : NaN;
    }
    this.#previousMs = nowMs;
    this.latestMs = nowMs;
    this.#fine.push(nowMs, latest);
    this.#foldIntoMinute(nowMs);
  }

  /** Adds the latest point to its minute, closing the previous minute into the coarse ring. */
  #foldIntoMinute(nowMs: number): void {
    const minute = Math.floor(nowMs / MINUTE_MS);
    const sum = this.#minuteSum;
    const count = this.#minuteCount;
    if (minute !== this.#minute) {
      if (this.#minute >= 0) {
        for (let s = 0; s < COUNT; s++) {
          // A minute whose samples were all NaN stays NaN; a max keeps its value in `sum`.
          if (count[s] === 0) sum[s] = NaN;
          else if (SERIES[s].minute === "mean") sum[s] /= count[s];
        }
        this.#coarse.push(this.#minute * MINUTE_MS, sum);
      }
      this.#minute = minute;
      sum.fill(0);
      count.fill(0);
    }
    const latest = this.latest;
    for (let s = 0; s < COUNT; s++) {
      const value = latest[s];
      if (value !== value) continue; // NaN
      if (SERIES[s].minute === "max") {
        if (count[s] === 0 || value > sum[s]) sum[s] = value;
      } else {
        sum[s] += value;
      }
      count[s]++;
    }
  }

  /** Samples once a second until `stop()`; the timer is unref'd (never keeps the process up). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.sample();
    const timer = setInterval(() => this.sample(), 1000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Fine points held (at most FINE_POINTS). */
  get finePoints(): number {
    return this.#fine.length;
  }

  /** Coarse points held (at most COARSE_POINTS). */
  get coarsePoints(): number {
    return this.#coarse.length;
  }

  /** Bytes of every typed array the history holds; always HISTORY_BYTES. */
  get byteSize(): number {
    return this.#fine.byteSize + this.#coarse.byteSize + this.#raw.byteLength +
      this.latest.byteLength + this.#previous.byteLength + this.#minuteSum.byteLength +
      this.#minuteCount.byteLength;
  }

  /**
   * The rings as JSON: fine points with a time after `fineSinceMs` and coarse points after
   * `coarseSinceMs` (monotonic ms as previously returned; -Infinity for everything), in uPlot's
   * column layout: `{"t":[ms...],"v":[[series 0...],[series 1...],...]}`, oldest first. Times are
   * monotonic ms (add `base` for wall-clock ms); NaN is null. Bounded: at most 3780 points of
   * SERIES.length values, a few hundred KB for a full first load, a few hundred bytes per poll.
   */
  toJson(fineSinceMs: number, coarseSinceMs: number): string {
    return `{"base":${Math.round(this.wallBaseMs)},"now":${jsonNumber(this.latestMs)},"latest":${
      rowJson(this.latest)
    },"fine":${ringJson(this.#fine, this.#fine.countAfter(fineSinceMs))},"coarse":${
      ringJson(this.#coarse, this.#coarse.countAfter(coarseSinceMs))
    }}`;
  }
}

/** A value for JSON: null for NaN/±Infinity, otherwise at most 3 decimals (float32 noise off). */
function jsonNumber(value: number): string {
  if (!Number.isFinite(value)) return "null";
  const abs = Math.abs(value);
  if (abs >= 1000) return String(Math.round(value));
  return String(Math.round(value * 1000) / 1000);
}

function rowJson(row: Float64Array): string {
  let out = "[";
  for (let s = 0; s < row.length; s++) out += (s === 0 ? "" : ",") + jsonNumber(row[s]);
  return out + "]";
}

/** The newest `n` points of `ring`, oldest first, as {"t":[...],"v":[[...]...]}. */
function ringJson(ring: Ring, n: number): string {
  const first = ring.length - n;
  const parts: string[] = [];
  let times = "";
  for (let i = 0; i < n; i++) {
    times += (i === 0 ? "" : ",") + String(ring.times[ring.slot(first + i)]);
  }
  for (let s = 0; s < COUNT; s++) {
    let column = "";
    const base = s * ring.capacity;
    for (let i = 0; i < n; i++) {
      column += (i === 0 ? "" : ",") + jsonNumber(ring.values[base + ring.slot(first + i)]);
    }
    parts.push(`[${column}]`);
  }
  return `{"t":[${times}],"v":[${parts.join(",")}]}`;
}
