"""Start and drive the Kubernetes API server stand-in from tests.

    import sys; sys.path.insert(0, "tests/k8s")
    from standin import StandIn

    with StandIn() as api:                      # TLS API + control port on free ports
        api.kubectl("create", "-f", api.fixture("cluster-2.yaml"))
        api.fault(drop_watches=True)            # POST /faults
        assert api.state()["watches_opened"] >= 2
        # api.kubeconfig, api.url, api.control_url, api.pki["ca.crt"], api.token

Everything runs on 127.0.0.1; a test owns its own server process and temp directory.
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
APISERVER = os.path.join(HERE, "apiserver.py")
FIXTURES = os.path.join(HERE, "fixtures")
PYTHON = "/usr/bin/python3"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
START_TIMEOUT_S = 20


class StandIn:
    """One stand-in process. Arguments map to apiserver.py flags (see its --help).

    port: 0 picks a free port; a fixed port lets a test restart the server at the same URL
    (with the same certs_dir the restarted server keeps its CA, so old kubeconfigs still work)."""

    def __init__(self, auth="both", token=None, token_file=None, kubeconfig_token_file=False,
                 kubeconfig_style="data", history=None, bookmark_interval=None, port=0,
                 certs_dir=None, workdir=None, verbose=False, hide_groups=(),
                 serviceaccount_dir=None, host="127.0.0.1", extra_args=()):
        self.auth = auth
        self._owns_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="sluice-standin-")
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        self.cache_dir = os.path.join(self.workdir, "kube-cache")
        self.certs_dir = certs_dir or os.path.join(self.workdir, "pki")
        self.log_path = os.path.join(self.workdir, "apiserver.log")
        self.token_file = token_file
        self.host = host
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.args = [PYTHON, APISERVER, "--listen", listen, "--control", "127.0.0.1:0",
                     "--write-kubeconfig", self.kubeconfig, "--auth", auth,
                     "--certs-dir", self.certs_dir, "--kubeconfig-style", kubeconfig_style]
        if token:
            self.args += ["--token", token]
        if token_file:
            self.args += ["--token-file", token_file]
        if kubeconfig_token_file:
            self.args.append("--kubeconfig-token-file")
        if history is not None:
            self.args += ["--history", str(history)]
        if bookmark_interval is not None:
            self.args += ["--bookmark-interval", str(bookmark_interval)]
        if verbose:
            self.args.append("--verbose")
        for group in hide_groups:
            self.args += ["--hide-group", group]
        self.serviceaccount_dir = serviceaccount_dir
        if serviceaccount_dir:
            self.args += ["--serviceaccount-dir", serviceaccount_dir]
            if not token_file:
                self.token_file = os.path.join(serviceaccount_dir, "token")
        self.args += list(extra_args)
        self.proc = None
        self.url = self.control_url = None
        self.port = None
        self.token = token

    # ---- life cycle -----------------------------------------------------------------------

    def start(self):
        """Start the process and wait for its ready line. Returns self."""
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, text=True)
        lines = []
        reader = threading.Thread(target=self._read_ready, args=(lines,), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not self.url:
            self.stop()
            with open(self.log_path, errors="replace") as f:
                raise RuntimeError(f"apiserver stand-in did not start: {lines} {f.read()[-2000:]}")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.pki = {name: os.path.join(self.certs_dir, name)
                    for name in ("ca.crt", "client.crt", "client.key", "server.crt", "server.key")}
        if self.auth in ("token", "both") and not self.token and not self.token_file:
            self.token = self._kubeconfig_value("token")
        return self

    def _read_ready(self, lines):
        for line in self.proc.stdout:
            lines.append(line.strip())
            if line.startswith("control ready on "):
                self.control_url = line.split(" on ", 1)[1].strip()
            if line.startswith("apiserver ready on "):
                self.url = line.split(" on ", 1)[1].strip()
                return

    def incluster_env(self):
        """The environment variables a pod sees for its API server (use with serviceaccount_dir,
        which holds the token, ca.crt and namespace files)."""
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}

    def _kubeconfig_value(self, key):
        with open(self.kubeconfig) as f:
            for line in f:
                if line.strip().startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()

    def cleanup(self):
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    # ---- kubectl --------------------------------------------------------------------------

    @staticmethod
    def fixture(name):
        return os.path.join(FIXTURES, name)

    @staticmethod
    def fixture_text(name, **values):
        """A fixture template's text with its %(key)s placeholders filled from `values`."""
        with open(StandIn.fixture(name)) as f:
            return f.read() % values

    def kubectl_args(self, *args):
        # A private discovery cache: kubectl keys it by host:port, which tests reuse.
        return [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir,
                "--request-timeout", "20s", *args]

    def kubectl(self, *args, input=None, check=True, timeout=60):
        """Run kubectl against this server; raises with its output when check and it fails."""
        res = subprocess.run(self.kubectl_args(*args), input=input, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n"
                                 f"{res.stdout}\n{res.stderr}")
        return res

    def kubectl_json(self, *args):
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def kubectl_popen(self, *args):
        return subprocess.Popen(self.kubectl_args(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    # ---- control port ---------------------------------------------------------------------

    def control(self, path, body=None):
        """GET (body None) or POST JSON to the control endpoint; returns the decoded answer."""
        u = urllib.parse.urlsplit(self.control_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
        try:
            if body is None:
                conn.request("GET", path)
            else:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read())
            if resp.status != 200:
                raise AssertionError(f"control {path}: {resp.status} {data}")
            return data
        finally:
            conn.close()

    def fault(self, **spec):
        """POST /faults, e.g. fault(drop_watches=True), fault(status=500, count=3),
        fault(refuse=True), fault(compact=True), fault(delay_ms=200), fault(watch_410=True)."""
        return self.control("/faults", spec)

    def state(self):
        return self.control("/state")

    def wait_watching(self, resource, count=1, timeout=10):
        """Wait until `count` watches on `resource` (e.g. "services",
        "globaltrafficpolicies.flomesh.io") are open: a client is ready for events."""
        return wait_for(lambda: self.state()["watches_open_by_resource"].get(resource, 0) >= count,
                        timeout=timeout, what=f"{count} watch(es) on {resource}")

    def load(self, items):
        """Create or replace objects directly, bypassing HTTPS (bulk set-up)."""
        return self.control("/objects", {"items": items})

    # ---- raw HTTPS ------------------------------------------------------------------------

    def ssl_context(self, client_cert=True):
        ctx = ssl.create_default_context(cafile=self.pki["ca.crt"])
        if client_cert:
            ctx.load_cert_chain(self.pki["client.crt"], self.pki["client.key"])
        return ctx

    def connection(self, auth="cert", timeout=20):
        """An http.client connection; auth: "cert", "token" or None (no credentials)."""
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                           context=self.ssl_context(client_cert=(auth == "cert")))
        conn.standin_auth = auth
        return conn

    def auth_headers(self, auth):
        if auth == "token":
            return {"Authorization": f"Bearer {self.current_token()}"}
        return {}

    def current_token(self):
        if self.token_file:
            with open(self.token_file) as f:
                return f.read().strip()
        return self.token

    def request(self, method, path, body=None, headers=None, auth="cert", conn=None):
        """One request; returns (status, decoded JSON or raw bytes). Reuses `conn` if given."""
        own = conn is None
        conn = conn or self.connection(auth)
        hdrs = {"Accept": "application/json"}
        hdrs.update(self.auth_headers(auth))
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            try:
                return resp.status, json.loads(data)
            except ValueError:
                return resp.status, data
        finally:
            if own:
                conn.close()

    def watch(self, path, until=None, timeout=10, auth="cert"):
        """Open a watch (`path` includes the query) and collect events until `until(events)`
        is true, the stream ends or `timeout` passes. Returns (events, ended_cleanly)."""
        conn = self.connection(auth, timeout=timeout)
        conn.request("GET", path, headers=self.auth_headers(auth))
        resp = conn.getresponse()
        events = []
        deadline = time.monotonic() + timeout
        clean = False
        try:
            if resp.status != 200:
                return [{"type": "HTTP", "code": resp.status, "object": json.loads(resp.read())}], True
            while time.monotonic() < deadline:
                line = resp.readline()
                if not line:
                    clean = True
                    break
                events.append(json.loads(line))
                if until and until(events):
                    break
        except (OSError, http.client.HTTPException):
            clean = False
        finally:
            conn.close()
        return events, clean


def wait_for(predicate, timeout=10, interval=0.05, what="condition"):
    """Poll `predicate` until it returns a true value (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


if __name__ == "__main__":
    # Manual use: start one and print where it is; Ctrl-C stops it.
    api = StandIn(verbose="-v" in sys.argv).start()
    print(f"url={api.url} kubeconfig={api.kubeconfig} control={api.control_url}", flush=True)
    try:
        api.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.cleanup()
