#!/usr/bin/python3
"""Flood benchmark: a normal client's latency with and without thousands of idle and slowloris connections
open on sluice, and sluice's memory per 1,000 idle connections.

One sluice worker in front of one sluice-testbackend, on 127.0.0.1. Steps:
1. baseline: sluice's RSS once it has served a request; wrk (-t1, -c1 and -cBENCH_CONNS) p50/p99;
2. BENCH_IDLE connections that send nothing: RSS again -> `rss_per_1000_idle_kib`;
3. BENCH_SLOW slowloris connections (a partial head, then one byte every 2 s from a thread);
4. wrk again while all of them are open; then the flood is closed and sluice must have dropped them all.
The head deadline (`timeouts.request_header`) is raised to 5 minutes here so that the flood stays open for
the whole measurement (at the 10 s default sluice closes each of them within 10 s, which
tests/integration/test_flood.py checks).

Prints `name: value` lines. Environment: BENCH_DURATION (seconds per wrk run, default 5), BENCH_IDLE
(default 2500), BENCH_SLOW (default 2500), BENCH_CONNS (the loaded wrk run's connections, default 16),
SLUICE_BIN, BACKEND_BIN. Exit status 0 when every step ran and wrk saw no errors.
"""
import argparse
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_bench import (ADDRESS, Fatal, Processes, free_port, rss_kib, run_wrk,  # noqa: E402
                         start_with_port_file, wait_listening)

TRICKLE_INTERVAL_S = 2.0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, n)
    if hard != resource.RLIM_INFINITY and hard < want:
        hard = want  # root may raise the hard limit too
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def active_connections(admin_port):
    try:
        with socket.create_connection((ADDRESS, admin_port), timeout=5) as s:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("sluice_downstream_connections_active "):
            return int(float(line.split()[1]))
    return None


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise Fatal(f"timed out waiting for {what}")
        time.sleep(0.1)


def open_connections(port, n, first_bytes=b""):
    socks = []
    for _ in range(n):
        s = socket.create_connection((ADDRESS, port), timeout=10)
        if first_bytes:
            s.sendall(first_bytes)
        socks.append(s)
    return socks


class Trickle:
    """Sends one header byte on every slowloris connection each TRICKLE_INTERVAL_S until stopped."""

    def __init__(self, socks):
        self.socks = socks
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(TRICKLE_INTERVAL_S):
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()


def wrk_line(name, result):
    return (f"{name}_p50_us: {result['p50']:.0f}\n{name}_p99_us: {result['p99']:.0f}\n"
            f"{name}_rps: {result['rps']:.0f}\n{name}_errors: {result['errors']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build-bench")
    args = parser.parse_args()
    duration = int(os.environ.get("BENCH_DURATION", "5"))
    n_idle = int(os.environ.get("BENCH_IDLE", "2500"))
    n_slow = int(os.environ.get("BENCH_SLOW", "2500"))
    conns = int(os.environ.get("BENCH_CONNS", "16"))
    sluice = os.environ.get("SLUICE_BIN") or os.path.join(args.build_dir, "cli", "sluice")
    backend = os.environ.get("BACKEND_BIN") or os.path.join(args.build_dir, "tests", "backend", "sluice-testbackend")
    for path in (sluice, backend):
        if not os.access(path, os.X_OK):
            print(f"flood_bench: {path} is not built", file=sys.stderr)
            return 1
    nofile = 2 * (n_idle + n_slow) + 1024
    raise_nofile(nofile)  # ours (the flood's sockets), inherited by sluice

    workdir = tempfile.mkdtemp(prefix="sluice-flood-")
    procs = Processes()
    flood = []
    trickle = None
    ok = False
    try:
        port_file = os.path.join(workdir, "b1.port")
        _, backend_port = start_with_port_file(
            procs, [backend, "--listen", f"{ADDRESS}:0", "--name", "b1", "--port-file", port_file], port_file,
            os.path.join(workdir, "b1.log"), "backend")
        port, admin_port = free_port(), free_port()
        cfg = {
            "workers": 1,
            "admin": {"enabled": True, "address": ADDRESS, "port": admin_port},
            "access_log": {"enabled": False},
            "timeouts": {"request_header": "5m"},
            "listeners": [{"name": "http", "address": ADDRESS, "port": port, "role": "standalone"}],
            "services": [{"name": "backend", "namespace": "bench",
                          "clusters": [{"cluster": "default/default/default/local",
                                        "endpoints": [f"{ADDRESS}:{backend_port}"]}]}],
            "routes": [{"hosts": ["*"], "path": "/", "service": "backend.bench"}],
        }
        config = os.path.join(workdir, "sluice.json")
        with open(config, "w") as f:
            json.dump(cfg, f)
        proxy = procs.start([sluice, "--config", config], os.path.join(workdir, "sluice.log"))
        wait_listening(proxy, port)
        print(f"# flood benchmark: wrk -t1 {duration}s per run, -c1 and -c{conns}; {n_idle} idle + {n_slow} "
              f"slowloris connections; cpus {os.cpu_count()}", flush=True)

        quiet = run_wrk(port, 1, duration, None)
        loaded = run_wrk(port, conns, duration, None)
        wait_for(lambda: active_connections(admin_port) == 0, 30, "wrk's connections to close")
        base_rss = rss_kib(proxy.pid)

        flood += open_connections(port, n_idle)
        wait_for(lambda: active_connections(admin_port) == n_idle, 60, f"{n_idle} idle connections accepted")
        time.sleep(1.0)  # let the allocator settle before reading RSS (a measurement, not a synchronisation)
        idle_rss = rss_kib(proxy.pid)

        slow = open_connections(port, n_slow, b"GET / HTTP/1.1\r\nHost: bench\r\n")
        flood += slow
        trickle = Trickle(slow)
        wait_for(lambda: active_connections(admin_port) == n_idle + n_slow, 60, "the slowloris connections")
        flood_rss = rss_kib(proxy.pid)

        quiet_flood = run_wrk(port, 1, duration, None)
        loaded_flood = run_wrk(port, conns, duration, None)
        trickle.close()
        trickle = None
        for s in flood:
            s.close()
        flood = []
        wait_for(lambda: active_connections(admin_port) == 0, 60, "the flood's connections to close")

        print(wrk_line("c1_no_flood", quiet))
        print(wrk_line("c1_flood", quiet_flood))
        print(wrk_line(f"c{conns}_no_flood", loaded))
        print(wrk_line(f"c{conns}_flood", loaded_flood))
        print(f"c1_p99_flood_over_no_flood: {quiet_flood['p99'] / quiet['p99']:.2f}")
        print(f"base_rss_kib: {base_rss}")
        print(f"idle_{n_idle}_rss_kib: {idle_rss}")
        print(f"flood_{n_idle + n_slow}_rss_kib: {flood_rss}")
        print(f"rss_per_1000_idle_kib: {(idle_rss - base_rss) * 1000 / n_idle:.0f}")
        print(f"rss_per_1000_flood_kib: {(flood_rss - base_rss) * 1000 / (n_idle + n_slow):.0f}")
        ok = all(r["errors"] == 0 for r in (quiet, loaded, quiet_flood, loaded_flood))
    except Fatal as e:
        print(f"flood_bench: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("flood_bench: interrupted", file=sys.stderr)
    finally:
        if trickle:
            trickle.close()
        for s in flood:
            s.close()
        procs.stop_all()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"flood_bench: logs kept in {workdir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
