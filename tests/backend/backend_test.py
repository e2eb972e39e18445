#!/usr/bin/python3
"""Checks every behaviour of sluice-testbackend over real sockets on 127.0.0.1.

usage: backend_test.py PATH/TO/sluice-testbackend
"""
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

BACKEND = sys.argv[1]
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"), flush=True)
    if not condition:
        failures.append(name)


def start(*extra):
    """Starts a backend on two free ports; returns (process, [ports])."""
    port_file = os.path.join(tempfile.mkdtemp(prefix="backend-test-"), "ports")
    proc = subprocess.Popen([BACKEND, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
                             "--port-file", port_file, *extra],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("backend did not start")
        time.sleep(0.02)
    with open(port_file) as f:
        ports = [int(line) for line in f.read().split()]
    return proc, ports


def expected_bytes(n):
    return bytes(ord("a") + i % 26 for i in range(n))


def raw_exchange(port, data, timeout=5):
    """Sends raw bytes, returns everything received until the peer closes or timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except socket.timeout:
            pass
        return out


def main():
    proc, ports = start("--name", "b1")
    port = ports[0]
    banner = proc.stdout.readline()
    check("banner", banner.startswith("backend b1 listening on 127.0.0.1:"), banner)
    check("two ports", len(ports) == 2 and ports[0] != ports[1], ports)

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    body = r.read()
    check("GET / body", r.status == 200 and body == b"b1\n", (r.status, body))
    check("GET / headers", r.getheader("X-Backend") == "b1" and r.getheader("Content-Length") == "3")

    c.request("HEAD", "/anything?x=1")
    r = c.getresponse()
    check("HEAD", r.status == 200 and r.read() == b"" and r.getheader("Content-Length") == "3")

    c.request("GET", "/conn")
    first = c.getresponse().read()
    c.request("GET", "/conn")
    second = c.getresponse().read()
    check("keep-alive keeps the connection id", first == second, (first, second))
    c2 = http.client.HTTPConnection("127.0.0.1", ports[1], timeout=10)
    c2.request("GET", "/conn")
    third = c2.getresponse().read()
    check("a new connection gets a larger id", int(third) > int(first), (first, third))

    payload = os.urandom(3 * 1024 * 1024 + 7)
    c.request("POST", "/echo", body=payload)
    r = c.getresponse()
    echoed = r.read()
    check("echo content-length body", echoed == payload and r.getheader("Transfer-Encoding") == "chunked",
          len(echoed))
    pieces = [os.urandom(1000) for _ in range(50)]
    c.request("POST", "/echo", body=iter(pieces), encode_chunked=True)
    check("echo chunked body", c.getresponse().read() == b"".join(pieces))

    c.request("GET", "/bytes/1000000")
    r = c.getresponse()
    data = r.read()
    check("bytes/N", data == expected_bytes(1000000) and r.getheader("Content-Length") == "1000000")
    c.request("GET", "/chunked/200001")
    r = c.getresponse()
    data = r.read()
    check("chunked/N", data == expected_bytes(200001) and r.getheader("Transfer-Encoding") == "chunked")
    c.request("HEAD", "/bytes/5000")
    r = c.getresponse()
    check("HEAD bytes/N", r.read() == b"" and r.getheader("Content-Length") == "5000")

    c.request("PUT", "/sink", body=b"x" * 5000000)
    check("sink counts", c.getresponse().read() == b"5000000\n")
    c.request("PUT", "/sink", body=iter([b"y" * 70000] * 3), encode_chunked=True)
    check("sink counts chunked", c.getresponse().read() == b"210000\n")

    for code in (500, 503, 404):
        c.request("GET", f"/status/{code}")
        r = c.getresponse()
        check(f"status {code}", r.status == code and r.read() == f"status {code} from b1\n".encode())
    for code in (204, 304):
        c.request("GET", f"/status/{code}")
        r = c.getresponse()
        check(f"status {code} has no body", r.status == code and r.read() == b""
              and r.getheader("Content-Length") is None)
    c.request("GET", "/status/abc")
    r = c.getresponse()
    check("bad number -> 400", r.status == 400 and r.read() != b"")

    start_time = time.monotonic()
    c.request("GET", "/delay/200")
    body = c.getresponse().read()
    check("delay", body == b"b1\n" and time.monotonic() - start_time >= 0.19)

    c.request("GET", "/headers", headers={"X-Test": "one", "Host": "example.test"})
    text = c.getresponse().read().decode()
    check("headers", "X-Test: one\n" in text and "Host: example.test\n" in text, text)

    reply = raw_exchange(port, b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /close HTTP/1.1\r\nHost: a\r\n\r\n")
    check("pipelining, then close", reply.count(b"HTTP/1.1 200 OK") == 2
          and b"Connection: close" in reply, reply)

    reply = raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    check("HTTP/1.0 closes", reply.startswith(b"HTTP/1.0 200 OK") and reply.endswith(b"b1\n"), reply)

    reply = raw_exchange(port, b"GET /drop HTTP/1.1\r\nHost: a\r\n\r\n")
    check("drop closes without answer", reply == b"", reply)
    try:
        reply = raw_exchange(port, b"GET /reset HTTP/1.1\r\nHost: a\r\n\r\n")
        check("reset sends RST", False, reply)
    except ConnectionResetError:
        check("reset sends RST", True)

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = s.recv(4096)
        check("100 Continue before the body", interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim)
        s.sendall(b"hello")
        final = s.recv(4096)
        check("answer after 100 Continue", final.startswith(b"HTTP/1.1 200") and final.endswith(b"\r\n5\n"),
              final)

    c.request("GET", "/admin/status/503")
    check("admin status set", c.getresponse().read() == b"status override 503\n")
    c.request("GET", "/")
    r = c.getresponse()
    check("override applies", r.status == 503 and r.read() == b"status 503 from b1\n")
    c.request("GET", "/admin/status/0")
    c.getresponse().read()
    c.request("GET", "/")
    check("override cleared", c.getresponse().status == 200)
    c.close()
    c2.close()

    proc.send_signal(signal.SIGTERM)
    check("SIGTERM exits 0", proc.wait(timeout=10) == 0)

    proc, ports = start("--name", "sick", "--status-all", "500", "--threads", "2")
    c = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=10)
    c.request("GET", "/")
    check("--status-all", c.getresponse().status == 500)
    proc.send_signal(signal.SIGINT)
    check("SIGINT exits 0", proc.wait(timeout=10) == 0)

    proc, ports = start("--idle-timeout-ms", "200")
    with socket.create_connection(("127.0.0.1", ports[0]), timeout=5) as s:
        begin = time.monotonic()
        closed = s.recv(10) == b""
        check("idle timeout closes", closed and 0.15 <= time.monotonic() - begin < 3)
    proc.terminate()
    proc.wait(timeout=10)

    bad = subprocess.run([BACKEND, "--listen", "nonsense"], capture_output=True, text=True)
    check("bad flag exits 2", bad.returncode == 2 and "--listen" in bad.stderr, bad.stderr)

    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
