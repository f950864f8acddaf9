#!/usr/bin/env bash
# Instructions per UDP announce (UdpTracker.handle on a real Tracker and SwarmTable), counted by
# valgrind's callgrind: bench/udp_announce_instructions.ts is run with 0 and with N measured
# announces after the same seeded set-up and warm-up, and the difference divided by N is the
# figure. V8 runs single-threaded so its compiler's work is counted the same way each time.
# A busy machine changes wall time, not this count: use it to compare two versions of the code.
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
  base=$(count 0)
  total=$(count "$N")
  echo "run $run: $(((total - base) / N)) instructions per announce ($base set-up, $total with $N)"
done
