"""Airflow pods evicted by the kubelet for ephemeral storage (local task logs, temp files, an
emptyDir over its sizeLimit, Autopilot's default 1Gi limit).

Severity: ``error`` when an eviction happened in the last 24 hours (running tasks were killed and
the local logs of the pod were lost, and the cause is still there), ``warning`` when the evicted
pods are older (the kubelet protected the node; the same configuration will do it again)."""
from __future__ import annotations

import re
from datetime import timedelta

from airflow_gke.views import as_dict, Context, DataUnavailable, event_time, human_age, owner_of, parse_time, Pod
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, kubectl, q


EPHEMERAL = re.compile(r"(?i)ephemeral-storage|ephemeral local storage|usage of emptydir volume")
USING = re.compile(r"(?i)container (\S+) was using (\S+), (?:which exceeds its request of|request is) (\S+?)\.?(?:\s|$)")
RECENT = timedelta(hours=24)
# Chart values key of each component's resources (task pods take workers.resources).
VALUES = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dagProcessor", "worker": "workers",
          "api-server": "apiServer", "webserver": "webserver", "task": "workers"}


@check(id="ephemeral-storage-eviction", title="No Airflow pod is evicted for ephemeral storage",
       severity="error", category=Category.RESOURCES, needs=("pods",), uses=("events", "cluster", "configmaps"),
       severity_note="an eviction in the last 24 hours; warning for older evictions")
def run(ctx: Context) -> Result:
    """Pods evicted (status.reason Evicted) because they used too much ephemeral storage."""
    groups: dict[tuple[str, str], list[Pod]] = {}
    for p in ctx.pods:
        if p.status.get("reason") != "Evicted" or not EPHEMERAL.search(str(p.status.get("message") or "")):
            continue
        if not ctx.is_airflow_pod(p):
            continue
        owner = owner_of(p)
        key = ("task", "") if p.is_task_pod or owner is None else owner
        groups.setdefault(key, []).append(p)
    findings = [_finding(ctx, key, pods) for key, pods in sorted(groups.items())]
    return from_findings(findings)


def _evicted_at(ctx: Context, p: Pod):
    """When the kubelet killed the pod: the last ``finishedAt`` of its containers, else its
    ``Evicted`` event, else its start."""
    ends = [parse_time(f["finishedAt"]) for cs in p.container_statuses
            for st, f in [cs.state] if st == "terminated" and f.get("finishedAt")]
    ends = [e for e in ends if e is not None]
    if ends:
        return max(ends)
    try:
        evs = ctx.events_for("Pod", p.name, "Evicted")
    except Exception:  # noqa: BLE001 - events are optional here
        evs = []
    if evs:
        return event_time(evs[-1])
    return p.started


def _autopilot(ctx: Context) -> bool:
    try:
        return ctx.has("cluster") and bool(as_dict(ctx.cluster.get("autopilot")).get("enabled"))
    except DataUnavailable:
        return False


