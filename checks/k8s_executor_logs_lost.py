"""KubernetesExecutor without log persistence and without remote logging: each task's log lives in
its pod's emptyDir and is gone when the pod is deleted (on success, by default)."""
from __future__ import annotations

from airflow_gke.views import Context, DataUnavailable, Pod, as_dict
from airflow_gke.views.identity import resolve
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, project, q, release


DEFAULT_LOGS = "/opt/airflow/logs"
RWX_PROVISIONERS = ("filestore.csi.storage.gke.io",)


@check(id="k8s-executor-logs-lost", title="KubernetesExecutor task logs outlive their pods", severity="warning",
       category=Category.LOGGING, needs=("configmaps", "pods"),
       uses=("cluster", "serviceaccounts", "deployments", "statefulsets", "nodes", "storageclasses", "project"),
       evidence="config")
def run(ctx: Context) -> Result:
    """KubernetesExecutor, no logs volume that persists and [logging] remote_logging off: task logs vanish with the pod."""
    if not ctx.kubernetes_executor:
        return skipped(f"the executor is {ctx.executor or 'unknown'}: no KubernetesExecutor task pods")
    cfg = ctx.config("task")
    if cfg.getboolean("logging", "remote_logging"):
        return passed()
    spec, where = _task_spec(ctx)
    folder = (cfg.get("logging", "base_log_folder") or DEFAULT_LOGS).rstrip("/")
    volume, container, mount_path = _logs_volume(spec, folder)
    if volume is not None and "emptyDir" not in volume:
        return passed()   # a PVC, NFS, CSI (gcsfuse) ... volume keeps the files
    return from_findings([_finding(ctx, cfg, where, folder, volume, container, mount_path)])


def _task_spec(ctx: Context) -> tuple[dict, str]:
    tpl = ctx.pod_template
    if tpl and isinstance(tpl.get("spec"), dict):
        cm = ctx.config_map
        return tpl["spec"], f"pod template (pod_template_file.yaml in ConfigMap {cm.name if cm else '?'})"
    for p in ctx.task_pods:
        return p.spec, f"task pod {p.name}"
    cm = ctx.config_map
    if cm is not None and "pod_template_file.yaml" in as_dict(cm.raw.get("data")):
        raise DataUnavailable("error", f"the pod template (pod_template_file.yaml in ConfigMap {cm.name}) is not valid "
                                       "YAML and no task pod exists, so the task pods' logs volume is unknown")
    raise DataUnavailable("skip", "neither the KubernetesExecutor pod template (pod_template_file.yaml of the chart's "
                                  "ConfigMap) nor a task pod was found, so the task pods' logs volume is unknown")


def _logs_volume(spec: dict, folder: str) -> tuple[dict | None, str, str | None]:
    """(the volume holding ``folder`` in the task container, container name, mount path)."""
    main = Pod({"spec": spec, "metadata": {}}).main_container
    name = str(main.get("name") or "base")
    best = None
    for m in main.get("volumeMounts") or []:
        path = str(as_dict(m).get("mountPath") or "").rstrip("/")
        if path and (folder == path or folder.startswith(path + "/")) and (best is None or len(path) > len(best[1])):
            best = (as_dict(m).get("name"), path)
    if best is None:
        return None, name, None
    for v in spec.get("volumes") or []:
        if as_dict(v).get("name") == best[0]:
            return as_dict(v), name, best[1]
    return None, name, best[1]


def _writer_member(ctx: Context) -> str:
    try:
        idents = resolve(ctx, "task")
    except DataUnavailable:
        idents = []
    for i in idents:
        if i.kind == "gsa" and i.gsa:
            return f"serviceAccount:{i.gsa}"
    for i in idents:
        if i.kind == "node" and i.pools:
            return f"serviceAccount:{ctx.node_service_account(i.pools[0])}"
    return "serviceAccount:GSA_EMAIL"


def _finding(ctx: Context, cfg, where: str, folder: str, volume, container: str, mount_path) -> Finding:
    v = cfg.lookup("logging", "remote_logging")
    evidence = [f"[core] executor = {ctx.executor} ({ctx.config('scheduler').source('core', 'executor')})",
                f"[logging] remote_logging = {v.value} ({v.source})" if v and v.value is not None
                else "[logging] remote_logging is not set (default False)"]
    if volume is None:
        evidence.append(f"{where}: container {container} mounts no volume at {folder} (logs stay in the container's "
                        "filesystem)")
    else:
        evidence.append(f"{where}: volume {volume.get('name')} mounted at {mount_path} in container {container} is an "
                        "emptyDir (logs.persistence.enabled=false)")
    keep = ctx.config("scheduler").get("kubernetes_executor", "delete_worker_pods")
    if keep is not None and keep.strip().lower() == "false":
        evidence.append("[kubernetes_executor] delete_worker_pods = False: finished pods are kept, so logs stay readable "
                        "until the pods are cleaned up")
    else:
        evidence.append("[kubernetes_executor] delete_worker_pods = True (default): a task pod, and its log, is "
                        "deleted as soon as the task succeeds")
    try:
        n = len(ctx.task_pods)
        evidence.append(f"{n} task pod(s) exist now")
    except DataUnavailable:
        pass
    p = project(ctx)
    bucket = f"{p}-airflow-logs"
    member = _writer_member(ctx)
    rwx = []
    try:
        rwx = [s.name for s in ctx.storage_classes.values() if s.provisioner in RWX_PROVISIONERS]
    except DataUnavailable:
        pass
    cmds = [f"gcloud storage buckets create gs://{bucket} --project {q(p)} --location "
            f"{q(_region(ctx))} --uniform-bucket-level-access",
            f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q(member)} "
            "--role roles/storage.objectUser",
            helm_upgrade(ctx, "--set-string config.logging.remote_logging=True",
                         f"--set-string config.logging.remote_base_log_folder=gs://{bucket}/logs",
                         "--set-string config.logging.remote_log_conn_id=google_cloud_default"),
            "# or keep logs on a shared ReadWriteMany volume (Filestore):",
            helm_upgrade(ctx, "--set logs.persistence.enabled=true",
                         f"--set logs.persistence.storageClassName={q(rwx[0] if rwx else 'standard-rwx')}")]
    cm = ctx.config_map
    return Finding(
        title="KubernetesExecutor task logs are lost when the task pods go: no remote logging, no logs volume",
        message=("Each task writes its log to the task pod's own filesystem. Without remote logging or a persistent "
                 "logs volume, the UI can show it only while the pod exists; once the pod is deleted (at once on "
                 "success by default) the UI answers `Could not read served logs` and the log is gone for good. The "
                 "chart warns about it at install: `Kubernetes workers task logs may not persist unless you "
                 "configure log persistence or remote logging!`. This is data loss, not an outage: a warning."),
        resource=k8s_resource(ctx, "ConfigMap", cm.name if cm else f"{release(ctx)}-config"),
        evidence=evidence,
        remediation=Remediation(
            summary=("Ship task logs to Cloud Storage (remote logging, written by the task pods' identity and read by "
                     "the api-server/webserver), or mount a ReadWriteMany logs volume backed by Filestore."),
            commands=cmds),
    )


def _region(ctx: Context) -> str:
    loc = ctx.target.location or "LOCATION"
    parts = loc.split("-")
    return "-".join(parts[:2]) if len(parts) == 3 and len(parts[2]) == 1 else loc
