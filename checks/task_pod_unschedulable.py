"""KubernetesExecutor task pods Pending without a node for longer than
``[kubernetes_executor] worker_pods_pending_timeout`` (default 300 s), with the scheduler's
``FailedScheduling`` and the cluster autoscaler's ``NotTriggerScaleUp`` events saying why:
not enough CPU or memory, a taint the pod does not tolerate, a node selector no node matches,
a node pool at its maximum size, a quota."""
from __future__ import annotations

import re
from datetime import timedelta

from airflow_gke.views import Context, DataUnavailable, Pod, as_dict, as_list, human_age
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed
from airflow_gke.registry import check
from airflow_gke.remediation import cluster_name, gke_flags, helm_upgrade, k8s_resource, ns, project, q, quote_event

from ._runtime import memory_text, quantity

DEFAULT_TIMEOUT = 300

_INSUFFICIENT = re.compile(r"Insufficient ([\w./-]+)")
_TAINT = re.compile(r"untolerated taint(?:\(s\))?[: ]*\{?([^}]*)\}?|had taints? \{([^}]*)\}")
_SELECTOR = re.compile(r"didn't match Pod's node affinity/selector|node\(s\) didn't match node selector")
_PVC = re.compile(r"(?i)unbound immediate PersistentVolumeClaims|persistentvolumeclaim \"[^\"]+\" not found")
_ZONE = re.compile(r"(?i)volume node affinity conflict")
_MAX = re.compile(r"(?i)max node group size reached")
_QUOTA = re.compile(r"(?i)(quota|QUOTA_EXCEEDED|exceeded quota)")
_TOO_MANY = re.compile(r"Too many pods")


@check(id="task-pod-unschedulable", title="KubernetesExecutor task pods get a node within the pending timeout",
       severity="error", category="executor", needs=("pods", "events", "configmaps"), uses=("nodes", "cluster"))
def run(ctx: Context) -> Result:
    """Task pods Pending past worker_pods_pending_timeout with FailedScheduling/NotTriggerScaleUp events."""
    pending = [p for p in ctx.task_pods if p.phase == "Pending" and not p.node]
    if not pending:
        return passed()
    timeout, where = _timeout(ctx)
    findings = []
    for p in pending:
        age = ctx.age(p.created)
        if age is None or age < timedelta(seconds=timeout):
            continue
        findings.append(_finding(ctx, p, age, timeout, where))
    return from_findings(findings)


def _timeout(ctx: Context) -> tuple[int, str]:
    v = ctx.config("scheduler").lookup("kubernetes_executor", "worker_pods_pending_timeout")
    if v is not None and v.value is not None:
        try:
            return int(float(v.value.strip().strip("'\""))), f"{v.source} = {v.value}"
        except ValueError:
            pass
    return DEFAULT_TIMEOUT, f"default {DEFAULT_TIMEOUT}"


def _requests(pod: Pod) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in pod.containers:
        for k, v in as_dict(as_dict(c.get("resources")).get("requests")).items():
            n = quantity(v)
            if n is not None:
                out[k] = out.get(k, 0) + n
    for c in pod.init_containers:   # init containers run one at a time: the pod needs the largest
        for k, v in as_dict(as_dict(c.get("resources")).get("requests")).items():
            n = quantity(v)
            if n is not None and n > out.get(k, 0):
                out[k] = n
    return out


def _largest_node(ctx: Context) -> tuple[str, dict[str, float]] | None:
    if not ctx.has("nodes"):
        return None
    best = None
    for n in ctx.nodes.values():
        alloc = {k: quantity(v) or 0 for k, v in as_dict(n.status.get("allocatable")).items()}
        if best is None or alloc.get("memory", 0) > best[1].get("memory", 0):
            best = (n.name, alloc)
    return best


