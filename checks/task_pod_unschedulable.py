"""KubernetesExecutor task pods Pending without a node for longer than
``[kubernetes_executor] worker_pods_pending_timeout`` (default 300 s), with the scheduler's
``FailedScheduling`` and the cluster autoscaler's ``NotTriggerScaleUp`` events saying why:
not enough CPU or memory, a taint the pod does not tolerate, a node selector no node matches,
a node pool at its maximum size, a quota."""
from __future__ import annotations

import re
from datetime import timedelta

from airflow_gke.views import as_dict, as_list, Context, DataUnavailable, human_age, Pod, quantity
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (cluster_name, gke_flags, helm_upgrade, k8s_resource, memory_text, ns, project, q,
                                     quote_event, region, region_resource)

from ._scheduling import Verdict, parse_autoscaler, parse_scheduler

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
       severity="error", category=Category.EXECUTOR, needs=("pods", "events", "configmaps"), uses=("nodes", "cluster"))
def run(ctx: Context) -> Result:
    """Task pods Pending past worker_pods_pending_timeout with FailedScheduling/NotTriggerScaleUp events."""
    pending = [p for p in ctx.task_pods if p.phase == "Pending" and not p.node]
    if not pending:
        return passed()
    timeout, where = _timeout(ctx)
    by_task: dict[tuple, list[Pod]] = {}
    for p in pending:
        age = ctx.age(p.created)
        if age is None or age < timedelta(seconds=timeout):
            continue
        by_task.setdefault(_task_key(p), []).append(p)
    findings = []
    for pods in by_task.values():   # one finding per task: its runs and tries share one cause and one fix
        pods.sort(key=lambda p: (p.created.timestamp() if p.created else 0, p.name))
        findings.append(_finding(ctx, pods, timeout, where))
    return from_findings(findings)


def _task_key(p: Pod) -> tuple:
    dag = p.annotations.get("dag_id") or p.labels.get("dag_id")
    task = p.annotations.get("task_id") or p.labels.get("task_id")
    return ("task", dag, task) if dag and task else ("pod", p.name)


def _try(p: Pod) -> int | None:
    v = p.annotations.get("try_number") or p.labels.get("try_number")
    try:
        return int(v) if v else None
    except ValueError:
        return None


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


def _selected_nodes(ctx: Context, pod: Pod) -> list | None:
    """The nodes the pod's nodeSelector matches (every node without one), None when nodes were not read."""
    if not ctx.has("nodes"):
        return None
    sel = {str(k): str(v) for k, v in as_dict(pod.spec.get("nodeSelector")).items()}
    return [n for n in ctx.nodes.values() if all(n.labels.get(k) == v for k, v in sel.items())]


def _largest(nodes) -> tuple[str, dict[str, float]] | None:
    best = None
    for n in nodes:
        alloc = {k: quantity(v) or 0 for k, v in as_dict(n.status.get("allocatable")).items()}
        if best is None or alloc.get("memory", 0) > best[1].get("memory", 0):
            best = (n.name, alloc)
    return best


def _pool_nodes(ctx: Context, pool: str) -> int:
    return sum(1 for n in ctx.nodes.values() if n.labels.get("cloud.google.com/gke-nodepool") == pool) \
        if ctx.has("nodes") else 0


def _earlier_tries(ctx: Context, pods: list[Pod]) -> list[str]:
    """Pods of earlier tries of the task that no longer exist but left FailedScheduling events: the
    scheduler deleted them after worker_pods_pending_timeout and failed (or retried) the task."""
    live = set(ctx.pods_by_name)
    prefixes = {p.name.rsplit("-", 1)[0] for p in pods if "-" in p.name}
    gone: dict[str, int] = {}
    for e in ctx.items("events"):
        o = as_dict(e.get("involvedObject"))
        name = str(o.get("name") or "")
        if (o.get("kind") == "Pod" and e.get("reason") == "FailedScheduling" and name not in live
                and "-" in name and name.rsplit("-", 1)[0] in prefixes):
            gone[name] = gone.get(name, 0) + 1
    return sorted(gone)


