"""One chaos run: a topology of backends, a proxy in front, closed-loop load through it, a warm-up with
nothing faulted, the scenario's fault, a recovery tail; then the report.

Everything is bounded: backends and proxies must be up within 10 s, the load stops issuing at the end
of the recovery tail and its requests in flight end within the client timeout (60 s), and every process
is ended (and checked gone) whatever happens.
"""
import dataclasses
import json
import math
import pathlib
import select
import statistics
import subprocess
import time

import chaos_proxies
import chaos_scenarios
from chaos_load import read_records
from chaos_procs import Backends, Supervisor, raise_nofile
from chaos_scenarios import Fault
from chaos_topology import build, cluster_of

HERE = pathlib.Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
CLIENT_TIMEOUT = 60.0  # per request: an answer after 15 s is a success
SETTLE = 0.3           # the first moments of the warm-up (connections opening) are not in the split
SPLIT_TOLERANCE = 0.05  # +-5 percentage points per cluster


@dataclasses.dataclass
class Case:
    target: str      # sluice, nginx, haproxy
    shape: str       # 3x2, 2x4, 4x1gw
    policy: str      # aa, fo
    scenario: str    # flap, 503, blackhole, noaccept, lastone
    conns: int
    warmup: float = 2.0     # s of load before the fault: the measured split
    fault: float = 4.0      # s of fault window
    recovery: float = 2.0   # s of load after the fault (failback)
    flap_down: float = 1.5
    flap_up: float = 1.5
    max_requests: int = 2_000_000

    @property
    def label(self):
        return f"{self.target} {self.shape}-{self.policy} {self.scenario} c{self.conns}"

    @property
    def slug(self):
        return f"{self.target}-{self.shape}-{self.policy}-{self.scenario}-c{self.conns}"


def percentile(values, q):
    """Nearest-rank percentile."""
    if not values:
        return None
    values = sorted(values)
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def shares(records, lo, hi):
    """Each cluster's share of the successful answers to requests started in [lo, hi)."""
    counts = {}
    for start, _dur, status, label in records:
        if lo <= start < hi and 200 <= status < 300:
            c = cluster_of(label) or "?"
            counts[c] = counts.get(c, 0) + 1
    total = sum(counts.values())
    return {c: n / total for c, n in sorted(counts.items())} if total else {}, total


def failback_times(records, events):
    """For every "up" event: seconds from it until a request that started after it was answered (2xx) by
    one of its endpoints, or None when none was before those endpoints went down again (or the run
    ended). Requests sent before the "up" do not count: a frozen backend answers its queued ones at once
    on resuming, which says nothing about the proxy sending it traffic again."""
    answers = sorted((start, start + dur, label) for start, dur, status, label in records if 200 <= status < 300)
    out = []
    for i, (kind, t_up, names) in enumerate(events):
        if kind != "up":
            continue
        nxt = [t for k, t, n in events[i + 1:] if k == "down" and set(n) & set(names)]
        until = nxt[0] if nxt else float("inf")
        done = [end for start, end, label in answers if t_up < start < until and label in names]
        out.append(min(done) - t_up if done else None)
    return out


def fault_latencies(records, lo, hi):
    """Durations of the requests in flight at some point of the window [lo, hi]: those sent during it, and
    those sent before it that were still waiting when it began (the ones a fault hurts most: a request
    stuck on a frozen backend from the first moment would otherwise not count)."""
    return [d for s, d, _st, _l in records if s <= hi and s + d >= lo]


