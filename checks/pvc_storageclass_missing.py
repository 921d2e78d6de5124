"""A PVC Pending because its StorageClass does not exist, or because it names none and the
cluster has no default class (values copied from another cloud, a removed default annotation)."""
from __future__ import annotations

import json
import re

from airflow_gke.views import Context, PVC, human_age
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (cluster_name, gke_flags, helm_upgrade, k8s_resource, kubectl, project, q,
                                     quote_event)

from ._storage import PD_PROVISIONERS, RWX_PROVISIONERS, pvc_role, rwx_class

NO_CLASS_EVENT = re.compile(r"(?i)no persistent volumes available for this claim and no storage class is set")


@check(id="pvc-storageclass-missing", title="Pending PVCs name a StorageClass that exists, or the cluster has a default",
       severity="error", category=Category.STORAGE, needs=("pvcs", "storageclasses", "events", "pods"),
       evidence="config")
def run(ctx: Context) -> Result:
    """A Pending PVC names a StorageClass that does not exist, or names none and there is no default."""
    findings = []
    for pvc in ctx.pvcs.values():
        if pvc.phase != "Pending":
            continue
        named = pvc.storage_class_name
        if named is None:
            if ctx.default_storage_class is not None:
                continue   # the default class applies (retroactively since Kubernetes 1.28)
            findings.append(_finding(ctx, pvc, None))
        elif named == "":
            # storageClassName "" binds only pre-provisioned volumes: fire only when the binder says so
            if any(NO_CLASS_EVENT.search(str(e.get("message") or ""))
                   for e in ctx.events_for("PersistentVolumeClaim", pvc.name)):
                findings.append(_finding(ctx, pvc, ""))
        elif named not in ctx.storage_classes:
            findings.append(_finding(ctx, pvc, named))
    return from_findings(findings)


def _finding(ctx: Context, pvc: PVC, named: str | None) -> Finding:
    classes = sorted(ctx.storage_classes.values(), key=lambda s: s.name)
    age = human_age(ctx.age(pvc.created))
    shown = "(not set)" if named is None else ('"" (no class)' if named == "" else named)
    evidence = [(f"planned PersistentVolumeClaim {pvc.name}:" if ctx.mode == "planned" else
                 f"PersistentVolumeClaim {pvc.name}: status.phase Pending for {age},")
                + f" spec.storageClassName {shown}, spec.accessModes {pvc.access_modes}"]
    if classes:
        evidence.append("StorageClasses in the cluster: " + ", ".join(
            f"{s.name} ({s.provisioner}{', default' if s.is_default else ''})" for s in classes))
    else:
        evidence.append("the cluster has no StorageClass at all")
    if named is None or named == "":
        evidence.append("no StorageClass carries storageclass.kubernetes.io/is-default-class=true")
    for e in ctx.events_for("PersistentVolumeClaim", pvc.name)[-3:]:
        if e.get("type") == "Warning" or e.get("reason") in ("ProvisioningFailed", "FailedBinding"):
            evidence.append(quote_event(e))
    blocked = [p for p in ctx.pods_by_claim.get(pvc.name, []) if p.phase == "Pending"]
    for p in blocked:
        cond = p.condition("PodScheduled")
        why = f"{cond.get('reason')}: {cond.get('message')}" if cond.get("status") == "False" else f"phase {p.phase}"
        evidence.append(f"Pod {p.name} ({p.component or 'pod'}) mounts it and cannot start: {why}")

    role, value_key, sts = pvc_role(ctx, pvc.name, pvc.labels)
    wants_rwx = "ReadWriteMany" in pvc.access_modes
    if wants_rwx:
        target = rwx_class(ctx)
        have_target = any(s.name == target for s in classes)
    else:
        pd = [s.name for s in classes if s.provisioner in PD_PROVISIONERS]
        target = "standard-rwo" if "standard-rwo" in pd else (pd[0] if pd else (classes[0].name if classes else "standard-rwo"))
        have_target = bool(classes)
    will = ctx.mode == "planned"   # before the deploy: no claim to describe or delete, the values are the fix
    commands = [] if will else [kubectl(ctx, "describe pvc", q(pvc.name)), "kubectl get storageclass"]
    enable_filestore = []
    if wants_rwx and not any(s.provisioner in RWX_PROVISIONERS for s in classes):
        enable_filestore = [f"gcloud services enable file.googleapis.com --project {q(project(ctx))}",
                            f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} "
                            "--update-addons=GcpFilestoreCsiDriver=ENABLED"]
    recreate = list(enable_filestore)
    if sts and not will:
        recreate += [kubectl(ctx, "delete statefulset", q(sts), "--cascade=orphan")]
    if not will:
        recreate.append(kubectl(ctx, "delete pvc", q(pvc.name)))
    if value_key:
        recreate.append(helm_upgrade(ctx, f"--set {value_key}={q(target)}"))
    else:
        recreate.append(f"# {'render' if will else 're-apply'} the manifest of {pvc.name} with spec.storageClassName: {target}")
    sts_note = (f" The claim comes from StatefulSet {sts}'s volumeClaimTemplates, which are immutable: delete the "
                "StatefulSet with --cascade=orphan (its pods keep running) before the claim, and let helm recreate it."
                if sts else "")
    if named is None and not wants_rwx and have_target:
        patch = json.dumps({"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}},
                           separators=(",", ":"))
        summary = (f"Option A: mark an existing class as the cluster default again (on GKE: {target}); the Pending claim "
                   "then gets it and is provisioned. Option B: name the class in the Helm values; storageClassName is "
                   "immutable, so the claim is deleted and recreated." + sts_note)
        commands += [f"# Option A: a default StorageClass\nkubectl patch storageclass {q(target)} -p {q(patch)}",
                     "# Option B: name the class\n" + "\n".join(recreate)]
    else:
        summary = (f"Name a StorageClass that exists (on GKE: {target}"
                   f"{' (Filestore, ReadWriteMany)' if wants_rwx else ''}). storageClassName is immutable: delete "
                   "the Pending PVC and let it be recreated with the new class." + sts_note)
        commands += recreate
    if named is None:
        what = "names no StorageClass and the cluster has no default class"
    elif named == "":
        what = 'sets storageClassName "" (static volumes only) and no PersistentVolume matches it'
    else:
        what = f'names StorageClass "{named}", which does not exist in the cluster'
    who = ", ".join(p.name for p in blocked)
    if will:
        mounts = ", ".join(dict.fromkeys(p.component or p.name for p in ctx.pods_by_claim.get(pvc.name, [])))
        message = (f"Planned PersistentVolumeClaim {pvc.name} {what.replace('names', 'will name').replace('sets', 'will set')}"
                   f", so no provisioner will create its volume: it will stay Pending"
                   + (f" and the pods that mount it ({mounts}) will not start." if mounts else "."))
    else:
        message = (f"PersistentVolumeClaim {pvc.name} {what}, so no provisioner will ever create its volume: it has been "
                   f"Pending for {age}" + (f" and the pods that mount it cannot start: {who}." if blocked else "."))
    if named and named not in ("",) and role:
        message += f" The chart takes the class from {value_key}."
    return Finding(
        title=(f"PVC {pvc.name} {'will name' if will else 'names'} StorageClass {named}, which does not exist" if named
               else f"PVC {pvc.name} {'will name' if will else 'names'} no StorageClass and the cluster has no default"),
        message=message,
        resource=k8s_resource(ctx, "PersistentVolumeClaim", pvc.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        blocks=[k8s_resource(ctx, "Pod", p.name).ref for p in blocked],
    )
