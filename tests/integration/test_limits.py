"""Request head limits (431) and malformed requests (400, connection closed, nothing forwarded).

Each case runs against a fresh backend; afterwards the backend's own connection counter (/conn, asked
directly) must show that sluice never connected to it."""
import pytest

from integ_harness import HttpReader, connect


def send_raw(sluice, data, check_close=True):
    """Sends raw bytes; returns (status, headers, body, closed_afterwards (None unless check_close))."""
    with connect(sluice.port) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy may answer and close before it has read everything we send
        reader = HttpReader(s)
        status, headers, body = reader.read_response()
        closed = reader.at_eof(wait=3) if check_close else None
    return status, headers, body, closed


def head(*lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


BAD_REQUESTS = {
    "content_length_and_transfer_encoding": head(
        "POST /sink HTTP/1.1", "Host: app", "Content-Length: 5", "Transfer-Encoding: chunked") +
    b"0\r\n\r\n",
    "differing_content_lengths": head(
        "POST /sink HTTP/1.1", "Host: app", "Content-Length: 5", "Content-Length: 6") + b"hello!",
    "differing_content_lengths_in_one_field": head(
        "POST /sink HTTP/1.1", "Host: app", "Content-Length: 5, 6") + b"hello!",
    "invalid_chunk_size": head(
        "POST /sink HTTP/1.1", "Host: app", "Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n",
    "obs_fold": head("GET / HTTP/1.1", "Host: app", "X-Folded: one", " two"),
    "obs_fold_tab": head("GET / HTTP/1.1", "Host: app", "X-Folded: one", "\ttwo"),
    "bare_lf_in_head": b"GET / HTTP/1.1\r\nHost: app\nX-A: b\r\n\r\n",
    "bare_lf_everywhere": b"GET / HTTP/1.1\nHost: app\n\n",
    "missing_host": head("GET / HTTP/1.1"),
    # RFC 9112 3.2: more than one Host is a 400.
    "two_hosts": head("GET / HTTP/1.1", "Host: app", "Host: other"),
    # RFC 9112 6.3: a request whose Transfer-Encoding does not end in chunked has no knowable length; the
    # bytes after the head would otherwise be read as the next request (smuggling).
    "transfer_encoding_not_chunked": head("POST /sink HTTP/1.1", "Host: app", "Transfer-Encoding: gzip") +
    b"GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n",
    "transfer_encoding_chunked_not_last": head(
        "POST /sink HTTP/1.1", "Host: app", "Transfer-Encoding: chunked, gzip") + b"5\r\nhello\r\n0\r\n\r\n",
    "transfer_encoding_twice_chunked": head(
        "POST /sink HTTP/1.1", "Host: app", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked") +
    b"5\r\nhello\r\n0\r\n\r\n",
    # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
    "transfer_encoding_in_http10": head("POST /sink HTTP/1.0", "Host: app", "Transfer-Encoding: chunked") +
    b"5\r\nhello\r\n0\r\n\r\n",
    "content_length_not_a_number": head("POST /sink HTTP/1.1", "Host: app", "Content-Length: +5") + b"hello",
    "nul_in_value": head("GET / HTTP/1.1", "Host: app", "X-A: a\x00b"),
    "bare_cr_in_value": head("GET / HTTP/1.1", "Host: app", "X-A: a\rb"),
    "space_before_colon": head("GET / HTTP/1.1", "Host: app", "X-Bad : v"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_400_closed_nothing_forwarded(backend_factory, sluice_factory, case):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    status, headers, body, closed = send_raw(sluice, BAD_REQUESTS[case])
    assert status == 400, body
    assert body.strip(), "the error needs a short plain-text body"
    assert headers.get("content-type", "").startswith("text/plain")
    assert closed, "the connection must be closed after a 400"
    assert a.connections_seen() == 0, "a malformed request reached the backend"


def test_good_request_does_reach_backend(backend_factory, sluice_factory):
    # The positive control of the test above: the counter does see what sluice forwards.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    status, _, body, _ = send_raw(sluice, head("POST /sink HTTP/1.1", "Host: app", "Content-Length: 5") + b"hello",
                                check_close=False)
    assert status == 200 and body == b"5\n"
    assert a.connections_seen() == 1


def test_same_content_length_twice_is_not_smuggling(backend_factory, sluice_factory):
    # Repeated identical values are allowed by RFC 9110 8.6 (a recipient may accept them) or rejected;
    # either way the body must not be misframed: if accepted, the backend counts exactly 5 bytes.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    status, _, body, _ = send_raw(
        sluice, head("POST /sink HTTP/1.1", "Host: app", "Content-Length: 5", "Content-Length: 5") + b"hello",
        check_close=False)
    assert status in (200, 400)
    if status == 200:
        assert body == b"5\n"


def test_head_too_large_431(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    big = "x" * (61 * 1024)
    status, _, body, closed = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", f"X-Big: {big}"))
    assert status == 431, body
    assert closed
    assert a.connections_seen() == 0


def test_head_just_under_limit_ok(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    big = "x" * (58 * 1024)
    status, _, body, _ = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", f"X-Big: {big}"), check_close=False)
    assert status == 200, body


def test_too_many_headers_431(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    fields = [f"X-H{i}: v" for i in range(100)]  # + Host = 101
    status, _, body, closed = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", *fields))
    assert status == 431, body
    assert closed
    assert a.connections_seen() == 0


def test_hundred_headers_ok(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    fields = [f"X-H{i}: v" for i in range(99)]  # + Host = 100
    status, _, body, _ = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", *fields), check_close=False)
    assert status == 200, body


def test_configured_limits_apply(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], limits={"max_request_header_bytes": 2048, "max_request_headers": 5})
    status, _, _, _ = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", "X-Big: " + "y" * 3000))
    assert status == 431
    fields = [f"X-H{i}: v" for i in range(5)]
    status, _, _, _ = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", *fields))
    assert status == 431
    status, _, _, _ = send_raw(sluice, head("GET / HTTP/1.1", "Host: app", "X-A: 1"), check_close=False)
    assert status == 200


def head_of_size(total):
    """A GET head of exactly `total` bytes (final CRLF CRLF included)."""
    fixed = head("GET / HTTP/1.1", "Host: app", "X-Pad: ")
    return head("GET / HTTP/1.1", "Host: app", "X-Pad: " + "p" * (total - len(fixed)))


def test_head_size_boundary(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    exact = head_of_size(61440)
    assert len(exact) == 61440
    status, _, body, _ = send_raw(sluice, exact, check_close=False)
    assert status == 200, body
    status, _, body, _ = send_raw(sluice, head_of_size(61441))
    assert status == 431, body
