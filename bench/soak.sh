#!/usr/bin/env bash
# bench/soak.sh - otter under mixed UDP and HTTP announce load for a minute (issue 5, "Soak").
#
#   bash bench/soak.sh [--duration 60] [--torrents 100000] [--ports 10] [--window 128]
#                      [--conns 64] [--warmup 15] [--nice N] [--out DIR] [--udp-io auto|fast|portable]
#
# Starts its own otter on free loopback ports, pinned to core 0 (taskset -c 0), fills
# torrents x ports peers (1M by default) over UDP (udpload -F), then runs udpload (window of
# --window requests, numwant 50, steady population: ports 1..N) and wrk (http-announce.lua,
# keep-alive, same pool and ports) together for --duration seconds on the last core, both
# closed loops, so otter runs as fast as it can. Meanwhile it reads otter's VmRSS from
# /proc/PID/status every second. At the end it reads otter's /metrics (longest event-loop
# pause in the last minute and since start) and prints replies, error and invalid replies,
# timeouts, RSS at start, middle and end, and the longest pause. The load tools come from
# ../shared/load (OTTER_LOAD_DIR overrides); udpload is built with gcc into a cache dir.
# On a machine shared with other work, --nice -10 runs otter and each load generator at a
# higher CPU priority (each in a session of its own, with the nice value set on its scheduler
# autogroup, since with autogroups a plain nice only counts within one session), so the pauses
# measured are otter's own rather than time other processes took on its core. The report shows
# how long otter's main thread waited for a CPU.
#
# Verdict (exit 1 when one fails): no invalid UDP replies and no bad HTTP bodies, no
# timeouts, and RSS within +-10 % of its value at the start of the steady run: --warmup
# seconds into the load, once the HTTP connections and the heap have grown to their working
# size (about 10 s at 225k UDP + 7k HTTP replies/s here; the population is steady throughout:
# the load re-announces the fill's peers; RSS
# before the load is printed too). Everything it starts is stopped by PID.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOAD=${OTTER_LOAD_DIR:-$(cd "$REPO/../shared/load" 2>/dev/null && pwd || true)}
DURATION=60 TORRENTS=100000 PORTS=10 WINDOW=128 CONNS=64 OUT='' UDP_IO=auto WARMUP=15 NICE=0

while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --torrents) TORRENTS=$2; shift 2 ;;
    --ports) PORTS=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --udp-io) UDP_IO=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ -n "$LOAD" ] && [ -f "$LOAD/udpload.c" ] || { echo "soak.sh: no load kit (set OTTER_LOAD_DIR)" >&2; exit 2; }
for tool in gcc wrk taskset deno curl; do
  command -v "$tool" >/dev/null || { echo "soak.sh: $tool is missing" >&2; exit 2; }
done
NCPU=$(nproc)
LOAD_CORE=$((NCPU - 1))
[ "$NCPU" -ge 2 ] || echo "warning: one core only: otter and the load share it" >&2

CACHE=${OTTER_LOAD_CACHE:-$HOME/.cache/otter-load}
mkdir -p "$CACHE"
UDPLOAD="$CACHE/udpload-$(sha256sum "$LOAD/udpload.c" | cut -c1-12)"
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm

