"""Loopback replay server: serves an ``airflow-gke/snapshot@1`` directory over HTTP.

The live reader of ``airflow-gke`` talks to a Kubernetes API server and to Google REST APIs through
their official clients.  In tests those clients talk to this server instead: one Kubernetes API
server and one ``ThreadingHTTPServer`` per Google service, all on ``127.0.0.1`` with ephemeral
ports, answering from the snapshot's files exactly as the real servers would answer (bodies, error
shapes, pagination, pod logs, discovery).  Every request is recorded, and faults can be injected
per path.

    with ReplayServer("fixtures/scenarios/seed-incident") as srv:
        kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")     # context gke_<p>_<l>_<c>
        env = {**os.environ, **srv.env(kubeconfig=kubeconfig)}        # AIRFLOW_GKE_ENDPOINT_*
        ...run the live tool with env...
        assert not srv.log.mutating()
        assert not srv.log.duplicates()

Mapping (the snapshot-v1 contract, ``docs/snapshot-format.md``):

* Kubernetes ``GET /<path>?<query>`` -> ``k8s/<path>.json``; ``k8s/<path>.error.json``
  (``{"status": int, "body": ...}``) is served with its status and body; absent -> what a real
  API server answers: an empty list for a list of a resource type it serves (built in, or a custom
  resource the snapshot stores a list of), in any namespace, one that does not exist included;
  404 with a Kubernetes ``Status`` ``NotFound`` body for a single object it does not hold and for
  unknown resource types (a CRD that is not installed).  ``limit``/``continue`` pagination, ``labelSelector``
  and ``fieldSelector`` are applied to stored lists.  Pod logs
  ``/api/v1/namespaces/<ns>/pods/<pod>/log?container=<c>&tailLines=<n>&previous=<bool>`` ->
  ``.../log/<c>.log`` (``<c>.previous.log``), with the kubelet's 400 answers derived from the pod's
  status when no log was stored.  ``/version``, ``/api``, ``/apis`` and per-group resource lists
  are built in (a stored file of the same path wins).
* Google ``<METHOD> /<path>`` on service ``S`` -> ``gcp/S/<path>.json`` (path URL-decoded, query
  ignored, ``:verb`` kept); ``.error.json`` likewise; absent -> 404 with a ``google.rpc.Status``
  body (legacy JSON API body for ``storage`` and ``compute``: ``The resource '...' was not found``).  GET is served, and POST for ``:getIamPolicy`` and
  ``:testIamPermissions``; every other method is recorded and refused with 405, unless
  ``allow_writes=True`` enables an in-memory Cloud Storage object create/read/delete cycle.
  Objects seeded with :meth:`ReplayServer.put_object` (or written) are served to ``objects.get``
  (``alt=media`` too) and ``objects.list`` (``prefix``, ``delimiter``, ``maxResults``/``pageToken``).
  Cloud Identity: ``GET /v1/groups:lookup?groupKey.id=<email>`` answers an opaque group name when
  the snapshot stores any membership answer for that group (else 403, as for a group the caller may
  not see); ``GET /v1/groups/<id>/memberships:checkTransitiveMembership?query=member_key_id ==
  '<email>'`` -> ``gcp/cloudidentity/v1/groups/<group email>/memberships:checkTransitiveMembership/<email>.json``.

Faults (:class:`Fault`, or a dict of its fields), first matching rule wins:

    Fault(path="/api/v1/namespaces/*/pods", status=429, retry_after=1, times=1)  # then 200
    Fault(service="container", status=403, reason="SERVICE_DISABLED")
    Fault(service="storage", path="*/iam", status=403, permission="storage.buckets.getIamPolicy")
    Fault(path="*/events", reset=True)        # TCP RST, no response
    Fault(path="*/nodes", hang=True)          # no answer until the client times out
    Fault(path="*/configmaps", truncate=True) # half the body, then EOF
    {"path": "*/pods", "invalid_json": True, "times": 2}
    Fault(service="k8s", delay=0.5)           # every Kubernetes answer half a second late

Bodies are cached per path (files are read once per server; call :meth:`ReplayServer.invalidate`
after changing a snapshot under a running server).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import fnmatch
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import struct
import tarfile
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

try:  # orjson is a project dependency; stay importable without it.
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)


__all__ = [
    "K8S",
    "GOOGLE_SERVICES",
    "ENV_PREFIX",
    "Fault",
    "Request",
    "RequestLog",
    "ReplayServer",
    "StoredObject",
    "k8s_status",
    "k8s_forbidden",
    "google_error",
    "google_permission_denied",
    "google_service_disabled",
    "gcs_error",
    "gcs_forbidden",
    "compute_error",
    "replay_server",
]

K8S = "k8s"
"""Service name of the Kubernetes API server in the request log and in fault rules."""

GOOGLE_SERVICES = (
    "container",
    "serviceusage",
    "cloudresourcemanager",
    "storage",
    "iam",
    "iamcredentials",
    "secretmanager",
    "compute",
    "cloudidentity",
)
"""One HTTP server each; the name is the first label of ``<name>.googleapis.com``."""

ENV_PREFIX = "AIRFLOW_GKE_ENDPOINT_"

OAUTH2 = "oauth2"
"""Service name of the OAuth 2.0 token endpoint (``ReplayServer(issue_token=...)``)."""

READ_ONLY_POST_VERBS = (":getIamPolicy", ":testIamPermissions")

# Google lists the replay server pages like the API (``pageSize``/``pageToken`` -> ``nextPageToken``):
# (service, path with the project as *) -> the list field.
_GOOGLE_PAGED = {("secretmanager", "v1/projects/*/secrets"): "secrets"}

_JSON = "application/json"
_GOOGLE_JSON = "application/json; charset=UTF-8"
_TEXT = "text/plain"


# --------------------------------------------------------------------------------------------
# Real error bodies
# --------------------------------------------------------------------------------------------

_K8S_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: (
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can "
        "start a new list without the continue parameter, or use the continue token in this "
        "response to retrieve the remainder of the results. Continuing with the provided token "
        "results in an inconsistent list - objects that were created, modified, or deleted "
        "between the time the first chunk was returned and now may show up in the list.",
    ),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: the server encountered an unexpected condition"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be "
        "processing the request",
    ),
}


def k8s_status(code: int, message: str | None = None, reason: str | None = None,
               details: dict | None = None) -> dict:
    """A Kubernetes ``Status`` failure body, as the API server sends for any non-2xx answer."""
    default_reason, default_message = _K8S_REASONS.get(code, ("", f"an error on the server ({code})"))
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message if message is not None else default_message,
        "reason": reason if reason is not None else default_reason,
        "details": details if details is not None else {},
        "code": code,
    }


# GKE appends the IAM permission that would also have granted a denied RBAC request.
_GKE_IAM_NAMES = {
    "persistentvolumeclaims": "persistentVolumeClaims",
    "persistentvolumes": "persistentVolumes",
    "configmaps": "configMaps",
    "serviceaccounts": "serviceAccounts",
    "storageclasses": "storageClasses",
    "statefulsets": "statefulSets",
    "replicasets": "replicaSets",
    "daemonsets": "daemonSets",
    "cronjobs": "cronJobs",
    "horizontalpodautoscalers": "horizontalPodAutoscalers",
    "poddisruptionbudgets": "podDisruptionBudgets",
    "networkpolicies": "networkPolicies",
    "resourcequotas": "resourceQuotas",
    "limitranges": "limitRanges",
    "customresourcedefinitions": "customResourceDefinitions",
}


def k8s_forbidden(path: str, user: str = "airflow-gke@example.iam.gserviceaccount.com",
                  verb: str | None = None) -> dict:
    """The 403 ``Status`` that RBAC (on GKE) returns for a read of ``path``.

    ``pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace
    "airflow": requires one of ["container.pods.list"] permission(s).``
    """
    parts = _k8s_parse(path.strip("/"))
    if parts is None:
        return k8s_status(403, f'forbidden: User "{user}" cannot get path "/{path.strip("/")}"')
    group, resource, name, sub, ns = (parts["group"], parts["resource"], parts["name"],
                                      parts["subresource"], parts["namespace"])
    verb = verb or ("get" if name else "list")
    res = f"{resource}/{sub}" if sub else resource
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    msg = (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{res}" '
           f'in API group "{group}" {scope}')
    if not user.startswith("system:"):
        if sub == "log":
            perm = "container.pods.getLogs"
        else:
            perm = f"container.{_GKE_IAM_NAMES.get(resource, resource)}.{verb}"
        msg += f': requires one of ["{perm}"] permission(s).'
    details: dict = {"kind": resource}
    if name:
        details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return k8s_status(403, msg, "Forbidden", details)


def _k8s_not_found(path: str) -> dict:
    parts = _k8s_parse(path.strip("/"))
    if parts and parts["name"] and not parts["subresource"]:
        group, resource, name = parts["group"], parts["resource"], parts["name"]
        qualified = f"{resource}.{group}" if group else resource
        details = {"name": name, "kind": resource}
        if group:
            details["group"] = group
        return k8s_status(404, f'{qualified} "{name}" not found', "NotFound", details)
    return k8s_status(404)


_GOOGLE_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request is missing required authentication credential. Expected "
                             "OAuth 2 access token, login cookie or other valid authentication "
                             "credential."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    405: ("UNIMPLEMENTED", "Method not allowed."),
    409: ("ABORTED", "The operation was aborted."),
    412: ("FAILED_PRECONDITION", "Precondition check failed."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "Internal error encountered."),
    501: ("UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def google_error(code: int, message: str | None = None, status: str | None = None,
                 details: list | None = None) -> dict:
    """A ``google.rpc.Status`` error body as Google REST APIs return it."""
    default_status, default_message = _GOOGLE_STATUS.get(code, ("UNKNOWN", "Unknown error."))
    err: dict = {
        "code": code,
        "message": message if message is not None else default_message,
        "status": status if status is not None else default_status,
    }
    if details:
        err["details"] = details
    return {"error": err}


def google_permission_denied(permission: str, resource: str | None = None) -> dict:
    """403 ``IAM_PERMISSION_DENIED``: ``Permission 'x' denied on resource (or it may not exist).``"""
    metadata = {"permission": permission}
    if resource:
        metadata["resource"] = resource
    return google_error(
        403,
        f"Permission '{permission}' denied on resource (or it may not exist).",
        "PERMISSION_DENIED",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
          "domain": "iam.googleapis.com", "metadata": metadata}],
    )


_SERVICE_TITLES = {
    "container": "Kubernetes Engine API",
    "serviceusage": "Service Usage API",
    "cloudresourcemanager": "Cloud Resource Manager API",
    "storage": "Cloud Storage JSON API",
    "iam": "Identity and Access Management (IAM) API",
    "iamcredentials": "IAM Service Account Credentials API",
    "secretmanager": "Secret Manager API",
}


def google_service_disabled(service: str, consumer_project: str) -> dict:
    """403 ``SERVICE_DISABLED`` for ``<service>.googleapis.com`` in ``consumer_project``."""
    api = service if "." in service else f"{service}.googleapis.com"
    title = _SERVICE_TITLES.get(api.split(".")[0], api)
    url = f"https://console.developers.google.com/apis/api/{api}/overview?project={consumer_project}"
    message = (f"{title} has not been used in project {consumer_project} before or it is disabled. "
               f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a "
               "few minutes for the action to propagate to our systems and retry.")
    return google_error(403, message, "PERMISSION_DENIED", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
         "domain": "googleapis.com",
         "metadata": {"activationUrl": url, "service": api, "consumer": f"projects/{consumer_project}",
                      "containerInfo": consumer_project, "serviceTitle": title}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": message},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Google developers console API activation", "url": url}]},
    ])


_GCS_REASONS = {
    400: ("invalid", "Invalid argument."),
    401: ("required", "Anonymous caller does not have storage.objects.get access to the Google "
                      "Cloud Storage object."),
    403: ("forbidden", "Forbidden"),
    404: ("notFound", "Not Found"),
    405: ("methodNotAllowed", "Method Not Allowed"),
    409: ("conflict", "Conflict"),
    412: ("conditionNotMet", "At least one of the pre-conditions you specified did not hold."),
    429: ("rateLimitExceeded", "The rate of requests exceeds the rate limit. Please reduce the "
                               "rate of requests."),
    500: ("backendError", "Internal Error"),
    503: ("backendError", "Service Unavailable"),
    504: ("backendError", "Gateway Timeout"),
}


def gcs_error(code: int, message: str | None = None, reason: str | None = None) -> dict:
    """A Cloud Storage JSON API (legacy format) error body: ``errors[]``, no ``status``."""
    default_reason, default_message = _GCS_REASONS.get(code, ("unknown", "Unknown Error"))
    message = message if message is not None else default_message
    domain = "usageLimits" if code == 429 else "global"
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": domain,
                                  "reason": reason if reason is not None else default_reason}]}}


def compute_error(code: int, path: str, permission: str | None = None) -> dict:
    """Compute Engine's error body (the legacy shape: ``errors[]``, no ``status``) for a resource
    it does not hold (404 ``notFound``) or one the caller may not read (403 ``forbidden``, naming
    the permission): ``The resource 'projects/p/global/healthChecks/n' was not found``."""
    resource = path.strip("/").split("compute/v1/", 1)[-1]
    if code == 403:
        message, reason = f"Required '{permission}' permission for '{resource}'", "forbidden"
    else:
        message, reason = f"The resource '{resource}' was not found", "notFound"
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}


def gcs_forbidden(principal: str, permission: str = "storage.objects.create",
                  what: str = "Google Cloud Storage object") -> dict:
    """403 from Cloud Storage: ``<principal> does not have <perm> access to the ... object. ...``"""
    return gcs_error(403, f"{principal} does not have {permission} access to the {what}. "
                          f"Permission '{permission}' denied on resource (or it may not exist).",
                     "forbidden")


# --------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------


class _Headers(dict):
    """Request headers with case-insensitive lookups (``"Authorization" in h``, ``h.get(...)``)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Request:
    """One request as a server saw it. ``status`` is None when no response was sent."""

    service: str
    method: str
    path: str  # URL-decoded, with the leading slash, without the query
    query: str  # raw query string
    status: int | None
    duration: float  # seconds from request read to response ready
    fault: str | None = None  # the kind of fault applied, if any
    headers: dict = field(default_factory=dict, repr=False)  # case-insensitive lookups
    body: bytes = field(default=b"", repr=False)

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))

    @property
    def mutating(self) -> bool:
        if self.service == OAUTH2 and self.method == "POST" and self.path == "/token":
            return False   # an access-token exchange: the caller's credentials, nothing in the project
        return _is_mutating(self.method, self.path)


