#!/usr/bin/env python3
"""HTTP/2 reverse-proxy benchmark (issue 15): h2load (nghttp2-client) against sluice, nghttpx
(nghttp2-proxy), nginx (http2 downstream, grpc_pass = h2c upstream) and HAProxy (proto h2 both sides), each
one worker/thread, all in front of the same h2c backend (nghttpd serving a 100-byte file), in one run.

Per proxy and load (-c 16 -m 10, then -c 1 -m 1): req/s, p50/p99 latency (from h2load's per-request log),
and CPU per request (utime+stime) of the proxy, of the backend behind it and of h2load: all three share
the machine's cores, so a proxy that makes its neighbours work harder is slower for it. Last line:
`h2_ratio_vs_best_peer: X` (sluice's median req/s at -c 16 -m 10 over the best peer's median), after `h2_ratio_min_round` (the lowest
per-round ratio) and `h2_cpu_efficiency_vs_best_peer`; the proxies run in H2_BENCH_ROUNDS (3) interleaved
rounds. Before them, `h2_allocs_per_request: X`: sluice once more with the
counting shim preloaded (alloc_count.c, when built), a number the machine's load does not move."""
import argparse
import collections
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_bench import alloc_count_env, cpu_seconds, free_port, read_alloc_count, versus_best_peer  # noqa: E402

# One h2load run through one proxy: req/s (0 when it failed), latency percentiles in ms, and the CPU
# microseconds per request of the proxy, of the backend behind it and of h2load.
Run = collections.namedtuple("Run", "rps p50 p99 cpu_us backend_us client_us")


def sluice_config(port, bport):
    """sluice with one worker, serving `port`, its one cluster the h2c backend on `bport`."""
    return {"cluster": "default/default/default/local", "workers": 1, "log_level": "warn",
            "admin": {"enabled": False}, "access_log": {"enabled": False},
            "listeners": [{"name": "h2", "address": "127.0.0.1", "port": port, "role": "standalone"}],
            "services": [{"name": "app", "namespace": "default", "ports": [80],
                          "clusters": [{"cluster": "default/default/default/local",
                                        "endpoints": [f"127.0.0.1:{bport}"], "protocol": "h2c"}]}],
            "routes": [{"hosts": ["*"], "path": "/", "service": "app.default"}]}


def nghttpx_argv(port, bport, *extra):
    """nghttpx with one worker, h2c on `port`, h2 to the backend on `bport`. No access log, as for every other
    proxy here (an --accesslog-file, even /dev/null, costs nghttpx a write() per request)."""
    return ["nghttpx", f"--frontend=127.0.0.1,{port};no-tls", f"--backend=127.0.0.1,{bport};;proto=h2",
            "--workers=1", "--log-level=ERROR", "--conf=/dev/null", "--no-ocsp", "--errorlog-file=/dev/null",
            *extra]


def haproxy_config(port, bport):
    """HAProxy with one thread, h2 on `port` and to the backend on `bport`."""
    return f"""global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:{port} proto h2
  default_backend b
backend b
  server s1 127.0.0.1:{bport} proto h2
"""


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def h2load(url, n, c, m, log_path, seconds=None):
    """One h2load run: `n` requests, or as many as `seconds` allow (h2load -D) when given. Returns (ok, req/s,
    p50 ms, p99 ms, the summary line, requests done)."""
    amount = ["-D", str(seconds)] if seconds else ["-n", str(n)]
    r = subprocess.run(["h2load", *amount, "-c", str(c), "-m", str(m), "--log-file", log_path, url],
                       capture_output=True, text=True, timeout=600)
    line = next((x for x in r.stdout.splitlines() if x.startswith("requests:")), "")
    counts = dict((word, int(num)) for num, word in re.findall(r"(\d+) (total|succeeded|failed|errored|timeout)", line))
    done = counts.get("succeeded", 0)
    ok = done > 0 and counts.get("failed", 1) == 0 and counts.get("errored", 1) == 0 and counts.get("timeout", 1) == 0
    if not seconds:
        ok = ok and done == n
    rps = 0.0
    for x in r.stdout.splitlines():
        if x.startswith("finished in"):
            rps = float(x.split(",")[1].split()[0])
    durations = []
    with open(log_path) as f:
        for row in f:
            parts = row.split()
            if len(parts) >= 3:
                durations.append(int(parts[2]))  # microseconds
    durations.sort()
    pct = lambda q: durations[min(len(durations) - 1, int(q * len(durations)))] / 1000 if durations else 0
    return ok, rps, pct(0.5), pct(0.99), line, done


