"""The UI's base_url has a path (``https://host/airflow``) that the UI container's HTTP probes do not
carry. The Airflow 2 webserver (Flask) serves only under that path, so probes of ``/health`` get 404:
the webserver never becomes Ready, the liveness probe restarts it, and the UI and REST API are down.
The chart writes the prefix into the probes only when the URL is ``config.webserver.base_url``; set
through ``env`` (``AIRFLOW__WEBSERVER__BASE_URL``) or with probes overridden, they disagree.

The Airflow 3 api-server (FastAPI with ``root_path``) answers its health endpoint with and without
the prefix, so its unprefixed probes are not judged; a wrong prefix in the Execution API URL is
execution-api-unreachable's. On Airflow 3 the check reads the Ingresses that route to the api-server
Service instead: the UI's pages name their assets and API calls under ``[api] base_url``'s path
(``<base href="/airflow/">``), so when no Ingress rule (on the base_url's host) routes that path to the
api-server, the browser's requests land on another backend: a blank UI or 404s (apache/airflow#57613,
an Ingress on ``/airflow`` with the prefix stripped by a rewrite while base_url has no path). Without an
Ingress to the api-server, Airflow 3 is skipped."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from airflow_gke.views import Context, Obj, Pod, as_dict, as_list, dig
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, planned, q, quote_event, release

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
_404 = re.compile(r"(?i)statuscode: 404")


@check(id="ui-base-url-path-mismatch", title="The UI's probes and Ingress agree with base_url on its path prefix",
       severity="error", category=Category.NETWORKING, needs=("pods", "configmaps"),
       uses=("deployments", "events", "ingresses", "k8s_services"), evidence="config")
def run(ctx: Context) -> Result:
    """Airflow 2: [webserver] base_url has a path the webserver's probes do not carry (404, never Ready).
    Airflow 3: no Ingress rule routes [api] base_url's path to the api-server (blank UI, 404s)."""
    if ctx.airflow_major == 3:
        return _af3(ctx)
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


AF3_SKIP = "Airflow 3: the api-server answers its health endpoint with and without the base_url path"
REWRITE = "nginx.ingress.kubernetes.io/rewrite-target"
_REGEX = re.compile(r"[(\[*?+$^|\\{]")


@dataclass
class Route:
    """One Ingress rule path (or default backend) that sends to the api-server Service."""
    ingress: Obj
    host: str                 # "" for every host
    path: str
    path_type: str
    service: str
    port: str

    @property
    def prefix(self) -> str:
        """The literal path the rule matches under (a regex or ``/*`` glob cut at its first operator)."""
        m = _REGEX.search(self.path)
        lit = self.path[:m.start()] if m else self.path
        return "/" + lit.strip("/") if lit.strip("/") else ""

    def covers(self, path: str) -> bool:
        """Whether a request for ``path`` (``/airflow/``) is sent to the api-server by this rule."""
        if self.path_type == "Exact":
            return path.rstrip("/") == self.path.rstrip("/")
        return path.startswith(self.prefix + "/")

    def describe(self) -> str:
        return (f"Ingress {self.ingress.name} rule host {self.host or '*'} path {self.path} (pathType {self.path_type})"
                f" -> Service {self.service}:{self.port}")


def _af3(ctx: Context) -> Result:
    # an unreadable Ingress or Service list raises DataUnavailable: the runner skips with the read's error
    rel = ctx.release
    ui = {n for n, s in ctx.services.items() if as_dict(s.spec.get("selector")).get("component") == "api-server"
          and as_dict(s.spec.get("selector")).get("release") in (None, rel)}
    routes = _routes(ctx, ui)
    if not routes:
        return skipped(AF3_SKIP + "; no Ingress routes to the api-server")
    cfg = ctx.config("api-server")
    v = cfg.lookup("api", "base_url")
    url = urlparse(v.value) if v is not None and v.value else None
    prefix = url.path.rstrip("/") if url is not None else ""
    host = url.hostname or "" if url is not None else ""
    mine = [r for r in routes if not r.host or r.host == host] or routes
    if any(r.covers(prefix + "/") for r in mine):
        return passed()
    return from_findings([_af3_finding(ctx, v, url, prefix, host, mine, routes)])


