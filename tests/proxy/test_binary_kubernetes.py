"""The sluice binary with its built-in Kubernetes source (now wired through sluice::Proxy): a SIGHUP
reload changes the config's own routes while the discovered ones keep serving and keep following the
API server; and until the first sync the workers hold back and /ready says why."""
import json
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from integ_harness import LOCAL_CLUSTER, REPO, Sluice, free_port, wait_until

sys.path.insert(0, str(REPO / "tests" / "k8s"))
from standin import StandIn  # noqa: E402



def get(port, host, path="/", timeout=5):
    """(status, body) of one GET with this Host header; connection errors give (0, reason)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()
    except OSError as e:
        return 0, str(e)


def config(port, admin, static_port, static_host, kubeconfig):
    return {
        "cluster": LOCAL_CLUSTER, "workers": 2,
        "admin": {"enabled": True, "address": "127.0.0.1", "port": admin},
        "listeners": [{"name": "http", "address": "127.0.0.1", "port": port, "role": "sidecar"}],
        "services": [{"name": "static", "clusters": [{"cluster": LOCAL_CLUSTER,
                                                       "endpoints": [f"127.0.0.1:{static_port}"]}]}],
        "routes": [{"hosts": [static_host], "service": "static.default"}],
        "sources": ["kubernetes"], "kubernetes": {"kubeconfig": kubeconfig},
    }


def test_sighup_with_kubernetes_reloads_the_config_and_keeps_discovery(procs, backend_factory, tmp_path):
    web, static = backend_factory("k8s-web"), backend_factory("static")
    with StandIn() as api:
        api.kubectl("create", "-f", "-", input=StandIn.fixture_text("web-service.yaml.in", port=web.port))
        port, admin = free_port(), free_port()
        sluice = Sluice(procs, tmp_path, config(port, admin, static.port, "static", api.kubeconfig))
        wait_until(lambda: get(admin, "x", "/ready")[0] == 200, 15, "never ready")
        assert get(port, "web.apps") == (200, "k8s-web")
        assert get(port, "static") == (200, "static")

        # The config's route moves to another host; the discovered service stays.
        sluice.config_path.write_text(json.dumps(config(port, admin, static.port, "static2", api.kubeconfig)))
        sluice.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: get(port, "static2")[0] == 200, 10, "the reloaded route never served")
        assert get(port, "static")[0] == 404
        assert get(port, "web.apps") == (200, "k8s-web")
        routes = json.loads(get(admin, "x", "/routes")[1])
        assert sorted(h for r in routes["routes"] for h in r["hosts"] if h.startswith("static")) == ["static2"]

        # Discovery still follows the API server after the reload.
        api.kubectl("delete", "endpointslice", "web-1", "-n", "apps")
        wait_until(lambda: get(port, "web.apps")[0] != 200, 10, "deleted endpoints kept serving")
        assert get(port, "static2") == (200, "static")
        assert sluice.terminate() == 0


@pytest.mark.slow  # waits out the 10 s sync deadline on purpose
def test_workers_wait_for_the_first_sync(procs, backend_factory, tmp_path):
    """An API server that accepts but never answers: /ready says so, and the first request is served only
    when the wait for the first sync gives up (10 s), from the config's own routes."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    held = []

    def hold():
        try:
            for _ in range(50):
                held.append(hole.accept())
        except OSError:
            pass  # closed at the end of the test
    threading.Thread(target=hold, daemon=True).start()
    kubeconfig = tmp_path / "hole.kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{hole.getsockname()[1]}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    static = backend_factory("static")
    port, admin = free_port(), free_port()
    started = time.monotonic()
    Sluice(procs, tmp_path, config(port, admin, static.port, "static", str(kubeconfig)))

    def ready_answer():
        status, body = get(admin, "x", "/ready")
        return (status, body) if status != 0 else None  # 0: the admin is not listening yet
    status, body = wait_until(ready_answer, 5, "the admin endpoint to answer")
    assert status == 503 and "sync" in body, (status, body)
    assert get(port, "static", timeout=20) == (200, "static")
    assert time.monotonic() - started >= 9, "served before the first sync or its deadline"
    hole.close()
