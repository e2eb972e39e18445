"""TLS (listener termination, mTLS, upstream mesh mTLS, certificate reload), the admin endpoint and
SIGHUP reload, through the real sluice binary with curl."""
import json
import os
import signal
import ssl
import socket
import subprocess
import time

import pytest

from integ_harness import LOCAL_CLUSTER, admin_metric, curl, free_port, make_config, wait_until

REMOTE = "default/default/default/cluster-9"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d, cn="gateway"):
    """A CA and a leaf certificate for 127.0.0.1/localhost signed by it (also usable as a client cert)."""
    d.mkdir(exist_ok=True)
    if not (d / "ca.crt").exists():
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=sluice-test-ca", cwd=d)
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key.new",
            "-out", "leaf.csr", "-subj", f"/CN={cn}", cwd=d)
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.crt.new", "-days", "2", "-extfile", "ext", cwd=d)
    os.replace(d / "leaf.key.new", d / "leaf.key")
    os.replace(d / "leaf.crt.new", d / "leaf.crt")
    return d


def peer_cn(port, pki):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "leaf.crt"), str(pki / "leaf.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            subject = dict(x[0] for x in t.getpeercert()["subject"])
            return subject["commonName"]


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki")


def gateway_config(port, backend, pki, admin_port=None):
    cfg = make_config(port, [backend])
    cfg["listeners"][0]["role"] = "gateway"
    cfg["listeners"][0]["tls"] = {"cert_file": str(pki / "leaf.crt"), "key_file": str(pki / "leaf.key"),
                                  "client_ca_file": str(pki / "ca.crt")}
    cfg["routes"] = [{"hosts": ["*"], "path": "/app", "service": "app.default",
                      "rewrite_from": "/app", "rewrite_to": "/"}]
    if admin_port:
        cfg["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
    return cfg


def sidecar_config(port, gateway_port, mesh_pki):
    """A cluster-2 sidecar reaching the app only through REMOTE's gateway, with mesh mTLS from `mesh_pki`."""
    cfg = make_config(port, [])
    cfg["mesh_tls"] = {"ca_file": str(mesh_pki / "ca.crt"), "cert_file": str(mesh_pki / "leaf.crt"),
                       "key_file": str(mesh_pki / "leaf.key")}
    cfg["listeners"][0]["role"] = "sidecar"
    svc = cfg["services"][0]
    svc["clusters"] = [{"cluster": REMOTE, "path_prefix": "/app", "endpoints": [f"127.0.0.1:{gateway_port}"]}]
    svc["policy"] = {"lb_type": "ActiveActive", "targets": [{"cluster": REMOTE}]}
    return cfg


def test_tls_listener_requires_client_cert(backend_factory, sluice_factory, pki):
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))
    url = f"https://127.0.0.1:{gw.port}/app/"
    ok = curl("-s", "--cacert", str(pki / "ca.crt"), "--cert", str(pki / "leaf.crt"), "--key", str(pki / "leaf.key"),
              url)
    assert ok.returncode == 0 and ok.stdout.strip() == b"pod-a"
    no_cert = curl("-s", "--cacert", str(pki / "ca.crt"), url)
    assert no_cert.returncode != 0, "a gateway with client_ca_file must refuse clients without a certificate"


def test_mesh_mtls_between_sidecar_and_gateway(backend_factory, sluice_factory, pki):
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))

    sc = sluice_factory(make_cfg=lambda port: sidecar_config(port, gw.port, pki))
    r = curl("-s", "-D", "-", sc.url("/headers"))
    text = r.stdout.decode()
    assert r.returncode == 0 and "X-Forwarded-Proto: https" in text, text
    assert text.count("1.1 sluice") >= 2, "the request should cross both proxies"


def test_upstream_tls_sessions_are_resumed(backend_factory, sluice_factory, pki):
    """Without pooling every request is a new mesh connection: the first one does the full handshake, the
    next ones offer the session the gateway gave and skip the certificate exchange."""
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))
    admin = free_port()

    def cfg(port):
        c = sidecar_config(port, gw.port, pki)
        c["upstream"] = {"max_idle_per_endpoint": 0}
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin}
        return c
    sc = sluice_factory(make_cfg=cfg)
    for _ in range(4):
        r = curl("-s", sc.url("/"))
        assert r.returncode == 0 and r.stdout.strip() == b"pod-a", r
    assert admin_metric(admin, "sluice_upstream_connects_total") == 4
    assert admin_metric(admin, "sluice_upstream_tls_resumptions_total") == 3


