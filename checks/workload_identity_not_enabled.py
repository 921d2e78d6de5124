"""Airflow service accounts are annotated for Workload Identity, but the cluster has no workload
pool or the node pool running the pods does not run the GKE metadata server: the annotation is
silently ignored and the pods act as the node's service account."""
from __future__ import annotations

from airflow_gke.views import Context, NodePool, as_dict
from airflow_gke.model import Finding, Remediation, Result, from_findings, skipped
from airflow_gke.registry import Category, check

from airflow_gke.views.identity import KsaUse, annotated_ksas, template_spec
from airflow_gke.remediation import cluster_name, cluster_resource, gke_flags, node_pool_resource, project, q



@check(id="workload-identity-not-enabled", title="Workload Identity is enabled where annotated Airflow pods run",
       severity="error", category=Category.IDENTITY, needs=("serviceaccounts", "pods", "cluster"),
       uses=("configmaps", "deployments", "statefulsets", "nodes", "project"),
       evidence="config")
def run(ctx: Context) -> Result:
    """KSAs name a Google service account, but the cluster has no workload pool or the pods' node pool is not GKE_METADATA."""
    ann = annotated_ksas(ctx)
    if not ann:
        return skipped("no Airflow service account is annotated iam.gke.io/gcp-service-account")
    if not ctx.workload_pool:
        return from_findings([_cluster_finding(ctx, ann)])
    by_pool: dict[str, dict] = {}
    for ksa, (gsa, use) in ann.items():
        for pool, how in _pools(ctx, use):
            if pool.gke_metadata:
                continue
            slot = by_pool.setdefault(pool.name, {"pool": pool, "lines": []})
            slot["lines"].append(f"KSA {ctx.target.namespace}/{ksa} ({use.labels}) is annotated "
                                 f"iam.gke.io/gcp-service-account: {gsa}; {how}")
    return from_findings([_pool_finding(ctx, v["pool"], v["lines"]) for v in by_pool.values()])


def _pools(ctx: Context, use: KsaUse) -> list[tuple[NodePool, str]]:
    """The node pools a KSA's pods run on (with how that is known); pools they could land on only
    when every candidate lacks the metadata server."""
    pools = ctx.node_pools
    placed: dict[str, list[str]] = {}
    for p in use.pods:
        name = ctx.pool_of_node(p.node) if p.node and ctx.has("nodes") else None
        if not name:
            name = as_dict(p.spec.get("nodeSelector")).get("cloud.google.com/gke-nodepool")
        if name:
            placed.setdefault(name, []).append(p.name)
    if placed:
        out = []
        for name, pods in sorted(placed.items()):
            if name in pools:
                shown = ", ".join(pods[:4]) + (f" and {len(pods) - 4} more" if len(pods) > 4 else "")
                out.append((pools[name], f"its pods run on node pool {name}: {shown}"))
        return out
    for comp in use.components:
        spec = template_spec(ctx, comp)
        sel = as_dict((spec or {}).get("nodeSelector")).get("cloud.google.com/gke-nodepool")
        if sel and sel in pools:
            return [(pools[sel], f"its pod template selects node pool {sel} (no pod running now)")]
    if pools and not any(pl.gke_metadata for pl in pools.values()):
        return [(pl, "no pod running now; every node pool it can land on lacks the GKE metadata server")
                for pl in pools.values()]
    return []


def _mode(pool: NodePool) -> str:
    m = pool.workload_metadata_mode
    return f"config.workloadMetadataConfig.mode {m}" if m else "no config.workloadMetadataConfig (GCE metadata)"


def _cluster_finding(ctx: Context, ann: dict) -> Finding:
    p, c = project(ctx), cluster_name(ctx)
    evidence = [f"cluster {c}: no workloadIdentityConfig.workloadPool (Workload Identity is off)"]
    for ksa, (gsa, use) in ann.items():
        evidence.append(f"KSA {ctx.target.namespace}/{ksa} ({use.labels}) is annotated "
                        f"iam.gke.io/gcp-service-account: {gsa}")
    pools = sorted(ctx.node_pools.values(), key=lambda pl: pl.name)
    for pl in pools:
        evidence.append(f"node pool {pl.name}: {_mode(pl)}, service account {ctx.node_service_account(pl)}")
    cmds = [f"gcloud container clusters update {q(c)} {gke_flags(ctx)} --workload-pool={q(p + '.svc.id.goog')}"]
    cmds += [f"gcloud container node-pools update {q(pl.name)} --cluster {q(c)} {gke_flags(ctx)} "
             "--workload-metadata=GKE_METADATA" for pl in pools]
    return Finding(
        title=f"Airflow service accounts are annotated for Workload Identity, but cluster {c} has no workload pool",
        message=(f"{len(ann)} Airflow KSA(s) name a Google service account, but Workload Identity is not enabled on "
                 f"cluster {c}: the annotation is ignored and the pods act as the node service account (limited by "
                 "the node scopes), so Google API calls fail with 403 or run with the wrong identity. Enable the "
                 "workload pool on the cluster, then the GKE metadata server on each node pool (updating a pool "
                 "recreates its nodes)."),
        resource=cluster_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            summary="Enable Workload Identity on the cluster and GKE_METADATA on the node pools that run Airflow; "
                    "then check the roles/iam.workloadIdentityUser bindings (wi-binding-missing).",
            commands=cmds),
    )


def _pool_finding(ctx: Context, pool: NodePool, lines: list[str]) -> Finding:
    c = cluster_name(ctx)
    evidence = [f"cluster {c}: workloadIdentityConfig.workloadPool {ctx.workload_pool}",
                f"node pool {pool.name}: {_mode(pool)}, so pods there get the node's token "
                f"({ctx.node_service_account(pool)})"] + lines
    return Finding(
        title=f"Node pool {pool.name} does not run the GKE metadata server, so annotated Airflow pods there ignore "
              "Workload Identity",
        message=(f"Cluster {c} has Workload Identity, but node pool {pool.name} was not switched to GKE_METADATA "
                 "(pools created before Workload Identity was enabled keep the GCE metadata server). Airflow pods on "
                 "it act as the node service account instead of the Google service account their KSA names. "
                 "Updating the pool recreates its nodes."),
        resource=node_pool_resource(ctx, pool.name),
        evidence=evidence,
        remediation=Remediation(
            summary=f"Run the GKE metadata server on node pool {pool.name}.",
            commands=[f"gcloud container node-pools update {q(pool.name)} --cluster {q(c)} {gke_flags(ctx)} "
                      "--workload-metadata=GKE_METADATA"]),
    )