def _finding(ctx: Context, key: tuple[str, str], pods: list[Pod]) -> Finding:
    pods = sorted(pods, key=lambda p: (_evicted_at(ctx, p) or ctx.now, p.name))
    latest = pods[-1]
    when = _evicted_at(ctx, latest)
    age = ctx.age(when)
    recent = age is not None and age <= RECENT
    component = "task" if key[0] == "task" else (latest.component or "")
    if key[0] == "task":
        resource = k8s_resource(ctx, "Pod", latest.name)
        what = f"{len(pods)} KubernetesExecutor task pod{'s' if len(pods) > 1 else ''}"
    else:
        resource = k8s_resource(ctx, key[0], key[1])
        what = f"{len(pods)} pod{'s' if len(pods) > 1 else ''} of {key[0]} {key[1]}"
    evidence = []
    containers: set[str] = set()
    for p in pods[-5:]:
        msg = str(p.status.get("message") or "").strip()
        at = _evicted_at(ctx, p)
        label = f"dag {p.labels.get('dag_id')}, task {p.labels.get('task_id')}" if p.is_task_pod else (p.component or "pod")
        evidence.append(f"Pod {p.name} ({label}): status.phase {p.phase}, status.reason Evicted "
                        f"{human_age(ctx.age(at))} ago: {msg}")
        for m in USING.finditer(msg):
            containers.add(m.group(1))
    if len(pods) > 5:
        evidence.append(f"... and {len(pods) - 5} earlier evicted pods")
    limits = []
    for c in latest.containers:
        res = c.get("resources") or {}
        req = (res.get("requests") or {}).get("ephemeral-storage")
        lim = (res.get("limits") or {}).get("ephemeral-storage")
        limits.append(f"{c.get('name')}: requests.ephemeral-storage {req or '(none)'}, limits.ephemeral-storage {lim or '(none)'}")
    evidence.append(f"Pod {latest.name} containers: " + "; ".join(limits))
    for v in latest.spec.get("volumes") or []:
        if isinstance(v, dict) and "emptyDir" in v and v.get("name") == "logs":
            evidence.append(f"volume {v['name']} is an emptyDir{' (sizeLimit ' + str(v['emptyDir'].get('sizeLimit')) + ')' if (v['emptyDir'] or {}).get('sizeLimit') else ''}: "
                            "local logs are written to the node's ephemeral storage")
    vkey = VALUES.get(component)
    commands = [kubectl(ctx, "get pods", "--field-selector=status.phase=Failed"),
                kubectl(ctx, "describe pod", q(latest.name))]
    autopilot = _autopilot(ctx)
    adjusted = [str(latest.annotations.get("autopilot.gke.io/resource-adjustment") or "")]
    if autopilot:
        evidence.append("the cluster is GKE Autopilot: limits equal requests, an ephemeral-storage request left unset "
                        "defaults to 1Gi per container, and a pod's ephemeral storage is capped (10Gi on general-purpose "
                        "compute classes)" + ("; Autopilot adjusted this pod's resources "
                                              "(autopilot.gke.io/resource-adjustment)" if adjusted[0] else ""))
    if vkey:
        if autopilot:   # a limit above the request is rewritten to the request: ask for what it needs, once
            commands.append(helm_upgrade(ctx, f"--set {vkey}.resources.requests.ephemeral-storage=4Gi",
                                         f"--set {vkey}.resources.limits.ephemeral-storage=4Gi"))
        else:
            commands.append(helm_upgrade(ctx, f"--set {vkey}.resources.requests.ephemeral-storage=2Gi",
                                         f"--set {vkey}.resources.limits.ephemeral-storage=8Gi"))
    if component in ("scheduler", "triggerer", "dag-processor", "worker"):
        commands.append(helm_upgrade(ctx, f"--set {vkey}.logGroomerSidecar.retentionDays=3"))
    try:
        cfg = ctx.config(component or "scheduler")
        remote, dll = cfg.getboolean("logging", "remote_logging"), cfg.getboolean("logging", "delete_local_logs")
    except DataUnavailable:
        cfg, remote, dll = None, True, False
    if dll and cfg is not None:   # never propose a setting already set
        evidence.append(f"[logging] delete_local_logs is already True ({cfg.source('logging', 'delete_local_logs')})")
    elif remote:
        commands.append(helm_upgrade(ctx, "--set-string config.logging.delete_local_logs=True"))
    summary = ("Give the containers an ephemeral-storage request (so they are scheduled where the space is) and a limit "
               "that fits what they write, keep less on local disk (shorter log retention, remote logging with "
               "delete_local_logs), or put logs on a volume. Evicted pods stay listed until deleted: "
               "kubectl delete pod of the Failed ones once fixed.")
    sev = "error" if recent else "warning"
    return Finding(
        title=f"{what[0].upper() + what[1:]} evicted for ephemeral storage"
              + (f" ({human_age(age)} ago)" if age is not None else ""),
        message=(f"The kubelet evicted {what} because {'they' if len(pods) > 1 else 'it'} used more ephemeral storage (container writable layers, "
                 "emptyDir volumes such as the local logs) than the node could spare or their limit allows. "
                 "Running tasks in them were killed and their local logs lost"
                 + ("; the last eviction is recent." if recent else "; the evictions are older than a day, but the "
                    "configuration that caused them is unchanged.")),
        resource=resource,
        evidence=evidence,
        remediation=Remediation(summary, commands),
        severity=sev,
    )
