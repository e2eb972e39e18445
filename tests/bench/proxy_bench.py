#!/usr/bin/python3
"""Proxy benchmark: wrk against the backend directly, sluice, nginx and HAProxy.

Every proxy runs one worker/thread over the same two sluice-testbackend
processes on 127.0.0.1. Prints a table (target, conns, req/s, p50, p99,
errors), the idle RSS of each proxy, and last `ratio_vs_best_peer: X.XX` =
sluice c64 req/s / max(nginx c64, haproxy c64). Called by tests/bench/run.sh;
see tests/bench/README.md.

Environment: BENCH_DURATION (seconds per wrk run, default 10), BENCH_CONNS
(default "1 64"), BENCH_ROUNDS (default 1; the best run of each is kept),
BENCH_PIN (1: proxy on CPU 0, wrk and backends on CPU 1), SLUICE_BIN,
BACKEND_BIN (override the binaries found in the build directory).
Exit status: 0 when all four targets were measured without errors, else 1.
"""
import argparse
import collections
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ADDRESS = "127.0.0.1"
START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 5
PEERS = ("nginx", "haproxy")


class Fatal(Exception):
    pass


class Processes:
    """Every process the benchmark starts; all are stopped on exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, cpu=None, env=None):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        log = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            self.stop(proc)


def log_tail(proc, lines=15):
    try:
        with open(proc.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def wait_listening(proc, port):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fatal(f"exited with status {proc.returncode}:\n{log_tail(proc)}")
        try:
            socket.create_connection((ADDRESS, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Fatal(f"not listening on port {port} after {START_TIMEOUT_S}s:\n{log_tail(proc)}")


def template_values(workdir, port, backend_ports, workers=1):
    """The values every template (sluice.json.in, nginx*.conf.in, haproxy.cfg.in) takes, plain TCP."""
    return {"DIR": workdir, "ADDRESS": ADDRESS, "PORT": port,
            "BACKEND1": f"{ADDRESS}:{backend_ports[0]}", "BACKEND2": f"{ADDRESS}:{backend_ports[1]}",
            "WORKERS": workers, "NGINX_MASTER": "on" if workers > 1 else "off",
            "SLUICE_TLS": "", "NGINX_SSL": "", "HAPROXY_SSL": "",
            "SLUICE_UPSTREAM_TLS": "", "NGINX_UPSTREAM_SCHEME": "http", "NGINX_UPSTREAM_SSL": "",
            "HAPROXY_UPSTREAM_SSL": ""}


def start_with_port_file(procs, argv, port_file, log_path, what, cpu=None):
    """Starts `argv`, a server that writes its bound port to `port_file` once listening (FILE.tmp renamed,
    as sluice-testbackend and sluice-wsbench do); returns (process, port)."""
    proc = procs.start(argv, log_path, cpu)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Fatal(f"{what} did not start:\n{log_tail(proc)}")
        time.sleep(0.02)
    with open(port_file) as f:
        return proc, int(f.read().split()[0])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def probe(port, expected_bodies, path="/", tls=False):
    """Sends a few requests on one keep-alive connection; returns an error or None. With a `path` other
    than "/" every answer has the same body: only the status is checked."""
    seen = set()
    if tls:
        conn = http.client.HTTPSConnection(ADDRESS, port, timeout=5, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(ADDRESS, port, timeout=5)
    try:
        for _ in range(6):
            conn.request("GET", path, headers={"Host": "bench.test"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                return f"answered {response.status}: {body[:200]!r}"
            seen.add(body if path == "/" else None)
    except (OSError, http.client.HTTPException) as e:
        return f"request failed: {e!r}"
    finally:
        conn.close()
    if path == "/" and seen != expected_bodies:
        return f"answers {sorted(seen)} instead of {sorted(expected_bodies)}"
    return None


UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1000000.0}


def parse_wrk(text):
    def latency(percent):
        m = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * UNIT_US[m.group(2)] if m else None

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    requests = re.search(r"^\s*(\d+) requests in", text, re.M)
    if not rps or not requests:
        raise Fatal(f"unexpected wrk output:\n{text}")
    return {"rps": float(rps.group(1)), "requests": int(requests.group(1)), "p50": latency(50),
            "p99": latency(99), "errors": errors}


def cpu_seconds(pid):
    """User and system CPU time of process `pid` (all its threads) and of its children, recursively (nginx's
    workers when it runs a master), so far, in seconds."""
    def ticks(p):
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total = int(fields[11]) + int(fields[12])
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                children = f.read().split()
        except OSError:
            children = []
        for child in children:
            try:
                total += ticks(int(child))
            except OSError:
                pass  # gone meanwhile
        return total

    return ticks(pid) / os.sysconf("SC_CLK_TCK")


# sluice against the best of its peers (versus_best_peer): the peers that count, sluice's median, that over
# the best peer's median, and the lowest per-round ratio.
VersusBestPeer = collections.namedtuple("VersusBestPeer", "peers sluice ratio min_round")


def versus_best_peer(sluice, peers):
    """From interleaved rounds (every target once per round, in turn, so that a slow moment of the machine
    falls on all alike): sluice's result of each round (req/s, msgs/s) against each peer's ({name: [result
    per round]}), as a VersusBestPeer, or None when sluice has no round or no peer counts. A peer whose median
    is 0 failed and does not count. A round's ratio is sluice's result over the best peer's of that round
    (matched by position; a round where no peer has a result above 0 is left out); a lead is claimed only
    when the lowest is >= 1.0 too."""
    counted = {name: rounds for name, rounds in peers.items() if rounds and statistics.median(rounds) > 0}
    if not sluice or not counted:
        return None
    per_round = []
    for i, value in enumerate(sluice):
        best = max((rounds[i] for rounds in counted.values() if i < len(rounds)), default=0)
        if best > 0:
            per_round.append(value / best)
    median = statistics.median(sluice)
    best_median = max(statistics.median(rounds) for rounds in counted.values())
    return VersusBestPeer(list(counted), median, median / best_median, min(per_round))


def run_wrk(port, conns, duration, cpu, path="/", tls=False):
    scheme = "https" if tls else "http"
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", f"{scheme}://{ADDRESS}:{port}{path}"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    if done.returncode != 0:
        raise Fatal(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def fill_template(name, out_path, values):
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def set_affinity(pid, cpu):
    subprocess.run(["taskset", "-pc", str(cpu), str(pid)], check=True, capture_output=True)


def alloc_count_env(shim, count_file):
    """The environment of a process that counts its allocations (alloc_count.c preloaded) into count_file."""
    return dict(os.environ, LD_PRELOAD=shim, SLUICE_ALLOC_COUNT_FILE=count_file)


def read_alloc_count(count_file):
    """The total a counting process has written (see alloc_count_env), fresh: the shim writes every 50 ms."""
    time.sleep(0.2)
    with open(count_file) as f:
        return int(f.read())


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.dir = workdir
        self.procs = Processes()
        self.pin = os.environ.get("BENCH_PIN") == "1" and (os.cpu_count() or 1) >= 2
        self.proxy_cpu = 0 if self.pin else None
        self.load_cpu = 1 if self.pin else None
        self.backends = []  # (proc, port)
        self.results = {}  # (target, conns) -> best wrk result
        self.idle_rss = {}
        self.failed = {}  # target -> reason

    def start_backends(self):
        if self.args.upstream_tls:
            return self.start_tls_backends()
        for name in ("b1", "b2"):
            port_file = os.path.join(self.dir, f"{name}.port")
            self.backends.append(start_with_port_file(
                self.procs, [self.args.backend, "--listen", f"{ADDRESS}:0", "--name", name, "--port-file", port_file],
                port_file, os.path.join(self.dir, f"{name}.log"), f"backend {name}", self.load_cpu))

    def start_tls_backends(self):
        """proxy-mtls: the backends are nginx TLS servers (nginx_tls_backend.conf.in), one process each."""
        cert, key, _ = self.certificate()
        for name in ("b1", "b2"):
            port = free_port()
            values = {"DIR": self.dir, "ADDRESS": ADDRESS, "BPORT": port, "NAME": name, "CERT": cert, "KEY": key}
            config = fill_template("nginx_tls_backend.conf.in", os.path.join(self.dir, f"{name}-nginx.conf"), values)
            proc = self.procs.start(["nginx", "-e", os.path.join(self.dir, f"{name}-nginx-error.log"), "-p", self.dir,
                                     "-c", config], os.path.join(self.dir, f"{name}.log"), self.load_cpu)
            wait_listening(proc, port)
            self.backends.append((proc, port))

    def template_values(self, port):
        values = template_values(self.dir, port, [p for _, p in self.backends], self.args.workers)
        if self.args.tls:
            # The same certificate, key and TLS 1.3 defaults for every proxy.
            cert, key, both = self.certificate()
            values["SLUICE_TLS"] = f', "tls": {{ "cert_file": "{cert}", "key_file": "{key}" }}'
            values["NGINX_SSL"] = f" ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key}"
            values["HAPROXY_SSL"] = f" ssl crt {both}"
        if self.args.upstream_tls:
            # Mutual TLS to the backends, as between a sidecar and a remote gateway: each proxy verifies the
            # backend's certificate and name and presents the same certificate as its client certificate;
            # sessions are resumed (nginx's proxy_ssl_session_reuse and HAProxy's defaults are on).
            cert, key, both = self.certificate()
            values["SLUICE_UPSTREAM_TLS"] = (f',\n          "tls": {{ "ca_file": "{cert}", "cert_file": "{cert}", '
                                             f'"key_file": "{key}", "server_name": "bench.test" }}')
            values["NGINX_UPSTREAM_SCHEME"] = "https"
            values["NGINX_UPSTREAM_SSL"] = (f"\n      proxy_ssl_trusted_certificate {cert};\n      proxy_ssl_verify on;"
                                            f"\n      proxy_ssl_name bench.test;\n      proxy_ssl_server_name on;"
                                            f"\n      proxy_ssl_certificate {cert};\n      proxy_ssl_certificate_key {key};"
                                            f"\n      proxy_ssl_session_reuse on;")
            values["HAPROXY_UPSTREAM_SSL"] = f" ssl verify required ca-file {cert} crt {both} sni str(bench.test) verifyhost bench.test"
        return values

    def certificate(self):
        cert, key, both = (os.path.join(self.dir, n) for n in ("bench.crt", "bench.key", "bench.pem"))
        if not os.path.exists(both):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=bench.test",
                            "-addext", "subjectAltName=DNS:bench.test"],
                           check=True, capture_output=True, timeout=30)
            with open(both, "w") as f:
                f.write(open(cert).read() + open(key).read())
        return cert, key, both

    def launch(self, target):
        """Starts one target; returns (process or None, port)."""
        if target == "direct":
            proc, port = self.backends[0]
            if self.pin:
                set_affinity(proc.pid, self.proxy_cpu)
            return None, port
        port = free_port()
        values = self.template_values(port)
        log = os.path.join(self.dir, f"{target}.log")
        if target == "sluice":
            config = fill_template("sluice.json.in", os.path.join(self.dir, "sluice.json"), values)
            check = subprocess.run([self.args.sluice, "--config", config, "--check"],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode != 0:
                raise Fatal(f"config rejected by --check:\n{check.stdout}{check.stderr}")
            argv = [self.args.sluice, "--config", config, "--workers", str(self.args.workers)]
        elif target == "nginx":
            config = fill_template("nginx.conf.in", os.path.join(self.dir, "nginx.conf"), values)
            argv = ["nginx", "-e", os.path.join(self.dir, "nginx-error.log"), "-p", self.dir, "-c", config]
        else:
            config = fill_template("haproxy.cfg.in", os.path.join(self.dir, "haproxy.cfg"), values)
            argv = ["haproxy", "-db", "-f", config]
        proc = self.procs.start(argv, log, self.proxy_cpu)
        wait_listening(proc, port)
        return proc, port

    def finish(self, target, proc):
        if target == "direct":
            if self.pin:
                set_affinity(self.backends[0][0].pid, self.load_cpu)
        elif proc is not None:
            self.procs.stop(proc)

    def measure(self, target):
        proc = None
        try:
            proc, port = self.launch(target)
            if proc is not None:
                time.sleep(0.2)  # let start-up settle before reading the idle RSS
                self.idle_rss.setdefault(target, rss_kib(proc.pid))
            expected = {b"b1\n"} if target == "direct" else {b"b1\n", b"b2\n"}
            # `direct` talks to a backend as it is: plain HTTP, or TLS (without a client certificate) in proxy-mtls.
            tls = self.args.upstream_tls if target == "direct" else self.args.tls
            error = probe(port, expected, self.args.path, tls)
            if error:
                raise Fatal(error)
            if self.args.duration >= 5:
                run_wrk(port, max(self.args.conns), 1, self.load_cpu, self.args.path, tls)  # warm-up, not recorded
            for conns in self.args.conns:
                # The proxy's CPU time per request: steadier than req/s on a shared machine, since time
                # the proxy spends descheduled does not count.
                before = cpu_seconds(proc.pid) if proc is not None else None
                result = run_wrk(port, conns, self.args.duration, self.load_cpu, self.args.path, tls)
                if before is not None and result["requests"]:
                    result["cpu_us"] = (cpu_seconds(proc.pid) - before) * 1e6 / result["requests"]
                if result["errors"]:
                    # Fast error answers would inflate req/s: keep the row, fail the run.
                    self.failed[target] = f"{result['errors']} errors at c{conns}"
                    print(f"{target}: {self.failed[target]}", file=sys.stderr, flush=True)
                best = self.results.get((target, conns))
                if best is None or result["rps"] > best["rps"]:
                    self.results[(target, conns)] = result
                if proc is not None and proc.poll() is not None:
                    raise Fatal(f"exited during the run ({proc.returncode}):\n{log_tail(proc)}")
        except (Fatal, subprocess.SubprocessError, OSError) as e:
            self.failed[target] = str(e)
            print(f"{target}: FAILED: {e}", file=sys.stderr, flush=True)
        finally:
            self.finish(target, proc)

    def count_allocations(self):
        """allocs_per_request: sluice once more, with the counting shim preloaded (alloc_count.c), in a run
        of its own so the measured runs above pay nothing for it. Keep-alive both sides, no body: the
        steady state the issue's target is about. Returns None when the shim is not built."""
        shim = os.path.abspath(os.path.join(self.args.build_dir, "tests", "bench", "liballoc_count.so"))
        if not os.path.exists(shim) or "sluice" in self.args.missing:
            return None
        count_file = os.path.join(self.dir, "alloc-count")
        port = free_port()
        config = fill_template("sluice.json.in", os.path.join(self.dir, "sluice-allocs.json"), self.template_values(port))
        proc = self.procs.start([self.args.sluice, "--config", config, "--workers", "1"],
                                os.path.join(self.dir, "sluice-allocs.log"), env=alloc_count_env(shim, count_file))

        def total():
            return read_alloc_count(count_file)

        try:
            wait_listening(proc, port)
            conns = max(self.args.conns)
            run_wrk(port, conns, 1, self.load_cpu, self.args.path, self.args.tls)  # warm-up: pools, caches and buffers reach their size
            before = total()
            result = run_wrk(port, conns, 2, self.load_cpu, self.args.path, self.args.tls)
            return (total() - before) / max(result["requests"], 1)
        except (Fatal, OSError, ValueError) as e:
            print(f"allocs_per_request: not measured: {e}", file=sys.stderr)
            return None
        finally:
            self.procs.stop(proc)

    def report(self, targets):
        def fmt_us(value):
            if value is None:
                return "-"
            return f"{value / 1000:.2f}ms" if value >= 1000 else f"{value:.0f}us"

        print(f"{'target':<9} {'conns':>5} {'req/s':>10} {'p50':>9} {'p99':>9} {'errors':>7} {'cpu/req':>8}")
        for target in targets:
            for conns in self.args.conns:
                r = self.results.get((target, conns))
                if r is None:
                    reason = "not built" if target in self.args.missing else "failed"
                    print(f"{target:<9} {conns:>5} {'-':>10} {'-':>9} {'-':>9} {reason:>7}")
                    continue
                cpu = f"{r['cpu_us']:.1f}us" if "cpu_us" in r else "-"
                print(f"{target:<9} {conns:>5} {r['rps']:>10.0f} {fmt_us(r['p50']):>9} "
                      f"{fmt_us(r['p99']):>9} {r['errors']:>7} {cpu:>8}")
        small = min(self.args.conns)
        p50 = " ".join(f"{t}={self.results[(t, small)]['p50']:.0f}" for t in targets
                       if (t, small) in self.results and self.results[(t, small)]["p50"] is not None)
        print(f"c{small}_p50_us: {p50}")
        print("idle_rss_kib: " + " ".join(f"{t}={kib}" for t, kib in self.idle_rss.items()))
        print(f"sluice_idle_rss_kib: {self.idle_rss.get('sluice', 'n/a')}")
        big = max(self.args.conns)
        sluice = self.results.get(("sluice", big))
        peers = [self.results[(p, big)]["rps"] for p in PEERS if (p, big) in self.results]
        cpu_peers = [self.results[(p, big)]["cpu_us"] for p in PEERS
                     if (p, big) in self.results and "cpu_us" in self.results[(p, big)]]
        if sluice and "cpu_us" in sluice and cpu_peers:
            # Requests per CPU-second relative to the thriftiest peer: the same question as the ratio below,
            # less at the mercy of whatever else the machine runs.
            efficiency = min(cpu_peers) / sluice['cpu_us']
            if self.args.label:
                print(f"{self.args.label}_cpu_efficiency_vs_best_peer: {efficiency:.2f}")
            print(f"cpu_efficiency_vs_best_peer: {efficiency:.2f}")
        if sluice and peers:
            if self.args.label:
                print(f"{self.args.label}_ratio_vs_best_peer: {sluice['rps'] / max(peers):.2f}")
            print(f"ratio_vs_best_peer: {sluice['rps'] / max(peers):.2f}")
        else:
            why = "sluice not built" if "sluice" in self.args.missing else "missing measurements"
            print(f"ratio_vs_best_peer: n/a ({why})")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build-bench")
    args = parser.parse_args()
    args.duration = int(os.environ.get("BENCH_DURATION", "10"))
    args.conns = [int(c) for c in os.environ.get("BENCH_CONNS", "1 64").split()]
    args.rounds = max(1, int(os.environ.get("BENCH_ROUNDS", "1")))
    args.workers = max(1, int(os.environ.get("BENCH_WORKERS", "1")))
    args.path = os.environ.get("BENCH_PATH", "/")
    args.tls = os.environ.get("BENCH_TLS") == "1"
    args.upstream_tls = os.environ.get("BENCH_UPSTREAM_TLS") == "1"
    args.label = os.environ.get("BENCH_LABEL", "")
    args.backend = os.environ.get("BACKEND_BIN") or os.path.join(
        args.build_dir, "tests", "backend", "sluice-testbackend")
    args.sluice = os.environ.get("SLUICE_BIN")
    if not args.sluice:
        for candidate in ("sluice", os.path.join("cli", "sluice")):
            path = os.path.join(args.build_dir, candidate)
            if os.access(path, os.X_OK) and os.path.isfile(path):
                args.sluice = path
                break
    args.missing = set()
    if not args.sluice or not os.access(args.sluice, os.X_OK):
        args.missing.add("sluice")
    for tool in ("nginx", "haproxy"):
        if shutil.which(tool) is None:
            args.missing.add(tool)
    return args


