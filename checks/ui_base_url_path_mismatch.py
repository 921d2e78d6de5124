"""The UI's base_url has a path (``https://host/airflow``) that the UI container's HTTP probes do not
carry. The Airflow 2 webserver (Flask) serves only under that path, so probes of ``/health`` get 404:
the webserver never becomes Ready, the liveness probe restarts it, and the UI and REST API are down.
The chart writes the prefix into the probes only when the URL is ``config.webserver.base_url``; set
through ``env`` (``AIRFLOW__WEBSERVER__BASE_URL``) or with probes overridden, they disagree.

The Airflow 3 api-server (FastAPI with ``root_path``) answers its health endpoint with and without
the prefix, so its unprefixed probes are not judged; a wrong prefix in the Execution API URL is
execution-api-unreachable's."""
from __future__ import annotations

import re
from urllib.parse import urlparse

from airflow_gke.views import Context, Obj, Pod, as_dict, dig
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, planned, q, quote_event, release

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
_404 = re.compile(r"(?i)statuscode: 404")


@check(id="ui-base-url-path-mismatch", title="The webserver's probes and base_url agree on its path prefix",
       severity="error", category=Category.NETWORKING, needs=("pods", "configmaps"),
       uses=("deployments", "events"), evidence="config")
def run(ctx: Context) -> Result:
    """[webserver] base_url has a path the webserver's HTTP probes do not carry: they get 404, it never gets Ready."""
    if ctx.airflow_major == 3:
        return skipped("Airflow 3: the api-server answers its health endpoint with and without the base_url path")
    web = _webserver(ctx)
    if web is None:
        return skipped("no webserver in this release")
    where, spec, pods = web
    main = next((c for c in spec.get("containers") or [] if isinstance(c, dict) and c.get("name") == "webserver"), None)
    if main is None:
        return skipped("no webserver container")
    v = ctx.config("webserver").lookup("webserver", "base_url")
    if v is None or not v.value:
        return passed()
    prefix = urlparse(v.value).path.rstrip("/")
    if not prefix:
        return passed()
    wrong = []
    for name in PROBES:
        path = dig(main, name, "httpGet", "path")
        if isinstance(path, str) and not (path == prefix or path.startswith(prefix + "/")):
            wrong.append((name, path))
    if not wrong:
        return passed()
    return from_findings([_finding(ctx, where, v, prefix, wrong, pods)])


def _webserver(ctx: Context) -> tuple[Obj, dict, list[Pod]] | None:
    """(the webserver's Deployment, else its first pod; the pod spec; its pods)."""
    rel = ctx.release
    pods = [p for p in ctx.pods_by_component.get("webserver", []) if not p.is_task_pod
            and (rel is None or p.labels.get("release") in (None, rel))]
    if ctx.has("deployments"):
        for d in ctx.deployments.values():
            if d.labels.get("component") == "webserver" and (rel is None or d.labels.get("release") == rel):
                return d, as_dict(dig(d.raw, "spec", "template", "spec")), pods
    if pods:
        return pods[0], pods[0].spec, pods
    return None


def _finding(ctx: Context, where: Obj, v, prefix: str, wrong: list[tuple[str, str]], pods: list[Pod]) -> Finding:
    kind = "Deployment" if "template" in as_dict(where.raw.get("spec")) else "Pod"
    evidence = [f"[webserver] base_url = {v.value} ({v.source}): the webserver serves under {prefix}/",
                "webserver " + ", ".join(f"{n} httpGet {p}" for n, p in wrong)
                + f": outside {prefix}/, the webserver answers 404"]
    from_env = v.source.startswith("env ")
    if from_env:
        evidence.append("the chart puts the base_url path into the probes only from config.webserver.base_url; "
                        f"this one comes from {v.source[4:]}")
    subjects = []
    for p in pods[:3]:
        subjects.append(f"Pod/{ctx.target.namespace}/{p.name}")
        cs = next((c for c in p.container_statuses if c.name == "webserver"), None)
        if cs is not None:
            evidence.append(f"Pod {p.name}: webserver ready {str(cs.ready).lower()}, restartCount {cs.restarts}")
        if ctx.has("events"):
            hits = [e for e in ctx.events_for("Pod", p.name) if e.get("reason") == "Unhealthy"
                    and _404.search(str(e.get("message", "")))]
            for e in hits[-2:]:
                evidence.append(quote_event(e))
        for which, ln in ctx.log_history(p, "webserver")[::-1]:
            if re.search(r'"GET [^"]*health[^"]* HTTP/[\d.]+" 404', ln):
                evidence.append(f"{which} {p.name}/webserver: {ln.strip()[:200]}")
                break
    url = v.value
    cmds = [helm_upgrade(ctx, f"--set-string config.webserver.base_url={q(url)}")]
    n = q(ctx.target.namespace)
    if not planned(ctx):
        cmds.append(f"kubectl get deployment {q(where.name if kind == 'Deployment' else release(ctx) + '-webserver')} "
                    f"--namespace {n} -o jsonpath='{{.spec.template.spec.containers[0].livenessProbe.httpGet.path}}'")
    summary = (f"Give the chart the base_url as config.webserver.base_url ({url}): it then renders every probe as "
               f"{prefix}/health" + (f"; {v.source[4:]} may stay (same value) or be removed from env:" if from_env
                                     else "") + ". The upgrade restarts the webserver.")
    if not from_env:
        summary = (f"Make the probes' paths start with {prefix}/ (a probe overridden in the values, or a base_url set "
                   f"outside config.webserver.base_url): with config.webserver.base_url {url} the chart renders "
                   f"{prefix}/health.")
    return Finding(
        title=f"The webserver serves under {prefix}/ but its probes ask {wrong[0][1]}: they get 404 and it never gets Ready",
        message=(f"[webserver] base_url {url} makes the Airflow 2 webserver serve under {prefix}/ only, while its "
                 + ", ".join(n for n, _p in wrong) + f" request {wrong[0][1]}. Those requests answer 404, so the pod "
                 "never becomes Ready (the Service has no endpoint: UI, REST API and the Ingress are down) and the "
                 "liveness probe restarts it."),
        resource=k8s_resource(ctx, kind, where.name),
        evidence=evidence,
        remediation=Remediation(summary, cmds),
        subjects=subjects,
    )
