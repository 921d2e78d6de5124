"""Kubernetes Engine API disabled on the project: nothing of GKE can be created or read."""
from __future__ import annotations

from airflow_gke.views import Context, error_info
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import project, project_resource, q


SERVICE = "container.googleapis.com"


@check(id="container-api-disabled", title="Kubernetes Engine API is enabled", severity="error",
       category=Category.PROJECT, uses=("services", "cluster", "project"), evidence="config")
def run(ctx: Context) -> Result:
    """container.googleapis.com is disabled (Service Usage, or a 403 SERVICE_DISABLED from GKE)."""
    if ctx.target.project is None:
        return skipped("no project given")
    evidence: list[str] = []
    consumer = None
    svc = ctx.entry("services", service=SERVICE)
    cluster = ctx.entry("cluster")
    known = False
    if svc is not None and svc.ok and isinstance(svc.data, dict):
        state = svc.data.get("state")
        known = state in ("ENABLED", "DISABLED")
        if state == "DISABLED":
            evidence.append(f"Service Usage: {svc.data.get('name') or 'projects/' + project(ctx) + '/services/' + SERVICE}"
                            f" has state DISABLED")
    if cluster is not None and not cluster.ok and cluster.status == 403:
        info = error_info(cluster.error)
        if info.get("reason") == "SERVICE_DISABLED" and info.get("metadata", {}).get("service", SERVICE) == SERVICE:
            md = info.get("metadata", {})
            consumer = md.get("consumer")
            evidence.append(f"GET {cluster.path.split('/', 1)[1]} returned 403 SERVICE_DISABLED: {cluster.message}")
            if md.get("activationUrl"):
                evidence.append(f"activation URL: {md['activationUrl']}")
            known = True
    elif cluster is not None and cluster.ok:
        known = True   # GKE answered, so its API is on
    if evidence:
        target = project(ctx)
        if consumer and consumer.startswith("projects/"):
            cons = consumer.split("/", 1)[1]
            if cons not in (ctx.target.project, ctx.project_number):
                evidence.append(f"the error names consumer {consumer}: the API must be enabled there (the quota "
                                "project of the credentials), not only in the diagnosed project")
                target = cons
        f = Finding(
            title=f"Kubernetes Engine API (container.googleapis.com) is disabled in project {target}",
            message=("GKE clusters cannot be created or read while the Kubernetes Engine API is disabled; "
                     "`gcloud container clusters create` fails with `should enable service:container.googleapis.com` "
                     "and every GKE call returns 403 SERVICE_DISABLED. Enabling takes a few minutes; a brand-new "
                     "project may answer 503 'not fully initialized' meanwhile."),
            resource=project_resource(ctx),
            evidence=evidence,
            remediation=Remediation(
                summary="Enable the Kubernetes Engine API (and Compute Engine, which GKE needs), wait a few minutes, retry.",
                commands=[f"gcloud services enable container.googleapis.com compute.googleapis.com --project {q(target)}",
                          f"gcloud services list --enabled --project {q(target)} --filter=name:container.googleapis.com"]),
        )
        return from_findings([f])
    if known:
        return passed()
    if svc is not None and not svc.ok:
        raise ctx.unavailable("services", svc, service=SERVICE)
    if cluster is not None and not cluster.ok:   # read, but denied or unanswered: not "not collected"
        raise ctx.unavailable("cluster", cluster)
    return skipped(f"not collected: the state of {SERVICE} (Service Usage) and the GKE cluster")

