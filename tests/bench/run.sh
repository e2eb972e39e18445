#!/bin/sh
# Benchmark dispatcher: tests/bench/run.sh MODE
#   proxy      wrk against the backend, sluice, nginx and HAProxy (proxy_bench.py), one worker each
#   proxy-tls  the same with HTTPS downstream (one certificate for all, TLS 1.3 defaults)
#   proxy-mtls HTTPS downstream and mutual TLS upstream to TLS backends (nginx), the mesh hop
#   proxy-2w   the same with two workers / two threads each, at c64 and c256
#   proxy-large  1 MiB responses (/bytes/1048576) at c16
#   h2-cost    the same for HTTP/2: Ir, syscalls and allocations per request, sluice vs nghttpx vs HAProxy
#              (h2_cost.py)
#   cost       instructions (callgrind Ir) and syscalls per request, sluice vs nginx vs HAProxy, c1 and c64
#              (cost_per_request.py; deterministic where wall clock on a shared machine is not)
#   websocket  WebSocket message round trips through sluice, nginx and HAProxy (ws_bench.py)
#   flood      a normal client's p50/p99 with and without 5,000 idle + slowloris connections, RSS per
#              1,000 idle connections (flood_bench.py)
#   failover   the chaos suite's long form: failover at defaults, sluice vs nginx vs HAProxy
#              (tests/chaos/chaos.py bench)
#   h2         h2load against sluice, nghttpx, nginx and HAProxy as HTTP/2 reverse proxies to one h2c
#              backend (nghttpd); last line h2_ratio_vs_best_peer (h2_bench.py)
#   routing    routing-table micro-benchmarks (routing_bench.sh)
#   discovery  discovery benchmarks (discovery_bench.sh)
#   fuzz       every libFuzzer harness for FUZZ_SECONDS (default 180) each, ASan+UBSan: execs, exec/s,
#              coverage and crashes per harness (tests/fuzz/run.sh; its own build dir, build-fuzz;
#              FUZZ_SANITIZE=undefined: UBSan only, build-fuzz-ubsan, for the long runs)
# Builds into build-bench (meson -Dbench=true; BUILD_DIR overrides) first.
# Environment knobs are described in tests/bench/README.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:-}
[ $# -gt 0 ] && shift

usage() {
  echo "usage: tests/bench/run.sh proxy|proxy-tls|proxy-mtls|proxy-2w|proxy-large|cost|websocket|flood|failover|h2|h2-cost|routing|discovery|fuzz" >&2
  exit 2
}

# Installs the Debian packages a mode needs when they are missing (as root).
need_tools() {
  missing=""
  for pair in "$@"; do
    tool=${pair%%:*}
    package=${pair#*:}
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing="$missing $package"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "run.sh: installing$missing" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "run.sh: missing$missing (run as root to install them)" >&2
  fi
}

# Configures the build directory once, then builds the named targets.
# A target that does not exist (yet) is reported, not fatal.
build() {
  cd "$root"
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    if ! meson setup "$BUILD_DIR" -Dbench=true -Dbuildtype=release >"/tmp/bench-setup.$$.log" 2>&1; then
      cat "/tmp/bench-setup.$$.log" >&2
      rm -f "/tmp/bench-setup.$$.log"
      echo "run.sh: meson setup $BUILD_DIR failed" >&2
      exit 1
    fi
    rm -f "/tmp/bench-setup.$$.log"
  fi
  meson configure "$BUILD_DIR" -Dbench=true >/dev/null
  for target in "$@"; do
    log="$BUILD_DIR/bench-build-$(echo "$target" | tr '/:' '__').log"
    if ! meson compile -C "$BUILD_DIR" -j 2 "$target" >"$log" 2>&1; then
      echo "run.sh: could not build $target (see $log)" >&2
    fi
  done
}

BUILD_DIR=${BUILD_DIR:-build-bench}
export BUILD_DIR
PATH="$PATH:/usr/sbin:/sbin"

case "$mode" in
  proxy|proxy-tls|proxy-mtls|proxy-2w|proxy-large)
    case "$mode" in
      proxy-tls) export BENCH_TLS=1 BENCH_LABEL=${BENCH_LABEL:-tls} ;;
      proxy-mtls) export BENCH_TLS=1 BENCH_UPSTREAM_TLS=1 BENCH_LABEL=${BENCH_LABEL:-mtls} ;;
      proxy-2w) export BENCH_WORKERS=2 BENCH_CONNS=${BENCH_CONNS:-64 256} BENCH_LABEL=${BENCH_LABEL:-2w} ;;
      proxy-large) export BENCH_PATH=/bytes/1048576 BENCH_CONNS=${BENCH_CONNS:-16} BENCH_LABEL=${BENCH_LABEL:-large} ;;
    esac
    need_tools wrk:wrk nginx:nginx-light haproxy:haproxy openssl:openssl
    build sluice-testbackend cli/sluice:executable tests/bench/alloc_count
    cd "$root"
    exec /usr/bin/python3 "$here/proxy_bench.py" --build-dir "$BUILD_DIR" "$@"
    ;;
  cost)
    # Work per request counted, not timed: callgrind Ir and syscalls per request, sluice vs nginx vs HAProxy.
    need_tools wrk:wrk nginx:nginx-light haproxy:haproxy valgrind:valgrind
    build sluice-testbackend cli/sluice:executable
    cd "$root"
    exec /usr/bin/python3 "$here/cost_per_request.py" --build-dir "$BUILD_DIR" "$@"
    ;;
  websocket)
    need_tools nginx:nginx-light haproxy:haproxy
    build tests/bench/sluice-wsbench cli/sluice:executable
    cd "$root"
    exec /usr/bin/python3 "$here/ws_bench.py" --build-dir "$BUILD_DIR" "$@"
    ;;
  flood)
    need_tools wrk:wrk
    # SLUICE_BIN and BACKEND_BIN both set: measure those binaries, build nothing.
    if [ -z "${SLUICE_BIN:-}" ] || [ -z "${BACKEND_BIN:-}" ]; then
      build sluice-testbackend cli/sluice:executable
    fi
    cd "$root"
    exec /usr/bin/python3 "$here/flood_bench.py" --build-dir "$BUILD_DIR" "$@"
    ;;
  failover)
    need_tools nginx:nginx-light haproxy:haproxy
    # SLUICE_BIN and BACKEND_BIN both set: measure those binaries, build nothing.
    if [ -z "${SLUICE_BIN:-}" ] || [ -z "${BACKEND_BIN:-}" ]; then
      build sluice-testbackend cli/sluice:executable
    fi
    cd "$root"
    exec /usr/bin/python3 "$root/tests/chaos/chaos.py" bench --build-dir "$BUILD_DIR" "$@"
    ;;
  h2)
    need_tools h2load:nghttp2-client nghttpd:nghttp2-server nghttpx:nghttp2-proxy nginx:nginx-light haproxy:haproxy
    build cli/sluice:executable tests/bench/alloc_count
    cd "$root"
    exec /usr/bin/python3 "$here/h2_bench.py" --build-dir "$BUILD_DIR" "$@"
    ;;
  h2-cost)
    # The h2 work per request counted: callgrind Ir, syscalls and allocations per request, sluice vs nghttpx vs HAProxy.
    need_tools h2load:nghttp2-client nghttpd:nghttp2-server nghttpx:nghttp2-proxy haproxy:haproxy valgrind:valgrind strace:strace
    build cli/sluice:executable tests/bench/alloc_count
    cd "$root"
    exec /usr/bin/python3 "$here/h2_cost.py" --build-dir "$BUILD_DIR" "$@"
    ;;
  fuzz)
    exec bash "$root/tests/fuzz/run.sh" all "${FUZZ_SECONDS:-180}" "$@"
    ;;
  routing|discovery)
    script="$here/${mode}_bench.sh"
    if [ ! -x "$script" ]; then
      echo "run.sh: the $mode benchmark is not written yet ($script is missing)" >&2
      exit 2
    fi
    cd "$root"
    exec "$script" "$@"
    ;;
  *)
    usage
    ;;
esac
