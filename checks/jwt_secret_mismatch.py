"""Airflow 3: the scheduler signs each task's Execution API token with ``[api_auth] jwt_secret`` and
the api-server verifies it with its own; when they read different secrets (different Secrets or
keys, a literal value on one side, nothing on the other) every task fails with ``Invalid auth
token: Signature verification failed``. Judged from the pods' environment and airflow.cfg (the
Secret values are never read) and from the log lines of that failure."""
from __future__ import annotations

import re

from airflow_gke.views import Context, env_source, Pod
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, grep, helm_upgrade, ns, q, release, release_resource, source_text


ENV = "AIRFLOW__API_AUTH__JWT_SECRET"
# The processes that sign (scheduler) and verify (api-server) task tokens.
PARTIES = ("scheduler", "api-server", "execution-api-server")
OTHERS = ("dag-processor", "triggerer")
# "Invalid auth token: Signature verification failed" (the redactor may have masked the word after "token:").
_SIGNATURE = re.compile(r"(?i)(signature verification failed|InvalidSignatureError|"
                        r"invalid auth token: \S+ verification failed)")
_UNSET = re.compile(r"(?i)api_auth/jwt_secret must be set")


@check(id="jwt-secret-mismatch", title="Airflow 3 components sign and verify task tokens with the same JWT secret",
       severity="error", category=Category.SECRETS, needs=("pods", "configmaps"),
       uses=("logs", "deployments", "statefulsets"))
def run(ctx: Context) -> Result:
    """Airflow 3 scheduler and api-server read different [api_auth] jwt_secret values, or logs show signature failures."""
    if ctx.airflow_major != 3:
        return skipped("no task JWTs: Airflow " + str(ctx.airflow_major or "version unknown")
                       + " ([api_auth] jwt_secret signs task tokens from Airflow 3 on)")
    sources = _sources(ctx)
    parties = {where: src for where, (comp, src) in sources.items() if comp in PARTIES}
    distinct = {src for src in parties.values()}
    comparable = {s for s in distinct if s[0] != "value"}
    config_mismatch = len(distinct) > 1 and (len(comparable) > 1 or len(comparable) < len(distinct))
    logs = _log_hits(ctx)
    if not config_mismatch and not logs:
        return passed()
    return from_findings([_finding(ctx, sources, parties, config_mismatch, logs)])


def _source(ctx: Context, comp: str, container: dict) -> tuple:
    src = env_source(container, ENV)
    if src is not None and src[0] != "envFrom":
        return src
    v = ctx.config(comp).lookup("api_auth", "jwt_secret")
    if v is not None and "airflow.cfg" in v.source:
        return ("cfg", v.source, None)
    if src is not None:
        return src
    return ("unset", None, None)


def _sources(ctx: Context) -> dict[str, tuple[str, tuple]]:
    """Where -> (component, source): every running pod of the parties (pods of one Deployment may
    come from different revisions), else the workload's template."""
    out: dict[str, tuple[str, tuple]] = {}
    for comp in PARTIES + OTHERS:
        pods = [p for p in ctx.pods_by_component.get(comp, []) if not p.is_task_pod and p.phase != "Succeeded"]
        for p in pods[:10]:
            out[f"{comp} pod {p.name}"] = (comp, _source(ctx, comp, p.main_container))
        if not pods:
            c = ctx.component_container(comp)
            if c:
                out[f"{comp} (workload template)"] = (comp, _source(ctx, comp, c))
    return out


def _text(src: tuple) -> str:
    if src[0] == "cfg":
        return f"[api_auth] jwt_secret from {src[1]} (value not read)"
    if src[0] == "unset":
        return f"{ENV} not set and no [api_auth] jwt_secret in airflow.cfg"
    return source_text(src, ENV)


def _log_hits(ctx: Context) -> list[str]:
    out: list[str] = []
    pods: list[Pod] = list(ctx.task_pods[:40])
    for comp in PARTIES + OTHERS:
        pods += [p for p in ctx.pods_by_component.get(comp, []) if not p.is_task_pod]
    for p in pods:
        for c in p.containers:
            lines = ctx.log_history(p, str(c.get("name")))
            for which, ln in (grep(lines, _SIGNATURE) or grep(lines, _UNSET))[-1:]:
                out.append(f"{which} {p.name}/{c.get('name')}: {clip(ln)}")
        if len(out) >= 4:
            break
    return out


def _finding(ctx: Context, sources, parties, config_mismatch: bool, logs: list[str]) -> Finding:
    evidence = [f"{where}: {_text(src)}" for where, (_c, src) in sources.items()]
    evidence += logs
    rel = release(ctx)
    n = q(ns(ctx))
    secret = "airflow-jwt-secret-pinned"
    secrets = sorted({s[1] for s in parties.values() if s[0] == "secret" and s[1]})
    unset = any(s[0] == "unset" for s in parties.values())
    if config_mismatch:
        why = ("the scheduler, which signs each task's token, and the api-server, which verifies it, read the JWT "
               "secret from different places (" + "; ".join(sorted({_text(s) for s in parties.values()})) + ")")
    elif any(_UNSET.search(x) for x in logs):
        why = "a component starts without any [api_auth] jwt_secret"
    else:
        why = ("the api-server rejects task tokens: the process that signed them used another secret, typically a "
               "chart-generated JWT Secret regenerated by an upgrade while only some pods restarted")
    cmds = [f"kubectl create secret generic {secret} --namespace {n} "
            "--from-literal=jwt-secret=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(64))')\"",
            helm_upgrade(ctx, f"--set jwtSecretName={secret}"),
            f"kubectl rollout restart deployment,statefulset --namespace {n} -l release={q(rel)}"]
    return Finding(
        title="Airflow 3 task tokens are signed and verified with different JWT secrets"
              + (" (signature verification failures in the logs)" if logs else ""),
        message=(f"Airflow 3 tasks authenticate to the Execution API with a JWT the scheduler signs with [api_auth] "
                 f"jwt_secret; the api-server must verify it with the same secret. Here {why}. Every task fails before "
                 "its code runs with 'Invalid auth token: Signature verification failed'."
                 + (" Some components have no JWT secret at all." if unset else "")),
        resource=release_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            "Store one JWT secret in a Secret you own, point the chart at it (jwtSecretName) so upgrades never "
            "regenerate it, remove per-component AIRFLOW__API_AUTH__JWT_SECRET overrides"
            + (f" (now from {', '.join(secrets)})" if len(secrets) > 1 else "")
            + ", and restart every Airflow component together.", cmds),
    )