def count_allocations(args, sluice_bin, config, tmp, n=20000):
    """Allocations per request of sluice at -c 16 -m 10 (tests/bench/alloc_count.c preloaded), in a process of
    its own started after the measured runs; None when the shim is not built."""
    shim = os.path.abspath(os.path.join(args.build_dir, "tests", "bench", "liballoc_count.so"))
    if not os.path.exists(shim):
        return None
    count_file = os.path.join(tmp, "alloc-count")
    with open(config) as f:
        cfg = json.load(f)
    port = free_port()  # the measured sluice still holds its own
    cfg["listeners"][0]["port"] = port
    config = os.path.join(tmp, "sluice-allocs.json")
    with open(config, "w") as f:
        json.dump(cfg, f)
    proc = subprocess.Popen([sluice_bin, "-c", config], env=alloc_count_env(shim, count_file),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def total():
        return read_alloc_count(count_file)
    try:
        wait_port(port, proc)
        url = f"http://127.0.0.1:{port}/index.html"
        h2load(url, 5000, 16, 10, os.path.join(tmp, "allocs-warm.log"))  # pools and buffers reach their size
        before = total()
        ok, *_ = h2load(url, n, 16, 10, os.path.join(tmp, "allocs.log"))
        return (total() - before) / n if ok else None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("H2_BENCH_SECONDS", "5")),
                    help="length of each -c16 -m10 run (h2load -D); 0: --requests instead")
    ap.add_argument("--requests", type=int, default=int(os.environ.get("H2_BENCH_REQUESTS", "200000")))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("H2_BENCH_ROUNDS", "3")))
    ap.add_argument("--requests-serial", type=int, default=int(os.environ.get("H2_BENCH_REQUESTS_SERIAL", "10000")))
    args = ap.parse_args()
    sluice_bin = os.path.join(args.build_dir, "cli", "sluice")
    tmp = tempfile.mkdtemp(prefix="h2bench-")
    procs = []
    try:
        htdocs = os.path.join(tmp, "htdocs")
        os.mkdir(htdocs)
        with open(os.path.join(htdocs, "index.html"), "wb") as f:
            f.write(b"x" * 100)
        bport = free_port()
        backend = subprocess.Popen(["nghttpd", "--no-tls", "-d", htdocs, "-n", "2", str(bport)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(backend)
        wait_port(bport, backend)

        proxies = {}
        # sluice: one worker, the cluster spoken to over h2c.
        sport = free_port()
        with open(os.path.join(tmp, "sluice.json"), "w") as f:
            json.dump(sluice_config(sport, bport), f)
        proxies["sluice"] = (subprocess.Popen([sluice_bin, "-c", os.path.join(tmp, "sluice.json")],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), sport)
        if shutil.which("nghttpx") or os.path.exists("/usr/sbin/nghttpx"):
            xport = free_port()
            proxies["nghttpx"] = (subprocess.Popen(nghttpx_argv(xport, bport, f"--pid-file={tmp}/nghttpx.pid"),
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), xport)
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
            nport = free_port()
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""worker_processes 1; daemon off; error_log /dev/null crit; pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000; client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  upstream b {{ server 127.0.0.1:{bport}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nport} http2; location / {{ grpc_pass grpc://b; }} }} }}
""")
            proxies["nginx"] = (subprocess.Popen(["nginx", "-c", conf, "-p", tmp],
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), nport)
        if shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy"):
            hport = free_port()
            conf = os.path.join(tmp, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write(haproxy_config(hport, bport))
            proxies["haproxy"] = (subprocess.Popen(["haproxy", "-f", conf],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), hport)
        for name, (p, port) in proxies.items():
            procs.append(p)
            wait_port(port, p)

        # Interleaved rounds (every proxy once per round, in turn), so that a slow moment of the machine falls
        # on every proxy alike; the report gives medians and ranges, and the lowest per-round ratio.
        runs = {}  # (name, label) -> [Run], one per round
        # The -c16 -m10 runs last the same time for every proxy (a fixed count gave the fastest ones under 2 s,
        # where one slow moment of the machine moved a round by a third).
        loads = (("-c16 -m10", args.requests, 16, 10, args.seconds or None),
                 ("-c1 -m1", args.requests_serial, 1, 1, None))
        for name, (p, port) in proxies.items():
            h2load(f"http://127.0.0.1:{port}/index.html", 2000, 4, 10, os.path.join(tmp, "warm.log"))  # warm up
        for rnd in range(args.rounds):
            for name, (p, port) in proxies.items():
                url = f"http://127.0.0.1:{port}/index.html"
                for label, n, c, m, seconds in loads:
                    before, backend_before = cpu_seconds(p.pid), cpu_seconds(backend.pid)
                    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    ok, rps, p50, p99, line, done = h2load(url, n, c, m, os.path.join(tmp, f"{name}-{c}.log"),
                                                           seconds)
                    done = max(done, 1)  # the CPU is divided by the requests this run did (timed: not `n`)
                    cpu_us = (cpu_seconds(p.pid) - before) * 1e6 / done
                    backend_us = (cpu_seconds(backend.pid) - backend_before) * 1e6 / done
                    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    client_us = (client_after.ru_utime + client_after.ru_stime - client_before.ru_utime
                                 - client_before.ru_stime) * 1e6 / done
                    if not ok:
                        print(f"# {name} {label} round {rnd + 1} FAILED: {line}", flush=True)
                    runs.setdefault((name, label), []).append(
                        Run(rps if ok else 0.0, p50, p99, cpu_us, backend_us, client_us))
            print(f"# round {rnd + 1}/{args.rounds} done", flush=True)
        def med(rows, field):
            values = [getattr(r, field) for r in rows]
            return statistics.median(values) if values else 0.0
        print(f"{'proxy':8} {'load':12} {'req/s':>10} {'range':>15} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10} {'backend':>8} {'h2load':>8}")
        for name in proxies:
            for label, *_ in loads:
                rows = runs[(name, label)]
                rates = [r.rps for r in rows]
                print(f"{name:8} {label:12} {med(rows, 'rps'):10.0f} {f'{min(rates):.0f}-{max(rates):.0f}':>15} "
                      f"{med(rows, 'p50'):8.3f} {med(rows, 'p99'):8.3f} {med(rows, 'cpu_us'):10.1f} "
                      f"{med(rows, 'backend_us'):8.1f} {med(rows, 'client_us'):8.1f}", flush=True)
        allocs = count_allocations(args, sluice_bin, os.path.join(tmp, "sluice.json"), tmp)
        print(f"h2_allocs_per_request: {allocs:.2f}" if allocs is not None else "h2_allocs_per_request: n/a")
        key = "-c16 -m10"
        sluice_rows = runs.get(("sluice", key), [])
        versus = versus_best_peer([r.rps for r in sluice_rows],
                                  {name: [r.rps for r in runs[(name, key)]] for name in proxies if name != "sluice"})
        if versus:
            best_cpu = min(med(runs[(peer, key)], "cpu_us") for peer in versus.peers)
            print(f"h2_cpu_efficiency_vs_best_peer: {best_cpu / med(sluice_rows, 'cpu_us'):.2f}")
            print(f"h2_ratio_min_round: {versus.min_round:.2f}")
            print(f"h2_ratio_vs_best_peer: {versus.ratio:.2f}")
        else:
            print("h2_ratio_vs_best_peer: 0.00")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
