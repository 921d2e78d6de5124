"""A ReadWriteOnce DAGs/logs PVC mounted by Airflow pods on several nodes: a persistent disk
attaches read-write to one node, so every pod elsewhere waits with ``Multi-Attach error``."""
from __future__ import annotations

import re

from airflow_gke.views import Context, PVC
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (cluster_name, gke_flags, helm_upgrade, k8s_resource, kubectl, project, q,
                                     quote_event)

from ._storage import PD_PROVISIONERS, RWX_PROVISIONERS, pvc_role, recreate_claim_steps, rwx_class

MULTI_ATTACH = re.compile(r"(?i)multi-attach error")
SINGLE_NODE = {"ReadWriteOnce", "ReadWriteOncePod"}


@check(id="dags-pvc-multi-attach", title="Single-node (ReadWriteOnce) volumes are mounted on one node only",
       severity="error", category=Category.STORAGE, needs=("pvcs", "pods", "events", "storageclasses"))
def run(ctx: Context) -> Result:
    """An RWO PVC mounted by Airflow pods on several nodes, with Multi-Attach errors."""
    findings = []
    for pvc in ctx.pvcs.values():
        modes = set(pvc.access_modes)
        if not modes or not modes <= SINGLE_NODE:
            continue
        pods = [p for p in ctx.pods_by_claim.get(pvc.name, []) if p.phase in ("Pending", "Running")
                and ctx.is_airflow_pod(p)]
        if len(pods) < 2:
            continue
        nodes = {p.node for p in pods if p.node}
        events = []
        for p in pods:
            for e in ctx.events_for("Pod", p.name, "FailedAttachVolume"):
                if MULTI_ATTACH.search(str(e.get("message") or "")):
                    events.append((p, e))
        sc = ctx.storage_class_of(pvc)
        single_attach = sc is not None and sc.provisioner in PD_PROVISIONERS
        stuck = [p for p in pods if p.node and p.phase == "Pending"]
        if events or (len(nodes) >= 2 and single_attach and stuck):
            findings.append(_finding(ctx, pvc, pods, events, sc))
    return from_findings(findings)


def _finding(ctx: Context, pvc: PVC, pods, events, sc) -> Finding:
    role, _, _ = pvc_role(ctx, pvc.name, pvc.labels)
    by_node: dict[str, list] = {}
    for p in pods:
        by_node.setdefault(p.node or "(not scheduled)", []).append(p)
    evidence = [f"PersistentVolumeClaim {pvc.name}: spec.accessModes {pvc.access_modes}, StorageClass "
                f"{sc.name if sc else pvc.storage_class_name} ({sc.provisioner if sc else 'unknown provisioner'}), "
                f"volume {pvc.spec.get('volumeName') or '(none)'}"]
    for node, ps in sorted(by_node.items()):
        evidence.append(f"node {node}: " + ", ".join(f"{p.name} ({p.component or 'pod'}, {p.phase})" for p in ps))
    seen = set()
    for p, e in events[-4:]:
        key = (p.name, e.get("message"))
        if key not in seen:
            seen.add(key)
            evidence.append(f"Pod {p.name}: {quote_event(e)}")
    waiting = sorted({p.name for p, _ in events} | {p.name for p in pods if p.node and p.phase == "Pending"})
    rwx = rwx_class(ctx)
    filestore = any(s.provisioner in RWX_PROVISIONERS for s in ctx.storage_classes.values())
    commands = [kubectl(ctx, "get pods", "-o wide", "--field-selector=status.phase!=Succeeded")]
    enable = []
    if not filestore:
        enable = [f"gcloud services enable file.googleapis.com --project {q(project(ctx))}",
                  f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} "
                  "--update-addons=GcpFilestoreCsiDriver=ENABLED"]
    delete = "\n".join(recreate_claim_steps(ctx, pvc.name, pods, holds_data=True))
    filestore_min = (" Filestore's smallest instance is 1 TiB (the basic HDD tier behind standard-rwx), billed whole "
                     "however little the claim asks.")
    if role == "dags":
        summary = ("Option A: no shared disk for DAGs: git-sync in every pod (dags.persistence.enabled=false, "
                   "dags.gitSync.enabled=true) or DAGs baked into the image. Option B: a ReadWriteMany volume on "
                   "Filestore. accessModes and storageClassName are immutable: the PVC is deleted and recreated "
                   "(copy the DAGs first if the volume is their only copy), after scaling down the workloads that mount "
                   "it." + filestore_min)
        commands += ["# Option A: git-sync instead of the DAGs PVC\n" + helm_upgrade(
                         ctx, "--set dags.persistence.enabled=false", "--set dags.gitSync.enabled=true",
                         "--set dags.gitSync.repo=<git repository URL>"),
                     "# Option B: Filestore-backed ReadWriteMany\n" + "\n".join(enable + [delete, helm_upgrade(
                         ctx, "--set dags.persistence.accessMode=ReadWriteMany",
                         f"--set dags.persistence.storageClassName={q(rwx)}")])]
    elif role == "logs":
        summary = ("Option A: turn the shared logs volume off and use remote logging to Cloud Storage. Option B: a "
                   "ReadWriteMany class (Filestore). The PVC is immutable: scale down the workloads that mount it, "
                   "delete and recreate it." + filestore_min)
        commands += ["# Option A: no logs PVC\n" + helm_upgrade(ctx, "--set logs.persistence.enabled=false"),
                     "# Option B: Filestore-backed ReadWriteMany\n" + "\n".join(enable + [delete, helm_upgrade(
                         ctx, "--set logs.persistence.enabled=true",
                         f"--set logs.persistence.storageClassName={q(rwx)}")])]
    else:
        summary = ("Mount a ReadWriteOnce volume from one node only (one pod, or pods pinned to one node), or move the "
                   f"data to a ReadWriteMany class such as {rwx} (Filestore).")
        commands += enable
    what = {"dags": "DAGs", "logs": "logs"}.get(role or "", "")
    return Finding(
        title=f"ReadWriteOnce {what + ' ' if what else ''}PVC {pvc.name} is mounted by pods on {len([n for n in by_node if n != '(not scheduled)'])} nodes",
        message=(f"PersistentVolumeClaim {pvc.name} is ReadWriteOnce: its disk attaches read-write to a single node. "
                 f"Airflow pods on {len(by_node)} nodes mount it, so the pods away from the node that holds the disk "
                 f"cannot start their containers" + (f" ({', '.join(waiting)})" if waiting else "") +
                 ". It works only while every pod lands on the same node."),
        resource=k8s_resource(ctx, "PersistentVolumeClaim", pvc.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        blocks=[k8s_resource(ctx, "Pod", name).ref for name in waiting],
    )
