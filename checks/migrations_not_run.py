"""Components stuck in ``wait-for-airflow-migrations`` past its timeout while the migration Job
``<release>-run-airflow-migrations`` is absent (a Helm hook that Argo CD / Flux / ``--wait`` never
ran), failed, or still running."""
from __future__ import annotations

import re
from datetime import timedelta

from airflow_gke.views import as_list, Context, describe_state, human_age, Obj, Pod, spec_of, status_of
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import deployer, helm_upgrade, k8s_resource, masked, ns, q, release

from ._db import postgres_image_ids, postgres_pods, unreachable_ids

WAIT = "wait-for-airflow-migrations"
TIMEOUT_ARG = re.compile(r"--migration-wait-timeout[= ](\d+)|(?:^|\s)-t\s+(\d+)")
TELLING = re.compile(r"(?i)TimeoutError|unapplied migrations|Waiting for migrations|Migration Head|"
                     r"OperationalError|Maximum number of retries|could not|refused|DB_HOST")


@check(id="migrations-not-run", title="Database migrations ran, so components get past wait-for-airflow-migrations",
       severity="error", category=Category.DATABASE, needs=("pods", "jobs"), uses=("logs", "events"))
def run(ctx: Context) -> Result:
    """Components wait in wait-for-airflow-migrations beyond the timeout; the migration Job is absent, failed or running."""
    stuck: list[tuple[Pod, str, int]] = []
    for pod in ctx.pods:
        if pod.is_task_pod or not ctx.is_airflow_pod(pod) or pod.phase != "Pending":
            continue
        cs = status_of(pod, WAIT)
        if cs is None:
            continue
        state, f = cs.state
        if state == "terminated" and f.get("exitCode") == 0:
            continue
        if state == "waiting" and f.get("reason") != "CrashLoopBackOff" and not cs.last_terminated:
            continue   # never started (image pull, config error, volumes): another check's problem
        timeout = _timeout(spec_of(pod, WAIT))
        age = ctx.age(pod.started)
        if age is None or age < timedelta(seconds=timeout + 30):
            continue
        stuck.append((pod, describe_state(cs), timeout))
    if not stuck:
        return from_findings([])
    rel = release(ctx)
    job = _job(ctx, rel)
    status = _job_status(ctx, job, max(t for _, _, t in stuck))
    if status is None:
        return from_findings([])   # the Job completed: components wait for another reason
    return from_findings([_finding(ctx, rel, job, status, stuck)])


def _timeout(spec: dict | None) -> int:
    args = " ".join(str(a) for a in as_list((spec or {}).get("args")) + as_list((spec or {}).get("command")))
    m = TIMEOUT_ARG.search(args)
    if m:
        return int(m.group(1) or m.group(2))
    return 60


def _job(ctx: Context, rel: str) -> Obj | None:
    j = ctx.jobs.get(f"{rel}-run-airflow-migrations")
    if j is not None:
        return j
    for j in ctx.jobs.values():
        if j.labels.get("component") == "run-airflow-migrations" and j.labels.get("release") in (None, rel):
            return j
    return None


def _job_status(ctx: Context, job: Obj | None, timeout: int) -> str | None:
    if job is None:
        return "absent"
    conds = {c.get("type"): c for c in as_list(job.status.get("conditions")) if isinstance(c, dict)}
    if conds.get("Complete", {}).get("status") == "True":
        return None
    if conds.get("Failed", {}).get("status") == "True":
        c = conds["Failed"]
        return f"failed ({c.get('reason')}: {c.get('message')})"
    if job.status.get("active"):
        age = ctx.age(job.created)
        return f"still running after {human_age(age)} (active {job.status.get('active')}, failed {job.status.get('failed', 0)})"
    if job.status.get("failed"):
        return f"failing ({job.status.get('failed')} failed pods, none succeeded)"
    return "not started (no active pods)"


