"""A GKE Ingress (class ``gce``/``gce-internal``) in front of the webserver (Airflow 2) or the
api-server (Airflow 3) whose load balancer marks the Airflow backend ``UNHEALTHY`` (the
``ingress.kubernetes.io/backends`` annotation GKE's ingress controller writes): every request
through it ends in ``502 Server Error``. For such a backend the Compute Engine health check GKE made
for it (named like the backend; regional for an internal load balancer) is read, and decides: when no
BackendConfig sets it and it asks what Airflow does not answer with 200 (``/`` on Airflow 2, a
redirect; ``/health`` on Airflow 3, a 404; a path outside the ``base_url`` prefix, a port the pods do
not serve), a BackendConfig pointing it at Airflow's health endpoint (``/health`` on Airflow 2,
``/api/v2/monitor/health`` on Airflow 3, under the prefix); a BackendConfig that asks another path or
port is patched, and a right one the health check does not follow yet is reported as not applied by
GKE. When the health check is right, the Airflow pods are not Ready or the probes from Google's
health-check ranges are blocked (a NetworkPolicy on the pods gets one that admits them). Unread (403,
404): the finding says GKE checks ``GET /`` unless it copied a qualifying readinessProbe, and how to
read it. Backends ``Unknown`` (not yet probed) and Ingresses that route to other Services are not
judged. GKE's HTTP load balancing add-on absent (the BackendConfig CRD answers 404): not applicable."""
from __future__ import annotations

import json
from urllib.parse import urlparse

from airflow_gke.views import (BACKENDS_ANNOTATION, NEG_STATUS_ANNOTATION, Context, DataUnavailable, GceBackend, Obj,
                               as_dict, as_list, dig, selector_matches)
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, deployer, helm_upgrade, k8s_resource, project, q, quote_event, region, release

BACKENDS, NEG_STATUS = BACKENDS_ANNOTATION, NEG_STATUS_ANNOTATION
BACKEND_CONFIG = ("cloud.google.com/backend-config", "beta.cloud.google.com/backend-config")
# What each UI component serves its health on (under the [section] base_url path prefix), and the
# chart's values key of its Service.
UI = {"webserver": ("/health", "webserver", "webserver"),
      "api-server": ("/api/v2/monitor/health", "api", "apiServer")}
# Google's health checkers (external and internal Application Load Balancers): with container-native
# load balancing (NEGs) they probe the pod IPs directly.
HC_RANGES = ("130.211.0.0/22", "35.191.0.0/16")


@check(id="gce-ingress-unhealthy-backend",
       title="GKE Ingress load balancers find the Airflow UI's backends healthy",
       severity="error", category=Category.NETWORKING, needs=("ingresses", "k8s_services", "backendconfigs"),
       uses=("pods", "events", "configmaps", "deployments", "networkpolicies", "health_check",
             "health_check_regional"))
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
    bad: dict[tuple[str, int], list[GceBackend]] = {}
    for b in routes:
        if b.state == "UNHEALTHY":
            bad.setdefault((b.service.name, b.port_number), []).append(b)
    if not bad:
        return passed()
    return from_findings([_finding(ctx, backends, configs) for _key, backends in sorted(bad.items())])


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


def _routes(ctx: Context, ui: dict[str, tuple[Obj, str]]) -> list[GceBackend]:
    """The GKE Ingress backends that are ports of this release's UI Services."""
    return [b for b in ctx.gce_ui_backends if b.service.name in ui]


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


def _ui_pods(ctx: Context, svc: Obj) -> tuple[list, str]:
    """(the pods the Service selects, why they were not read: "" when read)."""
    try:
        return ctx.pods_selected_by(as_dict(svc.spec.get("selector"))), ""
    except DataUnavailable as e:
        return [], e.reason


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


