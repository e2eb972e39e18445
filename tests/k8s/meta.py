"""Small pieces of the API machinery contract: Status errors, label and field
selectors and name checks."""

import datetime
import re

# HTTP code and reason pairs the real server uses; kubectl prints `message`.
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "AlreadyExists",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error answered as a metav1.Status object."""

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self):
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code, reason, message, details=None):
    out = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        out["details"] = details
    return out


def not_found(res, name):
    return ApiError(404, f'{res.qualified} "{name}" not found', "NotFound",
                    {"name": name, "group": res.group, "kind": res.plural})


def already_exists(res, name):
    return ApiError(409, f'{res.qualified} "{name}" already exists', "AlreadyExists",
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name):
    return ApiError(409, f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
                    'been modified; please apply your changes to the latest version and try again',
                    "Conflict", {"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name, field, message):
    return ApiError(422, f'{res.kind} "{name}" is invalid: {field}: {message}', "Invalid",
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]})


def expired(message):
    return ApiError(410, message, "Expired")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- names -------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def name_problem(kind, name):
    """Why `name` is not a valid object name for `kind`, or None when it is."""
    if kind == "Service":
        if len(name) > 63 or not _DNS_1035_LABEL.match(name):
            return ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                    "start with an alphabetic character, and end with an alphanumeric character")
        return None
    if kind == "Namespace":
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                    "or '-', and must start and end with an alphanumeric character")
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character")
    return None


# ---- selectors -----------------------------------------------------------------------------------

def parse_label_selector(text):
    """Parse `k=v,k2!=v2,k3,!k4` (equality-based plus existence) into a list of
    (key, op, value). Set-based forms (`in`, `notin`) are answered with 400."""
    reqs = []
    if not text:
        return reqs
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if " in " in part or " notin " in part or "(" in part:
            raise ApiError(400, f"unable to parse requirement: set-based selector {part!r} "
                           "is not supported by this stand-in")
        if "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k.strip(), "!=", v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", None))
        else:
            reqs.append((part, "exists", None))
    return reqs


def labels_match(reqs, obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, value in reqs:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    return True


_FIELDS = ("metadata.name", "metadata.namespace")


def parse_field_selector(text):
    """Field selectors the real server supports for every kind: metadata.name and
    metadata.namespace, with =, == and !=."""
    reqs = []
    if not text:
        return reqs
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            op = "!="
        elif "==" in part:
            k, v = part.split("==", 1)
            op = "="
        elif "=" in part:
            k, v = part.split("=", 1)
            op = "="
        else:
            raise ApiError(400, f"invalid field selector: {part!r}")
        if k.strip() not in _FIELDS:
            raise ApiError(400, f'field label not supported: {k.strip()}')
        reqs.append((k.strip(), op, v.strip()))
    return reqs


def fields_match(reqs, obj):
    meta = obj.get("metadata") or {}
    for key, op, value in reqs:
        actual = meta.get("name" if key == "metadata.name" else "namespace", "")
        if (actual == value) != (op == "="):
            return False
    return True