def _finding(ctx: Context, rel: str, job: Obj | None, status: str, stuck) -> Finding:
    jname = job.name if job is not None else f"{rel}-run-airflow-migrations"
    evidence = []
    for pod, state, timeout in stuck[:6]:
        evidence.append(f"Pod {pod.name} ({pod.component}): init container {WAIT} {state}, pod age "
                        f"{human_age(ctx.age(pod.started))}, --migration-wait-timeout={timeout}")
    if len(stuck) > 6:
        evidence.append(f"... and {len(stuck) - 6} more pods waiting")
    for pod, _s, _t in stuck[:1]:
        logs = ctx.recent_logs(pod, WAIT)
        waits = [(w, ln) for w, ln in logs if "Waiting for migrations" in ln]
        tells = [(w, ln) for w, ln in logs if TELLING.search(ln) and "Waiting for migrations" not in ln
                 and not ln.strip().startswith(("raise ", "File "))]
        for which, ln in (waits[-1:] + tells[-3:]):
            evidence.append(f"{which} {pod.name}/{WAIT}: {masked(ln)}")
    evidence.append(f"Job {jname}: {status}")
    hooky = job is None
    if job is not None:
        hook = job.annotations.get("helm.sh/hook")
        if hook:
            evidence.append(f"Job {jname} annotation helm.sh/hook: {hook}")
        for p in ctx.pods_by_owner.get(f"Job/{jname}", [])[-2:]:
            for c in p.containers[:1]:
                for which, ln in ctx.recent_logs(p, str(c.get("name")))[-2:]:
                    evidence.append(f"{which} {p.name}/{c.get('name')}: {masked(ln)}")
    argo = any(k.startswith("argocd.argoproj.io/") for o in [p for p, _s, _t in stuck] + list(ctx.deployments.values())
               for k in list(o.annotations) + list(o.labels))
    n = q(ns(ctx))
    pg_down = [i for i, p in zip(postgres_image_ids(ctx, rel), postgres_pods(ctx, rel))
               if any(not cs.ready for cs in p.container_statuses) or not p.container_statuses]
    caused_by = unreachable_ids(ctx) + pg_down
    comps = ", ".join(sorted({p.component or p.name for p, _s, _t in stuck}))
    if caused_by:
        # The wait is a symptom: the containers cannot read the schema version while the database
        # does not answer. An absent Job is then no evidence that migrations never ran (Helm's hook
        # delete policy and ttlSecondsAfterFinished remove a completed one).
        first = stuck[0][0]
        return Finding(
            title=f"Components wait in {WAIT} because the metadata database is unreachable",
            message=(f"{len(stuck)} pod(s) ({comps}) are stuck in init container {WAIT}: it cannot connect to the "
                     "metadata database (see the linked finding), so it cannot read the schema version. "
                     + (f"The migration Job {jname} is absent, which does not show that migrations never ran (Helm "
                        "deletes a completed hook Job, ttlSecondsAfterFinished removes it): " if job is None else f"The migration Job {jname} is {status}: ")
                     + "whether migrations are due can be told only once the database answers. Fix the connection "
                       "first; if the schema is current the pods pass the wait by themselves."),
            resource=k8s_resource(ctx, "Job", jname),
            evidence=evidence,
            remediation=Remediation(
                "Fix the database connection (the linked finding's fix), then watch the pods pass the wait; only if "
                f"they then report unapplied migrations does {jname} need to run.",
                [f"kubectl logs {q(first.name)} --namespace {n} --container {WAIT}",
                 f"kubectl get pods --namespace {n} --watch"]),
            caused_by=caused_by,
        )
    if hooky:
        tool = deployer(ctx)[0]
        hooks_off = ("--set migrateDatabaseJob.useHelmHooks=false", "--set migrateDatabaseJob.applyCustomEnv=false",
                     "--set createUserJob.useHelmHooks=false", "--set createUserJob.applyCustomEnv=false")
        if tool in ("argocd", "flux"):
            # under a GitOps controller the hook Job never runs: render it as a plain resource; a longer
            # wait does not help (nothing would migrate meanwhile)
            summary = ("The migration Job never ran: it is a Helm post-install/post-upgrade hook, which "
                       + ("Argo CD maps to a PostSync hook that waits for every resource to be Healthy, while the "
                          "components wait for the migrations: neither ever happens. " if tool == "argocd" else
                          "Flux's install/upgrade does not run to completion while the components wait. ")
                       + "Render the Jobs as normal resources (useHelmHooks=false, applyCustomEnv=false for "
                         "migrateDatabaseJob and createUserJob), committed to the values the controller applies.")
            commands = [helm_upgrade(ctx, *hooks_off), f"kubectl get jobs --namespace {n}"]
        else:
            summary = ("The migration Job never ran: by default it is a Helm post-install/post-upgrade hook, which "
                       "Terraform or a `helm install --wait` that times out do not run. Render it as a normal "
                       "resource (migrateDatabaseJob.useHelmHooks=false) and give the wait container more time.")
            commands = [helm_upgrade(ctx, *hooks_off, "--set images.migrationsWaitTimeout=300"),
                        f"kubectl get jobs --namespace {n}"]
    else:
        summary = (f"The migration Job {jname} has not completed: read its pod's log, fix the cause (most often the "
                   "database connection), then delete the Job and run it again.")
        commands = [f"kubectl logs job/{q(jname)} --namespace {n} --all-containers",
                    f"kubectl describe job {q(jname)} --namespace {n}",
                    f"kubectl delete job {q(jname)} --namespace {n}",
                    helm_upgrade(ctx, "--set migrateDatabaseJob.useHelmHooks=false")]
    return Finding(
        title=f"Components wait for database migrations; Job {jname} is {status.split(' (')[0]}",
        message=(f"{len(stuck)} pod(s) ({comps}) are stuck in init container {WAIT} longer than its timeout: "
                 + "the metadata database is not at the schema of this Airflow version, "
                 + f"and the migration Job {jname} is {status}. Nothing starts until `airflow db migrate` has run."
                 + (" The chart objects carry Argo CD annotations: hooks need useHelmHooks=false there." if argo else "")),
        resource=k8s_resource(ctx, "Job", jname),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        caused_by=caused_by,
    )
