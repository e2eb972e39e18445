"""Processes of a chaos run: the backends (one process per endpoint, so one can die alone), the fault
listeners that stand in for a broken endpoint, and the bookkeeping that ends all of them.

Every child is started in a session of its own and remembered by the Supervisor; stop_all() ends each
one by its own process group id (nginx's workers, for instance, go with their master), so nothing is
left behind even when a run fails half way or is interrupted.
"""
import ctypes
import os
import pathlib
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
START_TIMEOUT = 10.0  # seconds for a process to start listening
STOP_GRACE = 3.0      # seconds between SIGTERM and SIGKILL at the end of a run


def find_build_dir():
    """$SLUICE_BUILD_DIR, else REPO/build."""
    env = os.environ.get("SLUICE_BUILD_DIR")
    return pathlib.Path(env).resolve() if env else REPO / "build"


def binaries(build_dir=None):
    """(sluice, backend) paths in the build dir; SLUICE_BIN / BACKEND_BIN override them. The default
    is `build` (not the integration tests' newest build* dir): CI passes SLUICE_BUILD_DIR anyway."""
    build_dir = pathlib.Path(build_dir) if build_dir else find_build_dir()
    sluice = os.environ.get("SLUICE_BIN") or str(build_dir / "cli" / "sluice")
    backend = os.environ.get("BACKEND_BIN") or str(build_dir / "tests" / "backend" / "sluice-testbackend")
    return sluice, backend


def clean_env():
    """The environment without proxy variables: only loopback is ever contacted."""
    return {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def raise_nofile():
    """c64 through a proxy, the proxy's upstream pools and the fault listeners need a few hundred
    descriptors; lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def can_connect(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Supervisor:
    """Every process a run starts."""

    def __init__(self, workdir):
        self.workdir = pathlib.Path(workdir)
        self.procs = []

    def start(self, name, argv, stdout=None):
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=stdout or log, stderr=log, stdin=subprocess.DEVNULL,
                                env=clean_env(), start_new_session=True)
        log.close()  # the child has its own copy
        self.procs.append(proc)
        return proc

    def log_tail(self, name, lines=20):
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @staticmethod
    def _signal_group(proc, sig):
        """Signals the process's group: the child leads its own session, so pgid == pid. Only while the
        leader is not reaped: a reaped pid (and so the group id) may belong to someone else by now."""
        if proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self, proc):
        """SIGKILL now (a crash, as far as peers can tell) and reap."""
        self._signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self):
        live = [p for p in self.procs if p.returncode is None]
        for proc in live:
            self._signal_group(proc, signal.SIGTERM)
            self._signal_group(proc, signal.SIGCONT)  # a frozen backend must run to see it
        deadline = time.monotonic() + STOP_GRACE
        for proc in live:
            # Wait without reaping, then SIGKILL the group: whatever the leader left behind in it (nginx's
            # workers) goes too, and the group id cannot have been reused meanwhile.
            while exited(proc) is None and time.monotonic() < deadline:
                time.sleep(0.01)
            self._signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = [p for p in self.procs if p.returncode is None]

    def leftovers(self):
        """Our processes not reaped after stop_all (should be none)."""
        return [p.pid for p in self.procs if p.returncode is None]


def exited(proc):
    """The exit status if the process has ended, else None, WITHOUT reaping it (Popen.poll() reaps): an
    unreaped child keeps its pid, so its process group can still be signalled safely."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return proc.poll()
    return None if info is None else (info.si_status if info.si_code == os.CLD_EXITED else -info.si_status)


class Backends:
    """One sluice-testbackend per endpoint; kill() and restart() keep the endpoint's address:port."""

    def __init__(self, supervisor, backend_bin, topo):
        self.sup = supervisor
        self.bin = backend_bin
        self.topo = topo
        self.procs = {}  # endpoint name -> Popen
        self.starts = {}  # endpoint name -> how many times started (names the port file)

    def start(self, endpoint):
        """Starts the endpoint's backend and waits until it listens; returns when that was (monotonic)."""
        n = self.starts.get(endpoint.name, 0) + 1
        self.starts[endpoint.name] = n
        port_file = self.sup.workdir / f"{endpoint.name}.port{n}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            proc = self.sup.start(endpoint.name, [self.bin, "--listen", endpoint.address, "--name", endpoint.name,
                                                  "--port-file", str(port_file)])
            while not port_file.exists() and exited(proc) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if port_file.exists():
                self.procs[endpoint.name] = proc
                return time.monotonic()
            self.sup.kill(proc)
            # A bind can fail for a moment right after the previous holder of the port went away.
            if time.monotonic() >= deadline:
                raise RuntimeError(f"backend {endpoint.name} did not listen on {endpoint.address}:\n"
                                   f"{self.sup.log_tail(endpoint.name)}")
            time.sleep(0.05)

    def start_all(self):
        for e in self.topo.endpoints():
            self.start(e)

    def kill(self, endpoint):
        proc = self.procs.pop(endpoint.name, None)
        if proc is not None:
            self.sup.kill(proc)

    def pid(self, endpoint):
        return self.procs[endpoint.name].pid

    def freeze(self, endpoint):
        """SIGSTOP: the process hangs with its sockets open (a hung server, not a dead one)."""
        os.kill(self.pid(endpoint), signal.SIGSTOP)

    def thaw(self, endpoint):
        os.kill(self.pid(endpoint), signal.SIGCONT)

    def describe(self):
        """Each endpoint's process: running, or how it ended (diagnosis of a failed start)."""
        out = []
        for e in self.topo.endpoints():
            proc = self.procs.get(e.name)
            status = None if proc is None else exited(proc)
            state = "not started" if proc is None else ("running" if status is None else f"exited {status}")
            listening = can_connect(e.host, e.port)
            out.append(f"{e.name}@{e.address} pid {proc.pid if proc else '-'} {state}, "
                       f"{'accepts' if listening else 'refuses'} connections")
        return "; ".join(out)


