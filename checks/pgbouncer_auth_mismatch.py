"""PgBouncer logs in to the database with ``auth_type = md5`` while the server keeps only
SCRAM-SHA-256 password hashes (Cloud SQL for PostgreSQL 14+ default ``password_encryption``):
``server login failed: wrong password type``, and every Airflow connection through PgBouncer fails."""
from __future__ import annotations

import re

from airflow_gke.views import Context
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, masked, ns, project, q, release

from ._db import db_errors, pgbouncer_deployment

WRONG_TYPE = re.compile(r"(?i)wrong password type|cannot do SCRAM authentication|SASL authentication failed|"
                        r"server login has been failing")


@check(id="pgbouncer-auth-mismatch", title="PgBouncer's auth type matches the database's password encryption",
       severity="error", category=Category.DATABASE, needs=("pods", "deployments"), uses=("logs",))
def run(ctx: Context) -> Result:
    """PgBouncer (md5) against a SCRAM-only server: `wrong password type` in PgBouncer or client logs."""
    rel = release(ctx)
    d = pgbouncer_deployment(ctx, rel)
    if d is None:
        return from_findings([])
    evidence_pgb: list[str] = []
    for p in ctx.pods:
        if p.labels.get("component") != "pgbouncer" or p.labels.get("release") not in (None, rel):
            continue
        for c in p.containers:
            for which, ln in ctx.recent_logs(p, str(c.get("name"))):
                if WRONG_TYPE.search(ln) and len(evidence_pgb) < 3:
                    evidence_pgb.append(f"{which} {p.name}/{c.get('name')}: {masked(ln)}")
    host = f"{d.name}"
    clients = [e for e in db_errors(ctx) if e.kind == "pgbouncer-auth"
               and (not e.host or host in e.host or e.port == "6543")]
    if not evidence_pgb and not clients:
        return from_findings([])
    evidence = list(evidence_pgb)
    for e in clients[:3]:
        evidence.append(f"{e.which} {e.pod.name}/{e.container}: {masked(e.line)}")
    evidence.append(f"Deployment {d.name}: PgBouncer in front of the metadata database (Service {d.name}:6543); the "
                    "auth_type lives in Secret " + f"{d.name}-config (pgbouncer.ini), not readable by the doctor")
    n = q(ns(ctx))
    commands = [helm_upgrade(ctx, "--set pgbouncer.auth_type=scram-sha-256"),
                f"kubectl rollout restart deployment {q(d.name)} --namespace {n}",
                f"gcloud sql instances describe <cloud-sql-instance> --format='value(databaseVersion,settings.databaseFlags)' "
                f"--project {q(project(ctx))}"]
    return from_findings([Finding(
        title=f"PgBouncer {d.name} cannot log in to the database: wrong password type (md5 vs SCRAM)",
        message=(f"PgBouncer ({d.name}) authenticates to the database server with a password type the server does not "
                 "store: the server keeps SCRAM-SHA-256 hashes (PostgreSQL 14+ and Cloud SQL default "
                 "password_encryption=scram-sha-256) while PgBouncer is configured with auth_type md5. Every Airflow "
                 "connection through PgBouncer fails with 'server login failed: wrong password type'."),
        resource=k8s_resource(ctx, "Deployment", d.name),
        evidence=evidence,
        remediation=Remediation("Set pgbouncer.auth_type=scram-sha-256 (the chart default in recent versions) and "
                                "restart PgBouncer. Switching the server back to md5 password_encryption and resetting "
                                "the password also works but weakens it.", commands),
    )])
