"""Airflow 3 task pods cannot reach the api-server's Execution API: ``[core] execution_api_server_url``
missing (Airflow then falls back to ``[api] base_url``, ``http://localhost:8080``) or pointing at
localhost in the configuration the task pods get; the Service it names missing, on another port, or
without a ready endpoint; a NetworkPolicy on the api-server pods that does not admit the task pods;
and the task logs' ``httpx.ConnectError`` / ``Connection refused`` / retries on ``/execution/``."""
from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlparse

from airflow_gke.views import Context, Obj, Pod, as_dict, as_list, selector_matches
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, grep, helm_upgrade, k8s_resource, q, release


LOCAL = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
_CONNECT = re.compile(r"(?i)(httpx\.(ConnectError|ConnectTimeout|ReadTimeout)|connection refused|"
                      r"name or service not known|temporary failure in name resolution|"
                      r"Starting call to 'airflow\.sdk\.api\.client\.Client\.request', this is the \d+\w* time)")


@check(id="execution-api-unreachable", title="Airflow 3 task pods can reach the api-server's Execution API",
       severity="error", category=Category.NETWORKING, needs=("pods", "configmaps"),
       uses=("k8s_services", "endpointslices", "networkpolicies", "logs", "deployments"))
def run(ctx: Context) -> Result:
    """Airflow 3 task pods cannot reach the Execution API (URL, Service endpoints, NetworkPolicy, connect errors)."""
    if ctx.airflow_major != 3:
        return skipped("no Execution API: Airflow " + str(ctx.airflow_major or "version unknown")
                       + " (task pods talk to the Execution API from Airflow 3 on)")
    comp = "task" if ctx.kubernetes_executor else "worker" if ctx.celery_executor else "scheduler"
    who = {"task": "task pods", "worker": "Celery workers", "scheduler": "the scheduler (LocalExecutor)"}[comp]
    evidence: list[str] = []
    problems: list[str] = []
    caused_by: list[str] = []
    url, where = _url(ctx, comp)
    evidence.append(f"{who}' [core] execution_api_server_url: {url or 'not set'} ({where})")
    parsed = urlparse(url) if url else None
    host = (parsed.hostname or "") if parsed else ""
    svc_name, svc_ns = _service_of(host, ctx.target.namespace)
    if not url or host in LOCAL:
        problems.append("url")
        evidence.append(f"in the {who}, {host or 'localhost'} is the pod itself: no api-server listens there")
    path_problem = _path_problem(ctx, comp, parsed) if parsed and host not in LOCAL else None
    if path_problem:
        problems.append("path")
        evidence.append(path_problem)
    svc = None
    home = _api_service(ctx)
    other_ns = bool(svc_name) and svc_ns != ctx.target.namespace
    missing_here = bool(svc_name) and not other_ns and svc_name != home and not _service_exists(ctx, svc_name)
    if home and (other_ns or missing_here):
        problems.append("host")
        dns = any(_DNS.search(ln) for ln in _log_hits(ctx, comp))
        evidence.append(f"the configured host {host} " + ("does not resolve (the task logs say so): it names "
                                                           if dns else "names ")
                        + f"Service {svc_name} in namespace {svc_ns}, but this release's api-server Service is {home} "
                          f"in namespace {ctx.target.namespace}")
        svc_name, svc_ns = home, ctx.target.namespace
    if svc_name and svc_ns == ctx.target.namespace:
        svc, svc_problem = _check_service(ctx, svc_name, parsed, evidence)
        if svc_problem:
            problems.append(svc_problem)
        if svc is not None:
            ready, ep_problem, links = _check_endpoints(ctx, svc, evidence)
            if ep_problem and not _tasks_attempted(ctx, comp):
                evidence.append(f"no {who} are running or starting now, so no task is affected yet")
                ep_problem = None
            if ep_problem:
                problems.append(ep_problem)
                caused_by += links
            np_problem = _check_policies(ctx, svc, comp, evidence)
            if np_problem:
                problems.append(np_problem)
    logs = _log_hits(ctx, comp)
    evidence += logs
    if not problems and not logs:
        return passed()
    name = svc_name if svc_name and svc_ns == ctx.target.namespace else f"{release(ctx)}-api-server"
    return from_findings([_finding(ctx, name, svc, problems, evidence, caused_by, bool(logs), url, where)])


