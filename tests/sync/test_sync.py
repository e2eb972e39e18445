"""`sluice sync` end to end: the real binary against one Kubernetes API stand-in per member cluster
(tests/k8s), writing the flomesh.io ServiceImports the data plane routes by (issue 16).

Run: SLUICE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest tests/sync -q
"""
import json
import os
import time

import pytest

from sync_harness import (MANAGED, Cluster, Sync, endpoint, key, service, service_export, wait_for)


@pytest.fixture
def clusters():
    made = [Cluster(f"cluster-{i}") for i in (1, 2, 3)]
    yield made
    for c in made:
        c.stop()


@pytest.fixture
def sync_proc():
    started = []

    def start(clusters, **kw):
        s = Sync(clusters, **kw).start()
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def export(cluster, **kw):
    cluster.create(service(**{k: v for k, v in kw.items() if k in ("ports", "cluster_ip")}))
    cluster.create(service_export(**{k: v for k, v in kw.items() if k == "rules"}))


def test_one_export_reaches_the_other_members_with_exact_targets(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    s = sync_proc(clusters)
    for c in (c2, c3):
        wait_for(lambda: c.endpoints() == [endpoint("cluster-1")], what=f"import in {c.name}")
        imp = c.import_()
        assert imp["metadata"]["labels"] == MANAGED
        assert imp["spec"]["type"] == "ClusterSetIP"
        assert [(p["name"], p["protocol"], p["port"]) for p in imp["spec"]["ports"]] == [("http", "TCP", 8080)]
        assert imp["status"]["clusters"] == [{"cluster": "cluster-1", "addresses": ["http://127.0.0.11:18081/httpbin"]}]
    # The exporter's own import leaves its own gateway out.
    wait_for(lambda: c1.endpoints() == [], what="cluster-1's import without itself")
    wait_for(lambda: c1.conditions().get("Conflict", {}).get("reason") == "NoConflicts", what="conditions")
    conds = c1.conditions()
    assert conds["Valid"]["status"] == "True"
    assert conds["Conflict"]["status"] == "False"
    assert s.stat("sluice_sync_writes_total", 'verb="create"') == 3
    # /explain shows each member's desired import and the export's verdict.
    code, text = s.admin("/explain?service=httpbin/httpbin")
    explained = json.loads(text)
    assert code == 200
    assert explained["desired"]["cluster-2"]["spec"] == c2.import_()["spec"]
    assert [(e["cluster_key"], e["valid"], e["conflict_reason"]) for e in explained["exports"]] == \
        [(key("cluster-1"), True, "NoConflicts")]


def test_two_exporters_in_key_order_then_removed_one_by_one(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c3)        # the older export is cluster-3's: endpoints still go by cluster key
    time.sleep(1.1)   # creationTimestamp has whole seconds
    export(c1)
    sync_proc(clusters)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], what="both in cluster-2")
    wait_for(lambda: c1.endpoints() == [endpoint("cluster-3")], what="cluster-3 in cluster-1")
    wait_for(lambda: c3.endpoints() == [endpoint("cluster-1")], what="cluster-1 in cluster-3")
    assert [c["cluster"] for c in c2.import_()["status"]["clusters"]] == ["cluster-1", "cluster-3"]

    c3.delete("ServiceExport")
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="cluster-1 left in cluster-2")
    wait_for(lambda: c1.endpoints() == [], what="nothing left in cluster-1's import")
    wait_for(lambda: c3.endpoints() == [endpoint("cluster-1")], what="cluster-3 still imports cluster-1")

    c1.delete("ServiceExport")
    for c in clusters:
        wait_for(lambda: c.import_() is None, what=f"import deleted in {c.name}")