WORK=$(mktemp -d -t soak-run.XXXXXX)
[ -n "$OUT" ] && mkdir -p "$OUT"
OTTER_PID='' SAMPLER_PID='' UDP_LOAD='' HTTP_LOAD=''
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  # The load runs under `timeout` in sessions of its own: TERM to timeout ends its child too.
  for pid in $UDP_LOAD $HTTP_LOAD; do kill -TERM "$pid" 2>/dev/null || true; done
  if [ -n "$OTTER_PID" ] && kill -0 "$OTTER_PID" 2>/dev/null; then
    kill -TERM "$OTTER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$OTTER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$OTTER_PID" 2>/dev/null || true
  fi
  if [ -n "$OUT" ]; then cp "$WORK"/*.out "$WORK"/*.tsv "$WORK"/*.log "$OUT"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- otter
# With --nice: the autogroup of PID's own session (started with setsid) gets the nice value.
prioritize() {
  [ "$NICE" != 0 ] || return 0
  for _ in $(seq 100); do # setsid may not have run yet: never touch our own session's group
    [ "$(awk '{ print $6 }' "/proc/$1/stat" 2>/dev/null)" = "$1" ] && break
    sleep 0.02
  done
  if [ "$(awk '{ print $6 }' "/proc/$1/stat" 2>/dev/null)" = "$1" ] && [ -w "/proc/$1/autogroup" ]; then
    echo "$NICE" >"/proc/$1/autogroup" 2>/dev/null || echo "warning: cannot set the autogroup nice of $1" >&2
  fi
}
# The start task's flags (permissions and the V8 heap settings), read from deno.json.
mapfile -t FLAGS < <(deno run --allow-read "$REPO/bench/start_flags.ts")
[ "${#FLAGS[@]}" -gt 0 ] || exit 1
setsid nice -n "$NICE" taskset -c 0 deno run "${FLAGS[@]}" --config "$REPO/deno.json" "$REPO/main.ts" \
  --http 127.0.0.1:0 --udp 127.0.0.1:0 --udp-io "$UDP_IO" --max-numwant 200 >"$WORK/otter.log" 2>&1 &
OTTER_PID=$!
HTTP_PORT='' UDP_PORT=''
for _ in $(seq 300); do
  HTTP_PORT=$(sed -n 's|^HTTP listening on http://127.0.0.1:\([0-9]*\)/announce$|\1|p' "$WORK/otter.log")
  UDP_PORT=$(sed -n 's|^UDP listening on udp://127.0.0.1:\([0-9]*\)/announce.*|\1|p' "$WORK/otter.log")
  [ -n "$HTTP_PORT" ] && [ -n "$UDP_PORT" ] && break
  kill -0 "$OTTER_PID" 2>/dev/null || { cat "$WORK/otter.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$HTTP_PORT" ] && [ -n "$UDP_PORT" ] || { echo "soak.sh: otter did not start" >&2; exit 1; }
prioritize "$OTTER_PID"
echo "otter pid $OTTER_PID (core 0): $(grep -h 'UDP listening' "$WORK/otter.log")"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$OTTER_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$OTTER_PID/stat"; }
metric() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
field() { grep -o "\"$2\":[0-9.]*" "$1" | head -1 | cut -d: -f2; }

# ---------------------------------------------------------------- fill
PEERS=$((TORRENTS * PORTS))
"$UDPLOAD" -D -t "$TORRENTS" >"$WORK/pool.txt"
echo "fill: $PEERS peers over $TORRENTS torrents, RSS before $(rss_kb) kB"
taskset -c "$LOAD_CORE" "$UDPLOAD" -p "$UDP_PORT" -t "$TORRENTS" -F "$PEERS" -n 0 -c 128 \
  -w 0 -d $((30 + PEERS / 10000)) -j >"$WORK/fill.out"
grep -q '"fill_ok":1' "$WORK/fill.out" || { cat "$WORK/fill.out" >&2; echo "soak.sh: fill did not finish" >&2; exit 1; }
HELD=$(metric 'otter_peers{family="4"}')
echo "fill done: otter holds $HELD peers, RSS $(rss_kb) kB"
sleep 3
RSS_IDLE=$(rss_kb)

# ---------------------------------------------------------------- soak
# Per second: time, VmRSS (kB), longest loop pause since start (s), and the main thread's time
# on a CPU and waiting for one (ns, /proc/PID/task/PID/schedstat): a pause with a large wait
# is the machine's (other processes on core 0), one without is otter's own.
( while kill -0 "$OTTER_PID" 2>/dev/null; do
    printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N | cut -c1-14)" "$(rss_kb)" \
      "$(metric otter_event_loop_lag_max_seconds)" \
      "$(awk '{ print $1 "\t" $2 }' "/proc/$OTTER_PID/task/$OTTER_PID/schedstat")"
    sleep 1
  done ) >"$WORK/rss.tsv" &
SAMPLER_PID=$!
TICKS0=$(cpu_ticks)
T0=$(date +%s.%N)
setsid nice -n "$NICE" taskset -c "$LOAD_CORE" timeout $((DURATION + 30)) "$UDPLOAD" -p "$UDP_PORT" -t "$TORRENTS" \
  -P "$PORTS" -c "$WINDOW" -w 1 -d "$DURATION" -j >"$WORK/udp.out" &
UDP_LOAD=$!
prioritize "$UDP_LOAD"
setsid nice -n "$NICE" taskset -c "$LOAD_CORE" timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"$((DURATION + 1))s" \
  -s "$LOAD/http-announce.lua" "http://127.0.0.1:$HTTP_PORT" -- pool="$WORK/pool.txt" \
  ports="$PORTS" >"$WORK/wrk.out" 2>&1 &
HTTP_LOAD=$!
prioritize "$HTTP_LOAD"
wait "$UDP_LOAD" || true
wait "$HTTP_LOAD" || true
UDP_LOAD='' HTTP_LOAD=''
T1=$(date +%s.%N)
TICKS1=$(cpu_ticks)
LAG_RECENT=$(metric otter_event_loop_lag_recent_max_seconds)
LAG_MAX=$(metric otter_event_loop_lag_max_seconds)
HELD_END=$(metric 'otter_peers{family="4"}')
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=''

# ---------------------------------------------------------------- report
grep -q RESULT "$WORK/udp.out" || { cat "$WORK/udp.out" >&2; echo "soak.sh: udpload gave no result" >&2; exit 1; }
grep -q RESULT "$WORK/wrk.out" || { cat "$WORK/wrk.out" >&2; echo "soak.sh: wrk gave no result" >&2; exit 1; }
U=$WORK/udp.out W=$WORK/wrk.out
UDP_SECS=$(field "$U" secs) UDP_RPS=$(field "$U" rps)
UDP_REPLIES=$(awk -v r="$UDP_RPS" -v s="$UDP_SECS" 'BEGIN { printf "%.0f", r * s }')
HTTP_REQ=$(field "$W" requests) HTTP_RPS=$(field "$W" rps)
CLK=$(getconf CLK_TCK)
CORES=$(awk -v a="$TICKS0" -v b="$TICKS1" -v t0="$T0" -v t1="$T1" -v h="$CLK" \
  'BEGIN { printf "%.2f", (b - a) / h / (t1 - t0) }')
# RSS: the samples taken while the load ran, from --warmup seconds on; start = the first of
# those, middle = the one at half time, end = the last.
read -r RSS_START RSS_MID RSS_END RSS_MIN RSS_MAX N_SAMPLES < <(awk -F'\t' -v w="$WARMUP" \
  'NR == 1 { t0 = $1 } $2 != "" && $1 - t0 >= w - 0.5 { v[n++] = $2 }
  END { if (n == 0) { print "0 0 0 0 0 0"; exit }
        min = v[0]; max = v[0]; for (i = 1; i < n; i++) { if (v[i] < min) min = v[i]; if (v[i] > max) max = v[i] }
        print v[0], v[int(n / 2)], v[n - 1], min, max, n }' "$WORK/rss.tsv")
DEV=$(awk -v s="$RSS_START" -v lo="$RSS_MIN" -v hi="$RSS_MAX" 'BEGIN {
  a = (hi - s) / s * 100; b = (s - lo) / s * 100; printf "%.1f", (a > b ? a : b) }')
# The longest run-queue wait of otter's main thread in one second, and the wait in the seconds
# where the longest-pause figure grew.
read -r WAIT_MAX WAIT_AT_PAUSE < <(awk -F'\t' 'NR > 1 && $5 != "" && pw != "" {
    w = ($5 - pw) / 1e6; if (w > max) max = w
    if ($3 > pl + 0.0005) { grew = grew sprintf("%s%.0f", (grew == "" ? "" : ","), w) }
  } { if ($5 != "") pw = $5; if ($3 != "") pl = $3 }
  END { printf "%.0f %s\n", max, (grew == "" ? "-" : grew) }' "$WORK/rss.tsv")
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }

echo
echo "soak: ${DURATION} s, $TORRENTS torrents x $PORTS ports ($HELD peers; $HELD_END at the end), otter on core 0 (nice $NICE, $CORES cores used), load on core $LOAD_CORE"
printf '  UDP  %9s replies (%s/s)  errors %s  invalid %s  timeouts %s  late %s  p99 %s us\n' \
  "$UDP_REPLIES" "$UDP_RPS" "$(field "$U" errors)" "$(field "$U" invalid)" "$(field "$U" timeouts)" \
  "$(field "$U" late)" "$(field "$U" p99_us)"
printf '  HTTP %9s replies (%s/s)  bad bodies %s  socket errors %s  non-2xx %s  timeouts %s  p99 %s us\n' \
  "$HTTP_REQ" "$HTTP_RPS" "$(field "$W" bad_bodies)" "$(field "$W" socket_errors)" \
  "$(field "$W" non2xx)" "$(field "$W" timeouts)" "$(field "$W" p99_us)"
echo "  RSS  before the load $(mb "$RSS_IDLE"); from ${WARMUP} s on: start $(mb "$RSS_START")  middle $(mb "$RSS_MID")  end $(mb "$RSS_END")"
echo "       (min $(mb "$RSS_MIN"), max $(mb "$RSS_MAX"), $N_SAMPLES samples; largest deviation from start ${DEV} %)"
echo "  event loop: longest pause $(ms "$LAG_RECENT") in the last minute, $(ms "$LAG_MAX") since start (fill included)"
echo "  otter's main thread waited for a CPU up to $WAIT_MAX ms in one second (in the seconds the longest pause grew: $WAIT_AT_PAUSE ms)"

FAIL=0
check() { if [ "$1" != 0 ]; then echo "FAIL: $2"; FAIL=1; fi; }
check "$(field "$U" invalid)" "invalid UDP replies"
check "$(field "$W" bad_bodies)" "bad HTTP bodies"
check "$(field "$U" timeouts)" "UDP timeouts"
check "$(field "$W" timeouts)" "HTTP timeouts"
check "$(field "$W" socket_errors)" "HTTP socket errors"
check "$(awk -v d="$DEV" 'BEGIN { print (d > 10) ? 1 : 0 }')" "RSS moved more than 10 % from its start"
[ "$FAIL" = 0 ] && echo "PASS"
exit "$FAIL"
