#!/bin/sh
# Discovery benchmark (tests/bench/run.sh discovery): builds the probe, runs discovery_bench.py.
# Arguments are passed on (e.g. --services 1000 --changes 200 --skip-memory).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build-bench}
cd "$root"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR" -Dbuildtype=release >/dev/null
fi
meson compile -C "$BUILD_DIR" -j 2 tests/discovery/discovery_probe >"$BUILD_DIR/bench-build-discovery_probe.log" 2>&1 ||
  { echo "discovery_bench.sh: could not build the probe (see $BUILD_DIR/bench-build-discovery_probe.log)" >&2; exit 1; }
DISCOVERY_PROBE="$root/$BUILD_DIR/tests/discovery/discovery_probe" exec /usr/bin/python3 "$here/discovery_bench.py" "$@"
