"""In-memory object store with the API server's resourceVersion and watch semantics.

One global, monotonically increasing resourceVersion (like etcd's revision) is
stamped on every write. A bounded history of events lets a watch resume from
an older resourceVersion; one older than the history window (or than the last
compaction) is answered 410 Expired, which is what makes clients relist.
"""

import base64
import collections
import copy
import ipaddress
import json
import queue
import threading
import uuid

import resources
from meta import (ApiError, already_exists, conflict, expired, fields_match, invalid,
                  labels_match, name_problem, not_found, now_rfc3339)

DEFAULT_HISTORY = 1000          # events kept for watch resumption (the "watch cache" window)
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")   # kube-apiserver's default service range

Event = collections.namedtuple("Event", "rv res ns name type obj prev")


class Watcher:
    """One open watch: a filter plus a queue of pending (type, object) pairs.

    The store pushes into the queue while holding its lock, so "queue empty"
    observed under that lock means every event up to the store's current
    resourceVersion has been handed over (what a BOOKMARK promises)."""

    DROP = "__drop__"       # close the stream abruptly (fault injection)
    END = "__end__"         # end the stream cleanly

    def __init__(self, res, namespace, label_reqs, field_reqs):
        self.res = res
        self.namespace = namespace
        self.label_reqs = label_reqs
        self.field_reqs = field_reqs
        self.queue = queue.SimpleQueue()
        self.start_rv = 0       # the store's resourceVersion when the watch was registered

    def _matches(self, obj):
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self.label_reqs, obj) and fields_match(self.field_reqs, obj)

    def offer(self, ev):
        """Queue `ev` translated for this watcher's selector (an object leaving the
        selector is DELETED for it, one entering it is ADDED), as the real server does."""
        if ev.res != self.res.key:
            return
        now_in = ev.type != "DELETED" and self._matches(ev.obj)
        was_in = ev.type != "ADDED" and self._matches(ev.prev if ev.type == "MODIFIED" else ev.obj)
        if ev.type == "DELETED":
            if was_in:
                self.queue.put(("DELETED", ev.obj))
        elif now_in and was_in:
            self.queue.put(("MODIFIED", ev.obj))
        elif now_in:
            self.queue.put(("ADDED", ev.obj))
        elif was_in:
            self.queue.put(("DELETED", ev.obj))

    def signal(self, what):
        self.queue.put((what, None))


