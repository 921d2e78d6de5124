"""Airflow pods take Google credentials from the node, and the node pool's OAuth scopes cannot
write to Cloud Storage, so remote logs to gs:// fail with 403 whatever IAM says."""
from __future__ import annotations

from airflow_gke.views import Context, DataUnavailable
from airflow_gke.views.iam import evaluate
from airflow_gke.views.identity import LOG_WRITERS, bucket_of, remote_log_folder, resolve
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (CHART_KEY, cluster_name, cluster_resource, enable_workload_pool, gke_flags,
                                     helm_sa_annotation, helm_upgrade, node_pool_resource, node_sa_commands, ns, planned,
                                     project, q, replacement_pool)

from ._identity import is_compute_default, wi_binding_state


@check(id="node-storage-scope-read-only", title="Nodes running Airflow can write to Cloud Storage",
       severity="error", category=Category.IDENTITY, needs=("configmaps", "pods", "serviceaccounts", "cluster"),
       uses=("deployments", "statefulsets", "nodes", "project"),
       evidence="config",
       severity_note="when remote logging writes to `gs://`; skipped otherwise")
def run(ctx: Context) -> Result:
    """Remote logging writes to gs:// with node credentials whose scopes are read-only."""
    by_pool: dict[str, dict] = {}
    any_remote = False
    for comp in LOG_WRITERS:
        folder, where = remote_log_folder(ctx, comp)
        if not folder:
            continue
        for ident in resolve(ctx, comp):
            any_remote = True
            if ident.kind != "node":
                continue
            for pool in ident.pools:
                if pool.can_write_storage:
                    continue
                slot = by_pool.setdefault(pool.name, {"pool": pool, "idents": [], "folder": folder, "where": where})
                slot["idents"].append(ident)
    if not any_remote:
        return skipped("remote logging does not write to gs:// (no [logging] remote_logging with a gs:// "
                       "remote_base_log_folder for any log-writing component)")
    return from_findings([_finding(ctx, v["pool"], v["idents"], v["folder"], v["where"]) for v in by_pool.values()])


