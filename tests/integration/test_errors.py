"""Timeouts and error statuses: slowloris 408, upstream timeout 504, dead endpoints (retry, then 502),
no route 404, no endpoint 503, each with a plain-text body naming the cause."""
import time

import pytest

from integ_harness import LOCAL_CLUSTER, HttpReader, connect, curl_status, free_port, make_config, wait_json_lines


def short_timeouts(**changes):
    t = {"request_header": "1s", "idle": "60s", "connect": "1s", "response": "1s", "drain": "5s"}
    t.update(changes)
    return t


def test_slowloris_head_closed(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=short_timeouts())
    with connect(sluice.port) as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n")  # half a head, then silence
        reader = HttpReader(s)
        s.settimeout(5)
        status, headers, _ = reader.read_response()
        elapsed = time.monotonic() - start
        assert status == 408 and headers.get("connection") == "close"
        assert reader.at_eof(wait=2)
    assert 0.8 <= elapsed <= 3.0, elapsed
    assert a.connections_seen() == 0


def test_slowloris_trickle_still_closed(backend_factory, sluice_factory):
    # A byte every 200 ms keeps any per-read timer happy; the head deadline counts from the first byte.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=short_timeouts())
    with connect(sluice.port) as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        closed_at = None
        for _ in range(25):
            time.sleep(0.2)  # the trickle is the point: a byte every 200 ms
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
        reader = HttpReader(s)
        if closed_at is None:
            try:
                status, _, _ = reader.read_response()
                assert status == 408
            except (EOFError, ConnectionResetError):
                pass
            closed_at = time.monotonic()
    assert closed_at - start <= 3.0, closed_at - start