class Store:
    def __init__(self, history=DEFAULT_HISTORY):
        self.lock = threading.RLock()
        self.rv = 0
        self.history = collections.deque()
        self.history_limit = history
        # Every event with rv > floor is still in `history`.
        self.floor = 0
        self.objects = {r.key: {} for r in resources.RESOURCES}
        self.watchers = set()
        self._next_ip = 10      # next clusterIP offset in SERVICE_CIDR
        ns_res = resources.find("", "v1", "namespaces")
        for name in DEFAULT_NAMESPACES:
            self.create(ns_res, None, {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}})

    # ---- helpers ------------------------------------------------------------------------------

    def _commit(self, res, ns, name, kind, obj, prev):
        """Record one write at the already-incremented self.rv. Caller holds the lock."""
        ev = Event(self.rv, res.key, ns, name, kind, obj, prev)
        self.history.append(ev)
        while len(self.history) > self.history_limit:
            self.floor = self.history.popleft().rv
        for w in list(self.watchers):
            w.offer(ev)

    def _stamp(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    @staticmethod
    def _check_identity(res, ns, obj):
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise ApiError(400, "the request body is not a JSON object with metadata")
        api_version = obj.setdefault("apiVersion", res.api_version)
        kind = obj.setdefault("kind", res.kind)
        if api_version != res.api_version:
            raise ApiError(400, f"the API version in the data ({api_version}) does not match the "
                           f"expected API version ({res.api_version})")
        if kind != res.kind:
            raise ApiError(400, f"the kind in the data ({kind}) does not match the expected kind "
                           f"({res.kind}) for {res.qualified}")
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != ns:
                raise ApiError(400, "the namespace of the provided object does not match the "
                               "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return meta

    def _apply_defaults(self, res, obj, prev):
        """The few defaults of the real server that clients may rely on."""
        if res.kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    if "port" in port:
                        port.setdefault("targetPort", port["port"])
            if prev is not None and "clusterIP" not in spec:
                spec["clusterIP"] = prev.get("spec", {}).get("clusterIP")
            if not spec.get("clusterIP"):
                spec["clusterIP"] = str(SERVICE_CIDR[self._next_ip])
                self._next_ip += 1
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
        elif res.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
                obj["metadata"]["name"]

    def _require_namespace(self, res, ns):
        if res.namespaced and (None, ns) not in self.objects[("", "v1", "namespaces")]:
            raise ApiError(404, f'namespaces "{ns}" not found', "NotFound",
                           {"name": ns, "kind": "namespaces"})

    @staticmethod
    def _key(res, ns, name):
        return (ns if res.namespaced else None, name)

    # ---- verbs --------------------------------------------------------------------------------

    def create(self, res, ns, obj):
        obj = copy.deepcopy(obj)
        with self.lock:
            meta = self._check_identity(res, ns, obj)
            name = meta.get("name")
            if not name and meta.get("generateName"):
                name = meta["generateName"] + uuid.uuid4().hex[:5]
                meta["name"] = name
            if not name:
                raise invalid(res, "", "metadata.name", "Required value: name or generateName is required")
            problem = name_problem(res.kind, name)
            if problem:
                raise invalid(res, name, "metadata.name", f'Invalid value: "{name}": {problem}')
            self._require_namespace(res, ns)
            key = self._key(res, ns, name)
            if key in self.objects[res.key]:
                raise already_exists(res, name)
            for managed in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
                meta.pop(managed, None)
            if res.status_subresource:
                obj.pop("status", None)  # set through /status only, as the real server does
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            self._apply_defaults(res, obj, None)
            self._stamp(obj)
            self.objects[res.key][key] = obj
            self._commit(res, key[0], name, "ADDED", obj, None)
            return obj

    def get(self, res, ns, name):
        with self.lock:
            obj = self.objects[res.key].get(self._key(res, ns, name))
            if obj is None:
                raise not_found(res, name)
            return obj

    def replace(self, res, ns, name, obj, subresource=None):
        """PUT: full replacement. A resourceVersion in the body must be current (409 otherwise);
        without one the update is unconditional. With a status subresource, a PUT to the object
        keeps its status and a PUT to /status (`subresource="status"`) changes only the status."""
        obj = copy.deepcopy(obj)
        with self.lock:
            meta = self._check_identity(res, ns, obj)
            if meta.get("name") and meta["name"] != name:
                raise ApiError(400, f'the name of the object ({meta["name"]}) does not match the '
                               f'name on the URL ({name})')
            meta["name"] = name
            key = self._key(res, ns, name)
            prev = self.objects[res.key].get(key)
            if prev is None:
                raise not_found(res, name)
            given = meta.get("resourceVersion")
            if given and given != prev["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return self._update(res, key, self._split_status(res, obj, prev, subresource), prev)

    @staticmethod
    def _split_status(res, obj, prev, subresource):
        """What an update may change: with a status subresource, the object's writes keep the
        status and /status writes keep everything but the status."""
        if not res.status_subresource:
            return obj
        if subresource == "status":
            out = copy.deepcopy(prev)
            out["metadata"]["resourceVersion"] = obj["metadata"].get("resourceVersion")
            if "status" in obj:
                out["status"] = obj["status"]
            else:
                out.pop("status", None)
            return out
        if "status" in prev:
            obj["status"] = copy.deepcopy(prev["status"])
        else:
            obj.pop("status", None)
        return obj

    def _update(self, res, key, obj, prev):
        meta = obj["metadata"]
        for kept in ("uid", "creationTimestamp", "deletionTimestamp"):
            if kept in prev["metadata"]:
                meta[kept] = prev["metadata"][kept]
            else:
                meta.pop(kept, None)
        generation = prev["metadata"].get("generation", 1)
        if obj.get("spec") != prev.get("spec"):
            generation += 1
        meta["generation"] = generation
        self._apply_defaults(res, obj, prev)
        self._stamp(obj)
        self.objects[res.key][key] = obj
        self._commit(res, key[0], key[1], "MODIFIED", obj, prev)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer is gone: the pending deletion completes now.
            return self._delete_locked(res, key)
        return obj

    def patch(self, res, ns, name, patch_fn, create_if_missing=False, subresource=None):
        """Apply `patch_fn(current_or_None) -> new object` atomically. A resourceVersion in
        the result that differs from the current one is a precondition failure (409)."""
        with self.lock:
            key = self._key(res, ns, name)
            prev = self.objects[res.key].get(key)
            if prev is None and not create_if_missing:
                raise not_found(res, name)
            obj = patch_fn(prev)
            if prev is None:
                obj.setdefault("metadata", {})["name"] = name
                return self.create(res, ns, obj), True
            meta = self._check_identity(res, ns, obj)
            if meta.get("name") != name:
                raise ApiError(400, "the name of a patched object cannot change")
            given = meta.get("resourceVersion")
            if given and given != prev["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return self._update(res, key, self._split_status(res, obj, prev, subresource), prev), False

    def delete(self, res, ns, name, preconditions=None):
        with self.lock:
            key = self._key(res, ns, name)
            prev = self.objects[res.key].get(key)
            if prev is None:
                raise not_found(res, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != prev["metadata"]["uid"]:
                raise ApiError(409, f'Precondition failed: UID in precondition: {pre["uid"]}, '
                               f'UID in object meta: {prev["metadata"]["uid"]}', "Conflict")
            if pre.get("resourceVersion") and pre["resourceVersion"] != prev["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if res.kind == "Namespace":
                # The real server drains a Terminating namespace asynchronously; deleting
                # its contents right away is the same end state, reached sooner.
                for other in resources.RESOURCES:
                    if other.namespaced:
                        for okey in [k for k in self.objects[other.key] if k[0] == name]:
                            self._delete_locked(other, okey)
            if prev["metadata"].get("finalizers"):
                # Finalizers hold the object: it is only marked, as the real server does.
                if prev["metadata"].get("deletionTimestamp"):
                    return prev
                marked = copy.deepcopy(prev)
                marked["metadata"]["deletionTimestamp"] = now_rfc3339()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                self._stamp(marked)
                self.objects[res.key][key] = marked
                self._commit(res, key[0], key[1], "MODIFIED", marked, prev)
                return marked
            return self._delete_locked(res, key)

    def _delete_locked(self, res, key):
        prev = self.objects[res.key].pop(key)
        gone = copy.deepcopy(prev)
        self._stamp(gone)
        self._commit(res, key[0], key[1], "DELETED", gone, prev)
        return gone

    def delete_collection(self, res, ns, label_reqs, field_reqs):
        with self.lock:
            items, _, _, _ = self.list(res, ns, label_reqs, field_reqs)
            return [self.delete(res, o["metadata"].get("namespace"), o["metadata"]["name"])
                    for o in items]

    # ---- list ---------------------------------------------------------------------------------

    def _state_at(self, res, rv):
        """The collection as it was at `rv`, rebuilt by undoing newer history events."""
        if rv < self.floor:
            raise expired("The provided continue parameter is too old to display a consistent "
                          "list result. You can start a new list without the continue parameter.")
        state = dict(self.objects[res.key])
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            if ev.res == res.key:
                key = (ev.ns, ev.name)
                if ev.prev is None:
                    state.pop(key, None)
                else:
                    state[key] = ev.prev
        return state

    def list(self, res, ns, label_reqs, field_reqs, limit=0, continue_token=None):
        """Returns (items, list_rv, continue_token_or_None, remaining_count_or_None).
        Pages after the first are consistent with the first page's resourceVersion."""
        with self.lock:
            start = None
            list_rv = self.rv
            state = self.objects[res.key]
            if continue_token:
                try:
                    padded = continue_token + "=" * (-len(continue_token) % 4)
                    tok = json.loads(base64.urlsafe_b64decode(padded))
                    list_rv, start = int(tok["rv"]), tuple(tok["start"])
                except (ValueError, KeyError, TypeError) as exc:  # binascii.Error is a ValueError
                    raise ApiError(400, f"continue key is not valid: {exc}") from exc
                state = self._state_at(res, list_rv)
            items = []
            for key in sorted(state, key=lambda k: (k[0] or "", k[1])):
                obj = state[key]
                if ns is not None and key[0] != ns:
                    continue
                if not labels_match(label_reqs, obj) or not fields_match(field_reqs, obj):
                    continue
                if start is not None and (key[0] or "", key[1]) <= (start[0] or "", start[1]):
                    continue
                items.append(obj)
            token = remaining = None
            if limit and len(items) > limit:
                remaining = len(items) - limit
                items = items[:limit]
                last = items[-1]["metadata"]
                # URL-safe and unpadded like the real server's tokens, so clients that forget
                # to escape the query value still work.
                token = base64.urlsafe_b64encode(json.dumps(
                    {"v": "meta.k8s.io/v1", "rv": list_rv,
                     "start": [last.get("namespace") if res.namespaced else None, last["name"]]}
                ).encode()).decode().rstrip("=")
            return items, list_rv, token, remaining

    # ---- watch --------------------------------------------------------------------------------

    def watch(self, res, ns, label_reqs, field_reqs, rv_param):
        """Open a watch. An unset or "0" resourceVersion starts with synthetic ADDED events for
        the current state; otherwise every event after it is replayed. Raises 410 Expired
        when that resourceVersion has left the history window."""
        w = Watcher(res, ns, label_reqs, field_reqs)
        with self.lock:
            w.start_rv = self.rv
            if rv_param in (None, "", "0"):
                items, _, _, _ = self.list(res, ns, label_reqs, field_reqs)
                for obj in items:
                    w.queue.put(("ADDED", obj))
            else:
                try:
                    since = int(rv_param)
                except ValueError as exc:
                    raise ApiError(400, f"invalid resource version: {rv_param!r}") from exc
                if since < self.floor:
                    raise expired(f"too old resource version: {since} ({self.floor + 1})")
                if since > self.rv:
                    # What the real server answers after waiting ~3 s for its cache to catch
                    # up; client-go relists on it (a restarted stand-in starts at a low RV).
                    raise ApiError(504, f"Timeout: Too large resource version: {since}, current: "
                                   f"{self.rv}", "Timeout",
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                replay = []
                for ev in reversed(self.history):
                    if ev.rv <= since:
                        break
                    replay.append(ev)
                for ev in reversed(replay):
                    w.offer(ev)
            self.watchers.add(w)
        return w

    def unwatch(self, w):
        with self.lock:
            self.watchers.discard(w)

    def bookmark_rv(self, w):
        """The current resourceVersion when `w` has nothing pending, else None."""
        with self.lock:
            return self.rv if w.queue.empty() else None

    # ---- administration -----------------------------------------------------------------------

    def compact(self):
        """Forget the event history: any watch or continue from an older RV now gets 410."""
        with self.lock:
            self.history.clear()
            self.floor = self.rv

    def signal_watchers(self, what, group=None):
        """Send DROP or END to every open watch (of `group` only, when given)."""
        with self.lock:
            chosen = [w for w in self.watchers if group is None or w.res.group == group]
            for w in chosen:
                w.signal(what)
            return len(chosen)

    def counts(self):
        with self.lock:
            return {
                "resource_version": self.rv,
                "history_floor": self.floor,
                "history_events": len(self.history),
                "objects": {r.qualified + "/" + r.version: len(self.objects[r.key])
                            for r in resources.RESOURCES},
                "watches_active": len(self.watchers),
            }
