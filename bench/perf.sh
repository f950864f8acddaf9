#!/usr/bin/env bash
# The figures in docs/performance.md ("Against opentracker"), reproduced: otter against Debian's opentracker with
# ../shared/load/compare.sh (same machine, same minutes, ratios), plus the latency at half rate,
# the portable UDP path, memory per peer in three swarm shapes, idle RSS and --cluster overhead.
#
#   bash bench/perf.sh [--runs N] [--out DIR] [--only LIST]
#
# LIST is a comma list of: throughput,portable,latency,memory,idle,cluster (default: all).
# otter runs pinned to core 0 (taskset -c 0); compare.sh pins its load generators to the last
# core. Every step is bounded in time; everything runs on 127.0.0.1. Takes about 25 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
OUT=$(mktemp -d)
ONLY="throughput,portable,latency,memory,idle,cluster"
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--out DIR] [--only LIST]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
LOAD=../shared/load
UDPLOAD=${UDPLOAD:-/tmp/udpload}
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
# Exactly the start task's grants and V8 flags, read from deno.json (ffi for glibc's paths only).
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
[ "${#PERMS[@]}" -gt 0 ] || exit 1
want() { [[ ",$ONLY," == *",$1,"* ]]; }

OTTER_PID=""
start_otter() { # port_http port_udp extra args...
  local http=$1 udp=$2
  shift 2
  taskset -c 0 deno run "${PERMS[@]}" main.ts --http "127.0.0.1:$http" --udp "127.0.0.1:$udp" \
    "$@" >"$OUT/otter-$udp.log" 2>&1 &
  OTTER_PID=$!
  for _ in $(seq 200); do
    grep -q "UDP listening" "$OUT/otter-$udp.log" && return 0
    sleep 0.1
  done
  echo "otter did not start:" >&2
  cat "$OUT/otter-$udp.log" >&2
  exit 1
}
stop_otter() {
  [ -n "$OTTER_PID" ] && kill "$OTTER_PID" 2>/dev/null && wait "$OTTER_PID" 2>/dev/null || true
  OTTER_PID=""
}
trap stop_otter EXIT
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

if want throughput; then
  echo "== throughput: UDP fast path and HTTP, otter vs opentracker, $RUNS runs"
  start_otter 16970 16969
  timeout 1800 bash "$LOAD/compare.sh" --http-url http://127.0.0.1:16970 --udp 16969 \
    --otter-pid "$OTTER_PID" --runs "$RUNS" --out "$OUT/throughput" | tee "$OUT/throughput.txt"
  stop_otter
fi

if want portable; then
  echo "== throughput: portable UDP path (Deno.listenDatagram)"
  start_otter 16972 16971 --udp-io portable
  timeout 900 bash "$LOAD/compare.sh" --udp 16971 --otter-pid "$OTTER_PID" --runs "$RUNS" \
    --tests udp_announce --out "$OUT/portable" | tee "$OUT/portable.txt"
  stop_otter
fi

if want latency; then
  echo "== latency at about half of the top rate (closed loop with a small window)"
  start_otter 16974 16973
  timeout 120 "$UDPLOAD" -p 16973 -t 100000 -F 1000000 -n 0 -c 128 -d 60 | grep "fill:"
  "$UDPLOAD" -D -t 100000 >"$OUT/pool.txt"
  for window in 128 16 8; do
    echo "-- UDP window $window"
    timeout 60 taskset -c 1 "$UDPLOAD" -p 16973 -t 100000 -P 10 -c "$window" -d 10 |
      grep -E "responses/s|latency_us"
  done
  for conns in 64 8 4; do
    echo "-- HTTP keep-alive, $conns connections"
    timeout 60 taskset -c 1 wrk -t1 -c"$conns" -d10s --latency -s "$LOAD/http-announce.lua" \
      http://127.0.0.1:16974 -- "pool=$OUT/pool.txt" ports=10 | grep -E "Requests/sec| 50%| 99%"
  done
  stop_otter
fi

if want memory; then
  for shape in "100000 10" "1000 1000" "1000000 1"; do
    read -r torrents ports <<<"$shape"
    echo "== memory: $torrents torrents x $ports peers (fresh otter)"
    start_otter 16976 16975
    timeout 900 bash "$LOAD/compare.sh" --memory --udp 16975 --otter-pid "$OTTER_PID" \
      --torrents "$torrents" --ports "$ports" | tee -a "$OUT/memory.txt" | tail -n 5
    stop_otter
  done
fi

if want idle; then
  echo "== idle RSS (5 s after start)"
  start_otter 16978 16977
  sleep 5
  grep -E "VmRSS|RssAnon|RssFile" "/proc/$OTTER_PID/status"
  stop_otter
fi

if want cluster; then
  if command -v redis-server >/dev/null; then
    echo "== --cluster overhead: announces/s standalone vs with --cluster (alternating, $RUNS runs)"
    redis-server --port 16990 --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
    REDIS=$!
    (umask 077 && head -c 32 /dev/urandom | base64 >"$OUT/cluster.secret")
    sleep 0.5
    for run in $(seq "$RUNS"); do
      for mode in standalone cluster; do
        if [ "$mode" = cluster ]; then
          start_otter 16980 16979 --cluster redis://127.0.0.1:16990 --cluster-name "perf$run" \
            --cluster-secret-file "$OUT/cluster.secret"
        else
          start_otter 16980 16979
        fi
        timeout 120 "$UDPLOAD" -p 16979 -t 100000 -F 1000000 -n 0 -c 128 -d 60 >/dev/null
        printf 'run %s %-10s ' "$run" "$mode"
        timeout 60 taskset -c 1 "$UDPLOAD" -p 16979 -t 100000 -P 10 -c 128 -d 10 |
          grep "responses/s"
        stop_otter
      done
    done
    kill "$REDIS"
  else
    echo "== cluster: skipped, no redis-server"
  fi
fi
echo "outputs kept in $OUT"
