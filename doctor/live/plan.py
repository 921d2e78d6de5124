"""What a live run reads, from the declarations of doctor/data.py: in phase 1 the keys of the
selected checks and what their per-item keys are named from; in phase 2 the per-item reads whose
items phase 1's data names (each key's ``Items``: the log bucket, the Google service accounts, the
container logs). Nothing here names a data key: a new one is planned from its declaration.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from ..data import KEYS, DataKey, Items, reads_for
from ..views import Context, DataUnavailable, Pod

_POD = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_CONTAINER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class PlanOptions:
    """What an item function may need besides the context: the caps of the run, and a place
    for notes (--verbose)."""

    max_logs: int = 50
    notes: list[str] = field(default_factory=list)


def keys_for(checks: Iterable) -> set[str]:
    """Data keys the checks declare (needs + uses), plus what their per-item keys are named from."""
    keys: set[str] = set()
    for c in checks:
        keys.update(c.data_keys)
    return reads_for(keys)


def phase_of(items: Items) -> int:
    """1: named from nothing; 2: from keys read once (phase 1); 3: from per-item keys (phase 2's)."""
    if not items.reads:
        return 1
    return 3 if any(KEYS[r].per is not None for r in items.reads) else 2


def _groups(keys: set[str], phase: int) -> list[tuple[Items, list[DataKey]]]:
    """Per-item keys among ``keys`` grouped by their ``Items`` (one call names the items of all),
    in catalogue order, of one phase (:func:`phase_of`)."""
    out: dict[int, tuple[Items, list[DataKey]]] = {}
    for name, k in KEYS.items():
        if name in keys and k.items is not None and phase_of(k.items) == phase:
            out.setdefault(id(k.items), (k.items, []))[1].append(k)
    return list(out.values())


def _item_reads(items: Items, ks: list[DataKey], ctx: Context | None, opts: PlanOptions
                ) -> list[tuple[str, dict]]:
    found = list(items.function()(ctx, opts))
    reads: list[tuple[str, dict]] = []
    for it in found:
        for k in ks:
            reads.append((k.name, dict(it) if isinstance(it, dict) else {k.per: it}))
    if all(isinstance(it, str) for it in found):
        opts.notes.append(f"{items.what}: {', '.join(found) or 'none'}")
    else:
        opts.notes.append(f"{items.what}: {len(reads)} read(s)")
    return reads


def static_reads(keys: set[str]) -> list[tuple[str, dict]]:
    """Phase 1: keys with no per-item parameter, then the per-item keys whose items are named
    from no other read (the fixed list of API services)."""
    out: list[tuple[str, dict]] = [(name, {}) for name, k in KEYS.items() if k.per is None and name in keys]
    for items, ks in _groups(keys, 1):
        out += _item_reads(items, ks, None, PlanOptions())
    return out


def derived_reads(ctx: Context, keys: set[str], max_logs: int, phase: int = 2
                  ) -> tuple[list[tuple[str, dict]], list[str]]:
    """Phase 2 reads (per-item keys named by phase 1's data), or phase 3's (named by phase 2's: the
    optional group memberships, from the bucket's IAM policy), and notes for --verbose."""
    reads: list[tuple[str, dict]] = []
    opts = PlanOptions(max_logs=max_logs)
    for items, ks in _groups(keys, phase):
        ks = [k for k in ks if all(getattr(ctx.target, f) is not None for f in k.requires)]
        if not ks:
            continue
        try:
            reads += _item_reads(items, ks, ctx, opts)
        except Exception as e:  # noqa: BLE001 - odd data must cost this read, not the run
            opts.notes.append(f"{items.what}: not read ({type(e).__name__}: {e})")
    return reads, opts.notes


def _is_airflow(labels: dict) -> bool:
    return labels.get("tier") == "airflow"


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


def container_logs(ctx: Context, opts: PlanOptions) -> list[dict]:
    """The items of ``logs``: the containers whose logs to read, at most ``--max-logs``."""
    if opts.max_logs <= 0:
        return []
    reads, left = log_reads(ctx, opts.max_logs)
    if left:
        opts.notes.append(f"container logs: {left} container(s) over --max-logs left out")
    return [params for _key, params in reads]


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
