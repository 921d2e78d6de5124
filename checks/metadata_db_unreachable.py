"""Airflow containers that cannot reach or log in to the metadata database (connection refused,
host name that does not resolve, password rejected, no connection slots left, timeouts, and a
connection URL whose password is not URL-encoded so that part of it is read as the host or port,
catalogue #27), judged from the logs of the containers that are failing. The host is named;
passwords never are (a password fragment in a host position is masked where the logs are read)."""
from __future__ import annotations

import re
from collections import Counter

from airflow_gke.views import Context, owner_of
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, masked, ns, project, q, release

from ._db import KIND_TEXT, DbError, connection_budget, db_errors, metadata_secret, pgbouncer_id, postgres_image_ids


@check(id="metadata-db-unreachable", title="Airflow components reach and log in to the metadata database",
       severity="error", category=Category.DATABASE, needs=("pods",), uses=("logs", "deployments", "statefulsets", "configmaps"))
def run(ctx: Context) -> Result:
    """Component logs show the metadata DB cannot be reached or authenticated."""
    groups: dict[str, list[DbError]] = {}
    for e in db_errors(ctx):
        groups.setdefault(metadata_secret(e.pod) or "metadata", []).append(e)
    return from_findings([_finding(ctx, secret, errs) for secret, errs in sorted(groups.items())])