def _finding(ctx: Context, backends: list[GceBackend], configs: dict[str, Obj]) -> Finding:
    b = backends[0]
    svc, comp, port = b.service, b.component, b.port
    n = ctx.target.namespace
    path, path_src = _health_path(ctx, comp)
    pods, pods_unread = _ui_pods(ctx, svc)
    cport = _container_port(ctx, svc, port, pods)
    neg = NEG_STATUS in svc.annotations or (b.backend_name or "").startswith("k8s1-")
    ref, ref_key = _config_ref(svc, port)
    bc = configs.get(ref) if ref else None
    hc = as_dict(dig(bc.raw, "spec", "healthCheck")) if bc is not None else {}
    ingresses = sorted({x.ingress.name for x in backends})
    evidence = [f"Ingress {x.ingress.name} (class {x.ingress_class or 'gce'}): "
                f"{BACKENDS} {x.ingress.annotations.get(BACKENDS)}; backend {x.backend_name} is Service "
                f"{svc.name} port {port.get('port')} ({', '.join(x.paths)})" for x in backends]
    evidence.append(f"Service {svc.name} ({comp}): port {port.get('name')} {port.get('port')} -> container port "
                    f"{cport if cport is not None else port.get('targetPort')}"
                    + (f"; {NEG_STATUS} {svc.annotations[NEG_STATUS]}" if NEG_STATUS in svc.annotations else
                       "; no NEG (instance-group backends through the nodePort)" if not neg else "")
                    + (f"; {ref_key} {svc.annotations[ref_key]}" if ref_key else "; no cloud.google.com/backend-config "
                                                                                 "annotation"))
    evidence.append(f"Airflow's {comp} answers health checks on {path} ({path_src})")
    lb_hc, unread = _load_balancer_health_check(ctx, b)
    verdict: tuple[bool, str] | None = None
    if lb_hc is not None:
        typ, sub = _hc_settings(lb_hc)
        prefix = path[:-len(UI[comp][0])]
        verdict = _hc_verdict(comp, typ, sub, path, prefix, cport, neg, port.get("nodePort"))
        evidence.append(_hc_evidence(b, lb_hc, typ, sub))
        evidence.append(verdict[1])
    elif ref is None:
        evidence.append(f"the load balancer's health check {b.backend_name} was not read: {unread}")
        probe = _readiness(pods, comp)
        if probe:
            evidence.append(f"the {comp} readinessProbe GETs {probe.get('path')} on port {probe.get('port')} (GKE "
                            "copies it into the load balancer's health check only if it qualified when the backend "
                            "was created)")
    problem = ""
    if ref is None:
        problem = "none" if verdict is None else "" if verdict[0] else "read"
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
        elif verdict is not None and not verdict[0]:
            problem = "stale"   # the BackendConfig is right; the health check the load balancer uses is not
    for ing in {x.ingress.name: x.ingress for x in backends}.values():
        for e in ctx.events_for("Ingress", ing.name)[-4:] if ctx.has("events") else []:
            if e.get("type") == "Warning":
                evidence.append(quote_event(e))
    caused_by: list[str] = []
    ready = [p for p in pods if p.condition("Ready").get("status") == "True"]
    if pods:
        evidence.append(f"{len(ready)} of {len(pods)} {comp} pod(s) Ready")
    elif pods_unread:
        evidence.append(f"the {comp} pods were not read: {pods_unread}")
    if problem == "stale" and lb_hc is not None and verdict is not None:
        what = (f"BackendConfig {ref} asks {path} as Airflow expects, but the load balancer's health check "
                f"{b.backend_name} still asks {_asked(path, lb_hc)}: {verdict[1]}; GKE's ingress controller has not "
                "carried the BackendConfig into it")
        summary = (f"Find why GKE's ingress controller has not applied BackendConfig {ref} to health check "
                   f"{b.backend_name} (its Warning events on the Ingress or the Service say why) and fix that; it "
                   "applies the BackendConfig at its next sync (no pod restarts).")
        cmds = [f"kubectl describe ingress {q(ingresses[0])} --namespace {q(n)}",
                f"kubectl describe service {q(svc.name)} --namespace {q(n)}"]
    elif problem:
        summary, cmds, what = _fix_health_check(ctx, b, problem, path, cport, neg, ref, bc, hc, lb_hc, verdict, unread)
    elif pods_unread:   # whether any pod is Ready decides between the pods and the network: not claimed unread
        what = (f"the health check asks {_asked(path, lb_hc)}, which Airflow answers with 200, yet the probes fail; "
                f"the {comp} pods were not read ({pods_unread}), so whether any is Ready (else Google's health checkers "
                "are blocked) is not known")
        summary = (f"The health check is set right ({_right(b, ref, path, lb_hc)}); see whether the {comp} pods are "
                   "Ready (if not, fix that first), else let Google's health-check ranges reach them.")
        cmds = [f"kubectl get pods --namespace {q(n)} -l component={comp},release={release(ctx)}",
                f"gcloud compute backend-services get-health {q(b.backend_name or 'BACKEND')} {_scope(ctx, b)} "
                f"--project {q(project(ctx))}"]
    elif pods and not ready:
        what = f"no {comp} pod is Ready, so the load balancer has nothing healthy to send to"
        owner = f"{release(ctx)}-{comp}"
        caused_by = [finding_id("component-not-ready", k8s_resource(ctx, "Deployment", owner))]
        summary = (f"The health check is set right ({_right(b, ref, path, lb_hc)}); the {comp} pods are not Ready: fix "
                   "that first (the findings it is caused by), the backend turns HEALTHY once they are.")
        cmds = [f"kubectl describe pods --namespace {q(n)} -l component={comp},release={release(ctx)}"]
    else:
        what = (f"the health check asks {_asked(path, lb_hc)}, which Airflow answers with 200, yet the probes fail: "
                f"Google's health checkers ({', '.join(HC_RANGES)}) are blocked or time out")
        evidence += _policies(ctx, svc)
        blocking = _blocking_policies(ctx, svc) if neg else []
        health = (f"gcloud compute backend-services get-health {q(b.backend_name or 'BACKEND')} {_scope(ctx, b)} "
                  f"--project {q(project(ctx))}")
        if blocking:
            what = (f"the health check asks {_asked(path, lb_hc)}, which Airflow answers with 200, yet the probes "
                    f"fail: NetworkPolicy {', '.join(blocking)} select{'s' if len(blocking) == 1 else ''} the {comp} "
                    f"pods and none admits Google's health checkers ({', '.join(HC_RANGES)}), which container-native "
                    "load balancing sends to the pod IPs")
            summary = (f"The health check is set right ({_right(b, ref, path, lb_hc)}); admit Google's health-check "
                       f"ranges to the {comp} pods on port {cport} with a NetworkPolicy beside {', '.join(blocking)} "
                       "(no pod restarts), then read the backend's health.")
            cmds = [_gitops_note(ctx) + _allow_health_checks(ctx, svc, comp, cport), health]
        else:
            summary = (f"The health check is set right ({_right(b, ref, path, lb_hc)}); let Google's health-check ranges "
                       "reach the pods (a VPC firewall rule for the node network, and any NetworkPolicy on the UI pods), "
                       "then read the backend's health.")
            cmds = [health, f"gcloud compute firewall-rules list --project {q(project(ctx))} "
                            "--filter='sourceRanges:(130.211.0.0/22 35.191.0.0/16)'"]
    title = (f"GKE Ingress {', '.join(ingresses)} returns 502: the load balancer marks the {comp} "
             f"(Service {svc.name}) UNHEALTHY")
    message = (f"GKE's load balancer for Ingress {', '.join(ingresses)} sends a request to a backend only while its "
               f"health check answers 200; backend {b.backend_name} (Service {svc.name} port {port.get('port')}) is "
               f"UNHEALTHY, so every request through the Ingress ends in '502 Server Error' while port-forwarding to "
               f"the pods works. Here: {what}.")
    return Finding(title=title, message=message, resource=k8s_resource(ctx, "Ingress", ingresses[0]),
                   evidence=evidence, remediation=Remediation(summary, cmds), caused_by=caused_by)


