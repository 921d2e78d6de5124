"""The logs volume is not writable by the user Airflow runs as: the scheduler (or triggerer,
dag-processor, workers, task pods) dies while configuring logging with ``PermissionError: [Errno 13]
Permission denied: '/opt/airflow/logs/scheduler/<date>'`` (older images: ``Unable to configure
handler 'processor'``), task pods with ``[Errno 1] Operation not permitted`` on their log file.
The image runs as uid 50000 with gid 0; the share behind ``/opt/airflow/logs`` is owned by root (or
another uid) and not group-writable for gid 0. Kubernetes applies ``fsGroup`` to disks, not to NFS or
Filestore volumes (helm/charts#23589, airflow-helm/charts#38 and #708, apache/airflow#39021). Judged
from the collected logs of failing containers, the volume mounted at the path they may not write,
its class and the pod's securityContext."""
from __future__ import annotations

import json

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt, helm_upgrade, kubectl, q
from airflow_gke.views import Context, DataUnavailable, as_dict, dig, owner_of

from ._storage import AIRFLOW_UID, DENIED, LogsDenied, denied_resource, logs_denied

NFS_DRIVERS = ("filestore.csi.storage.gke.io", "nfs.csi.k8s.io", "kubernetes.io/nfs")


@check(id="logs-volume-permission-denied", title="The logs volume is writable by the user Airflow runs as",
       severity="error", category=Category.STORAGE, needs=("pods",),
       uses=("logs", "configmaps", "pvcs", "storageclasses", "persistentvolumes"))
def run(ctx: Context) -> Result:
    """Airflow containers fail with Errno 13 / Errno 1 writing under the logs folder (the volume's owner and mode)."""
    groups = logs_denied(ctx)
    return from_findings([_finding(ctx, g) for g in groups]) if groups else passed()


def _backing(ctx: Context, g: LogsDenied) -> tuple[str, bool]:
    """(what backs the volume, whether Kubernetes applies fsGroup to it)."""
    if g.kind == "nfs":
        return f"NFS {dig(g.volume, 'nfs', 'server')}:{dig(g.volume, 'nfs', 'path')}", False
    try:
        pvc = ctx.pvcs.get(g.claim or "")
    except DataUnavailable:
        pvc = None
    if pvc is None:
        return f"PVC {g.claim}", True
    sc = ctx.storage_class_of(pvc)
    prov = sc.provisioner if sc else None
    pv_name = str(dig(pvc.raw, "spec", "volumeName") or "")
    pv = None
    try:
        pv = ctx.persistent_volumes.get(pv_name) if pv_name else None
    except DataUnavailable:
        pv = None
    if pv is not None and "nfs" in as_dict(pv.raw.get("spec")):
        nfs = as_dict(pv.raw["spec"]["nfs"])
        return f"PVC {g.claim} on NFS volume {pv.name} ({nfs.get('server')}:{nfs.get('path')})", False
    driver = str(dig(pv.raw, "spec", "csi", "driver") or "") if pv is not None else ""
    modes = pvc.access_modes
    what = (f"PVC {g.claim} ({', '.join(modes) or 'no access mode'}"
            + (f", StorageClass {sc.name}, provisioner {prov}" if sc else "") + ")")
    shared = (prov in NFS_DRIVERS or driver in NFS_DRIVERS) or "ReadWriteMany" in modes
    return what, not shared


