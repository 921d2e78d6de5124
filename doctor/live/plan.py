"""What a live run reads: the data keys of the selected checks, and in phase 2 the per-item
reads that phase 1's data names (the log bucket, the Google service accounts, the container logs).
"""
from __future__ import annotations

import re
from typing import Iterable

from ..views import Context, DataUnavailable, Pod
from ..views.identity import LOG_READERS, LOG_WRITERS, bucket_of, named_gsas, remote_log_folder
from ..data import DERIVED_FROM, KEYS, SERVICES

# Cloud Storage bucket names (https://cloud.google.com/storage/docs/buckets#naming), loosely.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_POD = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_CONTAINER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def keys_for(checks: Iterable) -> set[str]:
    """Data keys the checks declare (needs + uses), plus what a per-item key is derived from."""
    keys: set[str] = set()
    for c in checks:
        keys.update(c.data_keys)
    for k in list(keys):
        keys.update(DERIVED_FROM.get(k, ()))
    return keys


def static_reads(keys: set[str]) -> list[tuple[str, dict]]:
    """Phase 1: keys with no per-item parameter, plus the fixed list of API services."""
    out: list[tuple[str, dict]] = [(name, {}) for name, k in KEYS.items() if k.per is None and name in keys]
    if "services" in keys:
        out += [("services", {"service": s}) for s in SERVICES]
    return out


def log_buckets(ctx: Context) -> list[str]:
    """Buckets of ``gs://`` remote_base_log_folder as the components resolve it."""
    out: list[str] = []
    for comp in LOG_WRITERS + LOG_READERS:
        try:
            folder, _where = remote_log_folder(ctx, comp)
        except DataUnavailable:
            continue
        if folder:
            b = bucket_of(folder)
            if _BUCKET.match(b) and b not in out:
                out.append(b)
    return out


def _is_airflow(labels: dict) -> bool:
    return labels.get("tier") == "airflow"


def airflow_ksas(ctx: Context) -> list[str]:
    """Kubernetes service accounts Airflow runs as: the identity view's answer (``named_gsas``)."""
    return named_gsas(ctx)[0]


def gsa_emails(ctx: Context) -> list[str]:
    """Google service accounts the Airflow KSAs are annotated with: exactly those the checks may
    look up (the identity view's ``named_gsas``)."""
    return named_gsas(ctx)[1]


def _wants_log(cs) -> tuple[int, bool, bool] | None:
    """(priority, read the current log, read the previous instance's) for one container status,
    None when its log is not wanted: the snapshot-v1 rule (waiting, not ready, terminated non-zero,
    restarted), minus containers that never ran (the kubelet has no log for them)."""
    state, fields = cs.state
    restarted = cs.restarts > 0 or bool(cs.last_terminated)
    if state == "waiting":
        # One waiting after a crash (CrashLoopBackOff) serves its last instance's log; one that
        # never ran (PodInitializing, ContainerCreating, image pulls) has none.
        return (0, True, True) if restarted else None
    if state == "terminated":
        code = fields.get("exitCode")
        if (isinstance(code, int) and code != 0) or restarted:
            return 0, True, restarted
        return (2, True, False) if not cs.ready else None     # finished (a completed task pod)
    if state == "running":
        if restarted:
            return 0, True, True
        return (1, True, False) if not cs.ready else None
    return None


def log_reads(ctx: Context, max_containers: int) -> tuple[list[tuple[str, dict]], int]:
    """Container log reads for at most ``max_containers`` containers, the most telling first
    (crashed or restarted, then running but not ready, then finished; task pods before the
    chart's pods before the rest), one of each kind of trouble (container, state, reason) before a
    second of any: 2,000 failed task pods must not use the whole budget while one init container
    hangs; returns (reads, containers left out by the cap)."""
    try:
        pods = list(ctx.pods)
    except DataUnavailable:
        return [], 0

    def rank(p: Pod) -> int:
        return 0 if p.is_task_pod else 1 if _is_airflow(p.labels) else 2

    wanted: list[tuple[tuple, Pod, str, bool, bool]] = []
    for i, p in enumerate(pods):
        if not p.node or not _POD.match(p.name):
            continue   # not scheduled: nothing ran, nothing logged
        for j, cs in enumerate(p.init_statuses + p.container_statuses):
            w = _wants_log(cs)
            if w is not None and _CONTAINER.match(cs.name):
                state, fields = cs.state
                kind = (cs.name, state, str(fields.get("reason") or ""))
                # still waiting or running: the longest at it first (a young pod in Init is normal)
                since = str(fields.get("startedAt") or p.status.get("startTime") or "~") \
                    if state in ("waiting", "running") else "~"
                wanted.append(((w[0], rank(p), since, i, j), p, cs.name, w[1], w[2], kind))
    wanted.sort(key=lambda t: t[0])
    seen: dict[tuple, int] = {}
    rounds = []
    for t in wanted:   # the n-th container of its kind goes in round n; within a round, priority order
        n = seen.get(t[5], 0)
        seen[t[5]] = n + 1
        rounds.append((n, t))
    rounds.sort(key=lambda r: r[0])   # stable
    wanted = [t for _n, t in rounds]
    reads: list[tuple[str, dict]] = []
    for _order, p, name, cur, prev, _kind in wanted[:max_containers]:
        if cur:
            reads.append(("logs", {"pod": p.name, "container": name}))
        if prev:
            reads.append(("logs", {"pod": p.name, "container": name + ".previous"}))
    return reads, max(0, len(wanted) - max_containers)


def derived_reads(ctx: Context, keys: set[str], max_logs: int) -> tuple[list[tuple[str, dict]], list[str]]:
    """Phase 2 reads, and notes for --verbose."""
    reads: list[tuple[str, dict]] = []
    notes: list[str] = []

    def guarded(what: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - odd data must cost this read, not the run
            notes.append(f"{what}: not read ({type(e).__name__}: {e})")

    def buckets() -> None:
        found = log_buckets(ctx)
        notes.append(f"log bucket(s): {', '.join(found) or 'none (remote logging does not write to gs://)'}")
        for b in found:
            reads.extend((k, {"bucket": b}) for k in ("bucket", "bucket_iam") if k in keys)

    def gsas() -> None:
        emails = gsa_emails(ctx)
        notes.append(f"Google service account(s) named by Airflow KSAs: {', '.join(emails) or 'none'}")
        for e in emails:
            reads.extend((k, {"email": e}) for k in ("gsa", "gsa_iam") if k in keys)

    def logs() -> None:
        found, left = log_reads(ctx, max_logs)
        reads.extend(found)
        notes.append(f"container logs: {len(found)} read(s)"
                     + (f", {left} container(s) over --max-logs left out" if left else ""))

    if keys & {"bucket", "bucket_iam"}:
        guarded("log bucket", buckets)
    if keys & {"gsa", "gsa_iam"} and ctx.target.project:
        guarded("Google service accounts", gsas)
    if "logs" in keys and max_logs > 0:
        guarded("container logs", logs)
    return reads, notes
