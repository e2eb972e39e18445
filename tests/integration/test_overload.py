"""Overload through the real binary: limits.max_connections_per_worker (stop accepting at the limit, resume
when a connection closes), limits.max_requests_per_worker (503 with Retry-After), and descriptor exhaustion
(a low RLIMIT_NOFILE: one warning, accepting backs off instead of spinning, open connections are still
served, accepting resumes once descriptors are free). Metrics read from the admin endpoint."""
import os
import resource
import socket
import time

import pytest

from integ_harness import (LOCAL_CLUSTER, SANITIZED, HttpReader, admin_metric, connect, curl, free_port, make_config,
                           wait_until)


def with_admin(port, endpoints, admin_port, **overrides):
    cfg = make_config(port, endpoints, **overrides)
    cfg["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
    return cfg


def get(sock, reader, path="/bytes/3"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: app\r\n\r\n".encode())
    return reader.read_response()


def answered_within(sock, wait):
    """True when the socket has bytes to read (an answer) within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except socket.timeout:
        return False


def test_connection_limit_pauses_accepting_until_one_closes(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    admin_port = free_port()
    sluice = sluice_factory(make_cfg=lambda port: with_admin(
        port, [a.address], admin_port, limits={"max_connections_per_worker": 2}))
    # The harness's own readiness probe connected and left: wait until sluice has no connection open.
    wait_until(lambda: admin_metric(admin_port, "sluice_downstream_connections_active") == 0, 10, "no connection")
    first, second = connect(sluice.port), connect(sluice.port)
    r1, r2 = HttpReader(first), HttpReader(second)
    assert get(first, r1)[0] == 200 and get(second, r2)[0] == 200
    # The third connects (the kernel's backlog takes it) but is not accepted: its request waits.
    third = connect(sluice.port)
    third.sendall(b"GET /bytes/4 HTTP/1.1\r\nHost: app\r\n\r\n")
    assert not answered_within(third, 1.0), "a connection past the limit was served"
    assert admin_metric(admin_port, "sluice_acceptors_paused") == 1
    assert admin_metric(admin_port, "sluice_accept_paused_total") >= 1
    # The two open ones are still served while the worker is at its limit.
    assert get(first, r1)[0] == 200
    second.close()
    third.settimeout(10)
    status, _, body = HttpReader(third).read_response()
    assert (status, body) == (200, b"abcd")
    # first + third: at the limit again; below it once they close.
    first.close()
    third.close()
    wait_until(lambda: admin_metric(admin_port, "sluice_acceptors_paused") == 0, 10, "accepting again")


def test_requests_past_the_in_flight_limit_get_503_retry_after(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    admin_port = free_port()
    sluice = sluice_factory(make_cfg=lambda port: with_admin(
        port, [a.address], admin_port, limits={"max_requests_per_worker": 2}))
    slow = []
    for _ in range(2):
        s = connect(sluice.port)
        slow.append(s)
        s.sendall(b"GET /delay/3000 HTTP/1.1\r\nHost: app\r\n\r\n")
    wait_until(lambda: admin_metric(admin_port, "sluice_requests_active") == 2, 10, "two requests in flight")
    with connect(sluice.port) as s:
        reader = HttpReader(s)
        status, headers, body = get(s, reader)
        assert status == 503
        assert headers.get("retry-after") == "1"
        assert b"max_requests_per_worker" in body
        # The connection is kept: the refusal cost the client nothing but the wait.
        for sock in slow:
            sock.settimeout(10)
            assert HttpReader(sock).read_response()[0] == 200
        status, _, body = get(s, reader)
        assert (status, body) == (200, b"abc")
    assert admin_metric(admin_port, "sluice_requests_overloaded_total") == 1
    for sock in slow:
        sock.close()


def test_http2_stream_past_the_in_flight_limit_gets_503_retry_after(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    admin_port = free_port()
    sluice = sluice_factory(make_cfg=lambda port: with_admin(
        port, [a.address], admin_port, limits={"max_requests_per_worker": 1}))
    with connect(sluice.port) as slow:
        slow.sendall(b"GET /delay/3000 HTTP/1.1\r\nHost: app\r\n\r\n")
        wait_until(lambda: admin_metric(admin_port, "sluice_requests_active") == 1, 10, "a request in flight")
        r = curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", sluice.url("/bytes/3"), timeout=10)
        head = r.stdout.decode("latin-1").lower()
        assert head.startswith("http/2 503"), head
        assert "retry-after: 1" in head, head
        slow.settimeout(10)
        assert HttpReader(slow).read_response()[0] == 200
    r = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", sluice.url("/bytes/3"), timeout=10)
    assert r.stdout == b"200"
    assert admin_metric(admin_port, "sluice_requests_overloaded_total") == 1


def open_descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


NOFILE = 64


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def exhaustion_config(port, alpha, beta, admin_port):
    """app -> alpha; Host other -> a service on beta with outlier detection at its default (one local-origin
    failure ejects), which must not eject beta for a connect that failed for lack of descriptors here."""
    cfg = with_admin(port, [alpha], admin_port)
    cfg["services"].append({"name": "other", "namespace": "default",
                            "clusters": [{"cluster": LOCAL_CLUSTER, "endpoints": [beta]}]})
    cfg["routes"] = [{"hosts": ["other"], "path": "/", "service": "other.default"},
                     {"hosts": ["*"], "path": "/", "service": "app.default"}]
    return cfg


@pytest.mark.skipif(SANITIZED, reason="UBSan's vptr check opens a pipe to test memory: with no descriptor left it "
                                      "reports every virtual call as invalid (a false report that ends the process)")
def test_descriptor_exhaustion_backs_off_and_recovers(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    b = backend_factory("beta")
    admin_port = free_port()
    sluice = sluice_factory(make_cfg=lambda port: exhaustion_config(port, a.address, b.address, admin_port),
                            preexec_fn=low_nofile)
    # An established keep-alive connection with its upstream connection pooled: it needs no new descriptor.
    kept = connect(sluice.port)
    kept_reader = HttpReader(kept)
    assert get(kept, kept_reader)[0] == 200
    # Far more connections than descriptors left: the kernel's backlog holds those sluice cannot accept.
    # A few on the admin port too: its accept loop (control thread) must not spin either.
    flood = [connect(sluice.port) for _ in range(3 * NOFILE)] + [connect(admin_port) for _ in range(10)]
    wait_until(lambda: "Too many open files" in sluice.stderr(), 10, "the descriptor warning")
    assert open_descriptors(sluice.pid) <= NOFILE
    # Backing off, not spinning on a listening socket that stays readable.
    before = cpu_seconds(sluice.pid)
    time.sleep(2.0)  # a window to measure CPU over, not a wait for a condition
    assert cpu_seconds(sluice.pid) - before < 0.5, "sluice spins while out of descriptors"
    # Logged once, not per failed accept.
    assert sluice.stderr().count("Too many open files") == 1, sluice.stderr()
    # The established connection is still served.
    assert get(kept, kept_reader)[0] == 200
    # A request that needs a new upstream connection cannot have one: 503 with Retry-After (the proxy is out
    # of descriptors), not a 502 that blames the endpoint, and the connection is kept.
    kept.sendall(b"GET /bytes/2 HTTP/1.1\r\nHost: other\r\n\r\n")
    status, headers, body = kept_reader.read_response()
    assert (status, headers.get("retry-after")) == (503, "1"), body
    assert get(kept, kept_reader)[0] == 200
    # Descriptors free up: accepting resumes, and a new client is served.
    for s in flood:
        s.close()
    def served():
        try:
            with connect(sluice.port, timeout=5) as s:
                return get(s, HttpReader(s))[0] == 200
        except OSError:
            return False
    wait_until(served, 20, "a new connection served after the flood closed", interval=0.2)
    assert admin_metric(admin_port, "sluice_accept_no_descriptors_total") >= 1
    # beta was not ejected for it: served at once.
    kept.sendall(b"GET /bytes/2 HTTP/1.1\r\nHost: other\r\n\r\n")
    status, _, body = kept_reader.read_response()
    assert (status, body) == (200, b"ab")
    kept.close()