def _fix_health_check(ctx: Context, b: GceBackend, problem: str, path: str, cport: int | None, neg: bool,
                      ref: str | None, bc: Obj | None, hc: dict, lb_hc: dict | None,
                      verdict: tuple[bool, str] | None, unread: str) -> tuple[str, list[str], str]:
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
    chart_svc = svc.labels.get("release") == rel or svc.annotations.get("meta.helm.sh/release-name") == rel
    if chart_svc:
        annotate = (f"# annotate Service {svc.name} with the BackendConfig through the chart's {key}.service.annotations "
                    "(changes only the Service: no pod restarts)\n"
                    + helm_upgrade(ctx, "--set-json", q(f"{key}.service.annotations.cloud\\.google\\.com/backend-config="
                                                        + json.dumps(annotation))))
    else:   # a Service of its own, not the chart's: annotate it where it is defined
        annotate = (f"kubectl annotate service {q(svc.name)} --namespace {q(n)} --overwrite "
                    f"{q('cloud.google.com/backend-config=' + annotation)}")
    if problem == "read" and lb_hc is not None and verdict is not None:
        what = (f"no BackendConfig sets the health check of Service {svc.name}, and the load balancer's health check "
                f"{b.backend_name} asks {_asked(path, lb_hc)}: {verdict[1]}")
        cmds = []
    else:   # the health check itself was not read: what GKE made for the backend decides
        what = (f"no BackendConfig sets the health check of Service {svc.name}, so the load balancer checks GET / "
                f"(unless GKE copied a qualifying readinessProbe when it created the backend), not {path}"
                + ("; Airflow 2 answers / with a redirect to its login page, and a health check needs 200"
                   if comp == "webserver" else "")
                + f"; the health check itself was not read ({unread})")
        cmds = [confirm]
    exists = name in (ctx.backend_configs or {})
    if exists:
        cmds.append(f"kubectl patch backendconfig {q(name)} --namespace {q(n)} --type merge "
                    f"-p {q(json.dumps({'spec': {'healthCheck': want}}, separators=(',', ':')))}")
    else:
        cmds.append(_gitops_note(ctx) + apply)
    cmds.append(annotate)
    summary = (f"Give Service {svc.name} a BackendConfig whose health check asks {path}"
               + (f" on port {cport}" if "port" in want else "")
               + ", and name it in the Service's cloud.google.com/backend-config annotation "
               + (f"through the chart's {key}.service.annotations" if chart_svc else "where the Service is defined")
               + "; GKE updates the load balancer's health check within minutes.")
    return summary, cmds, what


