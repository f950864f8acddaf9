#!/usr/bin/env bash
# Same-minutes A/B of two otter checkouts on the UDP fast path, with the machine's ceiling
# (../shared/load/udp-ref.c) as a third contender: for judging a change to the hot path on a
# shared machine, where only ratios measured minutes apart mean anything.
#
#   bash bench/ab_udp.sh [--runs N] [--duration S] DIR_A DIR_B
#
# Starts otter from each checkout with this checkout's start-task flags (as `deno task start`),
# both pinned to core 0, fills each with 1M peers (100k torrents x 10, as compare.sh does), starts
# udp-ref.c on core 0 too, then runs udpload (core 1, 128 in flight, numwant 50, 85/9/3/3 events)
# against the three in turn, rotating the order each run, and prints each run with the busy
# cores of the second before it, then medians and the per-run ratios B/A, A/ceiling, B/ceiling.
# Everything on 127.0.0.1, every step bounded in time; about (3 x (S + 3) x N + 60) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5
DURATION=10
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    -*) echo "usage: $0 [--runs N] [--duration S] DIR_A DIR_B" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { echo "usage: $0 [--runs N] [--duration S] DIR_A DIR_B" >&2; exit 2; }
DIRS=("$(cd "$1" && pwd)" "$(cd "$2" && pwd)")
LOAD=${LOAD:-../shared/load}
UDPLOAD=${UDPLOAD:-/tmp/udpload}
UDPREF=${UDPREF:-/tmp/udp-ref}
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
[ -x "$UDPREF" ] || gcc -O2 -Wall -o "$UDPREF" "$LOAD/udp-ref.c"
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

PORTS=(16961 16962 16963) # A, B, ceiling
for k in 0 1; do
  (cd "${DIRS[$k]}" && exec taskset -c 0 deno run "${PERMS[@]}" main.ts \
    --http "127.0.0.1:$((PORTS[k] + 100))" --udp "127.0.0.1:${PORTS[k]}") >"$OUT/otter-$k.log" 2>&1 &
  PIDS+=($!)
done
taskset -c 0 "$UDPREF" "${PORTS[2]}" 64 >"$OUT/udp-ref.log" 2>&1 &
PIDS+=($!)
for k in 0 1; do
  for _ in $(seq 200); do grep -q "UDP listening" "$OUT/otter-$k.log" && break; sleep 0.1; done
  grep -q "UDP listening" "$OUT/otter-$k.log" || { cat "$OUT/otter-$k.log" >&2; exit 1; }
  timeout 120 "$UDPLOAD" -p "${PORTS[k]}" -t 100000 -F 1000000 -n 0 -c 128 -d 60 |
    grep "fill:" | sed "s|^|${DIRS[$k]}: |"
done

busy_cores() { # busy cores over the next second, all processes
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = (y[1] - x[1]) + (y[2] - x[2])
    printf "%.2f", (t > 0 ? (y[1] - x[1]) / t * n : 0) }'
}
NAMES=(A B ceiling)
for run in $(seq "$RUNS"); do
  for i in 0 1 2; do
    k=$(((i + run - 1) % 3))
    before=$(busy_cores)
    rps=$(timeout $((DURATION + 30)) taskset -c 1 "$UDPLOAD" -p "${PORTS[k]}" -t 100000 -P 10 \
      -c 128 -w 1 -d "$DURATION" -j | grep -o '"announce_rps":[0-9.]*' | cut -d: -f2 || true)
    printf '%s\t%s\t%s\t%s\n' "$run" "${NAMES[k]}" "${rps:-NA}" "$before" | tee -a "$OUT/ab.tsv" |
      awk -F'\t' '{ printf "run %s %-8s %8.0f announces/s  busy cores before %s\n", $1, $2, $3, $4 }'
  done
done
awk -F'\t' -v a="${DIRS[0]}" -v b="${DIRS[1]}" '
  function med(x, m,    i, j, t) {
    for (i = 2; i <= m; i++) { t = x[i]; j = i - 1; while (j >= 1 && x[j] > t) { x[j + 1] = x[j]; j-- } x[j + 1] = t }
    return m == 0 ? 0 : (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
  }
  { v[$1, $2] = $3; if ($1 > runs) runs = $1; if ($4 + 0 >= 0.3) busy++ }
  END {
    for (r = 1; r <= runs; r++) {
      A[r] = v[r, "A"]; B[r] = v[r, "B"]; C[r] = v[r, "ceiling"]
      ba[r] = B[r] / A[r]; ac[r] = A[r] / C[r]; bc[r] = B[r] / C[r]
      list = list sprintf(" %.3f", ba[r])
    }
    printf "\nA = %s\nB = %s\n", a, b
    printf "medians of %d runs: A %.0f, B %.0f, ceiling %.0f announces/s\n", runs, med(A, runs), med(B, runs), med(C, runs)
    printf "B/A %.3f (per run%s); A/ceiling %.2f; B/ceiling %.2f\n", med(ba, runs), list, med(ac, runs), med(bc, runs)
    if (busy > 0) printf "%d of %d runs had >= 0.3 busy cores in the second before: the machine was busy\n", busy, NR
  }' "$OUT/ab.tsv"
echo "(outputs in $OUT)"
