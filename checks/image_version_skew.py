"""Airflow components that run different Airflow versions: the images of the scheduler,
api-server/webserver, triggerer, dag-processor and Celery workers, the task pods (their image, and
the ``airflow_version`` label the scheduler stamps on them), the pod template and
``[kubernetes_executor] worker_container_tag``; and an image whose major version is not the one
the chart rendered for (``airflowVersion``: api-server and dag-processor for 3, webserver for 2).

Airflow 2 values reused with an Airflow 3 image (every image on 3, the chart's objects those of
Airflow 2: a webserver, no api-server or dag-processor) is its own finding, an error: the webserver
crash-loops on the removed ``airflow webserver`` command and no process parses DAG files; its fix
moves what the rendered objects show of the Airflow 2 values (the webserver's replicas and resources,
``[webserver]`` options Airflow 3 reads elsewhere, a custom secret-key Secret) to their Airflow 3
keys in the same upgrade that sets ``airflowVersion``.

Severity: warning; error for Airflow 2 values with an Airflow 3 image."""
from __future__ import annotations

import re
from collections import Counter

from airflow_gke.views import AIRFLOW_COMPONENTS, Context, DataUnavailable, Pod, component_workload, as_dict, dig, secret_ref
from airflow_gke.model import Finding, Remediation, Result, passed
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, deployer, grep, helm_upgrade, ns, q, release, release_resource


_VERSION = re.compile(r"(?:^|[-_])(\d\.\d+\.\d+)(?=$|[-_+.])")
AF3_ONLY = ("api-server", "dag-processor")


def version_of(image: str) -> str | None:
    """The Airflow version in an image tag (``3.1.3``, ``slim-3.1.3-python3.12``), else None."""
    tag = image.rsplit("@", 1)[0]
    tag = tag.rsplit(":", 1)[1] if ":" in tag.rsplit("/", 1)[-1] else ""
    m = _VERSION.search(tag)
    return m.group(1) if m else None


def _label_version(v: str | None) -> str | None:
    if not v:
        return None
    m = re.match(r"^(\d\.\d+\.\d+)", v.replace("_", "+"))
    return m.group(1) if m else None


@check(id="image-version-skew", title="All Airflow components run the same Airflow version", severity="warning",
       category=Category.RUNTIME, needs=("pods", "configmaps"), uses=("deployments", "statefulsets", "logs"),
       severity_note="error for Airflow 2 values with an Airflow 3 image")
def run(ctx: Context) -> Result:
    """Components, task pods and the pod template run different Airflow versions, or not the chart's major version."""
    sources = _sources(ctx)
    versions = {s: v for s, (_img, v) in sources.items() if v}
    distinct = sorted(set(versions.values()), key=_key)
    rendered = _rendered_major(ctx)
    majors = {int(v.split(".")[0]) for v in distinct}
    wrong_major = rendered is not None and majors and rendered not in majors
    if len(distinct) <= 1 and not wrong_major:
        return passed()
    if wrong_major and rendered == 2 and majors == {3}:
        return Result("fail", [_af2_values(ctx, sources, distinct[-1])])
    return Result("fail", [_finding(ctx, sources, versions, distinct, rendered if wrong_major else None)])


def _key(v: str) -> tuple:
    return tuple(int(x) for x in v.split("."))


def _main_image(spec: dict, component: str) -> str | None:
    cs = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    for c in cs:
        if c.get("name") in (component, "base", "worker"):
            return str(c.get("image") or "") or None
    return None


