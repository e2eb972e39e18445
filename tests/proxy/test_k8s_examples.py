"""examples/kubernetes/: the manifests parse, every embedded sluice config passes `sluice --check`,
RBAC is read-only and limited to what discovery watches, and the Deployments agree with their configs
(probe ports = admin port, container ports = listener ports, drain fits in the grace period), and
the two configs, run as they are (only addresses moved to loopback, ports to free ones, the kubeconfig
to an API server stand-in per cluster), carry the seed's request: app -> sidecar (cluster-2) ->
gateway (cluster-1) -> httpbin pod.

kubectl cannot help here: `kubectl apply --dry-run=client` still asks a server for the API groups, so
the manifests are parsed with python3-yaml (Debian package).
"""
import copy
import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from integ_harness import REPO, SLUICE, Backend, ProcessGroup, Sluice, curl_status, free_port, wait_until

sys.path.insert(0, str(REPO / "tests" / "k8s"))
from standin import StandIn  # noqa: E402

EXAMPLES = REPO / "examples" / "kubernetes"
MANIFESTS = ["gateway.yaml", "sidecar.yaml"]

# What discovery/resource_watch.cpp lists and watches, per API group.
WATCHED = {
    "": {"services"},
    "discovery.k8s.io": {"endpointslices"},
    "flomesh.io": {"serviceimports", "serviceexports", "globaltrafficpolicies"},
    "multicluster.x-k8s.io": {"serviceimports"},
}
READ_ONLY = {"get", "list", "watch"}


def load(name):
    with open(EXAMPLES / name) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, f"{name}: no objects"
    return docs


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def embedded_configs(docs):
    """(ConfigMap name, parsed config, raw text) for every ConfigMap holding a sluice.json."""
    out = []
    for cm in of_kind(docs, "ConfigMap"):
        text = cm.get("data", {}).get("sluice.json")
        if text is not None:
            out.append((cm["metadata"]["name"], json.loads(text), text))
    return out


