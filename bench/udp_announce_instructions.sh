#!/usr/bin/env bash
# Instructions per UDP announce (UdpTracker.handle on a real Tracker and SwarmTable), counted by
# valgrind's callgrind: bench/udp_announce_instructions.ts sets up a seeded store, warms up, and
# turns collection on for its N measured announces only (bench/callgrind_toggle.c, through FFI),
# so start-up, set-up and warm-up are not counted. V8 runs single-threaded, so what its compiler
# does in the measured part is counted the same way each time. A busy machine changes wall time,
# not this count: use it to compare two versions of the code.
#
#   bash bench/udp_announce_instructions.sh [N] [RUNS] [OTTER FLAGS]   # default 100000, 3 runs
#   bash bench/udp_announce_instructions.sh 100000 3 --no-dashboard     # without the client mix
#   OTTER_BENCH_CLUSTER=1 bash bench/udp_announce_instructions.sh   # as a cluster node
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
RUNS=${2:-3}
FLAGS=("${@:3}")
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }
lib=$(mktemp --suffix=.so)
trap 'rm -f "$lib"' EXIT
gcc -O2 -shared -fPIC -o "$lib" bench/callgrind_toggle.c
for ((run = 1; run <= RUNS; run++)); do
  out=$(mktemp)
  CALLGRIND_TOGGLE_LIB=$lib valgrind --tool=callgrind --collect-atstart=no \
    --callgrind-out-file=/dev/null --smc-check=all-non-file \
    deno run --allow-all --v8-flags=--single-threaded,--max-semi-space-size=2 \
    bench/udp_announce_instructions.ts "$N" "${FLAGS[@]}" >/dev/null 2>"$out"
  total=$(grep -oE 'Collected : [0-9]+' "$out" | grep -oE '[0-9]+')
  rm -f "$out"
  echo "run $run: $((total / N)) instructions per announce ($total for $N)"
done
