#!/usr/bin/env bash
# ws_compare.sh - WebTorrent (WebSocket) tracker load: bittorrent-tracker 11.2.3 under Node, and
# optionally otter, side by side in the same run, with bench/wsload.c.
#
#   bash bench/ws_compare.sh [--runs 3] [--duration 10] [--out DIR]
#   bash bench/ws_compare.sh --otter-cmd 'deno run -A main.ts --http 127.0.0.1:{PORT}' [...]
#   bash bench/ws_compare.sh --otter-port PORT --otter-pid PID [...]   (an otter already running)
#   add --ceiling for a third column: bench/ws_ref.c, a minimal C relay (what any tracker could reach)
#
# Throughput: each run starts a fresh tracker pinned to core 0 (taskset -c 0), opens --conns
# WebSocket connections with wsload pinned to core 1, and measures --duration seconds of closed-loop
# load (--window announces in flight, each with 5 offers of a 529-byte SDP, every relayed offer
# answered) after a 2-s warm-up. With otter, odd runs start with bittorrent-tracker and even runs
# with otter, so a drift of the machine favours neither; the table gives medians over --runs and
# the median of the per-run ratios. Idle memory: a fresh tracker gets --idle-conns connections, each
# announcing once (with its offers), held idle --idle-hold seconds; RSS growth per connection =
# (VmRSS at the end of the hold - VmRSS before connecting) / connections. Before each measurement the
# script waits up to --quiet-wait s for a second in which the machine is nearly idle, and reports the
# busy cores before and the cores used by others during the run: on a shared machine they say how
# far to trust a figure. Announces per tracker CPU-second (announces/s / the tracker's cores over
# the window, all its threads) moves much less than announces/s when other work takes the
# tracker's core: on a busy machine compare that figure.
#
# bittorrent-tracker comes from tests/webtorrent/node_modules (`deno install` there; this script
# runs it if the package is missing) and must be 11.2.3. wsload is built with gcc into
# ${OTTER_LOAD_CACHE:-~/.cache/otter-load}. Trackers this script starts are stopped by PID on exit.
# Everything runs on 127.0.0.1; every step is bounded in time. Exit 0: the comparison completed;
# 2: setup failed. Raw output (each wsload run, tracker logs, results.tsv) goes to --out.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
PROG=${0##*/}

usage() {
  cat <<EOF
usage: $PROG [options]
  --runs N            throughput runs per tracker (default 3)
  --duration S        measured seconds per run, after a 2-s warm-up (default 10)
  --conns N           connections in throughput runs (default 1000)
  --torrents N        torrents the connections announce (default 100: 10 peers a swarm)
  --window N          announces in flight (default 128)
  --idle-conns N      connections in the idle-memory test (default 10000; 0 skips it)
  --idle-torrents N   torrents in the idle-memory test (default 1000)
  --idle-hold S       seconds the idle connections are held (default 10)
  --tests LIST        throughput,idle (default both)
  --otter-cmd CMD     start otter with CMD ({PORT} replaced by a free port; serves ws://…/announce)
  --otter-port PORT   or: an otter already running on 127.0.0.1:PORT (pin it to core 0 yourself)
  --otter-pid PID     its PID, for RSS and CPU (with --otter-port)
  --otter-path P      otter's WebSocket path (default /announce)
  --ceiling           also run bench/ws_ref.c (a minimal C relay: the machine's ceiling for this load)
  --quiet-wait S      wait up to S s for a quiet second before each run (default 5; 0 = off)
  --out DIR           keep raw output there (default: a temporary directory, removed)
  -h, --help          this text
EOF
}
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 2; }

RUNS=3 DURATION=10 CONNS=1000 TORRENTS=100 WINDOW=128 IDLE_CONNS=10000 IDLE_TORRENTS=1000 IDLE_HOLD=10
TESTS=throughput,idle OTTER_CMD='' OTTER_PORT='' OTTER_PID='' OTTER_PATH=/announce QUIET_WAIT=5 OUT='' CEILING=0
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --ceiling) CEILING=1; shift; continue ;;
    --runs) RUNS=$2 ;;
    --duration) DURATION=$2 ;;
    --conns) CONNS=$2 ;;
    --torrents) TORRENTS=$2 ;;
    --window) WINDOW=$2 ;;
    --idle-conns) IDLE_CONNS=$2 ;;
    --idle-torrents) IDLE_TORRENTS=$2 ;;
    --idle-hold) IDLE_HOLD=$2 ;;
    --tests) TESTS=$2 ;;
    --otter-cmd) OTTER_CMD=$2 ;;
    --otter-port) OTTER_PORT=$2 ;;
    --otter-pid) OTTER_PID=$2 ;;
    --otter-path) OTTER_PATH=$2 ;;
    --quiet-wait) QUIET_WAIT=$2 ;;
    --out) OUT=$2 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift 2 || die "$1 needs a value"
