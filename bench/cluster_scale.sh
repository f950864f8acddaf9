#!/usr/bin/env bash
# bench/cluster_scale.sh - what a cluster costs Redis: memory, bytes in and out, CPU, per announce
# and per published change, measured beside the design's model (issue 15, docs/cluster.md).
#
#   bash bench/cluster_scale.sh [--nodes 3] [--load-nodes 1] [--torrents 100000] [--ports 10]
#        [--rates 50000,100000] [--duration 20] [--settle 3] [--peer-timeout 2700]
#        [--fill-window 128] [--steady] [--probe] [--throughput RATE [--throughput-duration 10]]
#        [--snapshot-interval 30] [--pin] [--out DIR]
#
# Starts its own redis-server (no persistence) on a free loopback port and --nodes otter
# instances (node ids n1, n2, ...) on free loopback ports, all with --cluster on that Redis and
# one cluster secret. Then, reading Redis's INFO (memory, stats, cpu), the cluster's keys (each
# node's stream, the snapshots: MEMORY USAGE, XLEN) and every node's /metrics before and after
# each phase:
#   1. fill: udpload -F adds torrents x ports peers (1M by default) on n1, then waits until every
#      node holds them (at most 120 s), which is the join-by-propagation time;
#   2. one phase per --rates value: openloop re-announces those peers (event none, a random
#      quarter seeders, so about 3 in 8 re-announces flip the flag: real changes; with --steady
#      each peer keeps the seeder flag the fill gave it, so a re-announce changes nothing: what
#      refresh suppression is about) at that total rate, split over the first --load-nodes
#      nodes, for --duration seconds, then --settle seconds for the streams to drain; with
#      --probe, bench/cluster_probe.ts measures the propagation delay from n1 to the others
#      meanwhile;
#   3. a node joining now (n<N+1>, started after the phases) loads the snapshot and the streams'
#      tail: the time until it serves every peer;
#   4. with --throughput RATE: a standalone otter (no --cluster) gets the same fill, then openloop
#      --fill-seeders at RATE (above what a node can answer) goes to it and to n1 alternately,
#      three times each (--throughput-duration seconds a run), then to every cluster node at once
#      at RATE / nodes each; the replies a second each answered and the otter's CPU per answered
#      announce (robust to a busy machine where replies a second are not), medians, and the
#      cluster's sum beside the standalone's (on a machine with fewer cores than nodes the sum is
#      what shows whether the sync eats capacity). A RATE below a node's capacity measures cost;
#      one above it, capacity.
# For each phase it prints announces, changes published, Redis bytes in and out per announce and
# per change, Redis memory (used_memory, the streams, the snapshots) beside n1's store bytes, CPU
# (cores) of each otter and of Redis, and the model's figures for the same load next to the
# measured ones (MODEL below says how each is derived).
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
NODES=3 LOAD_NODES=1 TORRENTS=100000 PORTS=10 RATES=50000,100000 DURATION=20 SETTLE=3
PEER_TIMEOUT=2700 FILL_WINDOW=128 PIN=0 OUT='' STEADY='' PROBE=0 THROUGHPUT=0 TPUT_SECS=10
SNAPSHOT_INTERVAL=30

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
    --probe) PROBE=1; shift ;;
    --throughput) THROUGHPUT=$2; shift 2 ;;
    --throughput-duration) TPUT_SECS=$2; shift 2 ;;
    --snapshot-interval) SNAPSHOT_INTERVAL=$2; shift 2 ;;
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

