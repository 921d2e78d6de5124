"""A GKE Ingress (class ``gce``/``gce-internal``) in front of the webserver (Airflow 2) or the
api-server (Airflow 3) whose load balancer marks the Airflow backend ``UNHEALTHY`` (the
``ingress.kubernetes.io/backends`` annotation GKE's ingress controller writes): every request
through it ends in ``502 Server Error``. The usual cause: no BackendConfig points the load
balancer's health check at Airflow's health endpoint (``/health`` on Airflow 2,
``/api/v2/monitor/health`` on Airflow 3, under a ``base_url`` path prefix), so it checks ``GET /``
(unless GKE copied a qualifying readinessProbe when it created the backend), which Airflow 2 answers
with a redirect; or a BackendConfig whose ``healthCheck`` asks another path or port. When the health
check is right, the Airflow pods are not Ready or the probes from Google's health-check ranges are
blocked. Backends ``Unknown`` (not yet probed) and Ingresses that route to other Services are not
judged. GKE's HTTP load balancing add-on absent (the BackendConfig CRD answers 404): not applicable."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from airflow_gke.views import Context, DataUnavailable, Obj, as_dict, as_list, dig, selector_matches
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, deployer, helm_upgrade, k8s_resource, project, q, quote_event, region, release

BACKENDS = "ingress.kubernetes.io/backends"
NEG = "cloud.google.com/neg"
NEG_STATUS = "cloud.google.com/neg-status"
BACKEND_CONFIG = ("cloud.google.com/backend-config", "beta.cloud.google.com/backend-config")
GCE_CLASSES = ("gce", "gce-internal")
# What each UI component serves its health on (under the [section] base_url path prefix), and the
# chart's values key of its Service.
UI = {"webserver": ("/health", "webserver", "webserver"),
      "api-server": ("/api/v2/monitor/health", "api", "apiServer")}
# Google's health checkers (external and internal Application Load Balancers): with container-native
# load balancing (NEGs) they probe the pod IPs directly.
HC_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
_NEG_NAME = re.compile(r"^k8s1-[0-9a-f]{8}-(?P<rest>.+)-(?P<port>\d+)-[0-9a-f]{8}$")
_IG_NAME = re.compile(r"^k8s-be-(?P<nodeport>\d+)--[0-9a-f]+$")


@check(id="gce-ingress-unhealthy-backend",
       title="GKE Ingress load balancers find the Airflow UI's backends healthy",
       severity="error", category=Category.NETWORKING, needs=("ingresses", "k8s_services", "backendconfigs"),
       uses=("pods", "events", "configmaps", "deployments", "networkpolicies"))
def run(ctx: Context) -> Result:
    """GKE Ingress backend UNHEALTHY for the webserver/api-server: 502s (health check path, BackendConfig)."""
    configs = ctx.backend_configs
    if configs is None:
        return skipped("GKE's HTTP load balancing add-on is not installed (the BackendConfig CRD answers 404): "
                       "no GKE Ingress")
    ui = _ui_services(ctx)
    if not ui:
        return skipped("no webserver or api-server Service of this release")
    routes = _routes(ctx, ui)
    if not routes:
        return skipped("no GKE Ingress routes to the Airflow UI")
    bad: dict[tuple[str, int], list[Backend]] = {}
    for b in routes:
        if b.state == "UNHEALTHY":
            bad.setdefault((b.service.name, b.port_number), []).append(b)
    if not bad:
        return passed()
    return from_findings([_finding(ctx, backends, configs) for _key, backends in sorted(bad.items())])


@dataclass
class Backend:
    """One Ingress backend that is an Airflow UI Service port, with the load balancer's verdict."""
    ingress: Obj
    service: Obj
    component: str
    port: dict                       # the Service port
    backend_name: str | None         # the load balancer's backend service
    state: str | None                # HEALTHY / UNHEALTHY / Unknown / None (not in the annotation)
    paths: list[str] = field(default_factory=list)

    @property
    def port_number(self) -> int:
        return int(self.port.get("port") or 0)


def _ui_services(ctx: Context) -> dict[str, tuple[Obj, str]]:
    """Service name -> (Service, component) of this release's webserver/api-server Services."""
    rel = release(ctx)
    out = {}
    for name, svc in ctx.services.items():
        sel = as_dict(svc.spec.get("selector"))
        comp = sel.get("component")
        if comp in UI and sel.get("release") in (None, rel):
            out[name] = (svc, str(comp))
    return out