def _finding(ctx: Context, secret: str, errs: list[DbError]) -> Finding:
    kinds = Counter(e.kind for e in errs)
    kind = kinds.most_common(1)[0][0]
    hosts = [e.host for e in errs if e.host]
    host = Counter(hosts).most_common(1)[0][0] if hosts else None
    port = next((e.port for e in errs if e.host == host and e.port), None)
    where = f"{host}:{port}" if host and port else (host or "the database host (not shown in the logs)")
    pods = list(dict.fromkeys(e.pod.name for e in errs))
    evidence = [f"{len(pods)} pod(s) fail to connect: " + ", ".join(
        f"{p} ({next(e.pod.component or 'pod' for e in errs if e.pod.name == p)})" for p in pods[:8])]
    by_line: dict[str, list[DbError]] = {}
    for e in errs:   # the same error printed by psycopg2 and again by SQLAlchemy is quoted once
        key = re.sub(r"^.*?OperationalError\)?:?\s*(?:\(psycopg2\.OperationalError\)\s*)?", "", e.line).strip()
        by_line.setdefault(key, []).append(e)
    for _key, es in list(by_line.items())[:4]:
        quoted = masked(es[-1].line)
        more = len(dict.fromkeys(e.pod.name for e in es)) - 1
        evidence.append(f"{es[0].which} {es[0].pod.name}/{es[0].container}"
                        + (f" (same line in {more} more pod{'s' if more > 1 else ''})" if more else "") + f": {quoted}")
    evidence.append(f"connection from Secret {secret} (env AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, key connection); "
                    f"host in the errors: {where}")
    rel = release(ctx)
    if kind == "too-many":   # who takes the slots: the pods that connect and the pools they may open
        evidence += connection_budget(ctx, ctx.release_or_given())
    caused_by = []
    if kind == "pgbouncer-auth":
        pid = pgbouncer_id(ctx, rel)
        if pid:
            caused_by.append(pid)
    if host and "postgresql" in host:
        caused_by += postgres_image_ids(ctx, rel)
    n = q(ns(ctx))
    h = host or "<db host>"
    pt = port or "5432"
    commands = [f"kubectl run pg-check --rm -i --restart=Never --namespace {n} --image=postgres:16-alpine -- "
                f"pg_isready -h {q(h)} -p {q(pt)}"]
    if kind == "url":
        summary = (f"The connection URL in Secret {secret} holds a password (or user) with a character that is not "
                   "URL-encoded ('@', ':', '/', '?', '#', '%' or a space), so the URL parser takes part of the password "
                   f"for the host or port. Store the URL with the password percent-encoded (the host is {h}).")
        chart_secret = bool(rel) and secret == f"{rel}-metadata"
        commands = ["# set DB_USER, DB_PASS (as it is) and DB_NAME in your shell first; the password is encoded here:",
                    "ENC=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=\"\"))' "
                    '"$DB_PASS")']
        if chart_secret:   # the chart builds the URL from data.metadataConnection
            commands.append(helm_upgrade(ctx, '--set-string data.metadataConnection.pass="$ENC"'))
        else:
            commands.append(f"kubectl create secret generic {q(secret)} --namespace {n} "
                            f'--from-literal=connection="postgresql://$DB_USER:$ENC@{h}:{pt}/$DB_NAME" '
                            "--dry-run=client -o yaml | kubectl apply -f -")
    elif kind == "auth":
        summary = (f"The user or password in Secret {secret} is not what the database accepts (a rotated or reset "
                   "password, or a password with special characters that is not URL-encoded). Reset the password, "
                   "store the URL-encoded connection in the Secret and restart the components.")
        commands += ["gcloud sql users set-password airflow --instance <cloud-sql-instance> --prompt-for-password "
                     f"--project {q(project(ctx))}",
                     f"kubectl create secret generic {q(secret)} --namespace {n} "
                     f"--from-literal=connection='postgresql://airflow:<url-encoded password>@{h}:{pt}/airflow' "
                     "--dry-run=client -o yaml | kubectl apply -f -"]
    elif kind == "too-many":
        summary = ("The database has no connection slots left: put PgBouncer in front of it (pgbouncer.enabled=true) "
                   "or raise max_connections on the Cloud SQL instance.")
        commands += [helm_upgrade(ctx, "--set pgbouncer.enabled=true", "--set pgbouncer.maxClientConn=1000",
                                  "--set pgbouncer.metadataPoolSize=20"),
                     "gcloud sql instances patch <cloud-sql-instance> --database-flags=max_connections=400 "
                     f"--project {q(project(ctx))}"]
    elif kind == "dns":
        summary = (f"The host {h} does not resolve from the cluster: fix the host in Secret {secret} (or "
                   "data.metadataConnection.host) to the database's private IP or a name that resolves.")
        commands += [f"kubectl run dns-check --rm -i --restart=Never --namespace {n} --image=busybox:1.36 -- "
                     f"nslookup {q(h)}"]
    elif kind == "pgbouncer-auth":
        summary = ("PgBouncer cannot log in to the database with the configured auth_type: see the "
                   "pgbouncer-auth-mismatch finding (scram-sha-256 on both sides).")
        commands += [helm_upgrade(ctx, "--set pgbouncer.auth_type=scram-sha-256")]
    elif host and rel and host.split(".")[0] == f"{rel}-postgresql":
        summary = (f"The chart's own PostgreSQL ({rel}-postgresql) does not answer: its pod is not Ready. Fix that "
                   "pod (see its finding); the Airflow containers retry on their own.")
        commands += [f"kubectl get pods --namespace {n} -l app.kubernetes.io/name=postgresql",
                     f"kubectl describe pod {q(rel + '-postgresql-0')} --namespace {n}"]
    else:
        summary = (f"Nothing answers at {where}: check that the database is running and that the cluster can reach it "
                   "(Cloud SQL private IP in the cluster's VPC, authorized networks, firewall rules, NetworkPolicies), "
                   "or that the in-cluster database pod is Ready.")
        commands += ["gcloud sql instances describe <cloud-sql-instance> --format='value(state,ipAddresses)' "
                     f"--project {q(project(ctx))}"]
    restarts = []
    for e in errs:
        o = owner_of(e.pod)
        if o and o[0] in ("Deployment", "StatefulSet") and o not in restarts:
            restarts.append(o)
    for k, name in (restarts[:4] if kind in ("auth", "dns", "url") else []):   # env is read at container start
        commands.append(f"kubectl rollout restart {k.lower()} {q(name)} --namespace {n}")
    return Finding(
        title=(f"The metadata connection URL in Secret {secret} is not URL-encoded: Airflow looks for the database at "
               f"a host that is part of the password" if kind == "url" else
               f"Airflow cannot {'log in to' if kind in ('auth', 'pgbouncer-auth') else 'reach'} the metadata database at {where}"),
        message=(f"{len(pods)} Airflow pod(s) fail to open a connection to the metadata database at {where}: "
                 f"{KIND_TEXT[kind]}. Components that cannot reach the database crash or wait in their init containers; "
                 "no task can run."),
        resource=k8s_resource(ctx, "Secret", secret),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        caused_by=caused_by,
    )
