"""The long form of the chaos suite (`tests/bench/run.sh failover`, `chaos.py bench`): every topology and
scenario at c16 plus the flap at c1 and c64, through sluice, nginx and HAProxy in turn over the same
topology, case by case (so whatever else loads the machine hits the three alike).

Prints a table per target (progress goes to stderr), then as its last two lines

    failover_failed_requests: N     sluice's failed requests, summed over every run
    failover_p99_vs_nginx: X        sluice's p99 latency over the flap runs' fault windows divided by
                                    nginx's (the flap runs' fault-window latencies pooled)

About 9 minutes on a 2-core machine with the default timings. Knobs: --targets / FAILOVER_TARGETS
(default "sluice,nginx,haproxy"), --scale / FAILOVER_SCALE (multiplies every duration, default 1).
"""
import os
import pathlib
import shutil
import sys
import tempfile
import time

import chaos_proxies
from chaos_load import read_records
from chaos_procs import binaries
from chaos_run import Case, fault_latencies, percentile, run_case

# (topology, policy, scenario, conns). Every topology meets every scenario once at c16 and both policies;
# the flap, the scenario the p99 comparison is about, also runs at c1 and c64.
MATRIX = [
    ("3x2", "aa", "flap", 1), ("3x2", "aa", "flap", 16), ("3x2", "aa", "flap", 64),
    ("2x4", "fo", "flap", 16), ("4x1gw", "aa", "flap", 16),
    ("3x2", "fo", "503", 16), ("2x4", "aa", "503", 16), ("4x1gw", "fo", "503", 16),
    ("3x2", "aa", "blackhole", 16), ("2x4", "fo", "blackhole", 16), ("4x1gw", "aa", "blackhole", 16),
    ("3x2", "fo", "noaccept", 16), ("2x4", "aa", "noaccept", 16), ("4x1gw", "fo", "noaccept", 16),
    ("3x2", "fo", "lastone", 16), ("2x4", "aa", "lastone", 16), ("4x1gw", "fo", "lastone", 16),
]
# seconds: warm-up, fault window, recovery tail. The flap's window is two 1.5 s down / 1.5 s up cycles;
# the black hole's outlasts the 15 s response timeout.
TIMING = {"flap": (1.5, 6.0, 2.0), "blackhole": (1.5, 16.0, 1.0)}
DEFAULT_TIMING = (1.5, 3.0, 1.5)


def add_arguments(parser):
    parser.add_argument("--targets", default=os.environ.get("FAILOVER_TARGETS", ",".join(chaos_proxies.TARGETS)),
                        help="comma-separated, of sluice,nginx,haproxy")
    parser.add_argument("--scale", type=float, default=float(os.environ.get("FAILOVER_SCALE", "1")),
                        help="multiplies every duration (0.5 for a smoke run)")
    parser.add_argument("--build-dir", help="meson build dir (default $SLUICE_BUILD_DIR or build)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs, records, /stats)")


def cases(targets, scale):
    for shape, policy, scenario, conns in MATRIX:
        warmup, fault, recovery = (t * scale for t in TIMING.get(scenario, DEFAULT_TIMING))
        for target in targets:
            yield Case(target, shape, policy, scenario, conns, warmup=warmup, fault=fault, recovery=recovery,
                       flap_down=1.5 * scale, flap_up=1.5 * scale)


def flap_latencies(report):
    """Durations of the requests in flight during the report's fault window (from its records file)."""
    lo, hi = report["fault_window"]
    return fault_latencies(read_records(report["records_file"]), lo, hi)


def fmt_ms(ms):
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.1f}ms"


def print_table(target, reports):
    print(f"## {target}")
    print(f"{'topology':<9} {'scenario':<9} {'conns':>5} {'requests':>9} {'failed':>7} {'p99 fault':>10} "
          f"{'failback':>9}  failures")
    for r in reports:
        fb = "-" if r["failback_s"] is None else f"{r['failback_s']:.2f}s"
        missed = sum(t is None for t in r["failback_samples"])
        if missed:
            fb += f" ({missed} miss)"
        kinds = " ".join(f"{k}={n}" for k, n in r["failures"].items())
        print(f"{r['topology']:<9} {r['scenario']:<9} {r['conns']:>5} {r['requests']:>9} {r['failed']:>7} "
              f"{fmt_ms(r['p99_fault_ms']):>10} {fb:>9}  {kinds}".rstrip())
    print(f"total: {sum(r['requests'] for r in reports)} requests, {sum(r['failed'] for r in reports)} failed")
    print()


def main(args):
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    sluice_bin, backend_bin = binaries(args.build_dir)
    if not pathlib.Path(backend_bin).is_file():
        print(f"chaos bench: no test backend at {backend_bin}", file=sys.stderr)
        return 1
    for t in list(targets):
        why = chaos_proxies.available(t, sluice_bin) if t in chaos_proxies.TARGETS else "unknown target"
        if why:
            print(f"chaos bench: skipping {t}: {why}", file=sys.stderr)
            targets.remove(t)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="sluice-failover-"))
    reports = {t: [] for t in targets}
    flap = {t: [] for t in targets}
    errors = []
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"# failover benchmark: targets {', '.join(targets)}, {len(MATRIX)} cases each, scale {args.scale}, "
          f"cpus {os.cpu_count()}, load average {load}, work dir {workdir}", flush=True)
    began = time.monotonic()
    try:
        for case in cases(targets, args.scale):
            print(f"# {case.label} ...", file=sys.stderr, flush=True)
            try:
                r = run_case(case, workdir, sluice_bin, backend_bin)
            except (RuntimeError, OSError) as e:
                errors.append(f"{case.label}: {e}")
                print(f"#   FAILED to run: {e}", file=sys.stderr, flush=True)
                continue
            reports[case.target].append(r)
            if case.scenario == "flap":
                flap[case.target].extend(flap_latencies(r))
            print(f"#   {r['requests']} requests, {r['failed']} failed, p99 {fmt_ms(r['p99_fault_ms'])}",
                  file=sys.stderr, flush=True)
    finally:
        keep = args.keep or errors
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"# {time.monotonic() - began:.0f}s")
    for t in targets:
        print_table(t, reports[t])
    for e in errors:
        print(f"error: {e}")
    if keep:
        print(f"# files kept in {workdir}")
    summary(reports, flap, errors)
    return 1 if errors else 0


def summary(reports, flap, errors):
    """The last two lines, exactly `failover_failed_requests: N` and `failover_p99_vs_nginx: X` (a note
    about runs that could not be carried out goes on the line before)."""
    if any(e.startswith("sluice ") for e in errors):
        print("# sluice: some runs could not be carried out (errors above); their requests are not counted")
    if reports.get("sluice"):
        print(f"failover_failed_requests: {sum(r['failed'] for r in reports['sluice'])}")
    else:
        print("failover_failed_requests: n/a (sluice not measured)")
    ours, theirs = percentile(flap.get("sluice", []), 99), percentile(flap.get("nginx", []), 99)
    if ours is not None and theirs:
        print(f"failover_p99_vs_nginx: {ours / theirs:.2f}")
    else:
        print("failover_p99_vs_nginx: n/a (sluice or nginx not measured)")
