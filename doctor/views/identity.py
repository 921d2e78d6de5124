"""Who each Airflow component runs as: its Kubernetes service accounts, and the Google identity
each acts as, with how it got it. The one answer used by the checks and by the live planner
(``doctor/live/plan.py`` reads the Google service accounts named here, and no others).

Under Workload Identity (the cluster has a workload pool, the node pool runs the GKE metadata
server, and the pod's Kubernetes service account names a Google service account) a pod acts as
that Google service account. Otherwise it acts as the node's service account, limited by the node
pool's OAuth scopes. A KSA without the annotation on a Workload Identity pool acts as its own
federated principal.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .airflow import AIRFLOW_COMPONENTS
from .base import DataUnavailable, as_dict
from .google import NodePool
from .kube import Obj, Pod

Context = Any   # the views' Context (doctor/views/__init__.py), assembled from the views this module uses

# Every component whose pods may act as a Google identity (task pods first).
COMPONENTS = ("task",) + AIRFLOW_COMPONENTS
# Components that write task and component logs to remote storage.
LOG_WRITERS = ("task", "worker", "scheduler", "triggerer", "dag-processor")
LOG_READERS = ("api-server", "webserver")
# A Google service account email as it may appear in a read's path (annotations are free text).
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")
# Cloud Storage bucket names (https://cloud.google.com/storage/docs/buckets#naming), loosely.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def label(component: str) -> str:
    return "task pods" if component == "task" else component


def sa_of_spec(spec: dict) -> str:
    """The service account a pod spec runs as (``default`` when it names none)."""
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


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
        return label(self.component)

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


def component_workload(ctx: Context, component: str) -> tuple[str, Obj] | None:
    """The release's Deployment or StatefulSet of ``component`` as (kind, object); None when there is
    none or neither list could be read (the failed reads are recorded as usual)."""
    for kind, coll_name in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
        try:
            coll = getattr(ctx, coll_name)
        except DataUnavailable:
            continue
        for w in coll.values():
            if w.labels.get("component") == component and (ctx.release is None or w.labels.get("release") == ctx.release):
                return kind, w
    return None


def component_exists(ctx: Context, component: str) -> bool:
    if component == "task":
        return ctx.kubernetes_executor
    if ctx.pods_by_component.get(component):
        return True
    return component_workload(ctx, component) is not None


def template_spec(ctx: Context, component: str) -> dict | None:
    """The pod spec a component's pods are made from: the chart's Deployment/StatefulSet template,
    or for ``task`` the KubernetesExecutor pod template; None when it cannot be read."""
    if component == "task":
        try:
            tpl = ctx.pod_template
        except DataUnavailable:
            return None
        return as_dict(tpl.get("spec")) if tpl else None
    found = component_workload(ctx, component)
    return as_dict(as_dict(found[1].spec.get("template")).get("spec")) if found else None


def ksa_pods(ctx: Context, component: str) -> dict[str, list[Pod]]:
    """The Kubernetes service accounts a component runs as -> its pods running as each: from its
    running pods, else from the pod spec they are made from (its controller's template, or the
    KubernetesExecutor pod template for ``task``, with no pods); {} when the component does not
    run. THE rule for "who does a component run as" (checks and the live planner ask this)."""
    return ctx.derive(("ksa_pods", component), _ksa_pods, ctx, component)


def _ksa_pods(ctx: Context, component: str) -> dict[str, list[Pod]]:
    if not component_exists(ctx, component):
        return {}
    names: dict[str, list[Pod]] = {}
    for p in component_pods(ctx, component):
        names.setdefault(p.service_account, []).append(p)
    if not names:
        spec = template_spec(ctx, component)
        if spec is not None:
            names[sa_of_spec(spec)] = []
    return names


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
    """KSA name -> its use by the Airflow components (``ksa_pods`` of each). Needs pods; raises
    when one component cannot be resolved. Shared: do not modify the result."""
    return ctx.derive("ksas_in_use", _ksas_in_use, ctx)


def _ksas_in_use(ctx: Context) -> dict[str, KsaUse]:
    out: dict[str, KsaUse] = {}
    for comp in COMPONENTS:
        for ksa, kpods in ksa_pods(ctx, comp).items():
            use = out.setdefault(ksa, KsaUse(ksa, [], []))
            if comp not in use.components:
                use.components.append(comp)
            use.pods.extend(kpods)
    return out


def annotated_ksas(ctx: Context) -> dict[str, tuple[str, KsaUse]]:
    """KSA -> (Google service account it names, its use) for the annotated KSAs Airflow runs as."""
    return ctx.derive("annotated_ksas", _annotated_ksas, ctx)


def _annotated_ksas(ctx: Context) -> dict[str, tuple[str, KsaUse]]:
    out = {}
    for ksa, use in sorted(ksas_in_use(ctx).items()):
        gsa = ctx.gsa_of(ksa)
        if gsa:
            out[ksa] = (gsa, use)
    return out


def named_gsas(ctx: Context) -> tuple[list[str], list[str]]:
    """(KSAs, Google service accounts) that any check may look up: the KSAs of every component
    that can be resolved (one that cannot is left out, not the rest) and the well-formed GSA emails
    they are annotated with, in first-use order. What the live planner reads (``gsa``,
    ``gsa_iam``); with every read answered it is ``ksas_in_use`` and ``annotated_ksas``."""
    ksas: list[str] = []
    for comp in COMPONENTS:
        try:
            found = ksa_pods(ctx, comp)
        except DataUnavailable:
            continue
        ksas += [k for k in found if k not in ksas]
    emails: list[str] = []
    for ksa in ksas:
        try:
            email = ctx.gsa_of(ksa)
        except DataUnavailable:
            break
        if email and _EMAIL.match(email) and email not in emails:
            emails.append(email)
    return ksas, emails


def gsa_emails(ctx: Context, opts: object = None) -> list[str]:
    """The items of the ``gsa`` and ``gsa_iam`` data keys (doctor/data.py): ``named_gsas``."""
    return named_gsas(ctx)[1]


def resolve(ctx: Context, component: str) -> list[Identity]:
    """The identities a component's pods act as (one per KSA in use), or [] when it does not run.
    Computed once per run and component (several checks ask; do not modify the result)."""
    return ctx.derive(("resolve", component), _resolve, ctx, component)


def _resolve(ctx: Context, component: str) -> list[Identity]:
    if not component_exists(ctx, component):
        return []
    by_ksa = ksa_pods(ctx, component)
    spec = template_spec(ctx, component)
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


def log_buckets(ctx: Context, opts: object = None) -> list[str]:
    """The items of the ``bucket`` and ``bucket_iam`` data keys (doctor/data.py): the buckets of
    ``gs://`` remote_base_log_folder as the log writers and readers resolve it."""
    out: list[str] = []
    for comp in LOG_WRITERS + LOG_READERS:
        try:
            folder, _where = remote_log_folder(ctx, comp)
        except DataUnavailable:
            continue
        if folder:
            b = bucket_of(folder)
            if _BUCKET.match(b) and b not in out:
                out.append(b)
    return out