HC_BLOCKS = {"HTTP": "httpHealthCheck", "HTTPS": "httpsHealthCheck", "HTTP2": "http2HealthCheck",
             "TCP": "tcpHealthCheck", "SSL": "sslHealthCheck", "GRPC": "grpcHealthCheck"}


def _load_balancer_health_check(ctx: Context, b: GceBackend) -> tuple[dict | None, str]:
    """(the Compute Engine health check GKE made for the backend, why it was not read: "" when read).
    GKE names it after the backend service; an internal load balancer's is regional."""
    if not b.backend_name:
        return None, "the backend is not named in the Ingress's backends annotation"
    try:
        if b.internal:   # an internal load balancer's health check is regional
            if not ctx.target.location:
                return None, "the cluster's location (and so the region of the health check) is not known"
            body = ctx.body("health_check_regional", region=region(ctx), health_check=b.backend_name)
        else:
            body = ctx.body("health_check", health_check=b.backend_name)
    except DataUnavailable as e:
        return None, e.reason
    if not isinstance(body, dict):
        where = f"region {region(ctx)} of project {project(ctx)}" if b.internal else f"project {project(ctx)}"
        perm = "compute.regionHealthChecks.get" if b.internal else "compute.healthChecks.get"
        return None, f"{where} has no health check named {b.backend_name} ({perm} answered 404)"
    return body, ""


