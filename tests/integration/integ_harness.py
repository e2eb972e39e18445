"""Harness for the integration tests: finds the binaries, starts sluice and backends on free loopback
ports, and gives the tests small clients (curl, raw sockets) and fake upstreams (Python socket servers).

Every process started here is registered with a ProcessGroup that a fixture kills at teardown, and
every wait is bounded, so a broken proxy fails a test instead of hanging the run.
"""
import json
import os
import pathlib
import select
import signal
import socket
import struct
import subprocess
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
LOCAL_CLUSTER = "default/default/default/local"
START_TIMEOUT = 10.0  # seconds for a process to start listening


def find_build_dir():
    """$SLUICE_BUILD_DIR, else REPO/build, else the build* dir whose sluice is newest."""
    env = os.environ.get("SLUICE_BUILD_DIR")
    if env:
        return pathlib.Path(env).resolve()
    default = REPO / "build"
    if (default / "cli" / "sluice").is_file():
        return default
    candidates = [d for d in REPO.glob("build*")
                  if (d / "cli" / "sluice").is_file()
                  and (d / "tests" / "backend" / "sluice-testbackend").is_file()]
    if not candidates:
        return default
    return max(candidates, key=lambda d: (d / "cli" / "sluice").stat().st_mtime)


BUILD_DIR = find_build_dir()
# Set by tests/run_all.py when BUILD_DIR is an AddressSanitizer build: freed memory sits in ASan's
# quarantine (up to 256 MiB) instead of being reused, so RSS measures the sanitizer, not sluice.
SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"
SLUICE = BUILD_DIR / "cli" / "sluice"
BACKEND = BUILD_DIR / "tests" / "backend" / "sluice-testbackend"


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bound with port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_connect(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout=10.0, what="condition", interval=0.02):
    """Polls `predicate` until it returns something true, which is returned; raises AssertionError naming
    `what` when `timeout` seconds pass first. The bounded wait every test uses instead of a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def admin_metric(port, series):
    """The value of the sample `series` (its name, and its labels as rendered) on the admin endpoint's
    /stats at `port`, or None when absent or the admin does not answer."""
    try:
        status, body = raw_exchange("127.0.0.1", port,
                                    b"GET /stats HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
    except OSError:
        return None
    if status != 200:
        return None
    for line in body.decode(errors="replace").splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


def json_lines(text):
    """The JSON objects of the lines of `text` that start with "{" (access log lines among others)."""
    return [json.loads(line) for line in (raw.strip() for raw in text.splitlines()) if line.startswith("{")]


def wait_json_lines(read, n, timeout=10.0):
    """json_lines(read()) once it holds at least `n` objects, or whatever it holds after `timeout` seconds
    (for the caller's assertion to show)."""
    def enough():
        lines = json_lines(read())
        return lines if len(lines) >= n else None
    try:
        return wait_until(enough, timeout, f"{n} JSON line(s)", interval=0.05)
    except AssertionError:
        return json_lines(read())


def clean_env():
    """The environment without proxy variables: nothing but loopback may ever be contacted."""
    env = dict(os.environ)
    for k in list(env):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del env[k]
    return env


class ProcessGroup:
    """Every process a test starts; kill_all() ends them (SIGKILL after a short SIGTERM grace)."""

    def __init__(self):
        self.procs = []

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 3
        for p in self.procs:
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


class Backend:
    """One sluice-testbackend process, listening on a free port."""

    def __init__(self, group, tmp_path, name, extra_args=()):
        self.name = name
        port_file = tmp_path / f"backend-{name}.port"
        port_file.unlink(missing_ok=True)
        self.log_path = tmp_path / f"backend-{name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = group.add(subprocess.Popen(
            [str(BACKEND), "--listen", "127.0.0.1:0", "--name", name, "--port-file", str(port_file),
             *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=clean_env()))
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"backend {name} exited: {self.log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"backend {name} did not write its port file")
            time.sleep(0.02)
        self.port = int(port_file.read_text().split()[0])
        self.address = f"127.0.0.1:{self.port}"
        self.probes = 0  # our own /conn probes, which the backend counts too

    def get(self, path):
        """A direct GET (not through the proxy) on a fresh connection: (status, body)."""
        return raw_exchange("127.0.0.1", self.port,
                            f"GET {path} HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n".encode())

    def connections_seen(self):
        """How many connections others (sluice) opened to this backend: /conn answers its own connection's
        accept order, which counts our earlier probes and itself too."""
        status, body = self.get("/conn")
        assert status == 200
        self.probes += 1
        return int(body) - self.probes


