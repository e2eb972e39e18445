"""The resource types the stand-in serves, and the discovery / OpenAPI documents
describing them.

kubectl decides everything from these documents: which URL a kind lives at
(APIResourceList), whether it may leave validation to the server (a PATCH
operation in /openapi/v3 carrying x-kubernetes-group-version-kind and a
fieldValidation query parameter), and which short names resolve (gtp).
"""

import hashlib
import json
from dataclasses import dataclass, field

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    """One served collection, e.g. flomesh.io/v1alpha1 serviceimports."""
    group: str          # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple = field(default=())
    # A `status` subresource, as Service and the CRDs (subresources.status) have: writes to the object
    # keep its status, writes to /status change only the status, create drops it.
    status_subresource: bool = True

    @property
    def group_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self):
        return self.group_version

    @property
    def key(self):
        """Identity of the collection inside the store."""
        return (self.group, self.version, self.plural)

    @property
    def qualified(self):
        """Name used in error messages, as the real server does: services, serviceimports.flomesh.io."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def gvk(self):
        return {"group": self.group, "version": self.version, "kind": self.kind}


RESOURCES = [
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), status_subresource=False),
    Resource("", "v1", "services", "service", "Service", True, ("svc",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True,
             status_subresource=False),
    Resource("flomesh.io", "v1alpha1", "serviceimports", "serviceimport", "ServiceImport", True),
    Resource("flomesh.io", "v1alpha1", "serviceexports", "serviceexport", "ServiceExport", True),
    Resource("flomesh.io", "v1alpha1", "globaltrafficpolicies", "globaltrafficpolicy",
             "GlobalTrafficPolicy", True, ("gtp",)),
    Resource("flomesh.io", "v1alpha1", "clusters", "cluster", "Cluster", False),
    Resource("multicluster.x-k8s.io", "v1alpha1", "serviceimports", "serviceimport",
             "ServiceImport", True),
    Resource("multicluster.x-k8s.io", "v1alpha1", "serviceexports", "serviceexport",
             "ServiceExport", True),
    # Leader election (client-go's leaselock; `sluice sync` replicas): no status subresource.
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, status_subresource=False),
]


def group_versions(hidden=()):
    """Ordered (group, version) pairs; order is kubectl's priority for ambiguous names
    (`kubectl get serviceimports` means flomesh.io's, as listed first). Groups in `hidden`
    are left out, as if their CRDs were not installed."""
    seen = []
    for r in RESOURCES:
        if r.group in hidden:
            continue
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen


def find(group, version, plural):
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def resources_of(group, version):
    return [r for r in RESOURCES if r.group == group and r.version == version]


def api_versions(server_address):
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list(hidden=()):
    groups = []
    for group, version in group_versions(hidden):
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group, hidden=()):
    for g in api_group_list(hidden)["groups"]:
        if g["name"] == group:
            return dict(g, kind="APIGroup", apiVersion="v1")
    return None


def api_resource_list(group, version):
    members = resources_of(group, version)
    if not members:
        return None
    out = []
    for r in members:
        entry = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ALL_VERBS,
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        out.append(entry)
        if r.status_subresource:
            out.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["get", "patch", "update"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


# ---- OpenAPI v3 -------------------------------------------------------------------------------

def _openapi_path_key(group, version):
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(r):
    # The real server names schemas by reversed group, e.g. io.flomesh.v1alpha1.ServiceImport.
    if not r.group:
        return f"io.k8s.api.core.{r.version}.{r.kind}"
    rev = ".".join(reversed(r.group.split(".")))
    return f"{rev}.{r.version}.{r.kind}"


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_QUERY_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
]


def _operation(r, verb, op_id_verb, with_body):
    ref = {"$ref": f"#/components/schemas/{_schema_name(r)}"}
    op = {
        "operationId": f"{op_id_verb}{r.kind}",
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": r.gvk(),
        "parameters": list(_QUERY_PARAMS),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
    }
    if with_body:
        op["requestBody"] = {"content": {"application/json": {"schema": ref}}, "required": True}
    if verb == "patch":
        op["parameters"].append({"name": "force", "in": "query", "schema": {"type": "boolean"}})
        # Strategic merge patch is left out even for the built-in kinds: kubectl would then
        # compute it from these schemas, which only sketch the objects. Without it kubectl
        # apply uses its compiled-in types (built-in kinds) or a JSON merge patch (CRDs).
        op["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in (
            "application/json-patch+json", "application/merge-patch+json",
            "application/apply-patch+yaml")}, "required": True}
    return op


def openapi_v3_document(group, version):
    """A small but well-formed OpenAPI 3 document for one group version, or None."""
    members = resources_of(group, version)
    if not members:
        return None
    gv_prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths = {}
    schemas = {
        _OBJECT_META: {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "generateName": {"type": "string"},
                "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }
    for r in members:
        base = f"{gv_prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced \
            else f"{gv_prefix}/{r.plural}"
        paths[base] = {
            "get": _operation(r, "list", "list", False),
            "post": _operation(r, "post", "create", True),
        }
        paths[f"{base}/{{name}}"] = {
            "get": _operation(r, "get", "read", False),
            "put": _operation(r, "put", "replace", True),
            "patch": _operation(r, "patch", "patch", False),
            "delete": _operation(r, "delete", "delete", False),
        }
        schemas[_schema_name(r)] = {
            "type": "object",
            "x-kubernetes-group-version-kind": [r.gvk()],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"allOf": [{"$ref": f"#/components/schemas/{_OBJECT_META}"}]},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
        if r.kind == "EndpointSlice":
            # EndpointSlice keeps its data at the top level, not under spec.
            for top in ("addressType", "endpoints", "ports"):
                schemas[_schema_name(r)]["properties"][top] = {"x-kubernetes-preserve-unknown-fields": True}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3_index(hidden=()):
    paths = {}
    for group, version in group_versions(hidden):
        doc = json.dumps(openapi_v3_document(group, version), sort_keys=True).encode()
        digest = hashlib.sha512(doc).hexdigest()[:64].upper()
        key = _openapi_path_key(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
