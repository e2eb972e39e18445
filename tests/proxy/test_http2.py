"""HTTP/2 downstream (issue 15): h2c with prior knowledge and h2 over TLS by ALPN, through the real sluice
binary to the HTTP/1.1 test backend, with real clients (curl, nghttp, h2load from nghttp2-client) and raw
frames (hyperframe + hpack from python3-h2) for the conformance and flood checks."""
import json
import re
import signal
import socket
import subprocess
import threading
import time

import hpack
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from integ_harness import clean_env, curl, free_port, make_config

from test_tls_admin import make_pki
from test_websocket import stats, with_admin

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2curl(url, *args, timeout=60, tls_ca=None):
    """(status, http_version, body) of one curl request over HTTP/2 (prior knowledge, or ALPN over TLS)."""
    mode = ["--http2", "--cacert", str(tls_ca)] if tls_ca else ["--http2-prior-knowledge"]
    r = curl(*mode, "-o", "-", "-w", "\n%{http_code} %{http_version}", *args, url, timeout=timeout)
    body, _, tail = r.stdout.rpartition(b"\n")
    code, _, version = tail.decode().partition(" ")
    return int(code or 0), version, body


def h2load(url, n, c, m, timeout=120):
    r = subprocess.run(["h2load", "-n", str(n), "-c", str(c), "-m", str(m), url], capture_output=True, text=True,
                       timeout=timeout, env=clean_env())
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", r.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", r.stdout)
    assert done and codes, r.stdout + r.stderr
    return [int(x) for x in done.groups()], [int(x) for x in codes.groups()], r.stdout


# --- raw frames ------------------------------------------------------------------------------------------

