#!/usr/bin/env bash
# The standalone demo: sluice in front of two local backends, requests balanced between them.
# Installs what is missing, builds, runs, and stops by itself (or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build cli/sluice tests/backend/sluice-testbackend >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(free_port); p2=$(free_port); proxy_port=$(free_port); admin_port=$(free_port)
build/tests/backend/sluice-testbackend --listen 127.0.0.1:$p1 --name httpbin-cluster1-pod-a >/dev/null & pids+=($!)
build/tests/backend/sluice-testbackend --listen 127.0.0.1:$p2 --name httpbin-cluster1-pod-b >/dev/null & pids+=($!)
sed -e "s/127.0.0.1:9001/127.0.0.1:$p1/; s/127.0.0.1:9002/127.0.0.1:$p2/" \
    -e "s/\"port\": 8080/\"port\": $proxy_port/; s/\"port\": 9901/\"port\": $admin_port/" \
    -e 's/"access_log": { "enabled": true/"access_log": { "enabled": false/' \
    examples/sluice.json > "$tmp/sluice.json"
build/cli/sluice --config "$tmp/sluice.json" --workers 1 & pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$proxy_port/" && break; sleep 0.1; done

echo "--- 6 requests to http://httpbin.httpbin:8080/ through sluice on 127.0.0.1:$proxy_port"
for i in $(seq 6); do
  printf 'request %d -> %s' "$i" "$(curl -s -H 'Host: httpbin.httpbin:8080' "http://127.0.0.1:$proxy_port/")"
  echo
done
echo "--- demo done"
