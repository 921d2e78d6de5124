"""The UI's ``base_url`` and what serves the UI disagree on its path prefix or host.

Airflow 2: ``[webserver] base_url`` has a path (``https://host/airflow``) that the webserver's HTTP probes
do not carry. The webserver (Flask) serves only under that path (anything else answers 404 "Apache Airflow
is not at this location"), so probes of ``/health`` get 404: the webserver never becomes Ready, the
liveness probe restarts it, and the UI and REST API are down. The chart writes the prefix into the probes
only when the URL is ``config.webserver.base_url``; set through ``env`` (``AIRFLOW__WEBSERVER__BASE_URL``)
or with the probes changed after rendering (a post-renderer, a kustomize patch, kubectl edit), they disagree.

Behind an Ingress or a Gateway API HTTPRoute (the rules whose backend is the webserver or api-server
Service, on base_url's host; rules without a host and matching wildcards count for every host): some rule
must route ``<base_url path>/`` to the UI. Airflow 3's pages name their assets and API calls under
``[api] base_url``'s path (``<base href="/airflow/">``), so when nothing routes that path the browser's
requests land on another backend: a blank UI or 404s (apache/airflow#57613, an Ingress on ``/airflow``
with the prefix stripped by a rewrite while base_url has no path). Airflow 3's api-server (FastAPI with
``root_path``) answers with and without the prefix, so a rewrite that strips it is harmless there. The
Airflow 2 webserver is stricter: with a base_url path, a rewrite that strips the prefix
(``nginx.ingress.kubernetes.io/rewrite-target``, an HTTPRoute ``URLRewrite`` ``ReplacePrefixMatch``/
``ReplaceFullPath``) makes every request 404; with no base_url path, a rule under a prefix sends it
paths it does not serve (404) or, rewritten, pages whose links and redirects leave the prefix.

When the path agrees but every rule routing to the UI names a host and none is base_url's host, a
warning: the links and redirects Airflow builds from base_url (log URLs in alerts, login redirects)
point at a host this Ingress/HTTPRoute does not serve, where the browser's session cookie is not sent.

The Airflow 3 probes are not judged (the api-server answers its health endpoint with and without the
prefix); a wrong prefix in the Execution API URL is execution-api-unreachable's. Without an Ingress or
HTTPRoute to the api-server, Airflow 3 is skipped. The Gateway API not installed (the HTTPRoute list
answers 404) means no HTTPRoutes."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from airflow_gke.views import Context, DataUnavailable, Obj, Pod, as_dict, as_list, dig
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (deployer, helm_upgrade, k8s_resource, kubectl, planned, q, quote_event,
                                     release)

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
_404 = re.compile(r"(?i)statuscode: 404")


@dataclass(frozen=True)
class UI:
    """What differs between the Airflow 2 webserver and the Airflow 3 api-server."""
    component: str          # the pods' component label (and the UI Service's selector)
    section: str            # the config section of base_url
    ingress_key: str        # the chart's values key of its Ingress
    strict: bool            # serves only under base_url's path (Flask); FastAPI's root_path answers both
    slash: str              # base_url's conventional trailing slash


AF2 = UI("webserver", "webserver", "web", True, "")
AF3 = UI("api-server", "api", "apiServer", False, "/")


@check(id="ui-base-url-path-mismatch", title="The UI's probes, Ingress and HTTPRoute agree with base_url on its path and host",
       severity="error", category=Category.NETWORKING, needs=("pods", "configmaps"),
       uses=("deployments", "events", "ingresses", "httproutes", "k8s_services"), evidence="config")
def run(ctx: Context) -> Result:
    """Airflow 2: [webserver] base_url has a path the webserver's probes do not carry (404, never Ready).
    Both: no Ingress/HTTPRoute rule routes base_url's path to the UI with the path the UI serves under
    (blank UI, 404s); a warning when no rule to the UI is for base_url's host."""
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
    prefix = urlparse(v.value).path.rstrip("/") if v is not None and v.value else ""
    wrong = []
    for name in PROBES:
        path = dig(main, name, "httpGet", "path")
        if prefix and isinstance(path, str) and not (path == prefix or path.startswith(prefix + "/")):
            wrong.append((name, path))
    try:
        judged = _judge(ctx, AF2, v)
    except DataUnavailable:
        if wrong:   # the probes decide on their own; the routes are judged when they can be read
            return from_findings([_finding(ctx, where, v, prefix, wrong, pods)])
        raise
    findings = []
    if wrong:
        findings.append(_finding(ctx, where, v, prefix, wrong, pods, judged.new_url if judged else None))
    if judged is not None and judged.finding is not None:
        findings.append(judged.finding)
    return from_findings(findings) if findings else passed()