def _finding(ctx: Context, pods: list[Pod], timeout: int, where: str) -> Finding:
    pod = pods[0]
    age = ctx.age(pod.created)
    cond = pod.condition("PodScheduled")
    sched = ctx.events_for("Pod", pod.name, "FailedScheduling")
    scale = [e for e in ctx.events_for("Pod", pod.name)
             if e.get("reason") in ("NotTriggerScaleUp", "FailedScaleUp", "TriggeredScaleUp")]
    texts = [str(cond.get("message") or "")] + [str(e.get("message") or "") for e in sched + scale]
    blob = "\n".join(texts)
    latest = str(sched[-1].get("message") or "") if sched else str(cond.get("message") or "")
    verdict = parse_scheduler(latest)
    scale_reasons = parse_autoscaler(str(scale[-1].get("message") or "")) if scale else ()
    dag, task = pod.annotations.get("dag_id") or pod.labels.get("dag_id"), \
        pod.annotations.get("task_id") or pod.labels.get("task_id")
    who = f"task {dag}.{task}" if dag and task else f"task pod {pod.name}"
    evidence = []
    for p in pods[:5]:
        t = _try(p)
        evidence.append(f"Pod {p.name}" + (f" (dag {dag}, task {task}, run {p.annotations.get('run_id')}"
                                           + (f", try {t}" if t else "") + ")" if dag else "")
                        + f": phase Pending for {human_age(ctx.age(p.created))}, no node")
    if len(pods) > 5:
        evidence.append(f"and {len(pods) - 5} more Pending pod(s) of this task")
    evidence.append(f"[kubernetes_executor] worker_pods_pending_timeout {timeout}s ({where})")
    if cond.get("status") == "False":
        evidence.append(f"condition PodScheduled=False, reason {cond.get('reason')}: {str(cond.get('message', '')).strip()}")
    for e in (sched[-1:] + scale[-2:]):
        evidence.append(quote_event(e))
    if verdict is not None and verdict.reasons:
        evidence.append(f"scheduler, node by node: {verdict.total} node(s): "
                        + "; ".join(f"{r.count} rejected: {r.text}" for r in verdict.reasons))
    req = _requests(pod)
    tol = [_tol_text(t) for t in as_list(pod.spec.get("tolerations"))
           if not str(as_dict(t).get("key", "")).startswith("node.kubernetes.io/")]
    selector = as_dict(pod.spec.get("nodeSelector"))
    evidence.append(f"pod requests: cpu {req.get('cpu', 0):g}, memory {memory_text(req.get('memory'))}"
                    + (f"; nodeSelector {selector}" if selector else "")
                    + (f"; tolerations {tol}" if tol else ""))
    selected = _selected_nodes(ctx, pod)
    matched_pools = sorted({n.labels.get("cloud.google.com/gke-nodepool") for n in selected or []} - {None})
    if selector and selected is not None:
        evidence.append(f"nodeSelector matches {len(selected)} node(s)"
                        + (f" of node pool {', '.join(matched_pools)}" if matched_pools else ""))
    largest = _largest(selected if selected else (ctx.nodes.values() if ctx.has("nodes") else []))
    too_big = []
    if largest:
        name, alloc = largest
        for res in ("cpu", "memory"):
            if req.get(res, 0) > alloc.get(res, float("inf")):
                too_big.append(res)
        evidence.append(f"largest node {name} allocatable: cpu {alloc.get('cpu', 0):g}, memory "
                        f"{memory_text(alloc.get('memory'))}")
    pools = _pools(ctx, pod)
    if matched_pools and selected:
        by_name = {pl.name: pl for pl in pools}
        try:
            every = ctx.node_pools if ctx.has("cluster") else {}
        except DataUnavailable:
            every = {}
        pools = [by_name.get(n) or every.get(n) for n in matched_pools if (by_name.get(n) or every.get(n))]
    at_max = []
    for pl in pools:
        a = as_dict(pl.raw.get("autoscaling"))
        zones = len(as_list(pl.raw.get("locations"))) or 1
        count = _pool_nodes(ctx, pl.name)
        full = bool(a.get("enabled")) and a.get("maxNodeCount") is not None and count >= int(a["maxNodeCount"]) * zones
        if full:
            at_max.append(pl.name)
        evidence.append(f"node pool {pl.name}: machine {pl.config.get('machineType')}, autoscaling "
                        + (f"on, {a.get('minNodeCount', 0)}-{a.get('maxNodeCount')} nodes per zone" if a.get("enabled")
                           else "off")
                        + (f", {count} node(s) now" + (" (at its maximum)" if full else "") if count else ""))
    gone = _earlier_tries(ctx, pods) if ctx.has("events") else []
    tries = [t for t in (_try(p) for p in pods) if t]
    if gone:
        evidence.append(f"earlier tries already failed: FailedScheduling events remain for {', '.join(gone[:4])}"
                        + (f" (and {len(gone) - 4} more)" if len(gone) > 4 else "")
                        + f", which no longer exist: the scheduler deleted them after worker_pods_pending_timeout "
                          f"({timeout}s)")
    causes, caused_by = _causes(ctx, pod, blob, verdict, scale_reasons, too_big, matched_pools, bool(selector))
    if at_max and not any(k == "max-size" for k, _t in causes) and any(k == "resources" for k, _t in causes):
        causes.append(("max-size", f"node pool {', '.join(at_max)} is at its autoscaling maximum"))
    if causes:
        evidence.append("why: " + "; ".join(text for _k, text in causes))
    summary, commands = _fix(ctx, pod, [k for k, _t in causes], pools, too_big, blob, verdict)
    why = causes[0][1] if causes else "no node fits it"
    earlier = ""
    if gone or (tries and max(tries) > 1):
        n_gone = len(gone) or (max(tries) - 1)
        earlier = (f" This is not the first attempt: {n_gone} earlier tr{'y' if n_gone == 1 else 'ies'} of this task "
                   f"already waited out the {timeout}s timeout and were deleted, and the next retry will wait the "
                   "same way until the cause is fixed.")
    many = f"{len(pods)} pods of {who}" if len(pods) > 1 else f"Task pod {pod.name}"
    return Finding(
        title=(f"{many} Pending {human_age(age)} without a node: {why}" if len(pods) > 1 else
               f"Task pod {pod.name} Pending {human_age(age)} without a node: {why}"),
        message=(f"KubernetesExecutor {who}" + (f" ({len(pods)} Pending pods)" if len(pods) > 1 else f" (pod {pod.name})")
                 + f" has waited {human_age(age)} for a node, past the {timeout}s worker_pods_pending_timeout after "
                 "which the scheduler deletes the pod and fails the task (older Airflow versions leave it queued). "
                 + ("Why: " + "; ".join(t for _k, t in causes) + "." if causes else "") + earlier),
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        caused_by=caused_by,
        group_title=f"{{n}} task pods Pending without a node: {why}",
        group_message=(f"{{n}} KubernetesExecutor task pods have waited for a node past the {timeout}s "
                       "worker_pods_pending_timeout, after which the scheduler deletes a pod and fails its task. "
                       + ("Why: " + "; ".join(t for _k, t in causes) + "." if causes else "")),
    )


