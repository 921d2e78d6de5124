"""Task containers killed for exceeding their memory limit: KubernetesExecutor task pods whose
``base`` container terminated ``OOMKilled`` (exit 137), and Celery worker containers whose last
instance was OOMKilled. Airflow itself only reports such tasks as failed or "killed externally"."""
from __future__ import annotations

from datetime import timedelta

from airflow_gke.views import as_dict, container_spec, ContainerStatus, Context, dig, human_age, Pod
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (clip, doubled_memory, helm_upgrade, k8s_resource, ns, q, quote_event,
                                     release_resource, resources_text, telling_lines)

from ._autopilot import memory_lowered
from ._runtime import finished_at, task_like_pods

WORKER_WINDOW = timedelta(days=7)   # a Celery worker's lastState stays until its next restart


@check(id="task-pod-oomkilled", title="Task containers stay within their memory limit", severity="error",
       category=Category.EXECUTOR, needs=("pods", "configmaps"), uses=("events", "logs", "cluster"))
def run(ctx: Context) -> Result:
    """Task containers OOMKilled (exit 137), which Airflow reports only as failed / killed externally."""
    pods = task_like_pods(ctx)
    if not pods:
        return skipped("no task pod or Celery worker at capture time")
    # Task pods of one task (its retries, its daily runs) make one finding on the most recent pod:
    # failed pods accumulate when delete_worker_pods_on_failure is False.
    groups: dict[tuple, list[tuple[Pod, ContainerStatus, dict]]] = {}
    for pod in pods:
        if not _may_be_oom(pod):
            continue
        for cs in pod.container_statuses:
            term = _oom(ctx, pod, cs)
            if term is not None:
                key = (pod.labels.get("dag_id"), pod.labels.get("task_id")) if pod.is_task_pod and \
                    pod.labels.get("dag_id") else ("pod", pod.name)
                groups.setdefault(key, []).append((pod, cs, term))
                break
    findings = []
    for hits in groups.values():
        hits.sort(key=lambda h: str(h[2].get("finishedAt") or ""))
        pod, cs, term = hits[-1]
        findings.append(_finding(ctx, pod, cs, term, [h[0] for h in hits[:-1]]))
    return from_findings(findings)


def _running_retry(ctx: Context, pod: Pod, container: str, limit) -> tuple[Pod, str | None] | None:
    """A later try of the same task (same dag, task and run) that is running or starting now with the
    memory limit that was exceeded."""
    key = (pod.labels.get("dag_id"), pod.labels.get("task_id"), pod.labels.get("run_id"))
    try:
        mine = int(pod.labels.get("try_number") or 0)
    except ValueError:
        mine = 0
    for other in ctx.derive(("task-pods-by-run",), _by_run, ctx).get(key, ()):
        if other is pod:
            continue
        if other.phase not in ("Running", "Pending"):
            continue
        try:
            t = int(other.labels.get("try_number") or 0)
        except ValueError:
            t = 0
        if t <= mine:
            continue
        other_limit = as_dict(as_dict(container_spec(other, container).get("resources")).get("limits")).get("memory")
        if other_limit == limit:
            return other, other_limit
    return None


def _by_run(ctx: Context) -> dict[tuple, list[Pod]]:
    """Task pods by (dag_id, task_id, run_id): the tries of one task run (one walk, not one per OOMKilled pod)."""
    out: dict[tuple, list[Pod]] = {}
    for p in ctx.task_pods:
        out.setdefault((p.labels.get("dag_id"), p.labels.get("task_id"), p.labels.get("run_id")), []).append(p)
    return out


def _may_be_oom(pod: Pod) -> bool:
    """Whether a container status names OOMKilled in ``state.terminated`` or ``lastState.terminated``
    (read from the dicts: a cheap filter, a superset of what ``_oom`` accepts)."""
    sts = pod.status.get("containerStatuses")
    if not isinstance(sts, list):
        return False
    for raw in sts:
        if isinstance(raw, dict):
            for k in ("state", "lastState"):
                st = raw.get(k)
                if isinstance(st, dict):
                    t = st.get("terminated")
                    if isinstance(t, dict) and t.get("reason") == "OOMKilled":
                        return True
    return False


def _oom(ctx: Context, pod: Pod, cs: ContainerStatus) -> dict | None:
    state, fields = cs.state
    if state == "terminated" and fields.get("reason") == "OOMKilled":
        return fields
    last = cs.last_terminated
    if last.get("reason") == "OOMKilled":
        end = finished_at(last)
        if pod.is_task_pod or (end is not None and ctx.now - end <= WORKER_WINDOW):
            return last
    return None