def _is_gce(ing: Obj) -> bool:
    cls = ing.spec.get("ingressClassName") or ing.annotations.get("kubernetes.io/ingress.class")
    if cls:
        return cls in GCE_CLASSES
    return BACKENDS in ing.annotations       # no class: GKE's controller took it if it wrote its annotation


def _states(ing: Obj) -> dict[str, str]:
    try:
        v = json.loads(ing.annotations.get(BACKENDS) or "{}")
    except ValueError:
        return {}
    return {str(k): str(s) for k, s in v.items()} if isinstance(v, dict) else {}


def _service_port(svc: Obj, ref: dict) -> dict | None:
    ports = [as_dict(p) for p in as_list(svc.spec.get("ports"))]
    if "number" in ref:
        return next((p for p in ports if p.get("port") == ref.get("number")), None)
    if "name" in ref:
        return next((p for p in ports if p.get("name") == ref.get("name")), None)
    return ports[0] if len(ports) == 1 else None


def _backend_name(ctx: Context, svc: Obj, port: dict, states: dict[str, str]) -> str | None:
    """The load balancer backend of a Service port: the NEG the Service's neg-status names for it
    (container-native load balancing), else a ``k8s1-<uid>-<ns>-<svc>-<port>-<hash>`` name of that
    Service and port, else the instance-group backend of its nodePort (``k8s-be-<nodePort>--<uid>``)."""
    try:
        status = json.loads(svc.annotations.get(NEG_STATUS) or "{}")
    except ValueError:
        status = {}
    negs = as_dict(as_dict(status).get("network_endpoint_groups"))
    neg = negs.get(str(port.get("port")))
    if neg:
        return str(neg)
    want = f"{ctx.target.namespace}-{svc.name}"
    for name in states:
        m = _NEG_NAME.match(name)
        if m and m.group("port") == str(port.get("port")) and (m.group("rest") == want or want.startswith(m.group("rest"))):
            return name
        m = _IG_NAME.match(name)
        if m and port.get("nodePort") and m.group("nodeport") == str(port.get("nodePort")):
            return name
    return None


def _routes(ctx: Context, ui: dict[str, tuple[Obj, str]]) -> list[Backend]:
    out: list[Backend] = []
    for ing in sorted(ctx.ingresses, key=lambda o: o.name):
        if not _is_gce(ing):
            continue
        states = _states(ing)
        refs: list[tuple[dict, str]] = []
        default = as_dict(dig(ing.raw, "spec", "defaultBackend", "service"))
        if default:
            refs.append((default, "default backend"))
        for rule in as_list(ing.spec.get("rules")):
            rule = as_dict(rule)
            for p in as_list(dig(rule, "http", "paths")):
                p = as_dict(p)
                ref = as_dict(dig(p, "backend", "service"))
                if ref:
                    refs.append((ref, f"{rule.get('host') or '*'}{p.get('path') or '/'}"))
        seen: dict[tuple[str, int], Backend] = {}
        for ref, where in refs:
            hit = ui.get(str(ref.get("name")))
            if hit is None:
                continue
            svc, comp = hit
            port = _service_port(svc, as_dict(ref.get("port")))
            if port is None:
                continue
            key = (svc.name, int(port.get("port") or 0))
            if key in seen:
                seen[key].paths.append(where)
                continue
            name = _backend_name(ctx, svc, port, states)
            seen[key] = Backend(ing, svc, comp, port, name, states.get(name) if name else None, [where])
        out += seen.values()
    return out


def _config_ref(svc: Obj, port: dict) -> tuple[str | None, str | None]:
    """(BackendConfig name, annotation) the Service names for this port (``ports`` by number or
    name first, then ``default``)."""
    for key in BACKEND_CONFIG:
        raw = svc.annotations.get(key)
        if not raw:
            continue
        try:
            v = as_dict(json.loads(raw))
        except ValueError:
            continue
        ports = as_dict(v.get("ports"))
        for k in (str(port.get("port")), str(port.get("name") or "")):
            if k and ports.get(k):
                return str(ports[k]), key
        if v.get("default"):
            return str(v["default"]), key
    return None, None


