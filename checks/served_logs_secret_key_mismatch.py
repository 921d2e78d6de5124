"""Components sign and verify served-log requests with different secret keys, so the UI gets
``403 FORBIDDEN`` when it fetches a running task's log from a worker or the triggerer.

The UI (webserver on Airflow 2, api-server on Airflow 3) signs each request to a log server
(Celery workers :8793, triggerer :8794, the scheduler under LocalExecutor) with ``[webserver]
secret_key`` (Airflow 2) or ``[api] secret_key`` (Airflow 3); the log server verifies it with its
own. The doctor never reads Secret values: it compares where each component takes the key from,
and reads the 403s in the components' logs."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable
from airflow_gke.views.identity import component_exists, component_pods
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt, helm_upgrade, k8s_resource, ns, q, release


_UI_403 = re.compile(r"(?i)could not read served logs.*\b403\b|403 forbidden.*:879[34]/|same 'secret_key'|"
                     r"failed to fetch log file from worker.*\b403\b")
_SERVER_403 = re.compile(r"(?i)signature of the request was wrong|InvalidSignatureError|"
                         r"serve_logs.*(?:forbidden|\b403\b)")
_SECRET_REF = re.compile(r"^env (\S+) \(from Secret ([^/]+)/(.+)\)$")


@check(id="served-logs-secret-key-mismatch", title="Components share one secret key for served logs",
       severity="error", category=Category.LOGGING, needs=("configmaps", "pods"),
       uses=("deployments", "statefulsets", "logs"))
def run(ctx: Context) -> Result:
    """The UI and the log servers (workers, triggerer) take the served-logs secret key from different sources, or 403s show it."""
    af3 = _af3(ctx)
    section = "api" if af3 else "webserver"
    ui = "api-server" if af3 else "webserver"
    if not component_exists(ctx, ui):
        return skipped(f"no {ui} in this release: nothing fetches served logs")
    servers = ["triggerer"]
    if ctx.celery_executor:
        servers.insert(0, "worker")
    if "LocalExecutor" in (ctx.executor or ""):
        servers.append("scheduler")
    comps = [ui] + [c for c in servers if component_exists(ctx, c)]
    if len(comps) < 2:
        return passed()
    sigs = {c: _signature(ctx, c, section) for c in comps}
    mismatch = _mismatch(sigs)
    logs = _log_lines(ctx, comps, ui)
    if not mismatch and not logs:
        return passed()
    return from_findings([_finding(ctx, section, ui, sigs, mismatch, logs)])


def _af3(ctx: Context) -> bool:
    major = ctx.airflow_major
    if major is not None:
        return major >= 3
    return component_exists(ctx, "api-server")


def _signature(ctx: Context, comp: str, section: str) -> tuple[str, str, str]:
    """(kind, identity, how it reads) of the secret key a component uses. kind: secret, value,
    cfg, cmd, none (Airflow generates a random key per process) or unknown (envFrom may set it)."""
    v = ctx.config(comp).lookup(section, "secret_key")
    if v is None:
        try:
            container = ctx.component_container(comp) or {}
        except DataUnavailable:
            container = {}
        if container.get("envFrom"):
            return "unknown", "", "not set in env or airflow.cfg, but the container has envFrom (not read)"
        return "none", "", (f"not set (no AIRFLOW__{section.upper()}__SECRET_KEY, nothing in airflow.cfg): Airflow "
                            "generates a random key in every process")
    m = _SECRET_REF.match(v.source)
    if m:
        return "secret", f"{m.group(2)}/{m.group(3)}", f"{m.group(1)} from Secret {m.group(2)}, key {m.group(3)}"
    if v.opaque:
        return "cmd", v.source, v.source
    if v.source.startswith("env "):
        known = v.value not in (None, "", "<redacted>")
        return "value", v.value if known else "?", f"{v.source} set to a literal value"
    return "cfg", v.source, f"{v.source} (the ConfigMap every component mounts)"


def _mismatch(sigs: dict[str, tuple[str, str, str]]) -> bool:
    known = {c: s for c, s in sigs.items() if s[0] != "unknown"}
    if len(known) < 2:
        return False
    if any(s[0] == "none" for s in known.values()):
        return True
    keys = set()
    for kind, ident, _how in known.values():
        keys.add((kind, "?" if kind == "value" and ident == "?" else ident))
    values = {k for k in keys if k[0] == "value"}
    if len(keys) == len(values) and ("value", "?") in values:
        return False   # literal values the snapshot does not show: cannot compare
    return len(keys) > 1


def _log_lines(ctx: Context, comps: list[str], ui: str) -> list[str]:
    out = []
    for comp in comps:
        rx = _UI_403 if comp == ui else _SERVER_403
        try:
            pods = component_pods(ctx, comp)
        except DataUnavailable:
            continue
        for p in pods[:10]:
            for c in p.containers:
                for prev in (False, True):
                    for line in ctx.log_lines(p.name, str(c.get("name")), prev)[-300:]:
                        m = rx.search(line)
                        if m:
                            out.append(f"log {p.name}/{c.get('name')}: {excerpt(line, m)}")
                            break
            if len(out) >= 4:
                return out
    return out


def _ui_workload(ctx: Context, ui: str) -> str:
    for coll in (ctx.deployments, ctx.statefulsets):
        for w in coll.values():
            if w.labels.get("component") == ui and (ctx.release is None or w.labels.get("release") == ctx.release):
                return w.name
    return f"{release(ctx)}-{ui}"


def _finding(ctx: Context, section: str, ui: str, sigs, mismatch: bool, logs: list[str]) -> Finding:
    evidence = [f"{comp}: [{section}] secret_key {how}" for comp, (_k, _i, how) in sigs.items()]
    evidence += logs
    rel = release(ctx)
    if section == "api":
        secret, key, value = f"{rel}-api-secret", "api-secret-key", "apiSecretKeySecretName"
    else:
        secret, key, value = f"{rel}-webserver-secret", "webserver-secret-key", "webserverSecretKeySecretName"
    random = [c for c, s in sigs.items() if s[0] == "none"]
    if mismatch and random:
        why = (f"{', '.join(random)} {'has' if len(random) == 1 else 'have'} no secret key configured, so Airflow "
               "generates a random one in every process and no signed request can be verified")
    elif mismatch:
        why = "the components read the key from different places, so they sign and verify with different keys"
    else:
        why = "the components' logs show served-log requests refused with 403"
    cmds = [f"kubectl create secret generic {q(secret)} --namespace {q(ns(ctx))} "
            f"--from-literal={key}=\"$(python3 -c 'import secrets; print(secrets.token_hex(32))')\"",
            helm_upgrade(ctx, f"--set {value}={q(secret)}"),
            f"kubectl rollout restart deployment,statefulset --namespace {q(ns(ctx))} "
            f"-l {q(f'release={rel},tier=airflow')}"]
    return Finding(
        title=f"The {ui} and the log servers do not share one [{section}] secret_key: live task logs fail with "
              "403 FORBIDDEN",
        message=(f"The {ui} signs every request for a running task's log (worker :8793, triggerer :8794) with "
                 f"[{section}] secret_key, and the log server verifies it with its own; {why}. The log pane shows "
                 "`Could not read served logs: Client error '403 FORBIDDEN'` and asks to make sure all components "
                 f"have the same secret_key. Give every component the key from one Secret the chart does not "
                 f"regenerate ({value}), remove per-component overrides of AIRFLOW__{section.upper()}__SECRET_KEY, "
                 "and restart all components together."),
        resource=k8s_resource(ctx, "Deployment", _ui_workload(ctx, ui)),
        evidence=evidence,
        remediation=Remediation(
            summary=f"Create one secret key Secret, point {value} at it, drop per-component overrides, restart "
                    "every Airflow component.",
            commands=cmds),
    )
