"""The executor's health floor (KubernetesExecutor, CeleryKubernetesExecutor): task pods give their
executor slot back when their task ends. Two signals that tasks are blocked, whatever the cause:

* task pods ``Running`` but not Ready whose ``base`` container has terminated: a sidecar that never
  exits keeps the pod, and its slot of ``[core] parallelism``, alive;
* finished task pods that outlive ``delete_worker_pods = True`` far beyond the moment the executor
  deletes them (it does within seconds of seeing them finish): the executor is not processing the
  completions, and the tasks stay "running" in its slots.

Each is reported with counts, the oldest examples and the slots they hold against ``parallelism``;
a specific finding that explains it (the scheduler may not delete pods) takes it as a symptom."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from airflow_gke.views import Context, DataUnavailable, Pod, human_age, parse_time
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import k8s_resource, ns, q, release
from ._floor import clip, readable

SIDECAR_GRACE = timedelta(minutes=10)    # base ended, the pod still Running: a sidecar holds it
LINGER = timedelta(minutes=15)           # the executor deletes a finished pod within seconds of seeing it
EXAMPLES = 3
SCHEDULER_TELLING = re.compile(r"(?i)open slots|parallelism limit|too old resource version|KubernetesJobWatcher|"
                               r"Error while health checking kube watcher|cannot delete resource \"pods\"")


@check(id="executor-slots-blocked", title="KubernetesExecutor task pods give their slot back when their task ends",
       severity="error", category=Category.EXECUTOR, needs=("pods", "configmaps"), uses=("logs", "deployments"),
       floor=True)
def run(ctx: Context) -> Result:
    """Task pods keep executor slots after their task ended: a sidecar keeps them Running, or finished pods are never deleted."""
    if not ctx.kubernetes_executor:
        return skipped(f"the executor is {ctx.executor or 'unknown'}, not KubernetesExecutor")
    pods = ctx.task_pods
    if not pods:
        return passed()
    cfg = ctx.config("scheduler")
    parallelism = _int(cfg.get("core", "parallelism"), 32)
    delete = cfg.getboolean("kubernetes_executor", "delete_worker_pods", True)
    delete_failed = cfg.getboolean("kubernetes_executor", "delete_worker_pods_on_failure", False)
    active = [p for p in pods if p.phase in ("Pending", "Running") and not p.metadata.get("deletionTimestamp")]
    held: list[tuple[Pod, datetime]] = []
    for p in active:
        end = _base_ended(p)
        if end is not None and p.phase == "Running" and ctx.age(end) is not None and ctx.age(end) >= SIDECAR_GRACE:
            held.append((p, end))
    lingering: list[tuple[Pod, datetime]] = []
    if delete:
        for p in pods:
            if p.phase == "Succeeded" or (p.phase == "Failed" and delete_failed):
                end = _finished(p)
                if end is not None and ctx.age(end) is not None and ctx.age(end) >= LINGER:
                    lingering.append((p, end))
    findings = []
    slots = f"{len(active)} of [core] parallelism {parallelism} slots in use by running task pods"
    if held:
        findings.append(_sidecar(ctx, held, len(active), parallelism, slots))
    if lingering:
        findings.append(_lingering(ctx, lingering, len(active), parallelism, slots, delete_failed))
    return from_findings(findings)


def _int(v, default: int) -> int:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return default


def _base(p: Pod):
    for cs in p.container_statuses:
        if cs.name == "base":
            return cs
    return p.container_statuses[0] if p.container_statuses else None


def _base_ended(p: Pod) -> datetime | None:
    """When the pod's ``base`` container terminated while another container still runs."""
    cs = _base(p)
    if cs is None or cs.state[0] != "terminated":
        return None
    if not any(o.state[0] == "running" for o in p.container_statuses if o is not cs):
        return None
    t = cs.state[1].get("finishedAt")
    return parse_time(t) if isinstance(t, str) else None


def _finished(p: Pod) -> datetime | None:
    ends = [parse_time(cs.state[1].get("finishedAt")) for cs in p.container_statuses
            if cs.state[0] == "terminated" and isinstance(cs.state[1].get("finishedAt"), str)]
    ends = [e for e in ends if e is not None]
    return max(ends) if ends else None