def _health_path(ctx: Context, comp: str) -> tuple[str, str]:
    """(path, where the prefix came from): the component's health endpoint under its base_url prefix."""
    suffix, section, _key = UI[comp]
    try:
        base = ctx.config(comp).get(section, "base_url")
    except DataUnavailable:
        base = None
    prefix = urlparse(base).path.rstrip("/") if base else ""
    if prefix:
        return prefix + suffix, f"[{section}] base_url {base}"
    return suffix, f"[{section}] base_url " + ("without a path" if base else "not set")


def _ui_pods(ctx: Context, svc: Obj) -> list:
    try:
        return ctx.pods_selected_by(as_dict(svc.spec.get("selector")))
    except DataUnavailable:
        return []


def _container_port(ctx: Context, svc: Obj, port: dict, pods: list) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    for p in pods:
        for c in p.containers:
            for cp in as_list(as_dict(c).get("ports")):
                cp = as_dict(cp)
                if cp.get("name") == target:
                    return cp.get("containerPort")
    return None


def _readiness(pods: list, comp: str) -> dict:
    for p in pods:
        for c in p.containers:
            c = as_dict(c)
            if c.get("name") == comp or len(p.containers) == 1:
                return as_dict(dig(c, "readinessProbe", "httpGet"))
    return {}


def _finding(ctx: Context, backends: list[Backend], configs: dict[str, Obj]) -> Finding:
    b = backends[0]
    svc, comp, port = b.service, b.component, b.port
    n = ctx.target.namespace
    path, path_src = _health_path(ctx, comp)
    pods = _ui_pods(ctx, svc)
    cport = _container_port(ctx, svc, port, pods)
    neg = NEG_STATUS in svc.annotations or (b.backend_name or "").startswith("k8s1-")
    ref, ref_key = _config_ref(svc, port)
    bc = configs.get(ref) if ref else None
    hc = as_dict(dig(bc.raw, "spec", "healthCheck")) if bc is not None else {}
    ingresses = sorted({x.ingress.name for x in backends})
    evidence = [f"Ingress {x.ingress.name} (class {x.ingress.spec.get('ingressClassName') or x.ingress.annotations.get('kubernetes.io/ingress.class') or 'gce'}): "
                f"{BACKENDS} {x.ingress.annotations.get(BACKENDS)}; backend {x.backend_name} is Service "
                f"{svc.name} port {port.get('port')} ({', '.join(x.paths)})" for x in backends]
    evidence.append(f"Service {svc.name} ({comp}): port {port.get('name')} {port.get('port')} -> container port "
                    f"{cport if cport is not None else port.get('targetPort')}"
                    + (f"; {NEG_STATUS} {svc.annotations[NEG_STATUS]}" if NEG_STATUS in svc.annotations else
                       "; no NEG (instance-group backends through the nodePort)" if not neg else "")
                    + (f"; {ref_key} {svc.annotations[ref_key]}" if ref_key else "; no cloud.google.com/backend-config "
                                                                                 "annotation"))
    evidence.append(f"Airflow's {comp} answers health checks on {path} ({path_src})")
    probe = _readiness(pods, comp)
    if probe and ref is None:
        evidence.append(f"the {comp} readinessProbe GETs {probe.get('path')} on port {probe.get('port')} (GKE copies "
                        "it into the load balancer's health check only if it qualified when the backend was created)")
    problem = ""
    if ref is None:
        problem = "none"
    elif bc is None:
        problem = "missing"
        evidence.append(f"BackendConfig {ref} named by the Service does not exist in namespace {n} "
                        f"(BackendConfigs: {', '.join(sorted(configs)) or 'none'})")
    else:
        evidence.append(f"BackendConfig {ref}: spec.healthCheck "
                        + (json.dumps(hc, sort_keys=True, separators=(', ', ': ')) if hc else "not set"))
        if hc.get("requestPath") != path:
            problem = "path"
        elif neg and hc.get("port") is not None and cport is not None and hc.get("port") != cport:
            problem = "port"
        elif str(hc.get("type") or "HTTP").upper() not in ("HTTP",):
            problem = "type"
    for ing in {x.ingress.name: x.ingress for x in backends}.values():
        for e in ctx.events_for("Ingress", ing.name)[-4:] if ctx.has("events") else []:
            if e.get("type") == "Warning":
                evidence.append(quote_event(e))
    caused_by: list[str] = []
    ready = [p for p in pods if p.condition("Ready").get("status") == "True"]
    if pods:
        evidence.append(f"{len(ready)} of {len(pods)} {comp} pod(s) Ready")
    if problem:
        summary, cmds, what = _fix_health_check(ctx, b, problem, path, cport, neg, ref, bc, hc)
    elif pods and not ready:
        what = f"no {comp} pod is Ready, so the load balancer has nothing healthy to send to"
        owner = f"{release(ctx)}-{comp}"
        caused_by = [finding_id("component-not-ready", k8s_resource(ctx, "Deployment", owner))]
        summary = (f"The health check is set right (BackendConfig {ref}, {path}); the {comp} pods are not Ready: fix "
                   "that first (the findings it is caused by), the backend turns HEALTHY once they are.")
        cmds = [f"kubectl describe pods --namespace {q(n)} -l component={comp},release={release(ctx)}"]
    else:
        what = (f"the health check asks {path} as Airflow expects, yet the probes fail: Google's health checkers "
                f"({', '.join(HC_RANGES)}) are blocked or time out")
        evidence += _policies(ctx, svc)
        summary = ("The health check is set right; let Google's health-check ranges reach the pods (a VPC firewall rule "
                   "for the node network, and any NetworkPolicy on the UI pods), then read the backend's health.")
        cmds = [f"gcloud compute backend-services get-health {q(b.backend_name or 'BACKEND')} {_scope(ctx, b)} "
                f"--project {q(project(ctx))}",
                f"gcloud compute firewall-rules list --project {q(project(ctx))} "
                "--filter='sourceRanges:(130.211.0.0/22 35.191.0.0/16)'"]
    title = (f"GKE Ingress {', '.join(ingresses)} returns 502: the load balancer marks the {comp} "
             f"(Service {svc.name}) UNHEALTHY")
    message = (f"GKE's load balancer for Ingress {', '.join(ingresses)} sends a request to a backend only while its "
               f"health check answers 200; backend {b.backend_name} (Service {svc.name} port {port.get('port')}) is "
               f"UNHEALTHY, so every request through the Ingress ends in '502 Server Error' while port-forwarding to "
               f"the pods works. Here: {what}.")
    return Finding(title=title, message=message, resource=k8s_resource(ctx, "Ingress", ingresses[0]),
                   evidence=evidence, remediation=Remediation(summary, cmds), caused_by=caused_by)


