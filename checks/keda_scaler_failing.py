"""KEDA cannot query the metadata database for the chart's ScaledObject, so the Celery workers (or
the triggerers) are never scaled. The known cause: with ``pgbouncer.enabled=true`` the chart points
KEDA's ``postgresql`` trigger at ``AIRFLOW_CONN_AIRFLOW_DB``, i.e. at PgBouncer, which pools in
transaction mode, and KEDA's driver (pgx) caches prepared statements per connection: ``could not
query postgreSQL: ERROR: prepared statement "stmtcache_..." does not exist (SQLSTATE 26000)``
(apache/airflow#32590). The chart's ``workers.keda.usePgbouncer=false`` (chart 1.11.0+, right since
1.12.0: apache/airflow#34740) makes KEDA read ``KEDA_DB_CONN``, a direct connection. Judged from the
ScaledObject's trigger and status conditions and KEDA's events; KEDA not installed (the CRD answers
404): not applicable."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import clip, deployer, helm_upgrade, k8s_resource, kubectl, q, quote_event, release
from airflow_gke.views import Context, DataUnavailable, Obj, as_dict, as_list, dig, secret_ref

_PREPARED = re.compile(r"(?i)prepared statement \S+ (?:does not exist|already exists)|SQLSTATE (?:26000|42P05)")
_KEDA_WARNINGS = ("KEDAScalerFailed", "ScaledObjectCheckFailed", "KEDAMetricSourceFailed")
_DIRECT_ENV = "KEDA_DB_CONN"
_POOLED_ENV = "AIRFLOW_CONN_AIRFLOW_DB"
# values key of each chart ScaledObject (the ``component`` label) for chart 1.x and 2.x
_VALUES_KEY = {"worker-horizontalpodautoscaler": ("workers.keda", "workers.celery.keda"),
               "triggerer-horizontalpodautoscaler": ("triggerer.keda", "triggerer.keda")}
_MIN_CHART = (1, 12, 0)   # usePgbouncer came in 1.11.0; its direct URL used PgBouncer's port and db until 1.12.0


@check(id="keda-scaler-failing", title="KEDA can query the metadata database to scale the Celery workers",
       severity="error", category=Category.EXECUTOR, needs=("scaledobjects",),
       uses=("deployments", "statefulsets", "events", "pods"))
def run(ctx: Context) -> Result:
    """The chart's KEDA ScaledObject is not Ready or its postgresql trigger fails (PgBouncer prepared statements)."""
    if ctx.body("scaledobjects") is None:
        return skipped("KEDA is not installed (the ScaledObject CRD answers 404): not applicable")
    rel = release(ctx)
    mine = [o for o in (Obj(i) for i in ctx.items("scaledobjects"))
            if o.labels.get("tier") == "airflow" and o.labels.get("release") in (rel, None)]
    if not mine:
        return skipped(f"KEDA is installed but release {rel} has no ScaledObject (workers.keda.enabled=false): "
                       "not applicable")
    findings = [f for so in sorted(mine, key=lambda o: o.name) if (f := _judge(ctx, rel, so)) is not None]
    return from_findings(findings)


def _condition(so: Obj, type_: str) -> dict:
    for c in as_list(so.status.get("conditions")):
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return {}


def _trigger(so: Obj) -> dict:
    for t in as_list(so.spec.get("triggers")):
        if isinstance(t, dict) and t.get("type") == "postgresql":
            return t
    return {}


def _warnings(ctx: Context, so: Obj) -> list[dict]:
    if not ctx.has("events"):
        return []
    return [e for e in ctx.events_for("ScaledObject", so.name)
            if e.get("type") == "Warning" and e.get("reason") in _KEDA_WARNINGS]


def _target(ctx: Context, so: Obj) -> tuple[str, Obj | None]:
    ref = as_dict(so.spec.get("scaleTargetRef"))
    kind, name = str(ref.get("kind") or "Deployment"), str(ref.get("name") or "")
    try:
        table = ctx.statefulsets if kind == "StatefulSet" else ctx.deployments
    except DataUnavailable:
        return f"{kind} {name}", None
    return f"{kind} {name}", table.get(name)


def _pgbouncer(ctx: Context, rel: str) -> Obj | None:
    try:
        deployments = ctx.deployments
    except DataUnavailable:
        return None
    for d in deployments.values():
        if d.labels.get("component") == "pgbouncer" and d.labels.get("release") in (rel, None):
            return d
    return None


def _chart(ctx: Context) -> tuple[int, ...] | None:
    try:
        v = ctx.chart_version
    except DataUnavailable:
        return None
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", v or "")
    return tuple(int(x) for x in m.groups()) if m else None


