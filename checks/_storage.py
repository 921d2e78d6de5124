"""Helpers of the storage, DAGs and database checks: chart roles of PVCs, the workload a pod
belongs to, PersistentVolumes and zones, container health, log scanning."""
from __future__ import annotations

import re
from typing import Iterator

from airflow_gke.views import Context, ContainerStatus, DataUnavailable, Obj, Pod, as_dict, as_list, dig


ZONE_KEYS = ("topology.gke.io/zone", "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
PD_PROVISIONERS = ("pd.csi.storage.gke.io", "kubernetes.io/gce-pd")
RWX_PROVISIONERS = ("filestore.csi.storage.gke.io",)


# --- chart roles -------------------------------------------------------------------------------

def pvc_role(ctx: Context, name: str, labels: dict | None = None) -> tuple[str | None, str | None, str | None]:
    """(role, chart value for its class, owning StatefulSet) of a chart PVC by its name/labels:
    ``logs`` / ``dags`` (shared PVCs) or a StatefulSet volumeClaimTemplate (``worker``,
    ``triggerer``, ``redis``, ``postgresql``, ``scheduler``)."""
    labels = labels or {}
    rel = _rel(ctx)
    comp = labels.get("component") or labels.get("app.kubernetes.io/component")
    if comp == "logs-pvc" or (rel and name == f"{rel}-logs"):
        return "logs", "logs.persistence.storageClassName", None
    if comp == "dags-pvc" or (rel and name == f"{rel}-dags"):
        return "dags", "dags.persistence.storageClassName", None
    if rel:
        for tpl, comp_, key in (("logs", "worker", "workers.persistence.storageClassName"),
                                ("logs", "triggerer", "triggerer.persistence.storageClassName"),
                                ("logs", "scheduler", "workers.persistence.storageClassName"),
                                ("redis-db", "redis", "redis.persistence.storageClassName"),
                                ("data", "postgresql", "postgresql.primary.persistence.storageClass")):
            m = re.fullmatch(rf"{re.escape(tpl)}-({re.escape(rel)}-{comp_})-\d+", name)
            if m:
                return comp_, key, m.group(1)
    return None, None, None


def _rel(ctx: Context) -> str | None:
    try:
        return ctx.release
    except DataUnavailable:
        return ctx.target.release


def is_airflow_pod(ctx: Context, p: Pod) -> bool:
    rel = _rel(ctx)
    if p.is_task_pod:
        return rel is None or p.labels.get("release") in (None, rel)
    if p.labels.get("tier") == "airflow":
        return rel is None or p.labels.get("release") == rel
    inst = p.labels.get("app.kubernetes.io/instance")
    return bool(rel) and inst == rel


# --- workloads ---------------------------------------------------------------------------------


# --- containers --------------------------------------------------------------------------------

def all_statuses(pod: Pod) -> list[ContainerStatus]:
    return pod.init_statuses + pod.container_statuses


def status_of(pod: Pod, name: str) -> ContainerStatus | None:
    for cs in all_statuses(pod):
        if cs.name == name:
            return cs
    return None


def spec_of(pod: Pod, name: str) -> dict | None:
    for c in pod.init_containers + pod.containers:
        if c.get("name") == name:
            return c
    return None


def unhealthy(cs: ContainerStatus) -> bool:
    """Waiting, not ready (running app containers), terminated non-zero, or crash-looping."""
    state, f = cs.state
    if state == "waiting":
        return True
    if state == "terminated":
        return f.get("exitCode") not in (0, None)
    if state == "running":
        return not cs.ready if not cs.init else True
    return False


def unhealthy_pods(ctx: Context) -> list[Pod]:
    """The pods (in ``ctx.pods`` order) with at least one unhealthy container status, computed once
    per run: checks that look only at unhealthy containers need not walk every healthy task pod."""
    return ctx.shared("unhealthy_pods", lambda: [
        p for p in ctx.pods if _any_unhealthy(p.status.get("initContainerStatuses"), True)
        or _any_unhealthy(p.status.get("containerStatuses"), False)])


def _any_unhealthy(statuses: object, init: bool) -> bool:
    """``unhealthy`` of any status in a raw status list, read from the dicts directly (the same
    rules as ``ContainerStatus.state`` + ``unhealthy``, without building a view per container)."""
    if not isinstance(statuses, list):
        return False
    for raw in statuses:
        if not isinstance(raw, dict):
            continue
        st = raw.get("state")
        if not isinstance(st, dict):
            continue   # state "unknown": healthy
        if isinstance(st.get("waiting"), dict):
            return True
        if isinstance(st.get("running"), dict):
            if init or not raw.get("ready"):
                return True
            continue
        t = st.get("terminated")
        if isinstance(t, dict) and t.get("exitCode") not in (0, None):
            return True
    return False


def describe_state(cs: ContainerStatus) -> str:
    state, f = cs.state
    bits = [state]
    if f.get("reason"):
        bits.append(str(f["reason"]))
    if state == "terminated" and f.get("exitCode") is not None:
        bits.append(f"exit code {f['exitCode']}")
    if cs.restarts:
        bits.append(f"{cs.restarts} restarts")
    last = cs.last_terminated
    if last and last.get("exitCode") is not None and state != "terminated":
        bits.append(f"last exit code {last.get('exitCode')}")
    return ", ".join(bits)


_ENV_OF: dict[int, tuple[list, dict]] = {}


def env_of(c: dict) -> dict[str, dict]:
    """``name -> env entry`` of a container spec (do not modify it: it is shared). Pods of one
    template share one env list (doctor/compact.py), so the mapping is built once per list."""
    env = c.get("env")
    if not isinstance(env, list):
        return {}
    hit = _ENV_OF.get(id(env))
    if hit is not None and hit[0] is env:
        return hit[1]
    out = {str(e.get("name")): e for e in env if isinstance(e, dict) and e.get("name")}
    if len(_ENV_OF) < 4096:   # the few lists shared by many pods come first; unshared ones are not kept
        _ENV_OF[id(env)] = (env, out)
    return out


def env_value(c: dict, *names: str) -> str | None:
    env = env_of(c)
    for n in names:
        v = env.get(n, {}).get("value")
        if isinstance(v, str):
            return v
    return None


def secret_ref(c: dict, name: str) -> tuple[str, str] | None:
    ref = dig(env_of(c).get(name, {}), "valueFrom", "secretKeyRef")
    if isinstance(ref, dict) and ref.get("name"):
        return str(ref["name"]), str(ref.get("key") or "")
    return None


def image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    last = last.split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else "latest"


def image_repo(image: str) -> str:
    img = image.split("@", 1)[0]
    head, _, last = img.rpartition("/")
    repo = (head + "/" if head else "") + last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
    return repo


# --- logs --------------------------------------------------------------------------------------

def container_logs(ctx: Context, pod: Pod, name: str) -> list[tuple[str, str]]:
    """(which, line) of the stored current and previous logs of a container."""
    out = []
    for prev in (False, True):
        try:
            lines = ctx.log_lines(pod.name, name, previous=prev)
        except DataUnavailable:
            lines = []
        tag = "previous log" if prev else "log"
        out += [(tag, ln) for ln in lines if ln.strip()]
    return out


# --- PersistentVolumes ---------------------------------------------------------------------------

def persistent_volumes(ctx: Context) -> dict[str, Obj]:
    return ctx.persistent_volumes


def pv_zones(pv: Obj) -> list[str]:
    """Zones a PV is pinned to (``spec.nodeAffinity``; legacy zone labels as a fallback)."""
    zones: list[str] = []
    terms = as_list(dig(pv.spec, "nodeAffinity", "required", "nodeSelectorTerms"))
    for t in terms:
        for e in as_list(as_dict(t).get("matchExpressions")):
            e = as_dict(e)
            if e.get("key") in ZONE_KEYS and e.get("operator") == "In":
                zones += [str(v) for v in as_list(e.get("values"))]
    if not zones:
        for k in ZONE_KEYS:
            v = pv.labels.get(k)
            if v:
                zones += v.split("__")
    return list(dict.fromkeys(zones))


def node_zone(node: Obj) -> str | None:
    for k in ZONE_KEYS:
        if node.labels.get(k):
            return node.labels[k]
    return None


def node_schedulable(node: Obj) -> bool:
    if node.spec.get("unschedulable"):
        return False
    for c in as_list(node.status.get("conditions")):
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def node_matches(pod: Pod, node: Obj) -> bool:
    """The pod's nodeSelector (and NoSchedule taints it does not tolerate) allow this node."""
    for k, v in as_dict(pod.spec.get("nodeSelector")).items():
        if node.labels.get(k) != v:
            return False
    tolerations = [as_dict(t) for t in as_list(pod.spec.get("tolerations"))]
    for taint in as_list(node.spec.get("taints")):
        taint = as_dict(taint)
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return False
    return True


def _tolerates(t: dict, taint: dict) -> bool:
    if t.get("effect") and t.get("effect") != taint.get("effect"):
        return False
    if t.get("operator") == "Exists":
        return not t.get("key") or t.get("key") == taint.get("key")
    return t.get("key") == taint.get("key") and t.get("value") == taint.get("value")


# --- commands ----------------------------------------------------------------------------------


def rwx_class(ctx: Context) -> str:
    for s in ctx.storage_classes.values():
        if s.provisioner in RWX_PROVISIONERS and s.name == "standard-rwx":
            return s.name
    for s in ctx.storage_classes.values():
        if s.provisioner in RWX_PROVISIONERS:
            return s.name
    return "standard-rwx"


def iter_claims(pod: Pod) -> Iterator[tuple[str, str]]:
    """(volume name, claim name) of the pod's PVC volumes."""
    for v in as_list(pod.spec.get("volumes")):
        claim = dig(v, "persistentVolumeClaim", "claimName")
        if isinstance(claim, str):
            yield str(as_dict(v).get("name")), claim