def _tol_text(t) -> str:
    t = as_dict(t)
    return f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect', '')}"


def _pools(ctx: Context, pod: Pod):
    try:
        return ctx.pools_of([pod]) if ctx.has("cluster") else []
    except DataUnavailable:
        return []


def _causes(ctx: Context, pod: Pod, blob: str, verdict: Verdict | None, scale_reasons, too_big: list[str],
            matched_pools: list[str], has_selector: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """Each scheduler reason with its node count. Nodes rejected by the selector say nothing about
    the others: when the selector matches some nodes, what rejected *those* is the cause."""
    out: list[tuple[str, str]] = []
    caused_by: list[str] = []
    reasons = verdict.reasons if verdict is not None else ()
    sel_rejected = verdict.count("selector") if verdict is not None else 0
    matched = verdict.selector_matches if verdict is not None else None
    where = (f"the {matched} node(s) its selector matches" + (f" (node pool {', '.join(matched_pools)})"
                                                              if matched_pools else "")
             if sel_rejected and matched else "the nodes")
    short = [r for r in reasons if r.kind == "resources"]
    if too_big:
        out.append(("too-big", f"it requests more {' and '.join(too_big)} than any node"
                    + (f" of node pool {', '.join(matched_pools)}" if matched_pools and has_selector else "")
                    + " can allocate"))
    elif short:
        lack = (short[0].resource if len(short) == 1 and short[0].count == matched
                else ", ".join(f"{r.resource} ({r.count} node(s))" for r in short))
        out.append(("resources", f"{where} lack free {lack}"
                    if where != "the nodes" else
                    f"not enough free {', '.join(sorted({r.resource or '' for r in short}))} on the nodes"))
    elif not reasons and _INSUFFICIENT.search(blob):
        res = sorted({x.rstrip(".,;") for x in _INSUFFICIENT.findall(blob)})
        out.append(("resources", f"not enough free {', '.join(res)} on the nodes"))
    taints = [r.taint for r in reasons if r.kind == "taint" and r.taint] or \
        ([t for pair in _TAINT.findall(blob) for t in pair if t] if not reasons else [])
    if taints:
        out.append(("taint", f"nodes carry taint(s) the pod does not tolerate ({'; '.join(sorted(set(taints)))})"))
    if verdict is not None and verdict.total and sel_rejected >= verdict.total:
        out.append(("selector", f"its node selector/affinity matches none of the {verdict.total} nodes"))
    elif verdict is None and _SELECTOR.search(blob):
        out.append(("selector", "its node selector/affinity matches no node"))
    if _MAX.search(blob) or any(r.kind == "max-size" for r in scale_reasons):
        out.append(("max-size", "the cluster autoscaler cannot add nodes: the node group"
                    + (f" of pool {', '.join(matched_pools)}" if len(matched_pools) == 1 else "")
                    + " is at its maximum size"))
    if _QUOTA.search(blob):
        out.append(("quota", "a Compute Engine quota blocks the scale-up"))
        caused_by.append(finding_id("gcp-quota-exceeded", region_resource(ctx, region(ctx))))
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


def _fix(ctx: Context, pod: Pod, keys: list[str], pools, too_big: list[str], blob: str,
         verdict: Verdict | None) -> tuple[str, list[str]]:
    n = q(ns(ctx))
    cmds = [f"kubectl describe pod {q(pod.name)} --namespace {n}"]
    parts = []
    pool = pools[0].name if len(pools) == 1 else "POOL"
    if verdict is not None and verdict.count("selector") and "selector" not in keys:
        parts.append(f"the node selector is right (it matches {verdict.selector_matches} node(s)): do not change it")
    if "too-big" in keys:
        parts.append("lower the task's requests (workers.resources, or its executor_config pod_override) or run it "
                     "on a node pool with larger machines")
        cmds.append(f"gcloud container node-pools create airflow-tasks-highmem --cluster {q(cluster_name(ctx))} "
                    f"{gke_flags(ctx)} --machine-type e2-highmem-8 --enable-autoscaling --min-nodes 0 --max-nodes 3")
    if ("resources" in keys and "quota" not in keys) or "max-size" in keys:   # a quota: the pool cannot grow
        cur, low, enabled = 0, 0, False
        for pl in pools:
            a = as_dict(pl.raw.get("autoscaling"))
            enabled = enabled or bool(a.get("enabled"))
            cur = max(cur, int(a.get("maxNodeCount") or 0))
            low = max(low, int(a.get("minNodeCount") or 0))
        parts.append(f"let node pool {pool} grow (" + ("raise its autoscaling maximum" if enabled else
                                                       "enable autoscaling") + "), or lower the task's requests")
        cmds.append(f"gcloud container clusters update {q(cluster_name(ctx))} {gke_flags(ctx)} --enable-autoscaling "
                    f"--node-pool {q(pool)} --min-nodes {low} --max-nodes {max(2 * cur, 6)}")
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
        parts.append("raise the Compute Engine quota (CPUs, instances or disks) that blocks the scale-up (the "
                     "gcp-quota-exceeded finding names it when the region's quotas were read)")
        cmds.append(f"gcloud compute regions describe {q(region(ctx))} --project {q(project(ctx))} "
                    "--format='table(quotas.metric,quotas.limit,quotas.usage)'")
    if "pvc" in keys or "zone" in keys:
        parts.append("fix the volume the pod mounts (see the linked PersistentVolumeClaim finding)")
    if "pods" in keys:
        parts.append("add nodes or raise the pool's max pods per node")
    if not [k for k in keys]:
        parts.append("read the FailedScheduling message and make the requests, tolerations and node selector match "
                     "a node the autoscaler can add")
    parts.append("tune [kubernetes_executor] worker_pods_pending_timeout only if nodes legitimately take longer to "
                 "appear (node auto-provisioning, GPUs)")
    return "To schedule the task pods: " + "; ".join(parts) + ".", cmds
