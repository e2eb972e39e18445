"""A custom load-balancing policy, multi-cluster policy and discovery source taking effect through the
real proxy.

tests/embed/plugin_host embeds libsluice, registers the load-balancing policy "last-allowed" (always the
last candidate a pick may use, written against the full LbTier interface), the multi-cluster policy "reverse-failover" (FailOver
in reverse: the last listed target first, the local cluster last) and the discovery source "line-feed"
(endpoints added and removed by lines on its stdin), and serves a config file. Backends answer with their
name, so each response says who served it. Every test runs with the proxy on its own worker threads and
on an io_context the host program owns and runs (sluice/asio.hpp)."""
import http.client
import json
import os
import select
import subprocess
import sys
import time

import pytest

from integ_harness import BUILD_DIR, REPO, SLUICE, clean_env, free_port, wait_until

HOST = BUILD_DIR / "tests" / "embed" / "plugin_host"
LOCAL = "default/default/default/local"
C1 = "default/default/default/cluster-1"
C2 = "default/default/default/cluster-2"
MODES = ["threads", "io-context"]


class PluginHost:
    """plugin_host on a config file; `send` writes one line to its source and returns its answer."""

    def __init__(self, procs, tmp_path, cfg, mode):
        if not HOST.is_file():
            pytest.fail(f"build it first: ninja -C {BUILD_DIR} tests/embed/plugin_host")
        self.port = cfg["listeners"][0]["port"]
        path = tmp_path / f"host-{self.port}.json"
        path.write_text(json.dumps(cfg, indent=2))
        args = [str(HOST), str(path)] + (["--io-context"] if mode == "io-context" else [])
        self.proc = procs.add(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, env=clean_env()))
        self.requests = 0

    def read_line(self, timeout=10):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise AssertionError(f"no line from plugin_host within {timeout}s (got {line!r})")
            ch = os.read(self.proc.stdout.fileno(), 1)
            if not ch:
                self.proc.wait(timeout=10)
                raise AssertionError(f"plugin_host exited {self.proc.returncode}: {line!r} "
                                     f"{self.proc.stderr.read().decode()}")
            line += ch
        return line.decode().strip()

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return self.read_line()

    def get(self, host, path="/"):
        """(status, body) of one GET with this Host header, on a fresh connection."""
        self.requests += 1
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode().strip()
        finally:
            conn.close()

    def served(self, host, n):
        """The bodies of n GETs, every one of which must be 200."""
        answers = [self.get(host) for _ in range(n)]
        assert all(status == 200 for status, _ in answers), answers
        return [body for _, body in answers]

    def finish(self):
        """Ends stdin (the host then stops the proxy); returns the request count the proxy reports."""
        self.proc.stdin.close()
        line = self.read_line(timeout=20)
        assert self.proc.wait(timeout=10) == 0, self.proc.stderr.read().decode()
        assert line.startswith("stopped requests "), line
        return int(line.split()[-1])


def config(port, services, routes, **extra):
    cfg = {"cluster": {"name": "local"}, "workers": 2, "admin": {"enabled": False},
           "listeners": [{"name": "http", "address": "127.0.0.1", "port": port}],
           "services": services, "routes": routes}
    cfg.update(extra)
    return cfg


def cluster(key, backend):
    return {"cluster": key, "endpoints": [{"address": "127.0.0.1", "port": backend.port}]}


def route(host, service):
    return {"hosts": [host], "service": service + ".default"}


@pytest.fixture
def host_factory(procs, tmp_path):
    def make(make_cfg, mode):
        return PluginHost(procs, tmp_path, make_cfg(free_port()), mode)
    return make


@pytest.mark.parametrize("mode", MODES)
def test_custom_multi_cluster_policy_decides(host_factory, backend_factory, mode):
    local, c1, c2 = backend_factory("local"), backend_factory("c1"), backend_factory("c2")
    clusters = [cluster(LOCAL, local), cluster(C1, c1), cluster(C2, c2)]
    failover = {"lb_type": "FailOver", "targets": [{"cluster": C1}, {"cluster": C2}]}
    services = [
        {"name": "web", "clusters": clusters, "policy": dict(failover, plugin="reverse-failover")},
        {"name": "builtin", "clusters": clusters, "policy": failover},
    ]
    host = host_factory(lambda port: config(port, services, [route("web", "web"), route("builtin", "builtin")]),
                        mode)
    assert host.read_line() == "ready"

    # The plugin puts the last target first; the built-in FailOver, same clusters, keeps to the local one.
    assert host.served("web", 8) == ["c2"] * 8
    assert host.served("builtin", 8) == ["local"] * 8

    # Its tier 1 is cluster-1: with cluster-2 gone, every request (retried on the connect failure) lands
    # there, not on the local cluster.
    c2.proc.kill()
    c2.proc.wait(timeout=10)
    assert host.served("web", 8) == ["c1"] * 8
    assert host.finish() == host.requests


