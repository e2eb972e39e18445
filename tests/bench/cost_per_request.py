#!/usr/bin/python3
"""Work per proxied request, counted rather than timed: sluice, nginx and HAProxy over the same backends.

usage: cost_per_request.py [--targets sluice nginx haproxy] [--conns 1 64] [--duration S] [--annotate N]

Why: this VM has no hardware counters and its two cores are shared, so wall clock and CPU time move with
whatever else runs. Two counts do not:
- Ir/request: instructions executed in user space (valgrind's callgrind), counters zeroed after a warm-up,
  dumped after a wrk run, divided by the requests wrk counted. Libraries (libc, OpenSSL) included, the
  kernel not.
- syscalls/request by kind: `perf trace -s` (or `strace -c -f` where perf cannot trace) attached to the
  natively running proxy (not under valgrind) during a second wrk run; calls and failed calls (EAGAIN) per
  request. At c64 these depend somewhat on how many connections each epoll_wait returns, so on load.

Each target runs twice (once under callgrind, once natively for the syscalls), over the same two
sluice-testbackend processes, with the bench templates (sluice.json.in, nginx.conf.in, haproxy.cfg.in).
--annotate N prints sluice's N costliest functions, inclusive, from the callgrind dump.
Uses proxy_bench.py's helpers; see tests/bench/README.md ("cost per request").
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_bench as pb  # noqa: E402

VALGRIND_START_S = 60


def launch(bench, target, wrapper):
    """Starts `target` (sluice, nginx or haproxy) behind `wrapper` (a list, may be empty); returns (proc, port)."""
    port = pb.free_port()
    values = bench.template_values(port)
    if target == "sluice":
        config = pb.fill_template("sluice.json.in", os.path.join(bench.dir, "sluice.json"), values)
        argv = [bench.args.sluice, "--config", config, "--workers", "1"]
    elif target == "nginx":
        config = pb.fill_template("nginx.conf.in", os.path.join(bench.dir, "nginx.conf"), values)
        argv = ["nginx", "-e", os.path.join(bench.dir, "nginx-error.log"), "-p", bench.dir, "-c", config]
    else:
        config = pb.fill_template("haproxy.cfg.in", os.path.join(bench.dir, "haproxy.cfg"), values)
        argv = [shutil.which("haproxy") or "haproxy", "-db", "-f", config]
    proc = bench.procs.start([*wrapper, *argv], os.path.join(bench.dir, f"{target}-{len(wrapper)}.log"))
    deadline = time.monotonic() + VALGRIND_START_S
    while True:
        try:
            pb.wait_listening(proc, port)
            break
        except pb.Fatal:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
    expected = {b"b1\n", b"b2\n"}
    error = pb.probe(port, expected, bench.args.path, bench.args.tls)
    if error:
        raise pb.Fatal(f"{target}: {error}")
    return proc, port


def callgrind_pass(bench, target, conns, duration, annotate):
    """Ir per request under callgrind; returns (Ir/request, requests, dump path)."""
    out = os.path.join(bench.dir, f"callgrind.{target}.c{conns}")
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    proc, port = launch(bench, target, wrapper)
    try:
        pb.run_wrk(port, conns, 2, None, bench.args.path, bench.args.tls)  # warm-up: pools, buffers, valgrind's caches
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True, timeout=60)
        result = pb.run_wrk(port, conns, duration, None, bench.args.path, bench.args.tls)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True, timeout=60)
    finally:
        bench.procs.stop(proc)
    dumps = sorted((p for p in os.listdir(bench.dir) if p.startswith(os.path.basename(out) + ".")),
                   key=lambda p: int(p.rsplit(".", 1)[1]) if p.rsplit(".", 1)[1].isdigit() else 0)
    # The first numbered dump is the one asked for after the run (the last one is written at exit).
    dump = os.path.join(bench.dir, dumps[0]) if dumps else out
    total = 0
    with open(dump) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                total = int(m.group(1))
    if result["errors"]:
        raise pb.Fatal(f"{target}: {result['errors']} errors under callgrind")
    return total / max(result["requests"], 1), result["requests"], dump


def syscall_pass(bench, target, conns, duration):
    """Syscalls per request by kind, natively; returns ({name: (calls/req, errors/req)}, requests, rps)."""
    proc, port = launch(bench, target, [])
    trace_out = os.path.join(bench.dir, f"trace.{target}.c{conns}")
    try:
        pb.run_wrk(port, conns, 1, None, bench.args.path, bench.args.tls)  # warm-up
        use_perf = shutil.which("perf") is not None and os.geteuid() == 0
        if use_perf:
            argv = ["perf", "trace", "-s", "-p", str(proc.pid), "-o", trace_out]
        else:
            argv = ["strace", "-c", "-f", "-p", str(proc.pid), "-o", trace_out]
        tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached
        result = pb.run_wrk(port, conns, duration, None, bench.args.path, bench.args.tls)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    finally:
        bench.procs.stop(proc)
    counts = {}
    with open(trace_out) as f:
        text = f.read()
    if use_perf:
        # "   epoll_wait   1234   0   12.3 ..." under each thread's header: summed over threads.
        for m in re.finditer(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+", text, re.M):
            calls, errors = counts.get(m.group(1), (0, 0))
            counts[m.group(1)] = (calls + int(m.group(2)), errors + int(m.group(3)))
    else:
        # "% time  seconds  usecs/call  calls  errors syscall"
        for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d*)\s*([a-z_0-9]+)\s*$", text, re.M):
            if m.group(3) != "total":
                counts[m.group(3)] = (int(m.group(1)), int(m.group(2) or 0))
    n = max(result["requests"], 1)
    return {k: (c / n, e / n) for k, (c, e) in counts.items()}, result["requests"], result["rps"]


def annotate_top(dump, n):
    done = subprocess.run(["callgrind_annotate", "--inclusive=yes", dump], capture_output=True, text=True,
                          timeout=120)
    lines = [l for l in done.stdout.splitlines() if re.match(r"^\s*[\d,]+ \(", l)]
    return lines[:n]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", "build-bench"))
    parser.add_argument("--targets", nargs="+", default=["sluice", "nginx", "haproxy"])
    parser.add_argument("--conns", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--duration", type=int, default=5, help="seconds of each counted wrk run")
    parser.add_argument("--annotate", type=int, default=0, help="print sluice's N costliest functions")
    parser.add_argument("--no-syscalls", action="store_true")
    parser.add_argument("--tls", action="store_true", help="HTTPS downstream, as proxy-tls")
    parser.add_argument("--upstream-tls", action="store_true",
                        help="mutual TLS to TLS backends, as proxy-mtls (use with --tls)")
    parser.add_argument("--path", default="/", help="what wrk asks for (proxy-large: /bytes/1048576)")
    parser.add_argument("--no-callgrind", action="store_true")
    cli = parser.parse_args()
    sys.argv = [sys.argv[0], "--build-dir", cli.build_dir]
    args = pb.parse_args()
    args.workers, args.tls, args.upstream_tls, args.path = 1, cli.tls, cli.upstream_tls, cli.path
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None and not (tool != "wrk" and cli.no_callgrind):
            print(f"cost_per_request: {tool} is not installed", file=sys.stderr)
            return 1
    targets = [t for t in cli.targets if t not in args.missing]

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    workdir = tempfile.mkdtemp(prefix="sluice-cost-")
    bench = pb.Bench(args, workdir)
    failed = False
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print(f"# cost per request: wrk -t1, {cli.duration}s counted per run, conns {cli.conns}, "
              f"load average {load}", flush=True)
        bench.start_backends()
        rows = []
        for conns in cli.conns:
            for target in targets:
                row = {"target": target, "conns": conns}
                try:
                    if not cli.no_callgrind:
                        print(f"# callgrind {target} c{conns}", file=sys.stderr, flush=True)
                        row["ir"], row["cg_requests"], dump = callgrind_pass(bench, target, conns, cli.duration,
                                                                             cli.annotate)
                        if cli.annotate and target == "sluice":
                            row["top"] = annotate_top(dump, cli.annotate)
                    if not cli.no_syscalls:
                        print(f"# syscalls {target} c{conns}", file=sys.stderr, flush=True)
                        row["sys"], row["sys_requests"], row["rps"] = syscall_pass(bench, target, conns,
                                                                                   cli.duration)
                except (pb.Fatal, subprocess.SubprocessError, OSError) as e:
                    print(f"{target} c{conns}: FAILED: {e}", file=sys.stderr, flush=True)
                    failed = True
                rows.append(row)
        print(f"{'target':<8} {'conns':>5} {'Ir/req':>9} {'syscalls/req':>12}  by kind (calls/req, EAGAIN etc. "
              f"in brackets)")
        for row in rows:
            ir = f"{row['ir']:.0f}" if "ir" in row else "-"
            sys_total = f"{sum(c for c, _ in row['sys'].values()):.2f}" if "sys" in row else "-"
            kinds = ""
            if "sys" in row:
                items = sorted(row["sys"].items(), key=lambda kv: -kv[1][0])
                kinds = " ".join(f"{k}={c:.2f}" + (f"[{e:.2f}]" if e >= 0.005 else "")
                                 for k, (c, e) in items if c >= 0.005)
            print(f"{row['target']:<8} {row['conns']:>5} {ir:>9} {sys_total:>12}  {kinds}")
        for row in rows:
            if "top" in row:
                print(f"# sluice c{row['conns']}: costliest functions, inclusive Ir over "
                      f"{row['cg_requests']} requests")
                for line in row["top"]:
                    print("  " + line.strip())
    except KeyboardInterrupt:
        print("cost_per_request: interrupted", file=sys.stderr)
        failed = True
    finally:
        bench.procs.stop_all()
        if failed or cli.annotate:
            print(f"cost_per_request: dumps, logs and configs in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
