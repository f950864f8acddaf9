#!/usr/bin/env bash
# variant label | env | v8 flags (comma list after --max-semi-space-size=2)
cd "$(dirname "$0")/../../.."
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
BASE=("${PERMS[@]:1}")   # drop the --v8-flags word (first)
RUNS=${RUNS:-3}
declare -a LABELS ENVS V8S
add() { LABELS+=("$1"); ENVS+=("$2"); V8S+=("$3"); }
add "start task as is" "" "--max-semi-space-size=2"
add "--no-sparkplug" "" "--max-semi-space-size=2,--no-sparkplug"
add "--no-maglev" "" "--max-semi-space-size=2,--no-maglev"
add "--single-threaded-gc" "" "--max-semi-space-size=2,--single-threaded-gc"
add "MALLOC_ARENA_MAX=1" "MALLOC_ARENA_MAX=1" "--max-semi-space-size=2"
add "--max-semi-space-size=1" "" "--max-semi-space-size=1"
add "--no-opt (reference)" "" "--max-semi-space-size=2,--no-opt"
add "--jitless (reference)" "" "--max-semi-space-size=2,--jitless"
echo "${PERMS[0]} -> variants; $RUNS runs alternating; VmRSS RssAnon RssFile in MB"
declare -A OUT
for r in $(seq "$RUNS"); do
  for i in "${!LABELS[@]}"; do
    env ${ENVS[$i]} deno run --v8-flags="${V8S[$i]}" "${BASE[@]}" main.ts --http 127.0.0.1:27970 --udp 127.0.0.1:27969 >/tmp/log 2>&1 &
    P=$!
    for _ in $(seq 300); do grep -q "UDP listening" /tmp/log && break; sleep 0.1; done
    sleep 5
    OUT[$i]+="$(awk '/^VmRSS/ {v = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {printf "%.1f/%.1f/%.1f ", v/1024, a/1024, f/1024}' /proc/$P/status)"
    kill $P; wait $P 2>/dev/null
  done
done
for i in "${!LABELS[@]}"; do
  med=$(echo "${OUT[$i]}" | tr ' ' '\n' | grep . | sort -t/ -k1 -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
  printf '%-28s median %s   runs %s\n' "${LABELS[$i]}" "$med" "${OUT[$i]}"
done
