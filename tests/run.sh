#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs every test.
# Ends with one line `N passed, N failed`; exits non-zero on any failure.
# --fast: the fast tier only (unit tests and the quick integration tests; tests/run_all.py says what), on
# the plain build (build/). The full run (CI) builds once with AddressSanitizer+UndefinedBehaviorSanitizer
# (build-asan/) and runs every suite on it: one build, every suite sanitized; any report fails the run.
# SLUICE_BUILD overrides the build dir (an existing dir keeps the options it was set up with).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
fast=0
for a in "$@"; do [ "$a" = "--fast" ] && fast=1; done
if [ "$fast" = 1 ]; then
  build=${SLUICE_BUILD:-build}
  sanitize=()
else
  build=${SLUICE_BUILD:-build-asan}
  # -fno-sanitize-recover=undefined: a UBSan report ends the process (non-zero), as an ASan one does.
  # b_lundef=false: the sanitizer runtimes resolve symbols at load time.
  # -O1: what the sanitizers' authors recommend, and half the compile time of the release build's -O3.
  sanitize=(-Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1
            "-Dcpp_args=-fno-sanitize-recover=undefined" "-Dcpp_link_args=-fno-sanitize-recover=undefined")
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dtests=true "${sanitize[@]}" >/dev/null
fi
ninja -C "$build" -j"$(nproc)"
exec /usr/bin/python3 tests/run_all.py "$@" "$build"
