"""A Compute Engine regional quota (``CPUS``, ``SSD_TOTAL_GB``, ``IN_USE_ADDRESSES``, ...) is
exhausted, so the nodes or disks Airflow needs cannot be created: the cluster autoscaler's
``FailedScaleUp`` (``GCE quota exceeded``) and back-off (``1 in backoff after failed scale-up``) on
Pending pods, or the persistent disk provisioner's ``ProvisioningFailed`` (``Quota 'SSD_TOTAL_GB'
exceeded.  Limit: 500.0 in region ...``) on a Pending claim. The region's quotas (``regions.get``:
``quotas[]`` metric, limit, usage) settle it: a metric whose headroom is smaller than what the next
node (the node pool's machine type, boot disk, external IP) or the claim needs. An event that names a
quota whose region now has room is a failure the next retry gets past (not reported); a back-off
with room in every regional quota has another cause (a zone out of resources) and is not reported.
One finding per region, naming every exhausted metric and every pod and claim it keeps waiting."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed
from airflow_gke.registry import Category, check
from airflow_gke.remediation import project, q, quote_event, region as cluster_region, region_resource
from airflow_gke.views import Context, DataUnavailable, as_dict, as_list, quantity
from airflow_gke.views.google import QUOTA_EVENT_REASONS, quota_signal

# The Cloud Quotas API's id of a regional Compute Engine metric (``gcloud quotas preferences create
# --quota-id``); other metrics: the Console's quotas page.
QUOTA_IDS = {m: f"{m.replace('_', '-')}-per-project-region" for m in (
    "CPUS", "SSD_TOTAL_GB", "DISKS_TOTAL_GB", "IN_USE_ADDRESSES", "INSTANCES", "STATIC_ADDRESSES",
    "N2_CPUS", "N2D_CPUS", "C2_CPUS", "C2D_CPUS", "C3_CPUS", "PREEMPTIBLE_CPUS", "LOCAL_SSD_TOTAL_GB")}
_DISK_METRIC = {"pd-standard": "DISKS_TOTAL_GB", "pd-balanced": "SSD_TOTAL_GB", "pd-ssd": "SSD_TOTAL_GB",
                "pd-extreme": "SSD_TOTAL_GB"}
_SHARED_CORE = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}
_VCPUS = re.compile(r"^(?:[a-z0-9]+-)?(?:custom-(\d+)-\d+(?:-ext)?|[a-z]+-(\d+)(?:-[a-z0-9]+)?)$")
GB = 2 ** 30   # Compute Engine sizes disks in GiB ("GB" in its quotas)


@dataclass
class Signal:
    kind: str               # "named", "generic", "backoff"
    metric: str | None
    event: dict
    obj_kind: str           # "Pod" or "PersistentVolumeClaim"
    obj: str
    need: float | None = None   # what the claim needs of a named disk metric (GB)


@check(id="gcp-quota-exceeded",
       title="Compute Engine regional quotas leave room for the nodes and disks Airflow needs",
       severity="error", category=Category.PROJECT, needs=("events",),
       uses=("pods", "pvcs", "compute_region", "cluster"))
def run(ctx: Context) -> Result:
    """Pods or claims wait because a Compute Engine regional quota is exhausted (autoscaler, disk provisioner)."""
    by_region: dict[str, list[Signal]] = {}
    for sig, region in _signals(ctx):
        by_region.setdefault(region, []).append(sig)
    if not by_region:
        return passed()
    findings = [f for region, sigs in by_region.items() if (f := _judge(ctx, region, sigs)) is not None]
    return from_findings(findings)


def _signals(ctx: Context) -> list[tuple[Signal, str]]:
    """Quota events on objects still waiting: Pods Pending without a node, claims Pending."""
    own = cluster_region(ctx)
    out: list[tuple[Signal, str]] = []
    pods = ctx.pods_by_name if ctx.has("pods") else {}
    pvcs = ctx.pvcs if ctx.has("pvcs") else {}
    for e in ctx.items("events"):
        if e.get("reason") not in QUOTA_EVENT_REASONS:
            continue
        sig = quota_signal(str(e.get("message") or ""))
        if sig is None:
            continue
        o = as_dict(e.get("involvedObject"))
        kind, name = str(o.get("kind") or ""), str(o.get("name") or "")
        need = None
        if kind == "Pod":
            pod = pods.get(name)
            if pod is None or pod.phase != "Pending" or pod.node:
                continue   # gone or placed since: the failure is over
        elif kind == "PersistentVolumeClaim":
            pvc = pvcs.get(name)
            if pvc is None or pvc.phase != "Pending":
                continue
            size = quantity(as_dict(as_dict(pvc.spec.get("resources")).get("requests")).get("storage"))
            need = math.ceil(size / GB) if size else None
        else:
            continue
        out.append((Signal(sig[0], sig[1], e, kind, name, need), sig[2] or own))
    return out


def _quotas(body: object) -> dict[str, tuple[float, float]]:
    out = {}
    for qt in as_list(as_dict(body).get("quotas")):
        qt = as_dict(qt)
        try:
            out[str(qt["metric"])] = (float(qt.get("limit", 0)), float(qt.get("usage", 0)))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _vcpus(machine: str) -> int | None:
    if machine in _SHARED_CORE:
        return _SHARED_CORE[machine]
    m = _VCPUS.match(machine)
    return int(m.group(1) or m.group(2)) if m else None


def _node_needs(ctx: Context, pod_names: list[str]) -> tuple[dict[str, float], list[str]]:
    """What one more node of the pools these pods can land on takes of each regional quota (the
    smallest such node when several pools qualify), and the pools' descriptions."""
    try:
        pools = ctx.pools_of([ctx.pods_by_name[n] for n in pod_names]) if ctx.has("cluster") else []
        private = {p.name for p in ctx.private_pools()} if ctx.has("cluster") else set()
    except DataUnavailable:
        return {}, []
    auto = [p for p in pools if as_dict(p.raw.get("autoscaling")).get("enabled")] or pools
    needs: dict[str, float] = {}
    seen: list[str] = []
    for pl in auto:
        cfg = pl.config
        machine = str(cfg.get("machineType") or "e2-medium")
        cpus = _vcpus(machine)
        disk = str(cfg.get("diskType") or "pd-balanced")
        size = float(cfg.get("diskSizeGb") or 100)
        one = {"INSTANCES": 1.0, _DISK_METRIC.get(disk, "SSD_TOTAL_GB"): size}
        if cpus:
            one["CPUS"] = float(cpus)
            family = machine.split("-", 1)[0].upper()
            if family not in ("E2", "N1", "F1", "G1"):
                one[f"{family}_CPUS"] = float(cpus)
        if pl.name not in private:
            one["IN_USE_ADDRESSES"] = 1.0
        seen.append(f"node pool {pl.name} ({machine}, {size:g} GB {disk} boot disk"
                    + (", external IP" if pl.name not in private else ", no external IP") + ")")
        for m, v in one.items():
            needs[m] = min(needs.get(m, v), v)
    return needs, seen