def _af3(ctx: Context) -> Result:
    # an unreadable Ingress, HTTPRoute or Service list raises DataUnavailable: the runner reports the read's error
    v = ctx.config("api-server").lookup("api", "base_url")
    judged = _judge(ctx, AF3, v)
    if judged is None:
        return skipped(AF3_SKIP + "; no Ingress or HTTPRoute routes to the api-server")
    return from_findings([judged.finding]) if judged.finding is not None else passed()


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


def _finding(ctx: Context, where: Obj, v, prefix: str, wrong: list[tuple[str, str]], pods: list[Pod],
             aligned: str | None = None) -> Finding:
    """The probes' finding; ``aligned``: the base_url the route finding of this run moves to (one URL for both fixes)."""
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
    if aligned is not None and aligned != url:
        evidence.append(f"this check's Ingress/HTTPRoute finding moves base_url to {aligned}: the probes follow it")
    fix = aligned or url
    fix_prefix = urlparse(fix).path.rstrip("/")
    # base_url read from the chart's airflow.cfg and already the one to have: config.webserver.base_url holds it,
    # and the chart renders {prefix}/health from it, so the probes were changed after rendering (a post-renderer,
    # a kustomize patch, kubectl edit). Setting the same value again changes nothing; re-rendering restores them.
    rerender = not from_env and _same(url, fix)
    if not rerender:
        cmds = [helm_upgrade(ctx, f"--set-string config.webserver.base_url={q(fix)}")]
    else:
        tool, app, app_ns = deployer(ctx)    # Flux: --force upgrades with unchanged values
        name = q(app or release(ctx))
        cmds = [f"argocd app sync {name}" if tool == "argocd" and not planned(ctx) else
                f"flux reconcile helmrelease {name} --namespace {q(app_ns or ctx.target.namespace)} --force"
                if tool == "flux" and not planned(ctx) else helm_upgrade(ctx)]
    n = q(ctx.target.namespace)
    if not planned(ctx):
        cmds.append(f"kubectl get deployment {q(where.name if kind == 'Deployment' else release(ctx) + '-webserver')} "
                    f"--namespace {n} -o jsonpath='{{.spec.template.spec.containers[0].livenessProbe.httpGet.path}}'")
    summary = (f"Give the chart the base_url as config.webserver.base_url ({fix}): it then renders every probe as "
               f"{fix_prefix}/health" + ((f"; {v.source[4:]} may stay (same value) or be removed from env:" if fix == url
                                          else f"; remove {v.source[4:]} from env (env overrides airflow.cfg)")
                                         if from_env else "") + ". The upgrade restarts the webserver.")
    if rerender:
        summary = (f"config.webserver.base_url is already {fix}, from which the chart renders every probe as "
                   f"{fix_prefix}/health: the probes were changed after the chart rendered them (a post-renderer, a "
                   "kustomize patch in Argo CD or Flux, kubectl edit). Remove that change; rendering the release "
                   "again with the same values restores the chart's probes over an edit made in the cluster. The "
                   "webserver restarts.")
    elif not from_env:
        summary = (f"Set config.webserver.base_url {fix} (the base_url the Ingress/HTTPRoute fix moves to): the chart "
                   f"renders every probe as {fix_prefix}/health from it. The probes disagree with the current one, so "
                   "they were changed after the chart rendered them (a post-renderer, a kustomize patch, kubectl "
                   "edit): remove that change too. The upgrade restarts the webserver.")
    if "<host>" in fix:
        summary += " Replace <host> in the command by the name the Ingress/HTTPRoute finding asks for."
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
    """One rule path (Ingress rule path or default backend, HTTPRoute match) that sends to the UI Service."""
    kind: str                 # "Ingress" or "HTTPRoute"
    obj: Obj
    host: str                 # "" for every host; may be a wildcard (*.example.com)
    path: str
    path_type: str            # Prefix/Exact/ImplementationSpecific, or PathPrefix/Exact/RegularExpression
    service: str
    port: str
    rewrite: str | None = None        # nginx rewrite-target, or the HTTPRoute URLRewrite's path
    rewrite_type: str = ""            # "" (nginx), "ReplacePrefixMatch" or "ReplaceFullPath"
    filter_at: str = ""               # the HTTPRoute filter's JSON pointer (for its removal)

    @property
    def prefix(self) -> str:
        """The literal path the rule matches under (a regex or ``/*`` glob cut at its first operator)."""
        m = _REGEX.search(self.path)
        lit = self.path[:m.start()] if m else self.path
        return "/" + lit.strip("/") if lit.strip("/") else ""

    def covers(self, path: str) -> bool:
        """Whether a request for ``path`` (``/airflow/``) is sent to the UI by this rule."""
        if self.path_type == "Exact":
            return path.rstrip("/") == self.path.rstrip("/")
        return path.startswith(self.prefix + "/")

    def serves(self, host: str) -> bool:
        """Whether this rule is for ``host`` (an Ingress wildcard matches one label, an HTTPRoute's any)."""
        if not self.host or not host:
            return True
        if self.host.startswith("*."):
            rest = host.lower()[: -len(self.host) + 1] if host.lower().endswith(self.host[1:].lower()) else ""
            return bool(rest) and (self.kind == "HTTPRoute" or "." not in rest)
        return self.host.lower() == host.lower()

    def received(self, path: str) -> str | None:
        """The path the UI gets for a request of ``path`` this rule routes (None: not worked out)."""
        if self.rewrite is None:
            return path
        if self.rewrite_type == "ReplaceFullPath":
            return self.rewrite
        if self.rewrite_type == "ReplacePrefixMatch":
            return (self.rewrite.rstrip("/") + path[len(self.prefix):]) or "/"
        try:   # ingress-nginx: location ~* "^<path>", the whole URI replaced by the target with its $n
            m = re.match(self.path, path, re.IGNORECASE)
        except re.error:
            return None
        if m is None:
            return None
        return re.sub(r"\$(\d)", lambda g: (m.group(int(g.group(1))) or "") if int(g.group(1)) <= m.re.groups else "",
                      self.rewrite)

    def keeps(self, prefix: str) -> bool:
        """Whether the UI still gets a request under ``prefix`` under it (no rewrite strips it)."""
        if not prefix:
            return True
        got = self.received(prefix + "/home")
        return got is None or got == prefix or got.startswith(prefix + "/")

    def describe(self) -> str:
        what = "rule" if self.kind == "Ingress" else "match"
        kind = f"pathType {self.path_type}" if self.kind == "Ingress" else f"type {self.path_type}"
        return (f"{self.kind} {self.obj.name} {what} host {self.host or '*'} path {self.path} ({kind})"
                f" -> Service {self.service}:{self.port}")

    def rewrite_text(self) -> str:
        if self.rewrite_type:
            return f"HTTPRoute {self.obj.name} filter URLRewrite {self.rewrite_type} {self.rewrite}"
        return f"Ingress {self.obj.name} annotation {REWRITE}: {self.rewrite}"