def _is_mutating(method: str, path: str) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if method == "POST" and path.endswith(READ_ONLY_POST_VERBS):
        return False
    return True


def _glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


# Session-wide record, kept however often a test clears a server's log: every request any server
# of this process answered (per service), and every mutating one with whether its server allowed
# writes and the test that was running. tests/conftest.py asserts the read-only guarantee from it
# when the test session ends.
SESSION_REQUESTS: collections.Counter = collections.Counter()
SESSION_WRITES: list[tuple[Request, bool, str]] = []
_SESSION_LOCK = threading.Lock()


class RequestLog:
    """Thread-safe log of every request to any of the servers of one :class:`ReplayServer`."""

    allow_writes = False   # set by the ReplayServer that owns the log

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Request] = []

    def append(self, entry: Request) -> None:
        with self._lock:
            self._entries.append(entry)
        with _SESSION_LOCK:
            SESSION_REQUESTS[entry.service] += 1
            if entry.mutating:
                SESSION_WRITES.append((entry, self.allow_writes, os.environ.get("PYTEST_CURRENT_TEST", "")))

    @property
    def entries(self) -> list[Request]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[Request]:
        return iter(self.entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def select(self, path: str | None = None, service: str | None = None,
               method: str | None = None) -> list[Request]:
        """Entries whose path equals ``path`` (or matches it, if it has glob characters)."""
        out = []
        for e in self.entries:
            if service is not None and e.service != service:
                continue
            if method is not None and e.method != method:
                continue
            if path is not None:
                if _glob(path):
                    if not fnmatch.fnmatchcase(e.path, path):
                        continue
                elif e.path != path:
                    continue
            out.append(e)
        return out

    def count(self, path: str, service: str | None = None, method: str | None = None) -> int:
        """How many requests hit ``path`` (exact, or a glob); pages of a list count one each."""
        return len(self.select(path, service, method))

    def mutating(self) -> list[Request]:
        """Requests with a method other than GET (POST ``:getIamPolicy``/``:testIamPermissions``
        are reads), whatever they were answered."""
        return [e for e in self.entries if e.mutating]

    def paths(self, service: str | None = None) -> collections.Counter:
        """``Counter`` of request paths (``service`` filters); iterate it for the distinct paths."""
        return collections.Counter(e.path for e in self.entries
                                   if service is None or e.service == service)

    def duplicates(self) -> dict[tuple[str, str, str, str], int]:
        """Requests sent more than once with the same service, method, path and query.

        Pages of one list differ in ``continue`` and so are not duplicates; retries are.
        """
        c = collections.Counter((e.service, e.method, e.path, e.query) for e in self.entries)
        return {k: n for k, n in c.items() if n > 1}

    def faults(self) -> list[Request]:
        return [e for e in self.entries if e.fault]


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault-injection rule.  The first rule that matches a request (and has budget left)
    applies; rules are tried in order.

    Matching: ``path`` is an ``fnmatch`` glob over the URL-decoded path with its leading slash
    (``*`` crosses ``/``); ``service`` is ``"k8s"`` or a Google service name (None: any);
    ``method`` (None: any); ``query`` a glob over the raw query string (None: any).
    ``times``: apply to the first N matching requests only, then let requests through (None:
    always).

    Actions (combinable: ``delay`` happens first, then one of the others):
      * ``delay``: seconds to wait before answering normally (or before the other action);
      * ``status`` (+ ``body``, ``headers``): answer that status instead.  ``body`` None gives
        the real body for the service and status (Kubernetes ``Status``, ``google.rpc.Status``,
        or the Cloud Storage legacy shape; a 403 names ``permission``/``principal`` when given;
        ``reason="SERVICE_DISABLED"`` gives that ErrorInfo); a dict/list is sent as JSON, str or
        bytes as is;
      * ``retry_after``: adds ``Retry-After`` (and Kubernetes ``details.retryAfterSeconds``);
      * ``reset``: close the connection without a response (TCP RST);
      * ``hang``: seconds to hold the connection open without answering (set it above the
        client's timeout; ``True``: an hour), then close it; ends early when the server stops;
      * ``truncate``: send the headers with the full Content-Length, then only part of the body
        (``True``: half; an int: that many bytes) and close;
      * ``invalid_json``: answer 200 (or ``status``) with a body that is not valid JSON.
    """

    path: str = "*"
    service: str | None = None
    method: str | None = None
    query: str | None = None
    times: int | None = None
    delay: float = 0.0
    status: int | None = None
    body: Any = None
    headers: dict | None = None
    retry_after: float | None = None
    reset: bool = False
    hang: float | None = None
    truncate: bool | int = False
    invalid_json: bool = False
    permission: str | None = None
    principal: str | None = None
    reason: str | None = None
    hits: int = field(default=0, compare=False)

    @classmethod
    def coerce(cls, rule: "Fault | dict") -> "Fault":
        return rule if isinstance(rule, Fault) else cls(**rule)

    @property
    def kind(self) -> str:
        for name in ("reset", "hang", "truncate", "invalid_json"):
            if getattr(self, name):
                return name
        if self.status is not None:
            return f"status:{self.status}"
        return "delay" if self.delay else "none"

    def matches(self, service: str, method: str, path: str, query: str) -> bool:
        if self.service is not None and self.service != service:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.query is not None and not fnmatch.fnmatchcase(query, self.query):
            return False
        return True


# --------------------------------------------------------------------------------------------
# Kubernetes helpers: paths, selectors, discovery
# --------------------------------------------------------------------------------------------


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _k8s_parse(p: str) -> dict | None:
    """``api/v1/namespaces/ns/pods/x/log`` -> group, version, namespace, resource, name, sub."""
    seg = [s for s in p.split("/") if s]
    if len(seg) >= 2 and seg[0] == "api":
        group, version, rest = "", seg[1], seg[2:]
    elif len(seg) >= 3 and seg[0] == "apis":
        group, version, rest = seg[1], seg[2], seg[3:]
    else:
        return None
    if not rest:
        return None
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    return {
        "group": group,
        "version": version,
        "namespace": ns,
        "resource": rest[0],
        "name": rest[1] if len(rest) > 1 else None,
        "subresource": "/".join(rest[2:]) or None,
    }


_LABEL_SET = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_LABEL_OP = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)\s*$")
_LABEL_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*$")


def _split_selector(sel: str) -> list[str]:
    terms, depth, cur = [], 0, []
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t for t in terms if t.strip()]


def _label_predicate(sel: str):
    tests = []
    for term in _split_selector(sel):
        m = _LABEL_SET.match(term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda lb, k=key, vs=values: k in lb and lb[k] in vs)
            else:
                tests.append(lambda lb, k=key, vs=values: k not in lb or lb[k] not in vs)
            continue
        m = _LABEL_OP.match(term)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=value: k in lb and lb[k] == v)
            continue
        m = _LABEL_EXISTS.match(term)
        if m:
            neg, key = m.groups()
            tests.append((lambda lb, k=key: k not in lb) if neg else (lambda lb, k=key: k in lb))
            continue
        raise ValueError(f'unable to parse requirement: found "{term.strip()}", expected: '
                         "identifier, '!', '=', '==', '!=', 'in', 'notin'")

    def pred(item: dict) -> bool:
        labels = _as_dict(_as_dict(item.get("metadata")).get("labels"))
        return all(t(labels) for t in tests)

    return pred


def _field_value(item: Any, dotted: str) -> str:
    cur = item
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def _field_predicate(sel: str):
    tests = []
    for term in _split_selector(sel):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise ValueError(f'invalid selector: \'{sel}\'; can\'t understand \'{term}\'')
        key, op, value = m.groups()
        if op == "!=":
            tests.append(lambda it, k=key, v=value: _field_value(it, k) != v)
        else:
            tests.append(lambda it, k=key, v=value: _field_value(it, k) == v)
    return lambda item: all(t(item) for t in tests)


# resource -> (kind, namespaced, shortNames) of the resources the tool and kubectl may read.
_BUILTIN_RESOURCES: dict[str, dict[str, tuple[str, bool, list[str]]]] = {
    "v1": {
        "pods": ("Pod", True, ["po"]),
        "events": ("Event", True, ["ev"]),
        "persistentvolumeclaims": ("PersistentVolumeClaim", True, ["pvc"]),
        "persistentvolumes": ("PersistentVolume", False, ["pv"]),
        "configmaps": ("ConfigMap", True, ["cm"]),
        "secrets": ("Secret", True, []),
        "serviceaccounts": ("ServiceAccount", True, ["sa"]),
        "services": ("Service", True, ["svc"]),
        "endpoints": ("Endpoints", True, ["ep"]),
        "nodes": ("Node", False, ["no"]),
        "namespaces": ("Namespace", False, ["ns"]),
        "resourcequotas": ("ResourceQuota", True, ["quota"]),
        "limitranges": ("LimitRange", True, ["limits"]),
    },
    "apps/v1": {
        "deployments": ("Deployment", True, ["deploy"]),
        "statefulsets": ("StatefulSet", True, ["sts"]),
        "replicasets": ("ReplicaSet", True, ["rs"]),
        "daemonsets": ("DaemonSet", True, ["ds"]),
    },
    "batch/v1": {
        "jobs": ("Job", True, []),
        "cronjobs": ("CronJob", True, ["cj"]),
    },
    "storage.k8s.io/v1": {
        "storageclasses": ("StorageClass", False, ["sc"]),
        "csidrivers": ("CSIDriver", False, []),
    },
    "events.k8s.io/v1": {"events": ("Event", True, ["ev"])},
    "policy/v1": {"poddisruptionbudgets": ("PodDisruptionBudget", True, ["pdb"])},
    "networking.k8s.io/v1": {"networkpolicies": ("NetworkPolicy", True, ["netpol"]),
                             "ingresses": ("Ingress", True, ["ing"]),
                             "ingressclasses": ("IngressClass", False, [])},
    "rbac.authorization.k8s.io/v1": {
        "roles": ("Role", True, []),
        "rolebindings": ("RoleBinding", True, []),
        "clusterroles": ("ClusterRole", False, []),
        "clusterrolebindings": ("ClusterRoleBinding", False, []),
    },
}

_READ_VERBS = ["get", "list", "watch"]


def _singular(kind: str) -> str:
    return kind.lower()


# --------------------------------------------------------------------------------------------
# The snapshot store
# --------------------------------------------------------------------------------------------


class _Page:
    """A stored list, parsed once: the list without items, and each item parsed and encoded."""

    __slots__ = ("head", "items", "encoded", "rv")

    def __init__(self, body: dict) -> None:
        items = body.get("items") or []
        self.head = {k: v for k, v in body.items() if k != "items"}
        md = dict(_as_dict(self.head.get("metadata")))
        md.pop("continue", None)
        md.pop("remainingItemCount", None)
        self.head["metadata"] = md
        self.items = items
        self.encoded = [_dumps(it) for it in items]
        self.rv = str(md.get("resourceVersion") or "1")


class _Store:
    """Read-through cache over a snapshot directory; paths are relative, '/'-separated."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._bytes: dict[str, bytes] = {}
        self._json: dict[str, Any] = {}
        self._pages: dict[str, _Page] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._bytes.clear()
            self._json.clear()
            self._pages.clear()

    def _file(self, rel: str) -> Path | None:
        if "\x00" in rel or any(s in ("..", ".") for s in rel.split("/")) or rel.startswith("/"):
            return None
        return self.root / rel

    def read(self, rel: str) -> bytes | None:
        cached = self._bytes.get(rel)
        if cached is not None:
            return cached
        f = self._file(rel)
        if f is None:
            return None
        try:
            data = f.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError:
            return None
        self._bytes[rel] = data
        return data

    def json(self, rel: str) -> Any:
        """Parsed JSON of ``rel``, None if absent; raises ValueError for invalid JSON."""
        if rel in self._json:
            return self._json[rel]
        raw = self.read(rel)
        if raw is None:
            return None
        value = _loads(raw)
        self._json[rel] = value
        return value

    def page(self, rel: str) -> _Page | None:
        page = self._pages.get(rel)
        if page is None:
            body = self.json(rel)
            if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
                return None
            page = _Page(body)
            self._pages[rel] = page
        return page

    def error(self, *rels: str) -> tuple[int, Any] | None:
        """``(status, body)`` of the first ``<rel>.error.json`` that exists."""
        for rel in rels:
            try:
                doc = self.json(rel + ".error.json")
            except ValueError:
                return 500, {"message": f"replay: invalid JSON in {rel}.error.json"}
            if doc is None:
                continue
            status = doc.get("status") if isinstance(doc, dict) else None
            body = doc.get("body") if isinstance(doc, dict) else doc
            if not isinstance(status, int) or not 100 <= status <= 599:
                # A transport failure (timeout, reset) was recorded without an HTTP status.
                status = 504
            return status, body
        return None

    def is_dir(self, rel: str) -> bool:
        f = self._file(rel)
        return f is not None and f.is_dir()

    def glob(self, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)).replace(os.sep, "/")
                      for p in self.root.glob(pattern))


