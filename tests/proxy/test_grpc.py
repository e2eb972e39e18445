"""HTTP/2 upstreams and gRPC (issue 15): real python3-grpcio clients and servers (no generated stubs: generic
handlers with bytes in and out) through the real sluice binary, whose clusters speak h2c to the servers."""
import threading
import time
from concurrent import futures

import grpc
import pytest

from integ_harness import LOCAL_CLUSTER, curl, make_config, wait_until

REMOTE = "default/default/default/remote"
NO_PROXY = [("grpc.enable_http_proxy", 0)]


class GrpcServer:
    """An in-process gRPC server on a free loopback port, answering as `name`."""

    def __init__(self, name):
        self.name = name
        self.unavailable_left = 0  # the next N unary calls answer UNAVAILABLE (trailers-only)
        self.draining = False      # every unary call answers UNAVAILABLE, as a server shutting down does
        self.calls = 0
        self.in_slow = 0           # Slow calls being served now
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
            "Meta": grpc.unary_unary_rpc_method_handler(self.meta),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.address = f"127.0.0.1:{self.port}"

    def stop(self, grace=0):
        self.server.stop(grace).wait()

    def unary(self, request, context):
        self.calls += 1
        if self.draining:
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        if self.unavailable_left > 0:
            self.unavailable_left -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "not now")
        return self.name.encode() + b":" + request

    def server_stream(self, request, context):
        for i in range(int(request)):
            yield b"%d" % i

    def client_stream(self, request_iterator, context):
        return b"".join(request_iterator)

    def bidi(self, request_iterator, context):
        for message in request_iterator:
            yield message.upper()

    def fail(self, request, context):
        context.set_trailing_metadata((("x-detail", "because"),))
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no entry")

    def slow(self, request, context):
        self.in_slow += 1
        try:
            time.sleep(float(request))
        finally:
            self.in_slow -= 1
        return b"late"

    def meta(self, request, context):
        got = dict(context.invocation_metadata())
        context.send_initial_metadata((("x-initial", "hello"),))
        context.set_trailing_metadata((("x-trailing", "bye"),))
        return got.get("x-client", "").encode()


@pytest.fixture
def grpc_servers():
    servers = []

    def make(name):
        servers.append(GrpcServer(name))
        return servers[-1]
    yield make
    for s in servers:
        s.stop()


def h2c_config(port, servers, **overrides):
    c = make_config(port, [s.address for s in servers], **overrides)
    c["log_level"] = "debug"
    c["services"][0]["clusters"][0]["protocol"] = "h2c"
    return c


def channel(s):
    return grpc.insecure_channel(f"127.0.0.1:{s.port}", options=NO_PROXY)


def method(ch, name, kind="unary_unary"):
    return getattr(ch, kind)(f"/test.Echo/{name}", request_serializer=None, response_deserializer=None)


def test_grpc_call_kinds_through_h2c_upstream(grpc_servers, sluice_factory):
    g = grpc_servers("g1")
    s = sluice_factory(make_cfg=lambda port: h2c_config(port, [g]))
    with channel(s) as ch:
        assert method(ch, "Unary")(b"hi", timeout=10) == b"g1:hi"
        big = bytes(range(256)) * 8192  # 2 MiB in one message
        assert method(ch, "Unary")(big, timeout=30) == b"g1:" + big
        assert list(method(ch, "ServerStream", "unary_stream")(b"500", timeout=10)) == [b"%d" % i for i in range(500)]
        assert method(ch, "ClientStream", "stream_unary")(iter([b"a", b"b", b"c"] * 100), timeout=10) == b"abc" * 100
        # Bidi: each reply comes before the next request is sent (both directions open at once).
        requests = []
        replies = method(ch, "Bidi", "stream_stream")(iter(requests_gen(requests)), timeout=10)
        got = []
        for r in replies:
            got.append(r)
            requests.append(None)
        assert got == [b"M0", b"M1", b"M2", b"M3", b"M4"]


def requests_gen(acks):
    for i in range(5):
        yield b"m%d" % i
        deadline = time.monotonic() + 5
        while len(acks) <= i and time.monotonic() < deadline:
            time.sleep(0.01)


