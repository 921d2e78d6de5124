"""Helpers of the runtime, scheduling, Airflow 3 and secrets checks: the release's component pods,
the pods that run task code, the waiting reasons of containers that cannot start, times."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow_gke.views import AIRFLOW_COMPONENTS, Context, Pod, parse_time

# Waiting reasons of a container the kubelet cannot even create or start (a missing Secret or key,
# a bad command): the pod never runs, whatever the restart policy.
CANNOT_START = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")


def component_pods(ctx: Context) -> list[Pod]:
    """The chart's long-running Airflow pods (not task pods) of the release."""
    rel = ctx.release
    out = []
    for p in ctx.pods:
        if p.is_task_pod or p.component not in AIRFLOW_COMPONENTS:
            continue
        if rel is not None and p.labels.get("release") not in (None, rel):
            continue
        out.append(p)
    return out


def task_like_pods(ctx: Context) -> list[Pod]:
    """Pods that run task code: KubernetesExecutor task pods and Celery workers."""
    out = list(ctx.task_pods)
    seen = {id(p) for p in out}
    for p in component_pods(ctx):
        if p.component == "worker" and id(p) not in seen:
            out.append(p)
    return out


def finished_at(term: dict) -> datetime | None:
    return parse_time(term.get("finishedAt")) if term else None


def recent(ctx: Context, t: datetime | None, within: timedelta) -> bool:
    """``t`` is at most ``within`` before the snapshot (or after it)."""
    return t is not None and ctx.now - t <= within