@dataclass
class Judged:
    finding: Finding | None
    new_url: str | None = None     # the base_url the finding sets (None: base_url stays)


def _ui_services(ctx: Context, ui: UI) -> set[str]:
    rel = ctx.release
    return {n for n, s in ctx.services.items() if as_dict(s.spec.get("selector")).get("component") == ui.component
            and as_dict(s.spec.get("selector")).get("release") in (None, rel)}


def _judge(ctx: Context, ui: UI, v) -> Judged | None:
    """The finding on the Ingresses/HTTPRoutes that send to the UI (None when none does)."""
    routes = _routes(ctx, _ui_services(ctx, ui))
    if not routes:
        return None
    url = urlparse(v.value) if v is not None and v.value else None
    prefix = url.path.rstrip("/") if url is not None else ""
    host = url.hostname or "" if url is not None else ""
    mine = [r for r in routes if r.serves(host)] or routes
    good = [r for r in mine if r.covers(prefix + "/") and (not ui.strict or r.keeps(prefix))]
    if not good:
        return _path_finding(ctx, ui, v, url, prefix, host, mine, routes)
    if host and all(r.host for r in routes) and not any(r.serves(host) for r in routes):
        return _host_finding(ctx, ui, v, url, host, good)
    return Judged(None)


def _routes(ctx: Context, ui: set[str]) -> list[Route]:
    out = []
    for ing in sorted(ctx.ingresses, key=lambda o: o.name):
        rewrite = ing.annotations.get(REWRITE)
        ref = as_dict(dig(ing.raw, "spec", "defaultBackend", "service"))
        if ref.get("name") in ui:
            out.append(Route("Ingress", ing, "", "/", "Prefix", str(ref["name"]), _port(ref)))
        for rule in as_list(ing.spec.get("rules")):
            rule = as_dict(rule)
            for p in as_list(dig(rule, "http", "paths")):
                p = as_dict(p)
                ref = as_dict(dig(p, "backend", "service"))
                if ref.get("name") in ui:
                    out.append(Route("Ingress", ing, str(rule.get("host") or ""), str(p.get("path") or "/"),
                                     str(p.get("pathType") or "ImplementationSpecific"), str(ref["name"]), _port(ref),
                                     rewrite))
    for hr in sorted(_http_routes(ctx), key=lambda o: o.name):
        hosts = [str(h) for h in as_list(hr.spec.get("hostnames")) if h] or [""]
        for i, rule in enumerate(as_list(hr.spec.get("rules"))):
            rule = as_dict(rule)
            for b, ref in enumerate(as_list(rule.get("backendRefs"))):
                ref = as_dict(ref)
                if (ref.get("kind") or "Service") != "Service" or (ref.get("group") or "") != "" \
                        or (ref.get("namespace") or hr.namespace) != hr.namespace or ref.get("name") not in ui:
                    continue
                rw, rw_type, at = None, "", ""
                for where, filters in ((f"/spec/rules/{i}/filters", rule.get("filters")),
                                       (f"/spec/rules/{i}/backendRefs/{b}/filters", ref.get("filters"))):
                    for j, f in enumerate(as_list(filters)):
                        f = as_dict(f)
                        path = as_dict(dig(f, "urlRewrite", "path"))
                        if f.get("type") == "URLRewrite" and path.get("type") in ("ReplacePrefixMatch", "ReplaceFullPath"):
                            rw_type = str(path["type"])
                            rw = str(path.get("replacePrefixMatch" if rw_type == "ReplacePrefixMatch"
                                              else "replaceFullPath") or "/")
                            at = f"{where}/{j}"
                for m in as_list(rule.get("matches")) or [{}]:
                    pm = as_dict(as_dict(m).get("path"))
                    for h in hosts:
                        out.append(Route("HTTPRoute", hr, h, str(pm.get("value") or "/"),
                                         str(pm.get("type") or "PathPrefix"), str(ref["name"]),
                                         str(ref.get("port") or ""), rw, rw_type, at))
    return out