done
for v in RUNS DURATION CONNS TORRENTS WINDOW IDLE_CONNS IDLE_TORRENTS IDLE_HOLD QUIET_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "--$(tr 'A-Z_' 'a-z-' <<<"$v") takes a whole number, got '${!v}'"
done
[[ -n $OTTER_CMD && -n $OTTER_PORT ]] && die "give --otter-cmd or --otter-port, not both"
[[ -n $OTTER_CMD && $OTTER_CMD != *"{PORT}"* ]] && die "--otter-cmd must contain {PORT}"
want() { [[ ",$TESTS," == *",$1,"* ]]; }
for tool in node taskset gcc timeout; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (tracker on core 0, wsload on core 1)"
KEEP_OUT=1
[ -n "$OUT" ] || { OUT=$(mktemp -d); KEEP_OUT=0; }
mkdir -p "$OUT"

# ---------------------------------------------------------------- tools
BT_DIR=tests/webtorrent
bt_version() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$BT_DIR/node_modules/bittorrent-tracker/package.json" 2>/dev/null | head -1; }
if [ -z "$(bt_version)" ]; then
  command -v deno >/dev/null || die "bittorrent-tracker missing and no deno to install it"
  echo "installing tests/webtorrent's npm packages (deno install)"
  (cd "$BT_DIR" && timeout 600 deno install >/dev/null) || die "deno install in $BT_DIR failed"
fi
[ "$(bt_version)" = 11.2.3 ] || die "bittorrent-tracker in $BT_DIR is '$(bt_version)', want 11.2.3"
CACHE=${OTTER_LOAD_CACHE:-$HOME/.cache/otter-load}
mkdir -p "$CACHE"
WSLOAD=$CACHE/wsload-$(sha256sum bench/wsload.c | cut -c1-12)
[ -x "$WSLOAD" ] || gcc -O2 -Wall -Wextra -o "$WSLOAD" bench/wsload.c -lpthread || die "cannot build wsload"
WSREF=$CACHE/ws_ref-$(sha256sum bench/ws_ref.c | cut -c1-12)
[ "$CEILING" = 0 ] || [ -x "$WSREF" ] || gcc -O2 -Wall -Wextra -o "$WSREF" bench/ws_ref.c || die "cannot build ws_ref"
need_fds=$((IDLE_CONNS > CONNS ? IDLE_CONNS : CONNS))
if [ "$(ulimit -n)" -lt $((need_fds + 1000)) ]; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  [ "$(ulimit -n)" -ge $((need_fds + 1000)) ] || die "ulimit -n $(ulimit -n) is too low for $need_fds connections"
fi