def test_pooled_tls_connection_serves_again_after_its_buffers_were_released(backend_factory, sluice_factory, pki):
    """A pooled mesh connection idle for over 2 s gives its buffers back (upstream_pool.cpp's kColdAfter):
    taken again, it is the same connection (no new connect) and carries large bodies both ways."""
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))
    admin = free_port()

    def cfg(port):
        c = sidecar_config(port, gw.port, pki)
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin}
        return c
    sc = sluice_factory(make_cfg=cfg)
    r = curl("-s", sc.url("/"))
    assert r.returncode == 0 and r.stdout.strip() == b"pod-a", r
    assert admin_metric(admin, "sluice_upstream_connects_total") == 1
    time.sleep(3.5)  # past kColdAfter (2 s) and the next sweep (every 1 s): the wait is what is tested
    body = bytes(range(256)) * 1024  # 256 KiB up
    r = curl("-s", "--data-binary", "@-", sc.url("/echo"), input_data=body)
    assert r.returncode == 0 and r.stdout == body
    r = curl("-s", sc.url("/bytes/300000"))
    assert r.returncode == 0 and len(r.stdout) == 300000
    assert admin_metric(admin, "sluice_upstream_connects_total") == 1, "the pooled connection should be reused"


def test_downstream_tls_sessions_are_resumed(backend_factory, sluice_factory, pki):
    """A client that offers the ticket its last connection got skips the certificate exchange."""
    b = backend_factory("pod-a")

    def cfg(port):
        c = make_config(port, [b.address])
        c["listeners"][0]["tls"] = {"cert_file": str(pki / "leaf.crt"), "key_file": str(pki / "leaf.key")}
        return c
    s = sluice_factory(make_cfg=cfg)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    session, reused = None, []
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as t:
                t.sendall(b"GET / HTTP/1.1\r\nHost: app.default\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := t.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"pod-a\n"), answer
                reused.append(t.session_reused)
                session = t.session  # the ticket came after the handshake, with the answer
    assert reused == [False, True, True]


def test_upstream_tls_refuses_unknown_ca(backend_factory, sluice_factory, pki, tmp_path):
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))
    other = make_pki(tmp_path / "other-pki", cn="other")

    sc = sluice_factory(make_cfg=lambda port: sidecar_config(port, gw.port, other))
    r = curl("-s", "-w", "\n%{http_code}", sc.url("/"))
    body, code = r.stdout.decode().rsplit("\n", 1)
    assert code == "502", body
    assert "tls" in body.lower() or "certificate" in body.lower(), body


def test_certificate_reloads_when_files_change(backend_factory, sluice_factory, pki):
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))
    assert peer_cn(gw.port, pki) == "gateway"
    make_pki(pki, cn="gateway-rotated")
    # Modification times have one-second resolution: the new files' are moved on instead of waiting for
    # the clock to turn. Sluice looks every 2 s.
    later = time.time() + 5
    for name in ("leaf.crt", "leaf.key"):
        os.utime(pki / name, (later, later))
    wait_until(lambda: peer_cn(gw.port, pki) == "gateway-rotated", 10, "the rotated certificate to be served")
    assert "reloaded" in gw.stderr()


def admin_get(port, path):
    r = curl("-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}")
    body, code = r.stdout.decode().rsplit("\n", 1)
    return int(code), body


def test_admin_endpoint(backend_factory, sluice_factory):
    a, b = backend_factory("pod-a"), backend_factory("pod-b")
    admin_port = free_port()

    def cfg(port):
        c = make_config(port, [a.address, b.address])
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
        return c

    s = sluice_factory(make_cfg=cfg)
    for _ in range(4):
        assert curl("-s", s.url("/")).returncode == 0
    assert admin_get(admin_port, "/live")[0] == 200
    assert admin_get(admin_port, "/ready") == (200, "ready\n")
    code, stats = admin_get(admin_port, "/stats")
    assert code == 200
    assert 'sluice_responses_total{class="2xx"} 4' in stats
    assert f'sluice_upstream_requests_total{{service="app.default",cluster="{LOCAL_CLUSTER}"}} 4' in stats
    assert "# TYPE sluice_requests_total counter" in stats
    code, routes = admin_get(admin_port, "/routes")
    assert code == 200 and json.loads(routes)["services"][0]["id"] == "app.default"
    code, explain = admin_get(admin_port, "/explain?host=anything&path=/x")
    e = json.loads(explain)
    assert code == 200 and e["route"]["service"] == "app.default"
    addresses = {f'{c["address"]}:{c["port"]}' for c in e["candidates"]}
    assert addresses == {a.address, b.address}
    assert admin_get(admin_port, "/explain")[0] == 400
    assert admin_get(admin_port, "/nope")[0] == 404