def _http_routes(ctx: Context) -> list[Obj]:
    """The HTTPRoutes; none when the Gateway API is not installed (the list answered 404). Not read
    (a snapshot older than the read, a refused list) is DataUnavailable like any other read: the check
    cannot say no HTTPRoute routes base_url's path elsewhere."""
    return ctx.http_routes or []


def _port(ref: dict) -> str:
    port = as_dict(ref.get("port"))
    return str(port.get("name") or port.get("number") or "")


def _concrete(host: str) -> str:
    return "" if not host or host.startswith("*") else host


def _new_base(ui: UI, scheme: str, host: str, prefix: str) -> str:
    return f"{scheme}://{host}{prefix}{ui.slash}" if prefix or ui.slash else f"{scheme}://{host}"


def _same(a: str | None, b: str) -> bool:
    if not a:
        return False
    x, y = urlparse(a), urlparse(b)
    return (x.scheme, x.netloc.lower(), x.path.rstrip("/")) == (y.scheme, y.netloc.lower(), y.path.rstrip("/"))


def _scheme(r: Route, host: str, url) -> str:
    """https when the Ingress has TLS for the host; else base_url's scheme (a Gateway's listeners are not read)."""
    if r.kind == "Ingress":
        tls = {str(h) for t in as_list(r.obj.spec.get("tls")) for h in as_list(as_dict(t).get("hosts")) if h}
        # a wildcard certificate host (*.example.com) covers one label, as the Ingress's rule hosts
        if host in tls or any(Route("Ingress", r.obj, t, "/", "Prefix", "", "").serves(host)
                              for t in tls if t.startswith("*.")):
            return "https"
    return url.scheme if url is not None and url.scheme else "http"


