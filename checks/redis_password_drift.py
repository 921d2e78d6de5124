"""Celery workers (or the scheduler, or Flower) are refused by the chart's Redis: ``WRONGPASS
invalid username-password pair``, ``invalid username-password pair or user is disabled`` or
``NOAUTH Authentication required``. The password in the broker URL the Airflow pods use is not the
one Redis started with: the chart generates ``<release>-redis-password`` and
``<release>-broker-url`` once, in a pre-install hook (``redis.password`` "can only be set during
install, not upgrade"), so a reinstall or a GitOps re-render regenerates them while the running
Redis keeps the old one (apache/airflow#34561, #20999). Reported on the refused connection in the
logs the doctor collects; Secret values are never read."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import check
from airflow_gke.remediation import excerpt, helm_upgrade, k8s_resource, kubectl, q, release, release_resource
from airflow_gke.views import Context, DataUnavailable, Pod, env_source, human_age

_REFUSED = re.compile(r"WRONGPASS|invalid username-password pair|NOAUTH Authentication required", re.I)
CLIENTS = ("worker", "scheduler", "flower", "triggerer")


@check(id="redis-password-drift", title="Celery reaches Redis with the password Redis runs with",
       severity="error", category="secrets", needs=("pods",), uses=("logs", "statefulsets", "configmaps"))
def run(ctx: Context) -> Result:
    """Redis refuses the broker URL's password (WRONGPASS / NOAUTH) in worker or scheduler logs."""
    if not ctx.celery_executor:
        return skipped("the executor is not CeleryExecutor or CeleryKubernetesExecutor: no Redis broker")
    hits: list[tuple[Pod, str, str, str]] = []
    for comp in CLIENTS:
        for pod in ctx.pods_by_component.get(comp, []):
            if pod.is_task_pod:
                continue
            for c in pod.containers:
                name = str(c.get("name") or "")
                for which, ln in ctx.recent_logs(pod, name):
                    if _REFUSED.search(ln):
                        hits.append((pod, name, which, ln))
                        break
    if not hits:
        return passed()
    return from_findings([_finding(ctx, hits)])


def _finding(ctx: Context, hits: list[tuple[Pod, str, str, str]]) -> Finding:
    rel = release(ctx)
    evidence = []
    for pod, c, which, ln in hits[:3]:
        evidence.append(f"{which} of {pod.name}/{c}: {excerpt(ln, _REFUSED.search(ln))}")
    if len(hits) > 3:
        evidence.append(f"{len(hits)} Airflow containers log it in all: "
                        + ", ".join(sorted({p.name for p, *_ in hits})[:8]))
    redis = ctx.pods_by_component.get("redis", [])
    broker = _broker_secret(ctx, hits[0][0], hits[0][1])
    redis_src = env_source(redis[0].containers[0], "REDIS_PASSWORD") if redis and redis[0].containers else None
    if redis:
        r = redis[0]
        evidence.append(f"Redis pod {r.name} has run for {human_age(ctx.age(r.started))} with the password it "
                        f"read when it started" + (f" (REDIS_PASSWORD from Secret {redis_src[1]} key {redis_src[2]})"
                                            if redis_src and redis_src[0] == "secret" else ""))
    if broker:
        evidence.append(f"{hits[0][0].name} takes AIRFLOW__CELERY__BROKER_URL from Secret {broker[0]} key {broker[1]}"
                        " (values not read)")
    sts = f"{rel}-redis"
    set_secrets = helm_upgrade(ctx, "--set", q("redis.passwordSecretName=airflow-redis-password"),
                               "--set", q("data.brokerUrlSecretName=airflow-broker-url"))
    return Finding(
        title=f"Redis refuses the Celery broker password: the broker URL and {sts} disagree",
        message=("Airflow's Celery clients are refused by Redis (`WRONGPASS` / `NOAUTH`): the password in the broker "
                 "URL is not the one Redis started with. The chart generates both Secrets once, at install, so a "
                 "reinstall or a GitOps re-render makes new ones while the running Redis keeps the old password. "
                 "Tasks stay queued until both sides use one password."),
        resource=k8s_resource(ctx, "StatefulSet", sts) if sts in _statefulsets(ctx) else release_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            summary=("Own the password: create one Redis password Secret and a broker-URL Secret holding the same "
                     "password, and point the chart at both (values survive re-installs and re-renders); the upgrade "
                     "restarts Redis and its clients, so both sides read the same password."),
            commands=[
                "REDIS_PASS=$(openssl rand -hex 24)",
                kubectl(ctx, "create", "secret", "generic", "airflow-redis-password",
                        '--from-literal=password="$REDIS_PASS"'),
                kubectl(ctx, "create", "secret", "generic", "airflow-broker-url",
                        f'--from-literal=connection="redis://:$REDIS_PASS@{sts}:6379/0"'),
                "# restarts Redis, the Celery workers and the scheduler (their pod templates now name the new "
                "Secrets; running tasks on the workers are interrupted):",
                set_secrets,
            ]),
    )


def _broker_secret(ctx: Context, pod: Pod, container: str) -> tuple[str, str] | None:
    for c in pod.containers:
        if c.get("name") == container:
            src = env_source(c, "AIRFLOW__CELERY__BROKER_URL")
            if src and src[0] == "secret":
                return str(src[1]), str(src[2])
    return None


def _statefulsets(ctx: Context) -> dict:
    try:
        return ctx.statefulsets
    except DataUnavailable:   # only chooses the resource's kind: the logs decided the finding
        return {}
