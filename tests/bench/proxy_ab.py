#!/usr/bin/python3
"""Proxy A/B: interleaved wrk runs of several proxies over the same two backends.

usage: proxy_ab.py [--rounds N] [--duration S] [--conns C] NAME=TARGET ...
TARGET is a sluice binary (two copies of it = a binary-only A/B), or `nginx` or `haproxy`.

Each round runs every target once, in the order given (A, B, A, B...), so that whatever else runs on the
machine hits both sides alike. Per run it prints req/s and p50, the CPU per request of the proxy, of the
two backends and of wrk, context switches per request (proxy, backends), and `foreign`: the CPUs' worth of
time used by other processes during the run (from /proc/stat), so that a run disturbed by a build or by
someone else's benchmark is seen as such. The summary gives medians over every run and over the quiet
ones (foreign < 0.15). Loopback only; bounded by rounds x targets x (duration + 2 s).
Uses proxy_bench.py's helpers (start, probe, wrk); see tests/bench/README.md.
"""
import argparse
import glob
import os
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_bench as pb  # noqa: E402

QUIET_FOREIGN = 0.15  # CPUs' worth of other processes' time below which a run counts as quiet


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of `pid` so far."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/status"):
        with open(path) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        total += int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])
    return total


def machine_busy_seconds():
    """CPU time the whole machine spent neither idle nor in iowait so far, in seconds."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def wrk_children_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def measure(bench, args, target):
    """One run of `target`; returns a dict of its numbers."""
    if target in pb.PEERS:
        proc, port = bench.launch(target)
    else:
        args.sluice = target
        proc, port = bench.launch("sluice")
    try:
        time.sleep(0.2)
        # Bodies other than "/"'s are all alike (proxy_bench's probe then checks the status only).
        expected = {b"b1\n", b"b2\n"} if args.path == "/" else None
        error = pb.probe(port, expected, args.path, args.tls)
        if error:
            raise pb.Fatal(error)
        pb.run_wrk(port, args.conns, 1, None, args.path, args.tls)  # warm-up
        backends = [p.pid for p, _ in bench.backends]
        before = (pb.cpu_seconds(proc.pid), sum(pb.cpu_seconds(p) for p in backends), wrk_children_seconds(),
                  context_switches(proc.pid), sum(context_switches(p) for p in backends), machine_busy_seconds(),
                  time.monotonic())
        out = pb.run_wrk(port, args.conns, args.duration, None, args.path, args.tls)
        after = (pb.cpu_seconds(proc.pid), sum(pb.cpu_seconds(p) for p in backends), wrk_children_seconds(),
                 context_switches(proc.pid), sum(context_switches(p) for p in backends), machine_busy_seconds(),
                 time.monotonic())
        if proc.poll() is not None:
            raise pb.Fatal(f"exited during the run:\n{pb.log_tail(proc)}")
    finally:
        bench.procs.stop(proc)
    n = max(out["requests"], 1)
    d = [a - b for a, b in zip(after, before)]
    ours = d[0] + d[1] + d[2]
    return {"rps": out["rps"], "p50": out["p50"], "errors": out["errors"],
            "cpu_us": d[0] * 1e6 / n, "backends_us": d[1] * 1e6 / n, "wrk_us": d[2] * 1e6 / n,
            "ctx_proxy": d[3] / n, "ctx_backends": d[4] / n, "foreign": (d[5] - ours) / d[6]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--path", default="/", help="what wrk asks for (proxy-large: /bytes/1048576)")
    parser.add_argument("--workers", type=int, default=1, help="sluice --workers, nginx workers, HAProxy threads")
    parser.add_argument("--tls", action="store_true", help="HTTPS downstream, as proxy-tls")
    parser.add_argument("--upstream-tls", action="store_true",
                        help="mutual TLS to TLS backends (nginx), as proxy-mtls (use with --tls)")
    parser.add_argument("--build-dir", default="build-bench", help="where sluice-testbackend is")
    parser.add_argument("targets", nargs="+", metavar="NAME=TARGET")
    args = parser.parse_args()
    targets = []
    for spec in args.targets:
        name, sep, target = spec.partition("=")
        if not sep or not target:
            parser.error(f"{spec}: expected NAME=TARGET")
        if target not in pb.PEERS and not os.access(target, os.X_OK):
            parser.error(f"{target}: not an executable (nor nginx/haproxy)")
        targets.append((name, target))
    args.backend = os.path.join(args.build_dir, "tests", "backend", "sluice-testbackend")
    if not os.access(args.backend, os.X_OK):
        parser.error(f"{args.backend} is not built")
    workdir = tempfile.mkdtemp(prefix="sluice-ab-")
    bench = pb.Bench(args, workdir)
    results = {name: [] for name, _ in targets}
    failed = False
    try:
        bench.start_backends()
        for r in range(args.rounds):
            for name, target in targets:
                try:
                    m = measure(bench, args, target)
                except (pb.Fatal, OSError) as e:
                    print(f"r{r} {name}: FAILED: {e}", flush=True)
                    failed = True
                    continue
                results[name].append(m)
                print(f"r{r} {name:10s} {m['rps']:8.0f} req/s  p50 {m['p50']:7.0f}us  err {m['errors']}  "
                      f"cpu/req {m['cpu_us']:5.1f}us (backends {m['backends_us']:5.1f}, wrk {m['wrk_us']:5.1f})  "
                      f"ctxsw/req {m['ctx_proxy']:.2f} (backends {m['ctx_backends']:.2f})  "
                      f"foreign {m['foreign']:4.2f}", flush=True)
    finally:
        bench.procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"# medians over {args.rounds} rounds, c{args.conns}, {args.duration}s runs (quiet: foreign < {QUIET_FOREIGN})")
    for name, runs in results.items():
        if not runs:
            continue
        quiet = [m for m in runs if m["foreign"] < QUIET_FOREIGN]
        line = (f"{name:10s} all({len(runs)}): {median(m['rps'] for m in runs):8.0f} req/s "
                f"cpu/req {median(m['cpu_us'] for m in runs):5.1f}us")
        if quiet:
            line += (f"   quiet({len(quiet)}): {median(m['rps'] for m in quiet):8.0f} req/s "
                     f"cpu/req {median(m['cpu_us'] for m in quiet):5.1f}us")
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
