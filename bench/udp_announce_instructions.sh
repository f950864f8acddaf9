#!/usr/bin/env bash
# Instructions per UDP announce (UdpTracker.handle on a real Tracker and SwarmTable), counted by
# valgrind's callgrind: bench/udp_announce_instructions.ts is run with N and with 3N measured
# announces after the same seeded set-up and warm-up, and the difference divided by 2N is the
# figure (a run that stops right after the warm-up varies by ~1% with the compiler's timing; these
# two do not, to ~0.05%). V8 runs single-threaded so its compiler's work is counted the same way
# each time. A busy machine changes wall time, not this count: use it to compare two versions.
#
#   bash bench/udp_announce_instructions.sh [N] [RUNS]    # defaults: 100000 announces, 3 runs
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
RUNS=${2:-3}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }
count() { # announces -> instructions of the whole process
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --smc-check=all-non-file \
    deno run --allow-all --v8-flags=--single-threaded,--max-semi-space-size=2 \
    bench/udp_announce_instructions.ts "$1" >/dev/null 2>"$out"
  grep -oE 'Collected : [0-9]+' "$out" | grep -oE '[0-9]+'
  rm -f "$out"
}
for ((run = 1; run <= RUNS; run++)); do
  short=$(count "$N")
  long=$(count "$((3 * N))")
  echo "run $run: $(((long - short) / (2 * N))) instructions per announce ($short with $N, $long with $((3 * N)))"
done
