"""RFC 9112 9.3/9.6 for the answers sluice writes itself (404 no route, 503 no endpoint, 502, 504, 400, 431,
408, 505): `Connection: close` and HTTP/1.0's default close the connection after the answer, which says so
(`Connection: close`); an HTTP/1.0 client gets an HTTP/1.0 status line; HTTP/1.0 with keep-alive and HTTP/1.1
by default keep the connection where the answer allows it. RFC 9112 2.3: `HTTP/1.x` (x > 1) is HTTP/1.1; an
unsupported major version gets 505. Every case is checked with raw sockets (status line, header, EOF), the
keep-alive ones with curl too. (A connection that sends nothing by the head deadline is closed without an
answer, as nginx does; one with part of a head gets 408.)"""
import pytest

from integ_harness import LOCAL_CLUSTER, HttpReader, connect, curl, free_port, make_config


def local_reply_config(port, live):
    """app.example -> a live backend; empty.example -> no endpoints (503); dead.example -> a refused endpoint
    (502); slow.example -> the backend, with a 1 s response timeout (504 on /delay)."""
    timeouts = {"request_header": "1s", "idle": "60s", "connect": "1s", "response": "1s", "drain": "5s"}
    cfg = make_config(port, [live], timeouts=timeouts)
    cfg["services"].append({"name": "empty", "namespace": "default",
                            "clusters": [{"cluster": LOCAL_CLUSTER, "endpoints": []}]})
    cfg["services"].append({"name": "dead", "namespace": "default",
                            "outlier_detection": {"enabled": False},
                            "clusters": [{"cluster": LOCAL_CLUSTER, "endpoints": [f"127.0.0.1:{free_port()}"]}]})
    cfg["routes"] = [
        {"hosts": ["app.example"], "path": "/", "service": "app.default"},
        {"hosts": ["empty.example"], "path": "/", "service": "empty.default"},
        {"hosts": ["dead.example"], "path": "/", "service": "dead.default"},
    ]
    return cfg


@pytest.fixture
def sluice(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    return sluice_factory(make_cfg=lambda port: local_reply_config(port, a.address))


class Reader(HttpReader):
    """HttpReader with the status line's version: one response as (version, status, headers, body)."""

    def response(self):
        status, headers, body = self.read_response()
        return self.version, status, headers, body

    def at_eof(self, wait=3.0):
        return super().at_eof(wait)


# Answers that may keep the connection: (host, path, status).
KEEPABLE = [
    pytest.param("nowhere.example", "/", 404, id="404-no-route"),
    pytest.param("empty.example", "/", 503, id="503-no-endpoint"),
    pytest.param("dead.example", "/", 502, id="502-connect-refused"),
]


@pytest.mark.parametrize("host,path,status", KEEPABLE)
def test_keepable_reply_closes_on_connection_close(sluice, host, path, status):
    with connect(sluice.port) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        r = Reader(s)
        version, got, headers, _ = r.response()
        assert (version, got) == ("HTTP/1.1", status)
        assert headers.get("connection", "").lower() == "close"
        assert r.at_eof()


@pytest.mark.parametrize("host,path,status", KEEPABLE)
def test_keepable_reply_closes_for_http10(sluice, host, path, status):
    with connect(sluice.port) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        r = Reader(s)
        version, got, headers, _ = r.response()
        assert (version, got) == ("HTTP/1.0", status)
        assert headers.get("connection", "").lower() == "close"
        assert r.at_eof()


@pytest.mark.parametrize("host,path,status", KEEPABLE)
def test_keepable_reply_keeps_http10_keep_alive(sluice, host, path, status):
    with connect(sluice.port) as s:
        r = Reader(s)
        for _ in range(2):
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode())
            version, got, headers, _ = r.response()
            assert (version, got) == ("HTTP/1.0", status)
            assert headers.get("connection", "").lower() == "keep-alive"
        s.sendall(b"GET /bytes/3 HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\n")
        version, got, _, body = r.response()
        assert (version, got, body) == ("HTTP/1.0", 200, b"abc")


@pytest.mark.parametrize("host,path,status", KEEPABLE)
def test_keepable_reply_keeps_http11_by_default(sluice, host, path, status):
    with connect(sluice.port) as s:
        r = Reader(s)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        version, got, headers, _ = r.response()
        assert (version, got) == ("HTTP/1.1", status)
        assert "close" not in headers.get("connection", "").lower()
        s.sendall(b"GET /bytes/3 HTTP/1.1\r\nHost: app.example\r\n\r\n")
        version, got, _, body = r.response()
        assert (got, body) == (200, b"abc")


