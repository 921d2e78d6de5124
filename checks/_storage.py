"""Helpers of the storage checks: the chart roles of PVCs, provisioners, the zones of
PersistentVolumes and nodes, the class to recommend for ReadWriteMany, a pod's claims."""
from __future__ import annotations

import re
from typing import Iterator

from airflow_gke.model import Resource, finding_id
from airflow_gke.remediation import k8s_resource, kubectl, q, workload_resource
from airflow_gke.views import Context, DataUnavailable, Obj, Pod, as_dict, as_list, dig, owner_of

ZONE_KEYS = ("topology.gke.io/zone", "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
PD_PROVISIONERS = ("pd.csi.storage.gke.io", "kubernetes.io/gce-pd")
RWX_PROVISIONERS = ("filestore.csi.storage.gke.io",)


# --- chart roles -------------------------------------------------------------------------------

def pvc_role(ctx: Context, name: str, labels: dict | None = None) -> tuple[str | None, str | None, str | None]:
    """(role, chart value for its class, owning StatefulSet) of a chart PVC by its name/labels:
    ``logs`` / ``dags`` (shared PVCs) or a StatefulSet volumeClaimTemplate (``worker``,
    ``triggerer``, ``redis``, ``postgresql``, ``scheduler``)."""
    labels = labels or {}
    rel = ctx.release_or_given()
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


# --- PersistentVolumes ---------------------------------------------------------------------------

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


# --- classes and claims ------------------------------------------------------------------------

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


# --- the logs volume not writable by the airflow user (logs-volume-permission-denied) -----------

DENIED = re.compile(r"(?:PermissionError: )?\[Errno (13|1)\] (?:Permission denied|Operation not permitted): '([^']+)'")
AIRFLOW_UID = 50000


class LogsDenied:
    """Airflow containers that may not write under the logs folder, grouped by the volume behind it."""
    __slots__ = ("key", "kind", "claim", "volume", "hits")

    def __init__(self, key: str, kind: str, claim: str | None, volume: dict) -> None:
        self.key, self.kind, self.claim, self.volume = key, kind, claim, volume
        self.hits: list[tuple[Pod, str, str, str, str]] = []   # pod, container, which log, line, path


def _mount_for(c: dict, path: str) -> dict | None:
    best = None
    for m in as_list(c.get("volumeMounts")):
        mp = str(as_dict(m).get("mountPath") or "").rstrip("/")
        if mp and (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
            best = {"name": as_dict(m).get("name"), "mountPath": mp}
    return best


def logs_denied(ctx: Context) -> list[LogsDenied]:
    """Errno 13 / Errno 1 on a path under the logs folder in the collected logs of Airflow containers,
    grouped by the volume mounted there (a PVC, else the volume of each workload)."""
    return ctx.derive("logs_denied", _logs_denied, ctx)


def _denied_lines(ctx: Context, pod: Pod, container: str) -> Iterator[tuple[str, str, re.Match]]:
    """(which, line, match) of the lines of ``ctx.recent_logs(pod, container)`` that DENIED matches,
    in that order; a log without ``[Errno 1`` (what every match holds) is not split into lines, nor
    read at all when the source can tell (a snapshot: ~2,400 of 2,500 logs on 10,000 pods)."""
    for prev in (False, True):
        if ctx.log_lacks(pod.name, container, "[Errno 1", previous=prev):
            continue
        text = ctx.log(pod.name, container, previous=prev)
        if not text or "[Errno 1" not in text:
            continue
        which = "previous log" if prev else "log"
        for ln in text.splitlines():
            m = DENIED.search(ln)
            if m:
                yield which, ln, m


def _logs_denied(ctx: Context) -> list[LogsDenied]:
    groups: dict[str, LogsDenied] = {}
    folders: dict[str, str] = {}   # per component, as the first pod of each asks
    for pod in ctx.unhealthy_pods:
        if not ctx.is_airflow_pod(pod) or pod.component in ("pgbouncer", "redis", "statsd", "flower"):
            continue
        comp = "task" if pod.is_task_pod else (pod.component or "scheduler")
        folder = folders.get(comp)
        if folder is None:
            try:
                folder = str(ctx.config(comp if comp != "task" else "scheduler").get("logging", "base_log_folder")
                             or "/opt/airflow/logs").rstrip("/")
            except DataUnavailable:   # airflow.cfg not read: the chart's folder
                folder = "/opt/airflow/logs"
            folders[comp] = folder
        volumes = None
        for c in pod.init_containers + pod.containers:
            name = str(c.get("name") or "")
            if name.startswith("git-sync"):
                continue
            for which, ln, m in _denied_lines(ctx, pod, name):
                path = m.group(2)
                if not (path == folder or path.startswith(folder + "/")):
                    continue
                mount = _mount_for(c, path)
                if mount is None:
                    continue
                if volumes is None:
                    volumes = {str(as_dict(v).get("name")): as_dict(v) for v in as_list(pod.spec.get("volumes"))}
                vol = volumes.get(str(mount["name"]), {})
                claim = dig(vol, "persistentVolumeClaim", "claimName")
                if isinstance(claim, str):
                    key, kind = f"pvc:{claim}", "pvc"
                elif "nfs" in vol:
                    key, kind, claim = f"nfs:{dig(vol, 'nfs', 'server')}:{dig(vol, 'nfs', 'path')}", "nfs", None
                else:
                    continue   # an emptyDir is created writable for the pod: not this failure
                g = groups.setdefault(key, LogsDenied(key, kind, claim if kind == "pvc" else None, vol))
                g.hits.append((pod, name, which, ln, path))
                break
    return list(groups.values())


def denied_resource(ctx: Context, g: LogsDenied) -> Resource:
    """What a ``logs-volume-permission-denied`` finding is about: the PVC, else the first workload."""
    return k8s_resource(ctx, "PersistentVolumeClaim", g.claim) if g.claim else workload_resource(ctx, g.hits[0][0])


def logs_denied_ids(ctx: Context, pod: Pod) -> list[str]:
    """Finding ids of ``logs-volume-permission-denied`` that explain ``pod``'s failure."""
    return [finding_id("logs-volume-permission-denied", denied_resource(ctx, g)) for g in logs_denied(ctx)
            if any(p.name == pod.name for p, *_ in g.hits)]
# --- recreating a claim ------------------------------------------------------------------------

def recreate_claim_steps(ctx: Context, claim: str, pods: list[Pod], holds_data: bool) -> list[str]:
    """The steps that free and delete a claim so that a helm upgrade can recreate it, in an order
    that works: a claim a pod still references stays Terminating (pvc-protection), so the workloads
    that mount it scale to 0 first (the upgrade that recreates the claim restores their replicas).
    The scale-down says on the line before it what it stops; the delete of a Pending claim that it
    loses no data (the runner's comment on a delete says the volume's data goes with it)."""
    owners: list[tuple[str, str]] = []
    for p in pods:
        o = owner_of(p)
        if o and o[0] in ("Deployment", "StatefulSet") and o not in owners:
            owners.append(o)
    delete = kubectl(ctx, "delete pvc", q(claim))
    if not owners:
        return ([] if holds_data else [f"# deletes {claim}: it is Pending and was never bound, so no data is lost"]) \
            + [delete]
    lost = ("its volume and the data on it go too with the Delete reclaim policy (copy what you need first)"
            if holds_data else "it is Pending and was never bound, so no data is lost")
    # one line, so the delete runs only once the scale-down was accepted
    return [f"# stops the pods that mount {claim} (the helm upgrade below restores them), then deletes {claim}: {lost}",
            kubectl(ctx, "scale --replicas=0", *(q(f"{k.lower()}/{n}") for k, n in owners)) + " && " + delete]