def make_config(port, endpoints, **overrides):
    """A one-listener, one-service config with every endpoint in the local cluster.

    Admin is off (its fixed port would clash between parallel runs); outlier detection is off so
    round robin stays predictable after failures. overrides replace top-level keys; `service` keys
    are merged into the service.
    """
    service = {
        "name": "app",
        "namespace": "default",
        "ports": [80],
        "clusters": [{"cluster": LOCAL_CLUSTER, "endpoints": list(endpoints)}],
        "outlier_detection": {"enabled": False},
        "slow_start_window": "0",
    }
    service.update(overrides.pop("service", {}))
    cfg = {
        "cluster": LOCAL_CLUSTER,
        "workers": 1,
        "log_level": "info",
        "admin": {"enabled": False},
        "access_log": {"enabled": False},
        "timeouts": {"request_header": "10s", "idle": "60s", "connect": "2s", "response": "15s",
                     "drain": "5s"},
        "listeners": [{"name": "http", "address": "127.0.0.1", "port": port, "role": "standalone"}],
        "services": [service],
        "routes": [{"hosts": ["*"], "path": "/", "service": "app.default"}],
    }
    cfg.update(overrides)
    return cfg


class Sluice:
    """The real sluice binary on a generated config; stdout and stderr go to files."""

    def __init__(self, group, tmp_path, cfg, args=(), name=None, preexec_fn=None):
        self.port = cfg["listeners"][0]["port"]
        name = name or f"sluice-{self.port}"  # several per test may share tmp_path
        self.config_path = tmp_path / f"{name}.json"
        self.config_path.write_text(json.dumps(cfg, indent=2))
        self.stdout_path = tmp_path / f"{name}.out"
        self.stderr_path = tmp_path / f"{name}.err"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = group.add(subprocess.Popen(
            [str(SLUICE), "--config", str(self.config_path), *args],
            stdout=self._out, stderr=self._err, env=clean_env(), preexec_fn=preexec_fn))
        deadline = time.monotonic() + START_TIMEOUT
        while not can_connect("127.0.0.1", self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"sluice did not listen on {self.port}: {self.stderr()}")
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def stdout(self):
        return self.stdout_path.read_text(errors="replace")

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def terminate(self, timeout=10):
        """SIGTERM and wait; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def start_sluice(group, tmp_path, make_cfg, args=(), attempts=3, preexec_fn=None):
    """Starts sluice on a fresh free port; make_cfg(port) builds the config. Retries when the port was
    taken in the meantime by a parallel test. preexec_fn: run in the child before sluice (e.g. setrlimit)."""
    last = None
    for _ in range(attempts):
        port = free_port()
        try:
            return Sluice(group, tmp_path, make_cfg(port), args, preexec_fn=preexec_fn)
        except RuntimeError as e:
            last = e
            if "bind" not in str(e) and "in use" not in str(e):
                raise
    raise last


# --- clients ---------------------------------------------------------------------------------------

def curl(*args, timeout=60, input_data=None, stdin=None):
    """Runs curl (never through a proxy); returns CompletedProcess with bytes stdout/stderr."""
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout), *args]
    return subprocess.run(cmd, input=input_data, stdin=stdin, capture_output=True, timeout=timeout + 10,
                          env=clean_env())


def curl_status(url, *args, timeout=30):
    """(status, body bytes) of one curl request."""
    r = curl("-o", "-", "-w", "\n%{http_code}", *args, url, timeout=timeout)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body


class HttpReader:
    """Reads HTTP/1.1 responses from a raw socket (enough of RFC 9112 for our checks)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.version = parts[0]  # the last status line's version ("HTTP/1.1")
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return status, headers

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_response(self, head_request=False):
        """(status, headers dict (last value wins), body). Skips 1xx responses."""
        while True:
            status, headers = self.read_head()
            if not (100 <= status < 200):
                break
        h = dict(headers)
        if head_request or status in (204, 304):
            return status, h, b""
        if "chunked" in h.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.read_line().split(b";")[0], 16)
                if size == 0:
                    while self.read_line():
                        pass
                    break
                body += self.read_exact(size)
                self.read_exact(2)
            return status, h, body
        if "content-length" in h:
            return status, h, self.read_exact(int(h["content-length"]))
        body = self.buf
        self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return status, h, body
            body += data

    def at_eof(self, wait=2.0):
        """True when the peer closes (or resets) within `wait` seconds without sending anything more."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def connect(port, host="127.0.0.1", timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def raw_exchange(host, port, request, timeout=10):
    """Sends raw bytes, reads one response: (status, body)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        status, _, body = HttpReader(s).read_response()
        return status, body


