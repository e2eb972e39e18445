"""End to end through the data plane: a sluice sidecar in cluster-2 routes to cluster-1's sluice
gateway through the ServiceImport that `sluice sync` wrote (nothing hand-written), then follows the
export's removal. Free loopback ports, so it runs beside the seed scenario."""
import http.client
import json
import os
import subprocess
import tempfile

import pytest

from sync_harness import SLUICE, BUILD_DIR, Cluster, Sync, free_port, key, service, service_export, wait_for

BACKEND = os.path.join(BUILD_DIR, "tests", "backend", "sluice-testbackend")


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start(procs, args, log):
    p = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    procs.append(p)
    return p


def get(port, host, path="/", admin=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read().decode().strip()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def sluice(procs, work, name, cfg):
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    start(procs, [SLUICE, "--config", path], os.path.join(work, name + ".log"))
    wait_for(lambda: get(cfg["admin"]["port"], "admin", "/ready")[0] == 200, timeout=20, what=f"{name} ready")


def test_sidecar_in_cluster_2_reaches_cluster_1_through_imports_sync_wrote(procs):
    if not os.path.isfile(BACKEND):
        pytest.fail(f"build {BACKEND} first")
    work = tempfile.mkdtemp(prefix="sluice-sync-e2e-")
    c1, c2 = Cluster("cluster-1"), Cluster("cluster-2")
    try:
        backend_port, gw_port, sc_port = free_port(), free_port(), free_port()
        start(procs, [BACKEND, "--listen", f"127.0.0.1:{backend_port}", "--name", "httpbin-cluster1"],
              os.path.join(work, "backend.log"))
        wait_for(lambda: get(backend_port, "x")[1] == "httpbin-cluster1", what="backend")
        # cluster-1: the Service, its pod, the export; cluster-2: only the policy allowing cluster-1.
        c1.create(service())
        c1.api.load([{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": "httpbin-1", "namespace": "httpbin",
                                   "labels": {"kubernetes.io/service-name": "httpbin"}},
                      "addressType": "IPv4", "ports": [{"name": "http", "port": backend_port}],
                      "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}])
        c1.create(service_export())
        c2.api.load([{"apiVersion": "flomesh.io/v1alpha1", "kind": "GlobalTrafficPolicy",
                      "metadata": {"name": "httpbin", "namespace": "httpbin"},
                      "spec": {"lbType": "ActiveActive", "targets": [{"clusterKey": key("cluster-1")}]}}])
        sluice(procs, work, "gateway-1", {
            "cluster": key("cluster-1"), "workers": 1,
            "admin": {"address": "127.0.0.1", "port": free_port()},
            "kubernetes": {"enabled": True, "kubeconfig": c1.api.kubeconfig},
            "listeners": [{"name": "gateway", "address": "127.0.0.1", "port": gw_port, "role": "gateway"}]})
        sluice(procs, work, "sidecar-2", {
            "cluster": key("cluster-2"), "workers": 1,
            "admin": {"address": "127.0.0.1", "port": free_port()},
            "kubernetes": {"enabled": True, "kubeconfig": c2.api.kubeconfig},
            "listeners": [{"name": "outbound", "address": "127.0.0.1", "port": sc_port, "role": "sidecar"}]})
        # No import yet: the sidecar has nowhere to send httpbin.
        assert get(sc_port, "httpbin.httpbin:8080")[0] in (404, 503)

        s = Sync([c1, c2], gateways={"cluster-1": ("127.0.0.1", gw_port), "cluster-2": ("127.0.0.1", free_port())})
        s.start()
        procs.append(s.proc)
        wait_for(lambda: get(sc_port, "httpbin.httpbin:8080") == (200, "httpbin-cluster1"), timeout=20,
                 what="the sidecar routes to cluster-1's gateway")
        imp = c2.import_()
        assert imp["spec"]["ports"][0]["endpoints"] == [
            {"clusterKey": key("cluster-1"),
             "target": {"host": "127.0.0.1", "ip": "127.0.0.1", "port": gw_port, "path": "/httpbin"}}]

        # The export goes: sync deletes the import and the sidecar stops routing there.
        c1.delete("ServiceExport")
        wait_for(lambda: c2.import_() is None, what="import deleted")
        wait_for(lambda: get(sc_port, "httpbin.httpbin:8080")[0] in (404, 503), timeout=10,
                 what="the sidecar stops routing to cluster-1")
    finally:
        c1.stop()
        c2.stop()