def _sources(ctx: Context) -> dict[str, tuple[str, str | None]]:
    """Where -> (image, Airflow version)."""
    rel = ctx.release
    out: dict[str, tuple[str, str | None]] = {}
    seen_comp: set[str] = set()
    for kind in ("deployments", "statefulsets"):
        if not ctx.has(kind):
            continue
        for w in getattr(ctx, kind).values():
            comp = w.labels.get("component")
            if comp not in AIRFLOW_COMPONENTS or (rel and w.labels.get("release") != rel):
                continue
            img = _main_image(as_dict(dig(w.raw, "spec", "template", "spec")), comp)
            if img:
                out[f"{comp} ({'Deployment' if kind == 'deployments' else 'StatefulSet'} {w.name})"] = (img, version_of(img))
                seen_comp.add(comp)
    for p in ctx.pods:   # components whose workloads were not read
        comp = p.component
        if p.is_task_pod or comp not in AIRFLOW_COMPONENTS or comp in seen_comp or (rel and p.labels.get("release") != rel):
            continue
        img = _main_image(p.spec, comp)
        if img:
            out[f"{comp} (pod {p.name})"] = (img, version_of(img))
            seen_comp.add(comp)
    if "KubernetesExecutor" in (ctx.executor or ""):
        tpl = ctx.pod_template
        if tpl:
            img = _main_image(as_dict(tpl.get("spec")), "base")
            if img:
                out[f"pod template (ConfigMap {ctx.config_map.name if ctx.config_map else '?'} pod_template_file.yaml)"] = \
                    (img, version_of(img))
        cfg = ctx.config("scheduler")
        repo, tag = cfg.get("kubernetes_executor", "worker_container_repository"), \
            cfg.get("kubernetes_executor", "worker_container_tag")
        if repo and tag:
            img = f"{repo}:{tag}"
            out["[kubernetes_executor] worker_container_repository:worker_container_tag"] = (img, version_of(img))
        images: dict[str, list[str]] = {}
        labels: dict[str, list[str]] = {}
        for p in ctx.task_pods[:200]:
            img = _main_image(p.spec, "base")
            if img:
                images.setdefault(img, []).append(p.name)
            lv = p.labels.get("airflow_version")
            if _label_version(lv):
                labels.setdefault(str(lv), []).append(p.name)
        for img, pods in images.items():
            out[f"{len(pods)} task pod(s) (e.g. {pods[0]})"] = (img, version_of(img))
        for lv, pods in labels.items():
            out[f"label airflow_version on {len(pods)} task pod(s) (the scheduler's Airflow)"] = \
                (f"airflow_version={lv}", _label_version(lv))
    return out


def _rendered_major(ctx: Context) -> int | None:
    """The Airflow major version the chart rendered for (its airflowVersion value)."""
    comps = set()
    for kind in ("deployments", "statefulsets"):
        try:
            coll = getattr(ctx, kind)
        except DataUnavailable:
            continue
        for w in coll.values():
            if ctx.release is None or w.labels.get("release") == ctx.release:
                comps.add(w.labels.get("component"))
    if not comps:
        comps = {p.component for p in ctx.pods if not p.is_task_pod}
    if comps & set(AF3_ONLY):
        return 3
    if "webserver" in comps:
        return 2
    return None


def _finding(ctx: Context, sources, versions: dict[str, str], distinct: list[str], rendered: int | None) -> Finding:
    sched = next((v for s, v in versions.items() if s.startswith("scheduler")), None)
    target = sched or Counter(versions.values()).most_common(1)[0][0]
    evidence = []
    for where, (img, v) in sources.items():
        mark = "" if v == target else "  <- differs"
        evidence.append(f"{where}: {img}" + (f" (Airflow {v})" if v and not img.startswith("airflow_version") else "")
                        + mark)
    problems = []
    if len(distinct) > 1:
        problems.append(f"the components run {len(distinct)} Airflow versions ({', '.join(distinct)})")
    if rendered is not None:
        have = sorted({v.split('.')[0] for v in distinct})
        problems.append(f"the chart rendered the objects of Airflow {rendered} "
                        f"({'api-server, dag-processor' if rendered == 3 else 'webserver'}) but the images run Airflow "
                        f"{'/'.join(have)}")
        evidence.append(f"chart objects: {'an api-server/dag-processor' if rendered == 3 else 'a webserver'} workload "
                        f"means airflowVersion {rendered}.x")
    t = q(target)
    cmds = [helm_upgrade(ctx, f"--set-string defaultAirflowTag={t}", f"--set-string airflowVersion={t}",
                         f"--set-string images.airflow.tag={t}", f"--set-string images.pod_template.tag={t}",
                         f"--set-string config.kubernetes_executor.worker_container_tag={t}"),
            f"kubectl get pods --namespace {q(ns(ctx))} -l tier=airflow "
            "-o custom-columns=POD:.metadata.name,IMAGE:.spec.containers[0].image"]
    return Finding(
        title="Airflow components run different versions: " + "; ".join(problems),
        message=("All Airflow processes share one metadata database schema and one task protocol; " + "; ".join(problems)
                 + f". Components on another version crash with 'You need to migrate the database', wait forever in "
                   "wait-for-airflow-migrations, or run tasks with code that does not match the scheduler. "
                   f"Align every image (and airflowVersion) on {target}"
                 + (", the scheduler's version" if sched else "") + "."),
        resource=release_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            f"Pin one version everywhere (defaultAirflowTag and airflowVersion {target}, no per-image tag overrides, no "
            "worker_container_tag override) and run the migration job for it.", cmds),
    )