# ---------------------------------------------------------------- the model (the design's sync)
# Published changes: every event, first sighting and seeder flip; a refresh that changes nothing
# once per refresh epoch E per peer (E = 360 s from the default --peer-timeout 2700 and interval
# 1800; peer-timeout / 3 below that). A steady load re-announcing P peers at R/s for S seconds
# publishes about min(R S, P S / E) refreshes (each peer's epoch boundary passes once per E).
# Batch: header 55 bytes + node id; record 27 bytes (IPv4); one XADD per batch and flush (200 ms),
# ~100 bytes of RESP framing, plus the registry's ZADD every 10 s. Every other node reads each
# batch: bytes out = (nodes - 1) x (records + header + ~60 bytes of XREAD framing an entry).
# Snapshot: the store walked into chunks of <= 1 MiB, 8 bytes a peer + 36 a torrent (IPv4), written
# by one node at a time when the streams grew by a quarter of it (no sooner than 30 s) or it is
# older than half a peer timeout. Memory: the current snapshot, the one before it until its
# 30 s grace ends (the next write starts no sooner), and the streams since the previous
# snapshot's position; ~40 bytes of stream overhead an entry.
MODEL_RECORD=27 MODEL_HEADER=55 MODEL_XADD=100 MODEL_XREAD=60 MODEL_ENTRY_MEM=40
MODEL_FLUSH_MS=200 MODEL_MAX_BATCH=4096 MODEL_SNAP_PEER=8 MODEL_SNAP_TORRENT=36
# (--snapshot-interval sets the floor: --cluster-snapshot-interval on every node)
EPOCH=$(awk -v t="$PEER_TIMEOUT" 'BEGIN { j = 1800 + int(1800 / 10); e = int((t - j) / 2); if (e < 30) e = 30;
  if (e > int(t / 3)) e = int(t / 3); if (e < 1) e = 1; print e }')

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
REDIS_PID='' OTTER_PIDS=() LOAD_PIDS=() EXTRA_PIDS=()
cleanup() {
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${OTTER_PIDS[@]}" "${EXTRA_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${OTTER_PIDS[@]}" "${EXTRA_PIDS[@]}"; do
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
head -c 32 /dev/urandom | base64 >"$WORK/secret"
chmod 600 "$WORK/secret"

mapfile -t FLAGS < <(deno run --allow-read "$REPO/bench/start_flags.ts")
[ "${#FLAGS[@]}" -gt 0 ] || exit 1
HTTP_PORTS=() UDP_PORTS=()
# start_otter NAME LOG [cluster flags...]: starts one otter, echoes nothing; PID in LAST_PID
start_otter() {
  local name=$1 log=$2
  shift 2
  # shellcheck disable=SC2046
  $(pin 0) deno run "${FLAGS[@]}" --config "$REPO/deno.json" "$REPO/main.ts" \
    --http 127.0.0.1:0 --udp 127.0.0.1:0 --peer-timeout "$PEER_TIMEOUT" --max-numwant 200 \
    "$@" >"$log" 2>&1 &
  LAST_PID=$!
  disown "$LAST_PID"
}
# wait_ports LOG PID: sets HTTP and UDP to the ports the otter logging to LOG listens on
wait_ports() {
  local log=$1 pid=$2
  HTTP='' UDP=''
  for _ in $(seq 600); do
    [ -f "$log" ] || { sleep 0.1; continue; }
    HTTP=$(sed -n 's|^HTTP listening on http://127.0.0.1:\([0-9]*\)/announce$|\1|p' "$log")
    UDP=$(sed -n 's|^UDP listening on udp://127.0.0.1:\([0-9]*\)/announce.*|\1|p' "$log")
    [ -n "$HTTP" ] && [ -n "$UDP" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  cat "$log" >&2
  echo "cluster_scale.sh: $log: otter did not start" >&2
  exit 1
}
cluster_flags() { # node name
  echo --cluster "$REDIS_URL" --cluster-name scale --node-id "$1" --cluster-secret-file "$WORK/secret" \
    --cluster-snapshot-interval "$SNAPSHOT_INTERVAL"
}
for n in $(seq "$NODES"); do
  # shellcheck disable=SC2046
  start_otter "n$n" "$WORK/otter$n.log" $(cluster_flags "n$n")
  OTTER_PIDS+=("$LAST_PID")
done
for n in $(seq "$NODES"); do
  wait_ports "$WORK/otter$n.log" "${OTTER_PIDS[$((n - 1))]}"
  HTTP_PORTS+=("$HTTP") UDP_PORTS+=("$UDP")
done

# ---------------------------------------------------------------- readings
metric_at() { # http-port name
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
metric() { metric_at "${HTTP_PORTS[$1]}" "$2"; }
info() { R INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK=$(getconf CLK_TCK)
# The cluster's keys by kind: each node's streams ("n"), and the snapshots (manifest, chunks).
keys_of() { R --scan --pattern "otter:{scale:*}:$1" 2>/dev/null; }
mem_of() { # pattern -> bytes (MEMORY USAGE summed)
  local total=0 k
  while read -r k; do
    [ -n "$k" ] && total=$((total + $(R MEMORY USAGE "$k" SAMPLES 0 2>/dev/null || echo 0)))
  done < <(keys_of "$1")
  echo "$total"
}
xlen_all() {
  local total=0 k
  while read -r k; do [ -n "$k" ] && total=$((total + $(R XLEN "$k"))); done < <(keys_of 'n:*')
  echo "$total"
}

# One reading: a line of name=value words in $WORK/reading.$1
read_all() {
  {
    echo "t=$(date +%s.%N)"
    echo "mem=$(info memory used_memory)"
    echo "in=$(info stats total_net_input_bytes)"
    echo "out=$(info stats total_net_output_bytes)"
    echo "rcpu=$(R INFO cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { print s }')"
    echo "xlen=$(xlen_all)"
    echo "smem=$(mem_of 'n:*')"
    echo "snapmem=$(mem_of 'snap*')"
    R INFO commandstats | tr -d '\r' | awk -F'[:,=]' '
      $1 == "cmdstat_xadd" { print "xadd_calls=" $3; print "xadd_usec=" $5 }
      $1 == "cmdstat_xread" { print "xread_calls=" $3; print "xread_usec=" $5 }'
    for n in $(seq 0 $((NODES - 1))); do
      echo "pub$n=$(metric "$n" otter_cluster_published_changes_total)"
      echo "supp$n=$(metric "$n" otter_cluster_suppressed_refreshes_total)"
      echo "pubb$n=$(metric "$n" otter_cluster_published_bytes_total)"
      echo "app$n=$(metric "$n" otter_cluster_applied_changes_total)"
      echo "snaps$n=$(metric "$n" otter_cluster_snapshots_written_total)"
      echo "snapb$n=$(metric "$n" otter_cluster_snapshot_bytes)"
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
  "peer timeout $PEER_TIMEOUT s (refresh epoch $EPOCH s), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
read_all start
MEM0=$(get start mem)

# ---------------------------------------------------------------- fill
PEERS=$((TORRENTS * PORTS))
fill_into() { # udp-port out-file
  # shellcheck disable=SC2046
  $(pin "$LOAD_CORE") "$UDPLOAD" -p "$1" -t "$TORRENTS" -F "$PEERS" -n 0 -c "$FILL_WINDOW" \
    -w 0 -d $((60 + PEERS / 5000)) -j >"$2"
  grep -q '"fill_ok":1' "$2" || { cat "$2" >&2; echo "cluster_scale.sh: fill did not finish" >&2; exit 1; }
}
FILL_START=$(date +%s.%N)
fill_into "${UDP_PORTS[0]}" "$WORK/fill.out"
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
printf 'phase\tannounces\tachieved_rps\tchanges\tin_bytes\tout_bytes\tused_memory\tstream_memory\tsnapshot_memory\tstore_bytes\tredis_cores\totter_cores\tprobe_p99_ms\n' >"$SUMMARY"
# model: predicted bytes in and out for `changes` changes made at `rate`/s over `publishers`
# nodes (batch size from the flush interval), plus `snapbytes` of snapshots written.
model() { # changes rate publishers snapbytes -> "in out"
  awk -v c="$1" -v r="$2" -v p="$3" -v sb="$4" -v nodes="$NODES" -v rec="$MODEL_RECORD" \
    -v hdr="$MODEL_HEADER" -v xadd="$MODEL_XADD" -v xread="$MODEL_XREAD" -v f="$MODEL_FLUSH_MS" \
    -v mx="$MODEL_MAX_BATCH" 'BEGIN {
      per = r / p * f / 1000; if (per > mx) per = mx; if (per < 1) per = 1
      batches = c / per
      inb = c * rec + batches * (hdr + xadd) + sb
      outb = (nodes - 1) * (c * rec + batches * (hdr + xread))
      printf "%.0f %.0f\n", inb, outb }'
}
# model_memory: snapshot bytes for the store's peers and torrents, times 2 (current and the one
# in its grace, or being written), plus the streams since the previous snapshot (at most half a
# snapshot by the quarter trigger, unless the floor between snapshots binds: then the changes of
# two floors).
model_memory() { # peers torrents change_rate -> bytes
  awk -v p="$1" -v t="$2" -v cr="$3" -v sp="$MODEL_SNAP_PEER" -v st="$MODEL_SNAP_TORRENT" \
    -v rec="$MODEL_RECORD" -v em="$MODEL_ENTRY_MEM" -v fl="$SNAPSHOT_INTERVAL" 'BEGIN {
      snap = p * sp + t * st
      tail = snap / 2; floor = cr * 2 * fl * (rec + 2); if (floor > tail) tail = floor
      printf "%.0f\n", 2 * snap + tail }'
}
PROBE_P99=-
report() { # phase before after announces target_rate load_seconds
  local phase=$1 a=$2 b=$3 ann=$4 rate=$5 load_secs=$6
  local secs changes inb outb mem smem snapmem entries rcores ocores snapw snapb pubb supp store
  secs=$(awk -v x="$(get "$a" t)" -v y="$(get "$b" t)" 'BEGIN { print y - x }')
  changes=$(($(sum_nodes "$b" pub) - $(sum_nodes "$a" pub)))
  supp=$(($(sum_nodes "$b" supp) - $(sum_nodes "$a" supp)))
  pubb=$(($(sum_nodes "$b" pubb) - $(sum_nodes "$a" pubb)))
  snapw=$(($(sum_nodes "$b" snaps) - $(sum_nodes "$a" snaps)))
  snapb=$(get "$b" snapb0)
  inb=$(delta "$a" "$b" in) outb=$(delta "$a" "$b" out)
  mem=$(get "$b" mem) smem=$(get "$b" smem) snapmem=$(get "$b" snapmem) entries=$(get "$b" xlen)
  store=$(get "$b" store0)
  rcores=$(awk -v d="$(delta "$a" "$b" rcpu %.3f)" -v s="$secs" 'BEGIN { printf "%.2f", d / s }')
  ocores=''
  for n in $(seq 0 $((NODES - 1))); do
    ocores+="$(awk -v d="$(delta "$a" "$b" "cpu$n")" -v s="$secs" -v h="$CLK" 'BEGIN { printf "%.2f", d / h / s }') "
  done
  local publishers=1
  [ "$phase" = fill ] || publishers=$LOAD_NODES
  read -r min mout < <(model "$changes" "$rate" "$publishers" "$((snapw * snapb))")
  local peers torrents mmem
  peers=$(get "$b" peers0) torrents=$TORRENTS
  if [ "$phase" = fill ]; then
    # A fill shorter than the 30 s between snapshots: the streams still hold all of it.
    mmem=$((changes * (MODEL_RECORD + 2)))
  else
    mmem=$(model_memory "$peers" "$torrents" "$(div "$changes" "$load_secs" %.0f)")
  fi
  echo
  echo "== $phase: $ann announces in $(printf '%.1f' "$load_secs") s, $changes changes published ($(div "$changes" "$ann" %.3f) per announce; $supp refreshes suppressed)"
  printf '  %-38s %14s %14s %10s\n' "" measured model "meas/model"
  printf '  %-38s %14s %14s %10s\n' "Redis bytes in" "$(mb "$inb")" "$(mb "$min")" "$(div "$inb" "$min" %.2f)"
  printf '  %-38s %14s %14s %10s\n' "Redis bytes out" "$(mb "$outb")" "$(mb "$mout")" "$(div "$outb" "$mout" %.2f)"
  printf '  %-38s %14s %14s\n' "  in per announce / per change" "$(div "$inb" "$ann" %.2f) B" "$(div "$inb" "$changes") B"
  printf '  %-38s %14s\n' "  batch bytes per change (own count)" "$(div "$pubb" "$changes") B"
  printf '  %-38s %14s %14s\n' "  snapshots written / bytes each" "$snapw" "$(mb "$snapb")"
  printf '  %-38s %14s %14s\n' "  out per announce / per change" "$(div "$outb" "$ann" %.2f) B" "$(div "$outb" "$changes") B"
  printf '  %-38s %14s\n' "  out / in" "$(div "$outb" "$inb" %.2f)"
  printf '  %-38s %14s %14s %10s\n' "Redis used_memory (after, less empty)" "$(mb "$((mem - MEM0))")" "$(mb "$mmem")" "$(div "$((mem - MEM0))" "$mmem" %.2f)"
  printf '  %-38s %14s %14s\n' "  / n1's store bytes" "$(div "$((mem - MEM0))" "$store" %.2fx)" "(store $(mb "$store"))"
  printf '  %-38s %14s\n' "  snapshots (MEMORY USAGE)" "$(mb "$snapmem")"
  printf '  %-38s %14s\n' "  streams (MEMORY USAGE)" "$(mb "$smem")"
  printf '  %-38s %14s\n' "  stream entries (XLEN, all streams)" "$entries"
  printf '  %-38s %14s\n' "Redis CPU (cores)" "$rcores"
  printf '  %-38s %14s %14s\n' "  µs per XADD / per XREAD" \
    "$(div "$(delta "$a" "$b" xadd_usec)" "$(delta "$a" "$b" xadd_calls)")" \
    "$(div "$(delta "$a" "$b" xread_usec)" "$(delta "$a" "$b" xread_calls)")"
  printf '  %-38s %14s\n' "otter CPU per node (cores)" "$ocores"
  printf '  %-38s %s\n' "peers per node" "$(for n in $(seq 0 $((NODES - 1))); do printf '%s ' "$(get "$b" "peers$n")"; done)"
  printf '  %-38s %s\n' "RSS per node" "$(for n in $(seq 0 $((NODES - 1))); do printf '%s ' "$(awk -v k="$(get "$b" "rss$n")" 'BEGIN { printf "%.0fMB", k / 1024 }')"; done)"
  printf '  %-38s %s\n' "changes dropped (all nodes)" "$(sum_nodes "$b" drop)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$ann" "$(div "$ann" "$load_secs" %.0f)" "$changes" \
    "$inb" "$outb" "$((mem - MEM0))" "$smem" "$snapmem" "$store" "$rcores" "${ocores% }" "$PROBE_P99" >>"$SUMMARY"
  echo "RESULT {\"phase\":\"$phase\",\"nodes\":$NODES,\"announces\":$ann,\"secs\":$secs,\"changes\":$changes," \
    "\"suppressed\":$supp,\"in\":$inb,\"out\":$outb,\"model_in\":$min,\"model_out\":$mout," \
    "\"used_memory\":$((mem - MEM0)),\"model_memory\":$mmem,\"stream_memory\":$smem," \
    "\"snapshot_memory\":$snapmem,\"store_bytes\":$store,\"snapshots_written\":$snapw," \
    "\"stream_entries\":$entries,\"redis_cores\":$rcores}" | tr -d '\n' | sed 's/, /,/g'
  echo
}

FILL_RATE=$(awk -v p="$PEERS" -v s="$FILL_SECS" 'BEGIN { printf "%.0f", p / s }')
report fill start fill "$(($(sum_nodes fill ann) - $(sum_nodes start ann)))" "$FILL_RATE" "$FILL_SECS"
echo "  fill took $FILL_SECS s ($FILL_RATE announces/s on n1); every node held all $HELD peers" \
  "$([ "$CONVERGED" = -1 ] && echo "NOT within 120 s" || echo "$CONVERGED s after it ended")"

# ---------------------------------------------------------------- sustained re-announces
prev=fill
phase=0
IFS=, read -r -a RATE_LIST <<<"$RATES"
OTHERS=$(for n in $(seq 1 $((NODES - 1))); do printf '%s,' "${UDP_PORTS[$n]}"; done)
for rate in "${RATE_LIST[@]}"; do
  per=$((rate / LOAD_NODES))
  phase=$((phase + 1))
  LOAD_PIDS=()
  for n in $(seq 0 $((LOAD_NODES - 1))); do
    # shellcheck disable=SC2046
    $(pin "$LOAD_CORE") timeout $((DURATION + 30)) "$OPENLOOP" --udp "127.0.0.1:${UDP_PORTS[$n]}" \
      --rate "$per" --duration "$DURATION" --warmup 0 --torrents "$TORRENTS" --ports "$PORTS" \
      --seed 1 $STEADY >"$WORK/load-$phase-n$n.out" 2>&1 &
    LOAD_PIDS+=($!)
  done
  PROBE_P99=-
  if [ "$PROBE" = 1 ] && [ "$NODES" -gt 1 ]; then
    deno run --allow-net "$REPO/bench/cluster_probe.ts" --from "${UDP_PORTS[0]}" \
      --to "${OTHERS%,}" --duration $((DURATION > 5 ? DURATION - 3 : DURATION)) \
      >"$WORK/probe-$phase.out" 2>&1 || true
    PROBE_P99=$(sed -n 's/^RESULT .*"p99":\([0-9]*\).*/\1/p' "$WORK/probe-$phase.out")
  fi
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || true; done
  LOAD_PIDS=()
  sleep "$SETTLE"
  read_all "r$phase"
  # Announces the nodes answered (openloop counts only replies within its timeout).
  ann=$(($(sum_nodes "r$phase" ann) - $(sum_nodes "$prev" ann)))
  kept=true
  for n in $(seq 0 $((LOAD_NODES - 1))); do
    grep -q '"kept_schedule":true' "$WORK/load-$phase-n$n.out" || kept=false
  done
  report "reannounce@$rate/s" "$prev" "r$phase" "$ann" "$rate" "$DURATION"
  [ "$kept" = true ] || echo "  (openloop did not keep its schedule: the machine was busy; see achieved rate)"
  for n in $(seq 0 $((LOAD_NODES - 1))); do
    sed -n 's/^rate: */  load n'"$((n + 1))"' rate: /p' "$WORK/load-$phase-n$n.out"
  done
  [ -f "$WORK/probe-$phase.out" ] && sed -n 's/^propagation/  propagation under this load:/p' "$WORK/probe-$phase.out"
  prev=r$phase
done

# ---------------------------------------------------------------- a node joining now
JOIN_START=$(date +%s.%N)
# shellcheck disable=SC2046
start_otter "n$((NODES + 1))" "$WORK/otter-join.log" $(cluster_flags "n$((NODES + 1))")
EXTRA_PIDS+=("$LAST_PID")
wait_ports "$WORK/otter-join.log" "$LAST_PID"
JOIN_HTTP=$HTTP
JOIN_SECS=$(awk -v a="$JOIN_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo
echo "== join: n$((NODES + 1)) started after the phases listened after $JOIN_SECS s holding" \
  "$(metric_at "$JOIN_HTTP" 'otter_peers{family="4"}') peers (n1: $(metric 0 'otter_peers{family="4"}')), snapshots loaded" \
  "$(metric_at "$JOIN_HTTP" otter_cluster_snapshots_loaded_total), Redis bytes read $(mb "$(metric_at "$JOIN_HTTP" otter_cluster_read_bytes_total)")"

# ---------------------------------------------------------------- throughput against standalone
if [ "$THROUGHPUT" -gt 0 ]; then
  start_otter standalone "$WORK/otter-standalone.log"
  EXTRA_PIDS+=("$LAST_PID")
  wait_ports "$WORK/otter-standalone.log" "$LAST_PID"
  S_UDP=$UDP S_PID=$LAST_PID
  fill_into "$S_UDP" "$WORK/fill-standalone.out"
  tput_run() { # label udp-port rate out otter-pid
    local before after
    before=$(ticks "$5")
    # shellcheck disable=SC2046
    $(pin "$LOAD_CORE") timeout $((TPUT_SECS + 30)) "$OPENLOOP" --udp "127.0.0.1:$2" \
      --rate "$3" --duration "$TPUT_SECS" --warmup 1 --torrents "$TORRENTS" --ports "$PORTS" \
      --seed 1 --fill-seeders >"$4" 2>&1 || true
    after=$(ticks "$5")
    # CPU of the otter per answered announce (warm-up included in both): robust to a busy
    # machine where replies a second are not.
    echo "cpu_us=$(awk -v d="$((after - before))" -v h="$CLK" -v n="$(ok_of "$4")" \
      'BEGIN { if (n == 0) print "-"; else printf "%.2f", d / h * 1e6 / n }')" >>"$4"
    [ -z "$1" ] || printf '  %-34s %s; %s µs of otter CPU an answered announce\n' "$1" \
      "$(sed -n 's/^replies: *//p' "$4")" "$(sed -n 's/^cpu_us=//p' "$4")"
  }
  ok_of() { sed -n 's/^RESULT .*"ok":\([0-9]*\).*/\1/p' "$1"; }
  median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
  echo
  echo "== throughput: openloop --fill-seeders at $THROUGHPUT/s for $TPUT_SECS s, one target at a time (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for round in 1 2 3; do
    tput_run "standalone (round $round)" "$S_UDP" "$THROUGHPUT" "$WORK/tput-s-$round.out" "$S_PID"
    tput_run "cluster n1 (round $round)" "${UDP_PORTS[0]}" "$THROUGHPUT" "$WORK/tput-c-$round.out" \
      "${OTTER_PIDS[0]}"
  done
  S_OK=$(median3 "$(ok_of "$WORK/tput-s-1.out")" "$(ok_of "$WORK/tput-s-2.out")" "$(ok_of "$WORK/tput-s-3.out")")
  C_OK=$(median3 "$(ok_of "$WORK/tput-c-1.out")" "$(ok_of "$WORK/tput-c-2.out")" "$(ok_of "$WORK/tput-c-3.out")")
  cpu_of() { sed -n 's/^cpu_us=//p' "$1"; }
  S_CPU=$(median3 "$(cpu_of "$WORK/tput-s-1.out")" "$(cpu_of "$WORK/tput-s-2.out")" "$(cpu_of "$WORK/tput-s-3.out")")
  C_CPU=$(median3 "$(cpu_of "$WORK/tput-c-1.out")" "$(cpu_of "$WORK/tput-c-2.out")" "$(cpu_of "$WORK/tput-c-3.out")")
  echo "  medians: standalone $(div "$S_OK" "$TPUT_SECS" %.0f)/s at $S_CPU µs, cluster n1 $(div "$C_OK" "$TPUT_SECS" %.0f)/s at $C_CPU µs;" \
    "n1 / standalone: $(div "$C_OK" "$S_OK" %.2f) in replies, $(div "$S_CPU" "$C_CPU" %.2f) in announces a CPU second"
  PER=$((THROUGHPUT / NODES))
  echo "== throughput: every cluster node at once, each at $PER/s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for n in $(seq 0 $((NODES - 1))); do
    tput_run "" "${UDP_PORTS[$n]}" "$PER" "$WORK/tput-all-n$n.out" "${OTTER_PIDS[$n]}" &
    LOAD_PIDS+=($!)
  done
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || true; done
  LOAD_PIDS=()
  ALL_OK=0
  for n in $(seq 0 $((NODES - 1))); do
    printf '  %-34s %s; %s µs of its CPU an answered announce\n' "n$((n + 1))" \
      "$(sed -n 's/^replies: *//p' "$WORK/tput-all-n$n.out")" "$(cpu_of "$WORK/tput-all-n$n.out")"
    ALL_OK=$((ALL_OK + $(ok_of "$WORK/tput-all-n$n.out")))
  done
  echo "  the cluster's sum $(div "$ALL_OK" "$TPUT_SECS" %.0f)/s; / standalone's median: $(div "$ALL_OK" "$S_OK" %.2f)"
  echo "  ($NCPU cores for $NODES nodes, their load tools and Redis: each node's own share is the machine's, not the sync's)"
fi

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
column -t -s$'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
