"""The proxies a chaos run can put in front of a topology: sluice at its defaults, and nginx and HAProxy
configured as equivalent weighted reverse proxies with their usual retry options (the peers).

Mapping of the policies onto the peers, which weigh servers, not clusters:
- ActiveActive: every endpoint a server, weighted so that each cluster's servers add up to its weight.
- FailOver: the first cluster's endpoints are the primaries, every other endpoint is `backup`. Both peers
  know only two tiers, so the later clusters share the backup role (HAProxy with `option allbackups`,
  otherwise it would send everything to the first backup server only).
HAProxy only leaves a server for its backups once it is marked DOWN, which takes health checks: its
servers get `check` with HAProxy's default timing (inter 2 s, fall 3, rise 2). nginx marks a server
failed passively (its defaults max_fails=1, fail_timeout=10s).
"""
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import time

from chaos_procs import START_TIMEOUT, can_connect, exited
from chaos_topology import free_port, sluice_config

PEERS = ("nginx", "haproxy")
TARGETS = ("sluice",) + PEERS


def http_get(port, path, host="127.0.0.1", timeout=5):
    """(status, body text) of one GET on a fresh connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "app.chaos"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


class Proxy:
    """Common part: a config file in the work dir, one supervised process, a listener on a free port."""
    name = "?"

    def __init__(self, supervisor, topo):
        self.sup = supervisor
        self.topo = topo
        self.port = free_port("127.0.0.1")
        self.proc = None

    @property
    def workdir(self):
        return self.sup.workdir

    def argv(self):
        raise NotImplementedError

    def ready(self):
        return can_connect("127.0.0.1", self.port)

    def start(self):
        self.proc = self.sup.start(self.name, self.argv())
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if exited(self.proc) is not None:
                raise RuntimeError(f"{self.name} exited with {exited(self.proc)}:\n"
                                   f"{self.sup.log_tail(self.name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {START_TIMEOUT}s:\n{self.sup.log_tail(self.name)}")
            time.sleep(0.02)
        return self

    def running(self):
        return self.proc is not None and exited(self.proc) is None

    def diagnostics(self):
        """{file suffix: text} worth keeping after a run."""
        return {}


class Sluice(Proxy):
    name = "sluice"

    def __init__(self, supervisor, topo, binary):
        super().__init__(supervisor, topo)
        self.binary = binary
        self.admin_port = free_port("127.0.0.1")
        self.config_path = self.workdir / "sluice.json"
        self.config_path.write_text(json.dumps(sluice_config(topo, self.port, self.admin_port), indent=2))

    def argv(self):
        # No --workers: the default (one per core) is what is under test.
        return [self.binary, "--config", str(self.config_path)]

    def ready(self):
        try:
            return http_get(self.admin_port, "/ready", timeout=1)[0] == 200 and can_connect("127.0.0.1", self.port)
        except OSError:
            return False

    def stats(self):
        """The admin /stats text (Prometheus exposition), or why it could not be read."""
        try:
            return http_get(self.admin_port, "/stats")[1]
        except (OSError, http.client.HTTPException) as e:
            return f"(no /stats: {e!r})"

    def diagnostics(self):
        out = {"stats.txt": self.stats()}
        try:
            out["explain.json"] = http_get(self.admin_port, "/explain?host=app.chaos&path=/")[1]
        except (OSError, http.client.HTTPException) as e:
            out["explain.json"] = f"(no /explain: {e!r})"
        return out


class Nginx(Proxy):
    name = "nginx"

    def config(self):
        weights = self.topo.endpoint_weights()
        servers = []
        for i, cluster in enumerate(self.topo.clusters):
            backup = " backup" if self.topo.policy == "fo" and i > 0 else ""
            for e in cluster.endpoints:
                weight = "" if self.topo.policy == "fo" else f" weight={weights[e.name]}"
                servers.append(f"    server {e.address}{weight}{backup};")
        d = self.workdir
        return "\n".join([
            # As root the workers would run as nobody, and could not use the temp dirs in our private
            # work dir; the same user as the master keeps it simple (unprivileged runs ignore it).
            *(["user root;"] if os.geteuid() == 0 else []),
            "worker_processes auto;  # one per core, as sluice's workers",
            "daemon off;",
            f"pid {d}/nginx.pid;",
            f"error_log {d}/nginx-error.log warn;",
            "events { worker_connections 4096; }",
            "http {",
            "  access_log off;",
            *(f"  {kind}_temp_path {d}/nginx-{kind};" for kind in
              ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
            "  keepalive_requests 1000000;",
            "  keepalive_timeout 60s;",
            "  upstream app {",
            *servers,
            "    keepalive 64;",
            "    keepalive_requests 1000000;",
            "  }",
            "  server {",
            f"    listen 127.0.0.1:{self.port};",
            "    location / {",
            "      proxy_pass http://app;",
            "      proxy_http_version 1.1;",
            '      proxy_set_header Connection "";',
            "      proxy_next_upstream error timeout http_502 http_503 http_504;",
            "      proxy_connect_timeout 2s;",
            "      proxy_read_timeout 15s;",
            "    }",
            "  }",
            "}",
            ""])

    def argv(self):
        path = self.workdir / "nginx.conf"
        path.write_text(self.config())
        return [nginx_binary(), "-p", str(self.workdir), "-e", str(self.workdir / "nginx-error.log"),
                "-c", str(path)]


class Haproxy(Proxy):
    name = "haproxy"

    def config(self):
        weights = self.topo.endpoint_weights()
        servers = []
        for i, cluster in enumerate(self.topo.clusters):
            backup = " backup" if self.topo.policy == "fo" and i > 0 else ""
            for e in cluster.endpoints:
                weight = "" if self.topo.policy == "fo" else f" weight {min(256, weights[e.name])}"
                servers.append(f"  server {e.name} {e.address}{weight} check{backup}")
        return "\n".join([
            "global",
            "  maxconn 4096",
            f"  pidfile {self.workdir}/haproxy.pid",
            "defaults",
            "  mode http",
            "  option http-keep-alive",
            "  http-reuse always",
            "  timeout connect 2s",
            "  timeout server 15s",
            "  timeout client 60s",
            "  timeout http-keep-alive 60s",
            "  timeout http-request 10s",
            "  retries 2",
            "  option redispatch",
            "  retry-on all-retryable-errors",
            "frontend chaos",
            f"  bind 127.0.0.1:{self.port}",
            "  default_backend app",
            "backend app",
            "  balance roundrobin",
            *(["  option allbackups"] if self.topo.policy == "fo" else []),
            *servers,
            ""])

    def argv(self):
        path = self.workdir / "haproxy.cfg"
        path.write_text(self.config())
        return [haproxy_binary(), "-db", "-f", str(path)]


def _sbin(tool):
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError(f"{tool} is not installed (Debian: {'nginx-light' if tool == 'nginx' else tool})")
    return found


def nginx_binary():
    return _sbin("nginx")


def haproxy_binary():
    return _sbin("haproxy")


def available(target, sluice_bin):
    """None when the target can run here, else why not."""
    if target == "sluice":
        return None if pathlib.Path(sluice_bin).is_file() else f"no sluice binary at {sluice_bin}"
    try:
        _sbin(target)
        return None
    except RuntimeError as e:
        return str(e)


def make(target, supervisor, topo, sluice_bin):
    if target == "sluice":
        return Sluice(supervisor, topo, sluice_bin)
    if target == "nginx":
        return Nginx(supervisor, topo)
    if target == "haproxy":
        return Haproxy(supervisor, topo)
    raise ValueError(f"unknown target {target!r} (have {', '.join(TARGETS)})")


def check_config(target, proxy):
    """Runs the target's own config check; raises with its output when the config is refused."""
    if target == "sluice":
        argv = [proxy.binary, "--check", "--config", str(proxy.config_path)]
    elif target == "nginx":
        argv = proxy.argv() + ["-t", "-q"]
    else:
        argv = proxy.argv() + ["-c"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{target} refused its config:\n{done.stdout}{done.stderr}")
