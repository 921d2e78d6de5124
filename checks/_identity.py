"""Helpers of the project, identity and logging checks: which node pools run Airflow, Workload
Identity members, the Compute Engine default service account. (Which service accounts Airflow
runs as is the identity view's answer: airflow_gke.views.identity.)"""
from __future__ import annotations

from airflow_gke.views import Context, DataUnavailable, NodePool, as_dict
from airflow_gke.remediation import project


def airflow_pools(ctx: Context) -> tuple[list[NodePool], bool]:
    """(node pools that run Airflow pods, True) from the pods' nodes; (every pool, False) when no
    Airflow pod can be tied to a pool. Needs the cluster; uses pods and nodes."""
    pools = ctx.node_pools
    names: set[str] = set()
    for name, pods in airflow_pods_by_pool(ctx).items():
        if pods:
            names.add(name)
    tied = [pools[n] for n in sorted(names) if n in pools]
    if tied:
        return tied, True
    return list(pools.values()), False


def airflow_pods_by_pool(ctx: Context) -> dict[str, list[str]]:
    """Node pool name -> names of the Airflow pods on it (from their node, else their node
    selector), computed once per run. Empty when pods were not collected."""
    return ctx.derive("airflow_pods_by_pool", _airflow_pods_by_pool, ctx)


def _airflow_pods_by_pool(ctx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        by_node = ctx.pods_by_node
        pods = ctx.airflow_pods
    except DataUnavailable:
        return out
    pool_of: dict[str, str | None] = {}
    for node in by_node:
        try:
            pool_of[node] = ctx.pool_of_node(node)
        except DataUnavailable:
            pool_of[node] = None
    for p in pods:
        name = pool_of.get(p.node) if p.node else None
        if not name:
            name = as_dict(p.spec.get("nodeSelector")).get("cloud.google.com/gke-nodepool")
        if name:
            out.setdefault(name, []).append(p.name)
    return out


def workload_pool(ctx: Context) -> str:
    """The Workload Identity pool name: the cluster's, else what it would be (``<project>.svc.id.goog``)."""
    try:
        wp = ctx.workload_pool
    except DataUnavailable:
        wp = None
    return wp or f"{project(ctx)}.svc.id.goog"


def wi_members(ctx: Context, ksa: str) -> set[str]:
    """IAM members that name a KSA under Workload Identity (legacy and principal:// forms)."""
    pool = workload_pool(ctx)
    ns = ctx.target.namespace
    out = {f"serviceAccount:{pool}[{ns}/{ksa}]"}
    num = ctx.project_number
    if num:
        out.add(f"principal://iam.googleapis.com/projects/{num}/locations/global/workloadIdentityPools/"
                f"{pool}/subject/ns/{ns}/sa/{ksa}")
    return out


def is_compute_default(ctx: Context, pool: NodePool) -> bool:
    sa = pool.service_account
    if sa == "default":
        return True
    if sa.endswith("-compute@developer.gserviceaccount.com"):
        num = ctx.project_number
        return num is None or sa == f"{num}-compute@developer.gserviceaccount.com"
    return False




WI_GRANTING = ("roles/iam.workloadIdentityUser", "roles/iam.serviceAccountTokenCreator")


def wi_binding_state(ctx: Context, ksa: str, gsa: str) -> str:
    """"granted" when the GSA's or the project's policy lets the KSA impersonate the GSA, "denied"
    when both were read and neither does, else "unknown"."""
    from airflow_gke.views.iam import binding_members, bindings
    pe, proj = ctx.entry("gsa_iam", email=gsa), ctx.entry("project_iam")
    members = wi_members(ctx, ksa)
    ns_set = f"/workloadIdentityPools/{workload_pool(ctx)}/namespace/{ctx.target.namespace}"
    unknown = False
    for e in (pe, proj):
        if e is None or not e.ok:
            unknown = True
            continue
        for b in bindings(e.data):
            mem = binding_members(b)
            if mem & members or any(m.startswith("principalSet://") and m.endswith(ns_set) for m in mem):
                if b.get("role") in WI_GRANTING:
                    return "granted"
                if not str(b.get("role") or "").startswith("roles/"):
                    unknown = True   # a custom role the doctor does not read
    return "unknown" if unknown else "denied"


def wi_binding_denied(ctx: Context, ksa: str, gsa: str) -> bool:
    """No token can be minted for the KSA's pods: both policies read, neither lets it impersonate the GSA."""
    return wi_binding_state(ctx, ksa, gsa) == "denied"
