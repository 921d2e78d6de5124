"""Cloud Storage FUSE CSI volumes that cannot mount: DAGs or logs on a bucket mounted with the
``gcsfuse.csi.storage.gke.io`` driver need the cluster's ``GcsFuseCsiDriver`` add-on
(``addonsConfig.gcsFuseCsiDriverConfig.enabled``), the pod annotation
``gke-gcsfuse/volumes: "true"`` that makes GKE's webhook inject the ``gke-gcsfuse-sidecar`` (without
it: ``failed to find the sidecar container in Pod spec``), and storage access to the bucket for the
pod's identity (Workload Identity; without it the kubelet's ``FailedMount`` event carries the driver's
``code = PermissionDenied ... googleapi: Error 403``). Pods stay in ``ContainerCreating`` /
``Init:0/1``. One finding per cause, the pods it holds as its subjects: the add-on (ERROR on the
cluster, read from the cluster), the annotation (ERROR on the workload or the KubernetesExecutor pod
template, read from the specs) and a denied mount (ERROR on the bucket, from the mount events)."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (bucket_resource, cluster_name, cluster_resource, excerpt, gke_flags, helm_upgrade, q,
                                     workload_resource)
from airflow_gke.views import Context, DataUnavailable, Pod, as_dict, as_list, dig

DRIVER = "gcsfuse.csi.storage.gke.io"
ANNOTATION = "gke-gcsfuse/volumes"
_DENIED = re.compile(r"code = PermissionDenied|googleapi: Error 403|does not have storage\.\w+\.\w+ access", re.I)
_NO_SIDECAR = re.compile(r"failed to find the sidecar container in Pod spec|webhook failed to inject the sidecar", re.I)
_NOT_REGISTERED = re.compile(rf"driver name {re.escape(DRIVER)} not found in the list of registered CSI drivers", re.I)
_BUCKET_IN = re.compile(r'GCS bucket "([^"]+)"')


@check(id="gcsfuse-csi-misconfigured", title="Cloud Storage FUSE volumes mount (add-on, sidecar annotation, bucket access)",
       severity="error", category=Category.STORAGE, needs=("pods", "events"),
       uses=("cluster", "pvcs", "persistentvolumes", "serviceaccounts", "project", "configmaps"))
def run(ctx: Context) -> Result:
    """Pods mount `gcsfuse.csi.storage.gke.io` volumes without the add-on, the sidecar annotation or bucket access."""
    users = [(p, _fuse_volumes(ctx, p)) for p in ctx.pods]
    users = [(p, v) for p, v in users if v]
    if not users:
        return skipped("no pod mounts a Cloud Storage FUSE (gcsfuse.csi.storage.gke.io) volume")
    findings: list[Finding] = []
    addon = _addon_enabled(ctx)
    if addon is False:
        findings.append(_addon_finding(ctx, [p for p, _v in users]))
        return from_findings(findings)   # nothing else can be judged before the driver exists
    unannotated = [p for p, _v in users if as_dict(p.annotations).get(ANNOTATION) != "true"]
    by_owner: dict[str, list[Pod]] = {}
    for p in unannotated:
        by_owner.setdefault(workload_resource(ctx, p).ref, []).append(p)
    for pods in by_owner.values():
        findings.append(_annotation_finding(ctx, pods))
    denied: dict[str, list[tuple[Pod, dict, dict]]] = {}
    for p, vols in users:
        if p in unannotated:
            continue
        for e in ctx.events_for("Pod", p.name, "FailedMount"):
            msg = str(e.get("message") or "")
            if not _DENIED.search(msg):
                continue
            vol = next((v for v in vols if f'volume "{v["name"]}"' in msg), vols[0])
            m = _BUCKET_IN.search(msg)
            bucket = m.group(1) if m else vol["bucket"]
            denied.setdefault(bucket, []).append((p, vol, e))
            break
    for bucket, hits in denied.items():
        findings.append(_denied_finding(ctx, bucket, hits))
    return from_findings(findings) if findings else passed()


def _fuse_volumes(ctx: Context, pod: Pod) -> list[dict]:
    """{name, bucket, read_only} of the pod's FUSE volumes: inline CSI volumes and claims bound to a FUSE PV."""
    vols = as_list(pod.spec.get("volumes"))
    if not any(isinstance(v, dict) and ("csi" in v or "persistentVolumeClaim" in v) for v in vols):
        return []   # most pods (task pods) mount neither: no mount table to build
    out = []
    mounts = {str(m.get("name")): bool(m.get("readOnly")) for c in pod.containers for m in as_list(c.get("volumeMounts"))
              if isinstance(m, dict)}
    for v in vols:
        v = as_dict(v)
        csi = as_dict(v.get("csi"))
        name = str(v.get("name") or "")
        if csi.get("driver") == DRIVER:
            attrs = as_dict(csi.get("volumeAttributes"))
            out.append({"name": name, "bucket": str(attrs.get("bucketName") or "_"),
                        "read_only": bool(csi.get("readOnly")) or mounts.get(name, False)})
            continue
        claim = dig(v, "persistentVolumeClaim", "claimName")
        if claim and ctx.has("pvcs") and ctx.has("persistentvolumes"):
            pvc = ctx.pvcs.get(str(claim))
            pv = ctx.persistent_volumes.get(str(dig(pvc.raw, "spec", "volumeName") or "")) if pvc else None
            if pv is not None and dig(pv.raw, "spec", "csi", "driver") == DRIVER:
                out.append({"name": name, "bucket": str(dig(pv.raw, "spec", "csi", "volumeHandle") or "_"),
                            "read_only": mounts.get(name, False) or "ReadOnlyMany" in as_list(dig(pv.raw, "spec", "accessModes"))})
    return out