# ---------------------------------------------------------------- trackers
TRACKER_PID='' TRACKER_URL=''
STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "$KEEP_OUT" = 1 ] || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start_tracker() { # name log: sets TRACKER_PID, TRACKER_URL
  local name=$1 log=$2 port
  if [ "$name" = bt ] || [ "$name" = ref ]; then
    if [ "$name" = bt ]; then
      taskset -c 0 node "$BT_DIR/bt_tracker.mjs" --port 0 --timeout-ms 3600000 >"$log" 2>&1 &
    else
      taskset -c 0 "$WSREF" 0 >"$log" 2>&1 &
    fi
    TRACKER_PID=$!
    STARTED+=("$TRACKER_PID")
    for _ in $(seq 100); do grep -qs '"listening"' "$log" && break; sleep 0.1; done
    port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] || { cat "$log" >&2; die "$(label "$name") did not start"; }
    TRACKER_URL=ws://127.0.0.1:$port/announce
  elif [ -n "$OTTER_CMD" ]; then
    port=$(free_port)
    taskset -c 0 bash -c "exec ${OTTER_CMD//\{PORT\}/$port}" >"$log" 2>&1 &
    TRACKER_PID=$!
    STARTED+=("$TRACKER_PID")
    for _ in $(seq 300); do port_open "$port" && break; sleep 0.1; done
    port_open "$port" || { cat "$log" >&2; die "otter did not open port $port"; }
    TRACKER_URL=ws://127.0.0.1:$port$OTTER_PATH
  else
    port_open "$OTTER_PORT" || die "nothing listens on 127.0.0.1:$OTTER_PORT"
    TRACKER_PID=$OTTER_PID TRACKER_URL=ws://127.0.0.1:$OTTER_PORT$OTTER_PATH
  fi
}
stop_tracker() {
  if [ "$1" != otter ] || [ -n "$OTTER_CMD" ]; then
    kill "$TRACKER_PID" 2>/dev/null || true
    wait "$TRACKER_PID" 2>/dev/null || true
  fi
}
TRACKERS=(bt)
[ -n "$OTTER_CMD$OTTER_PORT" ] && TRACKERS+=(otter)
[ "$CEILING" = 1 ] && TRACKERS+=(ref)
label() { case $1 in bt) echo bittorrent-tracker ;; ref) echo "ws_ref (ceiling)" ;; *) echo otter ;; esac; }

# ---------------------------------------------------------------- machine load
cpu_busy() { awk '/^cpu / { printf "%d %d\n", $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat; }
NCPU=$(nproc)
busy_cores() { # busy cores between two cpu_busy samples
  awk -v a="$1" -v b="$2" -v n="$NCPU" 'BEGIN { split(a, x, " "); split(b, y, " ");
    dt = y[2] - x[2]; printf "%.2f", (dt > 0 ? (y[1] - x[1]) / dt * n : 0) }'
}
BEFORE=0
quiet_wait() { # up to QUIET_WAIT s for a 1-s sample with < 0.3 busy cores; sets BEFORE
  local end=$((SECONDS + QUIET_WAIT)) a b
  while :; do
    a=$(cpu_busy); sleep 1; b=$(cpu_busy)
    BEFORE=$(busy_cores "$a" "$b")
    awk -v c="$BEFORE" 'BEGIN { exit !(c < 0.3) }' && return 0
    [ "$SECONDS" -lt "$end" ] || return 0
  done
}
jget() { sed -n "s/^RESULT .*\"$2\":\\([-0-9.]*\\).*/\\1/p" "$1" | head -1; }

echo "ws_compare: $(uptime)"
echo "wsload $WSLOAD; bittorrent-tracker $(bt_version) under node $(node --version); raw output in $OUT"
printf 'test\trun\ttracker\tannounce_rps\toffers_rps\tanswers_rps\tp50_us\tp99_us\terrors\ttracker_cores\tload_cores\tother_cores\tbefore_cores\trss_open_per_conn_b\trss_per_conn_b\tannounces_per_tracker_core_s\n' >"$OUT/results.tsv"

