"""Helpers of the storage checks: the chart roles of PVCs, provisioners, the zones of
PersistentVolumes and nodes, the class to recommend for ReadWriteMany, a pod's claims."""
from __future__ import annotations

import re
from typing import Iterator

from airflow_gke.views import Context, Obj, Pod, as_dict, as_list, dig

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