def main():
    args = parse_args()
    if not os.access(args.backend, os.X_OK):
        print(f"proxy_bench: {args.backend} is not built", file=sys.stderr)
        return 1
    if shutil.which("wrk") is None:
        print("proxy_bench: wrk is not installed", file=sys.stderr)
        return 1
    targets = ["direct", "sluice", "nginx", "haproxy"]
    for missing in sorted(args.missing):
        why = f"no binary in {args.build_dir}" if missing == "sluice" else "not installed"
        print(f"proxy_bench: {missing} is not available ({why}); measuring the other targets",
              file=sys.stderr)

    # SIGTERM/SIGHUP unwind like Ctrl-C so that the finally below stops everything.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    workdir = tempfile.mkdtemp(prefix="sluice-bench-")
    bench = Bench(args, workdir)
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print(f"# proxy benchmark{' ' + args.label if args.label else ''}: workers {args.workers}, path {args.path}, "
              f"{'https' if args.tls else 'http'} downstream, {'mtls' if args.upstream_tls else 'http'} upstream, wrk -t1, {args.duration}s per run, conns {args.conns}, "
              f"rounds {args.rounds}, cpus {os.cpu_count()}, "
              f"pinning {'proxy=cpu0 load=cpu1' if bench.pin else 'off'}, load average {load}",
              flush=True)
        bench.start_backends()
        for _ in range(args.rounds):
            for target in targets:
                if target not in args.missing:
                    print(f"# measuring {target}", file=sys.stderr, flush=True)
                    bench.measure(target)
        allocs = bench.count_allocations()
        bench.report(targets)
        print(f"allocs_per_request: {allocs:.2f}" if allocs is not None else "allocs_per_request: n/a (shim not built)")
    except Fatal as e:
        print(f"proxy_bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("proxy_bench: interrupted", file=sys.stderr)
        return 1
    finally:
        bench.procs.stop_all()
        if bench.failed:
            print(f"proxy_bench: logs and configs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not args.missing and not bench.failed else 1


if __name__ == "__main__":
    sys.exit(main())
