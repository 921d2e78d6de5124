"""Which Google identity an Airflow component acts as, and how it got it.

Under Workload Identity (the cluster has a workload pool, the node pool runs the GKE metadata
server, and the pod's Kubernetes service account names a Google service account) a pod acts as
that Google service account. Otherwise it acts as the node's service account, limited by the node
pool's OAuth scopes. A KSA without the annotation on a Workload Identity pool acts as its own
federated principal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .views import Context, DataUnavailable, NodePool, Pod, as_dict

# Components that write task and component logs to remote storage.
LOG_WRITERS = ("task", "worker", "scheduler", "triggerer", "dag-processor")
LOG_READERS = ("api-server", "webserver")


@dataclass
class Identity:
    component: str
    ksa: str
    pods: list[Pod]
    kind: str                          # "gsa" | "node" | "federated"
    gsa: str | None = None             # Workload Identity GSA email
    pools: list[NodePool] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # how the chain was resolved (evidence)

    @property
    def label(self) -> str:
        return "task pods" if self.component == "task" else self.component

    def members(self, ctx: Context) -> set[str]:
        """IAM member strings this identity matches."""
        if self.kind == "gsa" and self.gsa:
            return {f"serviceAccount:{self.gsa}"}
        if self.kind == "federated":
            p, num = ctx.target.project, ctx.project_number
            subj = f"ns/{ctx.target.namespace}/sa/{self.ksa}"
            out = {f"principal://iam.googleapis.com/projects/{num}/locations/global/workloadIdentityPools/"
                   f"{p}.svc.id.goog/subject/{subj}"} if num else set()
            out.add(f"serviceAccount:{p}.svc.id.goog[{ctx.target.namespace}/{self.ksa}]")
            return out
        return {f"serviceAccount:{ctx.node_service_account(pool)}" for pool in self.pools}


def component_pods(ctx: Context, component: str) -> list[Pod]:
    if component == "task":
        return ctx.task_pods
    return [p for p in ctx.pods_by_component.get(component, []) if not p.is_task_pod]


def component_exists(ctx: Context, component: str) -> bool:
    if component == "task":
        return ctx.kubernetes_executor
    if ctx.pods_by_component.get(component):
        return True
    for coll_name in ("deployments", "statefulsets"):
        try:
            coll = getattr(ctx, coll_name)
        except DataUnavailable:
            continue
        if any(w.labels.get("component") == component and (ctx.release is None or w.labels.get("release") == ctx.release)
               for w in coll.values()):
            return True
    return False


def template_spec(ctx: Context, component: str) -> dict | None:
    """The pod spec a component's pods are made from: the chart's Deployment/StatefulSet template,
    or for ``task`` the KubernetesExecutor pod template; None when it cannot be read."""
    if component == "task":
        try:
            tpl = ctx.pod_template
        except DataUnavailable:
            return None
        return as_dict(tpl.get("spec")) if tpl else None
    for coll_name in ("deployments", "statefulsets"):
        try:
            coll = getattr(ctx, coll_name)
        except DataUnavailable:
            continue
        for w in coll.values():
            if w.labels.get("component") == component and (ctx.release is None or w.labels.get("release") == ctx.release):
                return as_dict(as_dict(w.spec.get("template")).get("spec"))
    return None


def resolve(ctx: Context, component: str) -> list[Identity]:
    """The identities a component's pods act as (one per KSA in use), or [] when it does not run.
    Computed once per run and component (several checks ask; do not modify the result)."""
    return ctx.shared(("resolve", component), lambda: _resolve(ctx, component))


def _resolve(ctx: Context, component: str) -> list[Identity]:
    if not component_exists(ctx, component):
        return []
    pods = component_pods(ctx, component)
    spec = template_spec(ctx, component)
    by_ksa: dict[str, list[Pod]] = {}
    for p in pods:
        by_ksa.setdefault(p.service_account, []).append(p)
    if not by_ksa and spec is not None:
        by_ksa[spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"] = []
    out = []
    pool_wi = ctx.workload_pool
    for ksa, kpods in sorted(by_ksa.items()):
        pools = ctx.pools_of(kpods, spec)
        gsa = ctx.gsa_of(ksa)
        notes = [f"{component if component != 'task' else 'task pods'} run as Kubernetes service account "
                 f"{ctx.target.namespace}/{ksa}"]
        wi_pools = [p for p in pools if p.gke_metadata]
        if pool_wi and pools and len(wi_pools) == len(pools):
            if gsa:
                notes.append(f"KSA annotation iam.gke.io/gcp-service-account: {gsa}")
                notes.append(f"cluster workload pool {pool_wi}; node pool(s) {', '.join(p.name for p in pools)} "
                             "run the GKE metadata server")
                out.append(Identity(component, ksa, kpods, "gsa", gsa, pools, notes))
            else:
                notes.append(f"KSA {ksa} has no iam.gke.io/gcp-service-account annotation; under Workload "
                             "Identity it acts as its own federated principal")
                out.append(Identity(component, ksa, kpods, "federated", None, pools, notes))
            continue
        if not pool_wi:
            notes.append("cluster has no Workload Identity pool (workloadIdentityConfig absent): pods use the node's "
                         "service account")
        else:
            off = [p.name for p in pools if not p.gke_metadata]
            notes.append(f"node pool(s) {', '.join(off)} do not run the GKE metadata server "
                         f"(workloadMetadataConfig.mode is not GKE_METADATA): pods use the node's service account")
        if gsa:
            notes.append(f"(the KSA's annotation {gsa} has no effect there)")
        out.append(Identity(component, ksa, kpods, "node", None, pools, notes))
    return out


def remote_log_folder(ctx: Context, component: str) -> tuple[str | None, str | None]:
    """(``gs://...`` folder, where it was set) when the component ships logs to Cloud Storage."""
    cfg = ctx.config(component)
    if not cfg.getboolean("logging", "remote_logging"):
        return None, None
    folder = cfg.get("logging", "remote_base_log_folder")
    if folder and folder.strip().startswith("gs://"):
        return folder.strip(), cfg.source("logging", "remote_base_log_folder")
    return None, None


def bucket_of(folder: str) -> str:
    return folder[len("gs://"):].split("/", 1)[0]