def _addon_enabled(ctx: Context) -> bool | None:
    """The add-on's state from the cluster (Autopilot: always on), None when the cluster was not read."""
    try:
        c = ctx.cluster
    except DataUnavailable:
        return None
    if dig(c, "autopilot", "enabled"):
        return True
    return bool(dig(c, "addonsConfig", "gcsFuseCsiDriverConfig", "enabled"))


def _subjects(ctx: Context, pods: list[Pod]) -> list[str]:
    return [f"Pod/{ctx.target.namespace}/{p.name}" for p in pods]


def _names(pods: list[Pod], n: int = 5) -> str:
    names = [p.name for p in pods]
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _addon_finding(ctx: Context, pods: list[Pod]) -> Finding:
    evidence = ["addonsConfig.gcsFuseCsiDriverConfig.enabled is not true on the cluster"]
    evidence.append(f"{len(pods)} pod(s) mount {DRIVER} volumes: {_names(pods)}")
    for p in pods:
        for e in ctx.events_for("Pod", p.name, "FailedMount"):
            m = _NOT_REGISTERED.search(str(e.get("message") or ""))
            if m:
                evidence.append(f"event FailedMount on {p.name}: {excerpt(str(e.get('message')), m, 300)}")
                break
        else:
            continue
        break
    return Finding(
        title="The Cloud Storage FUSE CSI driver add-on is not enabled: FUSE volumes cannot mount",
        message=(f"Pods mount {DRIVER} volumes but the cluster's GcsFuseCsiDriver add-on is off, so no node runs "
                 "the driver and the kubelet cannot mount them: the pods stay in ContainerCreating."),
        resource=cluster_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            summary="Enable the GcsFuseCsiDriver add-on (no node is recreated); the pods mount on their next retry.",
            commands=[f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} --update-addons GcsFuseCsiDriver=ENABLED"]),
        subjects=_subjects(ctx, pods),
    )