def _finding(ctx: Context, g: LogsDenied) -> Finding:
    pod0, c0, which0, line0, path0 = g.hits[0]
    backing, fsgroup_applies = _backing(ctx, g)
    sc = as_dict(pod0.spec.get("securityContext"))
    csc = as_dict(next((c.get("securityContext") for c in pod0.init_containers + pod0.containers
                        if c.get("name") == c0), None))
    uid = csc.get("runAsUser", sc.get("runAsUser"))
    gid = csc.get("runAsGroup", sc.get("runAsGroup"))
    fs_group = sc.get("fsGroup")
    pods = list(dict.fromkeys(p.name for p, *_ in g.hits))
    evidence = []
    seen = set()
    for p, c, which, ln, path in g.hits:
        if (p.component, path.rsplit("/", 1)[0]) in seen or len(evidence) >= 3:
            continue
        seen.add((p.component, path.rsplit("/", 1)[0]))
        evidence.append(f"{which} of {p.name}/{c}: {excerpt(ln, DENIED.search(ln))}")
    if len(pods) > 1:
        evidence.append(f"{len(pods)} pods fail the same way: " + ", ".join(pods[:8]) + (" …" if len(pods) > 8 else ""))
    evidence.append(f"{path0.split('/logs', 1)[0]}/logs is {backing}"
                    + ("" if fsgroup_applies else ": a shared file system, to which Kubernetes does not apply fsGroup"))
    evidence.append(f"{pod0.name} runs as runAsUser {uid if uid is not None else 'unset (the image: 50000)'}, "
                    f"runAsGroup {gid if gid is not None else 'unset (0)'}, fsGroup "
                    f"{fs_group if fs_group is not None else 'unset'}")
    n = q(ctx.target.namespace)
    commands: list[str] = []
    sets = []
    if fsgroup_applies and fs_group != 0:
        sets.append("--set securityContexts.pod.fsGroup=0")
    if uid is not None and uid != AIRFLOW_UID:
        sets.append(f"--set securityContexts.pod.runAsUser={AIRFLOW_UID}")
    if sets:
        summary = ("Run Airflow as the image's user (uid 50000) with fsGroup 0, so Kubernetes makes the volume "
                   "group-writable for gid 0 when it mounts it; the upgrade restarts the components.")
        commands.append(helm_upgrade(ctx, *sets))
    else:
        summary = ("Make the share writable for gid 0 (the Airflow user's group): a one-off pod running as root "
                   "gives the logs folder to group 0 with group write ('The volume has to be writable by the Airflow "
                   "user', the chart's docs); then restart the crashing components. fsGroup does not help on NFS or "
                   "Filestore shares.")
        vol = {"name": "logs", **({"persistentVolumeClaim": {"claimName": g.claim}} if g.claim
                                 else {"nfs": as_dict(g.volume.get("nfs"))})}
        spec: dict = {"securityContext": {"runAsUser": 0},
                      "containers": [{"name": "fix-logs-perms", "image": "busybox:1.36",
                                      "command": ["sh", "-c", "chgrp -R 0 /logs && chmod -R g+rwX /logs"],
                                      "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]}],
                      "volumes": [vol]}
        if fsgroup_applies and pod0.node:   # a single-node disk: run next to the pod that has it attached
            spec["nodeName"] = pod0.node
        overrides = json.dumps({"apiVersion": "v1", "spec": spec}, separators=(",", ":"))
        commands.append(f"kubectl run fix-logs-perms --rm -i --restart=Never --namespace {n} --image=busybox:1.36 "
                        f"--overrides={q(overrides)}")
    restarts = []
    for p, *_ in g.hits:
        o = owner_of(p)
        if o and o[0] in ("Deployment", "StatefulSet") and o not in restarts:
            restarts.append(o)
    if not sets:   # after helm upgrade the changed pod template restarts them anyway
        commands += [kubectl(ctx, "rollout", "restart", f"{k.lower()}/{name}") for k, name in restarts[:4]]
    comps = sorted({("task pods" if p.is_task_pod else (p.component or p.name)) for p, *_ in g.hits})
    return Finding(
        title=(f"{', '.join(comps)} may not write to the logs volume ({backing.split(' (')[0]}): "
               f"Permission denied on {path0}"),
        message=(f"{len(pods)} Airflow pod(s) fail with a permission error writing under {path0.split('/logs', 1)[0]}"
                 f"/logs, which is {backing}. Airflow runs as uid 50000 with gid 0 and needs the logs folder writable "
                 "by that user or by group 0; the volume's files belong to another owner and are not group-writable"
                 + ("." if fsgroup_applies else " (fsGroup is not applied to shared file systems).")
                 + " Components that cannot configure logging crash at start."),
        resource=denied_resource(ctx, g),
        evidence=evidence,
        remediation=Remediation(summary, commands),
    )