def _fix_health_check(ctx: Context, b: Backend, problem: str, path: str, cport: int | None, neg: bool,
                      ref: str | None, bc: Obj | None, hc: dict) -> tuple[str, list[str], str]:
    n = ctx.target.namespace
    svc, comp = b.service, b.component
    want: dict = {"type": "HTTP", "requestPath": path}
    if neg and cport is not None:
        want["port"] = cport            # container-native: the health check probes the pod's port
    confirm = (f"# the health check GKE made for the backend (its request path now):\n"
               f"gcloud compute health-checks describe {q(b.backend_name or 'BACKEND')} {_scope(ctx, b)} "
               f"--project {q(project(ctx))} --format='value(httpHealthCheck.requestPath,httpHealthCheck.port)'")
    if problem in ("path", "port", "type"):
        what = {"path": f"BackendConfig {ref} makes the health check ask "
                        f"{hc.get('requestPath') or '/ (no requestPath)'}, not Airflow's {path}",
                "port": f"BackendConfig {ref} probes port {hc.get('port')}, but the {comp} listens on {cport}",
                "type": f"BackendConfig {ref} probes with {hc.get('type')}, but the {comp} serves plain HTTP"}[problem]
        patch = {"spec": {"healthCheck": want}}
        cmds = [f"kubectl patch backendconfig {q(str(ref))} --namespace {q(n)} --type merge "
                         f"-p {q(json.dumps(patch, separators=(',', ':')))}"]
        summary = (f"Point BackendConfig {ref}'s health check at {path}"
                   + (f" on port {cport}" if "port" in want else "")
                   + "; GKE updates the load balancer's health check within minutes (no pod restarts).")
        return summary, cmds, what
    name = ref or svc.name
    body = {"apiVersion": "cloud.google.com/v1", "kind": "BackendConfig",
            "metadata": {"name": name, "namespace": n}, "spec": {"healthCheck": want}}
    apply = f"echo {q(json.dumps(body, separators=(',', ':')))} | kubectl apply -f -"
    if problem == "missing":
        what = f"the Service names BackendConfig {ref}, which does not exist, so its health check is not applied"
        summary = (f"Create BackendConfig {ref}, which Service {svc.name} already names, with a health check on "
                   f"{path}; GKE then updates the load balancer (no pod restarts).")
        return summary, [_gitops_note(ctx) + apply], what
    key = UI[comp][2]
    annotation = json.dumps({"default": name}, separators=(",", ":"))
    rel = release(ctx)
    if svc.labels.get("release") == rel or svc.annotations.get("meta.helm.sh/release-name") == rel:
        annotate = (f"# annotate Service {svc.name} with the BackendConfig through the chart's {key}.service.annotations "
                    "(changes only the Service: no pod restarts)\n"
                    + helm_upgrade(ctx, "--set-json", q(f"{key}.service.annotations.cloud\\.google\\.com/backend-config="
                                                        + json.dumps(annotation))))
    else:   # a Service of its own, not the chart's: annotate it where it is defined
        annotate = (f"kubectl annotate service {q(svc.name)} --namespace {q(n)} --overwrite "
                    f"{q('cloud.google.com/backend-config=' + annotation)}")
    what = (f"no BackendConfig sets the health check of Service {svc.name}, so the load balancer checks GET / "
            f"(unless GKE copied a qualifying readinessProbe when it created the backend), not {path}"
            + ("; Airflow 2 answers / with a redirect to its login page, and a health check needs 200"
               if comp == "webserver" else ""))
    exists = name in (ctx.backend_configs or {})
    cmds = [confirm]
    if exists:
        cmds.append(f"kubectl patch backendconfig {q(name)} --namespace {q(n)} --type merge "
                    f"-p {q(json.dumps({'spec': {'healthCheck': want}}, separators=(',', ':')))}")
    else:
        cmds.append(_gitops_note(ctx) + apply)
    cmds.append(annotate)
    summary = (f"Give Service {svc.name} a BackendConfig whose health check asks {path}"
               + (f" on port {cport}" if "port" in want else "")
               + f", and name it in the Service's cloud.google.com/backend-config annotation through the chart's "
                 f"{key}.service.annotations; GKE updates the load balancer's health check within minutes.")
    return summary, cmds, what