class RawH2:
    def __init__(self, port, preface=PREFACE):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(preface + SettingsFrame(0).serialize())
        self.enc = hpack.Encoder()
        self.buf = b""

    def headers(self, stream_id, fields, end_stream=True):
        f = HeadersFrame(stream_id)
        f.data = self.enc.encode(fields)
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f.serialize()

    def send(self, data):
        self.sock.sendall(data)

    def frames(self, timeout=10):
        """Frames until EOF or the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                yield f
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                data = b"" if time.monotonic() >= deadline else None
                if data is None:
                    continue
            if not data:
                return
            self.buf += data


def request_fields(port, path="/", method="GET"):
    return [(":method", method), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"), (":path", path)]


# --- tests ---------------------------------------------------------------------------------------------

def test_h2c_prior_knowledge_get_post_and_large_download(backend_factory, sluice_factory):
    b = backend_factory("h2a")
    s = sluice_factory([b.address])
    status, version, body = h2curl(s.url("/"))
    assert (status, version, body) == (200, "2", b"h2a\n")
    payload = bytes(range(256)) * 4096  # 1 MiB
    r = curl("--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}", "--data-binary", "@-",
             s.url("/sink"), input_data=payload)
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"200 2", r.stderr
    assert str(len(payload)).encode() in body
    r = curl("--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}", "--data-binary", "@-",
             s.url("/echo"), input_data=payload)
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"200 2" and body == payload, (tail, len(body))
    status, version, body = h2curl(s.url(f"/bytes/{16 * 1024 * 1024}"))
    assert (status, version, len(body)) == (200, "2", 16 * 1024 * 1024)
    # HTTP/1.1 still works on the same port.
    r = curl("--http1.1", "-o", "-", "-w", "\n%{http_version}", s.url("/"))
    assert r.stdout == b"h2a\n\n1.1"


def test_h2_over_tls_by_alpn(backend_factory, sluice_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    b = backend_factory("h2tls")

    def cfg(port):
        c = make_config(port, [b.address])
        c["listeners"][0]["tls"] = {"cert_file": str(pki / "leaf.crt"), "key_file": str(pki / "leaf.key")}
        return c
    s = sluice_factory(make_cfg=cfg)
    url = f"https://127.0.0.1:{s.port}"
    assert h2curl(url + "/", tls_ca=pki / "ca.crt") == (200, "2", b"h2tls\n")
    status, version, body = h2curl(url + f"/bytes/{4 * 1024 * 1024}", tls_ca=pki / "ca.crt")
    assert (status, version, len(body)) == (200, "2", 4 * 1024 * 1024)
    r = curl("--http2", "--cacert", str(pki / "ca.crt"), "-o", "-", "-w", "\n%{http_code} %{http_version}",
             "--data-binary", "@-", url + "/echo", input_data=b"x" * 300000)
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"200 2" and body == b"x" * 300000
    r = curl("--http1.1", "--cacert", str(pki / "ca.crt"), "-o", "-", "-w", "\n%{http_version}", url + "/")
    assert r.stdout == b"h2tls\n\n1.1"
    done, codes, out = h2load(url + "/", 200, 2, 20)
    assert done[3] == 200 and codes[0] == 200, out


def test_many_concurrent_streams_on_few_connections(backend_factory, sluice_factory):
    b = backend_factory("h2m")
    admin_port = free_port()
    s = sluice_factory(make_cfg=lambda port: with_admin(make_config(port, [b.address]), admin_port))
    done, codes, out = h2load(s.url("/"), 1000, 2, 50)
    assert done == [1000, 1000, 1000, 1000, 0] and codes[0] == 1000, out
    r = subprocess.run(["nghttp", "-n", "-m", "100", s.url("/bytes/100000")], capture_output=True, timeout=60,
                       env=clean_env())
    assert r.returncode == 0, r.stderr
    values = stats(admin_port)
    assert values["sluice_http2_streams_total"] >= 1100
    assert values["sluice_http2_connections_total"] >= 3


def test_errors_no_route_and_dead_endpoint(backend_factory, sluice_factory):
    b = backend_factory("h2e")
    dead = f"127.0.0.1:{free_port()}"

    def cfg(port):
        c = make_config(port, [dead])
        c["services"].append({"name": "live", "namespace": "default", "ports": [80],
                              "clusters": [{"cluster": c["cluster"], "endpoints": [b.address]}],
                              "outlier_detection": {"enabled": False}, "slow_start_window": "0"})
        c["routes"] = [{"hosts": ["dead.example"], "path": "/", "service": "app.default"},
                       {"hosts": ["live.example"], "path": "/", "service": "live.default"}]
        return c
    s = sluice_factory(make_cfg=cfg)
    status, version, body = h2curl(s.url("/"), "-H", "Host: nowhere.example")
    assert (status, version) == (404, "2") and b"no route" in body
    status, version, body = h2curl(s.url("/"), "-H", "Host: dead.example")
    assert (status, version) == (502, "2") and b"connect" in body
    status, version, body = h2curl(s.url("/"), "-H", "Host: live.example")
    assert (status, version, body) == (200, "2", b"h2e\n")


def test_failover_of_streams_from_a_refusing_endpoint(backend_factory, sluice_factory):
    b = backend_factory("h2f")
    dead = f"127.0.0.1:{free_port()}"
    s = sluice_factory([dead, b.address])
    done, codes, out = h2load(s.url("/"), 300, 1, 30)
    assert done[3] == 300 and codes[0] == 300, out
    r = curl("--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code}", "--data-binary", "@-",
             s.url("/echo"), input_data=b"y" * 1000)
    assert r.stdout == b"y" * 1000 + b"\n200"


def test_headers_translated_both_ways(backend_factory, sluice_factory):
    b = backend_factory("h2h")
    s = sluice_factory([b.address])
    r = curl("--http2-prior-knowledge", "-D", "-", "-H", "X-Test: one", "-H", "Cookie: a=1", "-H", "Cookie: b=2",
             s.url("/headers"))
    out = r.stdout.decode(errors="replace").lower()
    assert out.startswith("http/2 200")
    assert "host: 127.0.0.1:" in out and "x-test: one" in out and "via: 1.1 sluice" in out
    assert "cookie: a=1; b=2" in out
    assert "connection:" not in out.split("\r\n\r\n")[0]


def test_header_limits_and_access_log_per_stream(backend_factory, sluice_factory):
    b = backend_factory("h2l")
    s = sluice_factory(make_cfg=lambda port: make_config(port, [b.address],
                                                         access_log={"enabled": True, "path": "-"}))
    c = RawH2(s.port)
    c.send(c.headers(1, request_fields(s.port) + [(f"x-h{i}", "v") for i in range(150)]))
    c.send(c.headers(3, request_fields(s.port, "/status/204")))
    c.send(c.headers(5, request_fields(s.port, "/", "HEAD")))
    statuses = {}
    ended = set()
    dec = hpack.Decoder()
    for f in c.frames(timeout=10):
        if isinstance(f, HeadersFrame):
            statuses[f.stream_id] = dict(dec.decode(f.data))[":status"]
        if "END_STREAM" in f.flags:
            ended.add(f.stream_id)
        if ended >= {1, 3, 5}:
            break
    assert statuses == {1: "431", 3: "204", 5: "200"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and s.stdout().count("\n") < 3:
        time.sleep(0.05)
    lines = [json.loads(line) for line in s.stdout().splitlines() if line.startswith("{")]
    assert sorted(line["status"] for line in lines) == [200, 204, 431]
    assert all(line["method"] in ("GET", "HEAD") for line in lines)


def test_bad_preface_closes_the_connection(sluice_factory, backend_factory):
    b = backend_factory("h2p")
    s = sluice_factory([b.address])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    assert not data.startswith(b"HTTP/1.1 200")  # refused (400) and closed


def test_uppercase_header_name_is_refused(sluice_factory, backend_factory):
    b = backend_factory("h2u")
    s = sluice_factory([b.address])
    c = RawH2(s.port)
    c.send(c.headers(1, request_fields(s.port) + [("X-Upper", "1")]))
    refused = False
    for f in c.frames(timeout=5):
        if isinstance(f, RstStreamFrame) and f.stream_id == 1:
            assert f.error_code == 1  # PROTOCOL_ERROR
            refused = True
            break
        if isinstance(f, GoAwayFrame):
            refused = True
            break
        assert not (isinstance(f, HeadersFrame) and f.stream_id == 1), "a request with an uppercase name was served"
    assert refused


def test_rapid_reset_flood_gets_goaway(sluice_factory, backend_factory):
    b = backend_factory("h2r")
    s = sluice_factory([b.address])
    c = RawH2(s.port)
    burst = b""
    for i in range(1500):
        sid = 2 * i + 1
        burst += c.headers(sid, request_fields(s.port)) + RstStreamFrame(sid, error_code=8).serialize()
    try:
        c.send(burst)
    except (BrokenPipeError, ConnectionResetError):
        pass
    start = time.monotonic()
    goaway = [f for f in c.frames(timeout=10) if isinstance(f, GoAwayFrame)]
    assert goaway, "a rapid-reset flood must end with GOAWAY"
    assert time.monotonic() - start < 5, "and the connection closed"
    # Other connections are unaffected.
    assert h2curl(s.url("/"))[:2] == (200, "2")


def test_continuation_flood_gets_goaway(sluice_factory, backend_factory):
    b = backend_factory("h2c")
    s = sluice_factory([b.address])
    c = RawH2(s.port)
    first = HeadersFrame(1)
    first.data = c.enc.encode(request_fields(s.port))
    flood = first.serialize()
    for i in range(20):
        more = ContinuationFrame(1)
        more.data = c.enc.encode([(f"x-a{i}", "b")])
        flood += more.serialize()
    c.send(flood)
    frames = list(c.frames(timeout=10))
    assert any(isinstance(f, GoAwayFrame) for f in frames)
    assert not any(isinstance(f, HeadersFrame) for f in frames)


def test_drain_sends_goaway_and_lets_streams_finish(backend_factory, sluice_factory):
    b = backend_factory("h2d")
    admin_port = free_port()
    s = sluice_factory(make_cfg=lambda port: with_admin(make_config(port, [b.address]), admin_port))
    result = {}

    def slow():
        result["r"] = h2curl(s.url("/delay/1500"))
    t = threading.Thread(target=slow)
    t.start()
    # The drain must find the stream open: wait until sluice has it in flight (curl's start-up alone can
    # take longer than a fixed sleep on a loaded machine).
    deadline = time.monotonic() + 10
    while stats(admin_port).get("sluice_requests_active", 0) < 1:
        assert time.monotonic() < deadline, "the request never reached sluice"
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert result["r"][:2] == (200, "2")
    assert s.proc.wait(timeout=15) == 0