def _judge(ctx: Context, region: str, sigs: list[Signal]) -> Finding | None:
    strong = [s for s in sigs if s.kind != "backoff"]
    try:
        quotas: dict[str, tuple[float, float]] | None = _quotas(ctx.body("compute_region", region=region))
        unread = ""
    except DataUnavailable as e:
        if not strong:
            raise   # only a back-off, which names no cause: the quotas decide and were not read
        quotas, unread = None, e.reason
    pod_sigs = [s for s in sigs if s.obj_kind == "Pod"]
    needs, pools = _node_needs(ctx, list(dict.fromkeys(s.obj for s in pod_sigs))) if pod_sigs else ({}, [])
    # metric -> (limit, usage, need of one, the objects that wait on it)
    short: dict[str, tuple[float, float, float, list[Signal]]] = {}
    unnamed: list[Signal] = []
    for s in sigs:
        if s.metric:
            asks = {s.metric: s.need if s.need is not None else needs.get(s.metric, 0.0) if s.obj_kind == "Pod" else 0.0}
        else:
            asks = needs
        hit = False
        for metric, need in asks.items():
            if quotas is None:
                if s.metric:
                    short.setdefault(metric, (math.nan, math.nan, need, []))[3].append(s)
                    hit = True
                continue
            if metric not in quotas:
                continue
            limit, usage = quotas[metric]
            if usage + max(need, 0.0) > limit or usage >= limit:
                short.setdefault(metric, (limit, usage, need, []))[3].append(s)
                hit = True
        if not hit and s.kind == "generic":
            unnamed.append(s)   # the autoscaler says a quota; no regional one is short: a project-wide one
    if not short and not unnamed:
        return None   # the quotas have room now (raised or freed): the next retry gets past it
    return _finding(ctx, region, short, unnamed, quotas, pools, unread, sigs)


