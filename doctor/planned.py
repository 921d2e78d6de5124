"""The application side of planned mode (``doctor --manifests``): read the plan, overlay it on the
cluster's source, and compare the plan's findings with those of the release the namespace runs now.

Kept apart from the command line so the CLI (or an application core) calls three functions:
:func:`load`, :func:`overlay` and :func:`compare`.
"""
from __future__ import annotations

import sys
from typing import Iterable

from .data import Target
from .errors import UserError
from .manifests import Plan, PlannedSource, read_plan_file
from .model import CheckRun


def load(path: str, namespace: str | None, release: str | None) -> Plan:
    """The plan of FILE (``-``: stdin); UserError (exit 2) for every input problem."""
    text = None
    if path == "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as e:
            raise UserError(f"<stdin>: not UTF-8 text (byte {e.start})") from None
    return read_plan_file(path, stdin_text=text, namespace=namespace, release=release)


def overlay(plan: Plan, base, target: Target) -> PlannedSource:
    return PlannedSource(plan, base, target)


def holds_release(ctx, release: str | None) -> bool:
    """Whether the namespace (as the underlying source shows it) runs the release now."""
    from .views import DataUnavailable

    for coll in ("deployments", "statefulsets"):
        try:
            objs = getattr(ctx, coll).values()
        except DataUnavailable:
            continue
        for o in objs:
            if o.labels.get("tier") == "airflow" and (release is None or o.labels.get("release") == release):
                return True
    return False


def compare(plan: Plan, base, target: Target, now, checks: Iterable, planned_runs: list[CheckRun],
            cluster_from: str, runbook_base: str | None = None) -> dict:
    """The ``plan`` part of the report: where the plan and the cluster came from and, when the
    namespace already runs the release, which findings the plan introduces and which it fixes
    (judged by the checks that run on a plan, on the current state and on the plan alike)."""
    from .runner import run_checks
    from .views import Context

    info: dict = {"manifests": plan.where, "cluster": cluster_from, "compared_with": None,
                  "introduced": [], "fixed": [], "unchanged": []}
    current = Context(base, target, now=now)
    if not holds_release(current, plan.release):
        return info
    on_plan = [c for c in checks if c.on_plan]
    before = run_checks(current, on_plan, runbook_base)
    # A check judged both states when it ended pass or fail on the plan, and on the current state
    # pass, fail, or skip for not applying there (remote logging off, say): a skip for data that was
    # not collected, or an error, decides nothing, so its findings are neither introduced nor fixed.
    judged = {r.id for r in before if r.status in ("pass", "fail") or (r.status == "skip" and not _no_data(r.reason))} \
        & {r.id for r in planned_runs if r.status in ("pass", "fail")}
    now_f = {f.id: f for r in before if r.id in judged for f in r.findings}
    plan_f = {f.id: f for r in planned_runs if r.id in judged for f in r.findings}
    info["compared_with"] = cluster_from
    info["introduced"] = [_brief(plan_f[i]) for i in sorted(plan_f) if i not in now_f]
    info["fixed"] = [_brief(now_f[i]) for i in sorted(now_f) if i not in plan_f]
    info["unchanged"] = [_brief(plan_f[i]) for i in sorted(plan_f) if i in now_f]
    return info


def _no_data(reason: str | None) -> bool:
    return bool(reason) and reason.startswith(("not collected", "needs the GKE", "permission denied", "could not"))


def _brief(f) -> dict:
    return {"id": f.id, "check": f.check, "severity": f.severity, "title": f.title}