@pytest.mark.parametrize("mode", MODES)
def test_custom_load_balancing_policy_decides(host_factory, backend_factory, mode):
    b1, b2, b3 = backend_factory("b1"), backend_factory("b2"), backend_factory("b3")
    endpoints = [{"address": "127.0.0.1", "port": b.port} for b in (b1, b2, b3)]
    services = [
        {"name": "web", "clusters": [{"cluster": LOCAL, "endpoints": endpoints}], "load_balancer_plugin": "last-allowed"},
        {"name": "builtin", "clusters": [{"cluster": LOCAL, "endpoints": endpoints}]},
    ]
    host = host_factory(lambda port: config(port, services, [route("web", "web"), route("builtin", "builtin")]),
                        mode)
    assert host.read_line() == "ready"
    # The plugin always takes the last candidate; the built-in round robin, same endpoints, rotates.
    assert host.served("web", 6) == ["b3"] * 6
    assert sorted(set(host.served("builtin", 6))) == ["b1", "b2", "b3"]
    # With b3 gone its connect failure is retried, and the retry excludes b3: the plugin's last allowed
    # candidate is then b2. (b3 is ejected only after 5 failures, so each request tries it first.)
    b3.proc.kill()
    b3.proc.wait(timeout=10)
    assert host.served("web", 3) == ["b2"] * 3
    assert host.finish() == host.requests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("selected", ["by-name", "add_source"])
def test_custom_source_updates_take_effect(host_factory, backend_factory, mode, selected):
    a, b, static = backend_factory("a"), backend_factory("b"), backend_factory("static")
    services = [{"name": "fed"},  # no endpoints: the source provides them
                {"name": "static", "clusters": [cluster(LOCAL, static)]}]
    routes = [route("fed", "fed"), route("static", "static")]
    extra = {"sources": ["line-feed"]} if selected == "by-name" else {}
    host = host_factory(lambda port: config(port, services, routes, **extra), mode)
    assert host.read_line() == "ready"

    assert host.get("fed")[0] == 503  # no endpoint yet
    assert host.send(f"add fed.default {LOCAL} {a.port}") == "published 0"
    assert host.served("fed", 6) == ["a"] * 6
    assert host.send(f"add fed.default {LOCAL} {b.port}") == "published 0"
    assert sorted(set(host.served("fed", 8))) == ["a", "b"]
    assert host.send(f"remove fed.default {LOCAL} {a.port}") == "published 0"
    assert host.served("fed", 6) == ["b"] * 6
    # The source's routing is merged over the config's: the config's own service still serves.
    assert host.served("static", 2) == ["static"] * 2
    assert host.send(f"remove fed.default {LOCAL} {b.port}") == "published 0"
    assert host.get("fed")[0] == 503
    assert host.send("bogus") == "bad line"
    assert host.finish() == host.requests


def test_unregistered_source_is_refused(host_factory):
    # With "kubernetes": {"enabled": true} the built-in comes first, and the error still names the entry.
    host = host_factory(lambda port: config(port, [], [], sources=["line-feed", "nowhere"],
                                            kubernetes={"enabled": True}), "threads")
    assert host.proc.wait(timeout=10) == 1
    err = host.proc.stderr.read().decode()
    assert 'sources[1]: no discovery source "nowhere" registered (registered: "kubernetes", "line-feed")' in err, err


def test_duplicate_source_is_refused(host_factory):
    host = host_factory(lambda port: config(port, [], [], sources=["line-feed", "line-feed"]), "threads")
    assert host.proc.wait(timeout=10) == 1
    assert 'sources[1]: duplicate source "line-feed"' in host.proc.stderr.read().decode()


