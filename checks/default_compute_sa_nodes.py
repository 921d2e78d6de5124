"""Node pools that run Airflow use the Compute Engine default service account."""
from __future__ import annotations

from airflow_gke.views import Context, NodePool
from airflow_gke.views.iam import member_roles
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (cluster_name, enable_workload_pool, gke_flags, node_pool_resource, node_sa_commands,
                                     project, q, replacement_pool)

from ._identity import airflow_pods_by_pool, airflow_pools, is_compute_default


@check(id="default-compute-sa-nodes", title="Node pools running Airflow use a dedicated service account",
       severity="warning", category=Category.IDENTITY, needs=("cluster",),
       uses=("pods", "nodes", "project", "project_iam"),
       evidence="config")
def run(ctx: Context) -> Result:
    """Node pools that run Airflow pods (all pools when none can be tied) use the Compute Engine default SA."""
    pools, tied = airflow_pools(ctx)
    return from_findings([_finding(ctx, pl, tied) for pl in pools if is_compute_default(ctx, pl)])


def _airflow_pods_on(ctx: Context, pool: NodePool) -> list[str]:
    return airflow_pods_by_pool(ctx).get(pool.name, [])


def _finding(ctx: Context, pool: NodePool, tied: bool) -> Finding:
    p, c = project(ctx), cluster_name(ctx)
    email = ctx.node_service_account(pool)
    pods = _airflow_pods_on(ctx, pool)
    evidence = [f"node pool {pool.name}: config.serviceAccount {pool.service_account}"
                + (f" ({email})" if pool.service_account == "default" else "")]
    if pods:
        evidence.append(f"Airflow pods on it: {', '.join(pods[:5])}" + (f" and {len(pods) - 5} more" if len(pods) > 5 else ""))
    elif not tied:
        evidence.append("no Airflow pod could be tied to a node pool; every pool of the cluster is considered")
    pe = ctx.entry("project_iam")
    if pe is not None and pe.ok and "@" in email:
        roles = sorted(member_roles(pe.data, {f"serviceAccount:{email}"}))
        if roles:
            evidence.append(f"{email} holds on project {p}: {', '.join(roles)}")
    # THE replacement pool (remediation.replacement_pool): node-storage-scope-read-only proposes the
    # same one, so a report never creates two pools
    _name, create = replacement_pool(ctx, pool)
    cmds = node_sa_commands(ctx)
    enable = enable_workload_pool(ctx)
    if enable:
        cmds.append("# the new pool runs the GKE metadata server, which needs the cluster's Workload Identity pool;\n"
                    "# pods that used the node's Google identity need their own (see workload-identity-not-enabled)\n"
                    + enable)
    sel = q(f"cloud.google.com/gke-nodepool={pool.name}")
    cmds += [create,
             f"kubectl cordon -l {sel}",
             f"kubectl drain -l {sel} --ignore-daemonsets --delete-emptydir-data",
             f"gcloud container node-pools delete {q(pool.name)} --cluster {q(c)} {gke_flags(ctx)}"]
    return Finding(
        title=f"Node pool {pool.name} runs as the Compute Engine default service account",
        message=(f"Nodes of {pool.name} use {email}. It is shared with every VM of the project that does not name "
                 "another account, often holds roles/editor (granted automatically in older projects), and every "
                 "pod not on Workload Identity can use its token. GKE recommends a dedicated, minimally privileged "
                 "node service account (roles/container.defaultNodeServiceAccount). A node pool's service account "
                 "cannot be changed: create a new pool and move the workloads."),
        resource=node_pool_resource(ctx, pool.name),
        evidence=evidence,
        remediation=Remediation(
            summary="Create a dedicated node service account with the minimal node role, create a node pool that "
                    "uses it (cloud-platform scope, GKE metadata server: pods act as their Workload Identity, never as "
                    "the node), drain the old pool and delete it.",
            commands=cmds),
    )
