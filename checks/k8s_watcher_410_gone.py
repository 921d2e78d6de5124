"""The KubernetesExecutor's pod watcher died on an expired watch: the scheduler logs
``(410) Reason: Expired: too old resource version`` (older clients: ``Gone``) and, in the affected
provider versions, ``Unknown error in KubernetesJobWatcher. Failing``. The executor stops hearing
about task pods: tasks stay queued or running although their pods finished, finished pods are not
deleted, and executor slots fill up until the scheduler restarts (apache/airflow#21087, #12229,
#37369). Reported on the scheduler's log lines when finished task pods pile up although
``delete_worker_pods = True`` (ERROR: the watcher did not recover), or when the executor keeps
finished pods and recovery cannot be told (WARNING). Since apache/airflow#23521 the watcher
usually restarts cleanly and the line is noise (#37369): with finished pods deleted as they should
be, nothing is reported."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import check
from airflow_gke.remediation import excerpt, kubectl, workload_resource
from airflow_gke.views import Context, Pod, human_age, parse_time


_GONE = re.compile(r"\(410\)\s*Reason:\s*(?:Expired|Gone)|too old resource version", re.I)
_WATCHER = re.compile(r"KubernetesJobWatcher|kubernetes_executor|watcher", re.I)
_FAILING = re.compile(r"Unknown error in KubernetesJobWatcher", re.I)
STUCK_AFTER_S = 300   # the executor deletes a finished pod within seconds when its watcher is alive


@check(id="k8s-watcher-410-gone", title="The KubernetesExecutor watcher keeps following task pods",
       severity="error", category="executor", needs=("pods",), uses=("logs", "configmaps", "deployments"))
def run(ctx: Context) -> Result:
    """Scheduler logs `too old resource version` (HTTP 410) from the KubernetesJobWatcher."""
    if not ctx.kubernetes_executor:
        return skipped("the executor is not KubernetesExecutor or CeleryKubernetesExecutor")
    findings = []
    for pod in ctx.pods_by_component.get("scheduler", []):
        if pod.is_task_pod:
            continue
        hits = _hits(ctx, pod)
        if not hits:
            continue
        stuck = _finished_task_pods(ctx)
        if stuck or not _deletes_pods(ctx):
            findings.append(_finding(ctx, pod, hits, stuck))
    return from_findings(findings) if findings else passed()


def _hits(ctx: Context, pod: Pod) -> list[tuple[str, str, str]]:
    """(container, which log, line) of the 410 lines, with the watcher's own failure line."""
    out = []
    for c in pod.containers:
        name = str(c.get("name") or "")
        lines = ctx.log_history(pod, name)
        for i, (which, ln) in enumerate(lines):
            if _GONE.search(ln):
                window = " ".join(x for _w, x in lines[max(0, i - 15): i + 1])
                if _WATCHER.search(window):
                    out.append((name, which, ln))
            elif _FAILING.search(ln):
                out.append((name, which, ln))
    return out


def _deletes_pods(ctx: Context) -> bool:
    v = ctx.config("scheduler").get("kubernetes_executor", "delete_worker_pods")
    return str(v or "True").lower() != "false"


def _finished_task_pods(ctx: Context) -> list[Pod]:
    """Task pods that finished more than STUCK_AFTER_S ago and are still there although the executor
    deletes finished pods (none when it keeps them: then they prove nothing)."""
    if not _deletes_pods(ctx):
        return []
    out = []
    for p in ctx.task_pods:
        if p.phase not in ("Succeeded", "Failed"):
            continue
        ends = [parse_time(cs.state[1].get("finishedAt")) for cs in p.container_statuses if cs.state[0] == "terminated"]
        age = ctx.age(max((t for t in ends if t is not None), default=None))
        if age is not None and age.total_seconds() > STUCK_AFTER_S:
            out.append(p)
    return out


def _finding(ctx: Context, pod: Pod, hits: list[tuple[str, str, str]], stuck: list[Pod]) -> Finding:
    container = hits[0][0]
    gone = [h for h in hits if _GONE.search(h[2])]
    evidence = [f"{which} of {pod.name}/{c}: {excerpt(ln, _GONE.search(ln) or _FAILING.search(ln))}"
                for c, which, ln in (gone[-1:] + [h for h in hits if h not in gone][-1:])]
    if len(gone) > 1:
        evidence.append(f"{len(gone)} `too old resource version` lines in the collected log of {pod.name}/{container}")
    if stuck:
        oldest = sorted(stuck, key=lambda p: p.created or ctx.now)[:3]
        evidence.append(f"{len(stuck)} finished task pod(s) still present although delete_worker_pods = True "
                        f"(the watcher that would have deleted them is gone), oldest: "
                        + ", ".join(f"{p.name} ({p.phase}, {human_age(ctx.age(p.created))} old)" for p in oldest))
    else:
        evidence.append("delete_worker_pods = False: finished task pods are kept either way, so whether the watcher "
                        "recovered cannot be told from the pods; `Executor parallelism limit reached` in the "
                        "scheduler log, or tasks queued while their pods finished, say it did not")
    severity = "error" if stuck else "warning"
    workload = workload_resource(ctx, pod)
    restart = kubectl(ctx, "rollout", "restart", f"{workload.kind.lower()}/{workload.name}")
    return Finding(
        title=f"The scheduler's KubernetesJobWatcher died on an expired watch (HTTP 410): task pods are no longer "
              f"followed",
        message=(f"The scheduler {pod.name} logs `too old resource version` from the KubernetesExecutor's pod "
                 "watcher. In the affected versions of the cncf.kubernetes provider the watcher does not recover: "
                 "the executor no longer learns that task pods finished, so tasks stay queued or running, finished "
                 "pods are not deleted and executor slots stay taken until the scheduler restarts."),
        resource=workload,
        evidence=evidence,
        severity=severity,
        remediation=Remediation(
            summary=("Restart the scheduler now to start a new watch (running tasks are re-adopted from their pods); "
                     "then upgrade apache-airflow-providers-cncf-kubernetes (or the Airflow image) to a release whose "
                     "watcher recovers from HTTP 410, so it does not come back."),
            commands=["# restarts the scheduler pods (a new watch starts; queued tasks wait a minute):", restart]),
    )