def _finding(ctx: Context, pool, idents, folder: str, where: str) -> Finding:
    p, c = project(ctx), cluster_name(ctx)
    bucket = bucket_of(folder)
    node_sa = ctx.node_service_account(pool)
    comps = sorted({i.label for i in idents})
    ksas = sorted({i.ksa for i in idents})
    evidence = [
        f"[logging] remote_base_log_folder = {folder} ({where})",
        f"node pool {pool.name}: config.oauthScopes {pool.scopes or '[] (none)'}: none of cloud-platform, "
        "devstorage.read_write, devstorage.full_control",
        f"node pool {pool.name}: config.serviceAccount {pool.service_account}"
        + (f" ({node_sa})" if pool.service_account == "default" else ""),
    ]
    seen = set()
    for i in idents:
        for n in i.notes:
            if n not in seen:
                seen.add(n)
                evidence.append(n)
    # What exists already is not created again: the workload pool, the annotated GSA, its bucket
    # role, each KSA's binding, the annotations.
    named = sorted({g for i in idents if (g := ctx.gsa_of(i.ksa))})
    gsa = named[0] if len(named) == 1 else f"airflow@{p}.iam.gserviceaccount.com"
    g_entry = ctx.entry("gsa", email=gsa) if len(named) == 1 else None   # only a GSA the KSAs name is read
    exists = g_entry is not None and g_entry.ok
    try:
        pool_on = bool(ctx.workload_pool)
    except DataUnavailable:
        pool_on = False
    cmds = []
    if not pool_on:
        cmds.append(f"gcloud container clusters update {q(c)} {gke_flags(ctx)} --workload-pool={q(p + '.svc.id.goog')}")
    else:
        evidence.append(f"cluster {c} already has workloadIdentityConfig.workloadPool {ctx.workload_pool}")
    if exists:
        evidence.append(f"the KSAs are annotated with {gsa}, which exists")
    else:
        cmds.append(f"gcloud iam service-accounts create {q(gsa.split('@')[0])} --project {q(p)} --display-name 'Airflow on GKE'")
    be = ctx.entry("bucket_iam", bucket=bucket)
    pe = ctx.entry("project_iam")
    held = evaluate("storage.objects.create", {f"serviceAccount:{gsa}"},
                    [(f"bucket gs://{bucket}", be.data if be is not None and be.ok else None, None),
                     (f"project {p}", pe.data if pe is not None and pe.ok else None, None)])
    if held.verdict == "granted":
        evidence.append(f"{gsa} already holds {'; '.join(held.grants)}")
    else:
        cmds.append(f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q('serviceAccount:' + gsa)} "
                    "--role roles/storage.objectUser")
    for ksa in ksas:
        if exists and wi_binding_state(ctx, ksa, gsa) == "granted":
            continue
        cmds.append(f"gcloud iam service-accounts add-iam-policy-binding {q(gsa)} --project {q(p)} "
                    f"--role roles/iam.workloadIdentityUser --member {q(f'serviceAccount:{p}.svc.id.goog[{ns(ctx)}/{ksa}]')}")
    sets = []
    for i in sorted(idents, key=lambda i: i.component):
        key = CHART_KEY.get(i.component)
        if key and ctx.gsa_of(i.ksa) != gsa and helm_sa_annotation(key, gsa) not in sets:
            sets.append(helm_sa_annotation(key, gsa))
    if sets:
        cmds.append(helm_upgrade(ctx, *sets))
    # last: the pods restart on the GKE metadata server once their Google identity is ready
    moves: list[str] = []
    if is_compute_default(ctx, pool):
        # the pool also runs as the Compute Engine default SA (default-compute-sa-nodes): move Airflow to
        # THE replacement pool that check proposes too, instead of recreating this pool's nodes
        new, create = replacement_pool(ctx, pool)
        sel = q(f"cloud.google.com/gke-nodepool={pool.name}")
        moves += node_sa_commands(ctx)
        moves.append(f"# Airflow moves to {new}: GKE metadata server, dedicated service account (as default-compute-sa-nodes)\n"
                     + create)
        if not planned(ctx):        # before a deploy, the release's pods simply start on the new pool
            moves += [f"kubectl cordon -l {sel}", f"kubectl drain -l {sel} --ignore-daemonsets --delete-emptydir-data"]
    else:
        moves.append(f"# recreates the nodes of pool {pool.name} (drained and replaced)\n"
                     f"gcloud container node-pools update {q(pool.name)} --cluster {q(c)} {gke_flags(ctx)} "
                     "--workload-metadata=GKE_METADATA")
    cmds += moves
    use = "would use" if planned(ctx) else "use"
    return Finding(
        title=f"Node pool {pool.name} has read-only Cloud Storage scopes, and {', '.join(comps)} {use} its credentials "
              f"to write logs to gs://{bucket}",
        message=(f"{', '.join(comps)} are not on Workload Identity, so they take the node's service account token, "
                 f"which the OAuth scopes of node pool {pool.name} limit to reading Cloud Storage. Log uploads to "
                 f"gs://{bucket} fail with 403 whatever IAM grants; scopes of an existing node pool cannot be changed. "
                 "Prefer Workload Identity (node scopes do not limit it); never grant roles/editor to work around this."),
        resource=node_pool_resource(ctx, pool.name),
        evidence=evidence,
        caused_by=([finding_id("workload-identity-not-enabled", cluster_resource(ctx) if not pool_on
                               else node_pool_resource(ctx, pool.name))] if named else []),
        remediation=Remediation(
            summary=("Move Airflow to Workload Identity: enable the workload pool, run the GKE metadata server on the "
                     "pool (a pool running as the Compute Engine default service account is replaced instead: one "
                     "new pool with a dedicated service account), give a dedicated Google service account write "
                     "access to the bucket, let the Airflow service accounts impersonate it, and annotate them."),
            commands=cmds),
    )
