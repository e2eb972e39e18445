#!/bin/sh
# Routing micro-benchmarks: builds tests/bench/routing_bench in $BUILD_DIR (default build-bench, with
# -Dbench=true) and runs it. Ends with the lines the issue asks for:
#   lookup_pick_ns: X        route lookup + endpoint pick + finish, 10k services, one thread
#   lookup_pick_ns_2threads: X   the same per thread with two threads
#   rebuild_ms: X            build + publish of a 10k-service / 100k-endpoint snapshot
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
def find(prefix):
    for b in data["benchmarks"]:
        if b["name"].startswith(prefix) and b.get("run_type", "iteration") == "iteration":
            return b
    return None
one = find("BM_LookupPick/10000/real_time/threads:1")
two = find("BM_LookupPick/10000/real_time/threads:2")
rebuild = find("BM_RebuildPublish")
def ns(b):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["real_time"] * scale
print("lookup_pick_ns_2threads: %.1f" % ns(two))
print("lookup_pick_ns: %.1f" % ns(one))
print("rebuild_ms: %.1f" % (ns(rebuild) / 1e6))
PY
rm -f "$out"