def _finding(ctx: Context, pod: Pod, cs: ContainerStatus, term: dict, earlier: list[Pod]) -> Finding:
    spec = container_spec(pod, cs.name)
    limits = as_dict(as_dict(spec.get("resources")).get("limits"))
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    limit = limits.get("memory")
    dag, task = pod.labels.get("dag_id"), pod.labels.get("task_id")
    is_task = pod.is_task_pod
    which = "state" if cs.state[0] == "terminated" else "lastState"
    what = f"task pod {pod.name}" + (f" (dag {dag}, task {task}, try {pod.labels.get('try_number')})" if dag else "") \
        if is_task else f"Celery worker {pod.name}"
    evidence = [f"Pod {pod.name}: container {cs.name} {which}.terminated: reason OOMKilled, exitCode "
                f"{term.get('exitCode')}, finished {human_age(ctx.age(finished_at(term)))} ago"
                + ("" if is_task else f"; restartCount {cs.restarts}"),
                f"{cs.name} resources: {resources_text(spec)}"]
    if earlier:
        evidence.append(f"{len(earlier)} earlier pod(s) of the same task were OOMKilled too: "
                        + ", ".join(p.name for p in earlier[-5:]) + (", ..." if len(earlier) > 5 else ""))
    retry = _running_retry(ctx, pod, cs.name, limit) if is_task and dag else None
    if retry is not None:
        r, r_limit = retry
        evidence.append(f"Pod {r.name} (try {r.labels.get('try_number')}) is {r.phase} now with the same memory limit "
                        f"{r_limit or 'none'}")
    if not limit:
        evidence.append(f"{cs.name} has no memory limit: the node ran out of memory and the kernel killed the "
                        "largest process")
    autopilot_cut = memory_lowered(ctx, pod, cs.name)
    if autopilot_cut:
        evidence.append("Autopilot lowered this container's memory limit at admission (autopilot.gke.io/"
                        "resource-adjustment): see autopilot-resources-adjusted")
    elif ctx.has("cluster") and dig(ctx.cluster, "autopilot", "enabled"):
        evidence.append("the cluster is GKE Autopilot, which sets memory limits equal to requests")
    if ctx.has("events"):
        for e in [e for e in ctx.events_for("Pod", pod.name) if e.get("type") == "Warning"][-2:]:
            evidence.append(quote_event(e))
    for w, ln in telling_lines(ctx.log_history(pod, cs.name), 3):
        evidence.append(f"{w} {cs.name}: {clip(ln)}")
    new = doubled_memory(limit or requests.get("memory"))
    n = q(ns(ctx))
    commands = [helm_upgrade(ctx, f"--set workers.resources.requests.memory={new}",
                             f"--set workers.resources.limits.memory={new}"),
                f"kubectl describe pod {q(pod.name)} --namespace {n}"]
    if is_task:
        summary = (f"Give the task more memory: for every task pod through the chart (workers.resources), or for this "
                   f"task only with executor_config={{'pod_override': k8s.V1Pod(spec=k8s.V1PodSpec(containers=["
                   f"k8s.V1Container(name='base', resources=k8s.V1ResourceRequirements(requests={{'memory': '{new}'}}, "
                   f"limits={{'memory': '{new}'}}))]))}}); or make the task stream its data instead of loading it.")
        message = (f"The base container of {what} used more memory than its limit ({limit or 'none, node memory'}) and "
                   "the kernel killed it (exit 137). Airflow sees only that the pod failed: the task shows as failed "
                   "with an empty or cut log, or 'killed externally'."
                   + (f" A retry (pod {retry[0].name}, try {retry[0].labels.get('try_number')}) is running now with "
                      f"the same limit {retry[1] or '(none)'}: expect it to be killed the same way unless the input "
                      "shrank." if retry is not None else ""))
    else:
        summary = ("Give the Celery workers more memory, or run fewer tasks at once per worker "
                   "([celery] worker_concurrency), so the tasks a worker runs together fit its limit.")
        commands.insert(1, helm_upgrade(ctx, "--set-string config.celery.worker_concurrency=8"))
        message = (f"Container {cs.name} of {what} was killed for exceeding its memory limit "
                   f"({limit or 'none, node memory'}); every task it was running died with it (Airflow reports them as "
                   "failed, 'killed externally', or WorkerLostError).")
    times = f" ({len(earlier) + 1} pods of this task)" if earlier else ""
    return Finding(
        title=f"{what[0].upper() + what[1:]} was OOMKilled (memory limit {limit or 'none'}){times}",
        message=message,
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        group_title=(f"{{n}} task pods were OOMKilled (memory limit {limit or 'none'})" if is_task
                     else f"{{n}} Celery worker pods were OOMKilled (memory limit {limit or 'none'})"),
        group_message=(f"The base containers of {{n}} task pods used more memory than their limit "
                       f"({limit or 'none, node memory'}) and the kernel killed them (exit 137). Airflow sees only that "
                       "the pods failed: the tasks show as failed with an empty or cut log, or 'killed externally'."
                       if is_task else
                       f"{{n}} Celery worker pods were killed for exceeding their memory limit "
                       f"({limit or 'none, node memory'}); every task they were running died with them."),
        caused_by=[finding_id("autopilot-resources-adjusted", release_resource(ctx))] if autopilot_cut else [],
    )
