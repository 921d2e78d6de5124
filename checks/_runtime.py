"""Helpers of the runtime, scheduling, Airflow 3 and secrets checks: component pods and their
controllers, log excerpts, Kubernetes quantities, env references, chart values keys."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from airflow_gke.views import AIRFLOW_COMPONENTS, Context, Pod, as_dict, as_list
from airflow_gke.snapshot import parse_time


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


def container_spec(pod: Pod, name: str, init: bool = False) -> dict:
    for c in (pod.init_containers if init else pod.containers):
        if c.get("name") == name:
            return c
    return {}


def finished_at(term: dict) -> datetime | None:
    return parse_time(term.get("finishedAt")) if term else None


def log_lines(ctx: Context, pod: Pod, container: str) -> list[tuple[str, str]]:
    """(which, line) of the previous instance's log, then the current one's, as collected."""
    out = [("previous log", ln) for ln in ctx.log_lines(pod.name, container, previous=True)]
    out += [("log", ln) for ln in ctx.log_lines(pod.name, container)]
    return out


_QTY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
          "Ti": 2**40, "m": 10**-3}


def quantity(v) -> float | None:
    """A Kubernetes quantity (``512Mi``, ``2Gi``, ``500m``, ``1``) as a number of base units."""
    if v is None:
        return None
    m = _QTY.match(str(v).strip())
    if not m or m.group(2) not in _UNITS:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def memory_text(v: float | None) -> str:
    if v is None:
        return "unknown"
    for unit in ("Gi", "Mi"):
        n = v / _UNITS[unit]
        if n >= 1:
            return f"{int(n)}{unit}" if n == int(n) else f"{n:.1f}{unit}"
    return f"{int(v)}"


def doubled_memory(limit) -> str:
    """A memory size twice ``limit`` (at least 1Gi), rounded up to whole Gi."""
    v = quantity(limit) or 0
    gi = max(1, int(-(-2 * v // 2**30)))
    return f"{gi}Gi"


def resources_text(c: dict) -> str:
    r = as_dict(c.get("resources"))
    req, lim = as_dict(r.get("requests")), as_dict(r.get("limits"))
    return (f"requests cpu {req.get('cpu', 'none')}, memory {req.get('memory', 'none')}; "
            f"limits cpu {lim.get('cpu', 'none')}, memory {lim.get('memory', 'none')}")


def env_source(c: dict, name: str) -> tuple[str, str | None, str | None] | None:
    """How a container sets env var ``name``: ("secret", secret, key), ("configmap", cm, key),
    ("value", None, None), or None when it does not set it (envFrom Secrets: ("envFrom", secret, None))."""
    found = [e for e in as_list(c.get("env")) if isinstance(e, dict) and e.get("name") == name]
    if found:   # a name listed twice: the kubelet uses the last entry
        vf = as_dict(found[-1].get("valueFrom"))
        if "secretKeyRef" in vf:
            ref = as_dict(vf["secretKeyRef"])
            return "secret", str(ref.get("name") or "?"), str(ref.get("key") or "?")
        if "configMapKeyRef" in vf:
            ref = as_dict(vf["configMapKeyRef"])
            return "configmap", str(ref.get("name") or "?"), str(ref.get("key") or "?")
        return "value", None, None
    for ef in as_list(c.get("envFrom")):
        if isinstance(ef, dict) and isinstance(ef.get("secretRef"), dict):
            return "envFrom", str(ef["secretRef"].get("name") or "?"), None
    return None


def source_text(src: tuple[str, str | None, str | None] | None, name: str) -> str:
    if src is None:
        return f"{name} not set"
    kind, obj, key = src
    if kind == "secret":
        return f"{name} from Secret {obj} key {key}"
    if kind == "configmap":
        return f"{name} from ConfigMap {obj} key {key}"
    if kind == "envFrom":
        return f"env from Secret {obj} (envFrom; may or may not hold {name})"
    return f"{name} set as a literal value"


def recent(ctx: Context, t: datetime | None, within: timedelta) -> bool:
    """``t`` is at most ``within`` before the snapshot (or after it)."""
    return t is not None and ctx.now - t <= within

