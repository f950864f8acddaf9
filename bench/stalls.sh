#!/usr/bin/env bash
# Stalls under an open loop: otter (the start task's flags, plus --trace-gc) filled with 1M peers
# over 100k torrents, its closed-loop top rate measured with udpload, then bench/openloop.c at
# half of it for DURATION s, RUNS times, listing every episode of replies later than 5 ms; then
# bench/stall_report.ts puts each episode beside otter's GC pauses and the machine's load
# (vmstat) at that second and how long otter's main thread waited for a CPU around it
# (/proc schedstat, every 50 ms). otter on core 0, the load tools on core 1; 127.0.0.1 only.
#
# Then the same for HTTP keep-alive announces (wrk's closed-loop top rate with 64 connections,
# openloop --http at half of it over 64 connections), unless --udp-only.
#
#   bash bench/stalls.sh [--runs N] [--duration S] [--rate R] [--http-rate R] [--udp-only|--http-only] [--out DIR]
#
# --rate / --http-rate skip the top-rate measurements. Takes about 2 x RUNS x (DURATION + 5) s
# plus 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5
DURATION=60
RATE=""
HTTP_RATE=""
HTTP=1
UDP=1
OUT=$(mktemp -d)
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --http-rate) HTTP_RATE=$2; shift 2 ;;
    --udp-only) HTTP=0; shift ;;
    --http-only) UDP=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--duration S] [--rate R] [--http-rate R] [--udp-only|--http-only] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
LOAD=${LOAD:-../shared/load}
UDPLOAD=${UDPLOAD:-/tmp/udpload}
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
OPENLOOP=$OUT/openloop # built from this checkout: it must report how late it sent each episode
gcc -O2 -Wall -Wextra -o "$OPENLOOP" bench/openloop.c
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
[ "${#PERMS[@]}" -gt 0 ] || exit 1
# The start task's V8 flags, plus the GC trace and the gc() the anchor needs.
for i in "${!PERMS[@]}"; do
  [[ ${PERMS[$i]} == --v8-flags=* ]] && PERMS[$i]="${PERMS[$i]},--trace-gc,--expose-gc"
done
UDP_PORT=16959

taskset -c 0 deno run "${PERMS[@]}" bench/traced_otter.ts --http 127.0.0.1:16960 \
  --udp "127.0.0.1:$UDP_PORT" >"$OUT/otter.log" 2>&1 &
OTTER=$!
VMSTAT=""
SAMPLER=""
trap 'kill "$OTTER" 2>/dev/null || true; [ -z "$VMSTAT" ] || kill "$VMSTAT" 2>/dev/null || true
  [ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  grep -q "UDP listening" "$OUT/otter.log" && break
  sleep 0.1
done
grep -q "UDP listening" "$OUT/otter.log" || { cat "$OUT/otter.log" >&2; exit 1; }
vmstat -t 1 >"$OUT/vmstat.log" 2>&1 &
VMSTAT=$!
# otter's main thread every 50 ms: Unix time, then /proc schedstat's ns on a CPU and ns waiting
# for one (run-queue delay: the machine, not otter, holding it back).
(while kill -0 "$OTTER" 2>/dev/null; do
  printf '%s %s\n' "$EPOCHREALTIME" "$(cat "/proc/$OTTER/task/$OTTER/schedstat" 2>/dev/null)"
  sleep 0.05
done) >"$OUT/schedstat.log" &
SAMPLER=$!

echo "== fill: 1M peers over 100k torrents"
timeout 180 taskset -c 1 "$UDPLOAD" -p "$UDP_PORT" -t 100000 -F 1000000 -n 0 -c 128 -d 120 |
  grep "fill:" || true
if [ "$UDP" = 1 ] && [ -z "$RATE" ]; then
  echo "== closed-loop top rate (udpload -c 128, 3 x 10 s)"
  for i in 1 2 3; do
    timeout 60 taskset -c 1 "$UDPLOAD" -p "$UDP_PORT" -t 100000 -P 10 -c 128 -d 10 -j |
      grep -o '"announce_rps":[0-9.]*' | cut -d: -f2
  done | sort -n | tee "$OUT/top.txt"
  RATE=$(awk 'NR == 2 { printf "%d", $1 / 2 }' "$OUT/top.txt")
fi
[ "$UDP" = 1 ] && echo "== open loop at $RATE announces/s, $RUNS x $DURATION s (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
for run in $(seq "$((UDP * RUNS))"); do
  timeout $((DURATION + 60)) taskset -c 1 "$OPENLOOP" --udp "127.0.0.1:$UDP_PORT" --rate "$RATE" \
    --duration "$DURATION" --torrents 100000 --ports 10 --fill-seeders --stalls 5 \
    >"$OUT/run-$run.txt" 2>&1 || true
  grep -E "latency_us|stalls:" "$OUT/run-$run.txt" | sed "s/^/run $run: /"
done
if [ "$HTTP" = 1 ]; then
  "$UDPLOAD" -D -t 100000 >"$OUT/pool.txt"
  if [ -z "$HTTP_RATE" ]; then
    echo "== HTTP closed-loop top rate (wrk -c 64 keep-alive, 3 x 10 s)"
    for i in 1 2 3; do
      timeout 60 taskset -c 1 wrk -t1 -c64 -d10s -s "$LOAD/http-announce.lua" \
        http://127.0.0.1:16960 -- "pool=$OUT/pool.txt" ports=10 | awk '/Requests\/sec/ { print $2 }'
    done | sort -n | tee "$OUT/http-top.txt"
    HTTP_RATE=$(awk 'NR == 2 { printf "%d", $1 / 2 }' "$OUT/http-top.txt")
  fi
  echo "== HTTP open loop at $HTTP_RATE announces/s over 64 connections, $RUNS x $DURATION s (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
  for run in $(seq "$RUNS"); do
    timeout $((DURATION + 60)) taskset -c 1 "$OPENLOOP" --http 127.0.0.1:16960 --rate "$HTTP_RATE" \
      --duration "$DURATION" --torrents 100000 --ports 10 --conns 64 --fill-seeders --stalls 5 \
      >"$OUT/run-http-$run.txt" 2>&1 || true
    grep -E "latency_us|stalls:" "$OUT/run-http-$run.txt" | sed "s/^/http run $run: /"
  done
fi
kill "$VMSTAT" 2>/dev/null || true
VMSTAT=""
kill "$OTTER" && wait "$OTTER" 2>/dev/null || true
deno run --allow-read bench/stall_report.ts "$OUT" | tee "$OUT/report.txt"
echo "outputs kept in $OUT"