def test_sluice_binary_knows_only_the_kubernetes_source(tmp_path):
    """The binary registers no sources of its own: "kubernetes" passes --check, any other name fails it."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config(free_port(), [], [], sources=["kubernetes"])))
    r = subprocess.run([str(SLUICE), "--check", "-c", str(path)], capture_output=True, timeout=30, env=clean_env())
    assert r.returncode == 0 and r.stdout.decode().strip() == "config OK", r.stderr.decode()
    path.write_text(json.dumps(config(free_port(), [], [], sources=["kubernetes", "line-feed"])))
    r = subprocess.run([str(SLUICE), "--check", "-c", str(path)], capture_output=True, timeout=30, env=clean_env())
    assert r.returncode == 1
    assert 'sources[1]: no discovery source "line-feed" registered (registered: "kubernetes")' in r.stderr.decode()


def test_builtin_kubernetes_source_is_selectable(host_factory, tmp_path):
    """The built-in "kubernetes" source runs in the embedded proxy, selected either way: it reads the
    config's kubeconfig, and a missing one is a startup error that names it."""
    missing = tmp_path / "no-kubeconfig"
    for extra in ({"sources": ["kubernetes"], "kubernetes": {"kubeconfig": str(missing)}},
                  {"kubernetes": {"enabled": True, "kubeconfig": str(missing)}}):
        host = host_factory(lambda port: config(port, [], [], **extra), "threads")
        assert host.proc.wait(timeout=10) == 1
        err = host.proc.stderr.read().decode()
        assert "kubernetes" in err and str(missing) in err, err




def test_kubernetes_and_own_source_together(host_factory, backend_factory):
    """"sources": ["kubernetes", "line-feed"]: the built-in Kubernetes source (against the API server
    stand-in, changed with kubectl) and the program's own both feed the same embedded proxy."""
    sys.path.insert(0, str(REPO / "tests" / "k8s"))
    from standin import StandIn

    web, fed = backend_factory("k8s-web"), backend_factory("fed")
    with StandIn() as api:
        api.kubectl("create", "-f", "-", input=StandIn.fixture_text("web-service.yaml.in", port=web.port))

        def make_cfg(port):
            cfg = config(port, [{"name": "fed"}], [route("fed", "fed")], sources=["kubernetes", "line-feed"],
                         kubernetes={"kubeconfig": api.kubeconfig})
            cfg["listeners"][0]["role"] = "sidecar"
            return cfg
        host = host_factory(make_cfg, "threads")
        assert host.read_line() == "ready"

        wait_until(lambda: host.get("web.apps")[0] == 200, 10, "the Kubernetes service to become routable")
        assert host.served("web.apps", 3) == ["k8s-web"] * 3
        assert host.get("fed")[0] == 503
        assert host.send(f"add fed.default {LOCAL} {fed.port}") == "published 0"
        assert host.served("fed", 3) == ["fed"] * 3
        assert host.served("web.apps", 3) == ["k8s-web"] * 3  # the other source's routing stays

        # A Kubernetes change still arrives after the program's source published.
        api.kubectl("delete", "endpointslice", "web-1", "-n", "apps")
        wait_until(lambda: host.get("web.apps")[0] != 200, 10, "the deleted endpoints to stop serving")
        assert host.served("fed", 2) == ["fed"] * 2
        assert host.finish() == host.requests


def test_stop_on_the_programs_io_context_cuts_the_request_in_flight(host_factory, backend_factory):
    """On the program's io_context, stop() cannot stop the context: it closes the listener and every
    connection on it (the request in flight is cut, as on the proxy's own threads), waits there for their
    handlers, and then the program's thread is free: well before the slow response would have come."""
    import threading

    slow = backend_factory("slow")
    services = [{"name": "slow", "clusters": [cluster(LOCAL, slow)]}]
    host = host_factory(lambda port: config(port, services, [route("slow", "slow")]), "io-context")
    assert host.read_line() == "ready"
    result = {}

    def slow_get():
        try:
            result["answer"] = host.get("slow", "/delay/3000")
        except (OSError, http.client.HTTPException) as e:
            result["error"] = e
    t = threading.Thread(target=slow_get)
    t.start()
    # The request is in flight, the backend sleeping, once the proxy has connected there.
    wait_until(lambda: slow.connections_seen() >= 1, 10, "the request to reach the backend")
    started = time.monotonic()
    assert host.finish() == 1
    assert time.monotonic() - started < 2.0  # did not wait for the 3 s response
    t.join(timeout=10)
    assert "error" in result, result  # the connection was closed without a response