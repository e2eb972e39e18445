"""The seed scenario (run.sh) as a CI test: it must pass every step and lose no request."""
import os
import re
import signal
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCENARIO_TIMEOUT_S = 300  # the scenario takes about a minute; the lock may wait for another run


def test_seed_failover_scenario():
    build = os.environ.get("SLUICE_BUILD_DIR", os.path.join(ROOT, "build"))
    env = dict(os.environ, SLUICE_BUILD_DIR=build)
    # Own session: on a timeout the whole scenario (servers, proxies, load) is stopped, not just bash.
    proc = subprocess.Popen(["bash", os.path.join(HERE, "run.sh")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=SCENARIO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # run.sh's trap stops what it started
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        raise AssertionError(f"run.sh took more than {SCENARIO_TIMEOUT_S} s:\n{stdout}\n{stderr}")
    output = stdout + stderr
    summary = re.search(r"^seed scenario: (\d+) requests, (\d+) failed$", stdout, re.M)
    assert summary, f"no summary line (exit {proc.returncode}):\n{output}"
    assert int(summary.group(1)) > 1000, f"too few requests for a failover test:\n{output}"
    assert summary.group(2) == "0", output
    assert proc.returncode == 0, output
    # Every step ran and was checked.
    for step in ("1. From cluster-2", "2. GlobalTrafficPolicy ActiveActive", "3. Under load",
                 "4. GlobalTrafficPolicy FailOver"):
        assert step in stdout, output
    assert "!!" not in stdout, output