# --- fake upstreams --------------------------------------------------------------------------------

class RawServer:
    """A Python TCP server on a free port for upstream behaviour the C++ backend lacks.

    mode "reset": read a request head, then reset the connection (RST) without answering.
    mode "count": count connections and the bytes received; answer nothing, close on EOF.
    mode "short": answer a head with Content-Length: 100 and 10 body bytes, then close.
    mode "short_chunked": answer a chunked head and one 10-byte chunk, then close (no last chunk).
    mode "respond": answer each request head with the raw bytes `response`, then close; a list of byte
    strings is sent piece by piece, 0.1 s apart (so that they reach the peer in separate reads).
    mode "stall": accept and never read (the peer's writes block once the socket buffers are full).
    """

    def __init__(self, mode, response=b""):
        self.mode = mode
        self.response = response
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.connections = 0
        self.heads = []  # request heads received (mode reset)
        self.received = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        if self.mode == "stall":
            self._stop.wait()
            conn.close()
            return
        conn.settimeout(5)
        data = b""
        try:
            while not self._stop.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                with self._lock:
                    self.received += chunk
                if self.mode == "respond" and b"\r\n\r\n" in data:
                    with self._lock:
                        self.heads.append(data.split(b"\r\n\r\n")[0])
                    pieces = self.response if isinstance(self.response, list) else [self.response]
                    for i, piece in enumerate(pieces):
                        if i:
                            time.sleep(0.1)
                        conn.sendall(piece)
                    time.sleep(0.2)  # on purpose: the answer is read before the close, not raced by it
                    break
                if self.mode in ("short", "short_chunked") and b"\r\n\r\n" in data:
                    with self._lock:
                        self.heads.append(data.split(b"\r\n\r\n")[0])
                    if self.mode == "short":
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    else:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
                    time.sleep(0.2)  # on purpose: the part sent is relayed before the cut, not raced by it
                    break
                if self.mode == "reset" and b"\r\n\r\n" in data:
                    with self._lock:
                        self.heads.append(data.split(b"\r\n\r\n")[0])
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


class RssSampler:
    """Samples a process's VmRSS (KiB) every `interval` seconds in a thread."""

    def __init__(self, sluice, interval=0.05):
        self.sluice = sluice
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self.sluice.rss_kib())
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)

    @property
    def peak(self):
        return max(self.samples)


class BlackHole:
    """A loopback address:port whose connects hang (a listener with a full accept queue: Linux drops the
    SYNs), for upstream connect timeouts without leaving 127.0.0.0/8."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.fillers = []
        for _ in range(4):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        # The queue is full once one filler's handshake is done (a backlog of 0 holds one connection):
        # from then on the listener drops SYNs.
        wait_until(lambda: select.select([], self.fillers, [], 0)[1], 5, "a connection to fill the accept queue")

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()