def _hc_settings(lb_hc: dict) -> tuple[str, dict]:
    """(type, its settings block: ``httpHealthCheck`` ...) of a Compute Engine health check."""
    typ = str(lb_hc.get("type") or "HTTP").upper()
    return typ, as_dict(lb_hc.get(HC_BLOCKS.get(typ, "httpHealthCheck")))


def _port_text(sub: dict) -> str:
    if sub.get("portSpecification") == "USE_SERVING_PORT" or sub.get("port") is None:
        return "the serving port (USE_SERVING_PORT)"
    return f"port {sub.get('port')}"


def _hc_evidence(b: GceBackend, lb_hc: dict, typ: str, sub: dict) -> str:
    req = f", requestPath {sub.get('requestPath') or '/'}" if typ in ("HTTP", "HTTPS", "HTTP2") else ""
    return (f"health check {lb_hc.get('name') or b.backend_name} (the load balancer's, compute.healthChecks.get): "
            f"type {typ}{req}, {_port_text(sub)}, checkIntervalSec {lb_hc.get('checkIntervalSec')}, "
            f"unhealthyThreshold {lb_hc.get('unhealthyThreshold')}"
            + (f"; description: {clip(str(lb_hc['description']))}" if lb_hc.get("description") else ""))


def _asked(path: str, lb_hc: dict | None) -> str:
    """What the health check asks: the read one's path and port, else the expected path."""
    if lb_hc is None:
        return path
    typ, sub = _hc_settings(lb_hc)
    if typ == "TCP":
        return f"a TCP connection on {_port_text(sub)}"
    return f"{typ} GET {sub.get('requestPath') or '/'} on {_port_text(sub)}"


def _right(b: GceBackend, ref: str | None, path: str, lb_hc: dict | None) -> str:
    if ref:
        return f"BackendConfig {ref}, {path}"
    return f"health check {b.backend_name}: {_asked(path, lb_hc)}"


def _hc_verdict(comp: str, typ: str, sub: dict, health: str, prefix: str, cport: int | None, neg: bool,
                node_port) -> tuple[bool, str]:
    """(whether Airflow answers the load balancer's health check with 200, why)."""
    if typ in ("HTTPS", "HTTP2", "SSL", "GRPC"):
        return False, f"it probes with {typ}, but the {comp} serves plain HTTP"
    if sub.get("portSpecification", "USE_FIXED_PORT") == "USE_FIXED_PORT" and sub.get("port") is not None:
        want = cport if neg else node_port
        if want is not None and str(sub.get("port")) != str(want):
            where = ("its container port: container-native load balancing probes the pods" if neg
                     else "the Service's nodePort: instance-group backends are probed through the nodes")
            return False, f"it probes port {sub.get('port')}, but the {comp} is served on {want} ({where})"
    if typ == "TCP":
        return True, f"a TCP health check only opens a connection, which the {comp} accepts"
    return _path_verdict(comp, str(sub.get("requestPath") or "/").split("?", 1)[0], health, prefix)


# Airflow 3's api-server (FastAPI) routes besides the UI's catch-all page: its health endpoint, and
# paths that answer 404 (or 401/403 without a token) instead of the UI page.
AF3_NOT_UI = ("api", "execution", "auth", "static", "pluginsv2")


