"""Pods that run tasks (KubernetesExecutor task pods, Celery workers, the scheduler under
LocalExecutor) placed on Spot or preemptible nodes, or annotated
``cluster-autoscaler.kubernetes.io/safe-to-evict: "true"``: a preemption or a scale-down sends
them SIGTERM mid-task. SIGTERM lines in their logs and eviction events are quoted when present.

Extended tier: Spot capacity for idempotent, retried tasks is a legitimate cost choice, and the
doctor cannot know which tasks are safe to interrupt; the finding is a prompt to confirm it."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable, NodePool, Pod, owner_of
from airflow_gke.model import Finding, Remediation, Result, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (clip, cluster_name, gke_flags, grep, helm_upgrade, k8s_resource,
                                     node_pool_resource, ns, q, quote_event)

from ._runtime import component_pods

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SPOT_LABELS = ("cloud.google.com/gke-spot", "cloud.google.com/gke-preemptible")
_SIGTERM = re.compile(r"(?i)(received sigterm|signal 15|sigterm)")
_EVICT_EVENT = re.compile(r"(?i)(scale.?down|preempt|node shutdown|imminent node shutdown|evict)")


@check(id="evictable-workers", title="Pods that run tasks are not on Spot nodes or marked safe to evict",
       severity="warning", category=Category.RUNTIME, needs=("pods", "configmaps"),
       uses=("nodes", "cluster", "events", "logs"), extended=True)
def run(ctx: Context) -> Result:
    """Task pods / Celery workers on Spot or preemptible pools, or annotated safe-to-evict: "true"."""
    runners = _runners(ctx)
    if not runners:
        return skipped("no task pod or Celery worker at capture time: nothing runs tasks to evict")
    findings = []
    by_pool: dict[str, list[Pod]] = {}
    spot_of_node: dict[str | None, str | None] = {}   # _spot_pool depends on the pod's node only
    for p in runners:
        node = p.node
        if node not in spot_of_node:
            spot_of_node[node] = _spot_pool(ctx, p)
        pool = spot_of_node[node]
        if pool:
            by_pool.setdefault(pool, []).append(p)
    for pool, pods in sorted(by_pool.items()):
        findings.append(_spot_finding(ctx, pool, pods))
    by_owner: dict[tuple[str, str], list[Pod]] = {}
    for p in runners:
        if str(p.annotations.get(SAFE_TO_EVICT, "")).lower() == "true":
            by_owner.setdefault(_owner(ctx, p), []).append(p)
    for owner, pods in sorted(by_owner.items()):
        findings.append(_evict_finding(ctx, owner, pods))
    return from_findings(findings)


def _runners(ctx: Context) -> list[Pod]:
    out = list(ctx.task_pods)
    seen = {id(p) for p in out}
    local = "LocalExecutor" in (ctx.executor or "")
    for p in component_pods(ctx):
        if id(p) in seen:
            continue
        if p.component == "worker" or (local and p.component == "scheduler"):
            out.append(p)
    return out


def _pool_obj(ctx: Context, name: str | None) -> NodePool | None:
    if not name or not ctx.has("cluster"):
        return None
    try:
        return ctx.node_pools.get(name)
    except DataUnavailable:
        return None


def _spot_pool(ctx: Context, pod: Pod) -> str | None:
    """The Spot/preemptible node pool the pod runs on (by node labels, or the pool's config)."""
    if not pod.node:
        return None
    node = ctx.nodes.get(pod.node) if ctx.has("nodes") else None
    labels = node.labels if node is not None else {}
    pool = labels.get("cloud.google.com/gke-nodepool")
    if any(str(labels.get(k, "")).lower() == "true" for k in SPOT_LABELS):
        return pool or pod.node
    np = _pool_obj(ctx, pool)
    if np is not None and (np.config.get("spot") or np.config.get("preemptible")):
        return np.name
    return None


def _owner(ctx: Context, pod: Pod) -> tuple[str, str]:
    if pod.is_task_pod:
        return "ConfigMap", f"{ctx.release or 'RELEASE'}-config"   # the pod template
    c = owner_of(pod)
    return c if c else ("Pod", pod.name)


def _sigterm(ctx: Context, pods: list[Pod]) -> list[str]:
    """Evidence that running tasks were interrupted: SIGTERM log lines, node-shutdown or eviction
    statuses and events."""
    out = []
    for p in pods:
        why = f"{p.status.get('reason') or ''} {p.status.get('message') or ''}".strip()
        if why and _EVICT_EVENT.search(why):
            out.append(f"Pod {p.name} status: {why}")
        for c in p.containers:
            hits = grep(ctx.log_history(p, str(c.get("name"))), _SIGTERM)
            best = [h for h in hits if "received sigterm" in h[1].lower()] or hits
            for which, ln in best[:1]:
                out.append(f"{which} {p.name}/{c.get('name')}: {clip(ln)}")
        if ctx.has("events"):
            for e in ctx.events_for("Pod", p.name):
                if _EVICT_EVENT.search(f"{e.get('reason', '')} {e.get('message', '')}"):
                    out.append(quote_event(e))
                    break
        if len(out) >= 4:
            break
    return out


def _what(pods: list[Pod]) -> str:
    tasks = sum(1 for p in pods if p.is_task_pod)
    workers = sum(1 for p in pods if p.component == "worker" and not p.is_task_pod)
    sched = sum(1 for p in pods if p.component == "scheduler")
    parts = []
    if tasks:
        parts.append(f"{tasks} task pod(s)")
    if workers:
        parts.append(f"{workers} Celery worker(s)")
    if sched:
        parts.append("the scheduler (LocalExecutor runs tasks inside it)")
    return " and ".join(parts)


def _ondemand_pool(ctx: Context, spot: str) -> str | None:
    if not ctx.has("cluster"):
        return None
    try:
        for np in ctx.node_pools.values():
            if np.name != spot and not np.config.get("spot") and not np.config.get("preemptible"):
                return np.name
    except DataUnavailable:
        return None
    return None


def _spot_finding(ctx: Context, pool: str, pods: list[Pod]) -> Finding:
    np = _pool_obj(ctx, pool)
    kind = "Spot" if np is None or np.config.get("spot") or not np.config.get("preemptible") else "preemptible"
    evidence = []
    if np is not None:
        evidence.append(f"node pool {pool}: config.spot {bool(np.config.get('spot'))}, config.preemptible "
                        f"{bool(np.config.get('preemptible'))}, machine {np.config.get('machineType')}")
    for p in pods[:5]:
        node = ctx.nodes.get(p.node) if ctx.has("nodes") and p.node else None
        lab = {k: node.labels[k] for k in SPOT_LABELS if node is not None and k in node.labels}
        evidence.append(f"Pod {p.name} ({'task pod' if p.is_task_pod else p.component}) on node {p.node}"
                        + (f" labelled {', '.join(f'{k}={v}' for k, v in lab.items())}" if lab else ""))
    sig = _sigterm(ctx, pods)
    evidence += sig
    what = _what(pods)
    other = _ondemand_pool(ctx, pool)
    cmds = []
    if other:
        cmds.append(helm_upgrade(ctx, f"--set-string workers.nodeSelector.cloud\\.google\\.com/gke-nodepool={q(other)}"))
    else:
        cmds.append(f"gcloud container node-pools create airflow-ondemand --cluster {q(cluster_name(ctx))} "
                    f"{gke_flags(ctx)} --machine-type e2-standard-8 --enable-autoscaling --min-nodes 0 --max-nodes 3")
        cmds.append(helm_upgrade(ctx, "--set-string workers.nodeSelector.cloud\\.google\\.com/gke-nodepool=airflow-ondemand"))
    return Finding(
        title=f"{what[0].upper() + what[1:]} run on {kind} node pool {pool}",
        message=(f"{what[0].upper() + what[1:]} run on {kind} VMs of node pool {pool}, which Compute Engine reclaims "
                 "with about 30 seconds' notice: the running tasks get SIGTERM and fail (or burn a retry)."
                 + (" The logs and events show it happening." if sig else
                    " Keep Spot capacity for idempotent tasks with retries, and long or non-retryable tasks on "
                    "on-demand nodes.")),
        resource=node_pool_resource(ctx, pool),
        evidence=evidence,
        remediation=Remediation(
            f"Run long or non-idempotent tasks on an on-demand pool ({other or 'create one'}) through the pod "
            "template's nodeSelector (per task: executor_config pod_override), and give the Spot tasks retries.", cmds),
    )


def _evict_finding(ctx: Context, owner: tuple[str, str], pods: list[Pod]) -> Finding:
    kind, name = owner
    evidence = [f"Pod {p.name} ({'task pod' if p.is_task_pod else p.component}): annotation {SAFE_TO_EVICT}: "
                f"\"{p.annotations.get(SAFE_TO_EVICT)}\"" for p in pods[:5]]
    sig = _sigterm(ctx, pods)
    evidence += sig
    what = _what(pods)
    comp = "scheduler" if all(p.component == "scheduler" for p in pods) else "workers"
    sets = [f"--set {comp}.safeToEvict=false"]
    if comp == "workers" and any(p.component == "worker" and not p.is_task_pod for p in pods):
        sets.append("--set workers.terminationGracePeriodSeconds=3600")
    return Finding(
        title=f"{what[0].upper() + what[1:]} are marked safe to evict",
        message=(f"{what[0].upper() + what[1:]} carry {SAFE_TO_EVICT}: \"true\", so the cluster autoscaler drains them "
                 "whenever it scales a node down; running tasks receive SIGTERM and are lost."
                 + (" The logs and events show it happening." if sig else "")),
        resource=k8s_resource(ctx, kind, name) if kind != "Pod" else k8s_resource(ctx, "Pod", name),
        evidence=evidence,
        remediation=Remediation(
            "Mark the pods that run tasks not safe to evict (the chart's safeToEvict value), and give Celery workers "
            "a termination grace period long enough to finish their tasks.",
            [helm_upgrade(ctx, *sets),
             f"kubectl get pods --namespace {q(ns(ctx))} -o custom-columns=NAME:.metadata.name,EVICT:"
             ".metadata.annotations.cluster-autoscaler\\.kubernetes\\.io/safe-to-evict"]),
    )

