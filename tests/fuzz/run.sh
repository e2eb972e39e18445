#!/usr/bin/env bash
# Runs libFuzzer harnesses under ASan+UBSan: tests/fuzz/run.sh NAME|all SECONDS [libFuzzer flags...]
# (later flags override the defaults below, e.g. -runs=N instead of a time, -max_len=N).
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
# FUZZ_SANITIZE: the sanitizers besides libFuzzer's coverage. CI's runs and the default: address,undefined.
# The long runs toward 10 million execs may take `undefined` alone (in build-fuzz-ubsan): about 3x the
# exec/s, at the price of not seeing memory errors that do not crash or break an invariant. Every input a
# long run grows can be replayed under ASan afterwards (NAME -runs=0 DIR in build-fuzz).
sanitize=${FUZZ_SANITIZE:-address,undefined}
case "$sanitize" in
  address,undefined) build=${FUZZ_BUILD_DIR:-build-fuzz} ;;
  undefined) build=${FUZZ_BUILD_DIR:-build-fuzz-ubsan} ;;
  *) echo "FUZZ_SANITIZE: address,undefined or undefined" >&2; exit 2 ;;
esac

if [ ! -f "$build/build.ninja" ]; then
  # -fsanitize=fuzzer-no-link on every object: the coverage that guides libFuzzer, in the project's code too.
  # NDEBUG as in the shipped build (buildtype=release): Beast 1.81's debug assertions include one that is
  # too strict (parse_chunk_header's n >= 5 when a body's first chunk is its last, arriving in pieces).
  CXX=clang++ CC=clang meson setup "$build" -Dfuzz=true -Dtests=false -Dbuildtype=debugoptimized -Db_ndebug=true \
    -Db_sanitize="$sanitize" -Db_lundef=false \
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
  # Inputs no longer than the harness needs: libFuzzer grows its inputs toward max_len, and longer inputs
  # are slower ones that reach nothing new. The HTTP harnesses' limit is 2,048 bytes of head (plus a body
  # in 512-byte pieces), the Kubernetes line limit 4,096 (a stream of a few lines around it), and a config
  # or kubeconfig of 4 KiB holds every section.
  case "$n" in
    fuzz_kubernetes) max_len=8192 ;;
    *) max_len=4096 ;;
  esac
  set +e
  "$build/tests/fuzz/$n" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -max_len="$max_len" -artifact_prefix="$build/fuzz-artifacts/$n-" "$@" "$work" "$here/corpus/$n" >"$log" 2>&1
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
  echo "$n: execs=${execs:-0} exec/s=${rate:-0} ${cov:-cov: ?} crashes=$crashes exit=$rc sanitizers=$sanitize (log: $log)"
done
exit $failed
