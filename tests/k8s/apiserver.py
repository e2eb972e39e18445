#!/usr/bin/python3
"""A Kubernetes API server stand-in for tests (Python 3 standard library only).

    python3 tests/k8s/apiserver.py --listen 127.0.0.1:PORT --write-kubeconfig FILE
        [--control 127.0.0.1:PORT] [--auth cert|token|both] [--token T | --token-file F]

Serves TLS HTTP/1.1 (keep-alive, chunked watches) with the discovery documents, the
resources and the list/watch contract sluice and kubectl use (see resources.py, store.py,
api_handler.py). A plain-HTTP control port injects faults at runtime (POST /faults) and
reports counters (GET /state). Port 0 picks a free port; the ready lines say which:

    control ready on http://127.0.0.1:CPORT
    apiserver ready on https://127.0.0.1:PORT
"""

import argparse
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certs  # noqa: E402
import resources  # noqa: E402
from api_handler import ApiHandler  # noqa: E402
from meta import ApiError  # noqa: E402
from store import DEFAULT_HISTORY, Store, Watcher  # noqa: E402

HANDSHAKE_TIMEOUT_S = 10
DEFAULT_BOOKMARK_INTERVAL_S = 1.0


class Faults:
    """Runtime-switchable misbehaviour. Every take_* consumes what it reports."""

    def __init__(self, bookmark_interval):
        self.lock = threading.Lock()
        self.status_code = 0
        self.status_count = 0
        self.status_match = ""
        self.delay_s = 0.0
        self.watch_410_count = 0
        self.bookmark_interval_s = bookmark_interval

    def take_status(self, path):
        with self.lock:
            if self.status_count > 0 and self.status_match in path:
                self.status_count -= 1
                return self.status_code
            return 0

    def take_delay(self):
        with self.lock:
            return self.delay_s

    def take_watch_410(self):
        with self.lock:
            if self.watch_410_count > 0:
                self.watch_410_count -= 1
                return True
            return False

    def bookmark_interval(self):
        with self.lock:
            return self.bookmark_interval_s

    def snapshot(self):
        with self.lock:
            return {"status": self.status_code, "status_remaining": self.status_count,
                    "status_match": self.status_match, "delay_ms": int(self.delay_s * 1000),
                    "watch_410_remaining": self.watch_410_count,
                    "bookmark_interval": self.bookmark_interval_s}


