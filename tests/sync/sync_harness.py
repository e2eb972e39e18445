"""Helpers for the `sluice sync` integration tests: one API stand-in per member cluster (tests/k8s), the
real binary started with a config naming their kubeconfigs, and the objects users write."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "k8s"))

from standin import StandIn, wait_for  # noqa: E402,F401

BUILD_DIR = os.environ.get("SLUICE_BUILD_DIR") or os.path.join(REPO, "build")
SLUICE = os.path.join(BUILD_DIR, "cli", "sluice")
MANAGED = {"app.kubernetes.io/managed-by": "sluice-sync"}
IMPORTS = "/apis/flomesh.io/v1alpha1/namespaces/{ns}/serviceimports"
EXPORTS = "/apis/flomesh.io/v1alpha1/namespaces/{ns}/serviceexports"
SERVICES = "/api/v1/namespaces/{ns}/services"
GATEWAYS = {"cluster-1": ("127.0.0.11", 18081), "cluster-2": ("127.0.0.12", 18082), "cluster-3": ("127.0.0.13", 18083)}


def key(name):
    return f"default/default/default/{name}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name="httpbin", ns="httpbin", ports=(("http", 8080),), cluster_ip=None):
    spec = {"ports": [{"name": n, "port": p, "protocol": "TCP", "targetPort": p} for n, p in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def service_export(name="httpbin", ns="httpbin", rules=((8080, "/httpbin"),)):
    return {"apiVersion": "flomesh.io/v1alpha1", "kind": "ServiceExport",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"serviceAccountName": "*",
                     "rules": [{"portNumber": p, "path": path, "pathType": "Prefix"} for p, path in rules]}}


def endpoint(cluster, path="/httpbin"):
    host, port = GATEWAYS[cluster]
    return {"clusterKey": key(cluster), "target": {"host": host, "ip": host, "port": port, "path": path}}


class Cluster:
    """A member: its stand-in and the helpers to read and write what sync reads and writes."""

    def __init__(self, name):
        self.name = name
        self.api = StandIn().start()
        self.api.load([namespace("httpbin")])

    def create(self, obj):
        ns = obj["metadata"]["namespace"]
        base = {"Service": SERVICES, "ServiceExport": EXPORTS, "ServiceImport": IMPORTS}[obj["kind"]]
        status, body = self.api.request("POST", base.format(ns=ns), obj)
        assert status == 201, (status, body)
        return body

    def delete(self, kind, name="httpbin", ns="httpbin"):
        base = {"Service": SERVICES, "ServiceExport": EXPORTS, "ServiceImport": IMPORTS}[kind]
        status, body = self.api.request("DELETE", base.format(ns=ns) + "/" + name)
        assert status == 200, (status, body)

    def get(self, kind, name="httpbin", ns="httpbin"):
        base = {"Service": SERVICES, "ServiceExport": EXPORTS, "ServiceImport": IMPORTS}[kind]
        status, body = self.api.request("GET", base.format(ns=ns) + "/" + name)
        return body if status == 200 else None

    def put(self, obj):
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        base = {"Service": SERVICES, "ServiceExport": EXPORTS, "ServiceImport": IMPORTS}[obj["kind"]]
        status, body = self.api.request("PUT", base.format(ns=ns) + "/" + name, obj)
        assert status == 200, (status, body)
        return body

    def update(self, kind, change, name="httpbin", ns="httpbin"):
        """Read, change(obj), PUT; again on 409 (sync writes the export's status meanwhile), as
        kubectl edit and client-go's RetryOnConflict do."""
        for _ in range(10):
            obj = self.get(kind, name, ns)
            change(obj)
            base = {"Service": SERVICES, "ServiceExport": EXPORTS, "ServiceImport": IMPORTS}[kind]
            status, body = self.api.request("PUT", base.format(ns=ns) + "/" + name, obj)
            if status == 200:
                return body
            assert status == 409, (status, body)
        raise AssertionError(f"{kind} {ns}/{name}: 10 conflicts in a row")

    def import_(self):
        return self.get("ServiceImport")

    def endpoints(self, port=0):
        """The import's endpoints of its port `port` (index), None when there is no import."""
        return self.endpoints_of("httpbin", port)

    def endpoints_of(self, name, port=0, ns="httpbin"):
        imp = self.get("ServiceImport", name, ns)
        if imp is None:
            return None
        ports = imp["spec"]["ports"]
        return ports[port]["endpoints"] if len(ports) > port else []

    def conditions(self):
        exp = self.get("ServiceExport")
        conds = (exp or {}).get("status", {}).get("conditions", [])
        return {c["type"]: c for c in conds}

    def writes(self):
        """The stand-in's write counters (create, update, delete, patch)."""
        c = self.api.state()["counters"]
        return {v: c.get(v, 0) for v in ("create", "update", "delete", "patch")}

    def stop(self):
        self.api.cleanup()


class Sync:
    """`sluice sync` over some clusters."""

    def __init__(self, clusters, resync="30s", ttl="5m", extra=None, gateways=None):
        self.clusters = clusters
        self.dir = tempfile.mkdtemp(prefix="sluice-sync-")
        self.admin_port = free_port()
        gateways = gateways or GATEWAYS
        cfg = {"members": [{"name": c.name, "kubeconfig": c.api.kubeconfig,
                            "gateway": {"host": gateways[c.name][0], "port": gateways[c.name][1]}}
                           for c in clusters],
               "resync_interval": resync, "member_ttl": ttl, "coalesce": "20ms",
               "admin": {"address": "127.0.0.1", "port": self.admin_port}}
        cfg.update(extra or {})
        self.config = os.path.join(self.dir, "sync.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.log_path = os.path.join(self.dir, "sync.log")
        self.proc = None

    def start(self, wait_ready=True):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SLUICE, "sync", "--config", self.config], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait_ready:
            wait_for(lambda: self.admin("/ready")[0] == 200, timeout=20, what="sync /ready")
        return self

    def admin(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"sluice sync exited {self.proc.returncode}:\n{self.log()}")
            return 0, ""

    def stat(self, name, labels=""):
        """One sample of /stats, e.g. stat("sluice_sync_writes_total", 'verb="create"')."""
        want = f"{name}{{{labels}}}" if labels else name
        for line in self.admin("/stats")[1].splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None