def _metadata_secret(target: Obj | None) -> tuple[str, str] | None:
    """(Secret, key) the scale target's Airflow container reads AIRFLOW_CONN_AIRFLOW_DB from."""
    if target is None:
        return None
    for c in as_list(dig(target.spec, "template", "spec", "containers")):
        if isinstance(c, dict):
            ref = secret_ref(c, _POOLED_ENV)
            if ref:
                return ref
    return None


def _judge(ctx: Context, rel: str, so: Obj) -> Finding | None:
    ready, active = _condition(so, "Ready"), _condition(so, "Active")
    warnings = _warnings(ctx, so)
    # Unknown without a reason is KEDA's initial state (not reconciled yet); with one, PartialTriggerError
    not_ready = ready.get("status") == "False" or (ready.get("status") == "Unknown" and bool(ready.get("reason")))
    if not not_ready and not warnings:
        return None
    trig = _trigger(so)
    meta = as_dict(trig.get("metadata"))
    conn_env = str(meta.get("connectionFromEnv") or "")
    pgb = _pgbouncer(ctx, rel)
    blob = "\n".join([str(ready.get("message") or "")] + [str(e.get("message") or "") for e in warnings])
    prepared = bool(_PREPARED.search(blob))
    pooled = bool(trig) and conn_env == _POOLED_ENV and pgb is not None
    chart = _chart(ctx)
    target_text, target = _target(ctx, so)
    if conn_env == _DIRECT_ENV:   # usePgbouncer=false already: never told to set what is set
        kind = "direct-old-chart" if chart is not None and chart < _MIN_CHART else "other"
    elif prepared or (pooled and not_ready):
        kind = "pgbouncer"
    else:
        kind = "other"

    evidence = [f"ScaledObject {so.name}: condition Ready={ready.get('status', '?')}"
                + (f" ({ready.get('reason')}: {clip(str(ready.get('message') or ''), 200)})" if ready.get("reason") else "")
                + (f", Active={active.get('status')} ({active.get('reason')})" if active else "")]
    if trig:
        evidence.append(f"ScaledObject {so.name}: trigger postgresql reads its connection from env {conn_env or '?'} "
                        f"of {target_text}" + (f" (targetQueryValue {meta.get('targetQueryValue')})"
                                               if meta.get("targetQueryValue") else ""))
    for e in warnings[-2:]:
        evidence.append(quote_event(e))
    secret = _metadata_secret(target)
    if pooled:
        evidence.append(f"Deployment {pgb.name}: the chart's PgBouncer (pool_mode transaction) fronts the metadata "  # type: ignore[union-attr]
                        f"database, and {_POOLED_ENV} (Secret {secret[0] if secret else rel + '-metadata'}, key "
                        f"{secret[1] if secret else 'connection'}; values not read) points at it")
    if target is not None:
        want = target.spec.get("replicas")
        have = target.status.get("readyReplicas") or 0
        evidence.append(f"{target_text}: {want if want is not None else '?'} replicas wanted, {have} ready; min "
                        f"{so.spec.get('minReplicaCount', 0)}, max {so.spec.get('maxReplicaCount', 100)} "
                        f"(HPA {so.status.get('hpaName') or 'keda-hpa-' + so.name})")

    severity = "error" if not_ready else "warning"
    component = so.labels.get("component", "worker-horizontalpodautoscaler")
    who = "triggerers" if component.startswith("triggerer") else "Celery workers"
    resource = k8s_resource(ctx, "ScaledObject", so.name)
    blocks = [f"{target_text.split(' ')[0]}/{ctx.target.namespace}/{target.name}"] if target is not None else []
    inspect = [kubectl(ctx, "describe", "scaledobject", q(so.name)),
               "kubectl logs --namespace keda deployment/keda-operator --since=1h | grep " + q(so.name)]
    if kind == "pgbouncer":
        return Finding(
            title=(f"KEDA cannot query the metadata database through PgBouncer for ScaledObject {so.name}: "
                   f"prepared statements under transaction pooling; the {who} do not scale"),
            message=(f"ScaledObject {so.name} polls the metadata database through the chart's PgBouncer "
                     f"({_POOLED_ENV}). PgBouncer pools in transaction mode, and KEDA's PostgreSQL driver caches "
                     "prepared statements on a server connection it does not keep, so its query fails with "
                     "'prepared statement \"stmtcache_...\" does not exist (SQLSTATE 26000)'. "
                     + ("KEDA marks the trigger failing and stops scaling: queued tasks wait for "
                        f"{who} that are not started." if not_ready else
                        "KEDA retries without the cache, so scaling works late and every poll logs an error.")
                     + ("" if prepared else
                        (" The events that quote the driver's error have expired" if ctx.has("events") else
                         " The events that would quote the driver's error could not be read")
                        + "; this ScaledObject matches the known cause (KEDA through PgBouncer): confirm in the KEDA "
                          "operator's log.")),
            resource=resource, evidence=evidence, severity=severity, blocks=blocks,
            remediation=_fix_pgbouncer(ctx, rel, so, component, chart, secret),
        )
    if kind == "direct-old-chart":
        return Finding(
            title=f"KEDA's direct database connection of chart {'.'.join(map(str, chart or ()))} is wrong for "
                  f"ScaledObject {so.name}: the {who} do not scale",
            message=(f"ScaledObject {so.name} reads {_DIRECT_ENV} (usePgbouncer=false), but charts before 1.12.0 "
                     "build that URL with PgBouncer's port and database name (apache/airflow#34740), so KEDA's "
                     "query fails."),
            resource=resource, evidence=evidence, severity=severity, blocks=blocks,
            remediation=Remediation(
                "Upgrade the chart to 1.12.0 or later, which builds kedaConnection from the database's own host, "
                "port and name; the upgrade rolls the Airflow pods.",
                [_upgrade_chart(ctx, "--set " + q(_values_key(component, chart) + ".usePgbouncer=false")), *inspect]),
        )
    return Finding(
        title=f"KEDA's ScaledObject {so.name} is not working: the {who} do not scale",
        message=(f"KEDA reports ScaledObject {so.name} failing ({ready.get('reason') or 'scaler errors'}); while its "
                 f"trigger fails KEDA does not scale the {who}. KEDA's events and operator log name the error."
                 + (f" The error is transaction pooling's (prepared statements), yet the trigger already reads "
                    f"{_DIRECT_ENV} (usePgbouncer=false): that URL still reaches a pooler; point it at the database "
                    "itself." if prepared and conn_env == _DIRECT_ENV else "")),
        resource=resource, evidence=evidence, severity=severity, blocks=blocks,
        remediation=Remediation("Read KEDA's error for this ScaledObject and fix what it names (the database "
                                "connection, the query, the scale target).", inspect),
    )


