#!/bin/sh
# Routing micro-benchmarks: builds tests/bench/routing_bench in $BUILD_DIR (default build-bench, with
# -Dbench=true) and runs it (extra arguments go to the benchmark program, e.g.
# --benchmark_repetitions=5). Prints a summary, then ends with the lines the issue asks for:
#   lookup_pick_ns: X   route lookup + endpoint pick + finish, 10k services, one thread, requests naming
#                       services uniformly at random (the memory-bound worst case)
#   rebuild_ms: X       build + publish of a 10k-service / 100k-endpoint snapshot
# Times are CPU time per operation (the machine is shared: real time counts time spent descheduled);
# the summary shows real time too. With repetitions, the best (minimum) of the runs is reported.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dir=${BUILD_DIR:-build-bench}
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" -Dbench=true -Dbuildtype=release >/dev/null
fi
meson configure "$dir" -Dbench=true >/dev/null
ninja -C "$dir" -j2 tests/bench/routing_bench >/dev/null
out=$(mktemp)
"$dir/tests/bench/routing_bench" --benchmark_out="$out" --benchmark_out_format=json "$@"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
def best(prefix, key):
    runs = [b for b in data["benchmarks"]
            if b["name"].startswith(prefix) and b.get("run_type", "iteration") == "iteration"]
    if not runs:
        sys.exit("routing_bench.sh: no result for " + prefix)
    return min(b[key] * scale[b.get("time_unit", "ns")] for b in runs)
print("# lookup+pick+finish, 10k services / 100k endpoints, ns per request (cpu / real)")
for pattern in ("uniform:0", "zipf:1", "hot100:2"):
    for threads in (1, 2):
        name = "BM_LookupPick/%s/real_time/threads:%d" % (pattern, threads)
        label = "lookup_pick_ns_%s_%dthread%s" % (pattern.split(":")[0], threads, "s" if threads > 1 else "")
        print("%s: %.1f (real %.1f)" % (label, best(name, "cpu_time"), best(name, "real_time")))
print("# rebuild+publish, ms (cpu / real)")
print("rebuild_ms_real: %.1f" % (best("BM_RebuildPublish", "real_time") / 1e6))
print("lookup_pick_ns: %.1f" % best("BM_LookupPick/uniform:0/real_time/threads:1", "cpu_time"))
print("rebuild_ms: %.1f" % (best("BM_RebuildPublish", "cpu_time") / 1e6))
PY
rm -f "$out"
