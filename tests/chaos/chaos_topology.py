"""Topologies of the chaos suite: clusters of endpoints on loopback, and the policy over them.

Each cluster lives on its own loopback address (127.0.1.1 for cluster-1, 127.0.2.1 for cluster-2, ...):
the responder's cluster is then plain from the address too, and an endpoint's port, picked free once at
start, stays its port when it is killed and restarted, so the proxy's config never changes mid-run.

The proxy under test sits in a cluster of its own (`client`) that has no endpoints of the service, like
the seed's sidecar in cluster-2: every serving cluster is a remote target, and with FailOver the targets'
order is the tier order.
"""
import dataclasses
import math
import socket

DOMAIN = "default/default/default"
PROXY_CLUSTER = f"{DOMAIN}/client"
SERVICE = "app"
NAMESPACE = "chaos"
POLICIES = {"aa": "ActiveActive", "fo": "FailOver"}

# name -> (endpoints per cluster, ActiveActive weight of each cluster); FailOver uses the same clusters,
# ordered cluster-1 first.
SHAPES = {
    "3x2": (2, (50, 30, 20)),
    "2x4": (4, (70, 30)),
    # Four remote gateways: one endpoint per cluster stands for the gateway in front of its pods.
    "4x1gw": (1, (40, 30, 20, 10)),
}


@dataclasses.dataclass
class Endpoint:
    cluster: str  # short name, "cluster-1"
    name: str     # the backend's --name, answered in X-Backend: "cluster-1-e1"
    host: str
    port: int

    @property
    def address(self):
        return f"{self.host}:{self.port}"


@dataclasses.dataclass
class Cluster:
    name: str
    host: str
    weight: int
    endpoints: list

    @property
    def key(self):
        return f"{DOMAIN}/{self.name}"


@dataclasses.dataclass
class Topology:
    shape: str
    policy: str  # "aa" or "fo"
    clusters: list

    @property
    def label(self):
        return f"{self.shape}-{self.policy}"

    @property
    def lb_type(self):
        return POLICIES[self.policy]

    def endpoints(self):
        return [e for c in self.clusters for e in c.endpoints]

    def cluster(self, name):
        return next(c for c in self.clusters if c.name == name)

    def expected_shares(self):
        """Each cluster's share of the answers while nothing fails: the weights for ActiveActive, all on
        the first tier for FailOver."""
        if self.policy == "fo":
            return {c.name: (1.0 if i == 0 else 0.0) for i, c in enumerate(self.clusters)}
        total = sum(c.weight for c in self.clusters)
        return {c.name: c.weight / total for c in self.clusters}

    def endpoint_weights(self):
        """Per-endpoint integer weights whose per-cluster sums follow the cluster weights, for proxies that
        only weigh servers (nginx, HAProxy): a cluster's weight is split evenly over its endpoints."""
        common = math.lcm(*(len(c.endpoints) for c in self.clusters))
        return {e.name: c.weight * common // len(c.endpoints) for c in self.clusters for e in c.endpoints}


def cluster_of(responder):
    """'cluster-2-e3' -> 'cluster-2'; None for anything that is not one of our backends."""
    if not responder or not responder.startswith("cluster-"):
        return None
    return responder.rsplit("-e", 1)[0]


def free_port(host):
    """A port free on `host` a moment ago. Other proxies' tests bind 127.0.0.1; our cluster addresses
    are seldom used, so the port stays ours for the run in practice."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build(shape, policy):
    """A topology with fresh free ports."""
    if shape not in SHAPES:
        raise ValueError(f"unknown topology {shape!r} (have {', '.join(SHAPES)})")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (have {', '.join(POLICIES)})")
    per_cluster, weights = SHAPES[shape]
    clusters = []
    for i, weight in enumerate(weights, start=1):
        name, host = f"cluster-{i}", f"127.0.{i}.1"
        endpoints = [Endpoint(name, f"{name}-e{j}", host, free_port(host)) for j in range(1, per_cluster + 1)]
        clusters.append(Cluster(name, host, weight, endpoints))
    return Topology(shape, policy, clusters)


def sluice_config(topo, port, admin_port):
    """Only what the topology needs: listener, admin port, the service's clusters and policy, one route.
    Everything else (timeouts, retries, outlier detection, health checks, workers, slow start) stays at
    sluice's defaults: the suite is about the defaults."""
    if topo.policy == "aa":
        targets = [{"cluster": c.key, "weight": c.weight} for c in topo.clusters]
    else:
        targets = [c.key for c in topo.clusters]
    return {
        "cluster": PROXY_CLUSTER,
        "admin": {"port": admin_port},
        "listeners": [{"name": "http", "address": "127.0.0.1", "port": port}],
        "services": [{
            "name": SERVICE,
            "namespace": NAMESPACE,
            "ports": [80],
            "clusters": [{"cluster": c.key, "endpoints": [e.address for e in c.endpoints]}
                         for c in topo.clusters],
            "policy": {"lb_type": topo.lb_type, "targets": targets},
        }],
        "routes": [{"hosts": ["*"], "path": "/", "service": f"{SERVICE}.{NAMESPACE}"}],
    }
