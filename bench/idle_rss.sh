#!/usr/bin/env bash
# Idle RSS, and what each module costs it: VmRSS (RssAnon + RssFile) 5 s (SETTLE) after start,
# median of RUNS runs, with exactly the start task's flags (bench/start_flags.ts), for
#   - the bare runtime (bench/idle_import.ts importing nothing),
#   - that runtime importing one module (or group) alone: what loading it costs an idle process,
#   - otter itself, started as `deno task start` starts it (on 127.0.0.1 ports), and with options
#     that load more (--udp-io portable, --workers 2, --state, --whitelist, --config), and after
#     its first WebSocket upgrade and dashboard page (the code they load at first use).
# Memory figures do not move with the machine's load (±0.5 MB between runs); the load is printed.
# With commits after RUNS, only otter's row, at each commit (its tree from `git archive`, started
# with this checkout's start flags), the commits taken in turn within each run: a bisection, or a
# before/after pair measured in the same minutes.
#
#   bash bench/idle_rss.sh [RUNS]                 # default 3; takes about RUNS x 2 minutes
#   bash bench/idle_rss.sh RUNS COMMIT [COMMIT...]
#   SETTLE=600 bash bench/idle_rss.sh ...          # read 600 s after start instead of 5 s
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
COMMITS=("$@")
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
[ "${#PERMS[@]}" -gt 0 ] || exit 1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PID=""

sample() { # prints "VmRSS RssAnon RssFile" in kB of $PID after it printed $1 in its log
  for _ in $(seq 300); do grep -q "$1" "$TMP/log" && break; sleep 0.1; done
  [ -z "${AFTER:-}" ] || "$AFTER"
  sleep "${SETTLE:-5}"
  awk '/^VmRSS/ {v = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {print v, a, f}' \
    "/proc/$PID/status"
  kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  PID=""
}
first_use() { # one WebSocket upgrade (closed after its 101), the dashboard page and its files
  exec 3<>/dev/tcp/127.0.0.1/26970
  printf 'GET /announce HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%b\r\n\r\n' \
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' >&3
  timeout 5 head -c 12 <&3 >/dev/null || true
  exec 3>&-
  for f in "" /dashboard.css /dashboard.js /uPlot.min.css /uPlot.iife.min.js /data; do
    curl -s -o /dev/null --compressed "http://127.0.0.1:26970/dashboard$f"
  done
}
median_row() { # label; reads "v a f" lines, prints medians in MB
  sort -n | awk -v label="$1" '{v[NR] = $1; a[NR] = $2; f[NR] = $3}
    function med(x, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = x[i]; j = i - 1; while (j >= 1 && x[j] > t) { x[j + 1] = x[j]; j-- } x[j + 1] = t }
      return (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
    }
    END { printf "%-58s %6.1f %6.1f %6.1f   (VmRSS of runs:", label, med(v, NR) / 1024, med(a, NR) / 1024, med(f, NR) / 1024
          for (i = 1; i <= NR; i++) printf " %.1f", v[i] / 1024; print ")" }'
}
module_row() { # label modules...
  local label=$1
  shift
  for _ in $(seq "$RUNS"); do
    deno run "${PERMS[@]}" bench/idle_import.ts "$@" >"$TMP/log" 2>&1 &
    PID=$!
    sample imported
  done | median_row "$label"
}
otter_row() { # label otter args...
  local label=$1
  shift
  for _ in $(seq "$RUNS"); do
    deno run "${PERMS[@]}" main.ts --http 127.0.0.1:26970 --udp 127.0.0.1:26969 "$@" \
      >"$TMP/log" 2>&1 &
    PID=$!
    sample "UDP listening"
  done | median_row "$label"
}

printf '# bench/idle_rss.sh, %s, %s, deno %s, %s runs, load before: %s\n' "$(date -u +%F)" \
  "$(git rev-parse --short HEAD)" "$(deno --version | head -n 1 | cut -d' ' -f2)" "$RUNS" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %6s %6s %6s\n' "process (MB, medians)" VmRSS Anon File
if [ "${#COMMITS[@]}" -gt 0 ]; then
  for commit in "${COMMITS[@]}"; do
    mkdir -p "$TMP/tree-$commit"
    git archive "$commit" | tar -x -C "$TMP/tree-$commit"
    # Once, not counted: a new tree's first start transpiles every module (+10-15 MB that run).
    (cd "$TMP/tree-$commit" && exec deno run "${PERMS[@]}" main.ts --http 127.0.0.1:26970 \
      --udp 127.0.0.1:26969) >"$TMP/log" 2>&1 &
    PID=$!
    SETTLE=0 sample "UDP listening" >/dev/null
  done
  for _ in $(seq "$RUNS"); do
    for commit in "${COMMITS[@]}"; do
      (cd "$TMP/tree-$commit" && exec deno run "${PERMS[@]}" main.ts --http 127.0.0.1:26970 \
        --udp 127.0.0.1:26969) >"$TMP/log" 2>&1 &
      PID=$!
      sample "UDP listening" >>"$TMP/rows-$commit"
    done
  done
  for commit in "${COMMITS[@]}"; do
    median_row "otter at $(git log -1 --format='%h %ad' --date=format:%H:%M "$commit")" \
      <"$TMP/rows-$commit"
  done
  printf '# load after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
module_row "bare runtime (imports nothing)"
module_row "+ main.ts's static graph (not run)" main.ts
for m in src/config/configFile.ts node:path src/policy/accessListFile.ts \
  src/persist/stateFile.ts src/observe/fullScrape.ts src/observe/stats.ts \
  src/servers/udp/udpWorkerPool.ts src/servers/udp/udpPortableSocket.ts \
  src/servers/http/tlsListener.ts src/observe/dashboardAssets.ts src/servers/ws/wsServer.ts \
  node:crypto src/cluster/redisCluster.ts; do
  module_row "+ $m alone" "$m"
done
otter_row "otter (deno task start's flags, fast UDP path)"
otter_row "otter --udp-io portable" --udp-io portable
echo 'peer-timeout = 2400' >"$TMP/otter.toml"
otter_row "otter --config FILE" --config "$TMP/otter.toml"
otter_row "otter --state FILE" --state "$TMP/otter.state"
: >"$TMP/white.txt"
otter_row "otter --whitelist FILE" --whitelist "$TMP/white.txt"
otter_row "otter --workers 2" --workers 2
otter_row "otter --no-dashboard (no history sampling)" --no-dashboard
AFTER=first_use otter_row "otter after a WebSocket upgrade and the dashboard page"
printf '# load after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