def _waiting(ctx: Context, sigs: list[Signal]) -> tuple[list[str], list[str]]:
    """(subjects, blocked pods) of the signals: the waiting pods and claims, and the pods a claim blocks."""
    ns = ctx.target.namespace
    subjects, blocked = [], []
    for s in sigs:
        ref = f"{s.obj_kind}/{ns}/{s.obj}"
        if ref not in subjects:
            subjects.append(ref)
        if s.obj_kind == "Pod" and ref not in blocked:
            blocked.append(ref)
        if s.obj_kind == "PersistentVolumeClaim" and ctx.has("pods"):
            for p in ctx.pods_by_claim.get(s.obj, []):
                r = f"Pod/{ns}/{p.name}"
                if r not in blocked:
                    blocked.append(r)
                if r not in subjects:
                    subjects.append(r)
    return subjects, blocked


def _what(sigs: list[Signal]) -> str:
    pods = list(dict.fromkeys(s.obj for s in sigs if s.obj_kind == "Pod"))
    claims = list(dict.fromkeys(s.obj for s in sigs if s.obj_kind == "PersistentVolumeClaim"))
    parts = []
    if pods:
        parts.append(f"pod {pods[0]}" if len(pods) == 1 else f"{len(pods)} pods")
    if claims:
        parts.append(f"claim {claims[0]}" if len(claims) == 1 else f"{len(claims)} claims")
    return " and ".join(parts)


