#!/bin/sh
# Builds the routing concurrency test with ThreadSanitizer in its own build directory and runs it alone.
# Usage: tests/routing/run_tsan.sh [build-dir]   (default: build-tsan)
set -u
cd "$(dirname "$0")/../.." || exit 1
dir=${1:-build-tsan}
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" -Db_sanitize=thread -Dbuildtype=debug -Db_lundef=false >/dev/null || { echo "routing tsan: FAIL (meson setup)"; exit 1; }
fi
ninja -C "$dir" -j2 tests/routing/routing_tsan_test >/dev/null || { echo "routing tsan: FAIL (build)"; exit 1; }
# halt_on_error: any race report fails the run; second_deadlock_stack for readable reports.
if TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$dir/tests/routing/routing_tsan_test"; then
  echo "routing tsan: PASS"
else
  echo "routing tsan: FAIL"
  exit 1
fi
