"""Tests of the Kubernetes API server stand-in, driven by the real kubectl and by raw HTTPS.

    /usr/bin/python3 -m pytest tests/k8s -q          (or: /usr/bin/python3 -m unittest discover tests/k8s)

The stand-in is only trustworthy where a real client works against it, so most checks go
through kubectl; the list/watch details kubectl does not show are checked over raw HTTPS.
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin import StandIn, wait_for  # noqa: E402

SVC = "/api/v1/namespaces/{ns}/services"
GTP = "/apis/flomesh.io/v1alpha1/namespaces/{ns}/globaltrafficpolicies"


def service(name, ns="default", labels=None, port=8080):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"ports": [{"name": "http", "port": port}]}}


def read_chunked_stream(sock, deadline):
    """Read an HTTP/1.1 response with a chunked body from a raw socket: (head, [chunks], clean)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    chunks = []
    while time.monotonic() < deadline:
        while b"\r\n" not in buf:
            more = sock.recv(65536)
            if not more:
                return head.decode(), chunks, False
            buf += more
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(buf) < size + 2:
            more = sock.recv(65536)
            if not more:
                return head.decode(), chunks, False
            buf += more
        if size == 0:
            return head.decode(), chunks, True
        chunks.append(buf[:size])
        buf = buf[size + 2:]
    return head.decode(), chunks, False