def _finding(ctx: Context, region: str, short: dict, unnamed: list[Signal], quotas, pools: list[str],
             unread: str, sigs: list[Signal]) -> Finding:
    p = project(ctx)
    involved = [s for _m, (_l, _u, _n, ss) in short.items() for s in ss] + unnamed
    metrics = sorted(short)
    subjects, blocked = _waiting(ctx, involved)
    what = _what(involved)
    evidence: list[str] = []
    seen_events: set[int] = set()
    objs = {x.obj for x in involved}
    for s in sorted([s for s in sigs if s.obj in objs], key=lambda s: s.kind == "backoff"):
        if id(s.event) in seen_events or len(seen_events) >= 4:
            continue
        seen_events.add(id(s.event))
        evidence.append(f"{s.obj_kind} {s.obj}: {quote_event(s.event)}")
    lines = []
    for m in metrics:
        limit, usage, need, ss = short[m]
        if quotas is None:
            lines.append(f"quota {m} of {region}: usage not read ({unread})")
            continue
        left = max(limit - usage, 0)
        who = (f"claim {ss[0].obj} asks {need:g} GB" if ss[0].obj_kind == "PersistentVolumeClaim" and need
               else f"one more node takes {need:g}" if need else "")
        lines.append(f"region {region} quota {m}: usage {usage:g} of limit {limit:g} ({left:g} left)"
                     + (f"; {who}" if who else ""))
    evidence += lines
    if pools:
        evidence.append("the waiting pods' next node: " + "; ".join(pools))
    if unnamed and quotas is not None:
        tight = [f"{m} {u:g}/{lim:g}" for m, (lim, u) in sorted(quotas.items()) if lim and u / lim >= 0.8]
        evidence.append(f"no regional quota of {region} is short for the next node"
                        + (f" (at 80% or more: {', '.join(tight)})" if tight else "")
                        + ": the quota the autoscaler hit is project-wide (CPUS_ALL_REGIONS) or per GPU model")
    console = f"https://console.cloud.google.com/iam-admin/quotas?usage=USED&project={p}"
    cmds: list[str] = []
    for m in metrics:
        limit, usage, need, ss = short[m]
        if quotas is None or m not in QUOTA_IDS:
            continue
        total = sum(s.need or need or 0 for s in {s.obj: s for s in ss}.values())
        want = max(math.ceil(usage + max(total, need, 1)), math.floor(limit) + 1)   # room for all that waits
        cmds.append(f"gcloud quotas preferences create --service=compute.googleapis.com --project={q(p)} "
                    f"--quota-id={QUOTA_IDS[m]} --preferred-value={want} --dimensions=region={q(region)} "
                    "--email=\"$(gcloud config get-value account)\"")
    if cmds:
        cmds[0] = ("# a request Google approves (small increases within minutes); needs the Cloud Quotas API "
                   f"(cloudquotas.googleapis.com), or ask on {console}\n" + cmds[0])
    if unnamed and quotas is None:
        cmds.append(f"gcloud compute regions describe {q(region)} --project {q(p)} --flatten quotas "
                    "--format='table(quotas.metric,quotas.limit,quotas.usage)'")
    if unnamed:
        cmds.append(f"gcloud compute project-info describe --project {q(p)} --flatten quotas "
                    "--format='table(quotas.metric,quotas.limit,quotas.usage)'")
    disk = any(m in ("SSD_TOTAL_GB", "DISKS_TOTAL_GB") for m in metrics)
    node = any(m not in ("SSD_TOTAL_GB", "DISKS_TOTAL_GB") for m in metrics) or unnamed
    if node:
        cmds.append(f"# Option B: free quota in {region}: the VMs that hold it (GKE recreates only its own nodes)\n"
                    f"gcloud compute instances list --project {q(p)} --filter='zone ~ ^{region}-' "
                    "--format='table(name,zone.basename(),machineType.basename(),status)'")
    if disk:
        cmds.append(f"# Option B: free quota in {region}: disks no VM uses (deleting a disk deletes its data)\n"
                    f"gcloud compute disks list --project {q(p)} --filter='zone ~ ^{region}- AND -users:*' "
                    "--format='table(name,zone.basename(),sizeGb,type.basename())'")
    named = ", ".join(metrics) if metrics else ("a project-wide Compute Engine quota" if quotas is not None
                                                 else "a Compute Engine quota")
    summary = (f"Raise {named} in {region} (Cloud Quotas preference, or the Console's quotas page {console}); "
               "the autoscaler and the disk provisioner retry on their own once there is room, no pod needs deleting. "
               "Or free quota in the region.") if metrics else (
        f"Find the quota the scale-up hit (the region's and the project's quotas, or {console}) and raise it; the "
        "autoscaler retries on its own.")
    title = (f"Compute Engine quota {', '.join(metrics)} exhausted in {region}: {what} cannot come up" if metrics else
             f"A Compute Engine quota stops node scale-up in {region}: {what} wait for a node")
    kinds = []
    if any(s.obj_kind == "Pod" for s in involved):
        kinds.append("the cluster autoscaler cannot add the node the pods need")
    if any(s.obj_kind == "PersistentVolumeClaim" for s in involved):
        kinds.append("the persistent disk a claim asks for cannot be created")
    message = (f"Project {p} has no room left in region {region} for {named}: {' and '.join(kinds)}, so {what} "
               f"{'waits' if len(subjects) == 1 else 'wait'} (Pending). " + (
                   "Quotas cap what a project may create per region and are raised on request." if metrics else
                   "The autoscaler reports a quota, and every regional quota has room: the limit is project-wide."
                   if quotas is not None else
                   f"The autoscaler reports a quota; which one the region's quotas would tell, and they were not read "
                   f"({unread})."))
    return Finding(
        title=title, message=message,
        resource=region_resource(ctx, region),
        evidence=evidence,
        remediation=Remediation(summary, cmds),
        subjects=subjects, blocks=blocked,
    )
