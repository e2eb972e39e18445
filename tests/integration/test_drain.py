"""SIGTERM/SIGINT: stop accepting, let in-flight requests finish within the drain timeout, exit 0."""
import signal
import socket
import subprocess
import time

import pytest

from integ_harness import HttpReader, clean_env, connect, wait_until


def timeouts(drain):
    return {"request_header": "5s", "idle": "60s", "connect": "1s", "response": "10s", "drain": drain}


def start_slow_request(sluice, ms):
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", "20", "-o", "-", "-w", " %{http_code}",
           sluice.url(f"/delay/{ms}")]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())


def wait_in_flight(backend):
    """Until sluice has a request in flight to `backend`: it has connected there (a request is counted in
    flight from the moment its head is read, before the upstream is chosen)."""
    wait_until(lambda: backend.connections_seen() >= 1, 10, "the request to reach the backend")


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            # Accepted by a listen queue that is being closed: it must not be served.
            s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
            s.settimeout(1)
            return s.recv(1) == b""
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except OSError:
        return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_drains_in_flight_request(backend_factory, sluice_factory, procs, workers):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=timeouts("5s"), args=("--workers", workers))
    slow = procs.add(start_slow_request(sluice, 1500))
    wait_in_flight(a)
    sent = time.monotonic()
    sluice.proc.send_signal(signal.SIGTERM)
    # New connections are refused soon after the signal, while the slow request is still running.
    wait_until(lambda: refused(sluice.port), 1.0, "new connections to be refused after SIGTERM", interval=0.05)
    # Every worker's acceptor is closed, not just one (the kernel spreads connects over them).
    for _ in range(6):
        assert refused(sluice.port), "a worker still accepts after SIGTERM"
    assert slow.poll() is None, "the in-flight request ended before its response was due"
    out, err = slow.communicate(timeout=10)
    assert slow.returncode == 0, err
    assert out == b"alpha\n 200"
    assert sluice.proc.wait(timeout=6) == 0
    assert time.monotonic() - sent < 5.0
    assert "SIGTERM" in sluice.stderr()


def test_sigint_drains_too(backend_factory, sluice_factory, procs):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=timeouts("5s"))
    slow = procs.add(start_slow_request(sluice, 1000))
    wait_in_flight(a)
    sluice.proc.send_signal(signal.SIGINT)
    out, err = slow.communicate(timeout=10)
    assert out == b"alpha\n 200", err
    assert sluice.proc.wait(timeout=6) == 0


def test_drain_timeout_cuts_long_request(backend_factory, sluice_factory, procs):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=timeouts("1s"))
    slow = procs.add(start_slow_request(sluice, 8000))
    wait_in_flight(a)
    sent = time.monotonic()
    sluice.proc.send_signal(signal.SIGTERM)
    assert sluice.proc.wait(timeout=5) == 0
    elapsed = time.monotonic() - sent
    assert 0.8 <= elapsed <= 3.0, elapsed
    out, _ = slow.communicate(timeout=10)
    assert not out.endswith(b" 200")


def test_idle_connections_do_not_hold_drain(backend_factory, sluice_factory):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=timeouts("8s"))
    with connect(sluice.port) as s:
        reader = HttpReader(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        status, _, _ = reader.read_response()
        assert status == 200
        sent = time.monotonic()
        sluice.proc.send_signal(signal.SIGTERM)
        assert reader.at_eof(wait=3), "an idle keep-alive connection was not closed on drain"
        assert sluice.proc.wait(timeout=5) == 0
        assert time.monotonic() - sent < 3.0


def test_keepalive_request_in_flight_gets_connection_close(backend_factory, sluice_factory, procs):
    a = backend_factory("alpha")
    sluice = sluice_factory([a.address], timeouts=timeouts("5s"))
    with connect(sluice.port) as s:
        reader = HttpReader(s)
        s.sendall(b"GET /delay/1000 HTTP/1.1\r\nHost: app\r\n\r\n")
        wait_in_flight(a)
        sluice.proc.send_signal(signal.SIGTERM)
        status, headers, body = reader.read_response()
        assert status == 200 and body == b"alpha\n"
        assert headers.get("connection", "").lower() == "close"
        assert reader.at_eof(wait=3)
    assert sluice.proc.wait(timeout=6) == 0
