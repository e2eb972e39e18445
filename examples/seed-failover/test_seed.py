"""The seed scenario (run.sh) as a CI test: it must pass every step and lose no request."""
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCENARIO_TIMEOUT_S = 300  # the scenario takes about a minute; the lock may wait for another run


def test_seed_failover_scenario():
    build = os.environ.get("SLUICE_BUILD_DIR", os.path.join(ROOT, "build"))
    env = dict(os.environ, SLUICE_BUILD_DIR=build)
    proc = subprocess.run(["bash", os.path.join(HERE, "run.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=SCENARIO_TIMEOUT_S)
    output = proc.stdout + proc.stderr
    summary = re.search(r"^seed scenario: (\d+) requests, (\d+) failed$", proc.stdout, re.M)
    assert summary, f"no summary line (exit {proc.returncode}):\n{output}"
    assert int(summary.group(1)) > 1000, f"too few requests for a failover test:\n{output}"
    assert summary.group(2) == "0", output
    assert proc.returncode == 0, output
    # Every step ran and was checked.
    for step in ("1. From cluster-2", "2. GlobalTrafficPolicy ActiveActive", "3. Under load",
                 "4. GlobalTrafficPolicy FailOver"):
        assert step in proc.stdout, output
    assert "!!" not in proc.stdout, output
