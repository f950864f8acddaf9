#!/usr/bin/env bash
# What recording the dashboard costs in UDP announces/s, measured in the same minutes: two otters
# with the default (the dashboard on: history sampled once a second, every answered announce
# counted in the client mix) and one with --no-dashboard. The second default otter is the noise
# floor: default-2/default is what two identical otters differ by on this machine right now, and
# the dashboard's cost is within noise when no-dashboard/default is within that spread.
#
#   bash bench/dashboard_cost.sh [--runs N] [--duration S] [--out FILE]
#
# Each otter runs from this checkout with the start task's flags (as `deno task start`), all
# three pinned to core 0 and filled with 1M peers (100k torrents x 10, as compare.sh does); then
# udpload (../shared/load/udpload.c, core 1, 128 in flight, numwant 50, 85/9/3/3 events) runs
# against each in turn, rotating the order every run, and each run is printed with the busy
# cores of the second before it. Medians and the per-run ratios come last. Defaults: 5 runs of
# 10 s; the whole output is also written to FILE (default bench/results/DATE-dashboard-cost.txt).
# Everything on 127.0.0.1, every step bounded in time; about (3 x (S + 3) x N + 60) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5
DURATION=10
OUT_FILE="bench/results/$(date -u +%F)-dashboard-cost.txt"
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT_FILE=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--duration S] [--out FILE]" >&2; exit 2 ;;
  esac
done
LOAD=${LOAD:-../shared/load}
[ -d "$LOAD" ] || LOAD=/work/shared/load
UDPLOAD=${UDPLOAD:-/tmp/udpload}
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT_FILE")"
exec > >(tee "$OUT_FILE") 2>&1

# Ports free for both TCP and UDP a moment ago (HTTP and UDP on the same number).
mapfile -t PORTS < <(python3 -c '
import socket
found = []
while len(found) < 3:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); found.append(p)
    except OSError: pass
    finally: t.close(); u.close()
print("\n".join(map(str, found)))')
NAMES=(default default-2 no-dashboard)
FLAGS=("" "" "--no-dashboard")

echo "bench/dashboard_cost.sh --runs $RUNS --duration $DURATION"
echo "$(date -u +'%F %T') UTC, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src main.ts || echo ' (src changed)'), $(deno --version | head -1)"
echo "$(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2 }'), $(nproc) cores; otters on core 0, udpload on core 1"
echo "otter: deno run ${PERMS[*]} main.ts --http 127.0.0.1:PORT --udp 127.0.0.1:PORT [--no-dashboard]"
echo "load:  udpload -p PORT -t 100000 -P 10 -c 128 -w 1 -d $DURATION -j (after -F 1000000)"
for k in 0 1 2; do
  # shellcheck disable=SC2086 # FLAGS[k] is one flag or none
  taskset -c 0 deno run "${PERMS[@]}" main.ts --http "127.0.0.1:${PORTS[k]}" \
    --udp "127.0.0.1:${PORTS[k]}" ${FLAGS[k]} >"$TMP/otter-$k.log" 2>&1 &
  PIDS+=($!)
done
for k in 0 1 2; do
  for _ in $(seq 300); do grep -q "UDP listening" "$TMP/otter-$k.log" && break; sleep 0.1; done
  grep -q "UDP listening" "$TMP/otter-$k.log" || { cat "$TMP/otter-$k.log"; exit 1; }
  grep "UDP listening" "$TMP/otter-$k.log" | sed "s|^|${NAMES[k]}: |"
  timeout 120 taskset -c 1 "$UDPLOAD" -p "${PORTS[k]}" -t 100000 -F 1000000 -n 0 -c 128 -d 90 \
    >"$TMP/fill-$k.txt" || true
  grep -q "fill: 1000000 peers done" "$TMP/fill-$k.txt" || { cat "$TMP/fill-$k.txt"; exit 1; }
done
echo "filled: 1,000,000 peers each"

