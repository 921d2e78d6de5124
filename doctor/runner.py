"""Runs the selected checks on a context and collects their results.

One failing check never stops the others: an exception ends that check ``error`` with the
reason. Data a check declared it needs is verified first, so a check never passes on missing
data; and a check that found nothing after asking for data it declares whose read had failed
(no permission, no answer) ends ``error`` naming those reads, so it never passes on unreadable
data either (data that was simply not collected is not a failed read).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterable

from .views import Context, DataUnavailable, FailedReads
from .data import KEYS
from .fold import fold
from .model import CheckRun, Result
from .remediation import with_disruptions
from .registry import Check

DEFAULT_RUNBOOK_BASE = "https://github.com/airflow-gke/airflow-gke/blob/main/docs/runbooks"


def runbook_url(slug: str, base: str | None = None) -> str:
    base = (base or DEFAULT_RUNBOOK_BASE).rstrip("/")
    return f"{base}/{slug}.md" if base == DEFAULT_RUNBOOK_BASE else f"{base}/{slug}"


def missing_data(ctx: Context, chk: Check) -> DataUnavailable | None:
    """Why the check cannot run for lack of data (every missing or unreadable read it needs, so
    one run names all the permissions to grant), or None. ``error`` when a read failed, ``skip``
    when the data was only not collected."""
    missing: list[DataUnavailable] = []
    for name in chk.needs:
        if KEYS[name].per is not None:
            continue   # per-item data is looked up by the check itself
        entry = ctx.entry(name)
        if entry is not None and entry.ok:
            continue
        if entry is not None and entry.not_found and KEYS[name].not_found_is_data:
            continue
        missing.append(ctx.unavailable(name, entry))
    if not missing:
        return None
    if len(missing) == 1:
        return missing[0]
    failed = [m for m in missing if m.status == "error"]
    first = failed or missing   # what failed comes first: it is what the user can act on
    rest = [m for m in missing if m not in first]
    return DataUnavailable("error" if failed else "skip", "; ".join(m.reason for m in first + rest),
                           tuple(k for m in first + rest for k in m.keys),
                           tuple(r for m in first + rest for r in m.reads))


RUNTIME_ONLY = "runtime only: run after deploy"


def run_check(ctx: Context, chk: Check, runbook_base: str | None = None) -> CheckRun:
    t0 = time.perf_counter()
    findings = []
    reason = None
    causes: list = []
    blocked = None if ctx.mode == "planned" and not chk.on_plan else missing_data(ctx, chk)
    if ctx.mode == "planned" and not chk.on_plan:
        status, reason = "skip", RUNTIME_ONLY   # a plan has no status, events or logs: never a pass
    elif blocked is not None:
        status, reason = blocked.status, blocked.reason
        reason = _not_read(ctx, blocked, reason)
        causes = _causes(ctx, blocked.reads)
    else:
        ctx.failed_reads = FailedReads()
        try:
            result = chk.func(ctx)
            if not isinstance(result, Result):
                raise TypeError(f"returned {type(result).__name__}, not a Result")
            status, reason, findings = result.status, result.reason, result.findings
            if status == "fail" and not findings:
                status, reason = "error", "check reported failure without findings"
            if status == "pass":
                unsure = _unsure(ctx, chk)
                if unsure is not None:
                    status, reason = "error", unsure
                    causes = _causes(ctx, [(k, tuple(sorted(p.items()))) for k, p, _e in ctx.failed_reads or []
                                           if k in chk.data_keys])
        except DataUnavailable as e:
            status, reason, findings = e.status, _not_read(ctx, e, e.reason), []
            causes = _causes(ctx, e.reads)
        except Exception as e:  # noqa: BLE001 - any bug in one check must not stop the others
            status, reason, findings = "error", f"check crashed: {type(e).__name__}: {e}", []
        finally:
            ctx.failed_reads = None
    _complete(chk, findings, runbook_base, ctx)
    run = CheckRun(chk.id, chk.title, chk.severity, chk.category, status, reason,
                   time.perf_counter() - t0, findings)
    run.causes = causes if status in ("skip", "error") else []
    return run


def _causes(ctx: Context, reads) -> list:
    """(cause, read) of each read a check could not use, one per cause and read (doctor/blockers.py):
    the reports name each cause once with the checks it blocked."""
    from .blockers import classify

    out: list = []
    unread = getattr(ctx.source, "unread", None)
    saved, ctx.failed_reads = ctx.failed_reads, None
    try:
        for key_name, params in dict.fromkeys(reads):
            if key_name not in KEYS:
                continue
            p = dict(params)
            found = classify(key_name, ctx.entry(key_name, **p), ctx.target, p, unread)
            if found is not None and found not in out:
                out.append(found)
    finally:
        ctx.failed_reads = saved
    return out


def _complete(chk: Check, findings, runbook_base: str | None, ctx: Context | None = None) -> None:
    for f in findings:
        f.check = f.check or chk.id
        f.severity = f.severity or chk.severity
        f.runbook = f.runbook or runbook_url(chk.id, runbook_base)
        _well_formed(f)
        # a command that recreates nodes, restarts pods, deletes data or removes a role says so
        f.remediation.commands = with_disruptions(f.remediation.commands, ctx)


def _not_read(ctx: Context, e: DataUnavailable, reason: str) -> str:
    """A skip for data a whole side of the source left out on purpose (a project preflight reads no
    cluster) says so first: the source declares why (``Source.unread``), the keys say which side."""
    unread = getattr(ctx.source, "unread", None)
    if e.status != "skip" or not unread:
        return reason
    why = next((unread[KEYS[k].scope] for k in e.keys if k in KEYS and KEYS[k].scope in unread), None)
    return f"{why}: {reason}" if why else reason


def after_run(ctx: Context, checks: Iterable[Check], runs: list[CheckRun], runbook_base: str | None = None) -> None:
    """The checks' declared post-run steps (``registry.after_run``), once every check ran and the
    run-level data is in the context (``ctx.probe``). A step that crashes ends its check ``error``."""
    by_id = {r.id: r for r in runs}
    for chk in checks:
        run = by_id.get(chk.id)
        if chk.after_run is None or run is None:
            continue
        try:
            chk.after_run(ctx, run, runs)
        except Exception as e:  # noqa: BLE001 - one failing check never stops the others
            run.status, run.reason, run.findings = "error", f"post-run step crashed: {type(e).__name__}: {e}", []
        _complete(chk, run.findings, runbook_base, ctx)


def _unsure(ctx: Context, chk: Check) -> str | None:
    """Why a check that found nothing cannot say ``pass``: it asked for data it declares and the
    read had failed (permission, no answer). None when every read it asked for was there."""
    reasons: list[str] = []
    for key_name, params, entry in ctx.failed_reads or []:
        if key_name not in chk.data_keys:
            continue
        r = ctx.unavailable(key_name, entry, **params).reason
        if r not in reasons:
            reasons.append(r)
    if not reasons:
        return None
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return "found nothing, but not all it looks at could be read: " + "; ".join(reasons[:3]) + more


def _well_formed(f) -> None:
    """Keep a finding inside the report schema whatever the data it was built from: a malformed
    object can lack a name (the report says "(unnamed)"), a text field can come out empty."""
    r = f.resource
    if not (isinstance(r.name, str) and r.name) or not (isinstance(r.kind, str) and r.kind):
        f.resource = replace(r, kind=str(r.kind or "") or "Object", name=str(r.name or "") or "(unnamed)")
    f.title = f.title or f"{f.check}: {f.resource.kind} {f.resource.name}"
    f.message = f.message or f.title
    f.remediation.summary = f.remediation.summary or f"see the runbook: {f.runbook}"
    f.remediation.commands = [c for c in f.remediation.commands if isinstance(c, str) and c]
    f.evidence = [str(e) for e in f.evidence]


def preload(ctx: Context, checks: Iterable[Check]) -> dict[str, float]:
    """Read every list the checks declare (needs and uses) before they run, so that a check's
    duration is its own work and not the first read of a list another check also reads (on a
    large namespace the pod list alone takes seconds). Returns seconds per data key read."""
    times: dict[str, float] = {}
    for chk in checks:
        if ctx.mode == "planned" and not chk.on_plan:
            continue
        for name in chk.data_keys:
            if name in times or KEYS[name].per is not None:
                continue
            t0 = time.perf_counter()
            ctx.entry(name)
            times[name] = time.perf_counter() - t0
    return times


def run_checks(ctx: Context, checks: Iterable[Check], runbook_base: str | None = None) -> list[CheckRun]:
    checks = list(checks)
    ctx.read_times = preload(ctx, checks)
    runs = [run_check(ctx, c, runbook_base) for c in checks]
    ids = {f.id for r in runs for f in r.findings}
    for r in runs:
        for f in r.findings:
            f.caused_by = [c for c in dict.fromkeys(f.caused_by) if c in ids and c != f.id]
    # Specific beats generic: a floor finding explained by a specific one becomes its symptom.
    fold(runs, {c.id for c in checks if c.floor})
    return runs
