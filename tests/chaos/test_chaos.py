"""CI short form of the chaos suite: sluice at its DEFAULT settings keeps every client request answered
while endpoints and clusters fail, and splits ActiveActive traffic by the targets' weights.

Each case starts real backends (one process per endpoint) and sluice, puts closed-loop keep-alive load
through it, and applies one fault after a warm-up. Asserted, and nothing about timing:
- 0 failed client requests (non-2xx, connection error, or no answer within 60 s): in every scenario at
  least one live endpoint remains, so a failed request is the proxy's doing;
- the warm-up split, where nothing is faulted: each cluster's share of the answers within +-5 percentage
  points of its weight share (ActiveActive) or of 100 % on the first tier (FailOver);
- sluice still running at the end, and no process of the run left behind.
On failure the run's report and sluice's /stats are printed. See tests/chaos/README.md.

The cases together cover every scenario, every topology, ActiveActive and FailOver, and 1, 16 and 64
connections. The blackhole case's window outlasts the 15 s response timeout, so it is the long one.
"""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from chaos_procs import binaries  # noqa: E402
from chaos_run import SPLIT_TOLERANCE, Case, format_report, run_case, split_ok  # noqa: E402

SLUICE, BACKEND = binaries()
MIN_SPLIT_ANSWERS = 200  # fewer answers in the warm-up would make the split check meaningless

# (topology, policy, scenario, conns, warm-up s, fault window s, recovery s)
CASES = [
    ("3x2", "aa", "flap", 16, 2.0, 6.0, 2.0),        # two 1.5 s down / 1.5 s up cycles of cluster-1
    ("2x4", "fo", "flap", 64, 2.0, 3.0, 2.0),        # FailOver's first tier dies and returns
    ("4x1gw", "aa", "503", 1, 2.0, 3.0, 1.0),        # one gateway answers 503
    ("3x2", "fo", "blackhole", 16, 1.5, 16.0, 1.0),  # outlasts the 15 s response timeout
    ("2x4", "aa", "noaccept", 64, 2.0, 4.0, 1.0),    # connects to one endpoint time out (2 s)
    ("4x1gw", "fo", "lastone", 16, 2.0, 3.0, 1.0),   # three of four clusters die for good
]


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    missing = [p for p in (SLUICE, BACKEND) if not pathlib.Path(p).is_file()]
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (set SLUICE_BUILD_DIR, or "
                    f"ninja -C build cli/sluice tests/backend/sluice-testbackend)")


def explain(report):
    """The report, then sluice's /stats, for the failure message."""
    stats = "(no /stats saved)"
    if report.get("stats_file"):
        stats = pathlib.Path(report["stats_file"]).read_text(errors="replace")
    return f"{format_report(report)}\n--- sluice /stats at the end ---\n{stats}"


@pytest.mark.parametrize("shape,policy,scenario,conns,warmup,fault,recovery", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-c{c[3]}" for c in CASES])
def test_failover_at_defaults(tmp_path, shape, policy, scenario, conns, warmup, fault, recovery):
    case = Case("sluice", shape, policy, scenario, conns, warmup=warmup, fault=fault, recovery=recovery)
    report = run_case(case, tmp_path, SLUICE, BACKEND)
    print(format_report(report))  # shown with -s or -rA, and for a failure

    problems = []
    if report["failed"]:
        problems.append(f"{report['failed']} failed client requests {report['failures']}")
    if report["split_requests"] < MIN_SPLIT_ANSWERS:
        problems.append(f"only {report['split_requests']} answers in the warm-up: no split to check")
    elif not split_ok(report):
        problems.append(f"warm-up split {report['split']} is off the expected {report['expected_split']} "
                        f"by {report['split_max_error_pp']} pp (> {SPLIT_TOLERANCE * 100:.0f})")
    if not report.get("proxy_survived"):
        problems.append("sluice was not running at the end of the run")
    if report["leftover_pids"]:
        problems.append(f"processes left behind: {report['leftover_pids']}")
    assert not problems, "; ".join(problems) + "\n" + explain(report)