def _finding(ctx: Context, pod: Pod, age, timeout: int, where: str) -> Finding:
    cond = pod.condition("PodScheduled")
    sched = ctx.events_for("Pod", pod.name, "FailedScheduling")
    scale = [e for e in ctx.events_for("Pod", pod.name)
             if e.get("reason") in ("NotTriggerScaleUp", "FailedScaleUp", "TriggeredScaleUp")]
    texts = [str(cond.get("message") or "")] + [str(e.get("message") or "") for e in sched + scale]
    blob = "\n".join(texts)
    dag, task = pod.labels.get("dag_id"), pod.labels.get("task_id")
    evidence = [f"Pod {pod.name}" + (f" (dag {dag}, task {task})" if dag else "") + f": phase Pending for "
                f"{human_age(age)}, no node; [kubernetes_executor] worker_pods_pending_timeout {timeout}s ({where})"]
    if cond.get("status") == "False":
        evidence.append(f"condition PodScheduled=False, reason {cond.get('reason')}: {str(cond.get('message', '')).strip()}")
    for e in (sched[-1:] + scale[-2:]):
        evidence.append(quote_event(e))
    req = _requests(pod)
    tol = [_tol_text(t) for t in as_list(pod.spec.get("tolerations"))
           if not str(as_dict(t).get("key", "")).startswith("node.kubernetes.io/")]
    evidence.append(f"pod requests: cpu {req.get('cpu', 0):g}, memory {memory_text(req.get('memory'))}"
                    + (f"; nodeSelector {as_dict(pod.spec.get('nodeSelector'))}" if pod.spec.get("nodeSelector") else "")
                    + (f"; tolerations {tol}" if tol else ""))
    largest = _largest_node(ctx)
    too_big = []
    if largest:
        name, alloc = largest
        for res in ("cpu", "memory"):
            if req.get(res, 0) > alloc.get(res, float("inf")):
                too_big.append(res)
        evidence.append(f"largest node {name} allocatable: cpu {alloc.get('cpu', 0):g}, memory "
                        f"{memory_text(alloc.get('memory'))}")
    pools = _pools(ctx, pod)
    for pl in pools:
        a = as_dict(pl.raw.get("autoscaling"))
        evidence.append(f"node pool {pl.name}: machine {pl.config.get('machineType')}, autoscaling "
                        + (f"on, {a.get('minNodeCount', 0)}-{a.get('maxNodeCount')} nodes per zone" if a.get("enabled")
                           else "off"))
    causes, caused_by = _causes(ctx, pod, blob, too_big)
    if causes:
        evidence.append("why: " + "; ".join(text for _k, text in causes))
    summary, commands = _fix(ctx, pod, [k for k, _t in causes], pools, too_big, blob)
    why = causes[0][1] if causes else "no node fits it"
    return Finding(
        title=f"Task pod {pod.name} Pending {human_age(age)} without a node: {why}",
        message=(f"KubernetesExecutor task pod {pod.name}" + (f" (dag {dag}, task {task})" if dag else "")
                 + f" has waited {human_age(age)} for a node, past the {timeout}s worker_pods_pending_timeout after "
                 "which the scheduler gives up and fails the task (older Airflow versions leave it queued). "
                 + ("Why: " + "; ".join(t for _k, t in causes) + "." if causes else "")),
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        caused_by=caused_by,
    )


def _tol_text(t) -> str:
    t = as_dict(t)
    return f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect', '')}"


def _pools(ctx: Context, pod: Pod):
    try:
        return ctx.pools_of([pod]) if ctx.has("cluster") else []
    except DataUnavailable:
        return []


