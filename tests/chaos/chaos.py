#!/usr/bin/python3
"""Chaos driver: proves (or disproves) failover at sluice's default settings, with nginx and HAProxy over
the same topology for comparison. See tests/chaos/README.md.

    chaos.py run --scenario flap --topology 3x2 --policy aa --conns 16 [--target sluice] [timing options]
    chaos.py bench [--targets sluice,nginx,haproxy]     the long form (tests/bench/run.sh failover)
    chaos.py list                                       topologies, policies, scenarios

Only loopback addresses are used: the proxy on 127.0.0.1, cluster N's backends on 127.0.N.1.
"""
import argparse
import json
import pathlib
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import chaos_bench  # noqa: E402
from chaos_procs import binaries  # noqa: E402
from chaos_proxies import TARGETS, available  # noqa: E402
from chaos_run import Case, format_report, run_case, split_ok  # noqa: E402
from chaos_scenarios import DEFAULT_WINDOW, SCENARIOS  # noqa: E402
from chaos_topology import POLICIES, SHAPES  # noqa: E402


def interrupt_as_keyboard():
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the runs' finally blocks end every process."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def cmd_list(_args):
    for name, (per, weights) in SHAPES.items():
        print(f"topology {name}: {len(weights)} clusters x {per} endpoints, ActiveActive weights "
              f"{'/'.join(map(str, weights))}")
    print(f"policies: {', '.join(f'{k} ({v})' for k, v in POLICIES.items())}")
    print(f"scenarios: {', '.join(SCENARIOS)}")
    print(f"targets: {', '.join(TARGETS)}")
    return 0


def cmd_run(args):
    sluice_bin, backend_bin = binaries(args.build_dir)
    if not pathlib.Path(backend_bin).is_file():
        print(f"chaos: no test backend at {backend_bin} (build it, or set SLUICE_BUILD_DIR)", file=sys.stderr)
        return 2
    why = available(args.target, sluice_bin)
    if why:
        print(f"chaos: {args.target} is not available: {why}", file=sys.stderr)
        return 2
    fault = args.fault if args.fault is not None else DEFAULT_WINDOW[args.scenario]
    case = Case(args.target, args.topology, args.policy, args.scenario, args.conns, warmup=args.warmup,
                fault=fault, recovery=args.recovery, flap_down=args.down, flap_up=args.up,
                max_requests=args.max_requests)
    workdir = pathlib.Path(args.workdir) if args.workdir else pathlib.Path(tempfile.mkdtemp(prefix="sluice-chaos-"))
    report = run_case(case, workdir, sluice_bin, backend_bin)
    print(json.dumps(report, indent=2) if args.json else format_report(report), flush=True)
    ok = report["failed"] == 0 and split_ok(report) and not report["leftover_pids"]
    if ok and not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"chaos: files kept in {workdir}", file=sys.stderr)
    return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="one scenario on one topology through one proxy")
    run.add_argument("--target", choices=TARGETS, default="sluice")
    run.add_argument("--topology", choices=list(SHAPES), default="3x2")
    run.add_argument("--policy", choices=list(POLICIES), default="aa")
    run.add_argument("--scenario", choices=SCENARIOS, default="flap")
    run.add_argument("--conns", type=int, default=16)
    run.add_argument("--warmup", type=float, default=2.0, help="s of load before the fault (the split)")
    run.add_argument("--fault", type=float, help="s of fault window (default: flap 6, blackhole 16, others 4)")
    run.add_argument("--recovery", type=float, default=2.0, help="s of load after the fault")
    run.add_argument("--down", type=float, default=1.5, help="flap: s down per cycle")
    run.add_argument("--up", type=float, default=1.5, help="flap: s up per cycle")
    run.add_argument("--max-requests", type=int, default=2_000_000)
    run.add_argument("--build-dir", help="meson build dir (default $SLUICE_BUILD_DIR or build)")
    run.add_argument("--workdir", help="keep configs, logs, request records and /stats here")
    run.add_argument("--keep", action="store_true", help="keep the temporary work dir even on success")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="the long form: every topology and scenario, sluice vs nginx vs HAProxy")
    chaos_bench.add_arguments(bench)
    bench.set_defaults(func=chaos_bench.main)

    sub.add_parser("list", help="what can be run").set_defaults(func=cmd_list)

    args = parser.parse_args(argv)
    if getattr(args, "conns", 1) < 1 or (getattr(args, "fault", None) or 0) > 300 or getattr(args, "warmup", 1) > 300:
        parser.error("--conns must be >= 1; --fault and --warmup at most 300 s")
    interrupt_as_keyboard()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
