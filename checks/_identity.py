"""Helpers of the project, identity and logging checks: which Kubernetes service accounts Airflow
runs as, which node pools run Airflow, Google service account resources, image registries."""
from __future__ import annotations

from dataclasses import dataclass

from airflow_gke.views import AIRFLOW_COMPONENTS, Context, DataUnavailable, NodePool, Pod, as_dict
from airflow_gke.identity import component_exists, component_pods, template_spec
from airflow_gke.remediation import project


# Every component whose pods may act as a Google identity (task pods first).
COMPONENTS = ("task",) + AIRFLOW_COMPONENTS
WI_ANNOTATION = "iam.gke.io/gcp-service-account"


def label(component: str) -> str:
    return "task pods" if component == "task" else component


def _sa_of_spec(spec: dict) -> str:
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


@dataclass
class KsaUse:
    """A Kubernetes service account Airflow runs as: by which components, in which pods."""

    ksa: str
    components: list[str]
    pods: list[Pod]

    @property
    def labels(self) -> str:
        return ", ".join(label(c) for c in self.components)


def ksas_in_use(ctx: Context) -> dict[str, KsaUse]:
    """KSA name -> its use by Airflow components (running pods, else their controller's template,
    else the KubernetesExecutor pod template). Needs pods. Computed once per run (five checks ask,
    each walked every pod); the reads that failed while computing it are reported again to each
    later check that asks, as if it had made them (do not modify the result: it is shared)."""
    return ctx.derive("ksas_in_use", _ksas_in_use, ctx)


def _ksas_in_use(ctx: Context) -> dict[str, KsaUse]:
    out: dict[str, KsaUse] = {}
    for comp in COMPONENTS:
        if not component_exists(ctx, comp):
            continue
        pods = component_pods(ctx, comp)
        names: dict[str, list[Pod]] = {}
        for p in pods:
            names.setdefault(p.service_account, []).append(p)
        if not names:
            spec = template_spec(ctx, comp)
            if spec is not None:
                names[_sa_of_spec(spec)] = []
        for ksa, kpods in names.items():
            use = out.setdefault(ksa, KsaUse(ksa, [], []))
            if comp not in use.components:
                use.components.append(comp)
            use.pods.extend(kpods)
    return out


def annotated_ksas(ctx: Context) -> dict[str, tuple[str, KsaUse]]:
    """KSA -> (Google service account it names, its use) for the annotated KSAs Airflow runs as."""
    out = {}
    for ksa, use in sorted(ksas_in_use(ctx).items()):
        gsa = ctx.gsa_of(ksa)
        if gsa:
            out[ksa] = (gsa, use)
    return out


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
        pods = ctx.pods
    except DataUnavailable:
        return out
    pool_of: dict[str, str | None] = {}
    for node in by_node:
        try:
            pool_of[node] = ctx.pool_of_node(node)
        except DataUnavailable:
            pool_of[node] = None
    for p in pods:
        if not ctx.is_airflow_pod(p):
            continue
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


