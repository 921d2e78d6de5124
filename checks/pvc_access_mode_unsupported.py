"""A PVC Pending because it asks an access mode its StorageClass's provisioner cannot provide
(the chart's logs PVC is always ReadWriteMany; GCE Persistent Disk is single-writer)."""
from __future__ import annotations

from airflow_gke.views import Context, PVC, StorageClass, as_dict, dig, human_age
from airflow_gke.model import Finding, Remediation, Resource, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (cluster_name, gke_flags, helm_upgrade, k8s_resource, planned, project, q,
                                     quote_event)
from ._storage import recreate_claim_steps

PD = frozenset({"ReadWriteOnce", "ReadOnlyMany"})
PD_CSI = PD | {"ReadWriteOncePod"}
ALL = frozenset({"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"})
# What each provisioner can provide. Unknown provisioners are not judged.
PROVISIONERS: dict[str, frozenset[str]] = {
    "kubernetes.io/gce-pd": PD,
    "pd.csi.storage.gke.io": PD_CSI,
    "filestore.csi.storage.gke.io": ALL,
    "nfs.csi.k8s.io": ALL,
    "cluster.local/nfs-subdir-external-provisioner": ALL,
    "k8s-sigs.io/nfs-subdir-external-provisioner": ALL,
    "gcsfuse.csi.storage.gke.io": ALL,
}
RWX_PROVISIONERS = ("filestore.csi.storage.gke.io",)


def supported_modes(provisioner: str) -> frozenset[str] | None:
    if provisioner in PROVISIONERS:
        return PROVISIONERS[provisioner]
    if "nfs" in provisioner:
        return ALL
    return None


@check(id="pvc-access-mode-unsupported", title="PVCs ask only for access modes their StorageClass supports",
       severity="error", category=Category.STORAGE, needs=("pvcs", "storageclasses", "events", "pods"),
       uses=("cluster",),
       evidence="config")
def run(ctx: Context) -> Result:
    """A Pending PVC asks an access mode (ReadWriteMany) that its provisioner cannot provide."""
    findings = []
    for pvc in ctx.pvcs.values():
        if pvc.phase != "Pending":
            continue
        sc = ctx.storage_class_of(pvc)
        if sc is None:
            continue   # no such class: pvc-storageclass-missing, not this check
        modes = supported_modes(sc.provisioner)
        if modes is None:
            continue
        bad = [m for m in pvc.access_modes if m not in modes]
        if not bad:
            continue
        findings.append(_finding(ctx, pvc, sc, bad, modes))
    return from_findings(findings)