# --------------------------------------------------------------------------------------------
# Responses and the HTTP layer
# --------------------------------------------------------------------------------------------


@dataclass
class _Resp:
    status: int
    body: bytes = b""
    content_type: str = _JSON
    headers: dict = field(default_factory=dict)


def _json_resp(status: int, obj: Any, content_type: str = _JSON, headers: dict | None = None) -> _Resp:
    return _Resp(status, _dumps(obj), content_type, headers or {})


def _body_resp(status: int, body: Any, content_type: str = _JSON) -> _Resp:
    """A stored error body: JSON as JSON, text as text."""
    if isinstance(body, (bytes, bytearray)):
        return _Resp(status, bytes(body), _TEXT)
    if isinstance(body, str):
        return _Resp(status, body.encode(), _TEXT)
    if body is None:
        body = {}
    return _Resp(status, _dumps(body), content_type)


_REASON_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, replay: "ReplayServer", service: str, host: str) -> None:
        self.replay = replay
        self.service = service
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((host, 0), _Handler)

    def process_request(self, request, client_address) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the kept-alive connections, so no handler thread answers after stop()."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:  # noqa: D401 - quiet on resets
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 120  # an idle keep-alive connection is dropped after this

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        t0 = time.perf_counter()
        replay, service = self.server.replay, self.server.service
        method = self.command
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target
            target = "/" + target.split("://", 1)[1].split("/", 1)[-1]
        raw_path, _, query = target.partition("?")
        path = urllib.parse.unquote(raw_path) or "/"
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        entry = Request(service, method, path, query, None, 0.0, None,
                        _Headers(self.headers.items()), body)

        fault = replay._take_fault(service, method, path, query)
        if fault is not None:
            entry.fault = fault.kind
            if fault.delay:
                replay._stopping.wait(fault.delay)
            if fault.reset:
                entry.duration = time.perf_counter() - t0
                replay.log.append(entry)
                self._reset()
                return
            if fault.hang:
                replay.log.append(entry)
                replay._stopping.wait(3600.0 if fault.hang is True else float(fault.hang))
                entry.duration = time.perf_counter() - t0
                self._reset()
                return

        try:
            resp = replay._route(service, method, path, raw_path, query, body, self.headers)
        except Exception as exc:  # a bug here must show up as a 500, not a hung client
            resp = replay._error(service, 500, path,
                                 message=f"replay server error: {type(exc).__name__}: {exc}")
        if fault is not None:
            resp = replay._apply_fault(fault, service, path, resp)
        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True

        entry.status = resp.status
        entry.duration = time.perf_counter() - t0
        replay.log.append(entry)  # before the answer: a client that got it finds its entry

        cut = None
        if fault is not None and fault.truncate:
            cut = (len(resp.body) // 2 if fault.truncate is True else int(fault.truncate))
            cut = max(0, min(cut, max(len(resp.body) - 1, 0)))
        self._write(resp, cut)

    def _write(self, resp: _Resp, cut: int | None) -> None:
        phrase = _REASON_PHRASES.get(resp.status, "Unknown")
        lines = [f"HTTP/1.1 {resp.status} {phrase}",
                 f"Content-Type: {resp.content_type}",
                 f"Content-Length: {len(resp.body)}"]
        for k, v in resp.headers.items():
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if cut is None:
                self.wfile.write(head + resp.body)
            else:  # part of the body, then an orderly close: the client reads a short body
                self.wfile.write(head + resp.body[:cut])
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Close the connection with a TCP RST and no (further) response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


# --------------------------------------------------------------------------------------------
# Cloud Storage objects (allow_writes)
# --------------------------------------------------------------------------------------------


@dataclass
class StoredObject:
    bucket: str
    name: str
    data: bytes
    content_type: str
    generation: int
    created: str

    def resource(self, base_url: str) -> dict:
        md5 = base64.b64encode(hashlib.md5(self.data).digest()).decode()
        quoted = urllib.parse.quote(self.name, safe="")
        return {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": f"{base_url}/download/storage/v1/b/{self.bucket}/o/{quoted}"
                         f"?generation={self.generation}&alt=media",
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": "1",
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(len(self.data)),
            "md5Hash": md5,
            "crc32c": _crc32c_b64(self.data),
            "etag": base64.b64encode(struct.pack(">Q", self.generation)).decode().rstrip("="),
            "timeCreated": self.created,
            "updated": self.created,
            "timeStorageClassUpdated": self.created,
        }


def _crc32c_b64(data: bytes) -> str:
    try:
        import google_crc32c

        value = google_crc32c.value(data)
    except ImportError:  # pragma: no cover - google-cloud-storage depends on it
        value = 0
    return base64.b64encode(struct.pack(">I", value)).decode()


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict, bytes, str]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart upload without a boundary")
    boundary = m.group(1).encode()
    delimiter = b"\r\n--" + boundary
    body = b"\r\n" + body  # so the first delimiter looks like the others
    parts = body.split(delimiter)[1:]
    out = []
    for part in parts:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        ctype = ""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-type:"):
                ctype = line.split(b":", 1)[1].strip().decode()
        out.append((ctype, content))
    if len(out) < 2:
        raise ValueError("multipart upload needs a metadata part and a media part")
    metadata = _loads(out[0][1]) if out[0][1].strip() else {}
    return metadata, out[1][1], out[1][0] or "application/octet-stream"