def _task(p: Pod) -> str:
    a = p.annotations
    if a.get("dag_id") and a.get("task_id"):
        return f"{a['dag_id']}.{a['task_id']}"
    return p.labels.get("dag_id", "?") + "." + p.labels.get("task_id", "?")


def _sidecar(ctx: Context, held: list[tuple[Pod, datetime]], active: int, parallelism: int, slots: str) -> Finding:
    held.sort(key=lambda t: t[1])
    others: dict[str, int] = {}
    codes: dict[str, int] = {}
    for p, _end in held:
        base = _base(p)
        codes[str(base.state[1].get("exitCode"))] = codes.get(str(base.state[1].get("exitCode")), 0) + 1
        for cs in p.container_statuses:
            if cs is not base and cs.state[0] == "running":
                others[cs.name] = others.get(cs.name, 0) + 1
    ages = f"{human_age(ctx.age(held[-1][1]))}–{human_age(ctx.age(held[0][1]))}" if len(held) > 1 else \
        human_age(ctx.age(held[0][1]))
    sidecars = ", ".join(sorted(others))
    full = active >= parallelism
    evidence = [f"{len(held)} task pods Running, not Ready, container base terminated {ages} ago "
                f"(exit codes: {', '.join(f'{c} x{n}' for c, n in sorted(codes.items()))}); still running: "
                + ", ".join(f"{n} x{c}" for n, c in sorted(others.items())), slots + (": no open slot" if full else "")]
    for p, end in held[:EXAMPLES]:
        base = _base(p)
        evidence.append(f"Pod {p.name} ({_task(p)}): base terminated {human_age(ctx.age(end))} ago (exit code "
                        f"{base.state[1].get('exitCode')}, {base.state[1].get('reason')}), still running: "
                        + ", ".join(cs.name for cs in p.container_statuses if cs is not base and cs.state[0] == "running"))
    n = q(ns(ctx))
    oldest = held[0][0]
    side = next(iter(sorted(others)), "")
    return Finding(
        title=(f"{len(held)} task pods hold their executor slots after their task ended: base terminated {ages} ago, "
               f"{sidecars} still running" + (f" ({active} of {parallelism} slots in use: nothing new runs)"
                                                 if full else "")),
        message=(f"In {len(held)} KubernetesExecutor task pods the task container base has terminated but "
                 f"{sidecars} keeps running, so the pod stays Running and the executor counts the task as running: "
                 f"each holds one of the {parallelism} slots of [core] parallelism"
                 + (", and all are taken: no new task starts." if full else ".")
                 + " A sidecar in the pod template (extraContainers, an injected proxy) must exit with the task: run it "
                   "as a native sidecar (an init container with restartPolicy: Always) or make it stop when base ends."),
        resource=k8s_resource(ctx, "ConfigMap", f"{release(ctx)}-config"),
        evidence=evidence,
        remediation=Remediation(
            f"Find which container keeps the pods alive ({sidecars}) and where it comes from (the pod template, a "
            "mutating webhook), make it end with base, then delete the stuck pods to free their slots (their tasks "
            "already ended: deleting them loses nothing but their logs if remote logging is off).",
            [f"kubectl get pod {q(oldest.name)} --namespace {n} -o jsonpath='{{range .status.containerStatuses[*]}}"
             "{.name}{\"\\t\"}{.state}{\"\\n\"}{end}'",
             f"kubectl logs {q(oldest.name)} --namespace {n} --container {q(side or 'base')}",
             f"kubectl get pods --namespace {n} -l kubernetes_executor=True --field-selector=status.phase=Running"]),
        subjects=[k8s_resource(ctx, "Pod", p.name).ref for p, _ in held],
    )


