"""Sources: where the data the checks see comes from.

Both modes hand the context the same thing: a mapping from snapshot-v1 paths (without the file
extension) to ``Entry`` objects. A snapshot directory is read lazily, file by file; a live run
fills an in-memory source with the bodies it fetched. Everything entering a source passes the
redactor first.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from .compact import Interner, compact, compact_more
from .redact import Redactor


@dataclass
class Entry:
    """One read: its body, or the error it ended with."""

    path: str
    data: Any = None                # parsed JSON body, or text for logs
    status: int | None = None       # HTTP status of a failed read (None when it succeeded or did not answer)
    error: Any = None               # the API's error body (dict) for a failed read

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is None

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def message(self) -> str:
        """The API's error message, whatever family of error body it came in."""
        return error_message(self.error, self.status)

    @property
    def error_reason(self) -> str | None:
        return error_info(self.error).get("reason")


def error_message(body: Any, status: int | None = None) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])            # google.rpc.Status and legacy JSON API
        if isinstance(err, str):
            return err
        if body.get("message"):
            return str(body["message"])           # Kubernetes Status, or {"message": ...}
    if isinstance(body, str) and body:
        return body
    return f"HTTP {status}" if status else "no answer"


def error_info(body: Any) -> dict:
    """The google.rpc.ErrorInfo of a Google error body as ``{"reason", "domain", "metadata"}``;
    legacy reasons (``errors[].reason``) fill ``reason`` when there is no ErrorInfo."""
    out: dict = {}
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        if isinstance(body, dict) and body.get("reason"):
            out["reason"] = body.get("reason")      # Kubernetes Status: Forbidden, NotFound ...
        return out
    err = body["error"]
    for d in err.get("details") if isinstance(err.get("details"), list) else []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            md = d.get("metadata")
            return {"reason": d.get("reason"), "domain": d.get("domain"), "metadata": md if isinstance(md, dict) else {}}
    for e in err.get("errors") if isinstance(err.get("errors"), list) else []:
        if isinstance(e, dict) and e.get("reason"):
            reason = e["reason"]
            if reason == "accessNotConfigured":
                reason = "SERVICE_DISABLED"
            return {"reason": reason, "domain": e.get("domain"), "metadata": {}}
    if err.get("status"):
        out["reason"] = err["status"]
    return out


class Source:
    """Read-only mapping of snapshot-v1 paths to entries."""

    mode = "snapshot"
    # Why a whole side (a data key scope: "k8s", "gcp") was not read, when it was left out on
    # purpose (a live project preflight has no cluster): the runner puts it before the skip reasons.
    unread: dict[str, str] = {}

    def get(self, path: str) -> Entry | None:  # pragma: no cover - interface
        raise NotImplementedError

    def paths(self, prefix: str = "") -> Iterable[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def forget(self, namespace: str) -> None:
        """Let go of what was read of ``namespace`` (a fleet run, once its last target there has
        its report): a snapshot may read it again, a live source no longer holds it."""

    def lacks(self, path: str, needle: str) -> bool:
        """True only when the log text at ``path`` surely does not hold ``needle`` (an ASCII literal
        a check's pattern needs to match, never a secret): a check may then skip reading it.
        False: it may hold it, or this source cannot tell (read it with ``get``)."""
        return False


def in_namespace(path: str, namespace: str) -> bool:
    """A Kubernetes path of an object in ``namespace`` (``k8s/.../namespaces/<ns>/...``)."""
    return path.startswith("k8s/") and f"/namespaces/{namespace}/" in path


class Withheld(Exception):
    """A body the redactor could not walk (:meth:`MemorySource.prepare`): it is withheld, never kept."""


@dataclass
class MemorySource(Source):
    """Entries held in memory, as a live run produces them. ``put`` compacts (doctor/compact.py) and
    redacts on the way in; a list read in pages has each page prepared as it arrives (``prepare``)
    and is then put with ``prepared=True``: the same entry, without holding the whole list unshared."""

    entries: dict[str, Entry] = field(default_factory=dict)
    redactor: Redactor = field(default_factory=Redactor)
    mode: str = "live"
    unread: dict[str, str] = field(default_factory=dict)
    # redaction (the redactor's memory of masked env lists and keys): one body at a time
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def prepare(self, path: str, data: Any) -> Any:
        """Compact and redact a successful body read from ``path``, or one page of it (a list body
        holding some of its items): what ``put`` does to a whole body. Raises ``Withheld``.

        Pod and event lists are shared deeper than a snapshot's (``compact_more``: ~2.5x less
        memory for ~3x the CPU, paid while a live run waits on the network). What is shared is
        looked up within one body or page (one interner each): an interner kept for a whole list
        would hold every distinct string and leaf of it (50,000 pods: more than the list itself)."""
        it = Interner()
        try:
            with self._lock:
                return compact_more(path, self.redactor.body(path, compact(path, data, it)), it)
        except Exception as e:  # noqa: BLE001 - a body the redactor cannot walk is withheld, never kept as is
            raise Withheld(type(e).__name__) from None

    def put(self, path: str, data: Any = None, status: int | None = None, error: Any = None, *,
            prepared: bool = False) -> Entry:
        try:
            if error is None and status is None:
                if not prepared:
                    data = self.prepare(path, data)
            elif isinstance(error, dict):
                error = self.redactor.body(path, error)
            elif isinstance(error, str):
                error = self.redactor.text(error)
        except Exception as e:  # noqa: BLE001 - a body the redactor cannot walk is withheld, never kept as is
            return self.withhold(path, str(e) if isinstance(e, Withheld) else type(e).__name__)
        entry = Entry(path, data, status, error)
        self.entries[path] = entry
        return entry

    def withhold(self, path: str, why: str) -> Entry:
        """The entry of a body that could not be checked for secrets (``why``: the exception's type)."""
        entry = Entry(path, None, None, {"message": f"malformed answer, withheld (it could not be checked for "
                                                    f"secrets: {why})"})
        self.entries[path] = entry
        return entry

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def paths(self, prefix: str = "") -> Iterable[str]:
        return [p for p in self.entries if p.startswith(prefix)]

    def forget(self, namespace: str) -> None:
        with self._lock:
            for path in [p for p in self.entries if in_namespace(p, namespace)]:
                del self.entries[path]
            self.redactor.forget()