def test_idle_keepalive_connection_closed(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=short_timeouts(idle="1s", request_header="5s"))
    with connect(sluice.port) as s:
        reader = HttpReader(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        status, _, _ = reader.read_response()
        assert status == 200
        start = time.monotonic()
        assert reader.at_eof(wait=4)
        assert 0.7 <= time.monotonic() - start <= 3.0


def test_upstream_response_timeout_504(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=short_timeouts())
    start = time.monotonic()
    status, body = curl_status(sluice.url("/delay/5000"))
    elapsed = time.monotonic() - start
    assert status == 504, body
    assert b"timeout" in body.lower()
    assert 0.8 <= elapsed <= 3.5, elapsed


def test_dead_endpoint_retried_on_the_other(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    sluice = sluice_factory([dead, a.address], timeouts=short_timeouts())
    for _ in range(6):  # round robin puts the dead endpoint first for half of them
        status, body = curl_status(sluice.url("/"))
        assert status == 200, body
        assert body == b"alpha\n"


def test_dead_endpoint_retried_for_post(backend_factory, sluice_factory):
    # A connect failure means nothing was sent: retried for any method.
    a = backend_factory("alpha")
    dead = f"127.0.0.1:{free_port()}"
    sluice = sluice_factory([dead, a.address], timeouts=short_timeouts())
    for _ in range(4):
        status, body = curl_status(sluice.url("/sink"), "--data-binary", "hello")
        assert status == 200, body
        assert body == b"5\n"


def test_both_dead_502_names_cause(sluice_factory):
    dead1 = f"127.0.0.1:{free_port()}"
    dead2 = f"127.0.0.1:{free_port()}"
    sluice = sluice_factory([dead1, dead2], timeouts=short_timeouts())
    with connect(sluice.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        status, headers, body = HttpReader(s).read_response()
    assert status == 502
    assert headers.get("content-type", "").startswith("text/plain")
    text = body.decode().lower()
    assert "connect" in text
    assert dead1.split(":")[1] in text or dead2.split(":")[1] in text, text


def routing_config(port, live):
    """Route app.example -> app (one live endpoint); empty.example -> a service with no endpoints."""
    cfg = make_config(port, [live], timeouts=short_timeouts())
    cfg["services"].append({"name": "empty", "namespace": "default",
                            "clusters": [{"cluster": LOCAL_CLUSTER, "endpoints": []}]})
    cfg["routes"] = [
        {"hosts": ["app.example"], "path": "/", "service": "app.default"},
        {"hosts": ["empty.example"], "path": "/", "service": "empty.default"},
        {"hosts": ["*"], "path": "/only", "path_match": "exact", "service": "app.default"},
    ]
    return cfg


def test_no_route_404_and_no_endpoint_503(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory(make_cfg=lambda port: routing_config(port, a.address))
    status, body = curl_status(sluice.url("/"), "-H", "Host: app.example")
    assert status == 200 and body == b"alpha\n"
    status, body = curl_status(sluice.url("/x"), "-H", "Host: unknown.example")
    assert status == 404
    assert b"no route" in body.lower()
    status, body = curl_status(sluice.url("/only/more"), "-H", "Host: unknown.example")
    assert status == 404
    status, body = curl_status(sluice.url("/only"), "-H", "Host: unknown.example")
    assert status == 200
    status, body = curl_status(sluice.url("/"), "-H", "Host: empty.example")
    assert status == 503
    assert b"endpoint" in body.lower()


def test_error_responses_keep_connection(backend_factory, sluice_factory):
    # A 404 for a request without a body does not need to cost the client its connection.
    a = backend_factory("alpha")
    sluice = sluice_factory(make_cfg=lambda port: routing_config(port, a.address))
    with connect(sluice.port) as s:
        reader = HttpReader(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n")
        status, _, _ = reader.read_response()
        assert status == 404
        s.sendall(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
        status, _, body = reader.read_response()
        assert status == 200 and body == b"alpha\n"


def test_two_dead_endpoints_of_three(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    dead1 = f"127.0.0.1:{free_port()}"
    dead2 = f"127.0.0.1:{free_port()}"
    sluice = sluice_factory([dead1, dead2, a.address], timeouts=short_timeouts(),
                            access_log={"enabled": True, "path": "-"})
    for _ in range(6):
        status, body = curl_status(sluice.url("/"))
        assert status == 200, body
    attempts = [line["attempts"] for line in wait_json_lines(sluice.stdout, 6)]
    assert len(attempts) == 6
    assert max(attempts) >= 2, attempts  # the dead endpoints were tried, and the request retried


@pytest.mark.parametrize("max_retries", [0, 1, 2])
def test_retry_count_follows_max_retries(backend_factory, sluice_factory, max_retries):
    # Three endpoints answering 503: a GET is tried 1 + max_retries times (the access log counts attempts),
    # then the last endpoint's own 503 goes to the client.
    bad = [backend_factory(f"bad{i}", "--status-all", "503") for i in range(3)]
    sluice = sluice_factory([b.address for b in bad], timeouts=short_timeouts(),
                            access_log={"enabled": True, "path": "-"},
                            service={"retry": {"max_retries": max_retries}})
    status, body = curl_status(sluice.url("/"))
    assert status == 503, body
    assert body.startswith(b"status 503 from bad"), body
    lines = wait_json_lines(sluice.stdout, 1)
    assert len(lines) == 1
    assert lines[0]["attempts"] == 1 + max_retries, lines


def test_dead_endpoints_each_tried_once_whatever_max_retries(sluice_factory):
    # Connect failures are local-origin: no application saw the request, so max_retries does not count
    # them; each endpoint is tried once, then 502.
    dead = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    sluice = sluice_factory(dead, timeouts=short_timeouts(), access_log={"enabled": True, "path": "-"},
                            service={"retry": {"max_retries": 0}})
    status, body = curl_status(sluice.url("/"))
    assert status == 502, body
    lines = wait_json_lines(sluice.stdout, 1)
    assert len(lines) == 1
    assert lines[0]["attempts"] == 3, lines


def test_connect_failure_retried_even_with_max_retries_zero(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    dead = f"127.0.0.1:{free_port()}"
    sluice = sluice_factory([dead, a.address], timeouts=short_timeouts(),
                            service={"retry": {"max_retries": 0}})
    statuses = sorted(curl_status(sluice.url("/"))[0] for _ in range(4))
    assert statuses == [200, 200, 200, 200]


def test_connect_timeout_retried_on_the_other(backend_factory, sluice_factory, black_hole):
    a = backend_factory("alpha")
    sluice = sluice_factory([black_hole.address, a.address], timeouts=short_timeouts(connect="500ms"))
    slow = 0
    for _ in range(4):
        start = time.monotonic()
        status, body = curl_status(sluice.url("/"))
        elapsed = time.monotonic() - start
        assert status == 200 and body == b"alpha\n"
        assert elapsed < 2.0
        slow += elapsed >= 0.4
    assert slow >= 1, "the black hole was never tried: the test proves nothing"


def test_connect_timeout_alone_502(sluice_factory, black_hole):
    sluice = sluice_factory([black_hole.address], timeouts=short_timeouts(connect="500ms"),
                            service={"retry": {"max_retries": 0}})
    start = time.monotonic()
    status, body = curl_status(sluice.url("/"))
    elapsed = time.monotonic() - start
    assert status == 502, body
    assert b"timeout" in body.lower() and black_hole.address.encode() in body
    assert 0.4 <= elapsed <= 2.0, elapsed


def test_interim_heads_do_not_extend_the_response_timeout(sluice_factory):
    # An endpoint that sends 103 Early Hints every 0.4 s and never a final head: timeouts.response bounds
    # the whole wait (1xx heads included), so the client gets its 504 after about 1 s, not never.
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            while not stop.is_set():
                try:
                    conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                except OSError:
                    return
                stop.wait(0.4)

    threading.Thread(target=serve, daemon=True).start()
    sluice = sluice_factory([f"127.0.0.1:{listener.getsockname()[1]}"], timeouts=short_timeouts())
    start = time.monotonic()
    status, body = curl_status(sluice.url("/"))
    elapsed = time.monotonic() - start
    stop.set()
    listener.close()
    assert status == 504, body
    assert 0.8 <= elapsed <= 3.5, elapsed
