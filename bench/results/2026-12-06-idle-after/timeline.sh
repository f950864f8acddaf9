#!/usr/bin/env bash
# timeline.sh LABEL PORT SECONDS V8FLAGS -> RSS every 10 s
cd "$(dirname "$0")/../../.."
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
BASE=("${PERMS[@]:1}")
deno run --v8-flags="$4" "${BASE[@]}" main.ts --http 127.0.0.1:$2 --udp 127.0.0.1:$(($2+1)) >/tmp/tl-$1.log 2>&1 &
P=$!
for _ in $(seq 300); do grep -q "UDP listening" /tmp/tl-$1.log && break; sleep 0.1; done
t=0; line="$1:"
while [ $t -le $3 ]; do
  line+=" ${t}s=$(awk '/^VmRSS/ {v = $2} /^RssAnon/ {a = $2} END {printf "%.1f/%.1f", v/1024, a/1024}' /proc/$P/status)"
  sleep 10; t=$((t+10))
done
kill $P; wait $P 2>/dev/null
echo "$line"