def _chart_ingress(ctx: Context, r: Route) -> bool:
    lab = r.obj.labels
    return (r.kind == "Ingress" and lab.get("component") == "airflow-ingress" and lab.get("heritage") == "Helm"
            and lab.get("release") == release(ctx))


def _unrewrite(ctx: Context, ui: UI, r: Route) -> tuple[list[str], str]:
    """(helm --set arguments, other commands) that drop the rule's rewrite."""
    if _chart_ingress(ctx, r):
        key = f"ingress.{ui.ingress_key}.annotations." + REWRITE.replace(".", "\\.")
        return [f"--set {q(key + '=null')}"], ""
    if r.kind == "Ingress":
        return [], kubectl(ctx, "annotate", "ingress", q(r.obj.name), f"{REWRITE}-")
    patch = '[{"op":"remove","path":"' + r.filter_at + '"}]'
    return [], kubectl(ctx, "patch", "httproute", q(r.obj.name), "--type", "json", "-p", q(patch))


def _base_sets(ctx: Context, ui: UI, v, new: str, prefix: str, execution: bool = True) -> list[str]:
    """The --set arguments that make base_url ``new`` (and, on Airflow 3, the Execution API URL agree)."""
    sets = [] if _same(v.value if v is not None else None, new) else [f"--set-string config.{ui.section}.base_url={q(new)}"]
    if ui is AF3 and execution:
        ex = ctx.config("api-server").lookup("core", "execution_api_server_url")
        if ex is not None and ex.value:
            e = urlparse(ex.value)
            want = prefix + "/execution/"
            if e.path.rstrip("/") + "/" != want:
                sets.append(f"--set-string config.core.execution_api_server_url={q(e._replace(path=want).geturl())}")
    return sets


def _env_note(v) -> str:
    if v is not None and v.source.startswith("env "):
        return f" {v.source[4:]} is set in env and overrides airflow.cfg: change it there too (or remove it)."
    return ""