def _causes(ctx: Context, pod: Pod, blob: str, too_big: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    out: list[tuple[str, str]] = []
    caused_by: list[str] = []
    short = sorted({x.rstrip(".,;") for x in _INSUFFICIENT.findall(blob)})
    if too_big:
        out.append(("too-big", f"it requests more {' and '.join(too_big)} than any node can allocate"))
    elif short:
        out.append(("resources", f"not enough free {', '.join(short)} on the nodes"))
    taints = [t for pair in _TAINT.findall(blob) for t in pair if t]
    if taints:
        out.append(("taint", f"nodes carry taint(s) the pod does not tolerate ({'; '.join(sorted(set(taints)))})"))
    if _SELECTOR.search(blob):
        out.append(("selector", "its node selector/affinity matches no node"))
    if _MAX.search(blob):
        out.append(("max-size", "the cluster autoscaler cannot add nodes: the node group is at its maximum size"))
    if _QUOTA.search(blob):
        out.append(("quota", "a Compute Engine quota blocks the scale-up"))
    if _TOO_MANY.search(blob):
        out.append(("pods", "the nodes are at their pod limit"))
    if _PVC.search(blob):
        out.append(("pvc", "a PersistentVolumeClaim it mounts is not bound"))
        for claim in pod.claim_names:
            for chk in ("pvc-access-mode-unsupported", "pvc-storageclass-missing"):
                caused_by.append(finding_id(chk, k8s_resource(ctx, "PersistentVolumeClaim", claim)))
    if _ZONE.search(blob):
        out.append(("zone", "its volume is in a zone with no schedulable node"))
        for claim in pod.claim_names:
            caused_by.append(finding_id("pv-zone-affinity-conflict", k8s_resource(ctx, "PersistentVolumeClaim", claim)))
    return out, caused_by


def _fix(ctx: Context, pod: Pod, keys: list[str], pools, too_big: list[str], blob: str) -> tuple[str, list[str]]:
    n = q(ns(ctx))
    cmds = [f"kubectl describe pod {q(pod.name)} --namespace {n}"]
    parts = []
    pool = pools[0].name if len(pools) == 1 else "POOL"
    if "too-big" in keys:
        parts.append("lower the task's requests (workers.resources, or its executor_config pod_override) or run it "
                     "on a node pool with larger machines")
        cmds.append(f"gcloud container node-pools create airflow-tasks-highmem --cluster {q(cluster_name(ctx))} "
                    f"{gke_flags(ctx)} --machine-type e2-highmem-8 --enable-autoscaling --min-nodes 0 --max-nodes 3")
    if "resources" in keys or "max-size" in keys:
        cur = 0
        for pl in pools:
            cur = max(cur, int(as_dict(pl.raw.get("autoscaling")).get("maxNodeCount") or 0))
        parts.append("let the node pool grow (enable autoscaling or raise its maximum), or lower the task requests")
        cmds.append(f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} --enable-autoscaling "
                    f"--node-pool {q(pool)} --min-nodes 0 --max-nodes {max(2 * cur, 6)}")
    if "taint" in keys:
        m = re.search(r"([\w./-]+): ?([\w.-]*)", " ".join(_TAINT.findall(blob)[0]) if _TAINT.findall(blob) else "")
        tk, tv = (m.group(1), m.group(2)) if m else ("TAINT_KEY", "TAINT_VALUE")
        parts.append("add a toleration for the taint to the pod template (workers.tolerations), or schedule the "
                     "tasks on an untainted pool")
        cmds.append(helm_upgrade(ctx, f"--set workers.tolerations[0].key={q(tk)}",
                                 "--set workers.tolerations[0].operator=Equal",
                                 f"--set workers.tolerations[0].value={q(tv)}",
                                 "--set workers.tolerations[0].effect=NoSchedule"))
    if "selector" in keys:
        parts.append("make the pod template's nodeSelector/affinity name labels that existing nodes carry "
                     "(cloud.google.com/gke-nodepool=<pool>)")
        cmds.append("kubectl get nodes --label-columns cloud.google.com/gke-nodepool")
    if "quota" in keys:
        region = (ctx.target.location or "REGION")
        region = region.rsplit("-", 1)[0] if region.count("-") == 2 else region
        parts.append("raise the Compute Engine quota (CPUs, instances or disks) that blocks the scale-up")
        cmds.append(f"gcloud compute regions describe {q(region)} --project {q(project(ctx))} "
                    "--format='table(quotas.metric,quotas.limit,quotas.usage)'")
    if "pvc" in keys or "zone" in keys:
        parts.append("fix the volume the pod mounts (see the linked PersistentVolumeClaim finding)")
    if "pods" in keys:
        parts.append("add nodes or raise the pool's max pods per node")
    if not parts:
        parts.append("read the FailedScheduling message and make the requests, tolerations and node selector match "
                     "a node the autoscaler can add")
    parts.append("tune [kubernetes_executor] worker_pods_pending_timeout only if nodes legitimately take longer to "
                 "appear (node auto-provisioning, GPUs)")
    return "To schedule the task pods: " + "; ".join(parts) + ".", cmds
