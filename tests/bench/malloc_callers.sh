#!/bin/bash
# Who allocates in steady state: sluice between two sluice-testbackends under `wrk -cCONNS`, gdb attached
# after a 2 s warm-up with a backtrace at every malloc, calloc and realloc for SECONDS, then the callers
# counted (malloc_callers.py). For finding what allocs_per_request counts (tests/bench/README.md).
#   tests/bench/malloc_callers.sh [SLUICE [CONNS [SECONDS [tls]]]]
# Defaults: build-bench/cli/sluice, 64, 4. Needs gdb and wrk. The printed directory keeps gdb's output.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sluice=${1:-$root/build-bench/cli/sluice}
conns=${2:-64}
seconds=${3:-4}
tls=${4:-}
backend=${BACKEND_BIN:-$root/build-bench/tests/backend/sluice-testbackend}
dir=$(mktemp -d /tmp/sluice-malloc-XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for b in b1 b2; do
  "$backend" --listen 127.0.0.1:0 --name $b --port-file "$dir/$b.port" >"$dir/$b.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 50); do [ -f "$dir/b1.port" ] && [ -f "$dir/b2.port" ] && break; sleep 0.1; done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
scheme=http
tls_json=""
if [ "$tls" = tls ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/key.pem" \
    -out "$dir/cert.pem" -days 2 -subj /CN=bench.test 2>/dev/null
  tls_json=", \"tls\": { \"cert_file\": \"$dir/cert.pem\", \"key_file\": \"$dir/key.pem\" }"
  scheme=https
fi
sed -e "s|@ADDRESS@|127.0.0.1|; s|@PORT@|$port|; s|@SLUICE_TLS@|$tls_json|" \
    -e "s|@BACKEND1@|127.0.0.1:$(cut -d' ' -f1 "$dir/b1.port")|; s|@BACKEND2@|127.0.0.1:$(cut -d' ' -f1 "$dir/b2.port")|" \
    "$here/sluice.json.in" >"$dir/sluice.json"
"$sluice" --config "$dir/sluice.json" --workers 1 >"$dir/sluice.log" 2>&1 &
sluice_pid=$!
pids+=($sluice_pid)
sleep 0.5
wrk -t1 -c"$conns" -d$((seconds + 10))s "$scheme://127.0.0.1:$port/" >"$dir/wrk.log" 2>&1 &
pids+=($!)
sleep 2
{
  echo "set pagination off"
  for f in malloc calloc realloc; do printf 'break %s\ncommands\nbt 16\ncontinue\nend\n' "$f"; done
  echo continue
} >"$dir/gdb.cmd"
timeout -s INT "$seconds" gdb -p "$sluice_pid" -batch -x "$dir/gdb.cmd" >"$dir/gdb.out" 2>&1 || true
python3 "$here/malloc_callers.py" "$dir/gdb.out"
echo "# gdb output: $dir/gdb.out"
