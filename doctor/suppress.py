"""Accepted findings: suppressions from the configuration file and ``airflow-gke.io/ignore``
annotations on Kubernetes objects; and the ``--min-severity`` floor on findings.

A suppressed finding is moved out of its check's findings (so ``--fail-on`` and the summary no
longer count it) into the report's ``suppressed`` list, with what suppressed it: every report
format lists it. Nothing is hidden: a suppression that has expired no longer applies and a
warning says so; one that matched nothing in a check that ran is reported as stale.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date
from typing import Iterable

from .config import Suppression
from .model import SEVERITY_RANK, CheckRun, Finding

ANNOTATION = "airflow-gke.io/ignore"

# Finding resource kind -> the context view that holds such objects by name
_VIEWS = {
    "Pod": "pods_by_name",
    "PersistentVolumeClaim": "pvcs",
    "ConfigMap": "configmaps",
    "ServiceAccount": "service_accounts",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "Job": "jobs",
    "Node": "nodes",
    "StorageClass": "storage_classes",
}
_CLUSTER_SCOPED = ("Node", "StorageClass")


@dataclass
class Suppressed:
    finding: Finding
    by: dict            # what suppressed it: {"source": "config"|"annotation", "reason": ..., ...}

    def to_dict(self) -> dict:
        return {"finding": self.finding.to_dict(), "suppression": dict(self.by)}


def resource_matches(pattern: str, f: Finding) -> bool:
    r = f.resource
    candidates = [r.ref, r.name] + ([r.uri] if r.uri else [])
    return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)


def suppression_matches(s: Suppression, f: Finding) -> bool:
    return fnmatch.fnmatchcase(f.check, s.check) and resource_matches(s.resource, f)


def annotation_of(ctx, f: Finding) -> str | None:
    """The ``airflow-gke.io/ignore`` value on the finding's Kubernetes object, if any."""
    from .views import DataUnavailable

    if ctx is None:
        return None
    r = f.resource
    view = _VIEWS.get(r.kind)
    if view is None:
        return None
    if r.kind not in _CLUSTER_SCOPED and r.namespace not in (None, ctx.target.namespace):
        return None
    try:
        obj = getattr(ctx, view).get(r.name)
    except DataUnavailable:
        return None
    if obj is None:
        return None
    v = obj.annotations.get(ANNOTATION)
    return v if isinstance(v, str) and v.strip() else None


def annotation_covers(value: str, check: str) -> bool:
    return any(fnmatch.fnmatchcase(check, s.strip()) for s in value.split(",") if s.strip())


def apply(runs: list[CheckRun], suppressions: Iterable[Suppression], registry: dict, today: date,
          ctx=None, annotations: bool = True) -> tuple[list[Suppressed], list[dict]]:
    """Move suppressed findings out of ``runs``; return them and the notices (warnings) to report."""
    sups = list(suppressions)
    used: set[int] = set()
    expired_hits: dict[int, list[str]] = {}
    out: list[Suppressed] = []
    ignored_by_annotation: list[str] = []
    for run in runs:
        keep = []
        for f in run.findings:
            by = None
            for s in sups:
                if not suppression_matches(s, f):
                    continue
                if s.expired(today):
                    expired_hits.setdefault(s.index, []).append(f.id)
                    continue
                used.add(s.index)
                by = s.to_dict()
                break
            if by is None:
                value = annotation_of(ctx, f)
                if value is not None and annotation_covers(value, f.check):
                    obj = f.resource.ref
                    if annotations:
                        by = {"source": "annotation", "object": obj, "annotation": ANNOTATION, "value": value,
                              "reason": f"annotation {ANNOTATION}: {value!r} on {obj}"}
                    else:
                        ignored_by_annotation.append(f"{f.id} ({ANNOTATION}: {value!r} on {obj})")
            if by is None:
                keep.append(f)
            else:
                out.append(Suppressed(f, by))
        n = len(run.findings) - len(keep)
        if n:
            run.findings = keep
            note = f"{n} finding{'s' if n != 1 else ''} suppressed"
            if not keep and run.status == "fail":
                note = f"all findings suppressed ({n})"
            run.reason = f"{run.reason}; {note}" if run.reason else note
    notices = _stale(sups, used, expired_hits, runs, registry, today)
    if ignored_by_annotation:
        notices.append({"level": "info", "message": (
            f"{len(ignored_by_annotation)} finding(s) carry the {ANNOTATION} annotation, not honoured "
            "(--no-annotation-ignores): " + "; ".join(ignored_by_annotation))})
    return out, notices


def _stale(sups: list[Suppression], used: set[int], expired_hits: dict, runs: list[CheckRun], registry: dict,
           today: date) -> list[dict]:
    notices = []
    completed = {r.id for r in runs if r.status in ("pass", "fail")}
    for s in sups:
        if s.expired(today):
            hits = expired_hits.get(s.index, [])
            what = (f"; the finding{'s' if len(hits) != 1 else ''} it matched count{'' if len(hits) != 1 else 's'} "
                    f"again: {', '.join(hits)}") if hits else ""
            notices.append({"level": "warning", "message": f"{s.label} expired on {s.expires.isoformat()}{what}",
                            "suppression": s.to_dict()})
            continue
        if s.index in used:
            continue
        known = [c for c in registry if fnmatch.fnmatchcase(c, s.check)]
        if not known:
            notices.append({"level": "warning", "message": f"{s.label} names no known check; "
                                                           "see `airflow-gke checks`",
                            "suppression": s.to_dict()})
        elif any(c in completed for c in known):
            notices.append({"level": "warning", "message": f"{s.label} matched no finding: remove it if the "
                                                           "problem is gone",
                            "suppression": s.to_dict()})
    return notices


def apply_min_severity(runs: list[CheckRun], floor: str | None) -> int:
    """Drop findings below ``floor`` (the check's reason counts them); returns how many."""
    if not floor:
        return 0
    rank = SEVERITY_RANK[floor]
    dropped = 0
    for run in runs:
        keep = [f for f in run.findings if SEVERITY_RANK.get(f.severity or "info", 0) >= rank]
        n = len(run.findings) - len(keep)
        if n:
            dropped += n
            run.findings = keep
            note = f"{n} finding{'s' if n != 1 else ''} below --min-severity {floor} not shown"
            run.reason = f"{run.reason}; {note}" if run.reason else note
    return dropped