@pytest.mark.parametrize("host,status", [("nowhere.example", 404), ("empty.example", 503), ("dead.example", 502)])
@pytest.mark.parametrize("flags,version", [(["-H", "Connection: close"], "HTTP/1.1"), (["--http1.0"], "HTTP/1.0")])
def test_keepable_reply_curl(sluice, host, status, flags, version):
    r = curl("-D", "-", "-o", "/dev/null", "-H", f"Host: {host}", *flags, sluice.url("/"), timeout=10)
    head = r.stdout.decode("latin-1")
    assert r.returncode == 0, r.stderr
    assert head.startswith(f"{version} {status} "), head
    assert "connection: close" in head.lower(), head


# Answers that always close: (request bytes, status, whether the request line is HTTP/1.0).
def always_close_cases():
    many_headers = "".join(f"X-H{i}: v\r\n" for i in range(150))
    cases = []
    for v in ("1.1", "1.0"):
        cases += [
            pytest.param(f"GET / HTTP/{v}\r\nHost: a\r\nHost: b\r\n\r\n", 400, v, id=f"400-two-hosts-{v}"),
            pytest.param(f"GET / HTTP/{v}\r\nHost: app.example\r\nX: a\0b\r\n\r\n", 400, v, id=f"400-nul-{v}"),
            pytest.param(f"GET / HTTP/{v}\r\nHost: app.example\r\n{many_headers}\r\n", 431, v, id=f"431-{v}"),
            pytest.param(f"GET /delay/5000 HTTP/{v}\r\nHost: app.example\r\n\r\n", 504, v, id=f"504-{v}"),
            # Half a head, then silence: the head deadline (1 s here) answers 408.
            pytest.param(f"GET / HTTP/{v}\r\nHost: app.example\r\n", 408, v, id=f"408-{v}"),
        ]
    return cases


@pytest.mark.parametrize("request_text,status,version", always_close_cases())
@pytest.mark.parametrize("ask", ["default", "keep-alive"])
def test_closing_reply_says_close(sluice, request_text, status, version, ask):
    if ask == "keep-alive":
        # Asking for keep-alive does not keep a connection whose framing can no longer be trusted.
        request_text = request_text.replace("\r\n", "\r\nConnection: keep-alive\r\n", 1)
    with connect(sluice.port) as s:
        s.sendall(request_text.encode("latin-1"))
        r = Reader(s)
        got_version, got, headers, _ = r.response()
        assert (got_version, got) == (f"HTTP/{version}", status)
        assert headers.get("connection", "").lower() == "close"
        assert r.at_eof()


@pytest.mark.parametrize("line_version", ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"])
def test_unsupported_major_version_505(sluice, line_version):
    with connect(sluice.port) as s:
        s.sendall(f"GET / {line_version}\r\nHost: app.example\r\n\r\n".encode())
        r = Reader(s)
        version, status, headers, body = r.response()
        assert (version, status) == ("HTTP/1.1", 505)
        assert headers.get("connection", "").lower() == "close"
        assert line_version.encode() in body
        assert r.at_eof()


def test_h2_version_after_first_request_is_505(sluice):
    # The HTTP/2 preface is only a preface on a fresh connection; later it is a request line like another.
    with connect(sluice.port) as s:
        r = Reader(s)
        s.sendall(b"GET /bytes/2 HTTP/1.1\r\nHost: app.example\r\n\r\n")
        assert r.response()[1] == 200
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert r.response()[1] == 505
        assert r.at_eof()


@pytest.mark.parametrize("minor", ["2", "7", "9"])
def test_higher_minor_version_is_http11(sluice, minor):
    with connect(sluice.port) as s:
        r = Reader(s)
        for n in (3, 4):  # kept alive as HTTP/1.1 would be
            s.sendall(f"GET /bytes/{n} HTTP/1.{minor}\r\nHost: app.example\r\n\r\n".encode())
            version, status, headers, body = r.response()
            assert (version, status, len(body)) == ("HTTP/1.1", 200, n)
            assert "close" not in headers.get("connection", "").lower()
        # ... and without Host it is refused as HTTP/1.1 would be.
        s.sendall(f"GET / HTTP/1.{minor}\r\n\r\n".encode())
        assert r.response()[1] == 400