def _upgrade_chart(ctx: Context, *sets: str) -> str:
    """The values change on chart 1.12.0: ``helm upgrade --version``; Argo CD and Flux pin the chart
    version in their own objects, so they are told to bump it there."""
    if deployer(ctx)[0] == "helm":
        cmd = helm_upgrade(ctx, *sets)
        return cmd.replace(" --reuse-values", " --version 1.12.0 --reset-then-reuse-values", 1)
    return "# also raise the chart version to 1.12.0 where the release pins it\n" + helm_upgrade(ctx, *sets)


def _values_key(component: str, chart: tuple[int, ...] | None) -> str:
    one, two = _VALUES_KEY.get(component, _VALUES_KEY["worker-horizontalpodautoscaler"])
    return two if chart is not None and chart[0] >= 2 else one


def _fix_pgbouncer(ctx: Context, rel: str, so: Obj, component: str, chart: tuple[int, ...] | None,
                   secret: tuple[str, str] | None) -> Remediation:
    key = _values_key(component, chart) + ".usePgbouncer=false"
    commands: list[str] = []
    notes: list[str] = []
    chart_secret = secret is None or secret[0] in (f"{rel}-metadata", f"{rel}-airflow-metadata")
    if not chart_secret:
        # data.metadataSecretName: the chart reads KEDA_DB_CONN from that Secret's key kedaConnection
        commands.append(f"# data.metadataSecretName is {secret[0]}: add the direct (not PgBouncer) URL of the metadata "  # type: ignore[index]
                        "database as its key kedaConnection first, or the pods cannot start")
        commands.append(kubectl(ctx, "patch", "secret", q(secret[0]), "--type", "merge", "-p",  # type: ignore[index]
                                q('{"stringData":{"kedaConnection":"postgresql://USER:PASSWORD@DB_HOST:5432/DB_NAME"}}')))
        notes.append(f"Secret {secret[0]} is yours (data.metadataSecretName), so it needs a kedaConnection key "  # type: ignore[index]
                     "with the database's direct URL.")
    if chart is not None and chart < _MIN_CHART:
        commands.append(_upgrade_chart(ctx, "--set " + q(key)))
        notes.append(f"Chart {'.'.join(map(str, chart))} predates a working usePgbouncer (added in 1.11.0, its direct "
                     "URL fixed in 1.12.0): the upgrade moves to 1.12.0.")
    else:
        commands.append(helm_upgrade(ctx, "--set " + q(key)))
    commands.append(kubectl(ctx, "get", "scaledobject", q(so.name), "--output",
                            q("jsonpath={.spec.triggers[0].metadata.connectionFromEnv} "
                              "{.status.conditions[?(@.type==\"Ready\")].status}")))
    return Remediation(
        (f"Let KEDA bypass PgBouncer: {key} makes the chart point the trigger at {_DIRECT_ENV}, a direct connection "
         "to the database (Airflow keeps using PgBouncer). The upgrade changes the pod template, so the Airflow pods "
         "roll. " + " ".join(notes)).strip(),
        commands)