def duration_s(text):
    """A config duration ("20s", "1m30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


def pod_containers(deploy):
    spec = deploy["spec"]["template"]["spec"]
    return spec, spec.get("containers", []) + spec.get("initContainers", [])


def sluice_container(deploy):
    _, containers = pod_containers(deploy)
    found = [c for c in containers if "--config" in c.get("args", [])]
    assert len(found) == 1, deploy["metadata"]["name"]
    return found[0]


@pytest.mark.parametrize("name", MANIFESTS)
def test_objects_are_well_formed(name):
    for d in load(name):
        assert {"apiVersion", "kind", "metadata"} <= d.keys(), d
        assert isinstance(d["metadata"].get("name"), str) and d["metadata"]["name"], d
        ns = d["metadata"].get("namespace")
        # YAML 1.1 reads some bare words (y, no, on) as booleans; names must stay strings.
        assert ns is None or isinstance(ns, str), d


@pytest.mark.parametrize("name", MANIFESTS)
def test_embedded_config_passes_check(name, tmp_path):
    configs = embedded_configs(load(name))
    assert configs, f"{name}: no ConfigMap with sluice.json"
    for cm_name, _, text in configs:
        path = tmp_path / f"{cm_name}.json"
        path.write_text(text)
        r = subprocess.run([str(SLUICE), "--config", str(path), "--check"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and "config OK" in r.stdout, f"{name} {cm_name}: {r.stdout}{r.stderr}"


def test_check_catches_a_broken_embedded_config(tmp_path):
    """The check above can fail: the same config with a typo is refused."""
    _, cfg, _ = embedded_configs(load("gateway.yaml"))[0]
    cfg["listeners"][0]["rol"] = cfg["listeners"][0].pop("role")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([str(SLUICE), "--config", str(path), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "listeners[0].rol" in r.stdout + r.stderr


@pytest.mark.parametrize("name", MANIFESTS)
def test_rbac_is_read_only_and_limited_to_watched_resources(name):
    roles = [d for d in load(name) if d["kind"] in ("ClusterRole", "Role")]
    assert roles, f"{name}: no RBAC role"
    for role in roles:
        granted = {}
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= READ_ONLY, (role["metadata"]["name"], rule)
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
            for group in rule["apiGroups"]:
                assert group in WATCHED, (role["metadata"]["name"], group)
                assert set(rule["resources"]) <= WATCHED[group], (role["metadata"]["name"], rule)
                granted.setdefault(group, set()).update(rule["resources"])
        # Everything discovery watches must be granted, or its list would get 403 forever.
        assert granted == WATCHED, role["metadata"]["name"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_bindings_name_existing_roles_and_service_accounts(name):
    docs = load(name)
    roles = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs
             if d["kind"] in ("ClusterRole", "Role")}
    accounts = {(d["metadata"]["name"], d["metadata"]["namespace"]) for d in of_kind(docs, "ServiceAccount")}
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert bindings
    for b in bindings:
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], ref["name"], ns) in roles, b["metadata"]["name"]
        for s in b["subjects"]:
            assert s["kind"] == "ServiceAccount" and (s["name"], s["namespace"]) in accounts, s
    # Every pod runs as a bound service account.
    bound = {(s["name"], s["namespace"]) for b in bindings for s in b["subjects"]}
    for deploy in of_kind(docs, "Deployment"):
        sa = deploy["spec"]["template"]["spec"]["serviceAccountName"]
        assert (sa, deploy["metadata"]["namespace"]) in bound


@pytest.mark.parametrize("name", MANIFESTS)
def test_deployment_matches_its_config(name):
    docs = load(name)
    configs = {cm: cfg for cm, cfg, _ in embedded_configs(docs)}
    deploys = of_kind(docs, "Deployment")
    assert len(deploys) == 1
    deploy = deploys[0]
    spec, _ = pod_containers(deploy)
    c = sluice_container(deploy)
    args = c["args"]
    config_path = args[args.index("--config") + 1]
    # The config file comes from the ConfigMap volume mounted at its directory.
    mount = next(m for m in c["volumeMounts"] if config_path.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    cfg = configs[volume["configMap"]["name"]]
    assert config_path.endswith("/sluice.json")

    # Probes reach the admin endpoint on the pod IP.
    admin = cfg["admin"]
    assert admin.get("enabled", True) and admin["address"] in ("0.0.0.0", "::")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert ports[get["port"]] == admin["port"], probe
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/live"
    # Every declared container port is a listener or the admin port.
    bound = {l["port"] for l in cfg["listeners"]} | {admin["port"]}
    assert set(ports.values()) <= bound

    # Discovery uses the in-cluster service account.
    assert cfg["kubernetes"]["enabled"] is True and cfg["kubernetes"].get("kubeconfig", "") == ""

    # preStop + drain fit in the grace period, so SIGKILL never cuts a request the drain would finish.
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert pre_stop + duration_s(cfg.get("timeouts", {}).get("drain", "10s")) < grace

    # Hardening and bounded resources.
    sc = {**spec.get("securityContext", {}), **c.get("securityContext", {})}
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys() <= c["resources"]["limits"].keys()
    # workers bounded (0 would start one per node core, whatever the CPU limit).
    assert 1 <= cfg["workers"] <= 4


def test_gateway_service_exposes_only_the_gateway_listener():
    docs = load("gateway.yaml")
    _, cfg, _ = embedded_configs(docs)[0]
    assert cfg["cluster"] == "default/default/default/cluster-1"
    gateways = [l for l in cfg["listeners"] if l["role"] == "gateway"]
    assert len(gateways) == 1 and gateways[0]["address"] == "0.0.0.0"
    deploy = of_kind(docs, "Deployment")[0]
    assert deploy["spec"]["replicas"] == 2
    c = sluice_container(deploy)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    (svc,) = of_kind(docs, "Service")
    assert svc["spec"]["type"] in ("LoadBalancer", "NodePort")
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    targets = [ports[p["targetPort"]] if isinstance(p["targetPort"], str) else p["targetPort"]
               for p in svc["spec"]["ports"]]
    assert targets == [gateways[0]["port"]]
    # The ClusterRole is cluster-wide because the gateway watches every namespace.
    assert cfg["kubernetes"].get("namespaces", []) == []


def test_sidecar_host_aliases_reach_a_sidecar_listener():
    docs = load("sidecar.yaml")
    _, cfg, _ = embedded_configs(docs)[0]
    assert cfg["cluster"] == "default/default/default/cluster-2"
    deploy = of_kind(docs, "Deployment")[0]
    spec = deploy["spec"]["template"]["spec"]
    sidecar_listeners = {l["address"] for l in cfg["listeners"] if l["role"] == "sidecar" and l["port"] == 8080}
    aliases = spec["hostAliases"]
    assert aliases
    for a in aliases:
        assert a["ip"] in sidecar_listeners, a
        assert "httpbin.httpbin" in a["hostnames"]
    # The outbound listener an iptables redirection would use.
    assert {"address": "127.0.0.1", "port": 15001, "role": "sidecar", "name": "outbound"} in cfg["listeners"]
    # Inbound: a non-sidecar listener whose route passes everything to the local app on 127.0.0.1:8080.
    (inbound,) = [l for l in cfg["listeners"] if l["role"] == "standalone"]
    (route,) = [r for r in cfg["routes"] if r.get("listener") == inbound["name"]]
    svc_name, svc_ns = route["service"].split(".")
    (svc,) = [s for s in cfg["services"] if s["name"] == svc_name and s.get("namespace", "default") == svc_ns]
    (local,) = svc["clusters"]
    assert local["cluster"] == cfg["cluster"] and local["endpoints"] == ["127.0.0.1:8080"]
    # The namespaces watched are exactly those with a Role + RoleBinding.
    role_ns = {d["metadata"]["namespace"] for d in of_kind(docs, "Role")}
    binding_ns = {d["metadata"]["namespace"] for d in of_kind(docs, "RoleBinding")}
    assert set(cfg["kubernetes"]["namespaces"]) == role_ns == binding_ns
    # The sluice container mounts the token (in-cluster credentials).
    assert spec.get("automountServiceAccountToken", True) is True


# ---- the configs at work: sidecar (cluster-2) -> gateway (cluster-1) -> pod ----------------------

HOST_ALIAS_IP = "127.0.0.6"  # the sidecar's hostAliases address; loopback here as in the pod
READY_TIMEOUT_S = 20


def on_loopback(cfg, kubeconfig, endpoint_map=None):
    """The manifest's config with wildcard addresses on 127.0.0.1, every port free, the kubeconfig set
    (in a pod: the service account), static endpoints moved by endpoint_map. Nothing else changes."""
    cfg = copy.deepcopy(cfg)
    for item in cfg["listeners"] + [cfg["admin"]]:
        if item["address"] in ("0.0.0.0", "::"):
            item["address"] = "127.0.0.1"
        item["port"] = free_port(item["address"])
    cfg["kubernetes"]["kubeconfig"] = kubeconfig
    for svc in cfg.get("services", []):
        for cl in svc.get("clusters", []):
            cl["endpoints"] = [(endpoint_map or {}).get(e, e) for e in cl["endpoints"]]
    return cfg


def listener(cfg, name):
    (l,) = [l for l in cfg["listeners"] if l["name"] == name]
    return l


def wait_ready(cfg, proc):
    url = f"http://{cfg['admin']['address']}:{cfg['admin']['port']}/ready"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, proc.stderr()
        if curl_status(url, timeout=5)[0] == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} not 200 within {READY_TIMEOUT_S}s: {proc.stderr()}")


def cluster1_objects(pod_port):
    """cluster-1 as in the seed: the httpbin Service, its EndpointSlice (one pod here) and the export."""
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: httpbin}}
---
apiVersion: v1
kind: Service
metadata: {{name: httpbin, namespace: httpbin}}
spec:
  ports: [{{name: http, port: 8080, targetPort: {pod_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: httpbin-abcde
  namespace: httpbin
  labels: {{kubernetes.io/service-name: httpbin}}
addressType: IPv4
ports: [{{name: http, port: {pod_port}}}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
---
apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata: {{name: httpbin, namespace: httpbin}}
spec:
  serviceAccountName: "*"
  rules:
    - portNumber: 8080
      path: /httpbin
      pathType: Prefix
"""


