"""HTTP/2 conformance of sluice's downstream side (issue 15), our own h2spec-like suite: deliberate frames
written on a raw socket (hyperframe / hpack from python3-h2), each case on its own connection, asserting the
GOAWAY / RST_STREAM error code or the close that RFC 9113 (and RFC 7541 for HPACK) requires.
Prints `h2 conformance: N/M passed`."""
import socket
import struct
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from test_http2 import PREFACE, RawH2, request_fields

NO_ERROR, PROTOCOL, INTERNAL, FLOW, STREAM_CLOSED, FRAME_SIZE, COMPRESSION, CALM = 0, 1, 2, 3, 5, 6, 9, 11


def raw(frame_type, flags, stream_id, payload):
    """A frame by hand (for the ones hyperframe refuses to build)."""
    return struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags]) + struct.pack(">I", stream_id) + payload


def headers(c, sid, fields, end_stream=True, end_headers=True):
    f = HeadersFrame(sid)
    f.data = c.enc.encode(fields)
    if end_headers:
        f.flags.add("END_HEADERS")
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


def get(port, path="/"):
    return request_fields(port, path)


def post(port, path="/sink"):
    return request_fields(port, path, "POST")


# Each case: (name, what it sends given (conn, port), expected): expected is ("goaway", {codes}),
# ("rst", {codes}) (a GOAWAY with one of the codes also passes where RFC 9113 lets a stream error be treated
# as a connection error) or ("close", None) (the connection ends, with or without GOAWAY).
CASES = [
    # 3.4 connection preface
    ("preface: first frame not SETTINGS", lambda c, p: PingFrame(0, opaque_data=b"12345678").serialize(),
     ("goaway", {PROTOCOL}), "no-settings"),
    # 4.2 frame size
    ("frame size: DATA over SETTINGS_MAX_FRAME_SIZE",
     lambda c, p: headers(c, 1, post(p), end_stream=False) + raw(0, 0, 1, b"x" * 16385), ("goaway", {FRAME_SIZE})),
    ("frame size: PING of 7 octets", lambda c, p: raw(6, 0, 0, b"1234567"), ("goaway", {FRAME_SIZE})),
    ("frame size: SETTINGS of 5 octets", lambda c, p: raw(4, 0, 0, b"\0\0\0\0\0"), ("goaway", {FRAME_SIZE})),
    ("frame size: SETTINGS ACK with a payload", lambda c, p: raw(4, 1, 0, b"\0\x03\0\0\0\x01"),
     ("goaway", {FRAME_SIZE})),
    ("frame size: WINDOW_UPDATE of 3 octets", lambda c, p: raw(8, 0, 0, b"\0\0\1"), ("goaway", {FRAME_SIZE})),
    ("frame size: RST_STREAM of 3 octets",
     lambda c, p: headers(c, 1, post(p), end_stream=False) + raw(3, 0, 1, b"\0\0\1"), ("goaway", {FRAME_SIZE})),
    # 5.1 stream states and identifiers
    ("streams: HEADERS on an even stream id", lambda c, p: headers(c, 2, get(p)), ("goaway", {PROTOCOL})),
    ("streams: stream ids must increase",
     lambda c, p: headers(c, 5, get(p)) + headers(c, 3, get(p)), ("goaway", {PROTOCOL})),
    ("streams: DATA on an idle stream", lambda c, p: raw(0, 1, 1, b"x"), ("goaway", {PROTOCOL})),
    ("streams: RST_STREAM on an idle stream", lambda c, p: RstStreamFrame(1, error_code=8).serialize(),
     ("goaway", {PROTOCOL})),
    ("streams: WINDOW_UPDATE on an idle stream", lambda c, p: WindowUpdateFrame(1, window_increment=1).serialize(),
     ("goaway", {PROTOCOL})),
    ("streams: DATA after END_STREAM",
     lambda c, p: headers(c, 1, post(p, "/delay/500"), end_stream=True) + raw(0, 1, 1, b"x"),
     ("rst", {STREAM_CLOSED})),
    # 8.1: a complete response sent before the request ended (here sluice's own 431) is followed by
    # RST_STREAM(NO_ERROR), so the client stops uploading (curl otherwise waits on an early trailers-only one).
    ("streams: early complete answer ends the upload with RST_STREAM(NO_ERROR)",
     lambda c, p: headers(c, 1, post(p) + [(f"x-h{i}", "v") for i in range(150)], end_stream=False),
     ("rst", {NO_ERROR})),
    ("streams: DATA on stream 0", lambda c, p: raw(0, 0, 0, b"x"), ("goaway", {PROTOCOL})),
    ("streams: HEADERS on stream 0", lambda c, p: raw(1, 5, 0, c.enc.encode(get(p))), ("goaway", {PROTOCOL})),
    ("streams: PING on stream 1", lambda c, p: raw(6, 0, 1, b"12345678"), ("goaway", {PROTOCOL})),
    ("streams: SETTINGS on stream 1", lambda c, p: raw(4, 0, 1, b""), ("goaway", {PROTOCOL})),
    ("streams: GOAWAY on stream 1", lambda c, p: raw(7, 0, 1, b"\0\0\0\0\0\0\0\0"), ("goaway", {PROTOCOL})),
    ("streams: CONTINUATION without HEADERS", lambda c, p: raw(9, 4, 1, c.enc.encode(get(p))),
     ("goaway", {PROTOCOL})),
    ("streams: a frame between HEADERS and CONTINUATION",
     lambda c, p: headers(c, 1, get(p), end_headers=False) + PingFrame(0, opaque_data=b"12345678").serialize(),
     ("goaway", {PROTOCOL})),
    ("streams: PRIORITY depending on itself",
     lambda c, p: PriorityFrame(1, depends_on=1, stream_weight=16).serialize(), ("rst", {PROTOCOL})),
    # 6.5 SETTINGS rules
    ("settings: ENABLE_PUSH 2", lambda c, p: raw(4, 0, 0, struct.pack(">HI", 2, 2)), ("goaway", {PROTOCOL})),
    ("settings: INITIAL_WINDOW_SIZE over 2^31-1", lambda c, p: raw(4, 0, 0, struct.pack(">HI", 4, 1 << 31)),
     ("goaway", {FLOW})),
    ("settings: MAX_FRAME_SIZE below 16384", lambda c, p: raw(4, 0, 0, struct.pack(">HI", 5, 16383)),
     ("goaway", {PROTOCOL})),
    ("settings: MAX_FRAME_SIZE over 2^24-1", lambda c, p: raw(4, 0, 0, struct.pack(">HI", 5, 1 << 24)),
     ("goaway", {PROTOCOL})),
    # 6.9 flow control
    ("flow: WINDOW_UPDATE of 0 on the connection", lambda c, p: raw(8, 0, 0, b"\0\0\0\0"), ("goaway", {PROTOCOL})),
    ("flow: WINDOW_UPDATE of 0 on a stream",
     lambda c, p: headers(c, 1, post(p), end_stream=False) + raw(8, 0, 1, b"\0\0\0\0"), ("rst", {PROTOCOL})),
    ("flow: connection window over 2^31-1",
     lambda c, p: WindowUpdateFrame(0, window_increment=(1 << 31) - 1).serialize(), ("goaway", {FLOW})),
    ("flow: stream window over 2^31-1",
     lambda c, p: headers(c, 1, post(p), end_stream=False) +
     WindowUpdateFrame(1, window_increment=(1 << 31) - 1).serialize(), ("rst", {FLOW})),
    # 8.2 header rules
    ("headers: uppercase name", lambda c, p: headers(c, 1, get(p) + [("X-Upper", "1")]), ("rst", {PROTOCOL})),
    ("headers: connection-specific field", lambda c, p: headers(c, 1, get(p) + [("connection", "keep-alive")]),
     ("rst", {PROTOCOL})),
    ("headers: te other than trailers", lambda c, p: headers(c, 1, get(p) + [("te", "gzip")]), ("rst", {PROTOCOL})),
    ("headers: pseudo-header after a regular one",
     lambda c, p: headers(c, 1, [("x-a", "1")] + get(p)), ("rst", {PROTOCOL})),
    ("headers: duplicate :path", lambda c, p: headers(c, 1, get(p) + [(":path", "/again")]), ("rst", {PROTOCOL})),
    ("headers: missing :method", lambda c, p: headers(c, 1, get(p)[1:]), ("rst", {PROTOCOL})),
    ("headers: unknown pseudo-header", lambda c, p: headers(c, 1, get(p) + [(":foo", "1")]), ("rst", {PROTOCOL})),
    ("headers: response pseudo-header in a request", lambda c, p: headers(c, 1, get(p) + [(":status", "200")]),
     ("rst", {PROTOCOL})),
    ("headers: empty :path", lambda c, p: headers(c, 1, get(p)[:3] + [(":path", "")]), ("rst", {PROTOCOL})),
    ("headers: content-length larger than the DATA",
     lambda c, p: headers(c, 1, post(p) + [("content-length", "10")], end_stream=False) + raw(0, 1, 1, b"12345"),
     ("rst", {PROTOCOL})),
    ("headers: content-length smaller than the DATA",
     lambda c, p: headers(c, 1, post(p) + [("content-length", "2")], end_stream=False) + raw(0, 1, 1, b"12345"),
     ("rst", {PROTOCOL})),
    # RFC 7541: HPACK
    ("hpack: index beyond the tables", lambda c, p: raw(1, 5, 1, b"\xff\xff\xff\x7f"), ("goaway", {COMPRESSION})),
    ("hpack: table size update above SETTINGS_HEADER_TABLE_SIZE",
     lambda c, p: raw(1, 5, 1, b"\x3f\xe1\xff\x03" + c.enc.encode(get(p))), ("goaway", {COMPRESSION})),
    ("hpack: truncated literal", lambda c, p: raw(1, 5, 1, b"\x40\x0a\x61"), ("goaway", {COMPRESSION})),
    # floods
    ("flood: rapid reset (CVE-2023-44487)",
     lambda c, p: b"".join(headers(c, 2 * i + 1, get(p)) + RstStreamFrame(2 * i + 1, error_code=8).serialize()
                           for i in range(1500)), ("goaway", {INTERNAL, CALM})),
    ("flood: CONTINUATION (CVE-2024-27316 class)",
     lambda c, p: headers(c, 1, get(p), end_headers=False) +
     b"".join(raw(9, 0, 1, c.enc.encode([(f"x-c{i}", "v")])) for i in range(50)), ("goaway", {PROTOCOL, CALM})),
    ("flood: PING without reading", lambda c, p: PingFrame(0, opaque_data=b"12345678").serialize() * 500000,
     ("close", None), "no-read"),
    ("flood: SETTINGS without reading", lambda c, p: SettingsFrame(0).serialize() * 400000, ("close", None),
     "no-read"),
    ("flood: SETTINGS with too many entries",
     lambda c, p: raw(4, 0, 0, struct.pack(">HI", 3, 100) * 40), ("goaway", {CALM, PROTOCOL})),
]