def _path_finding(ctx: Context, ui: UI, v, url, prefix: str, host: str, mine: list[Route],
                  routes: list[Route]) -> Judged:
    r = next((x for x in mine if x.covers(prefix + "/")), mine[0])
    strips = r.covers(prefix + "/")       # Airflow 2: routed, but a rewrite strips base_url's path
    obj = r.obj
    shown = f"{v.value} ({v.source})" if url is not None else "not set"
    if ui is AF3:
        evidence = [f"[api] base_url = {shown}: the UI's pages name their assets and API calls under {prefix}/"]
    elif prefix:
        evidence = [f"[webserver] base_url = {shown}: the webserver (Flask) serves only under {prefix}/ and answers "
                    "404 anywhere else"]
    else:
        evidence = [f"[webserver] base_url = {shown}: the webserver serves at / and its pages and redirects name "
                    "paths from /"]
    evidence += [x.describe() for x in mine[:4]]
    if host and not any(x.serves(host) for x in routes):
        evidence.append(f"no rule of these {'Ingresses' if r.kind == 'Ingress' else 'routes'} is for the base_url's "
                        f"host {host}")
    # The Ingress/HTTPRoute is what users browse: serve the UI under its path (and host).
    new_prefix = prefix if strips else r.prefix
    if r.host and not _concrete(r.host) and not (host and r.serves(host)):
        # a wildcard rule not for base_url's host: the name users browse under it is not in the snapshot
        new_host = r.host.replace("*", "<host>", 1)
    else:
        new_host = _concrete(r.host) or host or next(
            (str(as_dict(i).get("ip") or as_dict(i).get("hostname"))
             for i in as_list(dig(obj.raw, "status", "loadBalancer", "ingress"))), "")
    new = _new_base(ui, _scheme(r, new_host, url), new_host, new_prefix)
    unrewrite = ui.strict and bool(new_prefix) and r.rewrite is not None and not r.keeps(new_prefix)
    if r.rewrite is not None:
        if ui is AF3:
            evidence.append(f"{r.rewrite_text()}: the api-server gets the path without "
                            f"{r.prefix}: {r.prefix} answers the UI's page, whose links are not under {r.prefix}/")
        else:
            probe = (new_prefix or r.prefix) + "/home"
            evidence.append(f"{r.rewrite_text()}: a request for {probe} reaches the webserver as "
                            f"{r.received(probe) or '?'}")
    if strips:
        evidence.append(f"nothing routes {host or '*'}{prefix}/ to Service {r.service} with the path intact: the "
                        f"webserver gets paths outside {prefix}/ and answers 404")
    elif ui is AF3:
        evidence.append(f"nothing routes {host or '*'}{prefix}/ to Service {r.service}: the browser's requests for "
                        f"{prefix}/static/... and {prefix}/api/v2/... land on another backend and answer 404")
    else:
        evidence.append(f"nothing routes {host or '*'}{prefix}/ to Service {r.service}: the UI's links and redirects "
                        f"({prefix}/home, {prefix}/login/) land on another backend and answer 404")
    sets = _base_sets(ctx, ui, v, new, new_prefix)
    moved = bool(sets) and sets[0].startswith(f"--set-string config.{ui.section}.base_url=")
    extra = ""
    if unrewrite:
        more, extra = _unrewrite(ctx, ui, r)
        sets += more
    cmds = [helm_upgrade(ctx, *sets)] if sets else []
    if extra:
        cmds.append(extra)
    if ui is AF3:
        summary = (f"Serve the UI where {r.kind} {obj.name} sends it: [api] base_url {new}"
                   + (" and the Execution API URL under the same prefix" if len(sets) > 1 else "")
                   + ". The upgrade restarts the api-server (and the components that read the URL).")
        if r.rewrite is not None:
            summary += (f" The {'URLRewrite filter' if r.rewrite_type else REWRITE + ' annotation'} may stay: the "
                        "Airflow 3 api-server answers its routes with and without the prefix.")
        title = (f"The UI is served under {prefix or ''}/ ([api] base_url) but {r.kind} {obj.name} sends only "
                 f"{', '.join(sorted({x.path for x in mine}))} to the api-server: a blank UI or 404s")
        message = (f"Airflow 3 renders the UI's page with <base href=\"{prefix}/\">, so the browser asks for its assets "
                   f"and API under {prefix}/; {r.kind} {obj.name} routes {', '.join(x.path for x in mine)} to Service "
                   f"{r.service}, which does not cover {prefix}/. The page loads blank or not at all.")
    else:
        drop = ("drop its rewrite (" + (f"the URLRewrite filter at {r.filter_at}" if r.rewrite_type else REWRITE)
                + f") so the webserver gets {new_prefix}/... as browsed") if unrewrite else ""
        if strips:
            summary = f"Keep {r.kind} {obj.name} on {r.prefix} and {drop}."
            title = (f"{r.kind} {obj.name} strips {r.prefix} before the webserver, which serves only under {prefix}/ "
                     "([webserver] base_url): every page answers 404")
            message = (f"[webserver] base_url {v.value} makes the Airflow 2 webserver serve under {prefix}/ only; "
                       f"{r.kind} {obj.name} routes {r.path} to Service {r.service} but rewrites the path "
                       f"({r.rewrite}), so the webserver gets {r.received(prefix + '/home') or 'another path'} for "
                       f"{prefix}/home and answers 404 (\"Apache Airflow is not at this location\").")
        else:
            summary = (f"Serve the UI where {r.kind} {obj.name} sends it: [webserver] base_url {new}"
                       + (f", and {drop}" if drop else "")
                       + ". The chart renders the webserver's probes under the new path; the upgrade restarts the "
                         "webserver.")
            if prefix:
                title = (f"The webserver serves only under {prefix}/ ([webserver] base_url) but {r.kind} {obj.name} "
                         f"sends it {', '.join(sorted({x.path for x in mine}))}: every page answers 404")
            else:
                title = (f"{r.kind} {obj.name} serves the UI under {r.prefix}/ but [webserver] base_url has no path: "
                         + ("its links and redirects leave the prefix and answer 404" if r.rewrite is not None
                            else "the webserver answers 404"))
            message = (f"The Airflow 2 webserver serves under base_url's path ({prefix or '/'}) only, and its pages, "
                       f"links and redirects name paths under it; {r.kind} {obj.name} routes "
                       f"{', '.join(x.path for x in mine)} to Service {r.service}, which does not cover {prefix}/.")
    if moved and "<host>" in new_host:
        summary += (f" {r.kind} {obj.name} serves only {r.host}, which this snapshot cannot resolve to a name: replace "
                    f"<host> in the command by the {'DNS label' if r.kind == 'Ingress' else 'DNS labels'} of the name "
                    "users browse before running it.")
    summary += _env_note(v) if moved else ""
    return Judged(Finding(title=title, message=message, resource=k8s_resource(ctx, r.kind, obj.name),
                          evidence=evidence, remediation=Remediation(summary, cmds)),
                  new if moved else None)