def test_a_service_deleted_before_its_export(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    sync_proc(clusters)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="import")
    c1.delete("Service")   # the export stays, its Service is gone: not a valid export any more
    for c in clusters:
        wait_for(lambda: c.import_() is None, what=f"import deleted in {c.name}")
    wait_for(lambda: c1.conditions().get("Valid", {}).get("reason") == "NoService", what="Valid=False NoService")
    assert c1.conditions()["Valid"]["status"] == "False"


def test_port_conflict_oldest_wins_and_is_cleared_after_the_fix(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    time.sleep(1.1)
    export(c3, ports=(("http", 9090),), rules=((9090, "/httpbin"),))
    sync_proc(clusters)
    wait_for(lambda: c3.conditions().get("Conflict", {}).get("status") == "True", what="conflict on cluster-3")
    conflict = c3.conditions()["Conflict"]
    assert conflict["reason"] == "PortConflict"
    assert "cluster-1" in conflict["message"]
    wait_for(lambda: c1.conditions().get("Conflict", {}).get("reason") == "NoConflicts", what="cluster-1 clean")
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="only the oldest in cluster-2")
    assert c2.import_()["spec"]["ports"][0]["port"] == 8080

    # The fix: cluster-3's Service and export move to 8080.
    c3.update("Service", lambda svc: svc["spec"].update(
        ports=[{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}]))
    c3.update("ServiceExport", lambda exp: exp["spec"]["rules"][0].update(portNumber=8080))
    wait_for(lambda: c3.conditions().get("Conflict", {}).get("reason") == "NoConflicts", what="conflict cleared")
    assert c3.conditions()["Conflict"]["status"] == "False"
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], what="both after the fix")


def test_type_conflict_leaves_the_later_export_out(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    time.sleep(1.1)
    export(c3, cluster_ip="None")
    sync_proc(clusters)
    wait_for(lambda: c3.conditions().get("Conflict", {}).get("reason") == "TypeConflict", what="type conflict")
    assert "cluster-1" in c3.conditions()["Conflict"]["message"]
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="cluster-1 only")


def test_an_unlabelled_import_is_left_untouched(clusters, sync_proc):
    c1, c2, c3 = clusters
    hand = {"apiVersion": "flomesh.io/v1alpha1", "kind": "ServiceImport",
            "metadata": {"name": "httpbin", "namespace": "httpbin"},
            "spec": {"type": "ClusterSetIP", "ports": [{"name": "http", "protocol": "TCP", "port": 8080,
                                                         "endpoints": [endpoint("cluster-3")]}]}}
    written = c2.create(hand)
    export(c1)
    s = sync_proc(clusters)
    wait_for(lambda: c3.endpoints() == [endpoint("cluster-1")], what="cluster-3 imports")
    wait_for(lambda: (s.stat("sluice_sync_ownership_conflicts_total") or 0) >= 1, what="ownership conflict counted")
    now = c2.import_()
    assert now["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert now["spec"] == written["spec"]
    assert "not managed by sluice-sync" in s.log()
    # Not deleted either when nothing is exported any more.
    c1.delete("ServiceExport")
    wait_for(lambda: c3.import_() is None, what="managed import collected")
    assert c2.import_()["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]


def test_an_export_deleted_while_sync_was_stopped_is_collected_after_restart(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    first = sync_proc(clusters)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="import")
    wait_for(lambda: c3.endpoints() == [endpoint("cluster-1")], what="import")
    assert first.stop() == 0
    c1.delete("ServiceExport")
    sync_proc(clusters)
    for c in clusters:
        wait_for(lambda: c.import_() is None, what=f"import collected in {c.name}")


def test_no_write_when_nothing_changed(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    export(c3)
    s = sync_proc(clusters, resync="300ms")
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], what="import")
    wait_for(lambda: c3.conditions().get("Conflict") and c1.conditions().get("Conflict"), what="conditions")
    time.sleep(0.5)
    before = [c.writes() for c in clusters]
    resyncs = s.stat("sluice_sync_resyncs_total")
    wait_for(lambda: s.stat("sluice_sync_resyncs_total") >= resyncs + 3, what="three more resyncs")
    assert [c.writes() for c in clusters] == before
    assert s.stat("sluice_sync_write_conflicts_total") == 0


@pytest.mark.slow
def test_member_outage_keeps_its_endpoints_until_the_ttl(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    export(c3)
    s = sync_proc(clusters, ttl="4s")
    both = [endpoint("cluster-1"), endpoint("cluster-3")]
    wait_for(lambda: c2.endpoints() == both, what="both in cluster-2")
    deletes = c2.writes()["delete"]
    c3.api.fault(refuse=True)
    wait_for(lambda: s.stat("sluice_sync_member_reachable", 'member="cluster-3"') == 0, what="cluster-3 unreachable")
    went = time.monotonic()
    # Within the TTL the last-known endpoints stay (checked while it lasts; the wait below is the proof).
    while time.monotonic() - went < 2.0:
        assert c2.endpoints() == both
        time.sleep(0.2)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], timeout=15, what="cluster-3 dropped after the TTL")
    assert c2.writes()["delete"] == deletes
    c3.api.fault(refuse=False)
    wait_for(lambda: c2.endpoints() == both, timeout=40, what="cluster-3 back")