class SharedServer(unittest.TestCase):
    """Tests that share one stand-in (each uses its own namespace or names)."""

    @classmethod
    def setUpClass(cls):
        cls.api = StandIn().start()

    @classmethod
    def tearDownClass(cls):
        cls.api.cleanup()

    def make_namespace(self, ns):
        status, body = self.api.request("POST", "/api/v1/namespaces",
                                        {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": ns}})
        self.assertEqual(status, 201, body)


class DiscoveryTest(SharedServer):
    def test_version_and_group_discovery(self):
        status, version = self.api.request("GET", "/version")
        self.assertEqual((status, version["major"], version["minor"]), (200, "1", "32"))
        status, apis = self.api.request("GET", "/api")
        self.assertEqual((status, apis["kind"], apis["versions"]), (200, "APIVersions", ["v1"]))
        status, groups = self.api.request("GET", "/apis")
        names = [g["name"] for g in groups["groups"]]
        self.assertEqual(groups["kind"], "APIGroupList")
        for g in ("discovery.k8s.io", "flomesh.io", "multicluster.x-k8s.io"):
            self.assertIn(g, names)

    def test_resource_lists(self):
        _, core = self.api.request("GET", "/api/v1")
        by_name = {r["name"]: r for r in core["resources"]}
        self.assertFalse(by_name["namespaces"]["namespaced"])
        self.assertTrue(by_name["services"]["namespaced"])
        self.assertIn("watch", by_name["services"]["verbs"])
        _, fl = self.api.request("GET", "/apis/flomesh.io/v1alpha1")
        by_name = {r["name"]: r for r in fl["resources"]}
        kinds = {"serviceimports", "serviceexports", "globaltrafficpolicies", "clusters"}
        self.assertEqual(set(by_name), kinds | {k + "/status" for k in kinds})
        self.assertEqual(by_name["globaltrafficpolicies"]["shortNames"], ["gtp"])
        self.assertEqual(by_name["globaltrafficpolicies"]["kind"], "GlobalTrafficPolicy")
        self.assertFalse(by_name["clusters"]["namespaced"])
        status, _ = self.api.request("GET", "/apis/nope.io/v1")
        self.assertEqual(status, 404)

    def test_openapi_v3_lets_kubectl_validate_on_the_server(self):
        _, index = self.api.request("GET", "/openapi/v3")
        url = index["paths"]["apis/flomesh.io/v1alpha1"]["serverRelativeURL"]
        self.assertIn("?hash=", url)
        _, doc = self.api.request("GET", url)
        kinds = set()
        for ops in doc["paths"].values():
            patch = ops.get("patch")
            if patch and any(p["name"] == "fieldValidation" and p["in"] == "query"
                             for p in patch["parameters"]):
                kinds.add(patch["x-kubernetes-group-version-kind"]["kind"])
        self.assertEqual(kinds, {"ServiceImport", "ServiceExport", "GlobalTrafficPolicy", "Cluster"})
        self.assertIn("api/v1", index["paths"])


class AuthTest(unittest.TestCase):
    def test_client_cert_and_token_each_accepted_none_refused(self):
        with StandIn(auth="both", token="s3cret") as api:
            self.assertEqual(api.request("GET", "/api/v1/namespaces", auth="cert")[0], 200)
            self.assertEqual(api.request("GET", "/api/v1/namespaces", auth="token")[0], 200)
            status, body = api.request("GET", "/api/v1/namespaces", auth=None)
            self.assertEqual((status, body["kind"], body["reason"]), (401, "Status", "Unauthorized"))
            status, _ = api.request("GET", "/api", auth=None, headers={"Authorization": "Bearer bad"})
            self.assertEqual(status, 401)
            self.assertIn("default", api.kubectl("get", "ns").stdout)

    def test_token_only_server_refuses_a_bare_client_cert(self):
        with StandIn(auth="token") as api:
            self.assertEqual(api.request("GET", "/api/v1/services", auth="cert")[0], 401)
            self.assertEqual(api.request("GET", "/api/v1/services", auth="token")[0], 200)
            self.assertIn("token:", open(api.kubeconfig).read())
            self.assertNotIn("client-certificate-data", open(api.kubeconfig).read())
            self.assertIn("default", api.kubectl("get", "ns").stdout)

    def test_cert_only_server_and_foreign_ca_rejected(self):
        with StandIn(auth="cert") as api, StandIn(auth="cert") as other:
            self.assertEqual(api.request("GET", "/api/v1/services", auth="cert")[0], 200)
            # A client certificate from another CA fails the TLS handshake.
            ctx = ssl.create_default_context(cafile=api.pki["ca.crt"])
            ctx.load_cert_chain(other.pki["client.crt"], other.pki["client.key"])
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                with socket.create_connection(("127.0.0.1", api.port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                        tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
                        if not tls.recv(100):
                            raise ConnectionError("closed")
            self.assertIn("default", api.kubectl("get", "ns").stdout)

    def test_token_file_is_reread_for_rotation(self):
        with tempfile.TemporaryDirectory() as tmp:
            token_file = os.path.join(tmp, "token")
            with open(token_file, "w") as f:
                f.write("first-token\n")
            with StandIn(auth="token", token_file=token_file, kubeconfig_token_file=True) as api:
                self.assertIn(f"tokenFile: {token_file}", open(api.kubeconfig).read())
                ok = {"Authorization": "Bearer first-token"}
                self.assertEqual(api.request("GET", "/api", auth=None, headers=ok)[0], 200)
                with open(token_file, "w") as f:
                    f.write("second-token\n")
                self.assertEqual(api.request("GET", "/api", auth=None, headers=ok)[0], 401)
                new = {"Authorization": "Bearer second-token"}
                self.assertEqual(api.request("GET", "/api", auth=None, headers=new)[0], 200)
                self.assertIn("default", api.kubectl("get", "ns").stdout)


class KubectlTest(SharedServer):
    def test_create_and_get_every_kind_of_the_seed(self):
        api = self.api
        out = api.kubectl("create", "-f", api.fixture("cluster-1.yaml")).stdout
        for line in ("namespace/httpbin created", "service/httpbin created",
                     "endpointslice.discovery.k8s.io/httpbin-c1 created",
                     "serviceexport.flomesh.io/httpbin created",
                     "serviceimport.flomesh.io/httpbin created"):
            self.assertIn(line, out)
        api.kubectl("create", "-f", api.fixture("gtp-active-active.yaml"))
        api.kubectl("create", "-f", api.fixture("clusters.yaml"))
        api.kubectl("create", "-f", api.fixture("mcs-serviceimport.yaml"))

        svc = api.kubectl_json("get", "svc", "-n", "httpbin", "httpbin")
        self.assertEqual(svc["spec"]["ports"][0]["port"], 8080)
        self.assertEqual(svc["metadata"]["namespace"], "httpbin")
        for field in ("uid", "resourceVersion", "creationTimestamp"):
            self.assertTrue(svc["metadata"].get(field), field)
        eps = api.kubectl_json("get", "endpointslices", "-n", "httpbin", "httpbin-c1")
        self.assertEqual([e["addresses"][0] for e in eps["endpoints"]], ["127.0.0.21", "127.0.0.22"])
        export = api.kubectl_json("get", "serviceexports.flomesh.io", "-n", "httpbin", "httpbin")
        self.assertEqual(export["spec"]["rules"],
                         [{"portNumber": 8080, "path": "/httpbin", "pathType": "Prefix"}])
        imp = api.kubectl_json("get", "serviceimports.flomesh.io", "-n", "httpbin", "httpbin")
        targets = [e["target"] for e in imp["spec"]["ports"][0]["endpoints"]]
        self.assertEqual([(t["host"], t["port"], t["path"]) for t in targets],
                         [("127.0.0.11", 18081, "/httpbin"), ("127.0.0.13", 18083, "/httpbin")])
        gtp = api.kubectl_json("get", "gtp", "-n", "httpbin", "httpbin")    # short name
        self.assertEqual(gtp["spec"]["lbType"], "ActiveActive")
        self.assertEqual(api.kubectl("get", "clusters.flomesh.io", "-o", "name").stdout.split(),
                         ["cluster.flomesh.io/cluster-1", "cluster.flomesh.io/cluster-2",
                          "cluster.flomesh.io/cluster-3"])
        mcs = api.kubectl_json("get", "serviceimports.multicluster.x-k8s.io", "-n", "httpbin")
        self.assertEqual(len(mcs["items"]), 1)
        self.assertIn("httpbin", api.kubectl("get", "gtp", "-A").stdout)
        listed = api.kubectl_json("get", "svc", "-A")["items"]
        self.assertIn(("httpbin", "httpbin"), [(s["metadata"]["namespace"], s["metadata"]["name"])
                                               for s in listed])

    def test_errors_come_back_as_kubectl_messages(self):
        api = self.api
        self.make_namespace("errors")
        res = api.kubectl("get", "svc", "-n", "errors", "missing", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn('services "missing" not found', res.stderr)
        res = api.kubectl("get", "gtp", "-n", "errors", "missing", check=False)
        self.assertIn('globaltrafficpolicies.flomesh.io "missing" not found', res.stderr)
        doc = json.dumps(service("dup", "errors"))
        api.kubectl("create", "-f", "-", input=doc)
        res = api.kubectl("create", "-f", "-", input=doc, check=False)
        self.assertIn('services "dup" already exists', res.stderr)
        res = api.kubectl("create", "-f", "-", input=json.dumps(service("x", "no-such-ns")),
                          check=False)
        self.assertIn('namespaces "no-such-ns" not found', res.stderr)

    def test_replace_apply_and_delete(self):
        api = self.api
        self.make_namespace("lifecycle")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "gtp.yaml")

            def write(lb):
                with open(path, "w") as f:
                    f.write(open(api.fixture(f"gtp-{lb}.yaml")).read()
                            .replace("namespace: httpbin", "namespace: lifecycle"))

            write("active-active")
            self.assertIn("created", api.kubectl("apply", "-f", path).stdout)
            first = api.kubectl_json("get", "gtp", "-n", "lifecycle", "httpbin")
            write("failover")
            self.assertIn("configured", api.kubectl("apply", "-f", path).stdout)
            second = api.kubectl_json("get", "gtp", "-n", "lifecycle", "httpbin")
            self.assertEqual(second["spec"]["lbType"], "FailOver")
            self.assertEqual(second["metadata"]["uid"], first["metadata"]["uid"])
            self.assertGreater(int(second["metadata"]["resourceVersion"]),
                               int(first["metadata"]["resourceVersion"]))
            self.assertEqual(second["metadata"]["generation"], 2)
            self.assertIn("unchanged", api.kubectl("apply", "-f", path).stdout)
            write("active-active")
            self.assertIn("replaced", api.kubectl("replace", "-f", path).stdout)
            third = api.kubectl_json("get", "gtp", "-n", "lifecycle", "httpbin")
            self.assertEqual(third["spec"]["lbType"], "ActiveActive")
            self.assertIn("serverside-applied",
                          api.kubectl("apply", "--server-side", "-f", path).stdout)
            self.assertIn("deleted", api.kubectl("delete", "-f", path).stdout)
            res = api.kubectl("get", "gtp", "-n", "lifecycle", "httpbin", check=False)
            self.assertIn("not found", res.stderr)

    def test_apply_changes_a_builtin_service_port(self):
        api = self.api
        self.make_namespace("applysvc")
        doc = service("web", "applysvc")
        api.kubectl("apply", "-f", "-", input=json.dumps(doc))
        doc["spec"]["ports"] = [{"name": "http", "port": 9090}, {"name": "admin", "port": 9901}]
        api.kubectl("apply", "-f", "-", input=json.dumps(doc))
        svc = api.kubectl_json("get", "svc", "-n", "applysvc", "web")
        self.assertEqual([p["port"] for p in svc["spec"]["ports"]], [9090, 9901])
        api.kubectl("label", "svc", "-n", "applysvc", "web", "tier=front")
        self.assertEqual(api.kubectl("get", "svc", "-n", "applysvc", "-l", "tier=front",
                                     "-o", "name").stdout.strip(), "service/web")

    def test_deleting_a_namespace_deletes_its_objects(self):
        api = self.api
        self.make_namespace("doomed")
        api.kubectl("create", "-f", "-", input=json.dumps(service("a", "doomed")))
        api.kubectl("delete", "namespace", "doomed")
        self.assertEqual(api.request("GET", SVC.format(ns="doomed") + "/a")[0], 404)

    def test_get_watch_sees_a_new_object(self):
        api = self.api
        self.make_namespace("watched")
        proc = api.kubectl_popen("get", "gtp", "-n", "watched", "--watch", "-o", "name")
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                                  daemon=True)
        reader.start()
        try:
            api.wait_watching("globaltrafficpolicies.flomesh.io")
            gtp = {"apiVersion": "flomesh.io/v1alpha1", "kind": "GlobalTrafficPolicy",
                   "metadata": {"name": "seen", "namespace": "watched"},
                   "spec": {"lbType": "Locality"}}
            api.kubectl("create", "-f", "-", input=json.dumps(gtp))
            wait_for(lambda: "globaltrafficpolicy.flomesh.io/seen\n" in lines, timeout=15,
                     what="kubectl --watch to print the new object")
        finally:
            proc.terminate()
            proc.wait(10)
            reader.join(5)
            proc.stdout.close()
            proc.stderr.close()


class ListTest(SharedServer):
    def test_pagination_is_a_consistent_snapshot(self):
        api = self.api
        self.make_namespace("pages")
        api.load([service(f"svc-{i:02d}", "pages") for i in range(25)])
        status, page = api.request("GET", SVC.format(ns="pages") + "?limit=10")
        self.assertEqual(status, 200)
        rv = page["metadata"]["resourceVersion"]
        self.assertEqual(page["metadata"]["remainingItemCount"], 15)
        names = [i["metadata"]["name"] for i in page["items"]]
        # Changes between pages do not show up in the pages of the same list.
        api.request("DELETE", SVC.format(ns="pages") + "/svc-20")
        api.request("POST", SVC.format(ns="pages"), service("svc-99", "pages"))
        token = page["metadata"]["continue"]
        self.assertRegex(token, r"^[A-Za-z0-9_-]+$")     # URL-safe, unpadded
        pages = 1
        while token:
            status, page = api.request("GET", SVC.format(ns="pages") + f"?limit=10&continue={token}")
            self.assertEqual((status, page["metadata"]["resourceVersion"]), (200, rv))
            names += [i["metadata"]["name"] for i in page["items"]]
            token = page["metadata"].get("continue")
            pages += 1
        self.assertEqual(pages, 3)
        self.assertEqual(names, [f"svc-{i:02d}" for i in range(25)])
        status, err = api.request("GET", SVC.format(ns="pages") + "?limit=10&continue=garbage!")
        self.assertEqual((status, err["reason"]), (400, "BadRequest"))
        _, now = api.request("GET", SVC.format(ns="pages"))
        self.assertIn("svc-99", [i["metadata"]["name"] for i in now["items"]])
        self.assertNotIn("svc-20", [i["metadata"]["name"] for i in now["items"]])

    def test_cluster_wide_list_and_label_selector(self):
        api = self.api
        self.make_namespace("sel-a")
        self.make_namespace("sel-b")
        api.load([service("one", "sel-a", {"app": "x", "tier": "web"}),
                  service("two", "sel-b", {"app": "x"}), service("three", "sel-b", {"app": "y"})])
        _, page = api.request("GET", "/api/v1/services?labelSelector=app%3Dx")
        self.assertEqual(sorted(i["metadata"]["name"] for i in page["items"]), ["one", "two"])
        _, page = api.request("GET", "/api/v1/services?labelSelector=app%3Dx,tier%3Dweb")
        self.assertEqual([i["metadata"]["name"] for i in page["items"]], ["one"])
        _, page = api.request("GET", SVC.format(ns="sel-b") + "?labelSelector=app!%3Dx")
        self.assertEqual([i["metadata"]["name"] for i in page["items"]], ["three"])
        self.assertEqual(page["kind"], "ServiceList")

    def test_replace_with_a_stale_resource_version_conflicts(self):
        api = self.api
        self.make_namespace("conflict")
        status, created = api.request("POST", SVC.format(ns="conflict"), service("c", "conflict"))
        self.assertEqual(status, 201)
        created["spec"]["ports"][0]["port"] = 81
        status, updated = api.request("PUT", SVC.format(ns="conflict") + "/c", created)
        self.assertEqual(status, 200)
        status, err = api.request("PUT", SVC.format(ns="conflict") + "/c", created)  # stale RV
        self.assertEqual((status, err["reason"]), (409, "Conflict"))
        self.assertEqual(updated["spec"]["clusterIP"], created["spec"]["clusterIP"])

    def test_invalid_objects(self):
        api = self.api
        self.make_namespace("invalid")
        status, err = api.request("POST", GTP.format(ns="invalid"),
                                  {"apiVersion": "flomesh.io/v1alpha1", "kind": "GlobalTrafficPolicy",
                                   "metadata": {}})
        self.assertEqual((status, err["reason"]), (422, "Invalid"))
        status, err = api.request("POST", GTP.format(ns="invalid"),
                                  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})
        self.assertEqual((status, err["reason"]), (400, "BadRequest"))
        status, err = api.request("POST", SVC.format(ns="invalid"), service("Bad_Name", "invalid"))
        self.assertEqual(status, 422)
        status, err = api.request("POST", SVC.format(ns="invalid"), b"\x0a\x0b",
                                  headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        self.assertEqual(status, 415)

    def test_patch_formats(self):
        api = self.api
        self.make_namespace("patches")
        base = SVC.format(ns="patches") + "/p"
        api.request("POST", SVC.format(ns="patches"), service("p", "patches"))
        status, obj = api.request("PATCH", base, json.dumps({"metadata": {"labels": {"a": "1"}}}),
                                  headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual((status, obj["metadata"]["labels"]), (200, {"a": "1"}))
        status, obj = api.request("PATCH", base, json.dumps(
            [{"op": "replace", "path": "/spec/ports/0/port", "value": 8181}]),
            headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual(obj["spec"]["ports"][0]["port"], 8181)
        status, obj = api.request("PATCH", base, json.dumps(
            {"spec": {"ports": [{"name": "admin", "port": 9901}]}}),
            headers={"Content-Type": "application/strategic-merge-patch+json"})
        self.assertEqual([p["port"] for p in obj["spec"]["ports"]], [8181, 9901])
        status, obj = api.request("PATCH", base, json.dumps(
            {"metadata": {"resourceVersion": "1"}, "spec": {}}),
            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual((status, obj["reason"]), (409, "Conflict"))
        status, obj = api.request("PATCH", GTP.format(ns="patches") + "/new?fieldManager=t", json.dumps(
            {"apiVersion": "flomesh.io/v1alpha1", "kind": "GlobalTrafficPolicy",
             "metadata": {"name": "new"}, "spec": {"lbType": "FailOver"}}),
            headers={"Content-Type": "application/apply-patch+yaml"})
        self.assertEqual((status, obj["spec"]["lbType"]), (201, "FailOver"))

    def test_delete_reads_its_body_and_keeps_the_connection(self):
        api = self.api
        self.make_namespace("keepalive")
        api.request("POST", SVC.format(ns="keepalive"), service("k", "keepalive"))
        conn = api.connection()
        try:
            status, obj = api.request("DELETE", SVC.format(ns="keepalive") + "/k",
                                      {"propagationPolicy": "Background"}, conn=conn)
            self.assertEqual((status, obj["metadata"]["name"]), (200, "k"))
            status, err = api.request("GET", SVC.format(ns="keepalive") + "/k", conn=conn)
            self.assertEqual((status, err["reason"]), (404, "NotFound"))
        finally:
            conn.close()
        self.assertEqual(api.state()["counters"]["connections_accepted"] > 0, True)


class WatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = StandIn(history=20, bookmark_interval=0.2).start()
        cls.api.request("POST", "/api/v1/namespaces",
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}})

    @classmethod
    def tearDownClass(cls):
        cls.api.cleanup()

    def test_watch_from_rv_replays_changes_then_bookmarks(self):
        api = self.api
        _, lst = api.request("GET", GTP.format(ns="w"))
        rv = lst["metadata"]["resourceVersion"]
        gtp = {"apiVersion": "flomesh.io/v1alpha1", "kind": "GlobalTrafficPolicy",
               "metadata": {"name": "g1"}, "spec": {"lbType": "Locality"}}
        _, created = api.request("POST", GTP.format(ns="w"), gtp)
        created["spec"]["lbType"] = "ActiveActive"
        api.request("PUT", GTP.format(ns="w") + "/g1", created)
        api.request("DELETE", GTP.format(ns="w") + "/g1")
        events, clean = api.watch(GTP.format(ns="w") + f"?watch=1&resourceVersion={rv}"
                                  "&allowWatchBookmarks=true&timeoutSeconds=2",
                                  until=lambda ev: ev[-1]["type"] == "BOOKMARK")
        kinds = [e["type"] for e in events]
        self.assertEqual(kinds, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(events[1]["object"]["spec"]["lbType"], "ActiveActive")
        _, now = api.request("GET", GTP.format(ns="w"))
        self.assertEqual(rvs[-1], int(now["metadata"]["resourceVersion"]))
        self.assertEqual(events[-1]["object"]["kind"], "GlobalTrafficPolicy")

    def test_watch_ends_cleanly_at_timeout_in_chunks_and_keeps_alive(self):
        api = self.api
        _, lst = api.request("GET", SVC.format(ns="w"))
        rv = lst["metadata"]["resourceVersion"]
        api.request("POST", SVC.format(ns="w"), service("s1", "w"))
        api.request("POST", SVC.format(ns="w"), service("s2", "w"))
        raw = socket.create_connection(("127.0.0.1", api.port), timeout=10)
        tls = api.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
        try:
            start = time.monotonic()
            tls.sendall(f"GET {SVC.format(ns='w')}?watch=true&resourceVersion={rv}"
                        "&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, chunks, clean = read_chunked_stream(tls, time.monotonic() + 10)
            self.assertTrue(clean)
            self.assertGreaterEqual(time.monotonic() - start, 0.9)
            self.assertIn("Transfer-Encoding: chunked", head)
            self.assertIn("Content-Type: application/json", head)
            events = [json.loads(c) for c in chunks]   # one whole event per chunk
            self.assertTrue(all(c.endswith(b"\n") for c in chunks))
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                             [("ADDED", "s1"), ("ADDED", "s2")])   # no bookmarks unless asked
            tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")   # same connection
            self.assertIn(b"200 OK", tls.recv(4096))
        finally:
            tls.close()

    def test_watch_without_rv_starts_with_the_current_state(self):
        api = self.api
        api.request("POST", SVC.format(ns="w"), service("initial", "w", {"watch": "me"}))
        events, _ = api.watch(SVC.format(ns="w") + "?watch=1&labelSelector=watch%3Dme"
                              "&timeoutSeconds=1")
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "initial")])

    def test_object_leaving_the_selector_is_deleted_for_the_watcher(self):
        api = self.api
        _, created = api.request("POST", SVC.format(ns="w"), service("mover", "w", {"sel": "yes"}))
        rv = created["metadata"]["resourceVersion"]
        created["metadata"]["labels"] = {"sel": "no"}
        api.request("PUT", SVC.format(ns="w") + "/mover", created)
        events, _ = api.watch(SVC.format(ns="w") + f"?watch=1&resourceVersion={rv}"
                              "&labelSelector=sel%3Dyes&timeoutSeconds=1")
        self.assertEqual([e["type"] for e in events], ["DELETED"])

    def test_too_old_resource_version_is_410_expired(self):
        api = self.api
        _, lst = api.request("GET", SVC.format(ns="w"))
        old_rv = lst["metadata"]["resourceVersion"]
        api.load([service(f"churn-{i}", "w") for i in range(25)])    # history window is 20
        events, _ = api.watch(SVC.format(ns="w") + f"?watch=1&resourceVersion={old_rv}")
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["type"], "ERROR")
        self.assertEqual((events[0]["object"]["code"], events[0]["object"]["reason"]),
                         (410, "Expired"))
        _, lst = api.request("GET", SVC.format(ns="w"))
        fresh = lst["metadata"]["resourceVersion"]
        events, _ = api.watch(SVC.format(ns="w") + f"?watch=1&resourceVersion={fresh}"
                              "&timeoutSeconds=1")
        self.assertEqual(events, [])

    def test_compaction_expires_watch_and_continue(self):
        api = self.api
        api.load([service(f"comp-{i}", "w") for i in range(5)])
        _, page = api.request("GET", SVC.format(ns="w") + "?limit=2")
        rv = page["metadata"]["resourceVersion"]
        api.request("POST", SVC.format(ns="w"), service("after-list", "w"))
        api.fault(compact=True)
        events, _ = api.watch(SVC.format(ns="w") + f"?watch=1&resourceVersion={rv}")
        self.assertEqual(events[0]["object"]["code"], 410)
        status, err = api.request("GET", SVC.format(ns="w") + "?limit=2&continue="
                                  + page["metadata"]["continue"])
        self.assertEqual((status, err["reason"]), (410, "Expired"))


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.api = StandIn(bookmark_interval=0.2).start()

    def tearDown(self):
        self.api.cleanup()

    def test_drop_watches_cuts_open_streams(self):
        api = self.api
        rv = api.request("GET", "/api/v1/services")[1]["metadata"]["resourceVersion"]
        tls = api.ssl_context().wrap_socket(socket.create_connection(("127.0.0.1", api.port), 10),
                                            server_hostname="127.0.0.1")
        try:
            tls.sendall(f"GET /api/v1/services?watch=1&resourceVersion={rv}&timeoutSeconds=30"
                        " HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            wait_for(lambda: api.state()["watches_open"] == 1, what="the watch to open")
            self.assertEqual(api.state()["watches_opened"], 1)
            self.assertEqual(api.fault(drop_watches=True)["done"]["watches_dropped"], 1)
            start = time.monotonic()
            head, chunks, clean = read_chunked_stream(tls, time.monotonic() + 10)
            self.assertIn("200 OK", head)
            self.assertFalse(clean)              # an abrupt end: no terminating chunk
            self.assertLess(time.monotonic() - start, 5)
        finally:
            tls.close()
        wait_for(lambda: api.state()["watches_open"] == 0, what="watch to close")

    def test_a_watch_whose_client_left_is_closed(self):
        api = self.api
        tls = api.ssl_context().wrap_socket(socket.create_connection(("127.0.0.1", api.port), 10),
                                            server_hostname="127.0.0.1")
        tls.sendall(b"GET /api/v1/services?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        api.wait_watching("services")
        tls.close()
        wait_for(lambda: api.state()["watches_open"] == 0, timeout=5, what="the watch to end")

    def test_refuse_then_reopen_on_the_same_port(self):
        api = self.api
        api.request("POST", SVC.format(ns="default"), service("kept"))
        self.assertTrue(api.fault(refuse=True)["state"]["refusing"])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", api.port), timeout=5).close()
        res = api.kubectl("get", "svc", "kept", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("refused", res.stderr)
        self.assertFalse(api.fault(refuse=False)["state"]["refusing"])
        self.assertEqual(api.request("GET", SVC.format(ns="default") + "/kept")[0], 200)
        self.assertIn("kept", api.kubectl("get", "svc", "kept").stdout)

    def test_injected_500s_count_down_and_can_match_a_path(self):
        api = self.api
        api.fault(status=500, count=2)
        got = [api.request("GET", "/api/v1/services")[0] for _ in range(3)]
        self.assertEqual(got, [500, 500, 200])
        api.fault(status=503, count=5, match="watch=")
        self.assertEqual(api.request("GET", "/api/v1/services")[0], 200)
        self.assertEqual(api.request("GET", "/api/v1/services?watch=1&timeoutSeconds=1")[0], 503)
        self.assertEqual(api.state()["counters"]["injected_errors"], 3)

    def test_delay_and_watch_410(self):
        api = self.api
        api.fault(delay_ms=300)
        start = time.monotonic()
        api.request("GET", "/version")
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        api.fault(delay_ms=0, watch_410=True)
        status, err = api.request("GET", "/api/v1/services?watch=1&timeoutSeconds=1")
        self.assertEqual((status, err["code"]), (410, 410))
        events, clean = api.watch("/api/v1/services?watch=1&timeoutSeconds=1&resourceVersion="
                                  + api.request("GET", "/api/v1/services")[1]["metadata"]
                                  ["resourceVersion"])
        self.assertEqual((events, clean), ([], True))

    def test_state_counts_requests_and_watches(self):
        api = self.api
        before = api.state()
        api.request("GET", "/api/v1/services")
        api.watch("/api/v1/services?watch=1&timeoutSeconds=0.2")
        after = api.state()
        self.assertEqual(after["requests"] - before["requests"], 2)
        self.assertEqual(after["watches_opened"] - before["watches_opened"], 1)


class MoreContractTest(unittest.TestCase):
    def test_hidden_group_is_404_until_installed(self):
        with StandIn(hide_groups=["multicluster.x-k8s.io"]) as api:
            path = "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/default/serviceimports"
            self.assertEqual(api.request("GET", path)[0], 404)
            _, groups = api.request("GET", "/apis")
            self.assertNotIn("multicluster.x-k8s.io", [g["name"] for g in groups["groups"]])
            res = api.kubectl("get", "serviceimports.multicluster.x-k8s.io", check=False)
            self.assertNotEqual(res.returncode, 0)
            api.fault(hide_groups=[])
            self.assertEqual(api.request("GET", path)[0], 200)
            api.kubectl("get", "serviceimports.multicluster.x-k8s.io")
            # Hiding it again ends the watches on it, as removing a CRD does.
            conn = api.connection()
            conn.request("GET", path + "?watch=1")
            resp = conn.getresponse()
            api.wait_watching("serviceimports.multicluster.x-k8s.io")
            self.assertEqual(api.fault(hide_groups=["multicluster.x-k8s.io"])["done"]
                             ["watches_ended"], 1)
            self.assertEqual(resp.read(), b"")
            conn.close()

    def test_ipv6_listen_and_kubeconfig_with_file_paths(self):
        with StandIn(kubeconfig_style="files", host="::1") as api:
            self.assertTrue(api.url.startswith("https://[::1]:"), api.url)
            self.assertEqual(api.request("GET", "/version")[0], 200)
            text = open(api.kubeconfig).read()
            self.assertIn(f"certificate-authority: {api.pki['ca.crt']}", text)
            self.assertIn("client-key: ", text)
            self.assertIn("default", api.kubectl("get", "ns").stdout)

    def test_too_large_resource_version_is_504(self):
        with StandIn() as api:
            status, err = api.request("GET", "/api/v1/services?watch=1&resourceVersion=999999")
            self.assertEqual((status, err["reason"]), (504, "Timeout"))
            self.assertEqual(err["details"]["causes"][0]["reason"], "ResourceVersionTooLarge")

    def test_serviceaccount_dir_for_in_cluster_clients(self):
        with tempfile.TemporaryDirectory() as sa, StandIn(auth="token", serviceaccount_dir=sa) as api:
            self.assertEqual(sorted(os.listdir(sa)), ["ca.crt", "namespace", "token"])
            self.assertEqual(open(os.path.join(sa, "namespace")).read(), "default")
            token = open(os.path.join(sa, "token")).read().strip()
            ctx = ssl.create_default_context(cafile=os.path.join(sa, "ca.crt"))
            env = api.incluster_env()
            conn = http.client.HTTPSConnection(env["KUBERNETES_SERVICE_HOST"],
                                               int(env["KUBERNETES_SERVICE_PORT"]), context=ctx)
            conn.request("GET", "/api/v1/services", headers={"Authorization": f"Bearer {token}"})
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            with open(os.path.join(sa, "token"), "w") as f:
                f.write("rotated")
            self.assertEqual(api.request("GET", "/api", auth=None,
                                         headers={"Authorization": "Bearer rotated"})[0], 200)
            self.assertEqual(api.request("GET", "/api", auth=None,
                                         headers={"Authorization": f"Bearer {token}"})[0], 401)


class LifecycleTest(SharedServer):
    def test_finalizers_hold_a_deleted_object_until_removed(self):
        api = self.api
        doc = service("held", "default")
        doc["metadata"]["finalizers"] = ["example.com/hold"]
        _, created = api.request("POST", SVC.format(ns="default"), doc)
        status, marked = api.request("DELETE", SVC.format(ns="default") + "/held")
        self.assertEqual(status, 200)
        self.assertTrue(marked["metadata"].get("deletionTimestamp"))
        self.assertEqual(api.request("GET", SVC.format(ns="default") + "/held")[0], 200)
        status, _ = api.request("PATCH", SVC.format(ns="default") + "/held",
                                json.dumps({"metadata": {"finalizers": None}}),
                                headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 200)
        self.assertEqual(api.request("GET", SVC.format(ns="default") + "/held")[0], 404)
        rv = int(created["metadata"]["resourceVersion"]) - 1
        events, _ = api.watch(SVC.format(ns="default") + f"?watch=1&resourceVersion={rv}"
                              "&fieldSelector=metadata.name%3Dheld",
                              until=lambda ev: ev[-1]["type"] == "DELETED")
        self.assertEqual([e["type"] for e in events], ["ADDED", "MODIFIED", "MODIFIED", "DELETED"])
        self.assertTrue(events[1]["object"]["metadata"]["deletionTimestamp"])

    def test_single_object_watch_form(self):
        api = self.api
        _, lst = api.request("GET", SVC.format(ns="default"))
        rv = lst["metadata"]["resourceVersion"]
        api.request("POST", SVC.format(ns="default"), service("other-one"))
        api.request("POST", SVC.format(ns="default"), service("this-one"))
        events, _ = api.watch(SVC.format(ns="default") + f"/this-one?watch=1&resourceVersion={rv}"
                              "&timeoutSeconds=1")
        self.assertEqual([e["object"]["metadata"]["name"] for e in events], ["this-one"])

    def test_status_is_a_subresource(self):
        """Writes to the object keep its status; /status writes change only the status; create
        drops it (CRDs with subresources.status, and Service)."""
        api = self.api
        base = "/apis/flomesh.io/v1alpha1/namespaces/default/serviceexports"
        doc = {"apiVersion": "flomesh.io/v1alpha1", "kind": "ServiceExport",
               "metadata": {"name": "st", "namespace": "default"},
               "spec": {"rules": [{"portNumber": 80, "path": "/"}]},
               "status": {"conditions": [{"type": "Valid", "status": "True"}]}}
        status, created = api.request("POST", base, doc)
        self.assertEqual(status, 201)
        self.assertNotIn("status", created)
        with_status = dict(created, status={"conditions": [{"type": "Valid", "status": "True"}]},
                           spec={"rules": []})
        status, after = api.request("PUT", base + "/st/status", with_status)
        self.assertEqual(status, 200, after)
        self.assertEqual(after["status"]["conditions"][0]["type"], "Valid")
        self.assertEqual(after["spec"], created["spec"])      # the spec change was ignored
        self.assertEqual(after["metadata"]["generation"], 1)
        stale = dict(with_status)
        self.assertEqual(api.request("PUT", base + "/st/status", stale)[0], 409)  # old resourceVersion
        main = dict(after, status={}, spec={"rules": [{"portNumber": 81, "path": "/"}]})
        status, updated = api.request("PUT", base + "/st", main)
        self.assertEqual(status, 200)
        self.assertEqual(updated["status"], after["status"])  # kept
        self.assertEqual(updated["metadata"]["generation"], 2)
        status, patched = api.request("PATCH", base + "/st/status", json.dumps({"status": {"conditions": []}}),
                                      headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual((status, patched["status"]["conditions"]), (200, []))
        self.assertEqual(api.request("DELETE", base + "/st/status")[0], 405)
        self.assertEqual(api.request("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/x/status")[0],
                         404)
        _, lst = api.request("GET", "/apis/flomesh.io/v1alpha1")
        self.assertIn("serviceexports/status", [r["name"] for r in lst["resources"]])


class FixtureTest(unittest.TestCase):
    def test_each_cluster_fixture_loads_with_kubectl(self):
        with StandIn() as api:
            for cluster, has_httpbin in (("cluster-1", True), ("cluster-2", False),
                                         ("cluster-3", True)):
                api.kubectl("create", "-f", api.fixture(f"{cluster}.yaml"))
                if cluster == "cluster-2":
                    api.kubectl("create", "-f", api.fixture("gtp-active-active.yaml"))
                    api.kubectl("apply", "-f", api.fixture("gtp-failover.yaml"))
                    gtp = api.kubectl_json("get", "gtp", "-n", "httpbin", "httpbin")
                    self.assertEqual(gtp["spec"]["lbType"], "FailOver")
                svcs = api.kubectl_json("get", "svc", "-n", "httpbin")["items"]
                self.assertEqual(bool(svcs), has_httpbin)
                imp = api.kubectl_json("get", "serviceimports.flomesh.io", "-n", "httpbin", "httpbin")
                self.assertEqual(len(imp["spec"]["ports"][0]["endpoints"]), 2)
                api.kubectl("delete", "namespace", "httpbin")
                api.kubectl("delete", "namespace", "curl", "--ignore-not-found")


if __name__ == "__main__":
    unittest.main()
