#!/usr/bin/python3
"""WebSocket benchmark: message round trips through sluice, nginx and HAProxy, same run.

Two sluice-wsbench echo servers stand behind each proxy (one worker/thread each, the proxy
benchmark's configs; nginx with the Upgrade/Connection headers of its WebSocket guide). For each
connection count, sluice-wsbench load keeps N WebSocket connections in a ping-pong loop (send a
binary message, wait for its echo) for BENCH_DURATION seconds. The targets are measured in
interleaved rounds (direct, sluice, nginx, haproxy, then again), so that a slow moment of the
machine falls on every target alike.

Prints per target and connection count: messages/s (median and range over rounds), round-trip
p50/p99 (median over rounds) and the proxy's CPU per message; then the last line
`ws_ratio_vs_best_peer: X` = sluice's median msgs/s over the best peer's at the largest
connection count, and `ws_ratio_min_round: X` = the lowest per-round ratio (a lead is claimed only
when that one is >= 1.0 too).

Environment: BENCH_DURATION (seconds per run, default 5), BENCH_CONNS (default "1 64"),
BENCH_ROUNDS (default 3), BENCH_SIZE (message bytes, default 64), SLUICE_BIN, WSBENCH_BIN.
Exit status 0 when every target was measured without errors.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

import proxy_bench as pb

PEERS = ("nginx", "haproxy")
TARGETS = ("direct", "sluice", "nginx", "haproxy")
TEMPLATES = {"sluice": "sluice.json.in", "nginx": "nginx_ws.conf.in", "haproxy": "haproxy.cfg.in"}


def parse_load(text):
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            values[name] = float(value)
    if "msgs_per_s" not in values:
        raise pb.Fatal(f"unexpected sluice-wsbench output:\n{text}")
    return values


class WsBench:
    def __init__(self, args, workdir):
        self.args = args
        self.dir = workdir
        self.procs = pb.Processes()
        self.backends = []  # ports
        self.rounds = {}  # (target, conns) -> [result per round]
        self.failed = {}

    def start_backends(self):
        for name in ("b1", "b2"):
            port_file = os.path.join(self.dir, f"{name}.port")
            _, port = pb.start_with_port_file(
                self.procs, [self.args.wsbench, "echo", "--listen", f"{pb.ADDRESS}:0", "--port-file", port_file],
                port_file, os.path.join(self.dir, f"{name}.log"), f"echo server {name}")
            self.backends.append(port)

    def launch(self, target):
        if target == "direct":
            return None, self.backends[0]
        port = pb.free_port()
        values = pb.template_values(self.dir, port, self.backends)  # one worker each, plain TCP
        out = os.path.join(self.dir, TEMPLATES[target].removesuffix(".in"))
        config = pb.fill_template(TEMPLATES[target], out, values)
        if target == "sluice":
            argv = [self.args.sluice, "--config", config, "--workers", "1"]
        elif target == "nginx":
            argv = ["nginx", "-e", os.path.join(self.dir, "nginx-error.log"), "-p", self.dir, "-c", config]
        else:
            argv = ["haproxy", "-db", "-f", config]
        proc = self.procs.start(argv, os.path.join(self.dir, f"{target}.log"))
        pb.wait_listening(proc, port)
        return proc, port

    def load(self, port, conns, duration):
        argv = [self.args.wsbench, "load", "--target", f"{pb.ADDRESS}:{port}", "--conns", str(conns),
                "--duration", str(duration), "--size", str(self.args.size)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
        result = parse_load(done.stdout)
        if done.returncode != 0 or result.get("errors"):
            raise pb.Fatal(f"load run failed ({done.returncode}): {done.stdout.strip()} {done.stderr.strip()[:400]}")
        return result

    def measure(self, target):
        proc = None
        try:
            proc, port = self.launch(target)
            self.load(port, max(self.args.conns), 1)  # warm-up, not recorded
            for conns in self.args.conns:
                before = pb.cpu_seconds(proc.pid) if proc else None
                result = self.load(port, conns, self.args.duration)
                if before is not None and result["messages"]:
                    result["cpu_us"] = (pb.cpu_seconds(proc.pid) - before) * 1e6 / result["messages"]
                self.rounds.setdefault((target, conns), []).append(result)
                if proc is not None and proc.poll() is not None:
                    raise pb.Fatal(f"exited during the run ({proc.returncode}):\n{pb.log_tail(proc)}")
        except (pb.Fatal, subprocess.SubprocessError, OSError) as e:
            self.failed[target] = str(e)
            print(f"{target}: FAILED: {e}", file=sys.stderr, flush=True)
        finally:
            if proc is not None:
                self.procs.stop(proc)

    def median(self, target, conns, key):
        values = [r[key] for r in self.rounds.get((target, conns), []) if key in r]
        return statistics.median(values) if values else None

    def report(self):
        print(f"{'target':<9} {'conns':>5} {'msgs/s':>9} {'range':>17} {'p50':>7} {'p99':>7} {'cpu/msg':>8}")
        for target in TARGETS:
            for conns in self.args.conns:
                runs = self.rounds.get((target, conns))
                if not runs:
                    print(f"{target:<9} {conns:>5} {'failed':>9}")
                    continue
                rates = [r["msgs_per_s"] for r in runs]
                cpu = self.median(target, conns, "cpu_us")
                print(f"{target:<9} {conns:>5} {statistics.median(rates):>9.0f} "
                      f"{f'{min(rates):.0f}-{max(rates):.0f}':>17} "
                      f"{self.median(target, conns, 'rtt_p50_us'):>5.0f}us "
                      f"{self.median(target, conns, 'rtt_p99_us'):>5.0f}us "
                      f"{(f'{cpu:.1f}us' if cpu is not None else '-'):>8}")
        big = max(self.args.conns)
        cpu_sluice = self.median("sluice", big, "cpu_us")
        cpu_peers = [c for c in (self.median(p, big, "cpu_us") for p in PEERS) if c]
        if cpu_sluice and cpu_peers:
            print(f"ws_cpu_efficiency_vs_best_peer: {min(cpu_peers) / cpu_sluice:.2f}")
        versus = pb.versus_best_peer([r["msgs_per_s"] for r in self.rounds.get(("sluice", big), [])],
                                     {p: [r["msgs_per_s"] for r in self.rounds.get((p, big), [])] for p in PEERS})
        # A failed load run records nothing; sluice at a median of 0 msgs/s (next to no echoes) is no
        # measurement either.
        if versus and versus.sluice > 0:
            print(f"ws_ratio_min_round: {versus.min_round:.2f}")
            print(f"ws_ratio_vs_best_peer: {versus.ratio:.2f}")
        else:
            print("ws_ratio_vs_best_peer: n/a (missing measurements)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build-bench")
    args = parser.parse_args()
    args.duration = int(os.environ.get("BENCH_DURATION", "5"))
    args.conns = [int(c) for c in os.environ.get("BENCH_CONNS", "1 64").split()]
    args.rounds = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
    args.size = int(os.environ.get("BENCH_SIZE", "64"))
    args.sluice = os.environ.get("SLUICE_BIN") or os.path.join(args.build_dir, "cli", "sluice")
    args.wsbench = os.environ.get("WSBENCH_BIN") or os.path.join(args.build_dir, "tests", "bench", "sluice-wsbench")
    return args


def main():
    args = parse_args()
    for path in (args.sluice, args.wsbench):
        if not os.access(path, os.X_OK):
            print(f"ws_bench: {path} is not built", file=sys.stderr)
            return 1
    for tool in ("nginx", "haproxy"):
        if shutil.which(tool) is None:
            print(f"ws_bench: {tool} is not installed", file=sys.stderr)
            return 1

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    workdir = tempfile.mkdtemp(prefix="sluice-wsbench-")
    bench = WsBench(args, workdir)
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print(f"# websocket benchmark: {args.size} B messages, ping-pong per connection, {args.duration}s per run, "
              f"conns {args.conns}, rounds {args.rounds}, cpus {os.cpu_count()}, load average {load}", flush=True)
        bench.start_backends()
        for _ in range(args.rounds):
            for target in TARGETS:
                print(f"# measuring {target}", file=sys.stderr, flush=True)
                bench.measure(target)
        bench.report()
    except pb.Fatal as e:
        print(f"ws_bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ws_bench: interrupted", file=sys.stderr)
        return 1
    finally:
        bench.procs.stop_all()
        if bench.failed:
            print(f"ws_bench: logs and configs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not bench.failed else 1


if __name__ == "__main__":
    sys.exit(main())
