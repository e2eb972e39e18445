"""The patch formats PATCH accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
a strategic merge patch good enough for the built-in kinds served here."""

import copy

from meta import ApiError

# ---- patches -----------------------------------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch; returns a new value, never mutates its inputs."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise ApiError(422, f"JSON patch path element {p!r} does not exist")
    return cur


def json_patch(doc, ops):
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise ApiError(400, "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        parts = _pointer(op.get("path", ""))
        try:
            if kind == "test":
                cur = doc
                for p in parts:
                    cur = cur[int(p)] if isinstance(cur, list) else cur[p]
                if cur != op.get("value"):
                    raise ApiError(422, f"JSON patch test failed at {op.get('path')}")
                continue
            if kind in ("move", "copy"):
                src = _pointer(op.get("from", ""))
                sp = _parent(doc, src)
                value = sp[int(src[-1])] if isinstance(sp, list) else sp[src[-1]]
                value = copy.deepcopy(value)
                if kind == "move":
                    if isinstance(sp, list):
                        del sp[int(src[-1])]
                    else:
                        del sp[src[-1]]
                kind, op = "add", {"value": value}
            if not parts:
                doc = copy.deepcopy(op.get("value"))
                continue
            parent = _parent(doc, parts)
            last = parts[-1]
            if isinstance(parent, list):
                if kind == "add":
                    idx = len(parent) if last == "-" else int(last)
                    parent.insert(idx, copy.deepcopy(op.get("value")))
                elif kind == "remove":
                    del parent[int(last)]
                elif kind == "replace":
                    parent[int(last)] = copy.deepcopy(op.get("value"))
                else:
                    raise ApiError(422, f"unknown JSON patch op {kind!r}")
            else:
                if kind == "add":
                    parent[last] = copy.deepcopy(op.get("value"))
                elif kind in ("remove", "replace"):
                    if last not in parent:
                        raise ApiError(422, f"JSON patch path {op.get('path')!r} does not exist")
                    if kind == "remove":
                        del parent[last]
                    else:
                        parent[last] = copy.deepcopy(op.get("value"))
                else:
                    raise ApiError(422, f"unknown JSON patch op {kind!r}")
        except (IndexError, ValueError, KeyError, TypeError) as exc:
            raise ApiError(422, f"JSON patch failed at {op.get('path')!r}: {exc}") from exc
    return doc


# Merge keys of the lists kubectl patches in the built-in kinds served here (from the
# `patchMergeKey` tags of k8s.io/api); every other list is atomic and replaced whole.
MERGE_KEYS = {
    ("metadata", "ownerReferences"): "uid",
    ("spec", "ports"): "port",
    ("spec", "finalizers"): None,      # a primitive list merged as a set
}


def strategic_merge_patch(target, patch, path=()):
    """Apply a strategic merge patch: merge-patch semantics for maps, lists merged by their
    merge key where k8s.io/api declares one, and the directives kubectl emits
    ($patch, $retainKeys, $setElementOrder/<f>, $deleteFromPrimitiveList/<f>)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    plain = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return _strip_directives(plain)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in plain.items():
        sub = path + (key,)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and sub in MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, MERGE_KEYS[sub])
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = _strip_directives(value)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
        elif key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            mk = MERGE_KEYS.get(path + (field,), "")
            if isinstance(result.get(field), list):
                result[field] = _reorder(result[field], value, mk)
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def _merge_list(current, patch, merge_key):
    current = copy.deepcopy(current) if isinstance(current, list) else []
    if merge_key is None:                       # primitive set
        return current + [v for v in patch if v not in current]
    for element in patch:
        if not isinstance(element, dict):
            continue
        ident = element.get(merge_key)
        idx = next((i for i, c in enumerate(current)
                    if isinstance(c, dict) and c.get(merge_key) == ident), None)
        if element.get("$patch") == "delete":
            if idx is not None:
                del current[idx]
        elif idx is None:
            current.append(_strip_directives(element))
        else:
            current[idx] = strategic_merge_patch(current[idx], element)
    return current


def _reorder(items, order, merge_key):
    def ident(v):
        return v.get(merge_key) if merge_key and isinstance(v, dict) else v
    wanted = [ident(o) for o in order]
    ranked = sorted(items, key=lambda v: wanted.index(ident(v)) if ident(v) in wanted else len(wanted))
    return ranked