def _routes(ctx: Context, ui: set[str]) -> list[Route]:
    out = []
    for ing in sorted(ctx.ingresses, key=lambda o: o.name):
        ref = as_dict(dig(ing.raw, "spec", "defaultBackend", "service"))
        if ref.get("name") in ui:
            out.append(Route(ing, "", "/", "Prefix", str(ref["name"]), _port(ref)))
        for rule in as_list(ing.spec.get("rules")):
            rule = as_dict(rule)
            for p in as_list(dig(rule, "http", "paths")):
                p = as_dict(p)
                ref = as_dict(dig(p, "backend", "service"))
                if ref.get("name") in ui:
                    out.append(Route(ing, str(rule.get("host") or ""), str(p.get("path") or "/"),
                                     str(p.get("pathType") or "ImplementationSpecific"), str(ref["name"]), _port(ref)))
    return out


def _port(ref: dict) -> str:
    port = as_dict(ref.get("port"))
    return str(port.get("name") or port.get("number") or "")


def _af3_finding(ctx: Context, v, url, prefix: str, host: str, mine: list[Route], routes: list[Route]) -> Finding:
    r = mine[0]
    ing = r.ingress
    shown = f"{v.value} ({v.source})" if url is not None else "not set"
    evidence = [f"[api] base_url = {shown}: the UI's pages name their assets and API calls under {prefix}/"]
    evidence += [x.describe() for x in mine[:4]]
    if host and not any(x.host == host or not x.host for x in routes):
        evidence.append(f"no rule of these Ingresses is for the base_url's host {host}")
    rewrite = ing.annotations.get(REWRITE)
    if rewrite is not None:
        evidence.append(f"Ingress {ing.name} annotation {REWRITE}: {rewrite}: the api-server gets the path without "
                        f"{r.prefix}: {r.prefix} answers the UI's page, whose links are not under {r.prefix}/")
    evidence.append(f"nothing routes {host or '*'}{prefix}/ to Service {r.service}: the browser's requests for "
                    f"{prefix}/static/... and {prefix}/api/v2/... land on another backend and answer 404")
    # The Ingress is what users browse: give the api-server that path as its base_url.
    tls_hosts = {h for t in as_list(ing.spec.get("tls")) for h in as_list(as_dict(t).get("hosts"))}
    new_host = r.host or host or next((str(as_dict(i).get("ip") or as_dict(i).get("hostname"))
                                       for i in as_list(dig(ing.raw, "status", "loadBalancer", "ingress"))), "")
    scheme = "https" if new_host in tls_hosts else (url.scheme if url is not None and url.scheme else "http")
    new = f"{scheme}://{new_host}{r.prefix}/"
    sets = [f"--set-string config.api.base_url={q(new)}"]
    ex = ctx.config("api-server").lookup("core", "execution_api_server_url")
    if ex is not None and ex.value:
        e = urlparse(ex.value)
        want = r.prefix + "/execution/"
        if e.path.rstrip("/") + "/" != want:
            sets.append(f"--set-string config.core.execution_api_server_url="
                        f"{q(e._replace(path=want).geturl())}")
    summary = (f"Serve the UI where Ingress {ing.name} sends it: [api] base_url {new}"
               + (" and the Execution API URL under the same prefix" if len(sets) > 1 else "")
               + ". The upgrade restarts the api-server (and the components that read the URL).")
    if rewrite is not None:
        summary += (f" The {REWRITE} annotation may stay: the Airflow 3 api-server answers its routes with and "
                    "without the prefix.")
    return Finding(
        title=(f"The UI is served under {prefix or ''}/ ([api] base_url) but Ingress {ing.name} sends only "
               f"{', '.join(sorted({x.path for x in mine}))} to the api-server: a blank UI or 404s"),
        message=(f"Airflow 3 renders the UI's page with <base href=\"{prefix}/\">, so the browser asks for its assets "
                 f"and API under {prefix}/; Ingress {ing.name} routes {', '.join(x.path for x in mine)} to Service "
                 f"{r.service}, which does not cover {prefix}/. The page loads blank or not at all."),
        resource=k8s_resource(ctx, "Ingress", ing.name),
        evidence=evidence,
        remediation=Remediation(summary, [helm_upgrade(ctx, *sets)]),
    )
