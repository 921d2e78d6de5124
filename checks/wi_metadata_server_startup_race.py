"""The GKE metadata server is not ready in the first seconds of a new pod on a Workload Identity
node pool: client libraries that ask it for credentials right away (a task's first Google call, a
hook, a secrets backend) conclude they are not on Google Cloud and fail with ``DefaultCredentialsError:
Could not automatically determine credentials`` (newer google-auth: ``Your default credentials were
not found``), after ``Compute Engine Metadata server unavailable on attempt 1 of 3``. The failure is
intermittent: the next try of the same task, in a new pod a minute later, gets its token
(GKE's Workload Identity limitations; googleapis/google-auth-library-python#604 and #1261,
r-lib/gargle#186). Reported when failed task pods on GKE_METADATA nodes show it within seconds of
their start and a later try of the same task, or another task pod of the same service account, got
past it; a failure every try repeats is a configuration problem, not this race."""
from __future__ import annotations

import json
import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt, helm_upgrade, k8s_resource, q, release
from airflow_gke.views import Context, DataUnavailable, Pod, as_dict, as_list, parse_time

CRED = re.compile(r"DefaultCredentialsError|Could not automatically determine credentials|"
                  r"default credentials were not found|Compute Engine Metadata server unavailable|"
                  r"cannot find the metadata server|unavailable metadata server", re.I)
FINAL = re.compile(r"DefaultCredentialsError|Could not automatically determine credentials|"
                   r"default credentials were not found", re.I)