_DNS = re.compile(r"(?i)name or service not known|temporary failure in name resolution|nodename nor servname|"
                  r"\[Errno -[23]\]|no such host")


def _api_service(ctx: Context) -> str | None:
    """The api-server Service of this release (component=api-server), None when Services were not read."""
    if not ctx.has("k8s_services"):
        return None
    rel = release(ctx)
    for i in ctx.items("k8s_services"):
        o = Obj(i)
        sel = as_dict(o.spec.get("selector"))
        if sel.get("component") == "api-server" and sel.get("release") in (None, rel):
            return o.name
    return None


def _service_exists(ctx: Context, name: str) -> bool:
    return ctx.has("k8s_services") and any(Obj(i).name == name for i in ctx.items("k8s_services"))


def _tasks_attempted(ctx: Context, comp: str) -> bool:
    """Tasks are being run: task pods exist (KubernetesExecutor), or a Celery worker / the scheduler is Running."""
    pods = _runner_pods(ctx, comp)
    if comp == "task":
        return bool(pods)
    return any(p.phase == "Running" for p in pods)


def _url(ctx: Context, comp: str) -> tuple[str | None, str]:
    cfg = ctx.config(comp)
    v = cfg.lookup("core", "execution_api_server_url")
    if v is not None and v.value:
        return v.value.strip(), v.source
    if v is not None and v.opaque:
        return None, f"{v.source}, value not readable"
    base = cfg.lookup("api", "base_url")
    if base is not None and base.value:
        return base.value.rstrip("/") + "/execution/", f"not set: derived from [api] base_url ({base.source})"
    return None, "not set, and no [api] base_url: Airflow falls back to http://localhost:8080/execution/"


def _path_problem(ctx: Context, comp: str, parsed) -> str | None:
    """The URL's path must be the api-server's ``[api] base_url`` prefix + ``/execution/``."""
    path = (parsed.path or "/").rstrip("/")
    base = ctx.config("api-server").get("api", "base_url") or ctx.config(comp).get("api", "base_url")
    prefix = urlparse(base).path.rstrip("/") if base else ""
    if not path.endswith("/execution"):
        return f"the URL's path {parsed.path or '/'} does not end in /execution/: the Execution API answers 404 there"
    if prefix and path != prefix + "/execution":
        return (f"the api-server serves under [api] base_url {base} (prefix {prefix}), so the Execution API is at "
                f"{prefix}/execution/, not {parsed.path}")
    return None


def _service_of(host: str, home: str) -> tuple[str | None, str | None]:
    """(service, namespace) of a cluster DNS name, or (None, None) for an IP or an outside name."""
    if not host or host in LOCAL:
        return None, None
    try:
        ipaddress.ip_address(host)
        return None, None
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], home
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[0], parts[1]
    return None, None


def _check_service(ctx: Context, name: str, parsed, evidence: list[str]) -> tuple[Obj | None, str | None]:
    if not ctx.has("k8s_services"):
        return None, None
    svcs = ctx.services
    svc = svcs.get(name)
    if svc is None:
        evidence.append(f"Service {name} does not exist in namespace {ctx.target.namespace} "
                        f"(Services: {', '.join(sorted(svcs)) or 'none'})")
        return None, "no-service"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ports = [as_dict(p) for p in as_list(svc.spec.get("ports"))]
    evidence.append(f"Service {name}: type {svc.spec.get('type')}, ports "
                    + ", ".join(f"{p.get('name')} {p.get('port')}->{p.get('targetPort')}" for p in ports))
    if ports and not any(p.get("port") == port for p in ports):
        evidence.append(f"the URL uses port {port}, which Service {name} does not expose")
        return svc, "port"
    return svc, None


