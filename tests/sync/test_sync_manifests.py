"""examples/kubernetes/sync.yaml and sync-member-rbac.yaml: the embedded config passes
`sluice sync --check`, the Deployment runs `sluice sync` with it, and the RBAC is exactly what the
binary uses: a run against API stand-ins that log every request (creates, updates, status writes,
deletes, re-reads after 409s, the Lease) must use every granted (group, resource, verb) and no other."""
import json
import os
import re
import subprocess
import time

import yaml

from sync_harness import REPO, SLUICE, Cluster, Sync, StandIn, endpoint, service, service_export, wait_for

EXAMPLES = os.path.join(REPO, "examples", "kubernetes")


def load(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def rules(docs, kind):
    out = set()
    for d in docs:
        if d["kind"] == kind:
            for r in d["rules"]:
                for g in r["apiGroups"]:
                    for res in r["resources"]:
                        for v in r["verbs"]:
                            out.add((g, res, v))
    return out


def test_embedded_config_passes_check_and_the_deployment_uses_it(tmp_path):
    docs = load("sync.yaml")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    path = tmp_path / "sync.json"
    path.write_text(cm["data"]["sync.json"])
    r = subprocess.run([SLUICE, "sync", "--config", str(path), "--check"], capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == (0, "config OK"), r.stderr
    dep = next(d for d in docs if d["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["sync", "--config", "/etc/sluice-sync/sync.json"]
    cfg = json.loads(cm["data"]["sync.json"])
    assert c["ports"][0]["containerPort"] == cfg["admin"]["port"]
    assert cfg["leader_election"]["namespace"] == dep["metadata"]["namespace"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    for m in cfg["members"]:
        assert os.path.dirname(m["kubeconfig"]) in mounts


def used(log_text):
    """(group, resource, verb) of every request of sluice (its User-Agent) in a stand-in's verbose log."""
    out = set()
    for method, target in re.findall(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1.1".* agent=sluice', log_text):
        path, _, query = target.partition("?")
        m = re.match(r"^/(?:api/v1|apis/([^/]+)/[^/]+)(?:/namespaces/[^/]+)?/([a-z]+)(?:/([^/]+))?(?:/(status))?$", path)
        if not m:
            continue   # discovery documents
        group, resource, name, sub = m.group(1) or "", m.group(2), m.group(3), m.group(4)
        if resource == "namespaces" and name is None:
            continue
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None:
            verb = "watch" if "watch=" in query else ("get" if name else "list")
        out.add((group, resource + ("/status" if sub else ""), verb))
    return out


def test_rbac_is_exactly_what_sync_uses():
    member_rules = rules(load("sync-member-rbac.yaml"), "ClusterRole")
    home_rules = rules(load("sync.yaml"), "Role")
    c1, c2 = Cluster("cluster-1"), Cluster("cluster-2")
    for c in (c1, c2):
        c.api.stop()
        c.api = StandIn(verbose=True, certs_dir=c.api.certs_dir, workdir=c.api.workdir).start()
        c.api.load([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "httpbin"}}])
    try:
        s = Sync([c1, c2], extra={"leader_election": {"namespace": "default", "name": "sluice-sync"}}).start()
        try:
            wait_for(lambda: s.stat("sluice_sync_leader") == 1, what="leading")
            # 409s on an import write and on an export status write: both re-read (get).
            c2.api.fault(status=409, count=1, match="namespaces/httpbin/serviceimports")
            c1.api.fault(status=409, count=1, match="namespaces/httpbin/serviceexports/httpbin/status")
            c1.create(service())
            c1.create(service_export())
            # Conditions are written after every member's import: wait for them before reading c2's
            # import, so that the test's own GET cannot take the 409 meant for sync.
            wait_for(lambda: c1.conditions().get("Conflict"), what="conditions")
            wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="import")
            # A new port name: the import's spec changes (update).
            c1.update("Service", lambda svc: svc["spec"]["ports"][0].update(name="web"))
            wait_for(lambda: c2.import_()["spec"]["ports"][0].get("name") == "web", what="import updated")
            c1.delete("ServiceExport")
            wait_for(lambda: c2.import_() is None, what="import deleted")
            time.sleep(2.5)  # a Lease renewal
        finally:
            s.stop()
        uses = used(c1.api.log()) | used(c2.api.log())
    finally:
        c1.stop()
        c2.stop()
    lease = {u for u in uses if u[0] == "coordination.k8s.io"}
    assert lease == home_rules
    assert uses - lease == member_rules
