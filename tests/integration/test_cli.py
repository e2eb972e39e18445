"""The command line: --version, --help, --check, and a bad config refusing to start."""
import json
import os
import resource
import signal
import subprocess

import pytest

from integ_harness import SLUICE, clean_env, curl, curl_status, free_port, make_config, wait_until


def run_sluice(*args, timeout=10):
    return subprocess.run([str(SLUICE), *args], capture_output=True, text=True, timeout=timeout, env=clean_env())


def test_version():
    r = run_sluice("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("sluice ")
    assert any(c.isdigit() for c in r.stdout)


def test_help():
    r = run_sluice("--help")
    assert r.returncode == 0
    for flag in ("--config", "--check", "--workers", "--log-level", "--version", "--help"):
        assert flag in r.stdout


def test_unknown_option_fails():
    r = run_sluice("--frobnicate")
    assert r.returncode != 0
    assert "--frobnicate" in r.stderr


def test_check_ok(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(make_config(free_port(), ["127.0.0.1:9"])))
    r = run_sluice("--check", "--config", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "config OK"


def test_check_reports_every_error_with_json_paths(tmp_path):
    cfg = make_config(free_port(), ["127.0.0.1:9"])
    cfg["listeners"][0]["port"] = 70000
    cfg["services"][0]["lodbalancer"] = "RoundRobin"
    cfg["timeouts"]["connect"] = "fast"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    r = run_sluice("--check", "--config", str(path))
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "config OK" not in out
    assert "listeners[0].port: expected 1..65535, got 70000" in out
    assert "services[0].lodbalancer: unknown key" in out
    assert 'did you mean "load_balancer"' in out
    assert "timeouts.connect:" in out


def test_check_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"listeners": [}')
    r = run_sluice("--check", "--config", str(path))
    assert r.returncode == 1
    assert "parse error" in r.stderr


# A long non-ASCII string where a number belongs: the message cuts it at 60 bytes, which once fell inside a
# two-byte character, and the JSON library threw out of the config parser (found by tests/fuzz/fuzz_config).
LONG_NON_ASCII = "p" * 59 + "\u00df" * 3


def test_check_long_non_ascii_value(tmp_path):
    cfg = make_config(free_port(), ["127.0.0.1:9"])
    cfg["listeners"][0]["port"] = LONG_NON_ASCII
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    r = run_sluice("--check", "--config", str(path))
    assert r.returncode == 1, r.stderr
    assert 'listeners[0].port: expected an integer, got "' + "p" * 59 + '..."' in r.stdout + r.stderr


def test_reload_of_long_non_ascii_value_is_refused_not_fatal(backend_factory, sluice_factory):
    a = backend_factory("pod-a")
    s = sluice_factory([a.address])
    cfg = json.loads(s.config_path.read_text())
    cfg["services"][0]["policy"] = {"overprovisioning": LONG_NON_ASCII}
    s.config_path.write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    os.kill(s.pid, signal.SIGHUP)
    wait_until(lambda: "reload refused" in s.stderr() or s.proc.poll() is not None, 5, "the reload to be refused")
    assert s.proc.poll() is None, s.stderr()
    assert curl("-s", s.url("/")).stdout.strip() == b"pod-a"


def test_unknown_key_refuses_to_start(tmp_path):
    port = free_port()
    cfg = make_config(port, ["127.0.0.1:9"])
    cfg["listeners"][0]["prot"] = 8080
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(cfg))
    r = run_sluice("--config", str(path))  # must exit by itself, not serve
    assert r.returncode != 0
    assert "listeners[0].prot: unknown key" in r.stderr


def test_missing_config_file(tmp_path):
    r = run_sluice("--config", str(tmp_path / "nope.json"))
    assert r.returncode != 0
    assert "nope.json" in r.stderr


def test_bad_flag_values(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(make_config(free_port(), ["127.0.0.1:9"])))
    r = run_sluice("--config", str(path), "--log-level", "chatty")
    assert r.returncode != 0
    assert "chatty" in r.stderr
    r = run_sluice("--config", str(path), "--workers", "0")
    assert r.returncode != 0
    assert "--workers" in r.stderr


def test_log_level_flag(sluice_factory):
    dead = f"127.0.0.1:{free_port()}"
    loud = sluice_factory([dead], args=("--log-level", "debug"))
    quiet = sluice_factory([dead], args=("--log-level", "error"))
    for sluice in (loud, quiet):
        status, _ = curl_status(sluice.url("/x"))
        assert status == 502
    assert "serving" in loud.stderr()
    assert "GET /x -> 502" in loud.stderr()  # a debug line
    assert "serving" not in quiet.stderr()  # info is below error
    assert "-> 502" not in quiet.stderr()


def test_descriptor_soft_limit_is_raised_to_the_hard_limit(sluice_factory):
    """A shell's soft limit (often 1024) would cap sluice far below what the hard limit allows."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard descriptor limit {hard}: nothing to raise to")

    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    sluice = sluice_factory([f"127.0.0.1:{free_port()}"], args=("--log-level", "info"), preexec_fn=low_soft_limit)
    with open(f"/proc/{sluice.pid}/limits") as f:
        row = next(line for line in f if line.startswith("Max open files")).split()
    soft_now, hard_now = row[3], row[4]
    assert soft_now == hard_now, row
    assert soft_now != "256"
    assert "open descriptor limit raised from 256" in sluice.stderr()