# Airflow 2 options that Airflow 3 reads under another section (the chart's config.<section>.<key>);
# the deprecated [webserver] names of [api] options still work with a warning, [fab] ones do not.
MOVED = {("webserver", "base_url"): ("api", "base_url"), ("webserver", "workers"): ("api", "workers"),
         ("webserver", "web_server_worker_timeout"): ("api", "worker_timeout"),
         ("webserver", "expose_config"): ("api", "expose_config"),
         ("webserver", "enable_proxy_fix"): ("fab", "enable_proxy_fix"),
         ("webserver", "expose_hostname"): ("fab", "expose_hostname"),
         ("webserver", "navbar_color"): ("fab", "navbar_color")}
AF3_CHART = (1, 16, 0)     # the first chart release that renders Airflow 3 (api-server, dag-processor)
_REMOVED = re.compile(r"(?i)(command `airflow webserver` has been removed|invalid choice: 'webserver')")


def _chart(ctx: Context) -> str | None:
    try:
        return ctx.chart_version
    except DataUnavailable:
        return None


def _key_or_none(v: str) -> tuple | None:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", v)
    return tuple(int(x) for x in m.groups()) if m else None


def _workload(ctx: Context, component: str):
    found = component_workload(ctx, component)
    return found[1] if found else None


def _af2_values(ctx: Context, sources, version: str) -> Finding:
    """Airflow 2 values (airflowVersion 2.x) with an Airflow 3 image: what the rendered objects show of
    the values, and the one upgrade that moves them."""
    rel = release(ctx)
    web = _workload(ctx, "webserver")
    evidence = [f"{where}: {img} (Airflow {v})" for where, (img, v) in sources.items() if v]
    evidence.append(f"chart objects: Deployment {web.name if web is not None else rel + '-webserver'} (component "
                    "webserver), no api-server and no dag-processor workload: what the chart renders for "
                    "airflowVersion 2.x")
    sets = [f"--set-string airflowVersion={q(version)}", f"--set-string defaultAirflowTag={q(version)}"]
    chart = _chart(ctx)
    chart_key = _key_or_none(chart) if chart else None
    bump = chart_key is not None and chart_key < AF3_CHART
    af3_chart = '.'.join(map(str, AF3_CHART))
    if bump:
        evidence.append(f"chart airflow-{chart} predates Airflow 3 (the chart supports it from "
                        f"{af3_chart}): the chart has to be upgraded too")
        if deployer(ctx)[0] == "helm":   # Argo CD and Flux pin the chart version in their own objects
            sets.insert(0, f"--version {af3_chart}")
    subjects = []
    webpods: list[Pod] = [p for p in ctx.pods_by_component.get("webserver", []) if not p.is_task_pod]
    for p in webpods[:3]:
        subjects.append(f"Pod/{ctx.target.namespace}/{p.name}")
        hits = grep(ctx.log_history(p, "webserver"), _REMOVED)
        if hits:
            which, ln = hits[-1]
            evidence.append(f"{which} {p.name}/webserver: {clip(ln)}")
            break
    cfg = ctx.config("scheduler")
    if cfg.get("scheduler", "standalone_dag_processor") not in (None, "True", "true"):
        evidence.append("[scheduler] standalone_dag_processor = "
                        f"{cfg.get('scheduler', 'standalone_dag_processor')}: Airflow 3's scheduler never parses DAG "
                        "files, and no dag-processor runs, so no DAG is parsed or updated")
    if not cfg.get("core", "execution_api_server_url"):
        evidence.append("[core] execution_api_server_url is not set and no api-server runs: Airflow 3 workers run "
                        "every task through the api-server's Execution API")
    if web is not None:
        tpl = as_dict(dig(web.raw, "spec", "template", "spec"))
        main = next((c for c in tpl.get("containers") or [] if isinstance(c, dict) and c.get("name") == "webserver"), {})
        replicas = as_dict(web.raw.get("spec")).get("replicas")
        if isinstance(replicas, int) and replicas != 1:
            sets.append(f"--set apiServer.replicas={replicas}")
        res = as_dict(main.get("resources"))
        for side in ("requests", "limits"):
            for r, v in sorted(as_dict(res.get(side)).items()):
                sets.append(f"--set-string apiServer.resources.{side}.{r}={q(str(v))}")
        if res:
            evidence.append(f"webserver resources (webserver.resources, ignored for Airflow 3): "
                            + "; ".join(f"{side} " + ", ".join(f"{r} {v}" for r, v in sorted(as_dict(res.get(side)).items()))
                                        for side in ("requests", "limits") if res.get(side)))
        ref = secret_ref(main, "AIRFLOW__WEBSERVER__SECRET_KEY")
        if ref and ref[0] != f"{rel}-webserver-secret-key":
            sets.append(f"--set apiSecretKeySecretName={q(ref[0])}")
            evidence.append(f"env AIRFLOW__WEBSERVER__SECRET_KEY from Secret {ref[0]} (webserverSecretKeySecretName): "
                            "Airflow 3 takes apiSecretKeySecretName")
    for (sec, key), (new_sec, new_key) in MOVED.items():
        v = cfg.lookup(sec, key)
        if v is None or v.value is None or not v.source.startswith("airflow.cfg"):
            continue
        evidence.append(f"airflow.cfg [{sec}] {key} = {v.value}: Airflow 3 reads it as [{new_sec}] {new_key}"
                        + (" (the old name still works, with a deprecation warning)" if new_sec == "api" else
                           " (the old name is ignored)"))
        sets.append(f"--set-string config.{new_sec}.{new_key}={q(v.value)}")
        sets.append(f"--set config.{sec}.{key}=null")
    upgrade = helm_upgrade(ctx, *sets)
    if bump and deployer(ctx)[0] != "helm":
        upgrade = (f"# also raise the chart version to {af3_chart} where the release pins it (Argo CD: the "
                   "Application's targetRevision; Flux: the HelmRelease's spec.chart.spec.version)\n" + upgrade)
    cmds = [upgrade,
            f"kubectl get deployments --namespace {q(ns(ctx))} -l release={q(rel)},tier=airflow "
            "-o custom-columns=NAME:.metadata.name,COMPONENT:.metadata.labels.component"]
    return Finding(
        title=f"Airflow 2 values deployed with an Airflow {version} image: the chart rendered a webserver and no "
              "api-server or dag-processor",
        message=(f"The images run Airflow {version}, but the chart rendered the objects of Airflow 2 (its airflowVersion "
                 "value is still 2.x): a webserver Deployment whose `airflow webserver` command Airflow 3 removed, so it "
                 "crash-loops and there is no UI or REST API; no api-server for the Execution API every Airflow 3 task "
                 "calls; no dag-processor, so no DAG is parsed. The Airflow 2 values under webserver:, ingress.web and "
                 "config.webserver are ignored once the chart renders for Airflow 3: move them in the same upgrade."),
        resource=release_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            f"Render the chart for Airflow 3 (airflowVersion {version}) and move the Airflow 2 values the objects show to "
            "their Airflow 3 keys in the same upgrade (webserver.* to apiServer.*, config.webserver options to "
            "config.api / config.fab, webserverSecretKeySecretName to apiSecretKeySecretName; ingress.web to "
            "ingress.apiServer if you use it); the chart then creates the api-server and dag-processor. Run helm "
            "template and diff first: the upgrade replaces the webserver with the api-server"
            + (f" (the chart needs {af3_chart} or later for Airflow 3)" if bump else "") + ".", cmds),
        severity="error",
        subjects=subjects,
    )