def _check_endpoints(ctx: Context, svc: Obj, evidence: list[str]) -> tuple[int, str | None, list[str]]:
    if not ctx.has("endpointslices"):
        return -1, None, []
    slices = ctx.endpoint_slices_of(svc.name)
    ready, total = 0, 0
    for s in slices:
        for ep in as_list(s.raw.get("endpoints")):
            ep = as_dict(ep)
            total += 1
            if as_dict(ep.get("conditions")).get("ready") is not False:
                ready += 1
    evidence.append(f"EndpointSlices of Service {svc.name}: {ready} ready endpoint(s) of {total}")
    if ready:
        return ready, None, []
    sel = as_dict(svc.spec.get("selector"))
    links = []
    pods = ctx.pods_selected_by(sel)
    for p in pods[:3]:
        states = ", ".join(f"{cs.name} {cs.state[0]}" + (f" ({cs.state[1].get('reason')})" if cs.state[1].get("reason")
                                                         else "") + f" restarts {cs.restarts}"
                           for cs in p.container_statuses) or p.phase
        evidence.append(f"Pod {p.name} behind it: phase {p.phase}, {states}")
        links.append(finding_id("component-crashloop", k8s_resource(ctx, "Pod", p.name)))
        links.append(finding_id("liveness-probe-restarts", k8s_resource(ctx, "Pod", p.name)))
    if not pods:
        evidence.append(f"no pod matches the Service's selector {sel}")
    return 0, "no-endpoints", links


def _runner_pods(ctx: Context, comp: str) -> list[Pod]:
    if comp == "task":
        return ctx.task_pods
    return [p for p in ctx.pods_by_component.get(comp, []) if not p.is_task_pod]


def _task_labels(ctx: Context, comp: str) -> tuple[dict, list[str]]:
    if comp != "task":
        pods = _runner_pods(ctx, comp)
        if pods:
            return pods[0].labels, [str(p.status.get("podIP")) for p in pods if p.status.get("podIP")]
        return {"component": comp, "release": release(ctx), "tier": "airflow"}, []
    if ctx.task_pods:
        p = ctx.task_pods[0]
        return p.labels, [str(p.status.get("podIP"))] if p.status.get("podIP") else []
    tpl = ctx.pod_template or {}
    labels = dict(as_dict(as_dict(tpl.get("metadata")).get("labels")))
    labels["kubernetes_executor"] = "True"
    return labels, []


def _peer_allows(peer: dict, task_labels: dict, task_ns: str, policy_ns: str, ips: list[str]) -> bool | None:
    peer = as_dict(peer)
    if "ipBlock" in peer:
        block = as_dict(peer["ipBlock"])
        try:
            net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
        except ValueError:
            return None
        if not ips:
            return None
        return any(ipaddress.ip_address(ip) in net and not any(
            ipaddress.ip_address(ip) in ipaddress.ip_network(str(x), strict=False) for x in as_list(block.get("except")))
            for ip in ips)
    ns_sel = peer.get("namespaceSelector")
    if ns_sel is not None:
        ns_sel = as_dict(ns_sel)
        keys = set(as_dict(ns_sel.get("matchLabels"))) | {as_dict(e).get("key")
                                                         for e in as_list(ns_sel.get("matchExpressions"))}
        if keys - {"kubernetes.io/metadata.name"}:
            return None       # namespace labels the snapshot does not hold
        if not selector_matches(ns_sel, {"kubernetes.io/metadata.name": task_ns}):
            return False
    elif task_ns != policy_ns:
        return False
    if "podSelector" in peer:
        return selector_matches(as_dict(peer["podSelector"]), task_labels)
    return True


def _port_allows(ports, container_ports: list[dict]) -> bool:
    ports = as_list(ports)
    if not ports:
        return True
    for p in ports:
        p = as_dict(p)
        want = p.get("port")
        if want is None:
            return True
        for cp in container_ports:
            if want in (cp.get("containerPort"), cp.get("name")):
                return True
    return False


