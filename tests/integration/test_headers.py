"""Hop-by-hop headers removed, forwarding headers added, Host passed through (backend /headers echoes
what it received)."""
import socket

from integ_harness import HttpReader, connect


def received_headers(sluice, extra_lines, host="shop.example:8080", path="/headers"):
    """Sends a request with the given raw header lines; returns (response headers, [(name, value)] the
    backend saw, names lowercased)."""
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(line + "\r\n" for line in extra_lines) + "\r\n"
    with connect(sluice.port) as s:
        s.sendall(head.encode())
        status, headers, body = HttpReader(s).read_response()
    assert status == 200, body
    seen = []
    for line in body.decode().splitlines():
        name, _, value = line.partition(":")
        seen.append((name.strip().lower(), value.strip()))
    return headers, seen


def names(seen):
    return {n for n, _ in seen}


def test_hop_by_hop_removed(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    _, seen = received_headers(sluice, [
        "Connection: keep-alive, X-Secret, x-other-secret",
        "X-Secret: s1",
        "X-Other-Secret: s2",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Trailer: X-Checksum",
        "Upgrade: foo/2",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "Proxy-Connection: keep-alive",
        "Proxy-Custom: 1",
        "X-Kept: yes",
        "Accept: text/plain",
    ])
    got = names(seen)
    for hop in ("connection", "x-secret", "x-other-secret", "keep-alive", "te", "trailer", "upgrade",
                "proxy-authorization", "proxy-connection", "proxy-custom"):
        assert hop not in got, f"{hop} was forwarded: {seen}"
    assert ("x-kept", "yes") in seen
    assert ("accept", "text/plain") in seen


def test_forwarding_headers_added_and_host_kept(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    _, seen = received_headers(sluice, [])
    d = dict(seen)
    assert d["host"] == "shop.example:8080"
    assert d["x-forwarded-for"] == "127.0.0.1"
    assert d["x-forwarded-proto"] == "http"
    assert "1.1 sluice" in d["via"]
    assert [n for n, _ in seen].count("host") == 1


def test_forwarding_headers_append_to_existing(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    _, seen = received_headers(sluice, ["X-Forwarded-For: 10.1.2.3", "Via: 1.0 edge"])
    d = dict(seen)
    assert d["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert d["via"] == "1.0 edge, 1.1 sluice"


def test_response_gets_via_and_backend_headers(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    headers, _ = received_headers(sluice, [])
    assert "1.1 sluice" in headers.get("via", "")
    assert headers.get("x-backend") == "alpha"


def test_chunked_request_reframed(backend_factory, sluice_factory):
    # Transfer-Encoding is hop-by-hop; sluice re-frames the body and the backend must see one framing.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        s.sendall(b"POST /headers HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n")
        status, _, body = HttpReader(s).read_response()
    assert status == 200
    lines = body.decode().lower().splitlines()
    framing = [line for line in lines if line.startswith(("transfer-encoding:", "content-length:"))]
    assert len(framing) == 1, lines


def test_x_forwarded_for_is_the_client_address(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind(("127.0.0.2", 0))  # another loopback address as the client
    s.connect(("127.0.0.1", sluice.port))
    with s:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: app\r\n\r\n")
        status, _, body = HttpReader(s).read_response()
    assert status == 200
    assert "x-forwarded-for: 127.0.0.2" in body.decode().lower()
