"""Keep-alive downstream (client <-> sluice) and upstream (sluice <-> backend, the pool)."""
import http.client
import subprocess
import time

import pytest

from integ_harness import clean_env, curl


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    return r, body


def test_downstream_keepalive_with_http_client(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    conn = http.client.HTTPConnection("127.0.0.1", sluice.port, timeout=10)
    local_ports = set()
    for i in range(5):
        r, body = get(conn, f"/bytes/{100 + i}")
        assert r.status == 200 and len(body) == 100 + i
        assert not r.will_close
        assert conn.sock is not None  # http.client drops the socket when the server closes
        local_ports.add(conn.sock.getsockname()[1])
    conn.close()
    assert len(local_ports) == 1


def test_downstream_keepalive_with_curl(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    urls = [sluice.url(f"/bytes/{n}") for n in (10, 20, 30, 40)]
    outputs = [arg for url in urls for arg in ("-o", "/dev/null", url)]
    r = curl("-w", "%{num_connects} ", *outputs)
    assert r.returncode == 0, r.stderr
    # curl opens one connection for the first URL and reuses it for the rest.
    assert r.stdout.decode().split() == ["1", "0", "0", "0"]


def test_upstream_connection_reused(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    ids = []
    # Separate client connections: the upstream pool, not the client, provides the reuse.
    for _ in range(5):
        r = curl("-o", "-", sluice.url("/conn"))
        assert r.returncode == 0, r.stderr
        ids.append(int(r.stdout))
    assert len(set(ids)) == 1, ids
    assert a.connections_seen() == 1


def test_connection_close_response_not_reused(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    conn = http.client.HTTPConnection("127.0.0.1", sluice.port, timeout=10)
    _, first = get(conn, "/conn")
    _, second = get(conn, "/conn")
    assert first == second
    r, body = get(conn, "/close")
    assert r.status == 200 and body.strip() == b"alpha"
    # Connection: close is hop-by-hop: the client's connection to sluice stays open.
    assert not r.will_close
    _, third = get(conn, "/conn")
    assert int(third) != int(second), "the upstream connection closed by /close was reused"
    _, fourth = get(conn, "/conn")
    assert third == fourth
    conn.close()


def test_pool_survives_upstream_idle_close(backend_factory, sluice_factory):
    # The backend closes idle connections after 300 ms; the pooled one must not be used after that.
    a = backend_factory("alpha", "--idle-timeout-ms", "300")
    sluice = sluice_factory([a.address])
    for _ in range(3):
        r = curl("-o", "-", "-w", " %{http_code}", sluice.url("/conn"))
        assert r.returncode == 0 and r.stdout.endswith(b" 200"), (r.stdout, r.stderr)
        time.sleep(0.6)  # on purpose: past the backend's 300 ms idle timeout, which closes the pooled one
    assert a.connections_seen() == 3


def test_pool_keeps_connections_per_endpoint(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    b = backend_factory("beta")
    sluice = sluice_factory([a.address, b.address])
    for _ in range(6):
        r = curl("-o", "/dev/null", sluice.url("/"))
        assert r.returncode == 0
    assert a.connections_seen() == 1
    assert b.connections_seen() == 1


def test_pool_disabled_with_max_idle_zero(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], upstream={"max_idle_per_endpoint": 0, "idle_timeout": "60s"})
    ids = [int(curl("-o", "-", sluice.url("/conn")).stdout) for _ in range(3)]
    assert len(set(ids)) == 3, ids


def test_pool_idle_timeout(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], upstream={"max_idle_per_endpoint": 64, "idle_timeout": "300ms"})
    first = int(curl("-o", "-", sluice.url("/conn")).stdout)
    second = int(curl("-o", "-", sluice.url("/conn")).stdout)
    assert first == second  # reused while fresh
    time.sleep(2.0)  # on purpose: past the idle timeout and a sweep (every second)
    third = int(curl("-o", "-", sluice.url("/conn")).stdout)
    assert third != second


def concurrent_round(sluice, n=2):
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null", sluice.url("/delay/400")]
    procs = [subprocess.Popen(cmd, env=clean_env()) for _ in range(n)]
    for p in procs:
        assert p.wait(timeout=15) == 0


@pytest.mark.parametrize("cap,expected", [(1, 3), (64, 2)])
def test_pool_cap(backend_factory, sluice_factory, cap, expected):
    # Two concurrent requests need two upstream connections. With a cap of 1 only one is kept, so the
    # second concurrent round must open a third.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], upstream={"max_idle_per_endpoint": cap, "idle_timeout": "60s"})
    concurrent_round(sluice)
    concurrent_round(sluice)
    assert a.connections_seen() == expected


def test_request_and_fin_together_close_after_the_response(backend_factory, sluice_factory):
    """A keep-alive request followed at once by the client's half close (nc -N, a script that shuts down
    its side): the request and the FIN can come in one readiness report, and the read that takes the
    request takes the FIN too. Sluice answers, then sees the end and closes, instead of holding the
    connection until the idle timeout (30 s here)."""
    import socket
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts={"idle": "30s"})
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", sluice.port), timeout=5) as c:
            # Corked, the request waits in the kernel and the half close leaves as its FIN flag: one
            # segment, one readiness report, every time.
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            c.sendall(b"GET /bytes/10 HTTP/1.1\r\nHost: app\r\n\r\n")
            c.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            data = b""
            while chunk := c.recv(65536):  # the 5 s socket timeout fails the test if the end never comes
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
            assert time.monotonic() - started < 5