def cluster2_objects(gateway_port):
    """cluster-2: no httpbin pods, the ServiceImport the control plane syncs (cluster-1's gateway)."""
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: httpbin}}
---
apiVersion: flomesh.io/v1alpha1
kind: ServiceImport
metadata: {{name: httpbin, namespace: httpbin}}
spec:
  type: ClusterSetIP
  serviceAccountName: "*"
  sessionAffinity: None
  ports:
    - name: http
      protocol: TCP
      port: 8080
      endpoints:
        - clusterKey: default/default/default/cluster-1
          target: {{host: 127.0.0.1, ip: 127.0.0.1, port: {gateway_port}, path: /httpbin}}
"""


GTP_ACTIVE_ACTIVE = """
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: httpbin, namespace: httpbin}
spec:
  lbType: ActiveActive
  targets: [{clusterKey: default/default/default/cluster-1}]
"""


@pytest.fixture
def group():
    g = ProcessGroup()
    yield g
    g.kill_all()


def test_sidecar_and_gateway_configs_carry_the_seed_request(group, tmp_path):
    (_, gw_manifest, _), = embedded_configs(load("gateway.yaml"))
    (_, sc_manifest, _), = embedded_configs(load("sidecar.yaml"))
    pod = Backend(group, tmp_path, "httpbin-cluster-1")
    app = Backend(group, tmp_path, "curl-app")

    with StandIn() as api1, StandIn() as api2:
        gw_cfg = on_loopback(gw_manifest, api1.kubeconfig)
        gw_port = listener(gw_cfg, "gateway")["port"]
        api1.kubectl("create", "-f", "-", input=cluster1_objects(pod.port))
        api2.kubectl("create", "-f", "-", input=cluster2_objects(gw_port))

        gateway = Sluice(group, tmp_path, gw_cfg, name="gateway")
        wait_ready(gw_cfg, gateway)
        # The export is the only way in: /httpbin/... reaches the pod with the prefix stripped.
        assert curl_status(f"http://127.0.0.1:{gw_port}/httpbin/status/201") == (201, b"status 201 from httpbin-cluster-1\n")
        assert curl_status(f"http://127.0.0.1:{gw_port}/other")[0] == 404
        status, body = curl_status(f"http://127.0.0.1:{gw_cfg['admin']['port']}/explain"
                                   "?host=any&path=/httpbin/get&listener=gateway")
        assert status == 200 and json.loads(body)["route"]["service"] == "httpbin.httpbin", body

        sc_cfg = on_loopback(sc_manifest, api2.kubeconfig, {"127.0.0.1:8080": app.address})
        sidecar = Sluice(group, tmp_path, sc_cfg, name="sidecar")
        wait_ready(sc_cfg, sidecar)

        # What `curl http://httpbin.httpbin:8080/...` does in the pod: the host alias sends it to the
        # sidecar listener on 127.0.0.6 (here on a free port instead of 8080).
        out = listener(sc_cfg, "outbound-8080")
        assert out["address"] == HOST_ALIAS_IP
        url = f"http://httpbin.httpbin:{out['port']}/status/201"
        resolve = ("--resolve", f"httpbin.httpbin:{out['port']}:{HOST_ALIAS_IP}")
        # Seed step 1: no policy, no local pods -> the "no endpoint" answer.
        assert curl_status(url, *resolve)[0] == 503
        # Seed step 2: the ActiveActive policy -> cluster-1's pod through its gateway.
        api2.kubectl("create", "-f", "-", input=GTP_ACTIVE_ACTIVE)
        def routed():
            got = curl_status(url, *resolve)
            return got if got[0] == 201 else None
        got = wait_until(routed, 5, "the ActiveActive policy to route to cluster-1")
        assert got == (201, b"status 201 from httpbin-cluster-1\n"), sidecar.stdout()
        # The 127.0.0.1:15001 listener (iptables redirection's target) routes the same way.
        outbound = listener(sc_cfg, "outbound")
        assert curl_status(f"http://127.0.0.1:{outbound['port']}/status/201",
                           "-H", "Host: httpbin.httpbin:8080") == (201, b"status 201 from httpbin-cluster-1\n")
        # An unknown host gets the "no route" answer.
        assert curl_status(url.replace("httpbin.httpbin", "nothere.httpbin"),
                           "--resolve", f"nothere.httpbin:{out['port']}:{HOST_ALIAS_IP}")[0] == 404

        # Inbound: mesh traffic to the pod's port goes to the app unchanged, 5xx included, no retry.
        inbound = listener(sc_cfg, "inbound")
        assert curl_status(f"http://127.0.0.1:{inbound['port']}/status/202") == (202, b"status 202 from curl-app\n")
        for _ in range(6):  # more than outlier detection's default 5: the app is never ejected
            assert curl_status(f"http://127.0.0.1:{inbound['port']}/status/503")[0] == 503
        assert curl_status(f"http://127.0.0.1:{inbound['port']}/")[0] == 200

        # /explain for the host the app uses, on the listener it reaches (discovery's routes are per
        # sidecar listener, and this config has two, so the listener is named).
        admin = f"http://127.0.0.1:{sc_cfg['admin']['port']}"
        status, body = curl_status(f"{admin}/explain?host=httpbin.httpbin:8080&path=/&listener=outbound-8080")
        explain = json.loads(body)
        assert status == 200 and explain["route"]["service"] == "httpbin.httpbin", explain
        assert explain["route"]["listener"] == "outbound-8080"
        assert explain["service"]["policy"] == "ActiveActive", explain
        assert [(c["cluster"], c["port"], c["upstream_target"]) for c in explain["candidates"]] == \
            [("default/default/default/cluster-1", gw_port, "/httpbin/")], explain
