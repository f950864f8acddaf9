/**
 * The long fuzz run (`deno task fuzz`): the in-process UDP and HTTP fuzzers of the test suite
 * (tests/support/fuzzTrackers.ts) fed at least 10 million inputs each, every reply checked, the
 * store's invariants checked every 100 000 inputs and at the end of each job. Jobs of 1M inputs
 * cycle through the fuzz profiles, each on a fresh tracker with its own seed, spread over worker
 * threads. Then the WebSocket frame reader against its whole-buffer reference decoder
 * (tests/support/wsFrames.ts) and the WebTorrent message parser against its rules' oracle
 * (tests/support/wtFuzz.ts), 1M inputs each by default, in jobs of 250 000. Prints per-job lines
 * and a summary (inputs, seconds, failures); exits 1 on a failure.
 *
 *   deno task fuzz                                   # 10M UDP + 10M HTTP + 1M frames + 1M messages
 *   deno task fuzz --udp 2000000 --http 0 --ws-frames 0 --wt-messages 0 --seed 7 --workers 1
 *
 * A failure prints the job's seed and profile and the failing input's number; replay it with
 * `--seed S` and the same job layout, or in a test with `new UdpFuzzer(S, profile).run(...)`.
 */
import { parseArgs } from "node:util";
import { Rng } from "../tests/support/fuzz.ts";
import { fuzzWsFrames } from "../tests/support/wsFrames.ts";
import { fuzzWtMessages } from "../tests/support/wtFuzz.ts";
import {
  describeKinds,
  FuzzFailure,
  HttpFuzzer,
  PROFILES,
  UdpFuzzer,
} from "../tests/support/fuzzTrackers.ts";

const JOB_INPUTS = 1_000_000;
/** The WebSocket fuzzers are slower per input (a reference decoder, JSON): smaller jobs. */
const WS_JOB_INPUTS = 250_000;
const CHECK_EVERY = 100_000;

type Protocol = "udp" | "http" | "wsframe" | "wtmessage";
const PROTOCOLS: readonly Protocol[] = ["udp", "http", "wsframe", "wtmessage"];
const LABELS: Record<Protocol, string> = {
  udp: "UDP",
  http: "HTTP",
  wsframe: "WebSocket frames",
  wtmessage: "WebTorrent messages",
};

interface Job {
  protocol: Protocol;
  index: number;
  seed: number;
  profile: number;
  inputs: number;
}

interface JobResult {
  job: Job;
  inputs: number;
  ms: number;
  invariantChecks: number;
  kinds: [string, number][];
  /** Failures: how many, and the first messages (after one, a fresh tracker goes on). */
  failed: number;
  failures: string[];
  /** Failures that were exceptions out of otter's code rather than wrong replies. */
  exceptions: number;
}

/** Failures kept per job; later ones are only counted. */
const KEEP_FAILURES = 3;

/** A stateless protocol fuzzer's job: one run; it stops at its first failure. */
function runWsJob(job: Job): JobResult {
  const start = performance.now();
  const fuzz = job.protocol === "wsframe" ? fuzzWsFrames : fuzzWtMessages;
  const { inputs, kinds, failure } = fuzz(new Rng(job.seed), Infinity, job.inputs);
  const threw = failure !== null && / threw /.test(failure);
  return {
    job,
    inputs,
    ms: performance.now() - start,
    invariantChecks: 0,
    kinds: [...kinds],
    failed: failure === null ? 0 : 1,
    failures: failure === null ? [] : [failure],
    exceptions: threw ? 1 : 0,
  };
}

async function runJob(job: Job): Promise<JobResult> {
  if (job.protocol === "wsframe" || job.protocol === "wtmessage") return runWsJob(job);
  const profile = PROFILES[job.profile];
  const start = performance.now();
  const result: JobResult = {
    job,
    inputs: 0,
    ms: 0,
    invariantChecks: 0,
    kinds: [],
    failed: 0,
    failures: [],
    exceptions: 0,
  };
  const kinds = new Map<string, number>();
  for (let restart = 0; result.inputs < job.inputs; restart++) {
    // After a failure the tracker's state is suspect: go on with a fresh one and a new seed.
    const seed = (job.seed + restart * 0x9e3779b9) >>> 0;
    const fuzzer = job.protocol === "udp"
      ? new UdpFuzzer(seed, profile, { checkEvery: CHECK_EVERY })
      : new HttpFuzzer(seed, profile, { checkEvery: CHECK_EVERY });
    const left = job.inputs - result.inputs;
    try {
      if (fuzzer instanceof UdpFuzzer) fuzzer.run(Infinity, left);
      else await fuzzer.run(Infinity, left);
    } catch (e) {
      const message = e instanceof FuzzFailure
        ? e.message
        : `fuzzer crashed: ${(e as Error)?.stack ?? e}`;
      result.failed++;
      if (result.failures.length < KEEP_FAILURES) result.failures.push(message);
      if (/ threw /.test(message.split("\n")[0])) result.exceptions++;
    }
    // At least one input per attempt, so a tracker failing at once cannot loop forever.
    result.inputs += Math.max(1, fuzzer.tally.inputs);
    result.invariantChecks += fuzzer.world.invariantChecks;
    for (const [k, n] of fuzzer.tally.kinds) kinds.set(k, (kinds.get(k) ?? 0) + n);
  }
  result.ms = performance.now() - start;
  result.kinds = [...kinds];
  return result;
}