def _path_verdict(comp: str, req: str, health: str, prefix: str) -> tuple[bool, str]:
    """(whether the UI component answers GET ``req`` with 200, why), from how Airflow routes it."""
    if req == health:
        return True, f"{req} is Airflow's health endpoint of the {comp}: it answers 200"
    inside = not prefix or req == prefix or req.startswith(prefix + "/")
    rel = (req[len(prefix):] or "/") if prefix and inside else req
    if comp == "webserver":   # Airflow 2's Flask webserver
        if not inside:
            return False, (f"Airflow 2's webserver serves only under its base_url prefix {prefix}: {req} answers "
                           "404")
        if rel == "/api/v1/health":
            return True, f"{req} is Airflow 2's REST API health endpoint: it answers 200 without authentication"
        if rel == "/":
            return False, ("Airflow 2's webserver answers / with a redirect (302) to its login page, and a health "
                           "check needs 200")
        return False, f"{req} is not Airflow 2's health endpoint ({health}), which answers 200 without a login"
    if rel == "/api/v2/monitor/health":
        return True, f"{req} is Airflow 3's health endpoint: it answers 200"
    if rel == "/health":
        return False, ("Airflow 3's api-server answers /health with 404 (\"Moved in Airflow 3. Please change config "
                       "to check `/api/v2/monitor/health`\")")
    if rel.split("/")[1] in AF3_NOT_UI:
        return False, (f"{req} is not Airflow 3's health endpoint ({health}): the api-server answers it with 404 or "
                       "401/403 without a token")
    return True, (f"Airflow 3's api-server answers {req} with its UI page (200: the UI's catch-all route), though "
                  f"{health} is its health endpoint")


def _gitops_note(ctx: Context) -> str:
    """Under Argo CD or Flux the BackendConfig belongs in the repository they sync, beside the values."""
    tool, app, _where = deployer(ctx)
    if tool == "argocd":
        return f"# Argo CD manages release {release(ctx)} (Application {app}): commit this BackendConfig to its source too\n"
    if tool == "flux":
        return f"# Flux manages release {release(ctx)} (HelmRelease {app}): commit this BackendConfig to its repository too\n"
    return ""


def _scope(ctx: Context, b: GceBackend) -> str:
    """Where the load balancer's backend service lives: global (external), or the cluster's region
    (internal Application Load Balancer, class gce-internal)."""
    return f"--region {q(region(ctx))}" if b.internal else "--global"


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


def _blocking_policies(ctx: Context, svc: Obj) -> list[str]:
    """The NetworkPolicies that select the UI pods for ingress when none of them admits Google's
    health-check ranges (an ipBlock covering them, or a rule open to every source); else none."""
    if not ctx.has("networkpolicies"):
        return []
    import ipaddress

    sel = as_dict(svc.spec.get("selector"))
    ranges = [ipaddress.ip_network(r) for r in HC_RANGES]
    selecting, admitted = [], set()
    for pol in ctx.network_policies:
        if "Ingress" not in ([str(t) for t in as_list(pol.spec.get("policyTypes"))] or ["Ingress"]) or \
                not selector_matches(as_dict(pol.spec.get("podSelector")), sel):
            continue
        selecting.append(pol.name)
        for rule in as_list(pol.spec.get("ingress")):
            peers = as_list(as_dict(rule).get("from"))
            if not peers:
                admitted.update(ranges)          # a rule without `from` admits every source
            for peer in peers:
                block = as_dict(as_dict(peer).get("ipBlock"))
                try:
                    net = ipaddress.ip_network(str(block.get("cidr")), strict=False) if block else None
                except ValueError:
                    net = None
                if net is not None:
                    admitted.update(r for r in ranges if r.version == net.version and r.subnet_of(net))
    return sorted(selecting) if selecting and len(admitted) < len(ranges) else []


def _allow_health_checks(ctx: Context, svc: Obj, comp: str, cport: int | None) -> str:
    """A NetworkPolicy admitting Google's health checkers to the UI pods (on the container port)."""
    sel = {k: v for k, v in as_dict(svc.spec.get("selector")).items()}
    rule: dict = {"from": [{"ipBlock": {"cidr": r}} for r in HC_RANGES]}
    if cport is not None:
        rule["ports"] = [{"protocol": "TCP", "port": cport}]
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"{svc.name}-gce-health-checks", "namespace": ctx.target.namespace},
            "spec": {"podSelector": {"matchLabels": sel}, "policyTypes": ["Ingress"], "ingress": [rule]}}
    return f"echo {q(json.dumps(body, separators=(',', ':')))} | kubectl apply -f -"