EARLY_S = 60          # the metadata server answers within seconds; a task that ran longer got past it
PROBE_IMAGE = "curlimages/curl:8.11.1"
WAIT = ("until curl -sf -o /dev/null -H 'Metadata-Flavor: Google' "
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token; do sleep 1; done")


@check(id="wi-metadata-server-startup-race", title="Task pods get Google credentials from their first second",
       severity="warning", category=Category.IDENTITY, needs=("pods",), uses=("logs", "nodes", "cluster", "configmaps"))
def run(ctx: Context) -> Result:
    """Task pods on Workload Identity nodes fail in their first seconds with DefaultCredentialsError, and retries succeed."""
    if not ctx.kubernetes_executor:
        return skipped("the executor is not KubernetesExecutor or CeleryKubernetesExecutor")
    tasks = ctx.task_pods
    hits: list[tuple[Pod, str, float]] = []
    for p in tasks:
        if p.phase != "Failed":
            continue
        base = _base(p)
        if base is None or base.state[0] != "terminated" or base.state[1].get("exitCode") in (0, None):
            continue
        ran = _ran_s(base.state[1])
        if ran is None or ran > EARLY_S or not _wi_node(ctx, p):
            continue
        lines = [ln for _w, ln in ctx.recent_logs(p, base.name) if CRED.search(ln)]
        if not lines:
            continue
        final = [ln for ln in lines if FINAL.search(ln)]
        hits.append((p, final[-1] if final else lines[0], ran))   # the exception itself, not the raise
    if not hits:
        return passed()
    failed = {p.name for p, _l, _r in hits}
    by_ti: dict[tuple, list[Pod]] = {}
    for p, _l, _r in hits:
        by_ti.setdefault(_ti(p), []).append(p)
    confirmed, persistent = [], set()
    for ti, fails in by_ti.items():
        first = min(fails, key=_try)
        ok = [o for o in tasks if _ti(o) == ti and _try(o) > _try(first) and o.name not in failed]
        if ok:
            confirmed.append((first, ok))
        elif len(fails) > 1:   # every try so far failed the same way: not a start-up delay
            persistent.add(ti)
    hits = [h for h in hits if _ti(h[0]) not in persistent]
    peers = [o for o in tasks if _ti(o) not in by_ti and o.phase in ("Running", "Succeeded")
             and o.service_account in {p.service_account for p, _l, _r in hits} and _wi_node(ctx, o)]
    if not hits or not (confirmed or (peers and not persistent)):
        return passed()
    return from_findings([_finding(ctx, hits, confirmed, peers)])


def _base(p: Pod):
    for cs in p.container_statuses:
        if cs.name == "base":
            return cs
    return p.container_statuses[0] if p.container_statuses else None


def _ran_s(term: dict) -> float | None:
    a, b = parse_time(term.get("startedAt")), parse_time(term.get("finishedAt"))
    return (b - a).total_seconds() if a and b else None


def _ti(p: Pod) -> tuple[str, str, str, str]:
    a = p.annotations
    return (a.get("dag_id", ""), a.get("task_id", ""), a.get("run_id", ""), a.get("map_index", "-1"))


def _try(p: Pod) -> int:
    try:
        return int(p.annotations.get("try_number") or p.labels.get("try_number") or 0)
    except ValueError:
        return 0


def _wi_node(ctx: Context, p: Pod) -> bool:
    """Whether the pod ran on a node that serves Workload Identity (the GKE metadata server)."""
    if not p.node:
        return False
    try:
        pool = ctx.pool_of_node(p.node)
        pools = ctx.node_pools
        if pool and pool in pools:
            return pools[pool].gke_metadata
    except DataUnavailable:
        pass
    try:
        n = ctx.nodes.get(p.node)
    except DataUnavailable:
        return False
    return n is not None and n.labels.get("iam.gke.io/gke-metadata-server-enabled") == "true"


def _finding(ctx: Context, hits, confirmed, peers) -> Finding:
    hits.sort(key=lambda h: h[0].created or ctx.now)
    tis = list(dict.fromkeys(".".join(_ti(p)[:2]) for p, _l, _r in hits))
    evidence = []
    for p, line, ran in hits[:3]:
        evidence.append(f"Pod {p.name} ({'.'.join(_ti(p)[:2])}, try {_try(p)}) failed {ran:.0f}s after base started, "
                        f"on node {p.node}: {excerpt(line, CRED.search(line))}")
    if len(hits) > 3:
        evidence.append(f"{len(hits)} failed task pods in all, tasks: {', '.join(tis[:6])}")
    for p, ok in confirmed[:3]:
        o = ok[0]
        evidence.append(f"the next try of {'.'.join(_ti(p)[:2])} ({o.name}, try {_try(o)}) is {o.phase}: it got "
                        "credentials")
    if peers:
        evidence.append(f"{len(peers)} other task pod(s) of the same service account on Workload Identity nodes are "
                        "Running or Succeeded")
    pools = sorted({ctx.pool_of_node(p.node) or p.node for p, _l, _r in hits if p.node})
    evidence.append(f"node pool(s) {', '.join(pools)}: Workload Identity (GKE_METADATA): the GKE metadata server "
                    "serves each new pod's credentials only a few seconds after the pod starts")
    try:
        tpl = ctx.pod_template
    except DataUnavailable:
        tpl = None
    inits = [c for c in as_list(as_dict(as_dict(tpl).get("spec")).get("initContainers"))
             if isinstance(c, dict) and c.get("name") not in ("git-sync-init", "wait-for-metadata-server")]
    waiter = {"name": "wait-for-metadata-server", "image": PROBE_IMAGE, "command": ["sh", "-c", WAIT]}
    value = json.dumps([*inits, waiter], separators=(",", ":"))
    return Finding(
        title=(f"{len(hits)} task pod(s) failed in their first seconds without Google credentials on Workload Identity "
               f"nodes, while retries got them: the metadata server start-up race"),
        message=("Task pods on Workload Identity node pools asked for Google credentials before the GKE metadata "
                 "server served their pod, and the client library gave up (DefaultCredentialsError). Later tries of the "
                 "same tasks got credentials, so the service account and its binding are right: tasks without retries "
                 "fail at random, the others run late."),
        resource=k8s_resource(ctx, "ConfigMap", f"{release(ctx)}-config"),
        evidence=evidence,
        severity="warning",
        remediation=Remediation(
            ("Make task pods wait for the metadata server before base starts: an init container that polls the token "
             "endpoint until it answers (the command keeps the pod template's other extra init containers). Give "
             "Google client libraries more time as well (env GCE_METADATA_TIMEOUT, seconds), and keep retries >= 1 "
             "on tasks that call Google APIs. New task pods only; nothing restarts."),
            [helm_upgrade(ctx, f"--set-json {q('workers.extraInitContainers=' + value)}")]),
        subjects=[k8s_resource(ctx, "Pod", p.name).ref for p, _l, _r in hits],
    )
