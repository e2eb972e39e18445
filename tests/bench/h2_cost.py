#!/usr/bin/python3
"""HTTP/2 work per request, counted rather than timed: sluice, nghttpx and HAProxy as h2 reverse proxies to one
h2c backend (nghttpd serving 100 bytes), one worker/thread each, driven by `h2load -c16 -m10`.

usage: h2_cost.py [--build-dir DIR] [--targets sluice nghttpx haproxy] [--requests N] [--conns C] [--streams M]

The h2 counterpart of cost_per_request.py (same reasons: no hardware counters on this VM, two shared cores):
- Ir/request: user-space instructions (callgrind; instrumentation switched on and counters zeroed after a
  warm-up, dumped after N requests), libraries included, the kernel not.
- syscalls/request by kind: `strace -c -f` on every thread of the natively running proxy, during a second run.
- allocs/request (sluice only, with tests/bench/alloc_count.c preloaded): h2_bench.py's count_allocations.
See tests/bench/README.md, `h2`.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2_bench import (count_allocations, h2load, haproxy_config, nghttpx_argv, sluice_config,  # noqa: E402
                      wait_port)
from proxy_bench import free_port  # noqa: E402


def sluice_argv(args, tmp, port, bport):
    path = os.path.join(tmp, f"sluice-{port}.json")
    with open(path, "w") as f:
        json.dump(sluice_config(port, bport), f)
    return [os.path.join(args.build_dir, "cli", "sluice"), "-c", path]


def haproxy_argv(tmp, port, bport):
    conf = os.path.join(tmp, f"haproxy-{port}.cfg")
    with open(conf, "w") as f:
        f.write(haproxy_config(port, bport))
    return ["haproxy", "-f", conf]


def start(args, tmp, target, bport, wrapper=()):
    port = free_port()
    # nghttpx in one process: callgrind and strace then follow the process that does the work.
    argv = {"sluice": lambda: sluice_argv(args, tmp, port, bport),
            "nghttpx": lambda: nghttpx_argv(port, bport, "--single-process"),
            "haproxy": lambda: haproxy_argv(tmp, port, bport)}[target]()
    proc = subprocess.Popen([*wrapper, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, timeout=60 if wrapper else 10)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def instructions(args, tmp, target, bport):
    out = os.path.join(tmp, f"callgrind.{target}")
    proc, port = start(args, tmp, target, bport,
                       ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"])
    url = f"http://127.0.0.1:{port}/index.html"
    try:
        h2load(url, 1000, 16, 10, os.path.join(tmp, "warm.log"))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
        ok, _, _, _, line, _ = h2load(url, args.requests, args.conns, args.streams, os.path.join(tmp, "ir.log"))
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
        time.sleep(0.5)
    finally:
        stop(proc)
    if not ok:
        raise RuntimeError(f"{target}: {line}")
    total = 0
    for dump in glob.glob(out + ".*"):  # the dump (one file per thread with --separate-threads)
        with open(dump, errors="replace") as f:
            total += sum(int(x.split()[1]) for x in f if x.startswith("totals:"))
    return total / args.requests


def syscalls(args, tmp, target, bport):
    proc, port = start(args, tmp, target, bport)
    url = f"http://127.0.0.1:{port}/index.html"
    log = os.path.join(tmp, f"strace.{target}")
    try:
        h2load(url, 1000, 16, 10, os.path.join(tmp, "warm.log"))
        tids = [a for t in os.listdir(f"/proc/{proc.pid}/task") for a in ("-p", t)]
        tracer = subprocess.Popen(["strace", "-c", "-f", *tids, "-o", log],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        ok, _, _, _, line, _ = h2load(url, args.requests, args.conns, args.streams, os.path.join(tmp, "sys.log"))
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
    finally:
        stop(proc)
    if not ok:
        raise RuntimeError(f"{target}: {line}")
    calls = {}
    with open(log) as f:
        for row in f:
            parts = row.split()
            if len(parts) >= 5 and re.fullmatch(r"[\d.]+", parts[0]) and parts[-1] != "total":
                calls[parts[-1]] = int(parts[3])
    return sum(calls.values()) / args.requests, {k: v / args.requests for k, v in calls.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build-bench")
    ap.add_argument("--targets", nargs="+", default=["sluice", "nghttpx", "haproxy"])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=16, help="h2load -c (16; 1 with --streams 1 for latency's path)")
    ap.add_argument("--streams", type=int, default=10, help="h2load -m")
    args = ap.parse_args()
    for tool in ("h2load", "nghttpd", "valgrind", "strace"):
        if not shutil.which(tool):
            print(f"h2_cost: {tool} is not installed", file=sys.stderr)
            return 1
    tmp = tempfile.mkdtemp(prefix="h2cost-")
    htdocs = os.path.join(tmp, "htdocs")
    os.mkdir(htdocs)
    with open(os.path.join(htdocs, "index.html"), "wb") as f:
        f.write(b"x" * 100)
    bport = free_port()
    backend = subprocess.Popen(["nghttpd", "--no-tls", "-d", htdocs, "-n", "2", str(bport)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(bport, backend)
        print(f"# h2 cost per request: h2load -n {args.requests} -c{args.conns} -m{args.streams}, one worker/thread each")
        print(f"{'target':9} {'Ir/req':>8} {'syscalls/req':>13}  top syscalls per request")
        for target in args.targets:
            if target != "sluice" and not (shutil.which(target) or os.path.exists(f"/usr/sbin/{target}")):
                print(f"{target:9} not installed")
                continue
            ir = instructions(args, tmp, target, bport)
            total, kinds = syscalls(args, tmp, target, bport)
            top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:4])
            print(f"{target:9} {ir:8.0f} {total:13.2f}  {top}", flush=True)
        allocs = count_allocations(args, os.path.join(args.build_dir, "cli", "sluice"),
                                   sluice_argv(args, tmp, free_port(), bport)[2], tmp, n=args.requests)
        print(f"h2_allocs_per_request: {allocs:.2f}" if allocs is not None else "h2_allocs_per_request: n/a")
    finally:
        stop(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