def bind_listener(host, port, backlog):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def take_listener(pid, host, port):
    """A duplicate of process `pid`'s socket listening on host:port (pidfd_getfd(2), Linux >= 5.6; the
    backend is our child, so no ptrace rights beyond ours are needed). Raises OSError when it cannot.

    With the backend stopped (SIGSTOP), whoever holds this duplicate decides what the listen queue does,
    and the port never closes: no connection is refused or reset while the fault is put in place."""
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = _LIBC.syscall(_SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"pidfd_getfd: {os.strerror(err)}")
            sock = socket.socket(fileno=fd)
            try:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and sock.getsockname() == (host, port):
                    return sock
            except OSError:
                pass
            sock.close()
    finally:
        os.close(pidfd)
    raise OSError(f"process {pid} has no socket listening on {host}:{port}")


_LIBC = ctypes.CDLL(None, use_errno=True)
_SYS_PIDFD_GETFD = 438  # the same number on every architecture (the syscall table is shared since 5.1)


class Blackhole:
    """A listener that accepts connections, reads and discards whatever comes, and never answers: the
    proxy's response timeout is the only way out.

    close() stops accepting (and closes our handle on the listening socket); the connections it accepted
    are closed `hold` seconds later (at once by default: the endpoint is restarted, its connections
    drop), or earlier when the proxy gives up on them.
    """

    def __init__(self, listener, hold=0.0):
        self.hold = hold
        self.listener = listener
        self.accepted = 0
        self._closing = threading.Event()
        self._listener_closed = threading.Event()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blackhole", daemon=True)
        self._thread.start()

    def _run(self):
        # One thread owns the selector and every socket, so close() only sets a flag.
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        release_at = None
        while True:
            if self._closing.is_set() and release_at is None:
                sel.unregister(self.listener)
                self.listener.close()
                self._listener_closed.set()
                release_at = time.monotonic() + self.hold
            if release_at is not None and (time.monotonic() >= release_at or not sel.get_map()
                                           or self._abort.is_set()):
                break
            for key, _ in sel.select(timeout=0.05):
                sock = key.fileobj
                if sock is self.listener:
                    try:
                        conn, _ = sock.accept()
                    except OSError:  # BlockingIOError too: a taken-over listener is non-blocking
                        continue
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    self.accepted += 1
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the proxy gave up (its timeout) or died
                    sel.unregister(sock)
                    sock.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def close(self):
        """Stops accepting; returns once our handle on the listener is closed (the held connections may
        take `hold` seconds more)."""
        self._closing.set()
        self._listener_closed.wait(5)

    def abort(self):
        """Closes everything now (end of the run)."""
        self._abort.set()
        self.close()
        self._thread.join(5)


class NoAccept:
    """A listener that never accepts, with a full accept queue: Linux drops further SYNs, so the proxy's
    connect hangs until its connect timeout (the port is open, nothing answers).

    listen(0) lets one connection wait in the queue; our own `fillers` connections take it. On a
    taken-over listener, close() gives the queue its normal length back (the backend's own
    listen(SOMAXCONN)) before letting go of it."""

    def __init__(self, listener, fillers=3):
        self.listener = listener
        host, port = listener.getsockname()
        listener.listen(0)
        self.fillers = []
        for _ in range(fillers):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect((host, port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        time.sleep(0.05)  # let the handshakes that can complete complete

    def close(self):
        if self.listener.fileno() >= 0:
            try:
                self.listener.listen(socket.SOMAXCONN)
            except OSError:
                pass
            self.listener.close()
        for c in self.fillers:
            c.close()

    def abort(self):
        self.close()