def _check_policies(ctx: Context, svc: Obj, comp: str, evidence: list[str]) -> str | None:
    if not ctx.has("networkpolicies"):
        return None
    sel = as_dict(svc.spec.get("selector"))
    targets = ctx.pods_selected_by(sel)
    target_labels = targets[0].labels if targets else sel
    cports = [as_dict(c) for c in as_list((targets[0].main_container if targets else {}).get("ports"))] or \
        [{"containerPort": as_dict(p).get("targetPort"), "name": as_dict(p).get("name")}
         for p in as_list(svc.spec.get("ports"))]
    task_ns = ctx.config("scheduler").get("kubernetes_executor", "namespace") or ctx.target.namespace
    task_labels, ips = _task_labels(ctx, comp)
    policies = ctx.network_policies
    ingress = [pol for pol in policies if "Ingress" in _types(pol) and selector_matches(as_dict(pol.spec.get("podSelector")),
                                                                               target_labels)]
    if not ingress:
        return None
    verdicts = []
    for pol in ingress:
        allowed = False
        for rule in as_list(pol.spec.get("ingress")):
            rule = as_dict(rule)
            peers = as_list(rule.get("from"))
            results = [_peer_allows(peer, task_labels, task_ns, pol.namespace or ctx.target.namespace, ips)
                       for peer in peers]
            if peers and True not in results and None in results:
                return None       # a peer the snapshot cannot evaluate: do not judge
            if (not peers or True in results) and _port_allows(rule.get("ports"), cports):
                allowed = True
                break
        verdicts.append((pol, allowed))
        evidence.append(f"NetworkPolicy {pol.name} selects the api-server pods: ingress "
                        + (_rules_text(pol) or "none (all ingress denied)")
                        + ("; admits the task pods" if allowed else "; does not admit the task pods"))
    if any(a for _p, a in verdicts):
        return None
    evidence.append(f"task pods' labels {dict(sorted((k, v) for k, v in task_labels.items() if k in ('component', 'kubernetes_executor', 'release', 'tier')))} "
                    f"in namespace {task_ns}")
    return "netpol"


def _types(pol: Obj) -> list[str]:
    t = as_list(pol.spec.get("policyTypes"))
    if t:
        return [str(x) for x in t]
    return ["Ingress"] + (["Egress"] if pol.spec.get("egress") is not None else [])


def _rules_text(pol: Obj) -> str:
    out = []
    for rule in as_list(pol.spec.get("ingress")):
        rule = as_dict(rule)
        peers = []
        for peer in as_list(rule.get("from")):
            peer = as_dict(peer)
            bits = []
            if "namespaceSelector" in peer:
                bits.append(f"namespaceSelector {as_dict(peer['namespaceSelector']).get('matchLabels') or '{}'}")
            if "podSelector" in peer:
                bits.append(f"podSelector {as_dict(peer['podSelector']).get('matchLabels') or '{}'}")
            if "ipBlock" in peer:
                bits.append(f"ipBlock {as_dict(peer['ipBlock']).get('cidr')}")
            peers.append(" and ".join(bits))
        ports = ", ".join(str(as_dict(p).get("port")) for p in as_list(rule.get("ports"))) or "all ports"
        out.append(f"from [{'; '.join(peers) or 'anywhere'}] on {ports}")
    return " | ".join(out)


def _log_hits(ctx: Context, comp: str) -> list[str]:
    out = []
    for p in _runner_pods(ctx, comp)[:40]:
        for c in p.containers:
            hits = grep(ctx.log_history(p, str(c.get("name"))), _CONNECT)
            for which, ln in hits[-2:]:
                out.append(f"{which} {p.name}/{c.get('name')}: {clip(ln)}")
        if len(out) >= 4:
            break
    return out


