#!/usr/bin/env bash
# bench/cluster_scale.sh - what a cluster costs Redis: memory, bytes in and out, CPU, per announce
# and per published change, measured beside a model's prediction (issue 15).
#
#   bash bench/cluster_scale.sh [--nodes 2] [--load-nodes 1] [--torrents 100000] [--ports 10]
#        [--rates 50000,100000] [--duration 20] [--settle 3] [--peer-timeout 2700]
#        [--fill-window 128] [--steady] [--pin] [--out DIR]
#
# Starts its own redis-server (no persistence) on a free loopback port and --nodes otter
# instances (node ids n1, n2, ...) on free loopback ports, all with --cluster on that Redis and
# one cluster secret. Then, reading Redis's INFO (memory, stats, cpu), XINFO STREAM and MEMORY
# USAGE of the stream, and every node's /metrics before and after each phase:
#   1. fill: udpload -F adds torrents x ports peers (1M by default) on n1, then waits until every
#      node holds them (at most 120 s), which is the join-by-propagation time;
#   2. one phase per --rates value: openloop re-announces those peers (event none, a random
#      quarter seeders; with --steady each peer keeps the seeder flag the fill gave it, so a
#      re-announce changes nothing: what refresh suppression is about) at that total rate, split
#      over the first --load-nodes nodes, for --duration seconds, then --settle seconds for the
#      stream to drain.
# For each phase it prints announces, changes published, Redis bytes in and out per announce and
# per change, stream bytes in Redis per retained change, CPU (cores) of each otter and of Redis
# (and Redis's own microseconds per XADD and per XREAD, INFO commandstats),
# and the model's figures for the same load next to the measured ones. The model is today's
# format and rules (every accepted announce is one published change; MODEL below says how each
# figure is derived); when the sync changes, change MODEL_* and the change count here with it.
#
# The load tools: udpload from ../shared/load (OTTER_LOAD_DIR overrides), openloop from bench/,
# both built with gcc into a cache dir. --pin puts Redis and the otters on core 0 and the load
# on the last core (on a 2-core machine that measures their sum on one core). Everything it
# starts is stopped by PID. openloop exits 3 when it could not keep its schedule (a busy
# machine): the phase is reported anyway, with the achieved rate, and flagged.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOAD=${OTTER_LOAD_DIR:-$(cd "$REPO/../shared/load" 2>/dev/null && pwd || true)}
[ -n "$LOAD" ] && [ -f "$LOAD/udpload.c" ] || LOAD=/work/shared/load
NODES=2 LOAD_NODES=1 TORRENTS=100000 PORTS=10 RATES=50000,100000 DURATION=20 SETTLE=3
PEER_TIMEOUT=2700 FILL_WINDOW=128 PIN=0 OUT='' STEADY=''

while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --load-nodes) LOAD_NODES=$2; shift 2 ;;
    --torrents) TORRENTS=$2; shift 2 ;;
    --ports) PORTS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --peer-timeout) PEER_TIMEOUT=$2; shift 2 ;;
    --fill-window) FILL_WINDOW=$2; shift 2 ;;
    --pin) PIN=1; shift ;;
    --steady) STEADY=--fill-seeders; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster_scale.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$LOAD_NODES" -ge 1 ] && [ "$LOAD_NODES" -le "$NODES" ] || {
  echo "cluster_scale.sh: --load-nodes must be 1..--nodes" >&2; exit 2; }
for tool in gcc deno curl redis-server redis-cli taskset; do
  command -v "$tool" >/dev/null || { echo "cluster_scale.sh: $tool is missing" >&2; exit 2; }
done
[ -f "$LOAD/udpload.c" ] || { echo "cluster_scale.sh: no load kit (set OTTER_LOAD_DIR)" >&2; exit 2; }

# ---------------------------------------------------------------- the model (today's sync)
# Batch: header 53 bytes + node id (2 here); record 27 bytes (IPv4); one XADD per batch (at most
# 4096 changes; the flush every 200 ms takes what is pending). RESP framing of one XADD with
# MINID ~ and one field is about 100 bytes. Every node reads every batch, its own included, so
# bytes out = nodes x bytes in (plus the XREAD reply framing, ~60 bytes an entry). Memory: one
# stream entry per batch, each in a listpack node of its own (it is larger than
# stream-node-max-bytes, 4096), ~40 bytes of overhead per node; entries are kept one peer
# timeout.
MODEL_RECORD=27 MODEL_HEADER=55 MODEL_XADD=100 MODEL_XREAD=60 MODEL_ENTRY_MEM=40
MODEL_FLUSH_MS=200 MODEL_MAX_BATCH=4096

