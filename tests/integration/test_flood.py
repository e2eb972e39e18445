"""Connection floods, in CI's small numbers (tests/bench/run.sh flood has the large ones): while 300 idle and
100 slowloris connections (a partial head, then a byte every 500 ms) are open, a normal client's requests are
all answered, each well before the head deadline that a stalled worker would make it wait for; then the head
deadline (timeouts.request_header, 3 s here) closes every flood connection, trickling or not."""
import resource
import socket
import threading
import time

import pytest

from integ_harness import HttpReader, admin_metric, connect, free_port, make_config, wait_until

IDLE = 300
SLOW = 100
HEAD_DEADLINE_S = 3


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))


class Trickle:
    """One header byte on every slowloris socket each 500 ms: keeps a per-read timer happy."""

    def __init__(self, socks):
        self.socks = socks
        self.closed = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.5):
            for i, s in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    s.send(b"X")
                except OSError:
                    self.closed.add(i)

    def close(self):
        self.stop.set()
        self.thread.join()


def closed_by_peer(sock):
    """True when the server has closed `sock` (EOF or reset; a 408 before the EOF counts too)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_flood_does_not_delay_a_normal_client_and_is_closed_by_the_head_deadline(backend_factory, sluice_factory):
    raise_nofile()
    a = backend_factory("alpha")
    admin_port = free_port()

    def cfg(port):
        c = make_config(port, [a.address], timeouts={"request_header": f"{HEAD_DEADLINE_S}s", "idle": "60s",
                                                     "connect": "2s", "response": "15s", "drain": "5s"})
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
        return c

    sluice = sluice_factory(make_cfg=cfg, preexec_fn=raise_nofile)
    opened_at = time.monotonic()
    idle = [connect(sluice.port) for _ in range(IDLE)]
    slow = [connect(sluice.port) for _ in range(SLOW)]
    for s in slow:
        s.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n")
    trickle = Trickle(slow)
    try:
        # A normal client, on fresh connections and on one kept alive, while the flood is open.
        latencies = []
        with connect(sluice.port) as kept:
            reader = HttpReader(kept)
            for i in range(40):
                start = time.monotonic()
                if i % 2:
                    kept.sendall(b"GET /bytes/5 HTTP/1.1\r\nHost: app\r\n\r\n")
                    status, _, body = reader.read_response()
                else:
                    with connect(sluice.port) as fresh:
                        fresh.sendall(b"GET /bytes/5 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
                        status, _, body = HttpReader(fresh).read_response()
                latencies.append(time.monotonic() - start)
                assert (status, body) == (200, b"abcde")
        # Served while the whole flood was open: none of it has been closed yet ...
        still_open = sum(not closed_by_peer(s) for s in idle + slow)
        assert still_open == IDLE + SLOW, f"{still_open} open after {time.monotonic() - opened_at:.1f} s"
        # ... and none waited anywhere near the head deadline, which is what a worker stuck on the flood would
        # cost (a bound with a wide margin under load, not a benchmark: tests/bench/run.sh flood measures).
        assert max(latencies) < HEAD_DEADLINE_S / 2, latencies

        # The head deadline closes every flood connection, the trickling ones included.
        wait_until(lambda: all(closed_by_peer(s) for s in slow), 3 * HEAD_DEADLINE_S + 5, "slowloris closed")
        wait_until(lambda: all(closed_by_peer(s) for s in idle), 3 * HEAD_DEADLINE_S + 5, "idle closed")
        wait_until(lambda: admin_metric(admin_port, "sluice_downstream_connections_active") == 0, 10,
                   "sluice to have no connection left")
    finally:
        trickle.close()
        for s in idle + slow:
            s.close()


@pytest.mark.slow
def test_flood_beyond_the_connection_limit_waits_in_the_backlog(backend_factory, sluice_factory):
    # At limits.max_connections_per_worker the flood waits in the kernel's backlog; the head deadline frees
    # the slots and the waiting ones are served in turn: nothing is refused.
    raise_nofile()
    a = backend_factory("alpha")

    def cfg(port):
        c = make_config(port, [a.address], timeouts={"request_header": "1s", "idle": "60s", "connect": "2s",
                                                     "response": "15s", "drain": "5s"})
        c["limits"] = {"max_connections_per_worker": 50}
        return c

    sluice = sluice_factory(make_cfg=cfg, preexec_fn=raise_nofile)
    idle = [connect(sluice.port) for _ in range(100)]  # twice the limit, silent
    try:
        with connect(sluice.port, timeout=30) as s:
            s.sendall(b"GET /bytes/2 HTTP/1.1\r\nHost: app\r\n\r\n")
            status, _, body = HttpReader(s).read_response()
            assert (status, body) == (200, b"ab")
        wait_until(lambda: all(closed_by_peer(s) for s in idle), 20, "every idle connection closed")
    finally:
        for s in idle:
            s.close()