def run_case(port, build, expected, mode=""):
    sock = socket.socket()
    if mode == "no-read":
        # A peer that never reads, with a small window: sluice's queue of acks grows until its limit ends the
        # connection (set before connecting, so the window is small from the start).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    c = RawH2.__new__(RawH2)
    c.sock, c.enc, c.buf = sock, hpack.Encoder(), b""
    try:
        start = PREFACE if mode == "no-settings" else PREFACE + SettingsFrame(0).serialize()
        data = start + build(c, port)
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if mode == "no-read":
            # Still without reading: once sluice gives up on the connection, a write here fails.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.2)
                try:
                    sock.settimeout(1)
                    sock.send(PingFrame(0, opaque_data=b"87654321").serialize())
                except (BrokenPipeError, ConnectionResetError):
                    return True, "closed"
                except socket.timeout:
                    continue
            return False, "still open"
        kind, codes = expected
        seen = []
        for f in c.frames(timeout=5):
            if isinstance(f, GoAwayFrame):
                seen.append(f"GOAWAY {f.error_code}")
                return kind in ("goaway", "rst", "close") and (codes is None or f.error_code in codes), seen
            if isinstance(f, RstStreamFrame):
                seen.append(f"RST_STREAM {f.stream_id} {f.error_code}")
                if kind == "rst":
                    return f.error_code in codes, seen
            if isinstance(f, HeadersFrame) and f.stream_id:
                seen.append(f"HEADERS {f.stream_id}")
        if kind == "close":
            return True, seen + ["closed"]
        return False, seen + ["no error frame"]
    finally:
        sock.close()


