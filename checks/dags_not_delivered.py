"""The pods that run tasks get no DAG files: no git-sync, no DAG volume at ``[core] dags_folder``,
no non-local DAG bundle, and a stock ``apache/airflow`` image, which contains no DAGs."""
from __future__ import annotations

import json
import re

from airflow_gke.views import as_dict, as_list, Context, image_repo, image_tag, owner_of, Pod
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, helm_upgrade, k8s_resource, ns, q, registry_path, release

from ._gitsync import gitsync_containers

STOCK = ("apache/airflow",)
STOCK_TAG = re.compile(r"^(?:slim-)?(?:latest|\d+\.\d+\.\d+(?:[-.]\w+)*)$")
DAG_NOT_FOUND = re.compile(r"(?i)dag not found during start up|dag '?[\w.-]+'? could not be found|dag_id could not be "
                           r"found|DagNotFound|dag .* not found in (?:dagbag|bundle)")


@check(id="dags-not-delivered", title="The pods that run tasks receive the DAG files",
       severity="error", category=Category.DAGS, needs=("pods", "configmaps"),
       uses=("logs", "deployments", "statefulsets"))
def run(ctx: Context) -> Result:
    """Task pods (or workers) with no DAG source while the image is a stock apache/airflow image."""
    if ctx.airflow_cfg is None:
        return skipped("the chart's <release>-config ConfigMap (airflow.cfg) was not found")
    if ctx.kubernetes_executor:
        spec = _template_spec(ctx)
        runners = [p for p in ctx.task_pods]
        where = ("ConfigMap", f"{release(ctx)}-config")
        cfg = ctx.config("task")
    elif ctx.celery_executor:
        spec = None
        runners = [p for p in ctx.pods_by_component.get("worker", []) if ctx.is_airflow_pod(p)]
        cfg = ctx.config("worker")
        where = None
    else:
        spec = None
        runners = [p for p in ctx.pods_by_component.get("scheduler", []) if ctx.is_airflow_pod(p)]
        cfg = ctx.config("scheduler")
        where = None
    if cfg.getboolean("core", "load_examples", False):
        return passed()
    if _remote_bundles(cfg):
        return passed()
    dags_folder = cfg.get("core", "dags_folder") or "/opt/airflow/dags"
    specs: list[tuple[str, dict]] = [(p.name, p.spec) for p in runners]
    if spec is not None and not specs:
        specs = [("pod_template_file.yaml", spec)]
    if not specs:
        return passed()
    if any(_delivers(s, dags_folder) for _n, s in specs):
        return passed()   # some runners get DAGs: not this check (stops at the first that does)
    bad = specs
    images = sorted({str(c.get("image") or "") for _n, s in bad for c in as_list(s.get("containers"))[:1]
                     if isinstance(c, dict)})
    if not images or not all(image_repo(i) in STOCK and STOCK_TAG.match(image_tag(i)) for i in images):
        return passed()   # a custom image may well contain the DAGs
    if where is None:
        p0 = runners[0]

        o = owner_of(p0)
        where = o if o else ("Pod", p0.name)
    return from_findings([_finding(ctx, where, bad, runners, images, dags_folder)])


def _template_spec(ctx: Context) -> dict | None:
    tpl = ctx.pod_template
    return as_dict(tpl.get("spec")) if tpl else None


def _remote_bundles(cfg) -> bool:
    raw = cfg.get("dag_processor", "dag_bundle_config_list")
    if not raw:
        return False
    try:
        bundles = json.loads(raw)
    except (ValueError, TypeError):
        return True   # cannot tell: assume the bundles deliver
    return any("LocalDagBundle" not in str(as_dict(b).get("classpath")) for b in as_list(bundles))


def _delivers(spec: dict, folder: str) -> bool:
    """git-sync, or a real volume (not emptyDir/configMap/secret/projected) mounted at, above or below
    the DAGs folder."""
    pod = Pod({"spec": spec})
    if gitsync_containers(pod):
        return True
    vols = {str(as_dict(v).get("name")): as_dict(v) for v in as_list(spec.get("volumes"))}
    folder = folder.rstrip("/")
    for c in as_list(spec.get("containers"))[:1]:
        for m in as_list(as_dict(c).get("volumeMounts")):
            m = as_dict(m)
            path = str(m.get("mountPath") or "").rstrip("/")
            if not path or not (folder == path or folder.startswith(path + "/") or path.startswith(folder + "/")):
                continue
            v = vols.get(str(m.get("name")), {})
            if any(k in v for k in ("emptyDir", "configMap", "secret", "projected", "downwardAPI")):
                continue
            return True
    return False


def _finding(ctx: Context, where: tuple[str, str], bad, runners, images, folder: str) -> Finding:
    kind, name = where
    evidence = [f"[core] dags_folder = {folder}",
                f"image {', '.join(images)}: a stock apache/airflow image (it ships no DAGs)",
                "no git-sync container, no volume mounted at the DAGs folder, no DAG bundle other than LocalDagBundle"]
    for n, _s in bad[:3]:
        evidence.append(f"{'Pod ' + n if n != 'pod_template_file.yaml' else 'the KubernetesExecutor pod template'}: "
                        "no DAG volume, no git-sync")
    hits = 0
    for p in runners:
        for c in p.containers[:1]:
            for w, ln in ctx.recent_logs(p, str(c.get("name"))):
                if DAG_NOT_FOUND.search(ln) and hits < 3:
                    hits += 1
                    evidence.append(f"{w} {p.name}/{c.get('name')}: {clip(ln)}")
    comps = []
    for comp in ("dag-processor", "scheduler"):
        for p in ctx.pods_by_component.get(comp, [])[:1]:
            if not _delivers(p.spec, folder):
                comps.append(f"{comp} {p.name}")
    if comps:
        evidence.append("also without a DAG source: " + ", ".join(comps)
                        + " (DAGs copied into a running pod by hand vanish with the pod)")
    n = q(ns(ctx))
    image = f"{registry_path(ctx)}/REPOSITORY/airflow"
    commands = ["# Option A: DAGs from git (git-sync)\n"
                + helm_upgrade(ctx, "--set dags.gitSync.enabled=true", "--set dags.gitSync.repo=GIT_REPOSITORY_URL",
                               "--set dags.gitSync.branch=main", "--set dags.gitSync.subPath=dags"),
                "# Option B: DAGs in the image (FROM apache/airflow:VERSION + COPY dags/ /opt/airflow/dags/)\n"
                f"docker build -t {image}:TAG .\n"
                + helm_upgrade(ctx, f"--set images.airflow.repository={image}", "--set images.airflow.tag=TAG")]
    return Finding(
        title="Task pods get no DAG files: no git-sync, no DAG volume, stock image",
        message=(f"The pods that execute tasks have nothing at {folder}: dags.gitSync and dags.persistence are off, no "
                 "volume is mounted there and the image is the stock apache/airflow image, which contains no DAGs. "
                 "Every task fails at start-up with 'Dag not found' even when the DAG shows in the UI."),
        resource=k8s_resource(ctx, kind, name),
        evidence=evidence,
        remediation=Remediation("Deliver DAGs the same way to every component and task pod: git-sync, a DAG image "
                                "built FROM apache/airflow, or a ReadWriteMany DAG volume.", commands),
    )
