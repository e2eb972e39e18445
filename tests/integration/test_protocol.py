"""HTTP/1.1 details through the proxy: pipelining, HTTP/1.0 clients, Expect on a refused request,
a bad chunk in the middle of a streamed body, back-pressure from a slow reader, route rewrites."""
import socket
import subprocess
import time

from integ_harness import LOCAL_CLUSTER, HttpReader, clean_env, connect, curl_status, make_config, wait_until

MIB = 1024 * 1024


def test_pipelined_requests_answered_in_order(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        s.sendall(b"GET /bytes/3 HTTP/1.1\r\nHost: app\r\n\r\n"
                  b"POST /sink HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\r\nabcd"
                  b"GET /bytes/5 HTTP/1.1\r\nHost: app\r\n\r\n")
        reader = HttpReader(s)
        assert reader.read_response()[2] == b"abc"
        assert reader.read_response()[2] == b"4\n"
        assert reader.read_response()[2] == b"abcde"


def test_http10_client_gets_close_delimited_chunked_response(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        s.sendall(b"GET /chunked/100 HTTP/1.0\r\nHost: app\r\n\r\n")
        reader = HttpReader(s)
        status, headers, body = reader.read_response()
    assert status == 200
    assert "transfer-encoding" not in headers  # HTTP/1.0 has no chunked coding
    assert body == bytes(ord("a") + i % 26 for i in range(100))


def test_http10_client_with_content_length(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        s.sendall(b"GET /bytes/7 HTTP/1.0\r\n\r\n")  # no Host: fine for 1.0
        reader = HttpReader(s)
        status, headers, body = reader.read_response()
        assert status == 200 and body == b"abcdefg"
        assert reader.at_eof(wait=3)


def test_expect_continue_refused_request_gets_no_100(backend_factory, sluice_factory):
    a = backend_factory("alpha")

    def cfg(port):
        c = make_config(port, [a.address])
        c["routes"] = [{"hosts": ["app"], "path": "/", "service": "app.default"}]
        return c
    sluice = sluice_factory(make_cfg=cfg)
    with connect(sluice.port) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: elsewhere\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        reader = HttpReader(s)
        status, headers = reader.read_head()
        assert status == 404, "a request that will be refused must not be invited to send its body"
        reader.read_exact(int(dict(headers).get("content-length", "0")))
        # Its body was never read, so the connection cannot carry another request.
        assert reader.at_eof(wait=3)


def test_bad_chunk_mid_stream_400(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        # Once sluice has connected upstream it holds the first chunk (read before the endpoint is
        # chosen) and sends it with the head before it reads any more: the bad chunk comes mid-stream.
        wait_until(lambda: a.connections_seen() >= 1, 10, "sluice to connect to the backend")
        s.sendall(b"zz\r\nworld\r\n0\r\n\r\n")
        reader = HttpReader(s)
        status, _, body = reader.read_response()
        assert status == 400, body
        assert reader.at_eof(wait=3)


def test_slow_reader_backpressure_keeps_rss_flat(backend_factory, sluice_factory):
    # The client reads 1 MiB of a 1 GiB download and stops: sluice must stop reading the upstream too,
    # not buffer what the client does not take.
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    baseline = sluice.rss_kib()
    with connect(sluice.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(f"GET /bytes/{1024 * MIB} HTTP/1.1\r\nHost: app\r\n\r\n".encode())
        reader = HttpReader(s)
        status, _ = reader.read_head()
        assert status == 200
        reader.read_exact(MIB)
        peak = baseline
        for _ in range(15):  # watched for 1.5 s on purpose: the growth would take time to show
            time.sleep(0.1)
            peak = max(peak, sluice.rss_kib())
    assert peak - baseline < 60 * 1024, f"RSS grew by {peak - baseline} KiB while the client did not read"
    # And the proxy is still fine afterwards.
    status, body = curl_status(sluice.url("/bytes/3"))
    assert status == 200 and body == b"abc"


def test_route_rewrites_host_and_path(backend_factory, sluice_factory):
    a = backend_factory("alpha")

    def cfg(port):
        c = make_config(port, [a.address])
        c["routes"] = [
            {"hosts": ["*"], "path": "/api", "service": "app.default", "host_rewrite": "internal.svc",
             "rewrite_from": "/api", "rewrite_to": "/"},
            {"hosts": ["*"], "path": "/", "service": "app.default"},
        ]
        return c
    sluice = sluice_factory(make_cfg=cfg)
    status, body = curl_status(sluice.url("/api/bytes/5"))
    assert status == 200 and body == b"abcde"
    status, body = curl_status(sluice.url("/api/headers"))
    assert status == 200
    assert "host: internal.svc" in body.decode().lower()
    status, body = curl_status(sluice.url("/headers"), "-H", "Host: original.example")
    assert "host: original.example" in body.decode().lower()


def test_cluster_path_prefix(backend_factory, sluice_factory):
    a = backend_factory("alpha")

    def cfg(port):
        c = make_config(port, [])
        c["services"][0]["clusters"] = [{"cluster": LOCAL_CLUSTER, "path_prefix": "/bytes",
                                         "endpoints": [a.address]}]
        return c
    sluice = sluice_factory(make_cfg=cfg)
    status, body = curl_status(sluice.url("/4"))  # forwarded as /bytes/4
    assert status == 200 and body == b"abcd"


def test_stalled_upstream_backpressure_on_upload(sluice_factory, raw_server_factory):
    # The upstream reads nothing: sluice must stop reading the client's upload, not buffer it.
    stall = raw_server_factory("stall")
    sluice = sluice_factory([stall.address])
    baseline = sluice.rss_kib()
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", "3", "-X", "POST", "-T", "-", "-o", "/dev/null",
           sluice.url("/sink")]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env())
    block = b"u" * MIB
    sent = 0
    peak = baseline
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline and sent < 200 * MIB:
            proc.stdin.write(block)  # blocks once sluice stops reading; curl's --max-time ends it
            sent += MIB
            peak = max(peak, sluice.rss_kib())
    except (BrokenPipeError, OSError):
        pass
    finally:
        proc.kill()
        proc.wait(timeout=10)
    peak = max(peak, sluice.rss_kib())
    assert sent < 150 * MIB, f"{sent // MIB} MiB were taken although the upstream read nothing"
    assert peak - baseline < 60 * 1024, f"RSS grew by {peak - baseline} KiB"


def test_connection_close_request_closes(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        s.sendall(b"GET /bytes/3 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        reader = HttpReader(s)
        status, headers, body = reader.read_response()
        assert status == 200 and body == b"abc"
        assert headers.get("connection", "").lower() == "close"
        assert reader.at_eof(wait=3)


def test_http10_keep_alive(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address])
    with connect(sluice.port) as s:
        reader = HttpReader(s)
        for n in (3, 4):
            s.sendall(f"GET /bytes/{n} HTTP/1.0\r\nHost: app\r\nConnection: keep-alive\r\n\r\n".encode())
            status, headers, body = reader.read_response()
            assert status == 200 and len(body) == n
            assert headers.get("connection", "").lower() == "keep-alive"
