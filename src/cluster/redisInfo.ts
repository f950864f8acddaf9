/**
 * What Redis says about itself, for /metrics: its memory and its own byte counters, polled with
 * INFO every few seconds by each node (infoPoller.ts; one command, well under a millisecond), so
 * an operator sees what the cluster costs Redis beside what it costs otter. Also its run id,
 * which changes when the server restarts.
 *
 * Redis's counters restart at zero with the server; the per-second figures are taken between two
 * polls of the same run only.
 */

/** One Redis server's figures, as last polled. */
export interface RedisFigures {
  /** "host:port", as the metrics label says it. */
  server: string;
  runId: string;
  usedMemory: number;
  netInputBytes: number;
  netOutputBytes: number;
  /** Bytes a second between the last two polls of the same run (0 until there are two). */
  inputPerSecond: number;
  outputPerSecond: number;
  /** performance.now() of the last poll. */
  polledAtMs: number;
}

/** The `field:value` lines of an INFO reply (sections and comments left out). */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

function whole(text: string | undefined): number {
  const value = Number(text);
  return Number.isFinite(value) && value >= 0 ? value : 0;
}

/**
 * The figures of `server` after a poll that read `text` at `nowMs`, given the previous ones (or
 * null); returns the updated object (the same one when given).
 */
export function updateFigures(
  previous: RedisFigures | null,
  server: string,
  text: string,
  nowMs: number,
): RedisFigures {
  const info = parseInfo(text);
  const runId = info.get("run_id") ?? "";
  const input = whole(info.get("total_net_input_bytes"));
  const output = whole(info.get("total_net_output_bytes"));
  const figures = previous ?? {
    server,
    runId,
    usedMemory: 0,
    netInputBytes: input,
    netOutputBytes: output,
    inputPerSecond: 0,
    outputPerSecond: 0,
    polledAtMs: nowMs,
  };
  const seconds = (nowMs - figures.polledAtMs) / 1000;
  if (previous !== null && figures.runId === runId && seconds > 0) {
    figures.inputPerSecond = Math.max(0, (input - figures.netInputBytes) / seconds);
    figures.outputPerSecond = Math.max(0, (output - figures.netOutputBytes) / seconds);
  } else {
    figures.inputPerSecond = 0;
    figures.outputPerSecond = 0;
  }
  figures.runId = runId;
  figures.usedMemory = whole(info.get("used_memory"));
  figures.netInputBytes = input;
  figures.netOutputBytes = output;
  figures.polledAtMs = nowMs;
  return figures;
}
