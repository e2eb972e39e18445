"""Run tests/discovery/discovery_probe and read the Models it publishes (one JSON line each)."""

import glob
import json
import os
import subprocess
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def probe_binary():
    """$DISCOVERY_PROBE, else the newest build*/tests/discovery/discovery_probe of the checkout."""
    if os.environ.get("DISCOVERY_PROBE"):
        return os.environ["DISCOVERY_PROBE"]
    found = glob.glob(os.path.join(REPO, "build*", "tests", "discovery", "discovery_probe"))
    if not found:
        raise AssertionError("discovery_probe not built: ninja -C build-discovery tests/discovery/discovery_probe")
    return max(found, key=os.path.getmtime)


class Probe:
    def __init__(self, *args, env=None):
        self.lines = []
        self.stderr = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([probe_binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, env=env)
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, stream, is_stdout):
        for line in stream:
            with self.cond:
                if is_stdout:
                    self.lines.append(json.loads(line))
                else:
                    self.stderr.append(line.rstrip("\n"))
                self.cond.notify_all()

    def models(self):
        with self.cond:
            return [l for l in self.lines if l["kind"] == "model"]

    def mark(self):
        """Position after everything received so far (for wait_model(after=...))."""
        with self.cond:
            return len(self.lines)

    def wait_model(self, predicate, timeout=10, after=0, what="model"):
        """The first model line at index >= after satisfying predicate; fails after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[after:]:
                    if line["kind"] == "model" and predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.stderr[-20:])
                    last = self.lines[-1] if self.lines else None
                    raise AssertionError(f"no {what} within {timeout}s; last line: {json.dumps(last)[:3000]}\n"
                                         f"stderr:\n{tail}")
                self.cond.wait(min(left, 0.2))

    def wait_stderr(self, predicate, timeout=10, what="log line"):
        """The first stderr line satisfying predicate. stdout and stderr are read by separate threads, so a
        model line can arrive before the log line written just ahead of it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.stderr:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; stderr:\n" + "\n".join(self.stderr[-20:]))
                self.cond.wait(min(left, 0.2))

    def wait_status(self, predicate, timeout=10, what="status"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.lines and predicate(self.lines[-1]["status"]):
                    return self.lines[-1]["status"]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; last: {json.dumps(self.lines[-1:])[:3000]}")
                self.cond.wait(min(left, 0.2))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(5)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def service(model, sid):
    for s in model["services"]:
        if s["id"] == sid:
            return s
    return None


def endpoints(model, sid, cluster=None):
    """Sorted (cluster, address, port, path_prefix) of a service, optionally one cluster only."""
    s = service(model, sid)
    if not s:
        return None
    return sorted((c["cluster"], e["address"], e["port"], c["path_prefix"])
                  for c in s["clusters"] for e in c["endpoints"] if cluster is None or c["cluster"] == cluster)
