/**
 * The cluster's capacity model (docs/cluster.md → Capacity): for a swarm of P peers and A
 * announces a second, how many otter nodes, how much Redis memory, bandwidth and CPU, from the
 * per-announce and per-change costs measured on this branch (bench/results/2026-12-06-cluster-
 * scale-design-*.txt, docs/cluster-design.md). Prints a Markdown table.
 *
 *   deno run bench/cluster_capacity.ts [--announce-us 4.3] [--apply-us 1.4] [--floor 30]
 *
 * Changes a second: refreshes that change nothing are published once per refresh epoch E per
 * peer (360 s by default) and events (started, stopped, completed) about P / 1800 a second
 * (a session starts and stops once per interval's worth of peers), never more than A. "all churn"
 * is the worst case: every announce a real change.
 *
 * A node: one core, 70 % of it used; it answers A / N announces (announce-us each, the
 * standalone rate with its I/O), publishes its share of the changes (0.7 µs each: record, take,
 * seal) and applies everyone else's (apply-us each). The fewest nodes that fit, at least 2.
 *
 * Redis: a change costs 28 B in (27 B record + its share of a batch's header and XADD framing,
 * measured 27.0-28.1) and the same out to each other node; memory holds the current snapshot,
 * the previous one until its grace ends, and the streams since the previous snapshot's position:
 * at most half a snapshot by the growth triggers, unless the time floor between snapshots binds,
 * then two floors of changes at 29 B each (28.4-28.6 B measured per retained change). A snapshot
 * is 11.6 B a peer (measured at 1M peers over 100k torrents) and is rewritten when the streams
 * grew by a quarter of it, no sooner than the floor: its writes are the rest of the ingress.
 * Redis CPU: 0.03 µs a change written and as much per node reading it (INFO commandstats).
 * Otter's store: 18.3 B a peer (1M peers, 100k torrents: 18.3 MB).
 */

function option(name: string, fallback: number): number {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 ? Number(Deno.args[at + 1]) : fallback;
}

const ANNOUNCE_US = option("announce-us", 4.3);
const APPLY_US = option("apply-us", 1.4);
const PUBLISH_US = 0.7;
const FLOOR_S = option("floor", 30);
const EPOCH_S = 360;
const PEER_TIMEOUT_S = 2700;
const INTERVAL_S = 1800;
const CHANGE_IN = 28;
const CHANGE_MEM = 29;
const SNAPSHOT_PER_PEER = 11.6;
const STORE_PER_PEER = 18.3;
const REDIS_US = 0.03;
const CORE_SHARE = 0.7;

interface Row {
  peers: number;
  announces: number;
  churn: boolean;
}

function fmtBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 1)} MB`;
  return `${(bytes / 1e3).toFixed(0)} kB`;
}

function fmtRate(bytes: number): string {
  return `${fmtBytes(bytes)}/s`;
}

function fmtCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return String(Math.round(n));
}

function model({ peers, announces, churn }: Row) {
  const changes = churn ? announces : Math.min(announces, peers / EPOCH_S + peers / INTERVAL_S);
  // Nodes: A/N x announce + C/N x publish + C (N-1)/N x apply <= 70 % of a core.
  let nodes = 0;
  for (let n = 2; n <= 1000; n++) {
    const busy = (announces / n) * ANNOUNCE_US + (changes / n) * PUBLISH_US +
      (changes * (n - 1) / n) * APPLY_US;
    if (busy / 1e6 <= CORE_SHARE) {
      nodes = n;
      break;
    }
  }
  const snapshot = peers * SNAPSHOT_PER_PEER;
  const changeBytes = changes * CHANGE_IN;
  // A snapshot when the streams grew by a quarter of one, no sooner than the floor, no later
  // than half a peer timeout; the streams hold the changes of the last two intervals.
  const snapshotEvery = Math.min(
    PEER_TIMEOUT_S / 2,
    Math.max(FLOOR_S, snapshot / 4 / Math.max(1, changeBytes)),
  );
  const tail = 2 * snapshotEvery * changes * CHANGE_MEM;
  const memory = 2 * snapshot + tail;
  const store = peers * STORE_PER_PEER;
  const inBytes = changeBytes + snapshot / snapshotEvery;
  const outBytes = nodes > 0 ? (nodes - 1) * changeBytes : NaN;
  const redisCores = nodes > 0 ? (changes * REDIS_US * nodes) / 1e6 : NaN;
  return { changes, nodes, memory, store, snapshot, snapshotEvery, inBytes, outBytes, redisCores };
}

const rows: Row[] = [];
for (const peers of [1e6, 1e7, 1e8]) {
  for (const announces of [1e5, 1e6]) {
    rows.push({ peers, announces, churn: false });
    rows.push({ peers, announces, churn: true });
  }
}

console.log(
  `Model: ${ANNOUNCE_US} µs an announce, ${APPLY_US} µs an applied change, ${PUBLISH_US} µs a ` +
    `published one, 70 % of a core a node; E = ${EPOCH_S} s, snapshot floor ${FLOOR_S} s.`,
);
console.log();
console.log(
  "| peers | announces/s | case | changes/s | 1-core nodes | Redis memory (× store) | " +
    "snapshot, every | Redis in / out | Redis CPU |",
);
console.log("| ---- | ---- | ---- | ---- | ---- | ---- | ---- | ---- | ---- |");
for (const row of rows) {
  const m = model(row);
  const ratio = m.memory / m.store;
  console.log(
    `| ${fmtCount(row.peers)} | ${fmtCount(row.announces)} | ${
      row.churn ? "all churn" : "refreshes"
    } | ` +
      `${fmtCount(m.changes)} | ${m.nodes > 0 ? m.nodes : "none fits"} | ` +
      `${fmtBytes(m.memory)} (${ratio.toFixed(2)}×) | ${fmtBytes(m.snapshot)}, ` +
      `${m.snapshotEvery.toFixed(0)} s | ${fmtRate(m.inBytes)} / ` +
      `${Number.isNaN(m.outBytes) ? "–" : fmtRate(m.outBytes)} | ` +
      `${Number.isNaN(m.redisCores) ? "–" : m.redisCores.toFixed(2)} |`,
  );
}
