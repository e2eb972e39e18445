"""HTTP/2 upstreams (issue 15): clusters with protocol h2c / h2 / auto, reached by HTTP/1.1 and HTTP/2 clients
(curl) through the real sluice binary; the endpoint is tests/proxy/h2_backend.py (python3-h2)."""
import os
import subprocess
import sys
import time

import pytest

from integ_harness import clean_env, curl, free_port, make_config

from test_http2 import h2curl
from test_tls_admin import make_pki
from test_websocket import stats, with_admin

HERE = os.path.dirname(os.path.abspath(__file__))


class H2Backend:
    def __init__(self, procs, tmp_path, name, *args):
        port_file = tmp_path / f"h2backend-{name}.port"
        port_file.unlink(missing_ok=True)
        self.proc = procs.add(subprocess.Popen([sys.executable, os.path.join(HERE, "h2_backend.py"), name,
                                                str(port_file), *args], env=clean_env()))
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, "h2 backend did not start"
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.address = f"127.0.0.1:{self.port}"


@pytest.fixture
def h2_backend(procs, tmp_path):
    return lambda name, *args: H2Backend(procs, tmp_path, name, *args)


def h2c_cfg(backends, protocol="h2c", tls=None, admin_port=None):
    def cfg(port):
        c = make_config(port, [b.address for b in backends])
        c["services"][0]["clusters"][0]["protocol"] = protocol
        if tls:
            c["services"][0]["clusters"][0]["tls"] = tls
        if admin_port:
            c = with_admin(c, admin_port)
        return c
    return cfg


def http1(url, *args, data=None):
    """(status, body, headers text) of one HTTP/1.1 request."""
    extra = ["--data-binary", "@-"] if data is not None else []
    r = curl("--http1.1", "-s", "-H", "Expect:", "-D", "-", "-o", "-", "-w", "\n%{http_code}", *extra, *args, url,
             input_data=data,
             timeout=120)
    out, _, code = r.stdout.rpartition(b"\n")
    head, _, body = out.partition(b"\r\n\r\n")
    return int(code or 0), body, head.decode(errors="replace").lower()


@pytest.mark.parametrize("size", [0, 1, 16384, 70000, 3 * 1024 * 1024])
def test_http1_client_to_h2c_upstream_bodies(h2_backend, sluice_factory, size):
    b = h2_backend("h2up")
    s = sluice_factory(make_cfg=h2c_cfg([b]))
    status, body, head = http1(s.url(f"/bytes/{size}"))
    assert status == 200 and len(body) == size and "server: h2up" in head
    payload = os.urandom(size)
    status, body, _ = http1(s.url("/echo"), data=payload)
    assert status == 200 and body == payload
    # Chunked upload (unknown length) goes as DATA frames too.
    status, body, _ = http1(s.url("/sink"), "-H", "Transfer-Encoding: chunked", data=payload)
    assert (status, body) == (200, str(size).encode())


def test_h2_client_to_h2c_upstream_bodies_and_streams(h2_backend, sluice_factory):
    b = h2_backend("h2both")
    admin_port = free_port()
    s = sluice_factory(make_cfg=h2c_cfg([b], admin_port=admin_port))
    for size in (0, 1, 65536, 4 * 1024 * 1024):
        assert h2curl(s.url(f"/bytes/{size}")) == (200, "2", b"x" * size)
    payload = os.urandom(2 * 1024 * 1024)
    r = curl("--http2-prior-knowledge", "-o", "-", "--data-binary", "@-", s.url("/echo"), input_data=payload)
    assert r.stdout == payload
    r = subprocess.run(["h2load", "-n", "2000", "-c", "2", "-m", "20", s.url("/name")], capture_output=True,
                       text=True, timeout=120, env=clean_env())
    assert "2000 succeeded" in r.stdout, r.stdout
    # Streams multiplexed on few upstream connections, not one connection per request.
    assert stats(admin_port)["sluice_upstream_connects_total"] <= 10


def test_trailers_and_headers_translated(h2_backend, sluice_factory):
    b = h2_backend("h2t")
    s = sluice_factory(make_cfg=h2c_cfg([b]))
    # HTTP/2 client: trailers arrive as a trailing HEADERS frame.
    r = curl("--http2-prior-knowledge", "-s", "-D", "-", "-o", "/dev/null", s.url("/trailers"))
    out = r.stdout.decode().lower()
    assert "x-trailer: yes" in out and "x-count: 2" in out
    # HTTP/1.1 client that takes trailers: chunked with the trailers in the last chunk.
    raw = subprocess.run(["curl", "-s", "--raw", "--http1.1", "-H", "TE: trailers", "-D", "-", s.url("/trailers")],
                         capture_output=True, timeout=30, env=clean_env()).stdout.decode().lower()
    assert "transfer-encoding: chunked" in raw and raw.endswith("0\r\nx-trailer: yes\r\nx-count: 2\r\n\r\n"), raw
    # Request head: Host -> :authority, hop-by-hop dropped, te: trailers kept, forwarding fields added.
    status, body, _ = http1(s.url("/headers"), "-H", "Host: app.example", "-H", "TE: trailers",
                            "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: 1", "-H", "X-Keep: 2")
    text = body.decode()
    assert status == 200
    assert ":authority: app.example" in text and ":scheme: http" in text
    assert "te: trailers" in text and "x-keep: 2" in text and "via: 1.1 sluice" in text
    assert "x-hop" not in text and "connection" not in text and "\nhost:" not in text