# The permissions of the log checks whose group grants a membership answer can settle.
_LOG_PERMISSIONS = ("storage.objects.create", "storage.objects.get")


def group_memberships(ctx: Context, opts: object = None) -> list[dict]:
    """The items of the optional ``group_membership`` key (doctor/data.py): each Google group that
    the project or log bucket policy grants a storage role to, with each service account the log
    writers and readers act as. Nothing when no policy names such a group."""
    from .iam import storage_groups

    groups: list[str] = []
    for e in [ctx.entry("project_iam")] + [ctx.entry("bucket_iam", bucket=b) for b in log_buckets(ctx)]:
        if e is not None and e.ok:
            groups += [g for g in storage_groups(e.data, _LOG_PERMISSIONS) if g not in groups]
    if not groups:
        return []
    members: list[str] = []
    for comp in LOG_WRITERS + LOG_READERS:
        try:
            idents = resolve(ctx, comp)
        except DataUnavailable:
            continue
        for ident in idents:
            if ident.kind == "federated":
                continue   # a federated principal cannot be a group member (doctor/views/iam.py)
            for m in sorted(ident.members(ctx)):
                if m.startswith("serviceAccount:") and ".svc.id.goog[" not in m and m[15:] not in members:
                    members.append(m[15:])
    return [{"group": g, "member": m} for g in groups for m in members]
