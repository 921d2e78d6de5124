"""Access to what was read, and the one caching rule of the data layer.

Checks receive a ``Context`` and never call an API. Every derived value (a parsed list, an index,
the release, the resolved config, an identity) is a *view*: computed on first use by ``derive``,
which records the reads that failed while computing it and replays them to every later consumer.
A view over data that was not collected, or whose read failed, raises ``DataUnavailable``; the
runner turns that into ``skip`` or ``error`` with the reason, so no check passes on missing data,
and no check's verdict depends on which other checks ran before it.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from ..blockers import classify
from ..data import Target, key as data_key
from ..snapshot import parse_time
from ..source import Entry, Source


def unreadable(e: Entry) -> bool:
    """A read that failed for lack of permission or of an answer (401/403, 429, 5xx, timeout,
    invalid body), as opposed to an answer about the object (404 not found, 400 not started)."""
    return not e.ok and (e.status is None or e.status in (401, 403, 407, 408, 429) or e.status >= 500)


def no_answer_reason(entry: Entry | None, what: str, perm: str) -> str | None:
    """Why a read (an IAM policy, for ``iam.evaluate``) gives no answer: not collected, or the
    failure with the permission it needs; None when it was read."""
    if entry is None:
        return f"not collected ({what})"
    if entry.ok:
        return None
    return f"HTTP {entry.status}: {entry.message} (needs {perm})"


class DataUnavailable(Exception):
    """A view needed data that is absent (``status='skip'``) or unreadable (``status='error'``).
    ``keys``: the data keys it is about, when known (the runner says why a whole side was not read)."""

    def __init__(self, status: str, reason: str, keys: tuple[str, ...] = (),
                 reads: tuple[tuple[str, tuple], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.keys = keys
        # (data key, sorted params) of each read it is about: the runner names their causes once
        # per run (doctor/blockers.py) instead of once per check.
        self.reads = reads


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    """``obj[a][b]...`` tolerant of missing keys and wrong types (API objects can be partial)."""
    for p in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(p)
        if obj is None:
            return default
    return obj


def as_list(v: Any) -> list:
    return v if isinstance(v, list) else []


def as_dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def as_str(v: Any) -> str | None:
    """A string field, or None when it is absent or not a string (malformed objects)."""
    return v if isinstance(v, str) else None


def str_map(v: Any) -> dict[str, str]:
    """Labels and annotations: string to string, whatever a malformed object holds."""
    if not isinstance(v, dict):
        return {}
    for x in v.values():
        if not isinstance(x, str):
            return {k: x for k, x in v.items() if isinstance(x, str)}
    return v


class FailedReads:
    """The failed reads a check (or a view) made: one entry per data key and parameters."""

    __slots__ = ("_by",)

    def __init__(self) -> None:
        self._by: dict[tuple, tuple[str, dict, Entry]] = {}

    def add(self, key_name: str, params: dict, entry: Entry) -> None:
        k = (key_name, tuple(sorted(params.items())) if params else ())
        if k not in self._by:
            self._by[k] = (key_name, params, entry)

    def update(self, other: "FailedReads") -> None:
        for k, v in other._by.items():
            if k not in self._by:
                self._by[k] = v

    def __iter__(self) -> Iterator[tuple[str, dict, Entry]]:
        return iter(list(self._by.values()))

    def __len__(self) -> int:
        return len(self._by)

    def __bool__(self) -> bool:
        return bool(self._by)


class view:
    """Declare a derived value of the context: ``@view def pods(self): ...`` is read as
    ``ctx.pods`` and computed once per context through ``BaseContext.derive``, so its failed reads
    follow it to every consumer. The only way a view may cache."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, ctx: Any, owner: type | None = None) -> Any:
        if ctx is None:
            return self
        hit = ctx._derived.get(self.name)   # derive's answer for a value computed without failed reads,
        if hit is not None and hit[0] and not hit[2]:   # without its call (views are read ~50,000 times a run)
            return hit[1]
        return ctx.derive(self.name, self.func, ctx)


