#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs every test.
# Ends with one line `N passed, N failed`; exits non-zero on any failure.
# --fast: the fast tier only (unit tests and the quick integration tests; tests/run_all.py says what).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
build=${SLUICE_BUILD:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dtests=true >/dev/null
fi
ninja -C "$build" -j"$(nproc)"
exec /usr/bin/python3 tests/run_all.py "$@" "$build"
