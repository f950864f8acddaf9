#!/usr/bin/env bash
# The figures in docs/performance.md, reproduced: otter against Debian's opentracker with
# ../shared/load/compare.sh (same machine, same minutes, ratios), otter's UDP figure against the
# machine's ceiling (../shared/load/udp-ref.c, a C responder with no store), plus the latency at
# half rate, the portable UDP path, memory per peer in three swarm shapes, idle RSS and --cluster
# overhead.
#
#   bash bench/perf.sh [--runs N] [--out DIR] [--only LIST]
#
# LIST is a comma list of: throughput,ceiling,portable,latency,memory,idle,cluster (default:
# all). throughput includes the ceiling series; `ceiling` alone runs only that (with its own
# otter and fill). otter runs pinned to core 0 (taskset -c 0); compare.sh pins its load
# generators to the last core. Every step is bounded in time; everything runs on 127.0.0.1.
# Takes about 27 minutes.
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
LOAD=${LOAD:-../shared/load} # the load kit; set LOAD=DIR when the checkout is elsewhere
UDPLOAD=${UDPLOAD:-/tmp/udpload}
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
UDPREF=${UDPREF:-/tmp/udp-ref}
[ -x "$UDPREF" ] || gcc -O2 -Wall -o "$UDPREF" "$LOAD/udp-ref.c"
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
REF_PID=""
trap 'stop_otter; [ -z "$REF_PID" ] || kill "$REF_PID" 2>/dev/null || true' EXIT
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, all threads
busy_cores() { # busy cores over the next second, all processes
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = (y[1] - x[1]) + (y[2] - x[2])
    printf "%.2f", (t > 0 ? (y[1] - x[1]) / t * n : 0) }'
}

