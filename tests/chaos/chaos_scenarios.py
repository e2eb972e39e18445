"""The faults, one per scenario. Each runs on the driver's thread for its fault window and records what it
did as events, times from time.monotonic() (the load's clock too):

    ("fault-start", t, [])          the window over which the fault's p99 is taken opens
    ("down", t, [endpoint names])   these endpoints stopped serving (killed, 503, black hole, ...)
    ("up", t, [endpoint names])     they serve again: failback is measured from here
    ("fault-end", t, [])

The faulted unit is always in cluster-1: the heaviest ActiveActive target and FailOver's first tier, so
the fault hits the traffic rather than an idle backup.
"""
import time

from chaos_procs import Blackhole, NoAccept, bind_listener, take_listener
from chaos_proxies import http_get

SCENARIOS = ("flap", "503", "blackhole", "noaccept", "lastone")
# Default fault windows, seconds: two flap cycles; past the 15 s response timeout for the black hole.
DEFAULT_WINDOW = {"flap": 6.0, "503": 4.0, "blackhole": 16.0, "noaccept": 4.0, "lastone": 4.0}


class Fault:
    """What a scenario needs: the topology, the backends to kill and restart, the event log, and the
    fault listeners to abort if the run ends early."""

    def __init__(self, topo, backends):
        self.topo = topo
        self.backends = backends
        self.events = []
        self.listeners = []
        self.how = None  # blackhole/noaccept: "freeze" (listener taken over) or "kill" (fallback)

    def mark(self, kind, endpoints=()):
        t = time.monotonic()
        self.events.append((kind, t, [e.name for e in endpoints]))
        return t

    def victim(self):
        return self.topo.clusters[0].endpoints[0]

    def abort(self):
        for listener in self.listeners:
            listener.abort()

    @staticmethod
    def sleep_until(t):
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def flap(f, window, down=1.5, up=1.5):
    """All of cluster-1's endpoints die together (SIGKILL: the port closes, open connections drop) and come
    back on the same ports: down `down` s, up `up` s, as many whole cycles as fit the window (at least
    one), so the cluster is up, for `up` s already, when the window ends."""
    cluster = f.topo.clusters[0].endpoints
    cycles = max(1, round(window / (down + up)))
    f.mark("fault-start")
    for _ in range(cycles):
        for e in cluster:
            f.backends.kill(e)
        t_down = f.mark("down", cluster)
        f.sleep_until(t_down + down)
        for e in cluster:
            f.backends.start(e)
        t_up = f.mark("up", cluster)
        f.sleep_until(t_up + up)
    f.mark("fault-end")


def status_503(f, window):
    """One endpoint answers every request with 503 for the window (set on the backend itself)."""
    e = f.victim()
    if http_get(e.port, "/admin/status/503", host=e.host)[0] != 200:
        raise RuntimeError(f"{e.name} refused /admin/status/503")
    f.mark("fault-start")
    f.mark("down", [e])
    time.sleep(window)
    if http_get(e.port, "/admin/status/0", host=e.host)[0] != 200:
        raise RuntimeError(f"{e.name} refused /admin/status/0")
    f.mark("up", [e])
    f.mark("fault-end")


def replaced(f, window, make_fault):
    """One endpoint is taken over by a fault listener for the window.

    The backend is frozen (SIGSTOP) and the listener takes over its listening socket (a duplicate of
    it): the port never closes and no connection is reset, so the proxy meets only the fault itself.
    Killing the backend instead would reset its in-flight requests at once, and a proxy ejecting the
    endpoint after those few failures would never try the fault at all. Requests the proxy already
    sent on its pooled connections to the frozen backend hang too (a hung server) and are answered
    when it resumes (SIGCONT) at the end of the window.

    Without pidfd_getfd (old kernel) the backend is killed and the listener binds the port afresh;
    the report's events say which was done."""
    e = f.victim()
    f.mark("fault-start")
    pid = f.backends.pid(e)
    f.backends.freeze(e)
    try:
        listener, how = take_listener(pid, e.host, e.port), "freeze"
    except OSError:
        f.backends.thaw(e)
        f.backends.kill(e)
        listener, how = bind_listener(e.host, e.port, 512), "kill"
    fault = make_fault(listener)
    f.listeners.append(fault)
    f.mark("down", [e])
    f.how = how
    time.sleep(window)
    fault.close()
    if how == "freeze":
        f.backends.thaw(e)
    else:
        f.backends.start(e)
    f.mark("up", [e])
    f.mark("fault-end")


def blackhole(f, window):
    """Response timeout case: the endpoint accepts and reads, never answers. Only a window longer than the
    proxy's response timeout (15 s) makes requests wait it out: those on pooled connections to the frozen
    backend are answered when it resumes, those on connections the black hole accepted are dropped then
    (as a restarted server drops them). Hence the scenario's 16 s default window."""
    replaced(f, window, Blackhole)


def noaccept(f, window):
    """Connect timeout case: the endpoint's port is open but its accept queue is full, SYNs are dropped."""
    replaced(f, window, NoAccept)


def lastone(f, window):
    """Every cluster but the last one dies and stays dead for the rest of the run."""
    f.mark("fault-start")
    dead = [e for c in f.topo.clusters[:-1] for e in c.endpoints]
    for e in dead:
        f.backends.kill(e)
    f.mark("down", dead)
    time.sleep(window)
    f.mark("fault-end")


def run(name, fault, window, flap_down=1.5, flap_up=1.5):
    if name == "flap":
        flap(fault, window, flap_down, flap_up)
    elif name == "503":
        status_503(fault, window)
    elif name == "blackhole":
        blackhole(fault, window)
    elif name == "noaccept":
        noaccept(fault, window)
    elif name == "lastone":
        lastone(fault, window)
    else:
        raise ValueError(f"unknown scenario {name!r} (have {', '.join(SCENARIOS)})")
