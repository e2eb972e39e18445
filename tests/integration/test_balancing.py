"""Round robin over two backends through the real proxy."""
import http.client

from integ_harness import curl, curl_status


def test_round_robin_alternates(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    b = backend_factory("beta")
    sluice = sluice_factory([a.address, b.address])
    names = []
    for _ in range(8):
        status, body = curl_status(sluice.url("/"))
        assert status == 200
        names.append(body.decode().strip())
    assert set(names) == {"alpha", "beta"}
    # Strict alternation: no backend answers twice in a row.
    for prev, cur in zip(names, names[1:]):
        assert prev != cur, names


def test_round_robin_on_one_client_connection(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    b = backend_factory("beta")
    sluice = sluice_factory([a.address, b.address])
    conn = http.client.HTTPConnection("127.0.0.1", sluice.port, timeout=10)
    names = []
    for _ in range(6):
        conn.request("GET", "/", headers={"Host": "app"})
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("X-Backend") in ("alpha", "beta")
        names.append(r.read().decode().strip())
    conn.close()
    assert names.count("alpha") == 3 and names.count("beta") == 3
    for prev, cur in zip(names, names[1:]):
        assert prev != cur, names


def test_two_workers_serve_both_backends(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    b = backend_factory("beta")
    sluice = sluice_factory([a.address, b.address], args=("--workers", "2"))
    urls = [sluice.url("/")] * 20
    # A new connection per request, so the kernel spreads them over both workers' acceptors.
    r = curl("-o", "-", "-H", "Connection: close", *urls)
    assert r.returncode == 0, r.stderr
    names = r.stdout.decode().split()
    assert len(names) == 20
    assert 8 <= names.count("alpha") <= 12, names
