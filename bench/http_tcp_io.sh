#!/usr/bin/env bash
# http_tcp_io.sh - HTTP keep-alive announces against otter with --tcp-io fast and --tcp-io
# portable, alternating (fast, portable, fast, ...), each run on a freshly started otter pinned to
# core 0, wrk pinned to core 1 with ../shared/load/http-announce.lua (as bench/perf.sh's latency
# step): requests/s, p50, p99, and requests per otter CPU-second (user + system of all its threads
# over the run), which is the figure to compare on a busy machine; the busy cores of the whole
# machine during each run are printed beside it.
#
#   bash bench/http_tcp_io.sh [--runs 3] [--conns 64] [--duration 10] [--out DIR]
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
RUNS=3 CONNS=64 DURATION=10 OUT=''
while (($#)); do
  case $1 in
    --runs) RUNS=$2 ;;
    --conns) CONNS=$2 ;;
    --duration) DURATION=$2 ;;
    --out) OUT=$2 ;;
    *) echo "usage: $0 [--runs N] [--conns N] [--duration S] [--out DIR]" >&2; exit 2 ;;
  esac
  shift 2
done
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
LOAD=${LOAD:-../../shared/load}
[ -d "$LOAD" ] || LOAD=/work/shared/load
UDPLOAD=${UDPLOAD:-/tmp/udpload}
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
"$UDPLOAD" -D -t 100000 >"$OUT/pool.txt"
PERMS=(--v8-flags=--max-semi-space-size=2 --allow-net --allow-read --allow-write
  --allow-ffi=/lib/x86_64-linux-gnu/libc.so.6,/lib/aarch64-linux-gnu/libc.so.6,/lib64/libc.so.6,/usr/lib/libc.so.6
  --allow-env=REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS)
CLK_TCK=$(getconf CLK_TCK)
OTTER_PID=''
trap '[ -z "$OTTER_PID" ] || kill "$OTTER_PID" 2>/dev/null || true' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
all_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

printf 'io\trun\trequests_s\tp50\tp99\totter_cores\treq_per_cpu_s\tmachine_busy_cores\n' >"$OUT/results.tsv"
for run in $(seq "$RUNS"); do
  for io in fast portable; do
    port=$((17100 + run * 2))
    [ "$io" = fast ] || port=$((port + 1))
    log="$OUT/otter-$io-$run.log"
    taskset -c 0 deno run "${PERMS[@]}" main.ts --http "127.0.0.1:$port" --udp 127.0.0.1:0 \
      --max-connections-per-ip 0 --tcp-io "$io" >"$log" 2>&1 &
    OTTER_PID=$!
    for _ in $(seq 200); do grep -qs "HTTP listening" "$log" && break; sleep 0.1; done
    # Warm-up: the hot path compiled before the measured run.
    timeout 30 taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s "$LOAD/http-announce.lua" \
      "http://127.0.0.1:$port" -- "pool=$OUT/pool.txt" ports=10 >/dev/null
    t0=$(cpu_ticks "$OTTER_PID") b0=$(all_busy)
    timeout 60 taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
      -s "$LOAD/http-announce.lua" "http://127.0.0.1:$port" -- "pool=$OUT/pool.txt" ports=10 \
      >"$OUT/wrk-$io-$run.txt"
    t1=$(cpu_ticks "$OTTER_PID") b1=$(all_busy)
    kill "$OTTER_PID"
    wait "$OTTER_PID" 2>/dev/null || true
    OTTER_PID=''
    awk -v io="$io" -v run="$run" -v ticks=$((t1 - t0)) -v busy=$((b1 - b0)) -v hz="$CLK_TCK" \
      -v d="$DURATION" '
      function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; return v * 1e6 }
      /Requests\/sec/ { rps = $2 }
      / 50%/ { p50 = us($2) }
      / 99%/ { p99 = us($2) }
      END {
        cores = ticks / hz / d
        printf "%s\t%d\t%.0f\t%.0f\t%.0f\t%.2f\t%.0f\t%.2f\n", io, run, rps, p50, p99, cores,
          (cores > 0 ? rps / cores : 0), busy / hz / d
      }' "$OUT/wrk-$io-$run.txt" | tee -a "$OUT/results.tsv"
  done
done
awk -F'\t' '
  function med(s,    n, a, i, j, t) {
    n = split(substr(s, 2), a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1; while (j >= 1 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  NR > 1 { r[$1] = r[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5; c[$1] = c[$1] " " $7; b[$1] = b[$1] " " $8 }
  END {
    print "== medians: requests/s, p50 us, p99 us, requests per otter CPU-second, machine busy cores"
    for (io in r) printf "%-9s %8.0f %8.0f %8.0f %8.0f %6.2f\n", io, med(r[io]), med(p50[io]), med(p99[io]), med(c[io]), med(b[io])
    printf "fast/portable: requests/s %.2f, per CPU-second %.2f\n", med(r["fast"]) / med(r["portable"]), med(c["fast"]) / med(c["portable"])
  }' "$OUT/results.tsv" | tee "$OUT/summary.txt"
