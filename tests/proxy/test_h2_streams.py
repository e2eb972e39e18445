"""HTTP/2 streams (issue 15): request trailers passed on each way (h2 -> HTTP/1.1 chunked, h2 -> h2, HTTP/1.1
chunked -> h2), grpc-timeout toward an HTTP/1.1 endpoint, and the per-stream idle timeout
(timeouts.stream_idle); raw frames (hyperframe + hpack) and raw sockets through the real binary."""
import socket
import threading
import time

import hpack
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame

from integ_harness import make_config

from test_h2_upstream import h2_backend, h2c_cfg  # noqa: F401 (fixture)
from test_http2 import RawH2, request_fields

GRPC_FRAME = b"\0\0\0\0\x05hello"  # one uncompressed gRPC message of 5 bytes


def data(sid, payload, end_stream=False):
    f = DataFrame(sid, data=payload)
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


def exchange(c, sid, timeout=10):
    """What came back on stream `sid`: {"headers": dict, "body": bytes, "trailers": dict, "rst": code or None,
    "ended": bool, "seconds": time to the end}."""
    if not hasattr(c, "dec"):
        c.dec = hpack.Decoder()  # one per connection: the dynamic table lives as long as it
    dec = c.dec
    out = {"headers": None, "body": b"", "trailers": {}, "rst": None, "ended": False}
    start = time.monotonic()
    for f in c.frames(timeout=timeout):
        if isinstance(f, HeadersFrame):
            fields = dict(dec.decode(f.data))
            if f.stream_id == sid:
                if out["headers"] is None:
                    out["headers"] = fields
                else:
                    out["trailers"] = fields
        elif isinstance(f, DataFrame) and f.stream_id == sid:
            out["body"] += f.data
        elif isinstance(f, RstStreamFrame) and f.stream_id == sid:
            out["rst"] = f.error_code
            break
        if f.stream_id == sid and "END_STREAM" in f.flags:
            out["ended"] = True
            break
    out["seconds"] = time.monotonic() - start
    return out


class Http1Recorder:
    """An HTTP/1.1 endpoint that keeps each request's raw bytes (head and chunked body with its trailers)
    and answers 200 "ok"."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.requests = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.connection, args=(sock,), daemon=True).start()

    def connection(self, sock):
        buf = b""
        with sock:
            while True:
                end = self.request_end(buf)
                while end is None:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    end = self.request_end(buf)
                self.requests.append(buf[:end])
                buf = buf[end:]
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    @staticmethod
    def request_end(buf):
        """Where the request at the start of buf ends, or None while incomplete."""
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = buf[:head_end].decode().lower()
        pos = head_end + 4
        if "transfer-encoding: chunked" not in head:
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    pos += int(line.split(":")[1])
            return pos if len(buf) >= pos else None
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # trailers (if any) end with the blank line
                if buf[eol:eol + 4] == b"\r\n\r\n":
                    return eol + 4
                return None if end < 0 else end + 4
            pos = eol + 2 + size + 2
            if len(buf) < pos:
                return None


def send_in_parts(port, parts, until):
    """Sends `parts` on one connection 0.3 s apart; what came back once it holds `until` (case-insensitive)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.3)
            sock.sendall(part)
        got = b""
        while until.lower() not in got.lower():
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
    return got


def post_with_trailers(c, sid, port, path, pause=0.0, extra=()):
    """A POST on stream sid: HEADERS, DATA "hello", then trailers (after `pause` seconds)."""
    c.send(c.headers(sid, request_fields(port, path, "POST") + list(extra), end_stream=False) + data(sid, b"hello"))
    if pause:
        time.sleep(pause)
    c.send(c.headers(sid, [("x-checksum", "abc"), ("x-count", "1")], end_stream=True))


def test_h2_request_trailers_to_http1_endpoint_as_chunked_trailers(sluice_factory):
    rec = Http1Recorder()
    s = sluice_factory([rec.address])
    # Whole in hand (trailers with the body) and streamed (trailers later): both go chunked with the trailers
    # in the last chunk, never as head fields.
    for pause in (0.0, 0.3):
        c = RawH2(s.port)
        post_with_trailers(c, 1, s.port, "/up", pause)
        r = exchange(c, 1)
        assert r["headers"] and r["headers"][":status"] == "200" and r["body"] == b"ok", r
        raw = rec.requests[-1].decode().lower()
        head, _, body = raw.partition("\r\n\r\n")
        assert "transfer-encoding: chunked" in head and "x-checksum" not in head, raw
        assert body == "5\r\nhello\r\n0\r\nx-checksum: abc\r\nx-count: 1\r\n\r\n", raw


def test_h2_request_trailers_to_h2_endpoint(h2_backend, sluice_factory):
    b = h2_backend("rt")
    s = sluice_factory(make_cfg=h2c_cfg([b]))
    for pause in (0.0, 0.3):
        c = RawH2(s.port)
        post_with_trailers(c, 1, s.port, "/request-trailers", pause)
        r = exchange(c, 1)
        assert r["headers"][":status"] == "200", r
        text = r["body"].decode()
        assert "body=5\n" in text and "x-checksum: abc\n" in text and "x-count: 1\n" in text, text
        assert "x-checksum" not in text.split("head=")[1].split("\n")[0], text