def _finding(ctx: Context, name: str, svc: Obj | None, problems: list[str], evidence: list[str],
             caused_by: list[str], logs: bool, url: str | None = None, where: str = "") -> Finding:
    n = ctx.target.namespace
    rel = release(ctx)
    good_url = f"http://{rel}-api-server.{n}.svc.cluster.local:8080/execution/"
    texts = {
        "url": "the task pods' execution_api_server_url is missing or points at localhost",
        "path": "the execution_api_server_url path is not the api-server's Execution API path",
        "no-service": f"Service {name} does not exist",
        "port": f"the URL's port is not a port of Service {name}",
        "no-endpoints": f"Service {name} has no ready endpoint (the api-server pods are not Ready)",
        "netpol": "a NetworkPolicy on the api-server pods does not admit traffic from the task pods",
        "host": (f"the configured host {urlparse(url or '').hostname} is not this release's api-server Service "
                 f"({name} in namespace {n})"),
    }
    what = "; ".join(texts[p] for p in problems) or "task pods fail to connect to the Execution API (log lines below)"
    cmds = []
    override = where.startswith("env ") or where.endswith("[core] execution_api_server_url")
    if "host" in problems and override:
        # the chart writes the right URL itself (<release>-api-server) unless a value overrides it:
        # drop the override rather than set another one
        if where.startswith("env "):
            cmds.append(f"# remove {where[4:]} from the chart's env: (or extraEnv) values, then upgrade")
            cmds.append(f"helm get values {q(rel)} --namespace {q(n)} --output yaml")
        else:
            cmds.append(helm_upgrade(ctx, "--set config.core.execution_api_server_url=null"))
    elif {"url", "path", "no-service", "port", "host"} & set(problems):
        cmds.append(helm_upgrade(ctx, f"--set-string config.core.execution_api_server_url={good_url}"))
    if "no-endpoints" in problems:
        cmds += [f"kubectl get endpointslices --namespace {q(n)} -l kubernetes.io/service-name={name}",
                 f"kubectl describe pods --namespace {q(n)} -l component=api-server,release={rel}"]
    if "netpol" in problems:
        cmds.append(_policy_command(ctx, svc, name))
    if not cmds:
        cmds += [f"kubectl run exec-api-check --rm -i --restart=Never --namespace {q(n)} --image=curlimages/curl:8.11.0 "
                 f"-- curl -sS -m 5 {good_url.replace('/execution/', '/execution/health')}"]
    summary = (f"Point [core] execution_api_server_url at the api-server Service ({good_url}), keep at least one "
               "api-server replica Ready, and let the task pods through any NetworkPolicy on the api-server.")
    if "host" in problems and override:
        summary = (f"Drop the execution_api_server_url override ({where}): the chart then writes "
                   f"http://{name}:8080/execution/ itself, the Service of this release in namespace {n}.")
    return Finding(
        title=f"Airflow 3 task pods cannot reach the Execution API ({what.split(';')[0]})",
        message=("An Airflow 3 task pod starts by calling the api-server's Execution API (task-instances/…/run) and "
                 "reports its state through it; if it cannot connect, the task fails before any of its code runs "
                 f"(httpx.ConnectError, retries, then failure). Here: {what}."),
        resource=k8s_resource(ctx, "Service", name),
        evidence=evidence,
        remediation=Remediation(summary, cmds),
        caused_by=caused_by,
    )


def _policy_command(ctx: Context, svc: Obj | None, name: str) -> str:
    """One line (a heredoc breaks when a terminal report indents it): the policy as JSON on stdin."""
    n = ctx.target.namespace
    rel = release(ctx)
    sel = as_dict(svc.spec.get("selector")) if svc is not None else {"component": "api-server", "release": rel,
                                                                      "tier": "airflow"}
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": f"{rel}-api-server-from-task-pods", "namespace": n},
              "spec": {"podSelector": {"matchLabels": dict(sorted(sel.items()))}, "policyTypes": ["Ingress"],
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"kubernetes_executor": "True",
                                                                              "release": rel}}}],
                                    "ports": [{"port": 8080, "protocol": "TCP"}]}]}}
    return f"echo {q(json.dumps(policy, separators=(',', ':')))} | kubectl apply -f -"