# The machine's UDP limit beside otter: udp-ref.c (BEP 15 connect and a fixed 20-byte announce
# reply, no store, recvmmsg/sendmmsg batches of 64) pinned to otter's core, under the same
# udpload load as compare.sh's udp_announce, alternating with otter run by run (odd runs start
# with otter), so otter/ceiling is a same-minutes ratio like otter/opentracker. Needs an otter
# filled with 1M peers (100k torrents x 10) listening on UDP port $1; prints each run and the
# medians, and beside them compare.sh's udp_announce otter/opentracker when its results.tsv ($2)
# exists.
ceiling_series() { # otter_udp_port [compare_results_tsv]
  local port=$1 tsv=${2:-} ref_port=16989 run order who p pid before t0 t1 w0 w1 line rps
  taskset -c 0 "$UDPREF" "$ref_port" 64 >"$OUT/udp-ref.log" 2>&1 &
  REF_PID=$!
  sleep 0.3
  : >"$OUT/ceiling.tsv"
  for run in $(seq "$RUNS"); do
    if ((run % 2)); then order="otter ceiling"; else order="ceiling otter"; fi
    for who in $order; do
      if [ "$who" = otter ]; then p=$port pid=$OTTER_PID; else p=$ref_port pid=$REF_PID; fi
      before=$(busy_cores)
      t0=$(cpu_ticks "$pid") w0=$EPOCHREALTIME
      line=$(timeout 60 taskset -c 1 "$UDPLOAD" -p "$p" -t 100000 -P 10 -c 128 -w 1 -d 10 -j |
        grep '^RESULT' || true)
      t1=$(cpu_ticks "$pid") w1=$EPOCHREALTIME
      rps=$(grep -o '"announce_rps":[0-9.]*' <<<"$line" | cut -d: -f2)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$who" "${rps:-NA}" \
        "$(awk -v d=$((t1 - t0)) -v h="$CLK_TCK" -v w="$w0" -v x="$w1" 'BEGIN { printf "%.2f", d / h / (x - w) }')" "$before" \
        "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/ceiling.tsv" |
        awk -F'\t' '{ printf "run %s %-8s %8.0f announces/s  server cores %s  busy cores before %s  load %s\n",
          $1, $2, $3, $4, $5, $6 }'
    done
  done
  kill "$REF_PID" 2>/dev/null && wait "$REF_PID" 2>/dev/null || true
  REF_PID=""
  awk -F'\t' -v tsv="$tsv" '
    function med(a, m,    i, j, t) {
      for (i = 2; i <= m; i++) { t = a[i]; j = i - 1; while (j >= 1 && a[j] > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
      return m == 0 ? "NA" : (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    { v[$1, $2] = $3; if ($1 > runs) runs = $1; if ($5 + 0 >= 0.3) busy++ }
    END {
      for (r = 1; r <= runs; r++) {
        o[r] = v[r, "otter"]; c[r] = v[r, "ceiling"]
        if (v[r, "ceiling"] > 0) { q[++m] = v[r, "otter"] / v[r, "ceiling"]; list = list sprintf(" %.2f", q[m]) }
      }
      while (tsv != "" && (getline line < tsv) > 0) {
        split(line, f, "\t")
        if (f[2] == "udp_announce") ot[f[1], f[3]] = f[4]
      }
      for (r = 1; r <= runs; r++) if (ot[r, "opentracker"] > 0) { p[++n] = ot[r, "otter"] / ot[r, "opentracker"]; olist = olist sprintf(" %.2f", p[n]) }
      print ""
      printf "== UDP announces/s, median of %d runs: otter %.0f, ceiling (udp-ref.c, batch 64) %.0f\n", runs, med(o, runs), med(c, runs)
      printf "   otter/ceiling %.2f (per run%s)", med(q, m), list
      if (n > 0) printf "; otter/opentracker %.2f (compare.sh, per run%s)", med(p, n), olist
      print ""
      if (busy > 0) printf "   %d of %d runs had >= 0.3 busy cores in the second before: the machine was busy, figures are noisy\n", busy, NR
    }' "$OUT/ceiling.tsv"
}

if want throughput; then
  echo "== throughput: UDP fast path and HTTP, otter vs opentracker, $RUNS runs"
  start_otter 16970 16969
  timeout 1800 bash "$LOAD/compare.sh" --http-url http://127.0.0.1:16970 --udp 16969 \
    --otter-pid "$OTTER_PID" --runs "$RUNS" --out "$OUT/throughput" | tee "$OUT/throughput.txt"
  echo "== UDP ceiling: otter vs udp-ref.c on core 0, same load, alternating, $RUNS runs"
  ceiling_series 16969 "$OUT/throughput/results.tsv" | tee "$OUT/ceiling.txt"
  stop_otter
elif want ceiling; then
  echo "== UDP ceiling: otter vs udp-ref.c on core 0, same load, alternating, $RUNS runs"
  start_otter 16970 16969
  timeout 120 "$UDPLOAD" -p 16969 -t 100000 -F 1000000 -n 0 -c 128 -d 60 | grep "fill:"
  ceiling_series 16969 | tee "$OUT/ceiling.txt"
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
    for run in $(seq "$RUNS"); do
      echo "== memory: $torrents torrents x $ports peers (fresh otter), run $run"
      start_otter 16976 16975
      timeout 900 bash "$LOAD/compare.sh" --memory --udp 16975 --otter-pid "$OTTER_PID" \
        --torrents "$torrents" --ports "$ports" | tee -a "$OUT/memory.txt" | tail -n 5
      stop_otter
    done
  done
  # Medians per shape of compare.sh's bytes-per-peer lines (otter, opentracker) and their ratio.
  awk '
    function med(s,    n, a, i, j, t) {
      n = split(substr(s, 2), a, " ")
      for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1; while (j >= 1 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    /^== memory: [0-9]+ new peers over/ { shape = $7 " torrents"; if (!(shape in seen)) { seen[shape] = 1; order[++k] = shape } }
    /^otter +[0-9]/ { o[shape] = o[shape] " " $NF }
    /^opentracker +[0-9]/ { r[shape] = r[shape] " " $NF }
    END {
      print "== memory, medians: RSS growth per peer, otter / opentracker (runs)"
      for (i = 1; i <= k; i++) printf "   1M peers over %s: otter %.1f B (%s), opentracker %.1f B (%s), ratio %.2f\n",
        order[i], med(o[order[i]]), substr(o[order[i]], 2), med(r[order[i]]), substr(r[order[i]], 2), med(o[order[i]]) / med(r[order[i]])
    }' "$OUT/memory.txt"
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