def _gitops_note(ctx: Context) -> str:
    """Under Argo CD or Flux the BackendConfig belongs in the repository they sync, beside the values."""
    tool, app, _where = deployer(ctx)
    if tool == "argocd":
        return f"# Argo CD manages release {release(ctx)} (Application {app}): commit this BackendConfig to its source too\n"
    if tool == "flux":
        return f"# Flux manages release {release(ctx)} (HelmRelease {app}): commit this BackendConfig to its repository too\n"
    return ""


def _scope(ctx: Context, b: Backend) -> str:
    """Where the load balancer's backend service lives: global (external), or the cluster's region
    (internal Application Load Balancer, class gce-internal)."""
    cls = b.ingress.spec.get("ingressClassName") or b.ingress.annotations.get("kubernetes.io/ingress.class")
    return f"--region {q(region(ctx))}" if cls == "gce-internal" else "--global"


def _policies(ctx: Context, svc: Obj) -> list[str]:
    if not ctx.has("networkpolicies"):
        return []
    sel = as_dict(svc.spec.get("selector"))
    out = []
    for pol in ctx.network_policies:
        if "Ingress" in [str(t) for t in as_list(pol.spec.get("policyTypes")) or ["Ingress"]] and \
                selector_matches(as_dict(pol.spec.get("podSelector")), sel):
            cidrs = [str(as_dict(as_dict(peer).get("ipBlock")).get("cidr")) for rule in as_list(pol.spec.get("ingress"))
                     for peer in as_list(as_dict(rule).get("from")) if "ipBlock" in as_dict(peer)]
            out.append(f"NetworkPolicy {pol.name} selects the UI pods; ipBlocks it admits: "
                       + (", ".join(cidrs) or "none") + f" (container-native health checks come from {', '.join(HC_RANGES)})")
    return [clip(x) for x in out]