# Where sluice (nghttp2 1.52) is more lenient than RFC 9113 says: printed, not required.
# (nghttp2 ignores a HEADERS block on a stream id below the last one it saw; sluice itself answers one on an
# id the client skipped with GOAWAY(PROTOCOL_ERROR), as 5.1.1 asks: proxy/http2_session.cpp on_begin_frame.)
KNOWN_DEVIATIONS = set()


def test_h2_conformance(backend_factory, sluice_factory):
    b = backend_factory("conf")
    s = sluice_factory([b.address])
    results = []
    for case in CASES:
        name, build, expected = case[:3]
        mode = case[3] if len(case) > 3 else ""
        ok, seen = run_case(s.port, build, expected, mode)
        results.append((name, ok, seen))
    passed = sum(1 for _, ok, _ in results if ok)
    for name, ok, seen in results:
        if not ok:
            print(f"FAILED {name}: expected {dict((c[0], c[2]) for c in CASES)[name]}, saw {seen}")
    print(f"h2 conformance: {passed}/{len(results)} passed")
    # The proxy serves on after all of it.
    c = RawH2(s.port)
    c.send(headers(c, 1, get(s.port)))
    assert any(isinstance(f, HeadersFrame) for f in c.frames(timeout=10))
    assert [name for name, ok, _ in results if not ok and name not in KNOWN_DEVIATIONS] == []