def _lingering(ctx: Context, lingering: list[tuple[Pod, datetime]], active: int, parallelism: int, slots: str,
               delete_failed: bool) -> Finding:
    lingering.sort(key=lambda t: t[1])
    phases: dict[str, int] = {}
    for p, _ in lingering:
        phases[p.phase] = phases.get(p.phase, 0) + 1
    what = " and ".join(f"{n} {ph}" for ph, n in sorted(phases.items()))
    ages = f"{human_age(ctx.age(lingering[-1][1]))}–{human_age(ctx.age(lingering[0][1]))}"
    taken = active + len(lingering)
    full = taken >= parallelism
    slots = (f"{active} running task pods + {len(lingering)} finished but never processed = {taken} of [core] "
             f"parallelism {parallelism} executor slots" + (": no open slot" if full else ""))
    evidence = [f"{what} task pods finished {ages} ago are still present; [kubernetes_executor] delete_worker_pods = "
                "True" + (", delete_worker_pods_on_failure = True" if delete_failed else ""), slots]
    for p, end in lingering[:EXAMPLES]:
        evidence.append(f"Pod {p.name} ({_task(p)}): {p.phase}, finished {human_age(ctx.age(end))} ago")
    sched_lines = _scheduler_lines(ctx)
    evidence += sched_lines
    rel = release(ctx)
    sa = _scheduler_sa(ctx)
    caused_by = [finding_id("executor-rbac-forbidden", k8s_resource(ctx, "ServiceAccount", sa))] if sa else []
    n = q(ns(ctx))
    return Finding(
        title=(f"{len(lingering)} finished task pods were never deleted although delete_worker_pods=True (oldest "
               f"finished {human_age(ctx.age(lingering[0][1]))} ago"
               + (f"; {active} running + {len(lingering)} never processed = {taken} of {parallelism} slots: nothing "
                  "new runs)" if full else ")") + ": the executor is not processing task completions"),
        message=(f"The KubernetesExecutor deletes a task pod within seconds of seeing it finish; {what} task pods "
                 f"finished {ages} ago are still there, so the executor has not seen them finish. Their tasks stay "
                 f"running in its slots ({slots}) until the scheduler restarts, and new tasks wait for an open slot "
                 "(the scheduler logs 'Executor parallelism limit reached. 0 open slots.'). Known causes: the pod "
                 "watcher died (410 'too old resource version'), or the scheduler may not delete pods."),
        resource=k8s_resource(ctx, "Deployment", f"{rel}-scheduler"),
        evidence=evidence,
        remediation=Remediation(
            "Read the scheduler's log for the watcher (KubernetesJobWatcher) and pod deletion errors; restarting the "
            "scheduler re-adopts the pods and frees the slots (running tasks are adopted, not killed). Then delete the "
            "leftover pods, and upgrade the cncf.kubernetes provider if the watcher keeps dying.",
            [f"kubectl logs deployment/{q(rel + '-scheduler')} --namespace {n} --container scheduler | grep -E "
             "'open slots|KubernetesJobWatcher|resource version'",
             f"kubectl auth can-i delete pods --namespace {n} --as system:serviceaccount:{ns(ctx)}:{sa or rel + '-scheduler'}",
             f"kubectl rollout restart deployment/{q(rel + '-scheduler')} --namespace {n}",
             f"kubectl delete pods --namespace {n} -l kubernetes_executor=True --field-selector=status.phase=Succeeded"]),
        caused_by=caused_by,
        subjects=[k8s_resource(ctx, "Pod", p.name).ref for p, _ in lingering],
    )


def _scheduler_pods(ctx: Context) -> list[Pod]:
    try:
        return [p for p in ctx.pods_by_component.get("scheduler", []) if not p.is_task_pod]
    except DataUnavailable:
        return []


def _scheduler_sa(ctx: Context) -> str | None:
    for p in _scheduler_pods(ctx):
        return p.service_account
    return None


def _scheduler_lines(ctx: Context) -> list[str]:
    """What the scheduler's collected log says about slots and the pod watcher (the last few lines)."""
    out: list[str] = []
    for p in _scheduler_pods(ctx):
        for prev, tag in ((True, "previous log"), (False, "log")):
            lines = [ln for ln in ctx.log_lines(p.name, "scheduler", previous=prev) if SCHEDULER_TELLING.search(ln)]
            out += [f"{tag} scheduler ({p.name}): {clip(readable(ln), 300)}" for ln in lines[-3:]]
    return list(dict.fromkeys(out))[-4:]
