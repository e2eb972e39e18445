#!/bin/sh
# Benchmark dispatcher: tests/bench/run.sh MODE
#   proxy      wrk against the backend, sluice, nginx and HAProxy (proxy_bench.py)
#   failover   the chaos suite's long form: failover at defaults, sluice vs nginx vs HAProxy
#              (tests/chaos/chaos.py bench)
#   routing    routing-table micro-benchmarks (routing_bench.sh)
#   discovery  discovery benchmarks (discovery_bench.sh)
#   fuzz       every libFuzzer harness for FUZZ_SECONDS (default 180) each, ASan+UBSan: execs, exec/s,
#              coverage and crashes per harness (tests/fuzz/run.sh; its own build dir, build-fuzz)
# Builds into build-bench (meson -Dbench=true; BUILD_DIR overrides) first.
# Environment knobs are described in tests/bench/README.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:-}
[ $# -gt 0 ] && shift

usage() {
  echo "usage: tests/bench/run.sh proxy|failover|routing|discovery|fuzz" >&2
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
  proxy)
    need_tools wrk:wrk nginx:nginx-light haproxy:haproxy
    build sluice-testbackend cli/sluice:executable
    cd "$root"
    exec /usr/bin/python3 "$here/proxy_bench.py" --build-dir "$BUILD_DIR" "$@"
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