// ------------------------------------------------------------------ worker side

declare const self: {
  onmessage: ((event: MessageEvent<Job>) => void) | null;
  postMessage(message: JobResult): void;
};
const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
  "undefined";

if (inWorker) {
  self.onmessage = async (event) => self.postMessage(await runJob(event.data));
}

// ------------------------------------------------------------------ main side

function plan(protocol: Protocol, total: number, seed: number): Job[] {
  const jobs: Job[] = [];
  const size = protocol === "udp" || protocol === "http" ? JOB_INPUTS : WS_JOB_INPUTS;
  for (let done = 0, i = 0; done < total; i++) {
    const inputs = Math.min(size, total - done);
    jobs.push({
      protocol,
      index: i,
      seed: (seed + PROTOCOLS.indexOf(protocol) * 0x10000 + i) >>> 0,
      profile: i % PROFILES.length,
      inputs,
    });
    done += inputs;
  }
  return jobs;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      udp: { type: "string", default: "10000000" },
      http: { type: "string", default: "10000000" },
      "ws-frames": { type: "string", default: "1000000" },
      "wt-messages": { type: "string", default: "1000000" },
      seed: { type: "string", default: Deno.env.get("OTTER_FUZZ_SEED") ?? "20240601" },
      workers: { type: "string", default: String(Math.min(4, navigator.hardwareConcurrency)) },
    },
  });
  const seed = Number(values.seed) >>> 0;
  const workers = Math.max(1, Number(values.workers));
  const jobs = [
    ...plan("udp", Number(values.udp), seed),
    ...plan("http", Number(values.http), seed),
    ...plan("wsframe", Number(values["ws-frames"]), seed),
    ...plan("wtmessage", Number(values["wt-messages"]), seed),
  ];
  console.log(
    `otter long fuzz: seed ${seed}, ${values.udp} UDP + ${values.http} HTTP + ` +
      `${values["ws-frames"]} WebSocket frame + ${
        values["wt-messages"]
      } WebTorrent message inputs, ` +
      `${jobs.length} jobs on ${workers} workers, profiles: ${
        PROFILES.map((p) => p.name).join("; ")
      }`,
  );
  const started = performance.now();
  const results: JobResult[] = [];
  const queue = [...jobs];
  const pool = Array.from(
    { length: workers },
    () => new Worker(import.meta.url, { type: "module" }),
  );
  await Promise.all(pool.map(async (worker) => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      const result = await new Promise<JobResult>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<JobResult>) => resolve(event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(`worker died: ${event.message}`));
        };
        worker.postMessage(job);
      });
      results.push(result);
      const j = result.job;
      const profileName = j.protocol === "udp" || j.protocol === "http"
        ? PROFILES[j.profile].name
        : "differential";
      console.log(
        `  ${j.protocol} job ${j.index} (seed ${j.seed}, ${profileName}): ` +
          `${result.inputs} inputs in ${seconds(result.ms)} s, ${result.invariantChecks} ` +
          `invariant checks, ${result.failed === 0 ? "ok" : `${result.failed} FAILURES`}`,
      );
      for (const failure of result.failures) {
        console.log(`    ${failure.replaceAll("\n", "\n    ")}`);
      }
    }
    worker.terminate();
  }));
  const wall = performance.now() - started;

  let failed = 0;
  console.log(`\nsummary (wall time ${seconds(wall)} s on ${workers} workers):`);
  for (const protocol of PROTOCOLS) {
    const mine = results.filter((r) => r.job.protocol === protocol);
    if (mine.length === 0) continue;
    const inputs = mine.reduce((n, r) => n + r.inputs, 0);
    const busy = mine.reduce((n, r) => n + r.ms, 0);
    const checks = mine.reduce((n, r) => n + r.invariantChecks, 0);
    const failures = mine.reduce((n, r) => n + r.failed, 0);
    const crashes = mine.reduce((n, r) => n + r.exceptions, 0);
    failed += failures;
    const kinds = new Map<string, number>();
    for (const r of mine) for (const [k, n] of r.kinds) kinds.set(k, (kinds.get(k) ?? 0) + n);
    console.log(
      `  ${LABELS[protocol]}: ${inputs} inputs, ${seconds(busy)} s of fuzzing ` +
        `(${(inputs / (busy / 1000)).toFixed(0)} inputs/s per worker), ${checks} invariant ` +
        `checks, ${failures} failures, ${crashes} exceptions out of otter`,
    );
    console.log(`    replies: ${describeKinds({ inputs, kinds })}`);
  }
  return failed === 0 ? 0 : 1;
}

if (!inWorker && import.meta.main) Deno.exit(await main());
