"""Active health checks and failover events through the real binary: an endpoint failing its checks
stops receiving traffic and comes back; killing the local tier moves traffic to the next one with no
failed request, logged once as a failover event and visible in /explain and /stats."""
import json
import subprocess

from integ_harness import BACKEND, LOCAL_CLUSTER, clean_env, curl, free_port, make_config, wait_until

REMOTE = "default/default/default/cluster-9"


def get(s, path="/"):
    r = curl("-s", "-w", "\n%{http_code}", s.url(path))
    body, code = r.stdout.decode().rsplit("\n", 1)
    return int(code), body.strip()


def admin(port, path):
    r = curl("-s", f"http://127.0.0.1:{port}{path}")
    return r.stdout.decode()


def test_endpoint_failing_health_checks_is_not_picked(backend_factory, sluice_factory):
    a, b = backend_factory("pod-a"), backend_factory("pod-b")
    admin_port = free_port()

    def cfg(port):
        c = make_config(port, [a.address, b.address],
                        service={"health_check": {"enabled": True, "path": "/", "interval": "200ms",
                                                  "timeout": "150ms", "healthy_threshold": 1,
                                                  "unhealthy_threshold": 2}})
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
        return c

    s = sluice_factory(make_cfg=cfg)
    assert {get(s)[1] for _ in range(4)} == {"pod-a", "pod-b"}
    assert curl("-s", f"http://{b.address}/admin/status/503").returncode == 0
    # Two failed probes (about 0.4-0.6 s) and pod-b is out of the candidates. Clients never see its 503s
    # meanwhile: a 503 on an idempotent request is retried on pod-a.
    assert wait_until(lambda: "healthy -> degraded" in s.stderr())
    explain = json.loads(admin(admin_port, "/explain?host=any&path=/"))
    assert {f'{c["address"]}:{c["port"]}' for c in explain["candidates"]} == {a.address}
    assert {get(s)[1] for _ in range(6)} == {"pod-a"}
    stats = admin(admin_port, "/stats")
    assert "sluice_health_check_failures_total" in stats
    assert curl("-s", f"http://{b.address}/admin/status/0").returncode == 0
    assert wait_until(lambda: "pod-b" in {get(s)[1] for _ in range(6)})


def test_failover_to_next_tier_loses_no_request(backend_factory, sluice_factory):
    local1, local2, remote = backend_factory("local-1"), backend_factory("local-2"), backend_factory("remote-1")
    admin_port = free_port()

    def cfg(port):
        c = make_config(port, [local1.address, local2.address],
                        service={"policy": {"lb_type": "FailOver", "targets": [{"cluster": REMOTE}]},
                                 "outlier_detection": {"enabled": True, "consecutive_failures": 1,
                                                       "max_ejection_percent": 100}})
        c["services"][0]["clusters"].append({"cluster": REMOTE, "endpoints": [remote.address]})
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
        return c

    s = sluice_factory(make_cfg=cfg)
    assert {get(s)[1] for _ in range(6)} == {"local-1", "local-2"}
    local1.proc.kill()
    local2.proc.kill()
    local1.proc.wait()
    local2.proc.wait()
    results = [get(s) for _ in range(30)]
    assert all(code == 200 for code, _ in results), results
    assert {body for _, body in results[-10:]} == {"remote-1"}
    assert wait_until(lambda: "traffic moved from tier 0 to tier 1" in s.stderr(), 5)
    explain = json.loads(admin(admin_port, "/explain?host=any&path=/"))
    assert "tier 1" in explain["last_failover_event"]["event"]
    assert explain["next"]["cluster"] == REMOTE
    assert 'to="down"' in admin(admin_port, "/stats")


def stats_endpoint(admin_port, address):
    """The /stats (routes JSON) entry of endpoint `address` of the first service."""
    snap = json.loads(admin(admin_port, "/routes"))
    for tier in snap["services"][0]["tiers"]:
        for c in tier["clusters"]:
            for ep in c["endpoints"]:
                if f'{ep["address"]}:{ep["port"]}' == address:
                    return ep, snap["services"][0]
    raise AssertionError(f"no endpoint {address} in {snap}")


def two_pods_at_defaults(sluice_factory, a, b):
    """sluice in front of backends a and b with outlier detection at its defaults, admin on: (sluice, port)."""
    admin_port = free_port()

    def cfg(port):
        c = make_config(port, [a.address, b.address])
        del c["services"][0]["outlier_detection"]  # make_config turns it off; these tests want the defaults
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
        return c

    return sluice_factory(make_cfg=cfg), admin_port


def test_killed_endpoint_is_ejected_at_once_and_back_by_probe(procs, backend_factory, sluice_factory):
    # Default outlier detection: one refused connect takes the endpoint out (no request fails: it is
    # retried), and it is back in rotation soon after it listens again, by probe, not after 30 s.
    a, b = backend_factory("pod-a"), backend_factory("pod-b")
    s, admin_port = two_pods_at_defaults(sluice_factory, a, b)
    assert {get(s)[1] for _ in range(4)} == {"pod-a", "pod-b"}
    b.proc.kill()
    b.proc.wait()
    results = [get(s) for _ in range(20)]
    assert all(code == 200 for code, _ in results), results
    ep, svc = stats_endpoint(admin_port, b.address)
    assert ep["ejected"] and ep["dead"] and ep["ejection_reason"] == "local_origin", ep
    assert svc["ejections_by_reason"]["local_origin"] == 1, svc
    assert svc["local_origin_retries"] >= 1, svc
    # Listening again on the same port: a connect probe brings it back (then slow start).
    again = procs.add(subprocess.Popen([str(BACKEND), "--listen", b.address, "--name", "pod-b"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env()))
    assert wait_until(lambda: not stats_endpoint(admin_port, b.address)[0]["ejected"], 10)
    assert stats_endpoint(admin_port, b.address)[1]["returns"]["probe"] == 1
    assert wait_until(lambda: "pod-b" in {get(s)[1] for _ in range(10)}, 15)
    assert "back in rotation" in s.stderr()
    assert again.poll() is None


def test_endpoint_answering_503_is_ejected_and_returns_when_it_recovers(backend_factory, sluice_factory):
    a, b = backend_factory("pod-a"), backend_factory("pod-b")
    s, admin_port = two_pods_at_defaults(sluice_factory, a, b)
    assert curl("-s", f"http://{b.address}/admin/status/503").returncode == 0
    # Clients see no 503: each is retried on pod-a, and three in a row take pod-b out.
    results = [get(s) for _ in range(20)]
    assert all(code == 200 for code, _ in results), results
    ep, svc = stats_endpoint(admin_port, b.address)
    assert ep["ejected"] and ep["ejection_reason"] == "gateway_error" and not ep["dead"], ep
    # Its HTTP probes get 503 and keep it out; once it answers again, it comes back.
    wait_until(lambda: stats_endpoint(admin_port, b.address)[0].get("probe_failures", 0) >= 1, 10,
               "a probe of the ejected endpoint to fail")
    assert stats_endpoint(admin_port, b.address)[0]["ejected"]
    assert curl("-s", f"http://{b.address}/admin/status/0").returncode == 0
    assert wait_until(lambda: not stats_endpoint(admin_port, b.address)[0]["ejected"], 10)
    assert wait_until(lambda: "pod-b" in {get(s)[1] for _ in range(10)}, 15)