def test_injected_errors_dropped_watches_and_410s_converge(clusters, sync_proc):
    c1, c2, c3 = clusters
    s = sync_proc(clusters)
    # Writes (paths under the namespace; lists and watches are cluster-wide) fail first.
    c2.api.fault(status=500, count=2, match="namespaces/httpbin/serviceimports")
    c3.api.fault(status=409, count=1, match="namespaces/httpbin/serviceimports")
    export(c1)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], timeout=20, what="import despite 500s")
    wait_for(lambda: c3.endpoints() == [endpoint("cluster-1")], timeout=20, what="import despite a 409")
    assert s.stat("sluice_sync_write_failures_total") >= 1
    assert s.stat("sluice_sync_write_conflicts_total") >= 1
    for c in clusters:
        c.api.fault(compact=True)
        c.api.fault(watch_410=True)
        c.api.fault(drop_watches=True)
    export(c3)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], timeout=30,
             what="converged after drops and 410s")
    wait_for(lambda: c1.endpoints() == [endpoint("cluster-3")], timeout=30, what="cluster-1 imports cluster-3")


def test_two_replicas_only_the_leader_writes_and_the_other_takes_over(clusters, sync_proc):
    c1, c2, c3 = clusters
    election = {"leader_election": {"namespace": "default", "name": "sluice-sync", "lease_duration": "3s",
                                    "renew_deadline": "2s", "retry_period": "500ms"}}
    export(c1)
    a = sync_proc(clusters, extra=dict(election, leader_election=dict(election["leader_election"], identity="a")))
    wait_for(lambda: a.stat("sluice_sync_leader") == 1, what="a leads")
    b = sync_proc(clusters, extra=dict(election, leader_election=dict(election["leader_election"], identity="b")))
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="import written")
    lease = c1.api.request("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/sluice-sync")[1]
    assert lease["spec"]["holderIdentity"] == "a"
    export(c3)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], what="a writes")
    assert b.stat("sluice_sync_leader") == 0
    assert sum(b.stat("sluice_sync_writes_total", f'verb="{v}"') for v in ("create", "update", "update_status",
                                                                          "delete")) == 0
    # The leader dies without a word: b takes over once the lease has not been renewed for 3 s.
    a.proc.kill()
    a.proc.wait()
    died = time.monotonic()
    c3.delete("ServiceExport")
    wait_for(lambda: b.stat("sluice_sync_leader") == 1, timeout=10, what="b leads")
    took = time.monotonic() - died
    # Not before a's lease could have run out: a renewed at most one retry period (0.5 s) before dying,
    # and b counts the 3 s from when it saw that renewal. (The upper bound is wait_for's.)
    assert took >= 3.0 - 0.5 - 0.5, took
    print(f"takeover after {took:.2f} s")
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="b writes")
    lease = c1.api.request("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/sluice-sync")[1]
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_gateway_address_change_is_followed(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    s = sync_proc(clusters)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="import")
    # The operator moves cluster-1's gateway (a name now, resolved by sync) and edits the config file.
    with open(s.config) as f:
        cfg = json.load(f)
    cfg["members"][0]["gateway"] = {"host": "localhost", "port": 18091}
    with open(s.config + ".new", "w") as f:
        json.dump(cfg, f)
    os.replace(s.config + ".new", s.config)
    moved = [{"clusterKey": key("cluster-1"),
              "target": {"host": "localhost", "ip": "127.0.0.1", "port": 18091, "path": "/httpbin"}}]
    wait_for(lambda: c2.endpoints() == moved, timeout=10, what="the new gateway in cluster-2")
    wait_for(lambda: c3.endpoints() == moved, timeout=10, what="the new gateway in cluster-3")
    assert c2.import_()["status"]["clusters"] == [{"cluster": "cluster-1",
                                                   "addresses": ["http://127.0.0.1:18091/httpbin"]}]