# --------------------------------------------------------------------------------------------
# The replay server
# --------------------------------------------------------------------------------------------


class ReplayServer:
    """Serves one snapshot as a Kubernetes API server and as Google REST endpoints.

    ``snapshot``: a snapshot directory (or a ``.tar.gz`` of one, extracted to a temporary folder).
    ``faults``: :class:`Fault` rules (or dicts of their fields).
    ``allow_writes``: serve the Cloud Storage object write/read/delete cycle in memory.
    ``principal``: the caller named in generated 403 bodies (default
    ``airflow-gke@<project>.iam.gserviceaccount.com``).
    ``synthesize``: answer reads the snapshot implies but did not store: a single object from its
    stored list, an all-namespaces list from the namespaced lists, a namespace whose objects were
    stored.  Never invents an object that is not in the snapshot.
    """

    def __init__(self, snapshot: str | os.PathLike, faults: Iterable[Fault | dict] = (), *,
                 allow_writes: bool = False, principal: str | None = None,
                 synthesize: bool = True, services: Iterable[str] = GOOGLE_SERVICES,
                 host: str = "127.0.0.1", tls: bool = False, bearer: str | None = None,
                 issue_token: str | None = None, max_page_size: int | None = None) -> None:
        self._tmp: str | None = None
        # tls: the Kubernetes API over HTTPS with a certificate of its own CA (``ca_pem``), as a GKE
        # control plane's IP endpoint (masterAuth.clusterCaCertificate). bearer: the Kubernetes API
        # answers 401 Unauthorized unless ``Authorization: Bearer <bearer>``. issue_token: an OAuth 2.0
        # token endpoint (service ``oauth2``, ``POST /token``) that answers this access token, the
        # ``token_uri`` of an authorized_user ADC file (:meth:`write_adc`).
        self.tls = tls
        self.bearer = bearer
        self.issue_token = issue_token
        self.ca_pem: str | None = None
        self._tls_files: tuple[str, str] | None = None
        if issue_token is not None and OAUTH2 not in tuple(services):
            services = (*services, OAUTH2)
        root = Path(snapshot)
        if root.is_file():
            root = self._extract(root)
        self.root = self._find_root(root)
        self.meta: dict = self._read_meta()
        self.store = _Store(self.root)
        self._builtins: dict[str, bytes] = {}  # discovery and /version bodies
        self._served: dict[str, dict[str, tuple[str, bool]]] = {}  # group/version -> served resource types
        self.log = RequestLog()
        self.log.allow_writes = allow_writes
        self.faults: list[Fault] = [Fault.coerce(f) for f in faults]
        self._fault_lock = threading.Lock()
        self.allow_writes = allow_writes
        project = self.meta.get("project") or "example-project"
        self.principal = principal or f"airflow-gke@{project}.iam.gserviceaccount.com"
        self.synthesize = synthesize
        # Google lists that page (Secret Manager secrets.list): the server answers at most
        # min(pageSize, max_page_size) items a page, as an API may answer fewer than asked.
        self.max_page_size = max_page_size
        extra = sorted(d.name for d in (self.root / "gcp").iterdir()
                       if d.is_dir() and d.name not in tuple(services)) \
            if (self.root / "gcp").is_dir() else []
        self.services = (*services, *extra)  # a service the snapshot has gets a server too
        self.host = host
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.buckets: set[str] = set()      # buckets objects were put in (put_object): they exist
        self._groups: dict[str, str] = {}   # Cloud Identity group id -> email (groups:lookup answers)
        self._objects_lock = threading.Lock()
        self._generation = 1_700_000_000_000_000
        self.storage_denied_principal: str | None = None
        self._stopping = threading.Event()
        self._servers: dict[str, _HTTPServer] = {}
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "ReplayServer":
        if self._servers:
            return self
        self._stopping.clear()
        try:
            for service in (K8S, *self.services):
                srv = _HTTPServer(self, service, self.host)
                if service == K8S and self.tls:
                    srv.socket = self._tls_context().wrap_socket(srv.socket, server_side=True)
                self._servers[service] = srv
                t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                     name=f"replay-{service}", daemon=True)
                t.start()
                self._threads.append(t)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends hangs and delays
        # shutdown() waits for the serve loop's next poll: stop all servers at once.
        stoppers = [threading.Thread(target=srv.shutdown, daemon=True) for srv in self._servers.values()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=5)
        for srv in self._servers.values():
            srv.server_close()
            srv.close_connections()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    close = stop

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- addresses and client wiring -------------------------------------------------------

    def _url(self, service: str) -> str:
        srv = self._servers.get(service)
        if srv is None:
            raise RuntimeError("ReplayServer is not started (use it as a context manager)")
        host, port = srv.server_address[:2]
        return f"{'https' if service == K8S and self.tls else 'http'}://{host}:{port}"

    @property
    def k8s_address(self) -> str:
        """``host:port`` of the Kubernetes API (a cluster's ``endpoint`` in a Container API answer)."""
        return self.k8s_url.split("://", 1)[1]

    def _tls_context(self):
        """A server context whose certificate (127.0.0.1 and localhost) is signed by a CA made for
        this server alone; the CA's PEM is :attr:`ca_pem`."""
        import datetime
        import ipaddress
        import ssl

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.timezone.utc)

        def cert(subject: str, key, issuer_name, issuer_key, ca: bool):
            b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                 .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(minutes=5))
                 .not_valid_after(now + datetime.timedelta(days=1))
                 .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if ca:
                b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            else:
                b = b.add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(self.host)), x509.DNSName("localhost")]), critical=False)
                b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                    critical=False)
            return b.sign(issuer_key, hashes.SHA256())

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "replay cluster CA")])
        ca_cert = cert("replay cluster CA", ca_key, ca_name, ca_key, True)
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = cert(self.host, key, ca_name, ca_key, False)
        pem = serialization.Encoding.PEM
        self.ca_pem = ca_cert.public_bytes(pem).decode()
        tmp = tempfile.mkdtemp(prefix="replay-tls-")
        crt, keyf = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        with open(crt, "wb") as fh:
            fh.write(leaf.public_bytes(pem))
        with open(keyf, "wb") as fh:
            fh.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self._tls_files = (crt, keyf)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, keyf)
        shutil.rmtree(tmp, ignore_errors=True)
        return ctx

    def write_adc(self, path: str | os.PathLike) -> Path:
        """A service account key file as Application Default Credentials
        (``GOOGLE_APPLICATION_CREDENTIALS``) whose ``token_uri`` is this server's token endpoint:
        google-auth signs its JWT grant with the (freshly made) key, posts it there and gets
        :attr:`issue_token`. (An ``authorized_user`` file cannot serve: google-auth always sends
        those to oauth2.googleapis.com.)"""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if self.issue_token is None:
            raise RuntimeError("ReplayServer(issue_token=...) serves no token endpoint")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        project = self.meta.get("project") or "example-project"
        path = Path(path)
        path.write_text(json.dumps({
            "type": "service_account", "project_id": project, "private_key_id": "0" * 40,
            "private_key": pem, "client_email": f"airflow-gke-doctor@{project}.iam.gserviceaccount.com",
            "client_id": "100000000000000000000", "token_uri": f"{self._url(OAUTH2)}/token"}))
        os.chmod(path, 0o600)
        return path

    @property
    def k8s_url(self) -> str:
        return self._url(K8S)

    @property
    def endpoints(self) -> dict[str, str]:
        """Google service name -> base URL (``http://127.0.0.1:PORT``, no trailing slash)."""
        return {s: self._url(s) for s in self.services}

    def env(self, kubeconfig: str | os.PathLike | None = None) -> dict[str, str]:
        """``AIRFLOW_GKE_ENDPOINT_<SERVICE>`` for every Google service (+ ``KUBECONFIG`` if given)."""
        env = {ENV_PREFIX + s.upper(): url for s, url in self.endpoints.items()}
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        return env

    @property
    def context_name(self) -> str:
        """``gke_<project>_<location>_<cluster>`` from meta.json (``replay`` when one is null)."""
        p, loc, c = (self.meta.get(k) for k in ("project", "location", "cluster"))
        if p and loc and c:
            return f"gke_{p}_{loc}_{c}"
        return "replay"

    def write_kubeconfig(self, path: str | os.PathLike, context_name: str | None = None,
                         namespace: str | None = None, token: str = "replay-dummy-token") -> Path:
        """Write a kubeconfig whose current context points at :attr:`k8s_url`; returns its path."""
        name = context_name or self.context_name
        namespace = namespace or self.meta.get("namespace") or "default"
        context = {"cluster": name, "user": name, "namespace": namespace}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": self.k8s_url}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": context}],
            "current-context": name,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: every kubeconfig loader (client-go, kubernetes-python) reads it.
        path.write_text(json.dumps(config, indent=2) + "\n")
        os.chmod(path, 0o600)
        return path

    # ---- faults and hooks ------------------------------------------------------------------

    def add_fault(self, rule: Fault | dict | None = None, **fields: Any) -> Fault:
        fault = Fault.coerce(rule) if rule is not None else Fault(**fields)
        with self._fault_lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._fault_lock:
            self.faults.clear()

    def _take_fault(self, service: str, method: str, path: str, query: str) -> Fault | None:
        if not self.faults:
            return None
        with self._fault_lock:
            for f in self.faults:
                if f.times is not None and f.hits >= f.times:
                    continue
                if f.matches(service, method, path, query):
                    f.hits += 1
                    return f
        return None

    def deny_storage_writes(self, principal: str | None = None) -> None:
        """Object writes (and deletes) answer 403 as Cloud Storage does for ``principal``."""
        self.storage_denied_principal = principal or self.principal

    def allow_storage_writes(self) -> None:
        self.storage_denied_principal = None

    def invalidate(self) -> None:
        """Forget cached file contents (after changing the snapshot under a running server)."""
        self.store.invalidate()
        self._builtins.clear()
        self._served.clear()

    # ---- snapshot --------------------------------------------------------------------------

    def _extract(self, archive: Path) -> Path:
        self._tmp = tempfile.mkdtemp(prefix="replay-snapshot-")
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(self._tmp, filter="data")
        return Path(self._tmp)

    @staticmethod
    def _find_root(root: Path) -> Path:
        if (root / "meta.json").is_file():
            return root
        subdirs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        if len(subdirs) == 1 and (subdirs[0] / "meta.json").is_file():
            return subdirs[0]
        raise FileNotFoundError(f"{root}: not a snapshot (no meta.json)")

    def _read_meta(self) -> dict:
        meta = json.loads((self.root / "meta.json").read_text())
        return meta if isinstance(meta, dict) else {}

    # ---- routing ---------------------------------------------------------------------------

    def _error(self, service: str, code: int, path: str, message: str | None = None,
               reason: str | None = None, permission: str | None = None,
               principal: str | None = None, retry_after: float | None = None) -> _Resp:
        """The real error body of ``service`` for ``code``."""
        principal = principal or self.principal
        if service == K8S:
            if code == 403 and message is None:
                body = k8s_forbidden(path, principal)
            elif code == 404 and message is None:
                body = _k8s_not_found(path)
            else:
                body = k8s_status(code, message, reason)
            if retry_after is not None:
                body["details"] = {**body.get("details", {}), "retryAfterSeconds": int(retry_after)}
            return _json_resp(code, body)
        if service == "storage":
            if code == 403 and message is None and permission:
                what = ("Google Cloud Storage object" if "objects" in permission
                        else "Google Cloud Storage bucket")
                return _json_resp(code, gcs_forbidden(principal, permission, what), _GOOGLE_JSON)
            return _json_resp(code, gcs_error(code, message, reason), _GOOGLE_JSON)
        if service == "compute" and message is None and (code == 404 or (code == 403 and permission)) \
                and reason != "SERVICE_DISABLED":
            return _json_resp(code, compute_error(code, path, permission), _GOOGLE_JSON)
        if code == 403 and message is None:
            if reason == "SERVICE_DISABLED":
                return _json_resp(code, google_service_disabled(
                    service, self.meta.get("project") or "example-project"), _GOOGLE_JSON)
            if permission:
                return _json_resp(code, google_permission_denied(permission), _GOOGLE_JSON)
        if code == 429 and message is None:
            api = f"{service}.googleapis.com"
            message = (f"Quota exceeded for quota metric 'Read requests' and limit 'Read requests "
                       f"per minute per user' of service '{api}' for consumer "
                       f"'project_number:{self._project_number()}'.")
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
                        "metadata": {"service": api,
                                     "consumer": f"projects/{self._project_number()}",
                                     "quota_metric": f"{api}/read_requests",
                                     "quota_limit": "ReadRequestsPerMinutePerUser"}}]
            return _json_resp(code, google_error(code, message, None, details), _GOOGLE_JSON)
        return _json_resp(code, google_error(code, message, reason), _GOOGLE_JSON)

    def _project_number(self) -> str:
        try:
            proj = self.store.json(f"gcp/cloudresourcemanager/v3/projects/{self.meta.get('project')}.json")
        except ValueError:
            proj = None
        name = (proj or {}).get("name", "") if isinstance(proj, dict) else ""
        return name.split("/")[-1] if name.startswith("projects/") else "123456789012"

    def _apply_fault(self, fault: Fault, service: str, path: str, resp: _Resp) -> _Resp:
        if fault.status is not None:
            if fault.body is not None:
                ctype = _JSON if service == K8S else _GOOGLE_JSON
                body = fault.body
                if isinstance(body, (dict, list)):
                    resp = _Resp(fault.status, _dumps(body), ctype)
                else:
                    resp = _Resp(fault.status, body.encode() if isinstance(body, str) else bytes(body),
                                 ctype)
            else:
                resp = self._error(service, fault.status, path, reason=fault.reason,
                                   permission=fault.permission, principal=fault.principal,
                                   retry_after=fault.retry_after)
        if fault.invalid_json:
            broken = resp.body[: len(resp.body) // 2] if len(resp.body) > 2 else b'{"kind": '
            resp = _Resp(resp.status, broken + b"\x00<!-- not json -->", resp.content_type,
                         dict(resp.headers))
        if fault.retry_after is not None:
            ra = fault.retry_after
            resp.headers = {**resp.headers, "Retry-After": str(int(ra)) if float(ra).is_integer() else str(ra)}
        if fault.headers:
            resp.headers = {**resp.headers, **fault.headers}
        return resp

    def _route(self, service: str, method: str, path: str, raw_path: str, query: str,
               body: bytes, headers: Any) -> _Resp:
        if service == K8S:
            if self.bearer is not None and (headers.get("Authorization") or "") != f"Bearer {self.bearer}":
                return _json_resp(401, k8s_status(401, "Unauthorized", "Unauthorized"))
            return self._route_k8s(method, path, query)
        if service == OAUTH2:
            if method == "POST" and path == "/token" and self.issue_token is not None:
                return _json_resp(200, {"access_token": self.issue_token, "expires_in": 3599,
                                        "token_type": "Bearer",
                                        "scope": "https://www.googleapis.com/auth/cloud-platform"})
            return _json_resp(400, {"error": "invalid_request"})
        return self._route_google(service, method, path, raw_path, query, body, headers)

    # ---- Kubernetes ------------------------------------------------------------------------

    def _route_k8s(self, method: str, path: str, query: str) -> _Resp:
        if method != "GET":
            return _json_resp(405, k8s_status(405))
        p = path.strip("/")
        segs = p.split("/")
        if ".." in segs or "\x00" in p:
            return _json_resp(400, k8s_status(400, f"invalid path: /{p}"))
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) if query else {}

        if (len(segs) == 7 and segs[0] == "api" and segs[2] == "namespaces" and segs[4] == "pods"
                and segs[6] == "log"):
            return self._pod_log(segs[3], segs[5], params)

        rel = f"k8s/{p}.json"
        raw = self.store.read(rel) if p else None
        if raw is not None:
            if not self._wants_page(params):
                return _Resp(200, raw)
            return self._list_page(rel, p, params)
        err = self.store.error(f"k8s/{p}")
        if err is not None:
            return _body_resp(err[0], err[1])
        builtin = self._builtins.get(p)
        if builtin is None:
            body = self._k8s_builtin(p)
            if body is not None:
                builtin = self._builtins[p] = _dumps(body)
        if builtin is not None:
            return _Resp(200, builtin)
        if self.synthesize:
            synth = self._k8s_synthesize(p, params)
            if synth is not None:
                return synth
        empty = self._k8s_empty_list(p, params)
        if empty is not None:
            return empty
        return _json_resp(404, _k8s_not_found(p))

    def _k8s_empty_list(self, p: str, params: dict) -> _Resp | None:
        """What a real API server answers for a list of a resource type it serves that the
        snapshot holds nothing of: an empty list, in any namespace (one that does not exist
        included: the API server does not check that the namespace exists before listing).
        Unknown resource types (a CRD that is not installed) stay 404."""
        parts = _k8s_parse(p)
        if parts is None or parts["name"] is not None or parts["subresource"]:
            return None
        gv = parts["version"] if not parts["group"] else f"{parts['group']}/{parts['version']}"
        known = self._served_resources(gv).get(parts["resource"])
        if known is None:
            return None
        kind, namespaced = known
        if parts["namespace"] is not None and not namespaced:
            return None   # a cluster-scoped type under /namespaces/<ns>/ is an unknown path
        page = _Page({"kind": f"{kind}List", "apiVersion": gv, "metadata": {"resourceVersion": "1"}, "items": []})
        return self._list_page("", p, params, page)

    def _served_resources(self, gv: str) -> dict[str, tuple[str, bool]]:
        """resource -> (kind, namespaced) of the types this server serves in group/version ``gv``:
        the built-in ones and those the snapshot stores lists of (a custom resource whose CRD is
        installed); cached like the discovery bodies."""
        table = self._served.get(gv)
        if table is None:
            table = {} if gv not in self._group_versions() else {
                r["name"]: (r["kind"], r["namespaced"]) for r in self._resource_list(gv)["resources"]
                if "/" not in r["name"]}
            self._served[gv] = table
        return table

    @staticmethod
    def _wants_page(params: dict) -> bool:
        return bool(params.get("limit") or params.get("continue") or params.get("labelSelector")
                    or params.get("fieldSelector"))

    def _list_page(self, rel: str, p: str, params: dict, page: _Page | None = None) -> _Resp:
        try:
            page = page or self.store.page(rel)
        except ValueError:
            page = None
        if page is None:  # not a list: selectors and limit do not apply
            raw = self.store.read(rel)
            return _Resp(200, raw if raw is not None else b"{}")
        label_sel, field_sel = params.get("labelSelector"), params.get("fieldSelector")
        try:
            if label_sel or field_sel:
                lp = _label_predicate(label_sel) if label_sel else (lambda it: True)
                fp = _field_predicate(field_sel) if field_sel else (lambda it: True)
                encoded = [e for it, e in zip(page.items, page.encoded)
                           if isinstance(it, dict) and lp(it) and fp(it)]
            else:
                encoded = page.encoded
        except ValueError as exc:
            return _json_resp(400, k8s_status(400, str(exc)))
        try:
            limit = int(params.get("limit") or 0)
        except ValueError:
            return _json_resp(400, k8s_status(400, f"invalid limit: {params.get('limit')!r}"))
        key = hashlib.sha1(f"{p}?{label_sel or ''}&{field_sel or ''}".encode()).hexdigest()[:12]
        start = 0
        token = params.get("continue")
        if token:
            try:
                doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                if doc.get("v") != "meta.k8s.io/v1" or doc.get("k") != key:
                    raise ValueError("key provided doesn't match this list")
                start = int(doc["start"])
                if not 0 <= start <= len(encoded):
                    raise ValueError("continue key is out of range")
            except Exception as exc:  # noqa: BLE001 - any malformed token is a 400
                return _json_resp(400, k8s_status(400, f"continue key is not valid: {exc}"))
        end = len(encoded) if limit <= 0 else min(start + limit, len(encoded))
        md = dict(_as_dict(page.head.get("metadata")))
        if end < len(encoded):
            tok = {"v": "meta.k8s.io/v1", "rv": int(page.rv) if page.rv.isdigit() else page.rv,
                   "start": end, "k": key}
            md["continue"] = base64.urlsafe_b64encode(
                json.dumps(tok, separators=(",", ":")).encode()).decode().rstrip("=")
            if not (label_sel or field_sel):  # the API server cannot count under a selector
                md["remainingItemCount"] = len(encoded) - end
        head = dict(page.head)
        head["metadata"] = md
        out = _dumps(head)[:-1] + b',"items":[' + b",".join(encoded[start:end]) + b"]}"
        return _Resp(200, out)

    def _k8s_builtin(self, p: str) -> dict | None:
        if p == "version":
            return self._version()
        if p == "api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                    "serverAddress": "10.0.0.2:443"}]}
        if p == "apis":
            groups = []
            for gv in self._group_versions():
                if gv == "v1":
                    continue
                g, v = gv.split("/")
                ver = {"groupVersion": gv, "version": v}
                groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        segs = p.split("/")
        if len(segs) == 2 and segs[0] == "api" and segs[1] == "v1":
            return self._resource_list("v1")
        if len(segs) == 2 and segs[0] == "apis":
            versions = [gv for gv in self._group_versions() if gv.startswith(segs[1] + "/")]
            if not versions:
                return None
            ver = {"groupVersion": versions[0], "version": versions[0].split("/")[1]}
            return {"kind": "APIGroup", "apiVersion": "v1", "name": segs[1], "versions": [ver],
                    "preferredVersion": ver}
        if len(segs) == 3 and segs[0] == "apis":
            gv = f"{segs[1]}/{segs[2]}"
            if gv in self._group_versions():
                return self._resource_list(gv)
        return None

    def _group_versions(self) -> list[str]:
        gvs = list(_BUILTIN_RESOURCES)
        for d in self.store.glob("k8s/apis/*/*"):
            parts = d.split("/")
            if len(parts) == 4 and self.store.is_dir(d):
                gv = f"{parts[2]}/{parts[3]}"
                if gv not in gvs:
                    gvs.append(gv)
        return gvs

    def _resource_list(self, gv: str) -> dict:
        resources = dict(_BUILTIN_RESOURCES.get(gv, {}))
        prefix = "k8s/api/v1" if gv == "v1" else f"k8s/apis/{gv}"
        for f in self.store.glob(f"{prefix}/*.json") + self.store.glob(f"{prefix}/namespaces/*/*.json"):
            name = f.rsplit("/", 1)[1][: -len(".json")]
            if name.endswith(".error") or name in resources:
                continue
            try:
                body = self.store.json(f)
            except ValueError:
                continue
            kind = str((body or {}).get("kind", "")).removesuffix("List") if isinstance(body, dict) else ""
            if kind:
                resources[name] = (kind, "/namespaces/" in f, [])
        out = []
        for name, (kind, namespaced, short) in sorted(resources.items()):
            r = {"name": name, "singularName": _singular(kind), "namespaced": namespaced,
                 "kind": kind, "verbs": list(_READ_VERBS)}
            if short:
                r["shortNames"] = short
            out.append(r)
            if gv == "v1" and name == "pods":
                out.append({"name": "pods/log", "singularName": "", "namespaced": True,
                            "kind": "Pod", "verbs": ["get"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

    def _version(self) -> dict:
        version = "1.30.5-gke.1014001"
        p, loc, c = (self.meta.get(k) for k in ("project", "location", "cluster"))
        try:
            cluster = self.store.json(f"gcp/container/v1/projects/{p}/locations/{loc}/clusters/{c}.json")
        except ValueError:
            cluster = None
        if isinstance(cluster, dict) and cluster.get("currentMasterVersion"):
            version = str(cluster["currentMasterVersion"])
        m = re.match(r"(\d+)\.(\d+)", version)
        major, minor = (m.group(1), m.group(2)) if m else ("1", "30")
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "gitVersion": f"v{version}",
            "gitCommit": hashlib.sha1(version.encode()).hexdigest(),
            "gitTreeState": "clean",
            "buildDate": "2024-09-05T09:21:36Z",
            "goVersion": "go1.22.6 X:boringcrypto",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _k8s_synthesize(self, p: str, params: dict) -> _Resp | None:
        parts = _k8s_parse(p)
        if parts is None:
            return None
        prefix = "api/v1" if not parts["group"] else f"apis/{parts['group']}/{parts['version']}"
        ns, res, name = parts["namespace"], parts["resource"], parts["name"]
        if parts["subresource"]:
            return None
        if name is not None:
            # One object out of its stored list.
            list_rel = (f"k8s/{prefix}/namespaces/{ns}/{res}.json" if ns
                        else f"k8s/{prefix}/{res}.json")
            try:
                body = self.store.json(list_rel)
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("items"), list):
                for item in body["items"]:
                    if isinstance(item, dict) and _as_dict(item.get("metadata")).get("name") == name:
                        obj = dict(item)
                        obj.setdefault("kind", str(body.get("kind", "")).removesuffix("List"))
                        obj.setdefault("apiVersion", body.get("apiVersion", "v1"))
                        return _json_resp(200, obj)
                return None
            list_err = self.store.error(list_rel[: -len(".json")])
            if list_err is not None:
                # The list failed when the snapshot was taken: a get of one of its objects would
                # have failed alike (a 403 is re-worded for the get).
                if list_err[0] == 403:
                    return _json_resp(403, k8s_forbidden(p, self.principal, verb="get"))
                return _body_resp(list_err[0], list_err[1])
            if prefix == "api/v1" and res == "namespaces" and ns is None and \
                    self.store.is_dir(f"k8s/api/v1/namespaces/{name}"):
                return _json_resp(200, self._namespace_object(name))
            return None
        if ns is None:
            if prefix == "api/v1" and res == "namespaces":
                names = sorted({f.split("/")[4] for f in self.store.glob("k8s/api/v1/namespaces/*")
                                if self.store.is_dir(f)}
                               | {f.split("/")[5] for f in self.store.glob("k8s/apis/*/*/namespaces/*")
                                  if self.store.is_dir(f)})
                if not names:
                    return None
                page = _Page({"kind": "NamespaceList", "apiVersion": "v1",
                              "metadata": {"resourceVersion": "1"},
                              "items": [self._namespace_object(n, kind=False) for n in names]})
                return self._list_page("", p, params, page)
            # All namespaces: the stored namespaced lists, merged.
            files = [f for f in self.store.glob(f"k8s/{prefix}/namespaces/*/{res}.json")]
            if not files:
                return None
            head, items = None, []
            for f in files:
                try:
                    body = self.store.json(f)
                except ValueError:
                    continue
                if isinstance(body, dict) and isinstance(body.get("items"), list):
                    head = head or body
                    items.extend(body["items"])
            if head is None:
                return None
            merged = {k: v for k, v in head.items() if k != "items"}
            merged["items"] = items
            return self._list_page("", p, params, _Page(merged))
        return None

    @staticmethod
    def _namespace_object(name: str, kind: bool = True) -> dict:
        obj = {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        if kind:
            obj = {"kind": "Namespace", "apiVersion": "v1", **obj}
        return obj

    def _pod(self, ns: str, pod: str) -> dict | None:
        try:
            obj = self.store.json(f"k8s/api/v1/namespaces/{ns}/pods/{pod}.json")
            if isinstance(obj, dict) and obj.get("metadata"):
                return obj
            page = self.store.page(f"k8s/api/v1/namespaces/{ns}/pods.json")
        except ValueError:
            return None
        if page is None:
            return None
        for item in page.items:
            if isinstance(item, dict) and _as_dict(item.get("metadata")).get("name") == pod:
                return item
        return None

    def _pod_log(self, ns: str, pod: str, params: dict) -> _Resp:
        container = params.get("container") or ""
        previous = params.get("previous", "").lower() in ("true", "1", "t", "yes")
        base = f"k8s/api/v1/namespaces/{ns}/pods/{pod}/log"
        podobj = spec = None
        names = init_names = eph_names = []

        def load_pod() -> None:
            nonlocal podobj, spec, names, init_names, eph_names
            podobj = self._pod(ns, pod)
            spec = _as_dict((podobj or {}).get("spec"))
            names, init_names, eph_names = (
                [c.get("name") for c in _as_list(spec.get(k)) if isinstance(c, dict)]
                for k in ("containers", "initContainers", "ephemeralContainers"))

        if not container:
            load_pod()
            if podobj is not None:
                if len(names) == 1:
                    container = str(names[0])
                else:
                    msg = (f"a container name must be specified for pod {pod}, choose one of: "
                           f"[{' '.join(map(str, names))}]")
                    if init_names:
                        msg += f" or one of the init containers: [{' '.join(map(str, init_names))}]"
                    return _json_resp(400, k8s_status(400, msg, "BadRequest"))
            else:
                stored = [f.rsplit("/", 1)[1][:-4] for f in self.store.glob(f"{base}/*.log")
                          if not f.endswith(".previous.log")]
                if len(stored) != 1:
                    return _json_resp(404, _k8s_not_found(f"api/v1/namespaces/{ns}/pods/{pod}"))
                container = stored[0]
        if "/" in container or container in (".", ".."):
            return _json_resp(400, k8s_status(400, f"container {container} is not valid for pod {pod}"))
        stem = f"{base}/{container}" + (".previous" if previous else "")
        data = self.store.read(stem + ".log")
        if data is not None:
            try:
                tail = int(params["tailLines"]) if params.get("tailLines") else None
                limit_bytes = int(params["limitBytes"]) if params.get("limitBytes") else None
            except ValueError as exc:
                return _json_resp(400, k8s_status(400, str(exc)))
            if tail is not None and tail >= 0:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            if limit_bytes is not None and limit_bytes > 0:
                data = data[:limit_bytes]
            return _Resp(200, data, _TEXT)
        err = self.store.error(stem, stem + ".log")
        if err is not None:
            return _body_resp(err[0], err[1])
        if podobj is None:
            load_pod()
        if podobj is None:
            return _json_resp(404, _k8s_not_found(f"api/v1/namespaces/{ns}/pods/{pod}"))
        if container not in names + init_names + eph_names:
            return _json_resp(400, k8s_status(400, f"container {container} is not valid for pod {pod}",
                                              "BadRequest"))
        if not spec.get("nodeName"):
            return _Resp(200, b"", _TEXT)  # not scheduled: the API server streams nothing
        status = _as_dict(podobj.get("status"))
        cstatus = None
        for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
            for cs in _as_list(status.get(key)):
                if isinstance(cs, dict) and cs.get("name") == container:
                    cstatus = cs
        msg = self._kubelet_log_error(container, pod, cstatus, previous)
        if msg is not None:
            return _json_resp(400, k8s_status(400, msg, "BadRequest"))
        what = "previous terminated container" if previous else "container"
        return _json_resp(404, k8s_status(
            404, f'log of {what} "{container}" in pod "{pod}" was not stored in the snapshot',
            "NotFound", {"name": pod, "kind": "pods"}))

    @staticmethod
    def _kubelet_log_error(container: str, pod: str, cs: dict | None, previous: bool) -> str | None:
        """The kubelet's answer (validateContainerLogStatus) when it has no log to stream."""
        if cs is None:
            return f'container "{container}" in pod "{pod}" is not available'
        state = _as_dict(cs.get("state"))
        last = _as_dict(_as_dict(cs.get("lastState")).get("terminated")) or None
        if previous:
            if not last or not last.get("containerID"):
                return f'previous terminated container "{container}" in pod "{pod}" not found'
            return None
        if state.get("running"):
            return None
        if state.get("terminated"):
            term = _as_dict(state["terminated"])
            if not term.get("containerID") and not (last and last.get("containerID")):
                return f'container "{container}" in pod "{pod}" is terminated'
            return None
        if last:
            if not last.get("containerID"):
                return f'container "{container}" in pod "{pod}" is terminated'
            return None
        waiting = state.get("waiting")
        if waiting is not None:
            reason = _as_dict(waiting).get("reason") or ""
            if reason == "ErrImagePull":
                return f'container "{container}" in pod "{pod}" is waiting to start: image can\'t be pulled'
            if reason == "ImagePullBackOff":
                return (f'container "{container}" in pod "{pod}" is waiting to start: '
                        "trying and failing to pull image")
            return f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
        return f'container "{container}" in pod "{pod}" is waiting to start - no logs yet'

    # ---- Google ----------------------------------------------------------------------------

    def _route_google(self, service: str, method: str, path: str, raw_path: str, query: str,
                      body: bytes, headers: Any) -> _Resp:
        p = path.strip("/")
        segs = p.split("/")
        if ".." in segs or "\x00" in p:
            return self._error(service, 400, path, message=f"Invalid resource path: /{p}")
        if service == "storage" and (self.allow_writes or self.objects or self.buckets):
            resp = self._storage_objects(method, p, raw_path, query, body, headers)
            if resp is not None:
                return resp
        if service == "cloudidentity" and method == "GET":
            resp = self._cloudidentity(p, query)
            if resp is not None:
                return resp
        read = method == "GET" or (method == "POST" and p.endswith(READ_ONLY_POST_VERBS))
        if not read:
            return self._error(service, 405, path, message=f"Method {method} is not allowed here "
                                                           "(the replay server serves reads only).")
        raw = self.store.read(f"gcp/{service}/{p}.json") if p else None
        if raw is not None and method == "GET" and (service, re.sub(r"/projects/[^/]+/", "/projects/*/", p)) \
                in _GOOGLE_PAGED:
            return self._google_page(raw, _GOOGLE_PAGED[(service, re.sub(r"/projects/[^/]+/", "/projects/*/", p))],
                                     query, service, path)
        if raw is not None:
            return _Resp(200, raw, _GOOGLE_JSON)
        err = self.store.error(f"gcp/{service}/{p}")
        if err is not None:
            return _body_resp(err[0], err[1], _GOOGLE_JSON)
        return self._error(service, 404, path)

    def _google_page(self, raw: bytes, field: str, query: str, service: str, path: str) -> _Resp:
        """One page of a stored Google list: ``pageSize`` items (capped by ``max_page_size``; 0 or
        absent: the server decides) from the offset ``pageToken`` names, ``nextPageToken`` when more
        remain; an unknown token is the API's 400."""
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        body = json.loads(raw)
        items = body.get(field) or []
        try:
            size = int(params.get("pageSize") or 0)
            start = int(base64.urlsafe_b64decode(params["pageToken"].encode()).decode()) if params.get("pageToken") \
                else 0
        except (ValueError, UnicodeDecodeError):
            return self._error(service, 400, path, message="Invalid page token.")
        size = size or len(items) or 1
        if self.max_page_size:
            size = min(size, self.max_page_size)
        if start < 0 or start > len(items):
            return self._error(service, 400, path, message="Invalid page token.")
        if start == 0 and size >= len(items):
            return _Resp(200, raw, _GOOGLE_JSON)   # one page: the stored body as stored
        page = {k: v for k, v in body.items() if k != field}
        chunk = items[start:start + size]
        if chunk:
            page[field] = chunk
        if start + size < len(items):
            page["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return _json_resp(200, page, _GOOGLE_JSON)

    def _cloudidentity(self, p: str, query: str) -> _Resp | None:
        """groups:lookup and memberships:checkTransitiveMembership over the stored answers, which a
        snapshot keeps under the group's email (the API's group names are opaque ids)."""
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        base = "gcp/cloudidentity/v1/groups"
        if p == "v1/groups:lookup":
            email = params.get("groupKey.id", "")
            if not email:
                return self._error("cloudidentity", 400, p, message="Request contains an invalid argument.")
            if "/" in email or not self.store.is_dir(f"{base}/{email}"):
                return self._error("cloudidentity", 403, p, message="Error(4003): Permission denied for group "
                                   "resource or it may not exist.", reason="PERMISSION_DENIED")
            gid = "0" + hashlib.sha1(email.encode()).hexdigest()[:14]
            self._groups[gid] = email
            return _json_resp(200, {"name": f"groups/{gid}"}, _GOOGLE_JSON)
        m = re.fullmatch(r"v1/groups/([^/]+)/memberships:checkTransitiveMembership", p)
        if not m:
            return None
        email = self._groups.get(m.group(1))
        q = re.fullmatch(r"\s*member_key_id\s*==\s*'([^']+)'\s*", params.get("query", ""))
        if email is None or q is None:
            return self._error("cloudidentity", 400 if q is None else 404, p)
        path = f"{base}/{email}/memberships:checkTransitiveMembership/{q.group(1)}"
        raw = self.store.read(path + ".json")
        if raw is not None:
            return _Resp(200, raw, _GOOGLE_JSON)
        err = self.store.error(path)
        if err is not None:
            return _body_resp(err[0], err[1], _GOOGLE_JSON)
        return _json_resp(200, {"hasMembership": False}, _GOOGLE_JSON)

    def put_object(self, bucket: str, name: str, data: bytes, content_type: str = "application/json") -> None:
        """Seed an object (as if written earlier by someone else): served to reads, not a request."""
        with self._objects_lock:
            self._generation += 1
            self.objects[(bucket, name)] = StoredObject(bucket, name, data, content_type, self._generation,
                                                        time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
        self.buckets.add(bucket)

    def _bucket_exists(self, bucket: str) -> bool:
        return (bucket in self.buckets or any(b == bucket for b, _n in self.objects)
                or self.store.read(f"gcp/storage/storage/v1/b/{bucket}.json") is not None)

    def _list_objects(self, bucket: str, params: dict, base_url: str) -> _Resp:
        """``objects.list``: the in-memory objects of the bucket under ``prefix`` (``delimiter``
        folds deeper names into ``prefixes``), in name order, ``maxResults`` (default 1,000) a page."""
        err = self.store.error(f"gcp/storage/storage/v1/b/{bucket}")
        if err is not None:
            return _body_resp(err[0], err[1], _GOOGLE_JSON)
        if not self._bucket_exists(bucket):
            return _json_resp(404, gcs_error(404, "The specified bucket does not exist."), _GOOGLE_JSON)
        prefix, delim = params.get("prefix", ""), params.get("delimiter", "")
        with self._objects_lock:
            objs = sorted((o for (b, n), o in self.objects.items() if b == bucket and n.startswith(prefix)),
                          key=lambda o: o.name)
        items, prefixes = [], []
        for o in objs:
            rest = o.name[len(prefix):]
            if delim and delim in rest:
                sub = prefix + rest.split(delim, 1)[0] + delim
                if sub not in prefixes:
                    prefixes.append(sub)
            else:
                items.append(o)
        try:
            size = max(1, min(int(params.get("maxResults") or 1000), 1000))
            start = int(params.get("pageToken") or 0)
        except ValueError:
            return _json_resp(400, gcs_error(400, "Invalid argument."), _GOOGLE_JSON)
        page = items[start:start + size]
        out: dict = {"kind": "storage#objects"}
        if page:
            out["items"] = [o.resource(base_url) for o in page]
        if prefixes and start == 0:
            out["prefixes"] = prefixes
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return _json_resp(200, out, _GOOGLE_JSON)

    def _storage_objects(self, method: str, p: str, raw_path: str, query: str, body: bytes,
                         headers: Any) -> _Resp | None:
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        base_url = self._url("storage")
        if method != "GET" and not self.allow_writes:
            return None                       # refused with 405 like every write
        m = re.fullmatch(r"storage/v1/b/([^/]+)/o", p)
        if m and method == "GET":
            return self._list_objects(m.group(1), params, base_url)
        m = re.fullmatch(r"upload/storage/v1/b/([^/]+)/o", p)
        if m and method == "POST":
            bucket = m.group(1)
            if self.storage_denied_principal:
                return _json_resp(403, gcs_forbidden(self.storage_denied_principal,
                                                     "storage.objects.create"), _GOOGLE_JSON)
            bucket_err = self.store.error(f"gcp/storage/storage/v1/b/{bucket}")
            if bucket_err is not None and bucket_err[0] == 404:
                return _body_resp(404, bucket_err[1], _GOOGLE_JSON)
            upload_type = params.get("uploadType", "")
            try:
                if upload_type == "multipart":
                    metadata, data, ctype = _parse_multipart(headers.get("Content-Type", ""), body)
                elif upload_type == "media":
                    metadata, data = {"name": params.get("name", "")}, body
                    ctype = headers.get("Content-Type") or "application/octet-stream"
                else:
                    return _json_resp(400, gcs_error(400, f"Upload type {upload_type!r} is not "
                                                          "supported by the replay server."),
                                      _GOOGLE_JSON)
            except ValueError as exc:
                return _json_resp(400, gcs_error(400, str(exc)), _GOOGLE_JSON)
            name = metadata.get("name") or params.get("name")
            if not name:
                return _json_resp(400, gcs_error(400, "Required", "required"), _GOOGLE_JSON)
            ctype = metadata.get("contentType") or ctype
            with self._objects_lock:
                existing = self.objects.get((bucket, name))
                if params.get("ifGenerationMatch") is not None:
                    want = params["ifGenerationMatch"]
                    have = str(existing.generation) if existing else "0"
                    if want != have:
                        return _json_resp(412, gcs_error(412), _GOOGLE_JSON)
                self._generation += 1
                obj = StoredObject(bucket, name, data, ctype, self._generation,
                                   time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
                self.objects[(bucket, name)] = obj
            return _json_resp(200, obj.resource(base_url), _GOOGLE_JSON)

        m = re.fullmatch(r"/(?:download/)?storage/v1/b/([^/]+)/o/(.+)", raw_path)
        if not m:
            return None
        bucket = urllib.parse.unquote(m.group(1))
        name = urllib.parse.unquote(m.group(2))
        with self._objects_lock:
            obj = self.objects.get((bucket, name))
        if method == "DELETE":
            if self.storage_denied_principal:
                return _json_resp(403, gcs_forbidden(self.storage_denied_principal,
                                                     "storage.objects.delete"), _GOOGLE_JSON)
            if obj is None:
                return _json_resp(404, gcs_error(404, f"No such object: {bucket}/{name}"), _GOOGLE_JSON)
            with self._objects_lock:
                self.objects.pop((bucket, name), None)
            return _Resp(204, b"", _GOOGLE_JSON)
        if method == "GET" and obj is not None:
            if params.get("alt") == "media":
                md5 = base64.b64encode(hashlib.md5(obj.data).digest()).decode()
                return _Resp(200, obj.data, obj.content_type, {
                    "X-Goog-Hash": f"crc32c={_crc32c_b64(obj.data)},md5={md5}",
                    "X-Goog-Generation": str(obj.generation),
                    "X-Goog-Metageneration": "1",
                    "X-Goog-Stored-Content-Length": str(len(obj.data)),
                    "X-Goog-Storage-Class": "STANDARD",
                })
            return _json_resp(200, obj.resource(base_url), _GOOGLE_JSON)
        if method == "GET" and self.store.read(f"gcp/storage/{p}.json") is None \
                and self.store.error(f"gcp/storage/{p}") is None:
            return _json_resp(404, gcs_error(404, f"No such object: {bucket}/{name}"), _GOOGLE_JSON)
        return None


# --------------------------------------------------------------------------------------------
# pytest fixture
# --------------------------------------------------------------------------------------------

try:
    import pytest

    @pytest.fixture
    def replay_server():
        """Factory fixture: ``srv = replay_server(snapshot_dir, faults=[...], ...)`` returns a
        started :class:`ReplayServer`; every server it started is stopped at teardown.

        Use it from a test module with ``from replay import replay_server  # noqa: F401``.
        """
        started: list[ReplayServer] = []

        def make(snapshot: str | os.PathLike, faults: Iterable[Fault | dict] = (), **kw: Any) -> ReplayServer:
            srv = ReplayServer(snapshot, faults, **kw).start()
            started.append(srv)
            return srv

        yield make
        for srv in started:
            srv.stop()

except ImportError:  # pragma: no cover
    pass