def _finding(ctx: Context, pvc: PVC, sc: StorageClass, bad: list[str], modes: frozenset[str]) -> Finding:
    named = pvc.storage_class_name
    how = f'StorageClass "{sc.name}"' + ("" if named else " (the cluster default)")
    evidence = [
        f"PersistentVolumeClaim {pvc.name}: status.phase Pending for {human_age(ctx.age(pvc.created))}, "
        f"spec.accessModes {pvc.access_modes}, spec.storageClassName {named if named is not None else '(none: default)'}",
        f"StorageClass {sc.name}: provisioner {sc.provisioner}, which provides only "
        f"{sorted(modes, key=['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteOncePod', 'ReadWriteMany'].index)}",
    ]
    for e in ctx.events_for("PersistentVolumeClaim", pvc.name)[-3:]:
        if e.get("type") == "Warning" or e.get("reason") in ("ProvisioningFailed", "ExternalProvisioning"):
            evidence.append(quote_event(e))
    blocked = [p for p in ctx.pods_by_claim.get(pvc.name, []) if p.phase != "Running"]
    for p in blocked:
        cond = p.condition("PodScheduled")
        why = f"{cond.get('reason')}: {cond.get('message')}" if cond.get("status") == "False" else f"phase {p.phase}"
        evidence.append(f"Pod {p.name} ({p.component or 'pod'}) mounts it and cannot start: {why}")
    role = _role(ctx, pvc)
    rwx = [s.name for s in ctx.storage_classes.values() if s.provisioner in RWX_PROVISIONERS]
    rwx_class = rwx[0] if rwx else "standard-rwx"
    filestore_on = _filestore_enabled(ctx)
    enable_filestore = []
    if not rwx or filestore_on is False:
        enable_filestore.append(f"gcloud services enable file.googleapis.com --project {q(project(ctx))}")
        if filestore_on is not True:
            enable_filestore.append(f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} "
                                    "--update-addons=GcpFilestoreCsiDriver=ENABLED")
    if planned(ctx):
        return _planned_finding(ctx, pvc, sc, bad, modes, role, rwx_class, enable_filestore)
    delete = "\n".join(recreate_claim_steps(ctx, pvc.name, ctx.pods_by_claim.get(pvc.name, []), holds_data=False))
    if role == "logs":
        summary = ("Option A (recommended with KubernetesExecutor): turn off the logs PVC and ship logs to Cloud Storage "
                   "with remote logging. Option B: a ReadWriteMany class backed by Filestore. A PVC's storageClassName "
                   "and accessModes are immutable: the Pending PVC is deleted and recreated.")
        commands = [f"# Option A: no logs PVC (Helm removes the Pending claim)\n"
                    + helm_upgrade(ctx, "--set logs.persistence.enabled=false"),
                    "# Option B: Filestore-backed ReadWriteMany\n" + "\n".join(enable_filestore + [delete, helm_upgrade(
                        ctx, "--set logs.persistence.enabled=true", f"--set logs.persistence.storageClassName={q(rwx_class)}")])]
    elif role == "dags":
        summary = ("Option A: an access mode the disk supports (ReadWriteOnce when a single pod writes). Option B: a "
                   "ReadWriteMany class backed by Filestore. The PVC is immutable: delete and recreate it.")
        commands = ["# Option A: single-writer disk\n" + "\n".join([delete, helm_upgrade(
                        ctx, "--set dags.persistence.accessMode=ReadWriteOnce")]),
                    "# Option B: Filestore-backed ReadWriteMany\n" + "\n".join(enable_filestore + [delete, helm_upgrade(
                        ctx, "--set dags.persistence.accessMode=ReadWriteMany",
                        f"--set dags.persistence.storageClassName={q(rwx_class)}")])]
    else:
        summary = (f"Ask {', '.join(bad)} only of a provisioner that provides it: for ReadWriteMany use a Filestore "
                   "class. The PVC is immutable: delete it and recreate it with the new class.")
        commands = enable_filestore + [delete,
                                       f"# recreate {pvc.name} with storageClassName: {rwx_class} (or another RWX class)"]
    who = ", ".join(f"{p.name}" for p in blocked)
    message = (f"PersistentVolumeClaim {pvc.name} asks {', '.join(bad)}, which {how} (provisioner {sc.provisioner}) "
               "cannot provide, so it stays Pending" + (f" and the pods that mount it cannot start: {who}." if blocked else "."))
    if sc.provisioner in ("kubernetes.io/gce-pd", "pd.csi.storage.gke.io"):
        message += " Compute Engine persistent disks attach to one node for writing; ReadWriteMany needs Filestore (or NFS)."
    return Finding(
        title=f"PVC {pvc.name} asks {', '.join(bad)}, which {how} ({sc.provisioner}) cannot provide",
        message=message,
        resource=k8s_resource(ctx, "PersistentVolumeClaim", pvc.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        blocks=[k8s_resource(ctx, "Pod", p.name).ref for p in blocked],
    )


def _planned_finding(ctx: Context, pvc: PVC, sc: StorageClass, bad: list[str], modes: frozenset[str],
                     role: str | None, rwx_class: str, enable_filestore: list[str]) -> Finding:
    """The same problem before the deploy: the claim does not exist yet, the fix is a values change."""
    named = pvc.storage_class_name
    how = f'StorageClass "{sc.name}"' + ("" if named else " (the cluster default)")
    mounts = ctx.pods_by_claim.get(pvc.name, [])
    who = list(dict.fromkeys("task pods" if p.is_task_pod else (p.component or p.name) for p in mounts))
    evidence = [
        f"planned PersistentVolumeClaim {pvc.name}: spec.accessModes {pvc.access_modes}, spec.storageClassName "
        f"{named if named is not None else '(none: the cluster default applies)'}",
        f"StorageClass {sc.name} (in the cluster): provisioner {sc.provisioner}, which provides only "
        f"{sorted(modes, key=['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteOncePod', 'ReadWriteMany'].index)}",
    ] + [f"planned Pod {p.name} ({'task pod' if p.is_task_pod else p.component or 'pod'}) mounts it" for p in mounts]
    if role == "logs":
        summary = ("Change the values before deploying. Option A (recommended with KubernetesExecutor): no logs PVC "
                   "(logs.persistence.enabled: false) and task logs shipped to Cloud Storage by remote logging. "
                   "Option B: logs.persistence.storageClassName set to a ReadWriteMany class backed by Filestore.")
        commands = ["# Option A: no logs PVC\n" + helm_upgrade(ctx, "--set logs.persistence.enabled=false"),
                    "# Option B: Filestore-backed ReadWriteMany\n" + "\n".join(enable_filestore + [helm_upgrade(
                        ctx, "--set logs.persistence.enabled=true",
                        f"--set logs.persistence.storageClassName={q(rwx_class)}")])]
    elif role == "dags":
        summary = ("Change the values before deploying: an access mode the disk supports (dags.persistence.accessMode: "
                   "ReadWriteOnce when a single pod writes), or a Filestore class for ReadWriteMany.")
        commands = ["# Option A: single-writer disk\n" + helm_upgrade(ctx, "--set dags.persistence.accessMode=ReadWriteOnce"),
                    "# Option B: Filestore-backed ReadWriteMany\n" + "\n".join(enable_filestore + [helm_upgrade(
                        ctx, f"--set dags.persistence.storageClassName={q(rwx_class)}")])]
    else:
        summary = (f"Ask {', '.join(bad)} only of a provisioner that provides it: for ReadWriteMany give the claim a "
                   f"Filestore class ({rwx_class}) in the values or manifest that renders {pvc.name}.")
        commands = enable_filestore + [f"# render {pvc.name} with storageClassName: {rwx_class} (or another RWX class)"]
    stop = f": the {', '.join(who)} will not start" if who else ""
    message = (f"PersistentVolumeClaim {pvc.name} will ask {', '.join(bad)}, which {how} (provisioner {sc.provisioner}) "
               f"cannot provide, so it will stay Pending" + (f" and the pods that mount it ({', '.join(who)}) will not "
                                                             "be scheduled." if who else "."))
    if sc.provisioner in ("kubernetes.io/gce-pd", "pd.csi.storage.gke.io"):
        message += " Compute Engine persistent disks attach to one node for writing; ReadWriteMany needs Filestore (or NFS)."
    return Finding(
        title=f"PVC {pvc.name} will ask {', '.join(bad)}, which {how} ({sc.provisioner}) cannot provide{stop}",
        message=message, resource=k8s_resource(ctx, "PersistentVolumeClaim", pvc.name), evidence=evidence,
        remediation=Remediation(summary, commands))


def _role(ctx: Context, pvc: PVC) -> str | None:
    comp = pvc.labels.get("component") or pvc.labels.get("app.kubernetes.io/component")
    rel = ctx.release
    if comp == "logs-pvc" or (rel and pvc.name == f"{rel}-logs"):
        return "logs"
    if comp == "dags-pvc" or (rel and pvc.name == f"{rel}-dags"):
        return "dags"
    return None


def _filestore_enabled(ctx: Context) -> bool | None:
    if not ctx.has("cluster"):
        return None
    cfg = dig(ctx.cluster, "addonsConfig", "gcpFilestoreCsiDriverConfig")
    return bool(as_dict(cfg).get("enabled")) if cfg is not None else False
