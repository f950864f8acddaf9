#!/usr/bin/env bash
# Instructions per announce of each stage of bench/udp_path_bench.ts, counted by valgrind's
# callgrind: a figure that does not move with the load of a shared machine, for judging a change
# to the UDP hot path before (and besides) a same-minutes throughput A/B (bench/ab_udp.sh).
#
#   bash bench/instructions.sh [--stages LIST] [DIR]
#
# DIR is the checkout to measure (default: this one); its bench/udp_path_bench.ts is used, so a
# copy of the tree with a change in src/ is measured with the same bench. The bench runs twice
# under callgrind (64000 and 320000 announces a stage, 20k torrents x 10 peers: the torrent table
# at the same load, 0.71, as with 100k torrents, and a quicker fill); each stage is measured
# between two `callgrind_control --dump`s after a warm-up, and the difference of the two runs
# divided by the difference of announces is the stage's marginal cost, without the fill and JIT
# warm-up. TurboFan compiles on the main thread (--no-concurrent-recompilation) so the measured
# code is the optimized code. Counts are of all threads (GC included). Needs valgrind; takes
# about 6 minutes on a 2-core VM. Under valgrind V8 does the same work with more instructions
# than natively would suggest (about 3x a native ns figure here): compare counts with counts.
set -euo pipefail
STAGES=copy,parse,connid,hash,scrape,store0,store50,handle,answer
while (($#)); do
  case "$1" in
    --stages) STAGES=$2; shift 2 ;;
    -*) echo "usage: $0 [--stages LIST] [DIR]" >&2; exit 2 ;;
    *) break ;;
  esac
done
DIR=$(cd "${1:-$(dirname "$0")/..}" && pwd)
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
OUT=$(mktemp -d)
run() { # ops
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$1" --smc-check=all-non-file \
    deno run --allow-all \
    --v8-flags=--max-semi-space-size=2,--no-concurrent-recompilation,--no-concurrent-osr \
    "$DIR/bench/udp_path_bench.ts" --marks --torrents 20000 --ops "$1" --stage "$STAGES" \
    >"$OUT/run.$1.log" 2>&1
  for f in "$OUT/cg.$1".*; do
    printf '%s %s\n' "$(sed -n 's/^desc: Trigger: dump //p' "$f")" "$(sed -n 's/^totals: //p' "$f")"
  done | grep -v '^before-' | grep -v '^ ' | sort >"$OUT/totals.$1"
}
timeout 3600 bash -c "$(declare -f run); OUT=$OUT DIR=$DIR STAGES=$STAGES; run 64000; run 320000"
echo "instructions per announce (callgrind), $DIR"
join "$OUT/totals.64000" "$OUT/totals.320000" |
  awk '{ printf "%-8s %6.0f\n", $1, ($3 - $2) / (320000 - 64000) }' | sort -k2 -n
rm -rf "$OUT"
