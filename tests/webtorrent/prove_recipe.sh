#!/usr/bin/env bash
# Proves the real-WebTorrent-client recipe of ../shared/notes/webtorrent.md on this machine, with
# bittorrent-tracker's server (or otter itself, --otter) as the tracker: inside a loopback-only
# network namespace, a
# webtorrent seeder and a magnet leecher (both under Deno, wt_client.mjs) exchange a random file
# through a WebSocket tracker; the leecher's sha256 must match and its wires must be webrtc. Then
# bittorrent-tracker's own client library (bt_client.mjs) plays its scenario on the same tracker.
#
#   bash tests/webtorrent/prove_recipe.sh [--tls] [--size BYTES]
#   bash tests/webtorrent/prove_recipe.sh --otter [--size BYTES]      # otter over ws://
#
# The same against otter over ws:// and wss://, as a Deno test CI runs: tests/webtorrent_e2e_test.ts.
#
# Needs root (unshare -n), `deno install` done in tests/webtorrent, node and openssl (--tls).
# With --tls the tracker serves wss:// with a leaf certificate for IP:127.0.0.1 signed by a
# throwaway CA, which the clients trust through wt_client.mjs --ca. Prints the clients' JSON lines
# and one final "recipe ok" or "recipe FAILED" line; exits non-zero on failure. Bounded: each
# client gives up after 90 s.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tls=0
otter=0
size=$((3 * 1024 * 1024 + 4321))
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tls) tls=1 ;;
    --otter) otter=1 ;;
    --size) size="$2"; shift ;;
    --inner) inner=1 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ "${inner:-0}" != 1 ]]; then
  args=(--size "$size")
  [[ $tls == 1 ]] && args+=(--tls)
  [[ $otter == 1 ]] && args+=(--otter)
  if [[ $tls == 1 && $otter == 1 ]]; then
    echo "--otter serves ws:// here; otter over wss:// is tests/webtorrent_e2e_test.ts's" >&2
    exit 2
  fi
  exec unshare -n bash -c 'ip link set lo up && exec bash "$0" --inner "$@"' "$0" "${args[@]}"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

tracker_args=()
client_args=()
if [[ $tls == 1 ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=otter test CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/leaf.ext"
  openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 1 -extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null
  tracker_args=(--cert "$work/leaf.pem" --key "$work/leaf.key")
  client_args=(--ca "$work/ca.pem")
fi

head -c "$size" /dev/urandom >"$work/payload.bin"
want="$(sha256sum "$work/payload.bin" | cut -d' ' -f1)"

# Waits up to $3 seconds for a line matching $2 in file $1 and prints it.
wait_line() {
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if grep -m1 "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "no '$2' in $1 after $3 s:" >&2
  cat "$1" >&2
  return 1
}

cd "$here"
if [[ $otter == 1 ]]; then
  deno run -A ../../main.ts --http 127.0.0.1:0 --udp 127.0.0.1:0 >"$work/tracker.log" 2>&1 &
  pids+=($!)
  http="$(wait_line "$work/tracker.log" '^HTTP listening on' 30 | sed 's/^HTTP listening on //')"
  url="ws://${http#http://}"
else
  node bt_tracker.mjs "${tracker_args[@]}" >"$work/tracker.log" 2>&1 &
  pids+=($!)
  url="$(wait_line "$work/tracker.log" '"listening"' 20 | sed 's/.*"url":"\([^"]*\)".*/\1/')"
fi
echo "tracker: $url"

started=$SECONDS
deno run -A wt_client.mjs seed --tracker "$url" --file "$work/payload.bin" \
  --timeout-ms 90000 "${client_args[@]}" >"$work/seed.log" 2>&1 &
pids+=($!)
magnet="$(wait_line "$work/seed.log" '"seeding"' 60 | sed 's/.*"magnet":"\([^"]*\)".*/\1/')"
echo "seeding: $magnet"

mkdir "$work/out"
status=0
deno run -A wt_client.mjs leech --tracker "$url" --magnet "$magnet" --out "$work/out" \
  --timeout-ms 90000 "${client_args[@]}" >"$work/leech.log" 2>&1 || status=$?
echo "--- leecher (exit $status, $((SECONDS - started)) s since the seeder started):"
grep -v '"progress"' "$work/leech.log" || true
echo "--- seeder:"
grep -v '"progress"' "$work/seed.log" || true

echo "--- bittorrent-tracker's client library (bt_client.mjs):"
bt_status=0
deno run -A bt_client.mjs --tracker "$url" "${client_args[@]}" || bt_status=$?

done_line="$(grep -m1 '"done"' "$work/leech.log" || true)"
if [[ $status == 0 && "$done_line" == *"\"sha256\":\"$want\""* &&
  "$done_line" == *'"wireTypes":["webrtc"]'* && $bt_status == 0 ]]; then
  echo "recipe ok: $size bytes over webrtc via $url, sha256 $want; bt_client scenario done"
else
  echo "recipe FAILED (want sha256 $want over webrtc, and bt_client exit 0: $bt_status)"
  exit 1
fi