def local_slice(cluster, *ips, not_ready=()):
    eps = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
    eps += [{"addresses": [ip], "conditions": {"ready": False}} for ip in not_ready]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"httpbin-{cluster}-abcde", "namespace": "httpbin",
                         "labels": {"kubernetes.io/service-name": "httpbin"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "endpoints": eps}


MCS_IMPORT = "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/httpbin/serviceimports/httpbin"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/httpbin/endpointslices"


def mcs_slices(cluster):
    items = cluster.api.request("GET", SLICES + "?labelSelector=multicluster.kubernetes.io%2Fservice-name%3Dhttpbin")[1]
    return {s["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"]:
            sorted(e["addresses"][0] for e in s["endpoints"]) for s in items["items"]}


def test_mcs_form_import_and_one_slice_per_remote_exporter(clusters, sync_proc):
    c1, c2, c3 = clusters
    c1.api.load([local_slice("cluster-1", "10.1.0.2", "10.1.0.1", not_ready=("10.1.0.9",))])
    c3.api.load([local_slice("cluster-3", "10.3.0.1")])
    export(c1)
    export(c3)
    sync_proc(clusters, extra={"mcs": True})
    wait_for(lambda: mcs_slices(c2) == {"cluster-1": ["10.1.0.1", "10.1.0.2"], "cluster-3": ["10.3.0.1"]},
             what="both slices in cluster-2")
    wait_for(lambda: mcs_slices(c1) == {"cluster-3": ["10.3.0.1"]}, what="cluster-1 gets cluster-3's only")
    status, imp = c2.api.request("GET", MCS_IMPORT)
    assert status == 200
    assert imp["metadata"]["labels"] == MANAGED
    assert imp["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert imp["spec"]["type"] == "ClusterSetIP"
    wait_for(lambda: c2.api.request("GET", MCS_IMPORT)[1].get("status", {}).get("clusters")
             == [{"cluster": "cluster-1"}, {"cluster": "cluster-3"}], what="MCS import status")
    slice_ = c2.api.request("GET", SLICES + "/httpbin-cluster-1")[1]
    assert slice_["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert slice_["metadata"]["labels"]["multicluster.kubernetes.io/service-name"] == "httpbin"
    # A pod of cluster-1 becomes ready; cluster-3 stops exporting.
    c1.api.load([local_slice("cluster-1", "10.1.0.2", "10.1.0.1", "10.1.0.9")])
    c3.delete("ServiceExport")
    wait_for(lambda: mcs_slices(c2) == {"cluster-1": ["10.1.0.1", "10.1.0.2", "10.1.0.9"]}, what="followed")
    wait_for(lambda: mcs_slices(c1) == {}, what="cluster-3's slice collected in cluster-1")
    c1.delete("ServiceExport")
    wait_for(lambda: c2.api.request("GET", MCS_IMPORT)[0] == 404, what="MCS import collected")
    wait_for(lambda: mcs_slices(c2) == {}, what="slices collected")


def test_a_leader_stopped_with_sigterm_releases_the_lease(clusters, sync_proc):
    c1, c2, c3 = clusters
    # A long lease: without the release, b could not lead for 30 s.
    election = {"namespace": "default", "name": "sluice-sync", "lease_duration": "30s", "renew_deadline": "20s",
                "retry_period": "500ms"}
    export(c1)
    a = sync_proc(clusters, extra={"leader_election": dict(election, identity="a")})
    wait_for(lambda: a.stat("sluice_sync_leader") == 1, what="a leads")
    b = sync_proc(clusters, extra={"leader_election": dict(election, identity="b")})
    assert a.stop() == 0
    lease_path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/sluice-sync"
    lease = c1.api.request("GET", lease_path)[1]
    assert lease["spec"]["holderIdentity"] in ("", "b")   # released on the way out (b may have it already)
    assert "released Lease default/sluice-sync" in a.log()
    wait_for(lambda: b.stat("sluice_sync_leader") == 1, timeout=10, what="b leads without waiting out 30 s")
    export(c3)
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], what="b writes")