class BaseContext:
    """Access to what was read: entries, bodies, lists, failed-read tracking and derived values."""

    def __init__(self, source: Source, target: Target, now: datetime | None = None) -> None:
        self.source = source
        self.target = target
        self.now = now or datetime.now(timezone.utc)
        self._release_override = target.release
        self._static_paths: dict[str, str | None] = {}   # data key -> path (None: the target lacks a field)
        self._events_sorted: set[tuple[str, str]] = set()   # objects whose events list is sorted
        self.read_times: dict[str, float] = {}   # data key -> seconds its first read took (runner.preload)
        # Reads that failed (no permission, no answer) that the running check asked for, directly or
        # through a derived value; the runner sets a FailedReads before each check, so a check that
        # looked at data it could not get cannot pass.
        self.failed_reads: FailedReads | None = None
        # Derived values: key -> (ok, value or the DataUnavailable raised, the failed reads it made).
        self._derived: dict[Any, tuple[bool, Any, FailedReads]] = {}
        # The --probe result (doctor/live/probe.py): run-level data the application core puts here
        # after the checks ran, for the post-run step of the check it proves (registry.after_run).
        self.probe: Any = None

    def forget_derived(self) -> None:
        """Let go of every derived value (a fleet run, once this target's report is built): they
        hold its data, and the DataUnavailable ones the frames that raised them (reference cycles
        through this context, which only the cyclic GC would find)."""
        self._derived = {}
        self._static_paths = {}
        self._events_sorted = set()
        self.failed_reads = None
        self.probe = None

    # --- raw access -------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return getattr(self.source, "mode", "snapshot")

    def path(self, key_name: str, **params: str) -> str:
        return data_key(key_name).path(self.target, **params)

    def entry(self, key_name: str, **params: str) -> Entry | None:
        """The raw entry of a data key, or None when it was not collected (or cannot be, for lack
        of a target field such as the cluster)."""
        if not params:   # asked per pod by some checks: compute the path once
            if key_name not in self._static_paths:
                k = data_key(key_name)
                self._static_paths[key_name] = None if any(getattr(self.target, f) is None for f in k.requires) \
                    else k.path(self.target)
            path = self._static_paths[key_name]
            e = None if path is None else self.source.get(path)
        else:
            k = data_key(key_name)
            for f in k.requires:
                if getattr(self.target, f) is None:
                    return None
            e = self.source.get(k.path(self.target, **params))
        if self.failed_reads is not None and e is not None and unreadable(e):
            self.failed_reads.add(key_name, params, e)
        return e

    def unavailable(self, key_name: str, entry: Entry | None, **params: str) -> DataUnavailable:
        k = data_key(key_name)
        keys = (key_name,)
        reads = ((key_name, tuple(sorted(params.items()))),)
        missing = [f for f in k.requires if getattr(self.target, f) is None]
        if missing:
            return DataUnavailable("skip", f"needs the GKE {', '.join(missing)} (none given), so {k.name} was not read",
                                   keys, reads)
        path = k.path(self.target, **params)
        if entry is None:
            return DataUnavailable("skip", f"not collected: {path}", keys, reads)
        what = k.resource_text(self.target, **params)
        if entry.status in (401, 403):
            found = classify(key_name, entry, self.target, params)
            cause = found[0] if found else None
            if cause is not None and cause.kind != "permission":
                # a disabled API, billing, OAuth scopes, rejected credentials: no grant fixes it
                return DataUnavailable("error", f"could not {what}: {cause.summary}; {cause.fix_text}", keys, reads)
            perm = (f"RBAC {k.rbac[2]} on {k.rbac[1]}" + (f" (apiGroup {k.rbac[0]})" if k.rbac[0] else "")
                    if k.rbac else f"IAM permission {k.iam}")
            return DataUnavailable("error", f"permission denied to {what} (HTTP {entry.status}: "
                                            f"{entry.message}); grant {perm} (see `airflow-gke permissions`)", keys, reads)
        if entry.status:
            return DataUnavailable("error", f"could not {what}: HTTP {entry.status}: {entry.message}", keys, reads)
        return DataUnavailable("error", f"could not {what}: {entry.message}", keys, reads)

    def body(self, key_name: str, **params: str) -> Any:
        """The body of a successful read, else DataUnavailable (404 passes through as None when
        the key treats not-found as data)."""
        e = self.entry(key_name, **params)
        if e is not None and e.ok:
            return e.data
        if e is not None and e.not_found and data_key(key_name).not_found_is_data:
            return None
        raise self.unavailable(key_name, e, **params)

    def derive(self, key: Any, compute: Callable[..., Any], *args: Any) -> Any:
        """``compute(*args)`` once per context: the one caching rule of the data layer.

        The reads that failed while computing it, and the ``DataUnavailable`` it raised if it did,
        are recorded with the value and replayed to every consumer, as if that consumer had made
        the reads itself. So a verdict never depends on which check (or view) asked first: a check
        alone, with any other checks, in any order, sees the same failed reads. The value is shared:
        consumers must not modify it."""
        hit = self._derived.get(key)
        if hit is None:
            outer, self.failed_reads = self.failed_reads, FailedReads()
            try:
                hit = (True, compute(*args), self.failed_reads)
            except DataUnavailable as e:
                hit = (False, e, self.failed_reads)
            except BaseException:
                mine, self.failed_reads = self.failed_reads, outer
                if outer is not None:   # a crash is not cached: it is the check's own error
                    outer.update(mine)
                raise
            self.failed_reads = outer
            self._derived[key] = hit
        if self.failed_reads is not None and hit[2]:
            self.failed_reads.update(hit[2])
        if not hit[0]:
            raise hit[1]
        return hit[1]

    def has(self, key_name: str, **params: str) -> bool:
        e = self.entry(key_name, **params)
        return e is not None and e.ok

    def items(self, key_name: str) -> list[dict]:
        """The items of a list read (a fresh list each time: wrap it in a view to keep it)."""
        body = self.body(key_name)
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
            raise DataUnavailable("error", f"malformed list body in {self.path(key_name)}")
        return [i for i in (body.get("items") or []) if isinstance(i, dict)]

    def age(self, since: datetime | None) -> timedelta | None:
        if since is None:
            return None
        return self.now - since


def event_time(e: dict) -> datetime | None:
    return (parse_time(e.get("lastTimestamp")) or parse_time(e.get("eventTime"))
            or parse_time(e.get("firstTimestamp")) or parse_time(dig(e, "metadata", "creationTimestamp")))


def human_age(td: timedelta | None) -> str:
    if td is None:
        return "unknown time"
    s = int(td.total_seconds())
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"