def test_h2_to_h2_fields_with_static_table_names_pass_both_ways(h2_backend, sluice_factory):
    # Names from nghttp2's HPACK static table (accept, cache-control, user-agent, server, content-length) are
    # passed on as views of that table, others as copies (proxy/h2_headers.hpp, StaticName): both kinds, on
    # both legs, arrive whole and in order.
    b = h2_backend("h2names")
    s = sluice_factory(make_cfg=h2c_cfg([b]))
    for _ in range(3):  # the later requests' names come as HPACK table references
        r = curl("--http2-prior-knowledge", "-s", "-D", "-", "-A", "agent/7", "-H", "Accept: text/x-test",
                 "-H", "Cache-Control: no-store", "-H", "X-Not-Static: 1", "-H", "Accept-Language: eo",
                 s.url("/headers"))
        head, _, body = r.stdout.decode().partition("\r\n\r\n")
        lines = body.splitlines()
        for want in ("user-agent: agent/7", "accept: text/x-test", "cache-control: no-store", "x-not-static: 1",
                     "accept-language: eo", "via: 1.1 sluice"):
            assert want in lines, (want, body)
        assert [l for l in lines if l.startswith("accept")] == ["accept: text/x-test", "accept-language: eo"]
        head = head.lower()
        assert "server: h2names" in head and "content-length: " in head and "via: 1.1 sluice" in head, head


def test_goaway_streams_retried_and_no_new_streams(h2_backend, sluice_factory):
    b1, b2 = h2_backend("g1"), h2_backend("g2")
    s = sluice_factory(make_cfg=h2c_cfg([b1, b2]))
    # On g1, /goaway-if/g1 gets GOAWAY with a last stream id below its stream: the stream was not processed,
    # so it is retried on g2 (any method: here a POST); g1's connection then takes no new stream.
    for _ in range(6):
        status, body, _ = http1(s.url("/goaway-if/g1"), data=b"payload")
        assert (status, body) == (200, b"g2\n")
    for _ in range(6):
        status, body, _ = http1(s.url("/name"))
        assert status == 200 and body in (b"g1\n", b"g2\n")


def test_h2_over_tls_upstream_by_alpn(h2_backend, sluice_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    b = h2_backend("h2tls", "--tls", str(pki / "leaf.crt"), str(pki / "leaf.key"))
    tls = {"ca_file": str(pki / "ca.crt"), "server_name": "localhost"}
    s = sluice_factory(make_cfg=h2c_cfg([b], protocol="h2", tls=tls))
    assert h2curl(s.url("/name")) == (200, "2", b"h2tls\n")
    status, body, _ = http1(s.url("/bytes/100000"))
    assert status == 200 and len(body) == 100000
    # auto: ALPN chooses h2 here.
    s2 = sluice_factory(make_cfg=h2c_cfg([b], protocol="auto", tls=tls))
    assert h2curl(s2.url("/name")) == (200, "2", b"h2tls\n")


def test_auto_falls_back_to_http1_when_alpn_says_so(h2_backend, sluice_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    b = h2_backend("h1tls", "--tls", str(pki / "leaf.crt"), str(pki / "leaf.key"), "--http1")
    tls = {"ca_file": str(pki / "ca.crt"), "server_name": "localhost"}
    s = sluice_factory(make_cfg=h2c_cfg([b], protocol="auto", tls=tls))
    for _ in range(3):
        status, body, _ = http1(s.url("/"))
        assert (status, body) == (200, b"h1tls\n")
    assert h2curl(s.url("/")) == (200, "2", b"h1tls\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.slow
def test_100_mib_streamed_both_ways_with_flat_rss(h2_backend, sluice_factory):
    b = h2_backend("h2big")
    s = sluice_factory(make_cfg=h2c_cfg([b]))
    before = rss_kib(s.proc.pid)
    size = 100 * 1024 * 1024
    r = curl("--http1.1", "-s", "-o", "/dev/null", "-w", "%{size_download}", s.url(f"/bytes/{size}"), timeout=300)
    assert int(r.stdout) == size
    r = curl("--http2-prior-knowledge", "-s", "-o", "/dev/null", "-w", "%{size_download}", s.url(f"/bytes/{size}"),
             timeout=300)
    assert int(r.stdout) == size
    up = subprocess.run(f"head -c {size} /dev/zero | curl -s --http2-prior-knowledge --data-binary @- "
                        f"{s.url('/sink')}", shell=True, capture_output=True, timeout=300, env=clean_env())
    assert up.stdout == str(size).encode()
    grown = rss_kib(s.proc.pid) - before
    print(f"h2 upstream 100 MiB x3: sluice RSS grew {grown} KiB")
    assert grown < 32 * 1024, grown


def test_peer_stream_limit_opens_more_connections(h2_backend, sluice_factory):
    b = h2_backend("h2lim", "--max-streams", "2")
    admin_port = free_port()
    s = sluice_factory(make_cfg=h2c_cfg([b], admin_port=admin_port))
    r = subprocess.run(["h2load", "-n", "600", "-c", "1", "-m", "16", s.url("/bytes/1000")], capture_output=True,
                       text=True, timeout=120, env=clean_env())
    assert "600 succeeded" in r.stdout, r.stdout
    # At most 2 streams per connection: 16 concurrent requests need several connections.
    assert stats(admin_port)["sluice_upstream_connects_total"] >= 2