def analyse(case, topo, records, events, t_go):
    """The report of a run (a JSON-able dict)."""
    when = {kind: t for kind, t, _ in events if kind in ("fault-start", "fault-end")}
    fault_lo, fault_hi = when.get("fault-start", float("inf")), when.get("fault-end", float("inf"))
    failures = {}
    for _s, _d, status, label in records:
        if not 200 <= status < 300:
            kind = f"error:{label}" if status == 0 else f"status:{status}"
            failures[kind] = failures.get(kind, 0) + 1
    in_fault = fault_latencies(records, fault_lo, fault_hi)
    split, split_n = shares(records, t_go + SETTLE, fault_lo)
    during, _ = shares(records, fault_lo, fault_hi)
    after, _ = shares(records, fault_hi, float("inf"))
    expected = topo.expected_shares()
    split_error = max((abs(split.get(c, 0.0) - share) for c, share in expected.items()), default=0.0)
    fb = failback_times(records, events)
    fb_ok = [t for t in fb if t is not None]
    return {
        "case": case.label,
        "target": case.target, "topology": topo.label, "scenario": case.scenario, "conns": case.conns,
        "requests": len(records),
        "failed": sum(failures.values()),
        "failures": dict(sorted(failures.items())),
        "fault_requests": len(in_fault),
        "p50_fault_ms": _ms(percentile(in_fault, 50)),
        "p99_fault_ms": _ms(percentile(in_fault, 99)),
        "max_fault_ms": _ms(max(in_fault) if in_fault else None),
        "split_requests": split_n,
        "split": {c: round(s, 4) for c, s in split.items()},
        "expected_split": {c: round(s, 4) for c, s in expected.items()},
        "split_max_error_pp": round(split_error * 100, 2),
        "shares_fault": {c: round(s, 4) for c, s in during.items()},
        "shares_after": {c: round(s, 4) for c, s in after.items()},
        "failback_s": round(statistics.median(fb_ok), 3) if fb_ok else None,
        "failback_samples": [None if t is None else round(t, 3) for t in fb],
        "events": [(k, round(t - t_go, 3), n) for k, t, n in events],
        "fault_window": [fault_lo, fault_hi],  # monotonic seconds, the records' clock
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def split_ok(report):
    return report["split_requests"] > 0 and report["split_max_error_pp"] <= SPLIT_TOLERANCE * 100


def start_load(sup, port, case, out):
    duration = case.warmup + case.fault + case.recovery + 30  # a cap: the driver halts it earlier
    proc = sup.start("load", [PYTHON, str(HERE / "chaos_load.py"), "--port", str(port), "--conns", str(case.conns),
                              "--duration", str(duration), "--max-requests", str(case.max_requests),
                              "--timeout", str(CLIENT_TIMEOUT), "--out", str(out)], stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("go "):
        raise RuntimeError(f"load generator did not start: {line!r}\n{sup.log_tail('load')}")
    return proc, float(line.split()[1])


def stop_load(proc):
    """Stops issuing requests and waits for those in flight (each ends within the client timeout)."""
    proc.terminate()
    proc.wait(timeout=CLIENT_TIMEOUT + 15)


def probe(port, deadline_s=10.0):
    """Waits until the proxy answers a 2xx through to a backend (the topology is in place)."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = chaos_proxies.http_get(port, "/", timeout=2)
            if 200 <= status < 300:
                return
            last = f"{status} {body[:200]}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    raise RuntimeError(f"no 2xx through the proxy within {deadline_s}s: {last}")


def run_case(case, workdir, sluice_bin, backend_bin):
    """Runs one case; returns its report (also saved as report.json in the case's directory)."""
    raise_nofile()
    rundir = pathlib.Path(workdir) / case.slug
    rundir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(rundir)
    topo = build(case.shape, case.policy)
    fault = None
    records_path = rundir / "requests.txt"
    extra = {}
    try:
        backends = Backends(sup, backend_bin, topo)
        backends.start_all()
        proxy = chaos_proxies.make(case.target, sup, topo, sluice_bin)
        chaos_proxies.check_config(case.target, proxy)
        proxy.start()
        try:
            probe(proxy.port)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\nbackends: {backends.describe()}") from None
        load, t_go = start_load(sup, proxy.port, case, records_path)
        fault = Fault(topo, backends)
        Fault.sleep_until(t_go + case.warmup)
        chaos_scenarios.run(case.scenario, fault, case.fault, case.flap_down, case.flap_up)
        Fault.sleep_until(fault.events[-1][1] + case.recovery)
        extra["fault_mode"] = fault.how
        stop_load(load)
        extra["proxy_survived"] = proxy.running()
        for suffix, text in proxy.diagnostics().items():
            (rundir / f"{case.target}-{suffix}").write_text(text)
            extra[f"{suffix.split('.')[0]}_file"] = str(rundir / f"{case.target}-{suffix}")
    finally:
        if fault is not None:
            fault.abort()
        sup.stop_all()
        extra["leftover_pids"] = sup.leftovers()
    if not records_path.exists():
        raise RuntimeError(f"the load generator left no records:\n{sup.log_tail('load')}")
    report = analyse(case, topo, read_records(records_path), fault.events, t_go)
    report.update(extra)
    report["records_file"] = str(records_path)
    report["config_dir"] = str(rundir)
    (rundir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def format_report(r):
    """A few human lines."""
    def fmt(v, unit=""):
        return "-" if v is None else f"{v}{unit}"
    fb = r["failback_samples"]
    lines = [
        f"{r['case']}: {r['requests']} requests, {r['failed']} failed {r['failures'] or ''}".rstrip(),
        f"  fault window: {r['fault_requests']} requests, p50 {fmt(r['p50_fault_ms'], 'ms')}, "
        f"p99 {fmt(r['p99_fault_ms'], 'ms')}, max {fmt(r['max_fault_ms'], 'ms')}",
        f"  split before the fault ({r['split_requests']} answers): {r['split']} "
        f"expected {r['expected_split']} (max error {r['split_max_error_pp']} pp)",
        f"  shares during the fault {r['shares_fault']}, after {r['shares_after']}",
        f"  failback: median {fmt(r['failback_s'], 's')} over {sum(t is not None for t in fb)}/{len(fb)} "
        f"restores {fb}",
        f"  proxy survived: {r.get('proxy_survived')}, leftover pids: {r.get('leftover_pids')}, "
        f"files: {r['config_dir']}",
    ]
    return "\n".join(lines)