run_one() { # test run name: one wsload run on a fresh tracker; appends to results.tsv
  local test=$1 run=$2 name=$3 out="$OUT/$1-$2-$3.txt" a b other
  start_tracker "$name" "$OUT/$1-$2-$3.tracker.log"
  sleep 1
  quiet_wait
  local args=(--url "$TRACKER_URL" --pid "${TRACKER_PID:-0}")
  if [ "$test" = throughput ]; then
    args+=(--conns "$CONNS" --torrents "$TORRENTS" --window "$WINDOW" --duration "$DURATION" --warmup 2)
  else
    args+=(--conns "$IDLE_CONNS" --torrents "$IDLE_TORRENTS" --idle "$IDLE_HOLD")
  fi
  [ -n "$TRACKER_PID" ] || args=("${args[@]:0:2}" "${args[@]:4}")
  a=$(cpu_busy)
  timeout $((DURATION + IDLE_HOLD + 240 + IDLE_CONNS / 100)) taskset -c 1 "$WSLOAD" "${args[@]}" >"$out" 2>&1 || true
  b=$(cpu_busy)
  stop_tracker "$name"
  grep -q '^RESULT ' "$out" || { cat "$out" >&2; die "wsload failed ($out)"; }
  local secs tc lc busy
  secs=$(jget "$out" secs) tc=$(jget "$out" tracker_cores) lc=$(jget "$out" load_cores) busy=$(busy_cores "$a" "$b")
  # idle: the cores wsload reports are the hold's, not the whole run's: "other" is then all busy cores
  local otc=$tc olc=$lc
  [ "$test" = idle ] && otc=0 olc=0
  other=$(awk -v t="$busy" -v tc="$otc" -v lc="$olc" 'BEGIN {
    o = t - (tc > 0 ? tc : 0) - (lc > 0 ? lc : 0); printf "%.2f", (o < 0 ? 0 : o) }')
  local per_core
  per_core=$(awk -v r="$(jget "$out" announce_rps)" -v c="$tc" 'BEGIN { if (c > 0.05) printf "%.0f", r / c }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$test" "$run" "$name" \
    "$(jget "$out" announce_rps)" "$(jget "$out" offers_rps)" "$(jget "$out" answers_rps)" \
    "$(jget "$out" p50_us)" "$(jget "$out" p99_us)" "$(jget "$out" errors)" "$tc" "$lc" "$other" "$BEFORE" \
    "$(jget "$out" rss_open_per_conn_b)" "$(jget "$out" rss_per_conn_b)" "$per_core" >>"$OUT/results.tsv"
  if [ "$test" = throughput ]; then
    printf 'run %s  %-18s %8.0f announces/s %9.0f offers/s %9.0f answers/s  p50 %6.1f ms  p99 %7.1f ms  errors %s  cores: tracker %s load %s other %s, before %s\n' \
      "$run" "$(label "$name")" "$(jget "$out" announce_rps)" "$(jget "$out" offers_rps)" "$(jget "$out" answers_rps)" \
      "$(awk -v v="$(jget "$out" p50_us)" 'BEGIN{print v/1000}')" "$(awk -v v="$(jget "$out" p99_us)" 'BEGIN{print v/1000}')" \
      "$(jget "$out" errors)" "$tc" "$lc" "$other" "$BEFORE"
  else
    printf 'idle %s %-18s %s connections: %s B/connection announced and idle, %s B/connection open only; errors %s; tracker cores during the hold %s; machine busy %s cores over the %.0f s, before %s\n' \
      "$run" "$(label "$name")" "$(jget "$out" opened)" "$(jget "$out" rss_per_conn_b)" \
      "$(jget "$out" rss_open_per_conn_b)" "$(jget "$out" errors)" "$tc" "$busy" "$secs" "$BEFORE"
  fi
  sleep 1
}

if want throughput; then
  for run in $(seq "$RUNS"); do
    # rotate the order each run, so a drift of the machine favours no tracker
    k=$(((run - 1) % ${#TRACKERS[@]}))
    order=("${TRACKERS[@]:k}" "${TRACKERS[@]:0:k}")
    for name in "${order[@]}"; do run_one throughput "$run" "$name"; done
  done
fi
if want idle && ((IDLE_CONNS > 0)); then
  [ -n "$OTTER_PORT" ] && echo "note: otter was not started by this script, so its idle-memory figure is not from a fresh process"
  for name in "${TRACKERS[@]}"; do run_one idle 1 "$name"; done
fi

# ---------------------------------------------------------------- table
# results.tsv columns: 1 test 2 run 3 tracker 4 announce_rps 5 offers_rps 6 answers_rps 7 p50_us
# 8 p99_us 9 errors 10 tracker_cores 11 load_cores 12 other_cores 13 before_cores
# 14 rss_open_per_conn_b 15 rss_per_conn_b 16 announces_per_tracker_core_s (announce_rps / tracker_cores)
echo
awk -F'\t' -v names="${TRACKERS[*]}" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " "); if (!n) return "";
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function num(v, scale, dec) { return v == "" ? "-" : sprintf("%\047.*f", dec, v / scale) }
  function row(title, test, c, scale, dec, ratio,   i, r, list, rs, line) {
    if (!((test, "bt", c) in col)) return
    line = sprintf("%-48s", title)
    for (i = 1; i <= nn; i++) line = line sprintf(" %-18s", num(median(col[test, nm[i], c]), scale, dec))
    rs = ""
    if (has_otter && ratio) {
      list = ""
      for (r = 1; r <= maxrun[test]; r++)
        if (val[test, r, "bt", c] > 0 && (test, r, "otter", c) in val) {
          list = list " " sprintf("%.2f", val[test, r, "otter", c] / val[test, r, "bt", c])
          rs = rs (rs == "" ? "" : ", ") sprintf("%.2f", val[test, r, "otter", c] / val[test, r, "bt", c])
        }
      if (list != "") rs = sprintf("%.2f", median(list)) (maxrun[test] > 1 ? " (" rs ")" : "")
    }
    print line " " rs
  }
  function total(title, test,   i, line) {
    if (!((test, "bt", 4) in col)) return
    line = sprintf("%-48s", title)
    for (i = 1; i <= nn; i++) line = line sprintf(" %-18s", errs[test, nm[i]] + 0)
    print line
  }
  BEGIN {
    nn = split(names, nm, " ")
    for (i = 1; i <= nn; i++) { if (nm[i] == "otter") has_otter = 1 }
    label["bt"] = "bittorrent-tracker"; label["otter"] = "otter"; label["ref"] = "ws_ref (ceiling)"
  }
  NR == 1 { next }
  {
    for (c = 4; c <= 16; c++) { col[$1, $3, c] = col[$1, $3, c] " " $c; val[$1, $2, $3, c] = $c }
    if ($2 > maxrun[$1]) maxrun[$1] = $2
    errs[$1, $3] += $9
  }
  END {
    line = sprintf("%-48s", "figure")
    for (i = 1; i <= nn; i++) line = line sprintf(" %-18s", label[nm[i]])
    print line (has_otter ? " otter/bt (per run)" : "")
    row("announces/s (median)", "throughput", 4, 1, 0, 1)
    row("announces per tracker CPU-second (median)", "throughput", 16, 1, 0, 1)
    row("offers forwarded/s (median)", "throughput", 5, 1, 0, 1)
    row("answers relayed/s (median)", "throughput", 6, 1, 0, 1)
    row("p50 announce -> reply, ms (median)", "throughput", 7, 1000, 1, 0)
    row("p99 announce -> reply, ms (median)", "throughput", 8, 1000, 1, 0)
    row("tracker cores used (median)", "throughput", 10, 1, 2, 0)
    row("wsload cores used (median; >= 0.9: load-bound)", "throughput", 11, 1, 2, 0)
    row("other processes, cores (median)", "throughput", 12, 1, 2, 0)
    total("errors (sum over runs)", "throughput")
    row("RSS per idle connection, announced, B", "idle", 15, 1, 0, 1)
    row("RSS per open connection, no announce, B", "idle", 14, 1, 0, 1)
    total("errors in the idle test", "idle")
  }' "$OUT/results.tsv" | tee "$OUT/table.txt"