class TlsServer(ThreadingHTTPServer):
    """TLS is negotiated in the connection's own thread, so a slow handshake never blocks
    accept(); every connection is tracked so faults can cut them."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, standin):
        self.standin = standin
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ApiHandler)

    def finish_request(self, request, client_address):
        standin = self.standin
        standin.count("connections_accepted")
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = standin.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            standin.count("tls_handshake_failures")
            request.close()
            return
        conn.settimeout(None)
        standin.track(conn, True)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            standin.track(conn, False)
            try:
                conn.close()
            except OSError:
                pass

    def shutdown_request(self, request):
        # The raw socket was detached into the TLS socket, which finish_request closed.
        try:
            request.close()
        except OSError:
            pass


class ApiServer:
    def __init__(self, args):
        self.verbose = args.verbose
        self.auth = args.auth
        self.token = args.token
        self.token_file = args.token_file
        if self.auth in ("token", "both") and not self.token and not self.token_file:
            self.token = secrets.token_hex(16)
        self.store = Store(history=args.history)
        self.faults = Faults(args.bookmark_interval)
        self.stats_lock = threading.Lock()
        self.stats = {}
        self.connections = set()
        self.watch_handlers = set()
        self.refusing = False
        self.hidden_groups = frozenset(args.hide_group or ())
        host, port = args.listen.rsplit(":", 1)
        self.host = host.strip("[]")
        self.port = int(port)
        certs_dir = args.certs_dir or tempfile.mkdtemp(prefix="sluice-apiserver-")
        self.pki = certs.ensure_pki(certs_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki["server.crt"], self.pki["server.key"])
        ctx.load_verify_locations(self.pki["ca.crt"])
        # A presented client certificate must chain to our CA; none at all is allowed at the
        # TLS level so that the HTTP layer can answer 401 as the real server does.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        self.tls_context = ctx
        self.server = None
        self.server_thread = None
        self.server_lock = threading.Lock()

    # ---- bookkeeping ----------------------------------------------------------------------

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def count(self, what, n=1):
        with self.stats_lock:
            self.stats[what] = self.stats.get(what, 0) + n

    def track(self, conn, add):
        with self.stats_lock:
            (self.connections.add if add else self.connections.discard)(conn)

    def watch_started(self, handler):
        with self.stats_lock:
            self.watch_handlers.add(handler)

    def watch_ended(self, handler):
        with self.stats_lock:
            self.watch_handlers.discard(handler)

    def current_token(self):
        if self.token_file:
            try:
                with open(self.token_file) as f:
                    return f.read().strip()
            except OSError:
                return None
        return self.token

    @staticmethod
    def abort(conn):
        """Cut a connection without a TLS close_notify or a final chunk, like a crashed peer."""
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def abort_all_connections(self):
        with self.stats_lock:
            conns = list(self.connections)
        for conn in conns:
            self.abort(conn)
        return len(conns)

    def state(self):
        with self.stats_lock:
            stats = dict(self.stats)
            open_conns = len(self.connections)
            watches = len(self.watch_handlers)
            by_resource = {}
            for h in self.watch_handlers:
                by_resource[h.watch_resource] = by_resource.get(h.watch_resource, 0) + 1
        return {
            "url": self.url,
            "refusing": self.refusing,
            "requests": stats.get("requests", 0),
            "watches_opened": stats.get("watches_opened", 0),
            "watches_open": watches,
            "watches_open_by_resource": by_resource,
            "hidden_groups": sorted(self.hidden_groups),
            "connections_open": open_conns,
            "counters": stats,
            "faults": self.faults.snapshot(),
            "store": self.store.counts(),
        }

    # ---- serving --------------------------------------------------------------------------

    def start(self):
        with self.server_lock:
            self.server = TlsServer((self.host, self.port), self)
            self.port = self.server.server_address[1]
            self.server_thread = threading.Thread(target=self.server.serve_forever,
                                                  kwargs={"poll_interval": 0.1}, daemon=True)
            self.server_thread.start()
            self.refusing = False

    def stop_listening(self):
        """Close the listening socket (new connections are refused) and cut every open one."""
        with self.server_lock:
            if self.server is None:
                return
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            self.refusing = True
        self.store.signal_watchers(Watcher.DROP)
        self.abort_all_connections()

    def apply_faults(self, spec):
        """Apply one POST /faults document; returns what was done."""
        done = {}
        f = self.faults
        with f.lock:
            if "status" in spec:
                f.status_code = int(spec["status"])
                f.status_count = int(spec.get("count", 1)) if f.status_code else 0
                f.status_match = str(spec.get("match", ""))
            if "delay_ms" in spec:
                f.delay_s = max(0, int(spec["delay_ms"])) / 1000.0
            if "watch_410" in spec:
                v = spec["watch_410"]
                f.watch_410_count = (1 if v else 0) if isinstance(v, bool) else int(v)
            if "bookmark_interval" in spec:
                f.bookmark_interval_s = float(spec["bookmark_interval"])
        if "hide_groups" in spec:
            before = self.hidden_groups
            self.hidden_groups = frozenset(spec["hide_groups"] or ())
            # Removing a CRD ends the watches on it.
            done["watches_ended"] = sum(self.store.signal_watchers(Watcher.END, g)
                                        for g in self.hidden_groups - before)
        if spec.get("compact"):
            self.store.compact()
            done["compacted_at"] = self.store.rv
        if spec.get("drop_watches"):
            done["watches_dropped"] = self.store.signal_watchers(Watcher.DROP)
        if spec.get("end_watches"):
            done["watches_ended"] = self.store.signal_watchers(Watcher.END)
        if spec.get("close_connections"):
            self.store.signal_watchers(Watcher.DROP)
            done["connections_closed"] = self.abort_all_connections()
        if "refuse" in spec:
            if spec["refuse"] and not self.refusing:
                self.stop_listening()
            elif not spec["refuse"] and self.refusing:
                self.start()
            done["refusing"] = self.refusing
        return done

    def load(self, items):
        """Create or replace objects directly (bulk set-up for tests and benchmarks)."""
        count = 0
        for obj in items:
            api_version = obj.get("apiVersion", "")
            group, _, version = api_version.rpartition("/")
            kind = obj.get("kind")
            res = next((r for r in resources.RESOURCES
                        if r.group == group and r.version == version and r.kind == kind), None)
            if res is None:
                raise ApiError(400, f"unknown kind {api_version} {kind}")
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace", "default") if res.namespaced else None
            obj = dict(obj, metadata={k: v for k, v in meta.items() if k != "resourceVersion"})
            try:
                self.store.create(res, ns, obj)
            except ApiError as err:
                if err.code != 409:
                    raise
                self.store.replace(res, ns, meta["name"], obj)
            count += 1
        return count


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.standin.verbose:
            sys.stderr.write("control: %s\n" % (fmt % args))

    def _reply(self, code, obj):
        data = json.dumps(obj, indent=1).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/state", "/"):
            return self._reply(200, self.server.standin.state())
        if self.path == "/healthz":
            return self._reply(200, {"status": "ok"})
        self._reply(404, {"error": f"no such control path {self.path}"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            return self._reply(400, {"error": f"bad JSON: {exc}"})
        standin = self.server.standin
        try:
            if self.path == "/faults":
                done = standin.apply_faults(body)
                return self._reply(200, {"done": done, "state": standin.state()})
            if self.path == "/reset":
                standin.apply_faults({"status": 0, "delay_ms": 0, "watch_410": 0,
                                      "refuse": False, "hide_groups": []})
                return self._reply(200, standin.state())
            if self.path == "/objects":
                n = standin.load(body.get("items", []))
                return self._reply(200, {"loaded": n, "resourceVersion": str(standin.store.rv)})
        except ApiError as err:
            return self._reply(err.code, err.status())
        except (ValueError, TypeError, KeyError) as exc:
            return self._reply(400, {"error": str(exc)})
        self._reply(404, {"error": f"no such control path {self.path}"})


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, standin):
        self.standin = standin
        super().__init__(address, ControlHandler)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT of the TLS API (port 0: any)")
    p.add_argument("--control", default=None, help="HOST:PORT of the plain-HTTP control endpoint")
    p.add_argument("--write-kubeconfig", default=None, help="write a kubeconfig for this server here")
    p.add_argument("--kubeconfig-style", choices=("data", "files"), default="data",
                   help="embed certificates (*-data) or reference the PEM files by path")
    p.add_argument("--kubeconfig-token-file", action="store_true",
                   help="write `tokenFile: <--token-file>` instead of the token itself")
    p.add_argument("--auth", choices=("cert", "token", "both"), default="both",
                   help="accepted credentials; the kubeconfig carries the same ones")
    p.add_argument("--token", default=None, help="the accepted bearer token (default: random)")
    p.add_argument("--token-file", default=None, help="re-read the accepted token from this file "
                   "on every request (token rotation tests)")
    p.add_argument("--certs-dir", default=None, help="keep the PKI here (reused when present)")
    p.add_argument("--history", type=int, default=DEFAULT_HISTORY,
                   help="events kept for watch resumption; older resourceVersions get 410")
    p.add_argument("--bookmark-interval", type=float, default=DEFAULT_BOOKMARK_INTERVAL_S,
                   help="seconds between BOOKMARK events on watches that allow them (0: never)")
    p.add_argument("--hide-group", action="append", metavar="GROUP",
                   help="serve GROUP as if its CRDs were not installed (404); repeatable; "
                   "changeable at runtime with {\"hide_groups\": [...]}")
    p.add_argument("--serviceaccount-dir", default=None, metavar="DIR",
                   help="write DIR/{token,ca.crt,namespace} like /var/run/secrets/kubernetes.io/"
                   "serviceaccount; DIR/token becomes the --token-file unless one is given")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p.parse_args(argv)


def write_serviceaccount(directory, args, ca_path):
    """Lay out an in-cluster service-account directory; returns the token file path."""
    os.makedirs(directory, exist_ok=True)
    token_path = os.path.join(directory, "token")
    if not os.path.exists(token_path):
        with open(token_path, "w") as f:
            f.write(args.token or secrets.token_hex(16))
    with open(ca_path, "rb") as src, open(os.path.join(directory, "ca.crt"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(directory, "namespace"), "w") as f:
        f.write("default")
    return token_path


def main(argv=None):
    args = parse_args(argv)
    if args.serviceaccount_dir and not args.token_file:
        # The token must exist before the server reads it; the CA is copied after the PKI exists.
        os.makedirs(args.serviceaccount_dir, exist_ok=True)
        args.token_file = os.path.join(args.serviceaccount_dir, "token")
        if not os.path.exists(args.token_file):
            with open(args.token_file, "w") as f:
                f.write(args.token or secrets.token_hex(16))
    standin = ApiServer(args)
    if args.serviceaccount_dir:
        write_serviceaccount(args.serviceaccount_dir, args, standin.pki["ca.crt"])
    standin.start()
    control = None
    if args.control:
        chost, cport = args.control.rsplit(":", 1)
        control = ControlServer((chost.strip("[]"), int(cport)), standin)
        threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    if args.write_kubeconfig:
        token = None
        if args.auth in ("token", "both"):
            token = standin.current_token()
        certs.write_kubeconfig(args.write_kubeconfig, standin.url, standin.pki, args.auth, token,
                               style=args.kubeconfig_style,
                               token_file=args.token_file if args.kubeconfig_token_file else None)
    if control:
        print(f"control ready on http://{control.server_address[0]}:{control.server_address[1]}",
              flush=True)
    print(f"apiserver ready on {standin.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    standin.stop_listening()
    return 0


if __name__ == "__main__":
    sys.exit(main())
