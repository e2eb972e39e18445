"""Discovery benchmark: event received -> routable latency with N services, and memory held.

Starts the API stand-in (tests/k8s), loads N Services with EndpointSlices through its control port,
runs tests/discovery/discovery_probe --routable (the sink builds and publishes a routing snapshot, as
a proxy's does: embed/sources.cpp, embed/inputs.cpp) with coalescing off, then changes one EndpointSlice
at a time and records:
- in-process latency: first event of the burst -> snapshot published (the probe's "latency" lines);
- end-to-end latency: control-port write returned -> model line printed (includes the stand-in and HTTPS).
Then RSS of the probe holding --mem-services services with --mem-endpoints endpoints in all.
Ends with `event_to_routable_ms_median: X`.

    /usr/bin/python3 tests/bench/discovery_bench.py [--services 1000] [--changes 200]
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))
sys.path.insert(0, os.path.join(ROOT, "tests", "discovery"))

from probe import Probe  # noqa: E402
from standin import StandIn  # noqa: E402

NS = "bench"


def objects(n, endpoints_per_service):
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    for i in range(n):
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": NS},
                      "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 80}]}})
        items.append(slice_of(i, endpoints_per_service))
    return items


def slice_of(i, count, generation=0):
    eps = [{"addresses": [f"10.{(i >> 8) & 255}.{i & 255}.{(k + generation) % 250 + 1}"], "conditions": {"ready": True}}
           for k in range(count)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-abc", "namespace": NS, "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80}], "endpoints": eps}


def load(api, items, batch=2000):
    for k in range(0, len(items), batch):
        api.load(items[k:k + batch])


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def latency_run(n, changes):
    with StandIn(history=max(10000, 4 * changes)) as api:
        load(api, objects(n, 2))
        with Probe("--kubeconfig", api.kubeconfig, "--compact", "--routable", "--coalesce-ms", "0",
                   "--sidecar-listener", "outbound") as probe:
            probe.wait_model(lambda m: m["services"] >= n and m["endpoints"] >= 2 * n, timeout=60,
                             what=f"{n} services")
            in_process, end_to_end = [], []
            for c in range(changes):
                i = (c * 7919) % n
                mark = probe.mark()
                api.load([slice_of(i, 3, generation=c + 1)])
                done = time.time()
                m = probe.wait_model(lambda m: m["endpoints"] == 2 * n + 1, after=mark, timeout=10, what="change")
                end_to_end.append(max(0.0, m["t_us"] / 1e6 - done) * 1000)
                with probe.cond:
                    lat = [l for l in probe.lines[mark:] if l["kind"] == "latency"]
                    while not lat:
                        probe.cond.wait(1)
                        lat = [l for l in probe.lines[mark:] if l["kind"] == "latency"]
                in_process.append(lat[-1]["us"] / 1000.0)
                mark = probe.mark()
                api.load([slice_of(i, 2, generation=c + 1)])  # back to 2 endpoints for the next round
                probe.wait_model(lambda m: m["endpoints"] == 2 * n, after=mark, timeout=10, what="revert")
            return in_process, end_to_end


def memory_run(services, endpoints):
    per = max(1, endpoints // services)
    with StandIn(history=1000) as api:
        load(api, objects(services, per))
        with Probe("--kubeconfig", api.kubeconfig, "--compact", "--routable", "--sidecar-listener", "outbound") as probe:
            before = rss_kib(probe.proc.pid)
            probe.wait_model(lambda m: m["services"] >= services and m["endpoints"] >= services * per, timeout=180,
                             what=f"{services} services")
            time.sleep(1)
            return before, rss_kib(probe.proc.pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--mem-services", type=int, default=10000)
    ap.add_argument("--mem-endpoints", type=int, default=100000)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()

    in_process, end_to_end = latency_run(args.services, args.changes)
    print(f"services: {args.services}, changes: {args.changes}, coalescing window: 0 ms")
    print(f"event_to_routable_ms (in process): median {statistics.median(in_process):.3f} "
          f"p99 {percentile(in_process, 99):.3f} max {max(in_process):.3f}")
    print(f"write_to_published_ms (end to end via the stand-in): median {statistics.median(end_to_end):.3f} "
          f"p99 {percentile(end_to_end, 99):.3f}")
    if not args.skip_memory:
        before, after = memory_run(args.mem_services, args.mem_endpoints)
        print(f"memory: rss {after / 1024:.1f} MiB holding {args.mem_services} services / {args.mem_endpoints} "
              f"endpoints (store + model + routing snapshot; {before / 1024:.1f} MiB at start)")
    print(f"event_to_routable_ms_median: {statistics.median(in_process):.3f}")


if __name__ == "__main__":
    main()