NCPU=$(nproc)
LOAD_CORE=$((NCPU - 1))
CACHE=${OTTER_LOAD_CACHE:-$HOME/.cache/otter-load}
mkdir -p "$CACHE"
UDPLOAD="$CACHE/udpload-$(sha256sum "$LOAD/udpload.c" | cut -c1-12)"
OPENLOOP="$CACHE/openloop-$(sha256sum "$REPO/bench/openloop.c" | cut -c1-12)"
[ -x "$UDPLOAD" ] || gcc -O2 -Wall -o "$UDPLOAD" "$LOAD/udpload.c" -lpthread -lm
[ -x "$OPENLOOP" ] || gcc -O2 -Wall -o "$OPENLOOP" "$REPO/bench/openloop.c"

WORK=$(mktemp -d -t cluster-scale.XXXXXX)
[ -n "$OUT" ] && mkdir -p "$OUT"
REDIS_PID='' OTTER_PIDS=() LOAD_PIDS=()
cleanup() {
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${OTTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${OTTER_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  [ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null || true
  if [ -n "$OUT" ]; then cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.tsv "$OUT"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pin() { if [ "$PIN" = 1 ]; then echo "taskset -c $1"; fi; }

# ---------------------------------------------------------------- redis and the nodes
REDIS_PORT=$(free_port)
# shellcheck disable=SC2046
$(pin 0) redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$WORK/redis.log" &
REDIS_PID=$!
disown "$REDIS_PID"
R() { redis-cli -p "$REDIS_PORT" "$@"; }
for _ in $(seq 100); do [ "$(R PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
[ "$(R PING 2>/dev/null)" = PONG ] || { echo "cluster_scale.sh: redis-server did not start" >&2; exit 1; }
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
STREAM=otter:scale:changes
head -c 32 /dev/urandom | base64 >"$WORK/secret"
chmod 600 "$WORK/secret"

mapfile -t FLAGS < <(deno run --allow-read "$REPO/bench/start_flags.ts")
[ "${#FLAGS[@]}" -gt 0 ] || exit 1
HTTP_PORTS=() UDP_PORTS=()
for n in $(seq "$NODES"); do
  # shellcheck disable=SC2046
  $(pin 0) deno run "${FLAGS[@]}" --config "$REPO/deno.json" "$REPO/main.ts" \
    --http 127.0.0.1:0 --udp 127.0.0.1:0 --peer-timeout "$PEER_TIMEOUT" --max-numwant 200 \
    --cluster "$REDIS_URL" --cluster-name scale --node-id "n$n" \
    --cluster-secret-file "$WORK/secret" >"$WORK/otter$n.log" 2>&1 &
  OTTER_PIDS+=($!)
  disown $!
done
for n in $(seq "$NODES"); do
  log=$WORK/otter$n.log http='' udp=''
  for _ in $(seq 300); do
    http=$(sed -n 's|^HTTP listening on http://127.0.0.1:\([0-9]*\)/announce$|\1|p' "$log")
    udp=$(sed -n 's|^UDP listening on udp://127.0.0.1:\([0-9]*\)/announce.*|\1|p' "$log")
    [ -n "$http" ] && [ -n "$udp" ] && break
    kill -0 "${OTTER_PIDS[$((n - 1))]}" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$http" ] && [ -n "$udp" ] || { cat "$log" >&2; echo "cluster_scale.sh: node n$n did not start" >&2; exit 1; }
  HTTP_PORTS+=("$http") UDP_PORTS+=("$udp")
done

# ---------------------------------------------------------------- readings
metric() { # node-index name
  curl -s "http://127.0.0.1:${HTTP_PORTS[$1]}/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
info() { R INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
xinfo() { R XINFO STREAM "$STREAM" 2>/dev/null | awk -v k="$1" 'p { print; exit } $0 == k { p = 1 }'; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK=$(getconf CLK_TCK)

# One reading: a line of name=value words in $WORK/reading.$1
read_all() {
  {
    echo "t=$(date +%s.%N)"
    echo "mem=$(info memory used_memory)"
    echo "in=$(info stats total_net_input_bytes)"
    echo "out=$(info stats total_net_output_bytes)"
    echo "rcpu=$(R INFO cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { print s }')"
    echo "xlen=$(R XLEN "$STREAM")"
    echo "added=$(xinfo entries-added)"
    echo "smem=$(R MEMORY USAGE "$STREAM" SAMPLES 0)"
    R INFO commandstats | tr -d '\r' | awk -F'[:,=]' '
      $1 == "cmdstat_xadd" { print "xadd_calls=" $3; print "xadd_usec=" $5 }
      $1 == "cmdstat_xread" { print "xread_calls=" $3; print "xread_usec=" $5 }'
    for n in $(seq 0 $((NODES - 1))); do
      echo "pub$n=$(metric "$n" otter_cluster_published_changes_total)"
      echo "app$n=$(metric "$n" otter_cluster_applied_changes_total)"
      echo "peers$n=$(metric "$n" 'otter_peers{family="4"}')"
      echo "store$n=$(metric "$n" otter_store_bytes)"
      echo "ann$n=$(metric "$n" 'otter_requests_total{protocol="udp",action="announce",result="ok"}')"
      echo "drop$n=$(metric "$n" otter_cluster_dropped_changes_total)"
      echo "cpu$n=$(ticks "${OTTER_PIDS[$n]}")"
      echo "rss$n=$(awk '/^VmRSS:/ { print $2 }' "/proc/${OTTER_PIDS[$n]}/status")"
    done
  } | sed 's/=$/=0/' >"$WORK/reading.$1"
}
get() { awk -F= -v k="$2" '$1 == k { print $2 }' "$WORK/reading.$1"; }
delta() { awk -v a="$(get "$1" "$3")" -v b="$(get "$2" "$3")" -v f="${4:-%.0f}" 'BEGIN { printf f, b - a }'; }
sum_nodes() { # reading prefix
  local s=0
  for n in $(seq 0 $((NODES - 1))); do s=$((s + $(get "$1" "$2$n"))); done
  echo "$s"
}
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.1f}" 'BEGIN { if (b == 0) print "-"; else printf f, a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

echo "cluster_scale: $NODES nodes, redis $(R INFO server | tr -d '\r' | awk -F: '$1 == "redis_version" { print $2 }') on :$REDIS_PORT," \
  "peer timeout $PEER_TIMEOUT s, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
read_all start

# ---------------------------------------------------------------- fill
PEERS=$((TORRENTS * PORTS))
FILL_START=$(date +%s.%N)
# shellcheck disable=SC2046
$(pin "$LOAD_CORE") "$UDPLOAD" -p "${UDP_PORTS[0]}" -t "$TORRENTS" -F "$PEERS" -n 0 -c "$FILL_WINDOW" \
  -w 0 -d $((60 + PEERS / 5000)) -j >"$WORK/fill.out"
grep -q '"fill_ok":1' "$WORK/fill.out" || { cat "$WORK/fill.out" >&2; echo "cluster_scale.sh: fill did not finish" >&2; exit 1; }
FILL_END=$(date +%s.%N)
HELD=$(metric 0 'otter_peers{family="4"}')
CONVERGED=-1
for _ in $(seq 1200); do
  low=$HELD
  for n in $(seq 1 $((NODES - 1))); do
    p=$(metric "$n" 'otter_peers{family="4"}'); [ "${p:-0}" -lt "$low" ] && low=${p:-0}
  done
  if [ "$low" -ge "$HELD" ]; then CONVERGED=$(awk -v a="$FILL_END" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'); break; fi
  sleep 0.1
done
sleep "$SETTLE"
read_all fill
FILL_SECS=$(awk -v a="$FILL_START" -v b="$FILL_END" 'BEGIN { printf "%.1f", b - a }')

# ---------------------------------------------------------------- report helpers
SUMMARY=$WORK/summary.tsv
printf 'phase\tannounces\tachieved_rps\tchanges\tin_bytes\tout_bytes\tused_memory\tstream_memory\tstream_entries\tredis_cores\totter_cores\n' >"$SUMMARY"
# model: predicted bytes in, out, and stream memory for `changes` changes made at `rate`/s over
# `publishers` nodes (batch size from the flush interval).
model() { # changes rate publishers -> "in out mem"
  awk -v c="$1" -v r="$2" -v p="$3" -v nodes="$NODES" -v rec="$MODEL_RECORD" -v hdr="$MODEL_HEADER" \
    -v xadd="$MODEL_XADD" -v xread="$MODEL_XREAD" -v em="$MODEL_ENTRY_MEM" -v f="$MODEL_FLUSH_MS" \
    -v mx="$MODEL_MAX_BATCH" 'BEGIN {
      per = r / p * f / 1000; if (per > mx) per = mx; if (per < 1) per = 1
      batches = c / per
      inb = c * rec + batches * (hdr + xadd)
      outb = nodes * (c * rec + batches * (hdr + xread))
      mem = c * rec + batches * (hdr + em)
      printf "%.0f %.0f %.0f\n", inb, outb, mem }'
}
report() { # phase before after announces target_rate load_seconds
  local phase=$1 a=$2 b=$3 ann=$4 rate=$5 load_secs=$6
  local secs changes inb outb mem smem entries rcores ocores
  secs=$(awk -v x="$(get "$a" t)" -v y="$(get "$b" t)" 'BEGIN { print y - x }')
  changes=$(($(sum_nodes "$b" pub) - $(sum_nodes "$a" pub)))
  inb=$(delta "$a" "$b" in) outb=$(delta "$a" "$b" out)
  mem=$(get "$b" mem) smem=$(get "$b" smem) entries=$(get "$b" xlen)
  rcores=$(awk -v d="$(delta "$a" "$b" rcpu %.3f)" -v s="$secs" 'BEGIN { printf "%.2f", d / s }')
  ocores=''
  for n in $(seq 0 $((NODES - 1))); do
    ocores+="$(awk -v d="$(delta "$a" "$b" "cpu$n")" -v s="$secs" -v h="$CLK" 'BEGIN { printf "%.2f", d / h / s }') "
  done
  read -r min mout mmem < <(model "$changes" "$rate" "$([ "$phase" = fill ] && echo 1 || echo "$LOAD_NODES")")
  local total_changes
  total_changes=$(sum_nodes "$b" pub)
  echo
  echo "== $phase: $ann announces in $(printf '%.1f' "$load_secs") s, $changes changes published ($(div "$changes" "$ann" %.2f) per announce)"
  printf '  %-34s %14s %14s %10s\n' "" measured model "meas/model"
  printf '  %-34s %14s %14s %10s\n' "Redis bytes in" "$(mb "$inb")" "$(mb "$min")" "$(div "$inb" "$min" %.2f)"
  printf '  %-34s %14s %14s %10s\n' "Redis bytes out" "$(mb "$outb")" "$(mb "$mout")" "$(div "$outb" "$mout" %.2f)"
  printf '  %-34s %14s %14s\n' "  in per announce / per change" "$(div "$inb" "$ann") B" "$(div "$inb" "$changes") B"
  printf '  %-34s %14s %14s\n' "  out per announce / per change" "$(div "$outb" "$ann") B" "$(div "$outb" "$changes") B"
  printf '  %-34s %14s\n' "  out / in" "$(div "$outb" "$inb" %.2f)"
  printf '  %-34s %14s %14s %10s\n' "Redis used_memory (after)" "$(mb "$mem")" "" ""
  printf '  %-34s %14s %14s\n' "  / n1's store bytes" "$(div "$mem" "$(get "$b" store0)" %.2fx)" "(store $(mb "$(get "$b" store0)"))"
  read -r tmin tmout tmmem < <(model "$total_changes" "$rate" 1)
  printf '  %-34s %14s %14s %10s\n' "stream memory (MEMORY USAGE)" "$(mb "$smem")" "$(mb "$tmmem")" "$(div "$smem" "$tmmem" %.2f)"
  printf '  %-34s %14s\n' "  per retained change" "$(div "$smem" "$total_changes") B"
  printf '  %-34s %14s\n' "  stream entries (XLEN)" "$entries"
  printf '  %-34s %14s\n' "Redis CPU (cores)" "$rcores"
  printf '  %-34s %14s %14s\n' "  µs per XADD / per XREAD" \
    "$(div "$(delta "$a" "$b" xadd_usec)" "$(delta "$a" "$b" xadd_calls)")" \
    "$(div "$(delta "$a" "$b" xread_usec)" "$(delta "$a" "$b" xread_calls)")"
  printf '  %-34s %14s\n' "otter CPU per node (cores)" "$ocores"
  printf '  %-34s %s\n' "peers per node" "$(for n in $(seq 0 $((NODES - 1))); do printf '%s ' "$(get "$b" "peers$n")"; done)"
  printf '  %-34s %s\n' "RSS per node" "$(for n in $(seq 0 $((NODES - 1))); do printf '%s ' "$(awk -v k="$(get "$b" "rss$n")" 'BEGIN { printf "%.0fMB", k / 1024 }')"; done)"
  printf '  %-34s %s\n' "changes dropped (all nodes)" "$(sum_nodes "$b" drop)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$ann" "$(div "$ann" "$load_secs" %.0f)" "$changes" \
    "$inb" "$outb" "$mem" "$smem" "$entries" "$rcores" "${ocores% }" >>"$SUMMARY"
  echo "RESULT {\"phase\":\"$phase\",\"nodes\":$NODES,\"announces\":$ann,\"secs\":$secs,\"changes\":$changes," \
    "\"in\":$inb,\"out\":$outb,\"model_in\":$min,\"model_out\":$mout,\"used_memory\":$mem," \
    "\"stream_memory\":$smem,\"model_stream_memory\":$tmmem,\"stream_entries\":$entries," \
    "\"redis_cores\":$rcores}" | tr -d '\n' | sed 's/, /,/g'
  echo
}

FILL_RATE=$(awk -v p="$PEERS" -v s="$FILL_SECS" 'BEGIN { printf "%.0f", p / s }')
report fill start fill "$(($(sum_nodes fill ann) - $(sum_nodes start ann)))" "$FILL_RATE" "$FILL_SECS"
echo "  fill took $FILL_SECS s ($FILL_RATE announces/s on n1); every node held all $HELD peers" \
  "$([ "$CONVERGED" = -1 ] && echo "NOT within 120 s" || echo "$CONVERGED s after it ended")"

# ---------------------------------------------------------------- sustained re-announces
prev=fill
IFS=, read -r -a RATE_LIST <<<"$RATES"
for rate in "${RATE_LIST[@]}"; do
  per=$((rate / LOAD_NODES))
  LOAD_PIDS=()
  for n in $(seq 0 $((LOAD_NODES - 1))); do
    # shellcheck disable=SC2046
    $(pin "$LOAD_CORE") timeout $((DURATION + 30)) "$OPENLOOP" --udp "127.0.0.1:${UDP_PORTS[$n]}" \
      --rate "$per" --duration "$DURATION" --warmup 0 --torrents "$TORRENTS" --ports "$PORTS" \
      --seed 1 $STEADY >"$WORK/load-$rate-n$n.out" 2>&1 &
    LOAD_PIDS+=($!)
  done
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || true; done
  LOAD_PIDS=()
  sleep "$SETTLE"
  read_all "r$rate"
  # Announces the nodes answered (openloop counts only replies within its timeout).
  ann=$(($(sum_nodes "r$rate" ann) - $(sum_nodes "$prev" ann)))
  kept=true
  for n in $(seq 0 $((LOAD_NODES - 1))); do
    grep -q '"kept_schedule":true' "$WORK/load-$rate-n$n.out" || kept=false
  done
  report "reannounce@$rate/s" "$prev" "r$rate" "$ann" "$rate" "$DURATION"
  [ "$kept" = true ] || echo "  (openloop did not keep its schedule: the machine was busy; see achieved rate)"
  for n in $(seq 0 $((LOAD_NODES - 1))); do
    sed -n 's/^rate: */  load n'"$((n + 1))"' rate: /p' "$WORK/load-$rate-n$n.out"
  done
  prev=r$rate
done

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
column -t -s$'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
