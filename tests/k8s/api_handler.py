"""The HTTP/1.1 request handler of the stand-in: authentication, fault injection, routing
of discovery / OpenAPI / resource URLs, and the chunked watch stream."""

import json
import queue
import select
import socket
import ssl
import sys
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler

import resources
from meta import ApiError, parse_field_selector, parse_label_selector, status_object
from patches import json_patch, merge_patch, strategic_merge_patch
from store import Watcher

DEFAULT_WATCH_TIMEOUT_S = 1800      # kube-apiserver's --min-request-timeout
IDLE_TIMEOUT_S = 300                # an idle keep-alive connection is closed after this
MAX_BODY_BYTES = 16 * 1024 * 1024
DISCONNECT_POLL_S = 0.5             # how often an idle watch checks that its client is still there


def _truthy(value):
    return value in ("1", "true", "True")


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-apiserver-standin"
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True

    # self.server.standin is the ApiServer (apiserver.py) that owns store, faults and stats.

    def log_message(self, fmt, *args):
        if self.server.standin.verbose:
            agent = self.headers.get("User-Agent", "-") if getattr(self, "headers", None) else "-"
            sys.stderr.write("apiserver: %s %s agent=%s\n" % (self.address_string(), fmt % args, agent))

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ---- plumbing ---------------------------------------------------------------------------

    def _read_body(self):
        """Read the whole request body (Content-Length or chunked) so that keep-alive stays in
        sync, even for requests that are then refused."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY_BYTES:
                    raise ApiError(413, "request entity too large", "RequestEntityTooLarge")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(413, "request entity too large", "RequestEntityTooLarge")
        return self.rfile.read(length) if length else b""

    def _send_json(self, code, obj, extra_headers=()):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_status(self, err):
        self._send_json(err.code, err.status())

    def _authenticated(self):
        standin = self.server.standin
        if standin.auth in ("cert", "both"):
            try:
                if self.connection.getpeercert():
                    return True
            except (ValueError, AttributeError):
                pass
        if standin.auth in ("token", "both"):
            header = self.headers.get("Authorization", "")
            token = standin.current_token()
            if token and header == f"Bearer {token}":
                return True
        return False

    def _dispatch(self, method):
        standin = self.server.standin
        self.body = b""
        try:
            self.body = self._read_body()
        except ApiError as err:
            return self._send_status(err)
        except (ValueError, OSError):
            self.close_connection = True
            return
        standin.count("requests")
        if not self._authenticated():
            standin.count("unauthorized")
            return self._send_status(ApiError(401, "Unauthorized", "Unauthorized"))
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        delay = standin.faults.take_delay()
        if delay:
            time.sleep(delay)
        forced = standin.faults.take_status(self.path)
        if forced:
            standin.count("injected_errors")
            return self._send_json(forced, status_object(
                forced, "InternalError" if forced == 500 else "ServiceUnavailable",
                f"injected fault: HTTP {forced}"))
        try:
            self._route(method, [urllib.parse.unquote(p) for p in url.path.split("/") if p])
        except ApiError as err:
            self._send_status(err)
        except (BrokenPipeError, ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # answered as the real server does, and logged for the test log
            traceback.print_exc()
            self._send_json(500, status_object(500, "InternalError", f"stand-in bug: {exc}"))

    # ---- routing ----------------------------------------------------------------------------

    def _route(self, method, parts):
        standin = self.server.standin
        group = parts[1] if parts[:1] == ["apis"] and len(parts) > 1 else \
            parts[3] if parts[:3] == ["openapi", "v3", "apis"] and len(parts) > 3 else None
        if group in standin.hidden_groups:
            # As if the group's CRDs were not installed (fault injection: hide_groups).
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if method == "GET":
            doc = self._discovery(parts, standin)
            if doc is not None:
                return self._send_json(200, doc)
        if parts[:1] == ["api"] and len(parts) >= 3 and parts[1] == "v1":
            return self._resource(method, "", "v1", parts[2:])
        if parts[:1] == ["apis"] and len(parts) >= 4:
            return self._resource(method, parts[1], parts[2], parts[3:])
        raise ApiError(404, "the server could not find the requested resource", "NotFound")

    def _discovery(self, parts, standin):
        """Discovery and OpenAPI documents, or None when `parts` is not one of them."""
        hidden = standin.hidden_groups
        if parts == ["version"]:
            return resources.KUBE_VERSION
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return {"status": "ok"}
        if parts == ["api"]:
            return resources.api_versions(standin.address)
        if parts == ["apis"]:
            return resources.api_group_list(hidden)
        if parts == ["api", "v1"]:
            return resources.api_resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            group = resources.api_group(parts[1], hidden)
            if group is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return group
        if len(parts) == 3 and parts[0] == "apis":
            doc = resources.api_resource_list(parts[1], parts[2])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return doc
        if parts == ["openapi", "v3"]:
            return resources.openapi_v3_index(hidden)
        if parts[:2] == ["openapi", "v3"]:
            rest = parts[2:]
            doc = None
            if rest == ["api", "v1"]:
                doc = resources.openapi_v3_document("", "v1")
            elif len(rest) == 3 and rest[0] == "apis":
                doc = resources.openapi_v3_document(rest[1], rest[2])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            return doc
        return None

    def _resource(self, method, group, version, rest):
        """rest: [plural] | [plural, name] | [namespaces, ns, plural] | [namespaces, ns, plural, name],
        each optionally followed by the `status` subresource (GET, PUT, PATCH; see Store.replace)."""
        ns = None
        res = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = resources.find(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                res, ns, rest = candidate, rest[1], rest[3:]
        if res is None:
            res = resources.find(group, version, rest[0])
            if res is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            rest = rest[1:]
        if len(rest) > 2 or (len(rest) == 2 and rest[1] != "status"):
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        name = rest[0] if rest else None
        subresource = rest[1] if len(rest) == 2 else None
        if subresource and not res.status_subresource:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if subresource and method not in ("GET", "PUT", "PATCH"):
            raise ApiError(405, f"the server does not allow this method on {res.qualified}/status",
                           "MethodNotAllowed")
        if name is not None and res.namespaced and ns is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if "dryRun" in self.query:
            raise ApiError(400, "dryRun is not supported by this stand-in")
        store = self.server.standin.store
        if name is None:
            if method == "GET":
                if _truthy(self.query.get("watch", "")):
                    return self._watch(res, ns)
                return self._list(res, ns)
            if method == "POST":
                if res.namespaced and ns is None:
                    raise ApiError(405, f"a {res.kind} must be created inside a namespace",
                                   "MethodNotAllowed")
                self.server.standin.count("create")
                return self._send_json(201, store.create(res, ns, self._json_body()))
            if method == "DELETE":
                self.server.standin.count("delete")
                gone = store.delete_collection(res, ns, *self._selectors())
                return self._send_json(200, self._list_doc(res, gone, store.rv, None, None))
            raise ApiError(405, f"the server does not allow this method on {res.qualified}",
                           "MethodNotAllowed")
        if method == "GET":
            if _truthy(self.query.get("watch", "")):
                # The deprecated single-object watch form: a field selector on the name.
                return self._watch(res, ns, name)
            self.server.standin.count("get")
            return self._send_json(200, store.get(res, ns, name))
        if method == "PUT":
            self.server.standin.count("update")
            return self._send_json(200, store.replace(res, ns, name, self._json_body(), subresource))
        if method == "PATCH":
            self.server.standin.count("patch")
            return self._patch(res, ns, name, subresource)
        if method == "DELETE":
            self.server.standin.count("delete")
            options = self._json_body() if self.body.strip() else {}
            return self._send_json(200, store.delete(res, ns, name, options.get("preconditions")))
        raise ApiError(405, f"the server does not allow this method on {res.qualified}",
                       "MethodNotAllowed")

    def _json_body(self):
        ctype = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if "protobuf" in ctype or "cbor" in ctype:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media "
                           f"types include: application/json, application/yaml (got {ctype})",
                           "UnsupportedMediaType")
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            try:
                import yaml  # python3-yaml; only for bodies that are YAML rather than JSON
                return yaml.safe_load(self.body)
            except Exception as exc:
                raise ApiError(400, f"the request body is not valid JSON or YAML: {exc}") from exc

    def _selectors(self):
        return (parse_label_selector(self.query.get("labelSelector", "")),
                parse_field_selector(self.query.get("fieldSelector", "")))

    # ---- list / patch -----------------------------------------------------------------------

    @staticmethod
    def _list_doc(res, items, rv, token, remaining):
        meta = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining:
            meta["remainingItemCount"] = remaining
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta,
                "items": items}

    def _list(self, res, ns):
        self.server.standin.count("list")
        try:
            limit = int(self.query.get("limit") or 0)
        except ValueError as exc:
            raise ApiError(400, f"invalid limit: {self.query.get('limit')!r}") from exc
        items, rv, token, remaining = self.server.standin.store.list(
            res, ns, *self._selectors(), limit=max(limit, 0),
            continue_token=self.query.get("continue") or None)
        # kubectl asks for the Table form; a plain list is accepted and printed as NAME / AGE.
        self._send_json(200, self._list_doc(res, items, rv, token, remaining))

    def _patch(self, res, ns, name, subresource=None):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        body = self._json_body()
        store = self.server.standin.store
        if ctype == "application/json-patch+json":
            fn = lambda cur: json_patch(cur, body)
        elif ctype == "application/merge-patch+json":
            fn = lambda cur: merge_patch(cur, body)
        elif ctype == "application/strategic-merge-patch+json":
            if res.group not in ("", "discovery.k8s.io"):
                raise ApiError(415, "strategic merge patch format is not supported for custom "
                               "resources", "UnsupportedMediaType")
            fn = lambda cur: strategic_merge_patch(cur, body)
        elif ctype == "application/apply-patch+yaml":
            # Server-side apply without field ownership: create, or merge the applied fields.
            if not self.query.get("fieldManager"):
                raise ApiError(400, "PATCH requests of type application/apply-patch+yaml "
                               "must have a fieldManager")
            fn = lambda cur: merge_patch(cur, body) if cur is not None else body
            obj, created = store.patch(res, ns, name, fn, create_if_missing=subresource is None,
                                       subresource=subresource)
            return self._send_json(201 if created else 200, obj)
        else:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media "
                           f"types include: application/json-patch+json, application/merge-patch+json,"
                           f" application/apply-patch+yaml (got {ctype})", "UnsupportedMediaType")
        obj, _ = store.patch(res, ns, name, fn, subresource=subresource)
        self._send_json(200, obj)

    # ---- watch ------------------------------------------------------------------------------

    def _write_chunks(self, lines):
        data = b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines)
        self.wfile.write(data)

    @staticmethod
    def _event(kind, obj):
        return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _watch(self, res, ns, name=None):
        standin = self.server.standin
        standin.count("watch")
        if standin.faults.take_watch_410():
            standin.count("injected_errors")
            raise ApiError(410, "injected fault: the requested resourceVersion is gone", "Expired")
        try:
            timeout = float(self.query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S)
        except ValueError as exc:
            raise ApiError(400, "invalid timeoutSeconds") from exc
        bookmarks = _truthy(self.query.get("allowWatchBookmarks", ""))
        initial_end = _truthy(self.query.get("sendInitialEvents", ""))
        labels, fields = self._selectors()
        if name is not None:
            fields.append(("metadata.name", "=", name))
        rv = None if initial_end else self.query.get("resourceVersion")
        try:
            w = standin.store.watch(res, ns, labels, fields, rv)
        except ApiError as err:
            if err.code != 410:
                raise
            # The real server accepts the watch, then ends it with an ERROR event.
            self._start_stream()
            self._write_chunks([self._event("ERROR", err.status()), b""])
            return
        pending_initial = w.queue.qsize() if initial_end else -1
        standin.count("watches_opened")
        standin.count(f"watches_opened:{res.qualified}")
        self.watch_resource = res.qualified
        standin.watch_started(self)
        try:
            self._start_stream()
            self._pump(res, w, timeout, bookmarks, pending_initial)
        except (BrokenPipeError, ConnectionError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            standin.store.unwatch(w)
            standin.watch_ended(self)

    def _bookmark(self, res, rv, initial_end=False):
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return self._event("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                        "metadata": meta})

    def _client_gone(self):
        """True when the client closed its end of an idle watch. Clients send nothing while a
        watch runs, so a readable socket means EOF (or bytes we cannot stay in sync with)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        self.connection.settimeout(0.05)
        try:
            data = self.connection.recv(1)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except OSError:
            return True
        finally:
            self.connection.settimeout(self.timeout)
        if data:
            self.close_connection = True
        return not data

    def _pump(self, res, w, timeout, bookmarks, pending_initial):
        standin = self.server.standin
        start = time.monotonic()
        deadline = start + timeout
        next_bookmark = start + standin.faults.bookmark_interval()
        while True:
            if pending_initial == 0:
                self._write_chunks([self._bookmark(res, w.start_rv, True)])
                pending_initial = -1
            now = time.monotonic()
            if now >= deadline:
                break
            interval = standin.faults.bookmark_interval()
            wake = deadline
            if bookmarks and interval > 0:
                wake = min(wake, next_bookmark)
            wake = min(wake, now + DISCONNECT_POLL_S)
            try:
                kind, obj = w.queue.get(timeout=max(wake - now, 0.001))
            except queue.Empty:
                if self._client_gone():
                    self.close_connection = True
                    return
                if bookmarks and interval > 0 and time.monotonic() >= next_bookmark:
                    rv = standin.store.bookmark_rv(w)
                    if rv is not None:
                        self._write_chunks([self._bookmark(res, rv)])
                    next_bookmark = time.monotonic() + interval
                continue
            if kind == Watcher.DROP:
                self.close_connection = True
                standin.abort(self.connection)
                return
            if kind == Watcher.END:
                break
            lines = [self._event(kind, obj)]
            pending_initial -= 1 if pending_initial > 0 else 0
            signal = None
            # Hand over what is already queued in one write, still one event per chunk.
            while len(lines) < 256 and pending_initial != 0:
                try:
                    kind, obj = w.queue.get_nowait()
                except queue.Empty:
                    break
                if kind in (Watcher.DROP, Watcher.END):
                    signal = kind
                    break
                lines.append(self._event(kind, obj))
                pending_initial -= 1 if pending_initial > 0 else 0
            self._write_chunks(lines)
            if signal == Watcher.DROP:
                self.close_connection = True
                standin.abort(self.connection)
                return
            if signal == Watcher.END:
                break
        self._write_chunks([b""])     # the terminating zero-length chunk: a clean end
