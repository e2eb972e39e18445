"""WebSocket and HTTP Upgrade through the real sluice binary: a real client and server (python3-websockets)
on either side, a plain-bytes protocol behind another Upgrade token, failover of the upgrade request,
reloads and drain with tunnels open, and what /stats and the access log say about tunnels."""
import asyncio
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
import websockets

from integ_harness import clean_env, free_port, make_config

HERE = pathlib.Path(__file__).resolve().parent


class EchoServer:
    def __init__(self, procs, name="ws-a", port=0):
        self.proc = procs.add(subprocess.Popen([sys.executable, str(HERE / "ws_echo_server.py"), name, str(port)],
                                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env()))
        self.port = int(self.proc.stdout.readline())
        self.address = f"127.0.0.1:{self.port}"


@pytest.fixture
def echo_factory(procs):
    return lambda *args: EchoServer(procs, *args)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def stats(admin_port):
    with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    values = {}
    for line in data.decode().split("\r\n\r\n", 1)[1].splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def with_admin(cfg, admin_port):
    cfg["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
    return cfg


def test_websocket_echo_text_binary_large_ping_and_close_codes(echo_factory, sluice_factory):
    echo = echo_factory()
    admin_port = free_port()
    s = sluice_factory(make_cfg=lambda port: with_admin(
        make_config(port, [echo.address], access_log={"enabled": True, "path": "-"}), admin_port))

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/chat", max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            big = os.urandom(16 * 1024 * 1024)
            await ws.send(big)
            assert await ws.recv() == big
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            # The server closes first, with its own code: the client sees that code.
            await ws.send("close:4001")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4001
            assert ws.close_reason == "server says bye"

    run(session())
    # The client closes first.
    async def client_closes():
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/chat") as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            await ws.close(4002, "client says bye")
        assert ws.close_code == 4002

    run(client_closes())
    assert wait_until(lambda: stats(admin_port).get("sluice_tunnels_active", -1) == 0)
    values = stats(admin_port)
    assert values["sluice_upgrades_total{result=\"switched\"}"] == 2
    assert values["sluice_tunnel_bytes_total{direction=\"up\"}"] > 16 * 1024 * 1024
    assert values["sluice_tunnel_bytes_total{direction=\"down\"}"] > 16 * 1024 * 1024
    lines = [json.loads(line) for line in s.stdout().splitlines() if line.startswith("{")]
    tunnels = [entry for entry in lines if entry.get("status") == 101]
    assert len(tunnels) == 2, lines
    assert {t["tunnel_closed_by"] for t in tunnels} <= {"client", "upstream"}
    assert tunnels[0]["bytes_received"] > 16 * 1024 * 1024


def demo_upgrade_server(connections=1, last_word=None):
    """A server that answers `Upgrade: demo` with 101, then upper-cases bytes until the client closes.
    `last_word`: on b"BYE", write that and close at once (its bytes and FIN back to back)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve():
        for _ in range(connections):
            serve_one(*listener.accept())

    def serve_one(conn, _):
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        request, early = head.split(b"\r\n\r\n", 1)
        assert b"upgrade: demo" in request.lower(), request
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: demo\r\n\r\nREADY")
        if early:
            conn.sendall(early.upper())
        while data := conn.recv(65536):
            if last_word is not None and data == b"bye":
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # bytes and FIN in one segment
                conn.sendall(last_word)
                break
            conn.sendall(data.upper())
        conn.close()

    import threading
    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_any_upgrade_token_becomes_a_byte_tunnel(sluice_factory):
    listener = demo_upgrade_server()
    s = sluice_factory([f"127.0.0.1:{listener.getsockname()[1]}"])
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"GET /demo HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: demo\r\n\r\n")
        got = b""
        while b"READY" not in got:
            got += c.recv(4096)
        head = got.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert head.startswith("http/1.1 101"), head
        assert "upgrade: demo" in head and "connection: upgrade" in head
        c.sendall(b"abc")
        out = b""
        while len(out) < 3:
            out += c.recv(4096)
        assert out == b"ABC"
        # A half close from the client reaches the server, whose close comes back.
        c.shutdown(socket.SHUT_WR)
        assert c.recv(4096) == b""
    listener.close()


def open_demo_tunnel(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /demo HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: demo\r\n\r\n")
    got = b""
    while b"READY" not in got:
        got += c.recv(4096)
    return c


def read_to_end(c):
    out = b""
    while chunk := c.recv(4096):  # the socket's 5 s timeout fails the test if the end never comes
        out += chunk
    return out


def test_bytes_and_fin_back_to_back_end_the_tunnel_each_way(sluice_factory):
    """A tunnel's read that found the socket empty waits without trying recv() first (drained_read.hpp).
    The peer's last bytes and its FIN arriving together must still end the tunnel: the recv() that takes
    the bytes also takes the FIN, and no further readiness event will come."""
    rounds = 20
    listener = demo_upgrade_server(connections=2 * rounds, last_word=b"LAST")
    s = sluice_factory([f"127.0.0.1:{listener.getsockname()[1]}"])
    for _ in range(rounds):
        # Client side: a short exchange (the tunnel's read of the client socket comes back short and then
        # waits), then bytes and a half close in one go. The server's answer and its close come back.
        with open_demo_tunnel(s.port) as c:
            c.sendall(b"abc")
            out = b""
            while len(out) < 3:
                out += c.recv(4096)
            assert out == b"ABC"
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # bytes and FIN in one segment
            c.sendall(b"xyz")
            c.shutdown(socket.SHUT_WR)
            assert read_to_end(c) == b"XYZ"
        # Server side: its last bytes and its FIN back to back reach the client, then the end.
        with open_demo_tunnel(s.port) as c:
            c.sendall(b"abc")
            out = b""
            while len(out) < 3:
                out += c.recv(4096)
            c.sendall(b"bye")
            assert read_to_end(c) == b"LAST"
    listener.close()


def test_upgrade_fails_over_when_the_first_endpoint_refuses(echo_factory, sluice_factory):
    echo = echo_factory()
    dead = f"127.0.0.1:{free_port()}"
    s = sluice_factory([dead, echo.address])

    async def once():
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/") as ws:
            await ws.send("hi")
            return await ws.recv()

    assert [run(once()) for _ in range(4)] == ["hi"] * 4


def test_declined_upgrade_is_an_ordinary_response(backend_factory, sluice_factory):
    b = backend_factory("plain")  # answers 200 to anything, ignores Upgrade
    s = sluice_factory([b.address])
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        got = c.recv(65536)
        assert got.startswith(b"HTTP/1.1 200"), got
        c.sendall(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")  # still HTTP on the same connection
        assert c.recv(65536).startswith(b"HTTP/1.1 200")


def test_tunnel_survives_sighup_and_a_routing_change(echo_factory, sluice_factory):
    echo, other = echo_factory("ws-a"), echo_factory("ws-b")
    s = sluice_factory([echo.address])

    async def stream():
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/") as ws:
            await ws.send("name")
            assert await ws.recv() == "ws-a"
            # The endpoint leaves the config and another takes its place; the config is reloaded.
            cfg = json.loads(s.config_path.read_text())
            cfg["services"][0]["clusters"][0]["endpoints"] = [other.address]
            s.config_path.write_text(json.dumps(cfg))
            s.proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(1.0)
            for i in range(20):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            await ws.send("name")
            assert await ws.recv() == "ws-a"  # still the same tunnel
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/") as ws:
            await ws.send("name")
            assert await ws.recv() == "ws-b"  # new connections follow the new table

    run(stream())


def test_sigterm_keeps_tunnels_until_the_drain_deadline(echo_factory, sluice_factory):
    echo = echo_factory()
    cfg_timeouts = {"request_header": "10s", "idle": "60s", "connect": "2s", "response": "15s", "drain": "2s"}
    s = sluice_factory([echo.address], timeouts=cfg_timeouts)

    async def drained():
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/", ping_interval=None) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            started = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            # Draining: the tunnel still carries messages; the listener is closed to new connections.
            await ws.send("during")
            assert await ws.recv() == "during"
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return time.monotonic() - started, ws.close_code

    lasted, code = run(drained())
    assert lasted >= 1.5, f"the tunnel was cut {lasted:.2f} s into a 2 s drain"
    assert code == 1001, "at the drain deadline the proxy closes a WebSocket tunnel with 1001 Going Away"
    assert s.proc.wait(timeout=10) == 0


def tunnel_log_lines(s):
    return [json.loads(line) for line in s.stdout().splitlines()
            if line.startswith("{") and json.loads(line).get("status") == 101]


def test_tunnel_idle_timeout_and_max_lifetime(echo_factory, sluice_factory):
    """A service's tunnel.idle_timeout closes a tunnel with no byte either way for that long (not one that
    keeps talking, however long), and tunnel.max_lifetime closes any tunnel at that age."""
    echo = echo_factory()
    log = {"enabled": True, "path": "-"}
    idle = sluice_factory(make_cfg=lambda port: make_config(port, [echo.address], access_log=log,
                                                             service={"tunnel": {"idle_timeout": "800ms"}}))
    aged = sluice_factory(make_cfg=lambda port: make_config(port, [echo.address], access_log=log,
                                                             service={"tunnel": {"max_lifetime": "1500ms"}}))

    async def talk_then_fall_silent():
        async with websockets.connect(f"ws://127.0.0.1:{idle.port}/", ping_interval=None) as ws:
            # Twice the idle timeout of traffic with gaps under it: the tunnel stays.
            for i in range(8):
                await asyncio.sleep(0.25)
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            quiet_from = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return time.monotonic() - quiet_from

    silent_for = run(talk_then_fall_silent())
    assert 0.75 <= silent_for <= 2.5, f"closed {silent_for:.2f} s after the last byte, idle_timeout 800 ms"
    assert wait_until(lambda: [t["tunnel_closed_by"] for t in tunnel_log_lines(idle)] == ["idle"]), idle.stdout()

    async def keep_talking():
        async with websockets.connect(f"ws://127.0.0.1:{aged.port}/", ping_interval=None) as ws:
            opened = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                for i in range(100):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                    await asyncio.sleep(0.1)
            return time.monotonic() - opened

    lived = run(keep_talking())
    assert 1.4 <= lived <= 4.0, f"a tunnel with max_lifetime 1.5 s lived {lived:.2f} s"
    assert wait_until(lambda: [t["tunnel_closed_by"] for t in tunnel_log_lines(aged)] == ["lifetime"]), aged.stdout()


@pytest.mark.parametrize("mesh_tls", [True, False], ids=["mesh-tls", "plain"])
def test_websocket_across_clusters_through_sidecar_and_gateway(echo_factory, sluice_factory, tmp_path, mesh_tls):
    # The seed's path: a client in cluster-2 -> its sidecar -> cluster-9's gateway (export path /app,
    # rewritten to /) -> the echo pod; with mesh mTLS between the clusters, and without.
    from test_tls_admin import gateway_config, make_pki, sidecar_config
    echo = echo_factory()
    pki = make_pki(tmp_path / "pki")

    def gateway(port):
        cfg = gateway_config(port, echo.address, pki)
        if not mesh_tls:
            del cfg["listeners"][0]["tls"]
        return cfg

    gw = sluice_factory(make_cfg=gateway)

    def sidecar(port):
        cfg = sidecar_config(port, gw.port, pki)
        if not mesh_tls:
            del cfg["mesh_tls"]
        return cfg

    sc = sluice_factory(make_cfg=sidecar)

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{sc.port}/chat", max_size=None) as ws:
            for i in range(10):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            big = os.urandom(1024 * 1024)
            await ws.send(big)
            assert await ws.recv() == big

    run(session())


def test_a_thousand_idle_tunnels_stay_open(echo_factory, sluice_factory):
    # Memory per idle tunnel is reported by tests/bench/run.sh websocket; here: they all stay open and
    # all still answer.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    echo = echo_factory()
    admin_port = free_port()
    s = sluice_factory(make_cfg=lambda port: with_admin(make_config(port, [echo.address]), admin_port))

    async def many():
        conns = []
        for batch in range(10):
            conns += await asyncio.gather(*[websockets.connect(f"ws://127.0.0.1:{s.port}/", ping_interval=None)
                                            for _ in range(100)])
        assert stats(admin_port)["sluice_tunnels_active"] == 1000
        await asyncio.sleep(1.0)
        for i, ws in enumerate(conns):
            await ws.send(str(i))
        answers = await asyncio.gather(*[ws.recv() for ws in conns])
        assert answers == [str(i) for i in range(1000)]
        await asyncio.gather(*[ws.close() for ws in conns])

    run(many())
    assert wait_until(lambda: stats(admin_port).get("sluice_tunnels_active", -1) == 0)


def test_seed_topology_failover_moves_new_websockets_to_cluster_3(echo_factory, sluice_factory, tmp_path):
    # The seed's topology with WebSockets: the client in cluster-2 (no local pod) reaches the echo pod of
    # cluster-1 through its sidecar and cluster-1's gateway (mesh mTLS, export path /app); the policy is
    # FailOver cluster-1 then cluster-3. When cluster-1 dies (its gateway and pod), the open tunnel ends
    # and a new connection lands on cluster-3's pod, at default outlier settings.
    from test_tls_admin import gateway_config, make_pki
    c1, c3 = "default/default/default/cluster-1", "default/default/default/cluster-3"
    pki = make_pki(tmp_path / "pki")
    pod1, pod3 = echo_factory("pod-cluster-1"), echo_factory("pod-cluster-3")
    gw1 = sluice_factory(make_cfg=lambda port: gateway_config(port, pod1.address, pki))
    gw3 = sluice_factory(make_cfg=lambda port: gateway_config(port, pod3.address, pki))

    def sidecar(port):
        cfg = make_config(port, [])
        cfg["cluster"] = "default/default/default/cluster-2"
        cfg["mesh_tls"] = {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "leaf.crt"),
                           "key_file": str(pki / "leaf.key")}
        cfg["listeners"][0]["role"] = "sidecar"
        svc = cfg["services"][0]
        svc.pop("outlier_detection", None)  # the defaults, as a user who configured nothing has them
        svc["clusters"] = [{"cluster": c1, "path_prefix": "/app", "endpoints": [f"127.0.0.1:{gw1.port}"]},
                           {"cluster": c3, "path_prefix": "/app", "endpoints": [f"127.0.0.1:{gw3.port}"]}]
        svc["policy"] = {"lb_type": "FailOver", "targets": [{"cluster": c1}, {"cluster": c3}]}
        return cfg

    sc = sluice_factory(make_cfg=sidecar)

    async def name_over_new_connection():
        async with websockets.connect(f"ws://127.0.0.1:{sc.port}/chat", open_timeout=10) as ws:
            await ws.send("name")
            return await ws.recv()

    async def before_and_after():
        async with websockets.connect(f"ws://127.0.0.1:{sc.port}/chat") as ws:
            await ws.send("name")
            assert await ws.recv() == "pod-cluster-1", "FailOver keeps to the first target while it is up"
            for proc in (gw1.proc, pod1.proc):  # cluster-1 goes away as a whole
                proc.kill()
                proc.wait()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        return [await name_over_new_connection() for _ in range(5)]

    after = run(before_and_after())
    assert after == ["pod-cluster-3"] * 5, after


def test_h2c_upgrade_offer_is_served_as_http1(sluice_factory):
    """`curl --http2` on an http:// URL offers an h2c upgrade (Upgrade: h2c, HTTP2-Settings). As Envoy and nginx
    do, sluice answers over HTTP/1.1 and keeps the offer from the endpoint, which could otherwise accept it and
    take the client's connection out of routing."""
    from test_h2_streams import Http1Recorder
    rec = Http1Recorder()
    s = sluice_factory([rec.address])
    out = subprocess.run(["curl", "-sS", "--http2", "-o", "-", "-w", " %{http_version}",
                          f"http://127.0.0.1:{s.port}/offer"], capture_output=True, text=True, timeout=20,
                         env=clean_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok 1.1", out.stdout
    head = rec.requests[-1].decode().lower().split("\r\n\r\n")[0]
    assert head.startswith("get /offer http/1.1"), head
    assert "upgrade:" not in head and "http2-settings:" not in head, head


def test_wss_client_through_a_tls_listener(echo_factory, sluice_factory, tmp_path):
    """A wss:// client (the websockets library over Python's TLS) through sluice's TLS stream in both
    directions at once: a large message each way while pings cross, then a clean close."""
    import ssl
    from test_tls_admin import make_pki
    pki = make_pki(tmp_path / "pki")
    echo = echo_factory()

    def cfg(port):
        c = make_config(port, [echo.address])
        c["listeners"][0]["tls"] = {"cert_file": str(pki / "leaf.crt"), "key_file": str(pki / "leaf.key")}
        return c
    s = sluice_factory(make_cfg=cfg)
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))

    async def session():
        async with websockets.connect(f"wss://localhost:{s.port}/chat", ssl=context, max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            big = os.urandom(8 * 1024 * 1024)
            await ws.send(big)
            pong = await ws.ping(b"while the big one flows")
            assert await ws.recv() == big
            await asyncio.wait_for(pong, 10)
            await ws.close(4002, "client says bye")
        assert ws.close_code == 4002

    run(session())