def _annotation_finding(ctx: Context, pods: list[Pod]) -> Finding:
    res = workload_resource(ctx, pods[0])
    evidence = [f"{p.name}: volumes {', '.join(v['name'] for v in _fuse_volumes(ctx, p))} use {DRIVER}; "
                f"annotation {ANNOTATION} is {as_dict(p.annotations).get(ANNOTATION) or 'absent'}" for p in pods[:3]]
    for p in pods:
        ev = next((e for e in ctx.events_for("Pod", p.name, "FailedMount")
                   if _NO_SIDECAR.search(str(e.get("message") or ""))), None)
        if ev:
            evidence.append(f"event FailedMount on {p.name}: "
                            f"{excerpt(str(ev.get('message')), _NO_SIDECAR.search(str(ev.get('message'))), 300)}")
            break
    key = "airflowPodAnnotations.gke-gcsfuse/volumes"
    return Finding(
        title=f"{res.kind} {res.name} mounts Cloud Storage FUSE volumes without the {ANNOTATION} annotation",
        message=(f"GKE injects the gke-gcsfuse-sidecar only into pods annotated {ANNOTATION}: \"true\". Without it "
                 "the driver finds no sidecar and refuses the mount: the pods never start."),
        resource=res,
        evidence=evidence,
        remediation=Remediation(
            summary=("Annotate the pods through the chart's airflowPodAnnotations (copied into every component and "
                     "the KubernetesExecutor pod template); the upgrade restarts the pods."),
            commands=["# restarts the Airflow pods (new pod template annotations):\n"
                      + helm_upgrade(ctx, f"--set-string {q(key + '=true')}")]),
        subjects=_subjects(ctx, pods),
    )


def _member(ctx: Context, pod: Pod) -> tuple[str, str]:
    """(IAM member, how it was found) the FUSE driver acts as for the pod: the KSA's GSA, else the KSA itself."""
    ksa = pod.service_account
    gsa = ctx.gsa_of(ksa) if ctx.has("serviceaccounts") else None
    if gsa:
        return f"serviceAccount:{gsa}", f"KSA {ksa} -> GSA {gsa} (iam.gke.io/gcp-service-account)"
    num = ctx.project_number or "PROJECT_NUMBER"
    pool = ctx.workload_pool if ctx.has("cluster") else None
    pool = pool or f"{ctx.target.project}.svc.id.goog"
    return (f"principal://iam.googleapis.com/projects/{num}/locations/global/workloadIdentityPools/{pool}/subject/ns/"
            f"{ctx.target.namespace}/sa/{ksa}", f"KSA {ksa} (no GSA annotation: its own Workload Identity principal)")


def _denied_finding(ctx: Context, bucket: str, hits: list[tuple[Pod, dict, dict]]) -> Finding:
    pods = [p for p, _v, _e in hits]
    p0, v0, e0 = hits[0]
    members: dict[str, str] = {}
    for p, _v, _e in hits:
        m, how = _member(ctx, p)
        members.setdefault(m, how)
    role = "roles/storage.objectViewer" if all(v["read_only"] for _p, v, _e in hits) else "roles/storage.objectUser"
    msg = str(e0.get("message") or "")
    evidence = [f"event FailedMount on {p0.name} (x{e0.get('count') or 1}): {excerpt(msg, _DENIED.search(msg), 300)}",
                f"{len(pods)} pod(s) cannot mount volume {v0['name']} (bucket {bucket}): {_names(pods)}"]
    evidence += [f"identity: {how}" for how in members.values()]
    cmds = [f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member={q(m)} --role={role}"
            for m in members]
    return Finding(
        title=f"The Airflow identity may not read gs://{bucket}: its Cloud Storage FUSE volume does not mount",
        message=(f"The Cloud Storage FUSE driver mounts gs://{bucket} as the pod's Workload Identity and Cloud Storage "
                 f"answers 403: the identity holds no role on the bucket that lets it list and read objects. "
                 f"{len(pods)} pod(s) stay in ContainerCreating."),
        resource=bucket_resource(bucket),
        evidence=evidence,
        remediation=Remediation(
            summary=(f"Grant {role} on the bucket to the identity the pods run as "
                     f"({'read-only mount' if role.endswith('objectViewer') else 'the mount writes'}); the kubelet "
                     "retries the mount by itself, nothing restarts."),
            commands=["\n".join(cmds)]),
        subjects=_subjects(ctx, pods),
    )