def test_sighup_reloads_routes_without_dropping_connections(backend_factory, sluice_factory):
    a, b = backend_factory("pod-a"), backend_factory("pod-b")
    s = sluice_factory([a.address])
    assert curl("-s", s.url("/")).stdout.strip() == b"pod-a"
    cfg = json.loads(s.config_path.read_text())
    cfg["services"][0]["clusters"][0]["endpoints"] = [b.address]
    s.config_path.write_text(json.dumps(cfg))
    os.kill(s.pid, signal.SIGHUP)
    wait_until(lambda: curl("-s", s.url("/")).stdout.strip() == b"pod-b", 5, "the reloaded routing")
    # A broken file is refused and the running routing kept.
    s.config_path.write_text("{ not json")
    os.kill(s.pid, signal.SIGHUP)
    wait_until(lambda: "reload refused" in s.stderr(), 5, "the broken reload to be refused")
    assert s.proc.poll() is None
    assert curl("-s", s.url("/")).stdout.strip() == b"pod-b"
    assert "reload refused" in s.stderr()


def test_changed_config_file_is_reloaded_without_a_signal(backend_factory, sluice_factory):
    a, b = backend_factory("pod-a"), backend_factory("pod-b")
    s = sluice_factory([a.address])
    assert curl("-s", s.url("/")).stdout.strip() == b"pod-a"
    cfg = json.loads(s.config_path.read_text())
    cfg["services"][0]["clusters"][0]["endpoints"] = [b.address]
    s.config_path.write_text(json.dumps(cfg))
    wait_until(lambda: curl("-s", s.url("/")).stdout.strip() == b"pod-b", 8, "the changed file to be reloaded")
    assert "changed" in s.stderr()


def test_absolute_form_target_is_accepted(backend_factory, sluice_factory):
    """RFC 9112 3.2.2: an app that uses the sidecar as its HTTP proxy sends the absolute form."""
    b = backend_factory("pod-a")

    def cfg(port):
        c = make_config(port, [b.address])
        c["routes"] = [{"hosts": ["httpbin.httpbin"], "path": "/", "service": "app.default"}]
        return c

    s = sluice_factory(make_cfg=cfg)

    def via_proxy(url):
        # Plain curl: the harness's curl() disables proxies.
        return subprocess.run(["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", "-x",
                               f"http://127.0.0.1:{s.port}", url], capture_output=True, timeout=30)

    r = via_proxy("http://httpbin.httpbin:8080/headers?x=1")
    text, code = r.stdout.decode().rsplit("\n", 1)
    assert code == "200" and "Host: httpbin.httpbin:8080" in text, text
    assert via_proxy("http://unknown.example/").stdout.decode().rsplit("\n", 1)[1] == "404"


def test_health_checks_of_a_tls_gateway_use_tls(backend_factory, sluice_factory, pki):
    # A sidecar health-checks another cluster's gateway that only speaks mTLS: the checks must do the
    # mesh TLS handshake (plain TCP checks would all fail and mark the gateway unhealthy).
    b = backend_factory("pod-a")
    gw = sluice_factory(make_cfg=lambda port: gateway_config(port, b.address, pki))
    admin_port = free_port()

    def cfg(port):
        c = sidecar_config(port, gw.port, pki)
        # A timeout long enough for an mTLS handshake under a sanitizer on a loaded 2-core machine (150 ms
        # failed once there): the test is about TLS being used, not about speed.
        c["services"][0]["health_check"] = {"enabled": True, "path": "/", "interval": "1500ms", "timeout": "1400ms",
                                            "healthy_threshold": 1, "unhealthy_threshold": 1}
        c["admin"] = {"enabled": True, "address": "127.0.0.1", "port": admin_port}
        return c

    sc = sluice_factory(make_cfg=cfg)
    wait_until(lambda: (admin_metric(admin_port, "sluice_health_checks_total") or 0) >= 3, 20, "three health checks")
    assert admin_metric(admin_port, "sluice_health_check_failures_total") == 0
    snap = json.loads(admin_get(admin_port, "/routes")[1])
    ep = snap["services"][0]["tiers"][0]["clusters"][0]["endpoints"][0]
    assert ep["health_check"] == "healthy", ep
    assert curl("-s", sc.url("/")).stdout.strip() == b"pod-a"
