"""Pods Pending with ``volume node affinity conflict``: a zonal disk sits in a zone where no
schedulable node can take the pod (node pool moved, zone removed, selectors too narrow)."""
from __future__ import annotations

import re

from airflow_gke.views import as_list, Context, DataUnavailable, human_age, node_matches, node_schedulable, Pod
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import cluster_name, gke_flags, k8s_resource, kubectl, project, q, quote_event

from ._storage import iter_claims, node_zone, pv_zones, pvc_role

CONFLICT = re.compile(r"(?i)volume node affinity conflict")


@check(id="pv-zone-affinity-conflict", title="Every zonal volume has a schedulable node in its zone",
       severity="error", category=Category.STORAGE, needs=("pods", "events", "pvcs", "persistentvolumes", "nodes"),
       uses=("cluster",))
def run(ctx: Context) -> Result:
    """Pending pods whose Bound volume's zone has no schedulable node for them."""
    pvs = ctx.persistent_volumes
    findings = []
    done: set[str] = set()
    for pod in ctx.pods:
        if pod.phase != "Pending" or pod.node:
            continue
        evs = [e for e in ctx.events_for("Pod", pod.name)
               if e.get("reason") in ("FailedScheduling", "NotTriggerScaleUp") and CONFLICT.search(str(e.get("message") or ""))]
        if not evs:
            continue
        for _vol, claim in iter_claims(pod):
            pvc = ctx.pvcs.get(claim)
            if pvc is None or pvc.phase != "Bound" or claim in done:
                continue
            pv = pvs.get(str(pvc.spec.get("volumeName") or ""))
            if pv is None:
                continue
            zones = pv_zones(pv)
            if not zones:
                continue
            fitting = [n for n in ctx.nodes.values()
                       if node_zone(n) in zones and node_schedulable(n) and node_matches(pod, n)]
            if fitting:
                continue   # a node in the zone could take it: capacity, not a zone conflict
            done.add(claim)
            findings.append(_finding(ctx, pod, pvc, pv, zones, evs))
    return from_findings(findings)


def _finding(ctx: Context, pod: Pod, pvc, pv, zones: list[str], evs: list[dict]) -> Finding:
    node_zones: dict[str, list[str]] = {}
    for n in ctx.nodes.values():
        z = node_zone(n) or "(no zone label)"
        state = "" if node_schedulable(n) else " (not schedulable)"
        node_zones.setdefault(z, []).append(n.name + state)
    zone = zones[0]
    csi = pv.spec.get("csi") or {}
    disk = str(csi.get("volumeHandle") or "")
    evidence = [
        f"Pod {pod.name} ({pod.component or 'pod'}): Pending for {human_age(ctx.age(pod.created))}, not scheduled",
        f"PersistentVolumeClaim {pvc.name} is Bound to PersistentVolume {pv.name}"
        + (f" (disk {disk})" if disk else "") + f", pinned by spec.nodeAffinity to zone {', '.join(zones)}",
        "nodes by zone: " + "; ".join(f"{z}: {', '.join(ns_)}" for z, ns_ in sorted(node_zones.items())),
    ]
    sel = pod.spec.get("nodeSelector")
    if sel:
        evidence.append(f"Pod {pod.name} spec.nodeSelector {sel}")
    for e in evs[-2:]:
        evidence.append(quote_event(e))
    pools = _pools(ctx, pod)
    commands = [kubectl(ctx, "describe pod", q(pod.name)),
                f"kubectl get pv {q(pv.name)} -o jsonpath='{{.spec.nodeAffinity}}'",
                "kubectl get nodes -L topology.kubernetes.io/zone,cloud.google.com/gke-nodepool"]
    add_zone = []
    for pool, locs in pools:
        want = sorted(set(locs) | {zone})
        add_zone.append(f"gcloud container node-pools update {q(pool)} --cluster {q(cluster_name(ctx))} "
                        f"{gke_flags(ctx)} --node-locations={','.join(want)}")
    if not add_zone:
        add_zone.append(f"gcloud container node-pools update <pool> --cluster {q(cluster_name(ctx))} {gke_flags(ctx)} "
                        f"--node-locations=<current zones>,{zone}")
    commands.append("# Option A: a node in the disk's zone\n" + "\n".join(add_zone))
    if disk.startswith("projects/") and "/disks/" in disk:
        dname = disk.rsplit("/", 1)[1]
        target_zone = sorted(z for z in node_zones if z != zone)[:1]
        to = target_zone[0] if target_zone else "<a zone with nodes>"
        commands.append("# Option B: move the data to a zone with nodes (snapshot, then restore there and point a "
                        "PersistentVolume at the new disk)\n"
                        f"gcloud compute snapshots create {q(dname + '-move')} --source-disk={q(dname)} "
                        f"--source-disk-zone={q(zone)} --project {q(project(ctx))}\n"
                        f"gcloud compute disks create {q(dname + '-moved')} --source-snapshot={q(dname + '-move')} "
                        f"--zone={q(to)} --project {q(project(ctx))}")
    role, _, sts = pvc_role(ctx, pvc.name, pvc.labels)
    summary = (f"Option A: give the pod a schedulable node in {zone} (add the zone to the node pool's locations). "
               "Option B: move the data: snapshot the disk and restore it in a zone that has nodes, then recreate the claim from it. "
               + ("For new volumes prefer a WaitForFirstConsumer class (or regional persistent disks) so the disk "
                  "follows the pod." if not _wffc(ctx, pvc) else
                  f"Its class already binds WaitForFirstConsumer: the disk followed the first pod into {zone}, and the "
                  "nodes left that zone since; regional persistent disks survive that."))
    return Finding(
        title=f"Volume of PVC {pvc.name} is in {zone}, where no node can run {pod.name}",
        message=(f"Pod {pod.name} mounts PersistentVolumeClaim {pvc.name}, whose zonal disk (PersistentVolume {pv.name}) "
                 f"is pinned to {', '.join(zones)}. No Ready, schedulable node that the pod may use is in that zone, so "
                 "the scheduler reports a volume node affinity conflict and the cluster autoscaler cannot help."
                 + (f" The claim belongs to StatefulSet {sts}; deleting the pod does not move the disk." if sts else "")),
        resource=k8s_resource(ctx, "PersistentVolumeClaim", pvc.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
        blocks=[k8s_resource(ctx, "Pod", pod.name).ref],
    )


def _wffc(ctx: Context, pvc) -> bool:
    try:
        sc = ctx.storage_class_of(pvc)
    except DataUnavailable:
        return False
    return sc is not None and sc.binding_mode == "WaitForFirstConsumer"


def _pools(ctx: Context, pod: Pod) -> list[tuple[str, list[str]]]:
    """(pool, its locations) the pod could run on, from the cluster when it was read."""
    try:
        pools = ctx.node_pools
    except DataUnavailable:
        return []
    sel = (pod.spec.get("nodeSelector") or {}).get("cloud.google.com/gke-nodepool")
    out = []
    for name, np in sorted(pools.items()):
        if sel and name != sel:
            continue
        locs = [str(x) for x in as_list(np.raw.get("locations"))]
        out.append((name, locs))
    return out[:1] if not sel else out