busy_cores() { # busy cores over the next second, all processes
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = (y[1] - x[1]) + (y[2] - x[2])
    printf "%.2f", (t > 0 ? (y[1] - x[1]) / t * n : 0) }'
}
cpu_ticks() { # user + system clock ticks of process $1, all threads
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
udp_announces() { # UDP announces otter on port $1 has answered
  curl -s --max-time 10 "http://127.0.0.1:$1/metrics" |
    awk '/^otter_requests_total\{protocol="udp",action="announce",result="ok"\}/ { print $2 }'
}
TICK=$(getconf CLK_TCK)
for run in $(seq "$RUNS"); do
  for i in 0 1 2; do
    k=$(((i + run - 1) % 3))
    before=$(busy_cores)
    ticks=$(cpu_ticks "${PIDS[k]}")
    answered=$(udp_announces "${PORTS[k]}")
    rps=$(timeout $((DURATION + 30)) taskset -c 1 "$UDPLOAD" -p "${PORTS[k]}" -t 100000 -P 10 \
      -c 128 -w 1 -d "$DURATION" -j | grep -o '"announce_rps":[0-9.]*' | cut -d: -f2 || true)
    ticks=$(($(cpu_ticks "${PIDS[k]}") - ticks))
    answered=$(($(udp_announces "${PORTS[k]}") - answered))
    # otter's CPU per announce answered over the run (warm-up included): the machine's other
    # work takes core 0's time away from otter, which moves announces/s, much less this.
    us=$(awk -v t="$ticks" -v hz="$TICK" -v n="$answered" 'BEGIN { printf "%.3f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "${NAMES[k]}" "${rps:-NA}" "$before" "$us" |
      tee -a "$TMP/runs.tsv" | awk -F'\t' '{
        printf "run %s %-13s %8.0f announces/s  %6.3f CPU us/announce  busy cores before %s\n", $1, $2, $3, $5, $4 }'
  done
done
for k in 0 1 2; do
  kill "${PIDS[k]}" 2>/dev/null || true
done
awk -F'\t' '
  function med(x, m,    i, j, t) {
    for (i = 2; i <= m; i++) { t = x[i]; j = i - 1; while (j >= 1 && x[j] > t) { x[j + 1] = x[j]; j-- } x[j + 1] = t }
    return m == 0 ? 0 : (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
  }
  { v[$1, $2] = $3; c[$1, $2] = $5; if ($1 > runs) runs = $1; if ($4 + 0 >= 0.3) busy++ }
  END {
    for (r = 1; r <= runs; r++) {
      A[r] = v[r, "default"]; A2[r] = v[r, "default-2"]; B[r] = v[r, "no-dashboard"]
      aa[r] = A2[r] / A[r]; ba[r] = B[r] / A[r]; ba2[r] = B[r] / A2[r]
      la = la sprintf(" %.3f", aa[r]); lb = lb sprintf(" %.3f", ba[r]); lb2 = lb2 sprintf(" %.3f", ba2[r])
      cA[r] = c[r, "default"]; cA2[r] = c[r, "default-2"]; cB[r] = c[r, "no-dashboard"]
      caa[r] = cA2[r] / cA[r]; cba[r] = cB[r] / cA[r]; cba2[r] = cB[r] / cA2[r]
      lca = lca sprintf(" %.3f", caa[r]); lcb = lcb sprintf(" %.3f", cba[r]); lcb2 = lcb2 sprintf(" %.3f", cba2[r])
    }
    printf "\nmedians of %d runs: default %.0f, default-2 %.0f, no-dashboard %.0f announces/s\n", runs, med(A, runs), med(A2, runs), med(B, runs)
    printf "noise floor  default-2/default      %.3f (per run%s)\n", med(aa, runs), la
    printf "dashboard    no-dashboard/default   %.3f (per run%s)\n", med(ba, runs), lb
    printf "             no-dashboard/default-2 %.3f (per run%s)\n", med(ba2, runs), lb2
    printf "\nCPU us per announce, medians: default %.3f, default-2 %.3f, no-dashboard %.3f\n", med(cA, runs), med(cA2, runs), med(cB, runs)
    printf "noise floor  default-2/default      %.3f (per run%s)\n", med(caa, runs), lca
    printf "dashboard    no-dashboard/default   %.3f (per run%s)\n", med(cba, runs), lcb
    printf "             no-dashboard/default-2 %.3f (per run%s)\n", med(cba2, runs), lcb2
    if (busy > 0) printf "%d of %d runs had >= 0.3 busy cores in the second before: the machine was busy\n", busy, NR
  }' "$TMP/runs.tsv"