def test_grpc_status_trailers_and_metadata_pass_through(grpc_servers, sluice_factory):
    g = grpc_servers("g2")
    s = sluice_factory(make_cfg=lambda port: h2c_config(port, [g]))
    with channel(s) as ch:
        with pytest.raises(grpc.RpcError) as e:
            method(ch, "Fail")(b"", timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert e.value.details() == "no entry"
        assert ("x-detail", "because") in e.value.trailing_metadata()
        reply, call = method(ch, "Meta").with_call(b"", metadata=(("x-client", "abc"),), timeout=10)
        assert reply == b"abc"
        assert ("x-initial", "hello") in call.initial_metadata()
        assert ("x-trailing", "bye") in call.trailing_metadata()


def test_grpc_deadline_and_sluice_own_errors(grpc_servers, sluice_factory):
    g = grpc_servers("g3")

    def cfg(port):
        c = h2c_config(port, [g])
        c["services"].append({"name": "dead", "namespace": "default", "ports": [80],
                              "clusters": [{"cluster": c["cluster"], "endpoints": ["127.0.0.1:1"], "protocol": "h2c"}],
                              "outlier_detection": {"enabled": False}, "slow_start_window": "0"})
        c["routes"] = [{"hosts": ["dead.example"], "path": "/", "service": "dead.default"},
                       {"hosts": [f"127.0.0.1:{port}"], "path": "/", "service": "app.default"}]
        return c
    s = sluice_factory(make_cfg=cfg)
    with channel(s) as ch:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            method(ch, "Slow")(b"3", timeout=0.5)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2.5
        assert method(ch, "Slow")(b"0.1", timeout=10) == b"late"
    # The client's own deadline is far: sluice's answer (from grpc-timeout) is what the client sees.
    code = grpc_code_via(s, "127.0.0.1:%d" % s.port, "/test.Echo/Slow", b"\x00\x00\x00\x00\x013", "200m")
    assert code == "4"
    # Sluice's own errors, as a gRPC client sees them (grpc-status and grpc-message of a trailers-only answer).
    for authority, code, words in (("nowhere.example", grpc.StatusCode.UNIMPLEMENTED, "no route"),
                                   ("dead.example", grpc.StatusCode.UNAVAILABLE, "connect")):
        options = NO_PROXY + [("grpc.default_authority", authority)]
        with grpc.insecure_channel(f"127.0.0.1:{s.port}", options=options) as ch:
            with pytest.raises(grpc.RpcError) as e:
                method(ch, "Unary")(b"x", timeout=10)
            assert e.value.code() == code and words in e.value.details(), (authority, e.value)


def grpc_code_via(s, authority, path, body, timeout=None):
    """grpc-status of one raw gRPC request sent with curl over h2c (headers and trailers dumped)."""
    args = ["--http2-prior-knowledge", "-s", "-D", "-", "-o", "/dev/null", "-H", f"Host: {authority}",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-"]
    if timeout:
        args += ["-H", f"grpc-timeout: {timeout}"]
    r = curl(*args, f"http://127.0.0.1:{s.port}{path}", input_data=body, timeout=30)
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.lower().startswith("grpc-status:"):
            return line.split(":", 1)[1].strip()
    return r.stdout.decode(errors="replace")


def test_unary_retried_on_unavailable(grpc_servers, sluice_factory):
    a, b = grpc_servers("ga"), grpc_servers("gb")
    a.unavailable_left = b.unavailable_left = 1
    s = sluice_factory(make_cfg=lambda port: h2c_config(port, [a, b]))
    with channel(s) as ch:
        # The first call meets UNAVAILABLE on one server and is retried on the other (which fails the next
        # one the same way): every call succeeds.
        results = [method(ch, "Unary")(b"x", timeout=10) for _ in range(6)]
    assert set(results) <= {b"ga:x", b"gb:x"}
    assert a.unavailable_left == 0 and b.unavailable_left == 0


def test_load_balanced_per_call_on_one_channel(grpc_servers, sluice_factory):
    a, b = grpc_servers("la"), grpc_servers("lb")
    s = sluice_factory(make_cfg=lambda port: h2c_config(port, [a, b]))
    with channel(s) as ch:
        results = [method(ch, "Unary")(b"", timeout=10) for _ in range(10)]
    assert results.count(b"la:") == 5 and results.count(b"lb:") == 5


def test_cluster_shut_down_under_grpc_load_fails_no_call(grpc_servers, sluice_factory):
    local = [grpc_servers("local-1"), grpc_servers("local-2")]
    remote = [grpc_servers("remote-1")]

    def cfg(port):
        c = h2c_config(port, local, service={"policy": {"lb_type": "FailOver", "targets": [{"cluster": REMOTE}]},
                                             "outlier_detection": {"enabled": True, "consecutive_failures": 1,
                                                                   "max_ejection_percent": 100}})
        c["services"][0]["clusters"].append({"cluster": REMOTE, "endpoints": [r.address for r in remote],
                                             "protocol": "h2c"})
        return c
    s = sluice_factory(make_cfg=cfg)
    failures, served = [], []
    stop = threading.Event()

    def load():
        with channel(s) as ch:
            call = method(ch, "Unary")
            while not stop.is_set():
                try:
                    served.append(call(b"", timeout=10))
                except grpc.RpcError as e:
                    failures.append((e.code(), e.details()))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    # The local cluster goes away as gRPC servers do on SIGTERM: first they answer UNAVAILABLE (retried on
    # the remote cluster, and counted as gateway errors by outlier detection), then they stop and their ports
    # refuse connections (local-origin failures: the whole tier is ejected, traffic fails over).
    for g in local:
        g.draining = True
    time.sleep(1)
    for g in local:
        g.stop(1)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert any(r.startswith(b"local") for r in served) and served[-1].startswith(b"remote")


def test_grpc_call_over_the_in_flight_limit_is_resource_exhausted(grpc_servers, sluice_factory):
    # limits.max_requests_per_worker is one of sluice's own limits: a gRPC caller over it gets
    # RESOURCE_EXHAUSTED (as the issue maps limits), not the UNAVAILABLE of a missing endpoint.
    g = grpc_servers("g1")
    s = sluice_factory(make_cfg=lambda port: h2c_config(port, [g], limits={"max_requests_per_worker": 1}))
    with channel(s) as ch:
        slow = method(ch, "Slow").future(b"1.5", timeout=10)
        assert wait_until(lambda: g.in_slow == 1), "the slow call holds the worker's only slot"
        with pytest.raises(grpc.RpcError) as over:
            method(ch, "Unary")(b"x", timeout=10)
        assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, over.value
        assert slow.result() == b"late"
        assert method(ch, "Unary")(b"y", timeout=10) == b"g1:y", "the slot is free again after the slow call"


def test_grpc_over_tls_listener(grpc_servers, sluice_factory, tmp_path):
    """gRPC's own TLS stack (ALPN h2, its own record handling) against sluice's TLS stream: every call kind
    over a TLS listener, to an h2c endpoint."""
    from test_tls_admin import make_pki
    pki = make_pki(tmp_path / "pki")
    g = grpc_servers("g1")

    def cfg(port):
        c = h2c_config(port, [g])
        c["listeners"][0]["tls"] = {"cert_file": str(pki / "leaf.crt"), "key_file": str(pki / "leaf.key")}
        return c
    s = sluice_factory(make_cfg=cfg)
    credentials = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
    options = NO_PROXY + [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(f"127.0.0.1:{s.port}", credentials, options=options) as ch:
        assert method(ch, "Unary")(b"hi", timeout=10) == b"g1:hi"
        big = bytes(range(256)) * 8192  # 2 MiB in one message, many records
        assert method(ch, "Unary")(big, timeout=30) == b"g1:" + big
        assert list(method(ch, "ServerStream", "unary_stream")(b"300", timeout=10)) == [b"%d" % i for i in range(300)]
        assert method(ch, "ClientStream", "stream_unary")(iter([b"a", b"b", b"c"] * 100), timeout=10) == b"abc" * 100
        with pytest.raises(grpc.RpcError) as failed:
            method(ch, "Fail")(b"x", timeout=10)
        assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED
