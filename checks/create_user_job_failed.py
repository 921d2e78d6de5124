"""Airflow 3 moved user management to the FAB provider: the chart's create-user Job runs ``airflow
users create``, which exists only with the FAB auth manager and its provider, and writes to FAB's
tables, which the migration creates only when ``[database] external_db_managers`` names FAB's DB
manager. So on Airflow 3 the Job fails with ``invalid choice: 'users'`` (SimpleAuthManager, or an
image without ``apache-airflow-providers-fab``) or ``relation "ab_user" does not exist`` (FAB tables
never created; charts 1.18-1.19), no admin user exists and nobody can log in (apache/airflow#51304,
#53999, #63847, PR #56057). Judged from the Job's (and the api-server's) collected logs and the
configuration the chart rendered."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt, helm_upgrade, k8s_resource, kubectl, q, release
from airflow_gke.views import Context, DataUnavailable, Pod, owner_of, status_of, unhealthy

FAB_AM = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
FAB_DB = "airflow.providers.fab.auth_manager.models.db.FABDBManager"
NO_CLI = re.compile(r"invalid choice: '?users'?")
NO_TABLES = re.compile(r'relation "(ab_[a-z_]+)" does not exist', re.I)
JOB_COMPONENTS = ("create-user-job", "create-user")


@check(id="create-user-job-failed", title="The chart's create-user Job creates the Airflow 3 admin user",
       severity="error", category=Category.RUNTIME, needs=("pods",), uses=("logs", "configmaps", "jobs"))
def run(ctx: Context) -> Result:
    """Airflow 3's create-user Job fails: no `users` command (not the FAB auth manager) or FAB's tables were never created."""
    if ctx.airflow_major != 3:
        return skipped("not Airflow 3 (user management is built in before 3)")
    hits: list[tuple[str, Pod, str, str, str]] = []   # kind, pod, container, which log, line
    for p in ctx.unhealthy_pods:
        comp = p.component or ""
        if comp not in JOB_COMPONENTS and comp != "api-server":
            continue
        for c in p.init_containers + p.containers:
            name = str(c.get("name") or "")
            cs = status_of(p, name)
            if cs is None or not unhealthy(cs) or name.startswith("git-sync"):
                continue
            for which, ln in ctx.recent_logs(p, name):
                kind = "no-cli" if NO_CLI.search(ln) and comp != "api-server" else (
                    "no-tables" if NO_TABLES.search(ln) else None)
                if kind:
                    hits.append((kind, p, name, which, ln))
                    break
    if not hits:
        return passed()
    return from_findings([_finding(ctx, hits)])


def _job_name(ctx: Context, hits) -> str | None:
    for _k, p, *_ in hits:
        o = owner_of(p)
        if o and o[0] == "Job":
            return o[1]
    return None


def _finding(ctx: Context, hits) -> Finding:
    kind = "no-tables" if any(h[0] == "no-tables" for h in hits) else "no-cli"
    try:
        cfg = ctx.config("api-server")
        am = (cfg.get("core", "auth_manager") or "").strip()
        dbm = (cfg.get("database", "external_db_managers") or "").strip()
    except DataUnavailable:   # airflow.cfg not read: the log line decides, the fix cannot skip what is set
        am = dbm = ""
    fab = am.endswith("FabAuthManager")
    job = _job_name(ctx, hits)
    rel = release(ctx)
    evidence = []
    for k, p, c, which, ln in hits[:3]:
        rx = NO_TABLES if k == "no-tables" else NO_CLI
        evidence.append(f"{which} of {p.name}/{c}: {excerpt(ln, rx.search(ln))}")
    evidence.append(f"[core] auth_manager = {am or 'unset (Airflow 3: SimpleAuthManager)'}; [database] "
                    f"external_db_managers = {dbm or 'unset'}; Airflow {ctx.airflow_version or '3'}, chart "
                    f"{_chart(ctx) or 'version unknown'}")
    commands = []
    if kind == "no-tables":
        table = next((NO_TABLES.search(h[4]).group(1) for h in hits if h[0] == "no-tables"), "ab_user")
        title = f"FAB's tables were never created ({table} does not exist): Airflow 3 has no admin user and nobody can log in"
        if FAB_DB not in dbm:
            summary = ("Add FAB's DB manager to [database] external_db_managers so that the migration creates FAB's "
                       "tables (ab_user, ab_role, ...), then let the migration and create-user Jobs run again: the "
                       "upgrade re-runs both hooks and restarts the components.")
            commands.append(helm_upgrade(ctx, "--set", q(f"config.database.external_db_managers={FAB_DB}")))
        else:
            summary = ("external_db_managers already names FAB's DB manager, but the migration ran before it did: run "
                       "the migration again (the upgrade re-creates the Job), then the create-user Job.")
            commands.append(helm_upgrade(ctx))
        if job:
            commands.insert(0, kubectl(ctx, "delete", "job", q(job)))
    elif fab:
        title = "The image has no FAB provider: Airflow 3's `airflow users create` does not exist and the admin user is never created"
        summary = ("[core] auth_manager is FabAuthManager but the image lacks apache-airflow-providers-fab, so the "
                   "`users` command and FAB's login do not exist: build the image with the provider (and set "
                   "external_db_managers to FAB's DB manager), then upgrade to it.")
        commands.append("# in the image's Dockerfile: RUN pip install --no-cache-dir apache-airflow-providers-fab")
        if FAB_DB not in dbm:
            commands.append(helm_upgrade(ctx, "--set", q(f"config.database.external_db_managers={FAB_DB}")))
    else:
        title = ("Airflow 3 runs SimpleAuthManager, which has no `airflow users` command: the create-user Job fails "
                 "and creates no admin user")
        disable = "createUserJob.enabled=false" if _at_least(_chart(ctx), (1, 19)) else "webserver.defaultUser.enabled=false"
        summary = ("Either keep SimpleAuthManager and stop the create-user Job (its users come from [core] "
                   "simple_auth_manager_users), or use FAB's auth manager, its DB manager and an image with "
                   "apache-airflow-providers-fab (Option B).")
        commands += ["# Option A: SimpleAuthManager; users from simple_auth_manager_users (passwords are generated "
                     "into the api-server's log)",
                     helm_upgrade(ctx, "--set", q(disable), "--set", q("config.core.simple_auth_manager_users=admin:admin")),
                     "# Option B: FAB (the image must contain apache-airflow-providers-fab)",
                     helm_upgrade(ctx, "--set", q(f"config.core.auth_manager={FAB_AM}"), "--set",
                                  q(f"config.database.external_db_managers={FAB_DB}"))]
        if job:
            commands.insert(0, kubectl(ctx, "delete", "job", q(job)))
    return Finding(
        title=title,
        message=("In Airflow 3 user management belongs to the FAB provider: `airflow users create`, which the chart's "
                 "create-user Job runs, needs the FAB auth manager, the provider in the image and FAB's tables in "
                 "the metadata database. " + ("The tables are missing, so the Job fails and no admin user exists."
                                              if kind == "no-tables" else
                                              "The command does not exist here, so the Job fails and no admin user "
                                              "exists.")),
        resource=k8s_resource(ctx, "Job", job) if job else k8s_resource(ctx, "Deployment", f"{rel}-api-server"),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        subjects=[k8s_resource(ctx, "Pod", p.name).ref for _k, p, *_ in hits],
    )


def _chart(ctx: Context) -> str | None:
    try:
        return ctx.chart_version
    except DataUnavailable:
        return None


def _at_least(version: str | None, want: tuple[int, int]) -> bool:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= want
