#!/usr/bin/env bash
# usage: ab_linger.sh LINGER1 LINGER2 ... ; each: fresh otter from /work/wt/udp-wake --udp-linger L, fill, 2 x 10 s at RATE
RATE=${RATE:-100000}
ROUNDS=${ROUNDS:-2}
cd /work/wt/udp-wake
mapfile -t PERMS < <(deno run --allow-read bench/start_flags.ts)
for round in $(seq $ROUNDS); do
for l in "$@"; do
  taskset -c 0 deno run "${PERMS[@]}" main.ts --http 127.0.0.1:17960 --udp 127.0.0.1:17959 --udp-linger $l > /tmp/ab-otter.log 2>&1 &
  P=$!
  for _ in $(seq 100); do grep -q "UDP listening" /tmp/ab-otter.log && break; sleep 0.1; done
  [ -n "$NOFILL" ] || timeout 180 taskset -c 1 /tmp/udpload -p 17959 -t 100000 -F 1000000 -n 0 -c 128 -d 120 > /dev/null
  for k in 1 2; do
    a=$(awk '{print $14+$15}' /proc/$P/stat)
    r=$(taskset -c 1 /tmp/stalls-q/openloop --udp 127.0.0.1:17959 --rate $RATE --duration 10 --warmup 0 --torrents 100000 --ports 10 --fill-seeders 2>&1 | grep -o '"p50_us":[0-9]*,"p90_us":[0-9]*,"p99_us":[0-9]*,"p999_us":[0-9]*,"max_us":[0-9]*')
    b=$(awk '{print $14+$15}' /proc/$P/stat)
    echo "round $round linger $l run $k: otter cores $(echo "($b-$a)/1000" | bc -l | cut -c1-5) $r load $(cut -d' ' -f1 /proc/loadavg)"
  done
  kill $P; wait $P 2>/dev/null
done
done
