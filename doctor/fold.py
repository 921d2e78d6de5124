"""Specific beats generic: fold a floor finding under the specific finding that explains it.

A floor check (``@check(..., floor=True)``) judges health whatever the cause: "the scheduler is not
running: init container git-sync-init CrashLoopBackOff for 41m". A specific check knows a cause:
"git-sync cannot clone: the deploy key was revoked". When both see the same pods the failure must
print once, under the cause. This is decided here, after every selected check ran, and never by
the floor check itself: a check's verdict does not depend on which other checks ran, only the
presentation does (``CheckRun.folded`` keeps the floor check's full verdict).

A floor finding is folded under a specific finding S (which lists it in ``symptoms``) when

* its ``caused_by`` chain reaches S (the floor check linked a cause it recognised), or
* every object it is about (its ``subjects``: the not-ready pods; else its resource) is explained
  by a specific finding: one whose resource is that pod or the floor finding's own resource (the
  controller), or whose title, message or evidence names the pod;

and S is at least as severe as the floor finding (an ERROR is never hidden under a WARN).
"""
from __future__ import annotations

import re
from typing import Iterable

from .model import SEVERITY_RANK, CheckRun, Finding


def _rank(f: Finding) -> int:
    return SEVERITY_RANK.get(f.severity or "info", 0)


def _text(f: Finding) -> str:
    return "\n".join([f.title, f.message, *f.evidence])


_NAME = re.compile(r"[\w.-]+")


def names_in(text: str) -> set[str]:
    """The whole names (pod names and the like) a text mentions: ``airflow-worker-1`` is in
    "pods airflow-worker-1, airflow-worker-10." but ``airflow-worker-1`` is not in "airflow-worker-10"."""
    out = set()
    for tok in _NAME.findall(text):
        out.add(tok)
        out.add(tok.rstrip("."))   # the end of a sentence is not part of the name
    return out


class _Specific:
    __slots__ = ("finding", "names", "refs")

    def __init__(self, f: Finding) -> None:
        self.finding = f
        self.names = names_in(_text(f))   # tokenised once: a floor finding may name thousands of task pods
        self.refs = {f.resource.ref, *f.subjects}

    def explains(self, ref: str, owner_ref: str) -> bool:
        if ref in self.refs or owner_ref in self.refs:
            return True
        kind, _, rest = ref.partition("/")
        return kind == "Pod" and rest.rsplit("/", 1)[-1] in self.names


def _order(s: _Specific) -> tuple:
    f = s.finding
    return (-_rank(f), bool(f.caused_by), f.check, f.resource.ref)


def explainer(floor: Finding, specific: list[_Specific], by_id: dict[str, Finding],
              floor_ids: set[str]) -> Finding | None:
    """The specific finding a floor finding is folded under, or None (it stays top-level)."""
    seen: set[str] = set()
    todo = list(floor.caused_by)
    while todo:   # the caused_by chain: the first specific, severe enough cause
        cid = todo.pop(0)
        if cid in seen or cid not in by_id:
            continue
        seen.add(cid)
        cause = by_id[cid]
        if cause.check not in floor_ids and _rank(cause) >= _rank(floor):
            return cause
        todo += cause.caused_by
    subjects = floor.subjects or [floor.resource.ref]
    strong = [s for s in specific if _rank(s.finding) >= _rank(floor)]
    chosen: Finding | None = None
    for ref in subjects:
        hits = [s for s in strong if s.explains(ref, floor.resource.ref)]
        if not hits:
            return None
        if chosen is None:
            chosen = min(hits, key=_order).finding
    return chosen


def fold(runs: Iterable[CheckRun], floor_ids: set[str]) -> None:
    """Move each explained floor finding from its run's ``findings`` to ``folded`` and into the
    explaining finding's ``symptoms``."""
    runs = list(runs)
    if not floor_ids or not any(r.id in floor_ids and r.findings for r in runs):
        return
    specific = sorted((_Specific(f) for r in runs if r.id not in floor_ids for f in r.findings), key=_order)
    by_id = {f.id: f for r in runs for f in r.findings}
    for r in runs:
        if r.id not in floor_ids:
            continue
        keep: list[Finding] = []
        for f in r.findings:
            target = explainer(f, specific, by_id, floor_ids)
            if target is None:
                keep.append(f)
                continue
            target.symptoms.append(f)
            if target.id not in f.caused_by:
                f.caused_by.append(target.id)
            r.folded.append(f)
        r.findings = keep