def test_a_restart_while_a_member_is_down_keeps_its_endpoints_and_goes_on(clusters, sync_proc):
    c1, c2, c3 = clusters
    export(c1)
    export(c3)
    first = sync_proc(clusters)
    both = [endpoint("cluster-1"), endpoint("cluster-3")]
    wait_for(lambda: c2.endpoints() == both, what="both in cluster-2")
    assert first.stop() == 0
    c3.api.fault(refuse=True)
    # Restarted while cluster-3 is down: after initial_sync_timeout it goes on without cluster-3's list.
    s = sync_proc(clusters, extra={"initial_sync_timeout": "1s"})
    assert c2.endpoints() == both   # cluster-3's endpoints carried over, not dropped
    c1.create(service(name="other"))
    c1.create(service_export(name="other"))
    wait_for(lambda: c2.endpoints_of("other") == [endpoint("cluster-1")], what="a new export still propagates")
    assert c2.endpoints() == both
    assert s.stat("sluice_sync_writes_total", 'verb="delete"') == 0
    c3.api.fault(refuse=False)
    wait_for(lambda: c3.endpoints_of("other") == [endpoint("cluster-1")], timeout=40, what="cluster-3 caught up")
    assert c2.endpoints() == both


def test_a_leader_that_cannot_renew_stops_writing(clusters, sync_proc):
    c1, c2, c3 = clusters
    election = {"namespace": "default", "name": "sluice-sync", "lease_duration": "3s", "renew_deadline": "2s",
                "retry_period": "300ms", "identity": "a"}
    export(c1)
    s = sync_proc(clusters, extra={"leader_election": election})
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1")], what="import")
    # The home cluster (cluster-1) answers 500 to every Lease request: no renewal.
    c1.api.fault(status=500, count=100000, match="/leases")
    wait_for(lambda: s.stat("sluice_sync_leader") == 0, timeout=10, what="a gives up leading")
    def sync_writes():
        return sum(s.stat("sluice_sync_writes_total", f'verb="{v}"') for v in ("create", "update", "update_status",
                                                                              "delete"))
    writes = sync_writes()
    export(c3)   # a change a leader would write
    time.sleep(1.5)
    assert sync_writes() == writes
    assert c2.endpoints() == [endpoint("cluster-1")]
    c1.api.control("/reset", {})
    wait_for(lambda: s.stat("sluice_sync_leader") == 1, timeout=10, what="a leads again")
    wait_for(lambda: c2.endpoints() == [endpoint("cluster-1"), endpoint("cluster-3")], what="written once leading")
