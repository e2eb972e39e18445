#!/usr/bin/env python3
"""`sluice sync` numbers (a benchmark, never a test: it reports, it does not pass or fail).

  SLUICE_BUILD_DIR=$PWD/build /usr/bin/python3 tests/sync/bench_sync.py [--services 300] [--rounds 20]

Three API stand-ins (tests/k8s); cluster-1 and cluster-3 export N services; then:
  1. start: sync started -> /ready (first full resync) and -> every import in place; writes per verb
  2. idle: three resyncs (resync_interval 1 s) with nothing changed: writes (expected 0), CPU used
  3. latency: an export created / deleted in cluster-3 -> cluster-2's import shows / drops its
     endpoint (polled every 5 ms), median and max over the rounds
  4. memory: sync's RSS with N services
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sync_harness import Cluster, Sync, endpoint, namespace, service, service_export, wait_for  # noqa: E402


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cpu, rss


def total_writes(clusters):
    out = {}
    for c in clusters:
        for k, v in c.api.state()["counters"].items():
            if k in ("create", "update", "delete"):
                out[k] = out.get(k, 0) + v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    n = args.services
    clusters = [Cluster(f"cluster-{i}") for i in (1, 2, 3)]
    c1, c2, c3 = clusters
    sync = None
    try:
        names = [f"svc-{i:04d}" for i in range(n)]
        for c in (c1, c3):
            items = []
            for name in names:
                items += [service(name), service_export(name)]
            c.api.load(items)
        base = total_writes(clusters)
        sync = Sync(clusters, resync="1s")
        t0 = time.monotonic()
        sync.start(wait_ready=False)
        wait_for(lambda: sync.admin("/ready")[0] == 200, timeout=120, what="ready")
        t_ready = time.monotonic() - t0
        last = names[-1]
        wait_for(lambda: c2.endpoints_of(last) == [endpoint("cluster-1"), endpoint("cluster-3")], timeout=300,
                 what="the last import")
        # Every service: an import in each of the 3 clusters (create + status) and 2 export statuses.
        expected = {"create": 3 * n, "update": 5 * n}
        wait_for(lambda: {k: v - base.get(k, 0) for k, v in total_writes(clusters).items()
                          if k != "delete"} == expected, timeout=300, what=f"{expected} writes")
        t_all = time.monotonic() - t0
        start_writes = {k: v - base.get(k, 0) for k, v in total_writes(clusters).items()}
        print(f"services={n} exports={2 * n} members=3")
        print(f"start: ready after {t_ready:.2f} s, every import and status written after {t_all:.2f} s; "
              f"writes {start_writes}")

        before = total_writes(clusters)
        cpu0, _ = proc_stat(sync.proc.pid)
        resyncs = sync.stat("sluice_sync_resyncs_total")
        t1 = time.monotonic()
        wait_for(lambda: sync.stat("sluice_sync_resyncs_total") >= resyncs + 3, timeout=30, what="3 resyncs")
        idle_s = time.monotonic() - t1
        cpu1, rss = proc_stat(sync.proc.pid)
        idle = {k: v - before.get(k, 0) for k, v in total_writes(clusters).items()}
        print(f"idle: 3 full resyncs of {n} keys in {idle_s:.2f} s: writes {idle}, "
              f"CPU {1000 * (cpu1 - cpu0) / 3:.1f} ms per resync")

        add, remove = [], []
        for _ in range(args.rounds):
            t = time.monotonic()
            c3.delete("ServiceExport", name=names[0])
            while c2.endpoints_of(names[0]) != [endpoint("cluster-1")]:
                time.sleep(0.005)
            remove.append(time.monotonic() - t)
            t = time.monotonic()
            c3.create(service_export(names[0]))
            while c2.endpoints_of(names[0]) != [endpoint("cluster-1"), endpoint("cluster-3")]:
                time.sleep(0.005)
            add.append(time.monotonic() - t)
        ms = lambda xs: f"median {1000 * statistics.median(xs):.1f} ms, max {1000 * max(xs):.1f} ms"
        print(f"latency (API write returned -> other member's import changed, {args.rounds} rounds): "
              f"export created {ms(add)}; export deleted {ms(remove)}")
        print(f"memory: sync RSS {rss / 1024:.1f} MiB with {n} services")
    finally:
        if sync:
            sync.stop()
        for c in clusters:
            c.stop()


if __name__ == "__main__":
    main()