def test_http1_chunked_request_trailers_to_h2_endpoint(h2_backend, sluice_factory):
    b = h2_backend("rt1")
    s = sluice_factory(make_cfg=h2c_cfg([b]))
    head = b"POST /request-trailers HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"
    last = b"0\r\nX-Checksum: abc\r\nX-Count: 1\r\n\r\n"
    # Whole (the trailers parsed with the first piece of the body) and in two writes.
    for parts in ([head + b"5\r\nhello\r\n" + last], [head + b"5\r\nhello\r\n", last]):
        got = send_in_parts(s.port, parts, until=b"x-count: 1")
        text = got.decode().lower()
        assert text.startswith("http/1.1 200"), text
        assert "body=5\n" in text and "x-checksum: abc\n" in text, text
        assert "x-checksum" not in text.split("head=")[1].split("\n")[0], text


def grpc_request(port, path, timeout=None):
    fields = request_fields(port, path, "POST") + [("content-type", "application/grpc"), ("te", "trailers")]
    if timeout:
        fields.append(("grpc-timeout", timeout))
    return fields


def test_grpc_timeout_toward_http1_endpoint(backend_factory, sluice_factory):
    b = backend_factory("slow1")
    s = sluice_factory([b.address])
    c = RawH2(s.port)
    # The endpoint would answer after 3 s; the call's deadline is 300 ms: DEADLINE_EXCEEDED, trailers-only,
    # well before the endpoint's answer and the 15 s response timeout.
    c.send(c.headers(1, grpc_request(s.port, "/delay/3000", "300m"), end_stream=False) + data(1, GRPC_FRAME, True))
    r = exchange(c, 1)
    assert r["ended"] and r["headers"][":status"] == "200", r
    assert r["headers"]["grpc-status"] == "4" and r["seconds"] < 2.5, r
    # Within its deadline the endpoint's answer passes (the same connection serves on).
    c.send(c.headers(3, grpc_request(s.port, "/delay/100", "10S"), end_stream=False) + data(3, GRPC_FRAME, True))
    r = exchange(c, 3)
    assert r["ended"] and r["headers"][":status"] == "200" and "grpc-status" not in r["headers"], r


def test_stream_idle_timeout(backend_factory, sluice_factory):
    b = backend_factory("idle")
    timeouts = {"request_header": "10s", "idle": "60s", "connect": "2s", "response": "15s", "drain": "5s",
                "stream_idle": "1s"}
    s = sluice_factory(make_cfg=lambda port: make_config(port, [b.address], timeouts=timeouts))
    c = RawH2(s.port)
    # A head and then nothing: 408 once the stream was idle for stream_idle.
    c.send(c.headers(1, request_fields(s.port, "/sink", "POST"), end_stream=False))
    r = exchange(c, 1)
    assert r["headers"][":status"] == "408" and 0.8 < r["seconds"] < 5, r
    # A gRPC call that goes quiet: DEADLINE_EXCEEDED.
    c.send(c.headers(3, grpc_request(s.port, "/sink"), end_stream=False))
    r = exchange(c, 3)
    assert r["headers"][":status"] == "200" and r["headers"]["grpc-status"] == "4", r
    # Part of a body, then nothing (the request already went upstream): RST_STREAM(CANCEL).
    c.send(c.headers(5, request_fields(s.port, "/sink", "POST"), end_stream=False) + data(5, b"part"))
    r = exchange(c, 5)
    assert r["rst"] == 8 and r["seconds"] < 5, r
    # The connection and the proxy serve on.
    c.send(c.headers(7, request_fields(s.port, "/")))
    r = exchange(c, 7)
    assert r["headers"][":status"] == "200" and r["body"] == b"idle\n", r


def test_http1_chunked_request_trailers_to_http1_endpoint(sluice_factory):
    rec = Http1Recorder()
    s = sluice_factory([rec.address])
    head = b"POST /up HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"
    # Fields that describe the content or the connection are not passed on as trailers (RFC 9110 6.5.1).
    last = b"0\r\nX-Checksum: abc\r\nX-Count: 1\r\nContent-Type: text/plain\r\n\r\n"
    # Whole (the trailers parsed with the first piece of the body) and in two writes (streamed).
    for parts in ([head + b"5\r\nhello\r\n" + last], [head + b"5\r\nhello\r\n", last]):
        got = send_in_parts(s.port, parts, until=b"\r\n\r\nok")
        assert got.startswith(b"HTTP/1.1 200"), got
        raw = rec.requests[-1].decode().lower()
        head_out, _, body = raw.partition("\r\n\r\n")
        assert "transfer-encoding: chunked" in head_out and "x-checksum" not in head_out, raw
        assert body.endswith("0\r\nx-checksum: abc\r\nx-count: 1\r\n\r\n"), raw
        assert "hello" in body and "content-type" not in body, raw