def _host_finding(ctx: Context, ui: UI, v, url, host: str, good: list[Route]) -> Judged:
    r = next((x for x in good if _concrete(x.host)), good[0])
    new_host = _concrete(r.host) or r.host.replace("*", "<host>", 1)
    new = url._replace(scheme=_scheme(r, new_host, url), netloc=new_host).geturl()   # served on 80/443
    hosts = sorted({x.host for x in good})
    evidence = [f"[{ui.section}] base_url = {v.value} ({v.source}): host {host}"]
    evidence += [x.describe() for x in good[:4]]
    evidence.append(f"no rule that routes to Service {r.service} is for {host}: the UI is browsed at "
                    f"{', '.join(hosts)}")
    sets = _base_sets(ctx, ui, v, new, url.path.rstrip("/"), execution=False)
    listed = f"{'rules' if r.kind == 'Ingress' else 'hostnames'}"
    if _concrete(r.host):
        summary = f"Set [{ui.section}] base_url to the host {r.kind} {r.obj.name} serves: {new}"
    else:   # only wildcards: the snapshot does not say which name under it users browse
        labels = "one DNS label" if r.kind == "Ingress" else "one or more DNS labels"
        summary = (f"Set [{ui.section}] base_url to the name users browse under {r.host} ({r.kind} {r.obj.name} "
                   f"serves only that wildcard, which this snapshot cannot resolve to a name): {new}, with <host> "
                   f"replaced by {labels} before the command is run")
    summary += (f" (or add {host} to its {listed} if that is the name users browse). The upgrade restarts the "
                f"{ui.component}." + _env_note(v))
    what = ("log URLs in alert emails and callbacks, the redirects after login" if ui is AF2
            else "the login redirect and the links in alerts and logs")
    return Judged(Finding(
        title=(f"[{ui.section}] base_url names host {host}, but {r.kind} {r.obj.name} serves the UI only on "
               f"{', '.join(hosts)}: links and redirects built from base_url go to another host"),
        message=(f"Airflow builds absolute URLs from base_url ({what}); they point at {host}, which no rule routing "
                 f"to Service {r.service} serves, so a browser following them reaches another site or none, and the "
                 f"session cookie set for {', '.join(hosts)} is not sent there (login loops, CSRF errors)."),
        resource=k8s_resource(ctx, r.kind, r.obj.name),
        evidence=evidence,
        remediation=Remediation(summary, [helm_upgrade(ctx, *sets)]),
        severity="warning",
    ), new)
