#!/usr/bin/env bash
# Runs libFuzzer harnesses under ASan+UBSan: tests/fuzz/run.sh NAME|all SECONDS [libFuzzer flags...]
# Builds only the harnesses, in their own clang build dir (FUZZ_BUILD_DIR, default build-fuzz). Each
# harness starts from its seed corpus (tests/fuzz/corpus/NAME, with the regression inputs of every bug
# found: those must pass first) plus what earlier runs found (in the build dir, not in the repo), and
# prints one summary line: execs, exec/s, coverage, corpus size, crashes. A crash saves its input as
# BUILD/fuzz-artifacts/NAME-crash-* and makes the run exit non-zero.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
all=(fuzz_request_head fuzz_response_head fuzz_config fuzz_kubernetes fuzz_kubeconfig)
[ $# -ge 2 ] || { echo "usage: tests/fuzz/run.sh NAME|all SECONDS [libFuzzer flags]  (NAME: ${all[*]})" >&2; exit 2; }
name=$1 seconds=$2
shift 2
if [ "$name" = all ]; then names=("${all[@]}"); else names=("$name"); fi
build=${FUZZ_BUILD_DIR:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
  # -fsanitize=fuzzer-no-link on every object: the coverage that guides libFuzzer, in the project's code too.
  # NDEBUG as in the shipped build (buildtype=release): Beast 1.81's debug assertions include one that is
  # too strict (parse_chunk_header's n >= 5 when a body's first chunk is its last, arriving in pieces).
  CXX=clang++ CC=clang meson setup "$build" -Dfuzz=true -Dtests=false -Dbuildtype=debugoptimized -Db_ndebug=true \
    -Db_sanitize=address,undefined -Db_lundef=false \
    "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" \
    "-Dcpp_link_args=-fno-sanitize-recover=undefined" >/tmp/sluice-fuzz-setup.$$.log 2>&1 \
    || { cat /tmp/sluice-fuzz-setup.$$.log >&2; exit 1; }
fi
targets=()
for n in "${names[@]}"; do targets+=("tests/fuzz/$n"); done
ninja -C "$build" -j2 "${targets[@]}" >/dev/null

# A sanitizer report is a crash: halt at once, non-zero exit (libFuzzer saves the input).
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
failed=0
mkdir -p "$build/fuzz-artifacts"
for n in "${names[@]}"; do
  work="$build/fuzz-corpus/$n"
  mkdir -p "$work"
  log="$build/fuzz-artifacts/$n.log"
  marker="$build/fuzz-artifacts/.started-$n"
  touch "$marker"
  set +e
  "$build/tests/fuzz/$n" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -max_len=16384 -artifact_prefix="$build/fuzz-artifacts/$n-" "$@" "$work" "$here/corpus/$n" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  crashes=$(find "$build/fuzz-artifacts" -maxdepth 1 -name "$n-*" -newer "$marker" | wc -l)
  if [ "$rc" -ne 0 ]; then
    failed=1
    grep -E 'ERROR|invariant|runtime error|SUMMARY' "$log" | head -5 >&2 || true
  fi
  echo "$n: execs=${execs:-0} exec/s=${rate:-0} ${cov:-cov: ?} crashes=$crashes exit=$rc (log: $log)"
done
exit $failed
