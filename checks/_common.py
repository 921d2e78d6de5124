"""Helpers the checks share: commands filled with the user's real names, resources, quoting."""
from __future__ import annotations

import shlex

from airflow_gke.views import Context, DataUnavailable
from airflow_gke.model import Resource


def project(ctx: Context) -> str:
    return ctx.target.project or "PROJECT_ID"


def location(ctx: Context) -> str:
    return ctx.target.location or "LOCATION"


def cluster_name(ctx: Context) -> str:
    return ctx.target.cluster or "CLUSTER"


def release(ctx: Context) -> str:
    try:
        return ctx.release or "RELEASE"
    except DataUnavailable:
        return ctx.target.release or "RELEASE"


def ns(ctx: Context) -> str:
    return ctx.target.namespace


def q(value: str) -> str:
    """Shell-quote a value for a copy-pasteable command."""
    return shlex.quote(value)


def gke_flags(ctx: Context) -> str:
    return f"--location {q(location(ctx))} --project {q(project(ctx))}"


def helm_upgrade(ctx: Context, *sets: str) -> str:
    args = " ".join(sets)
    return (f"helm upgrade {q(release(ctx))} apache-airflow/airflow --namespace {q(ns(ctx))} --reuse-values"
            + (f" {args}" if args else ""))


def helm_sa_annotation(component_key: str, gsa: str) -> str:
    """``--set-string`` for a chart service account's Workload Identity annotation."""
    key = component_key + ".serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account"
    return f"--set-string {q(key + '=' + gsa)}"


# The chart's values key for each component's service account.
CHART_SA_KEY = {
    "task": "workers", "worker": "workers", "scheduler": "scheduler", "triggerer": "triggerer",
    "dag-processor": "dagProcessor", "api-server": "apiServer", "webserver": "webserver",
}


def project_resource(ctx: Context) -> Resource:
    p = project(ctx)
    return Resource("Project", p, None, f"//cloudresourcemanager.googleapis.com/projects/{p}")


def node_pool_resource(ctx: Context, pool: str) -> Resource:
    return Resource("NodePool", pool, None,
                    f"//container.googleapis.com/projects/{project(ctx)}/locations/{location(ctx)}"
                    f"/clusters/{cluster_name(ctx)}/nodePools/{pool}")


def bucket_resource(bucket: str) -> Resource:
    return Resource("Bucket", bucket, None, f"//storage.googleapis.com/projects/_/buckets/{bucket}")


def k8s_resource(ctx: Context, kind: str, name: str) -> Resource:
    return Resource(kind, name, ns(ctx), None)


def quote_event(e: dict) -> str:
    """An event as evidence: ``Warning ProvisioningFailed (x12, persistentvolume-controller): message``."""
    count = e.get("count") or (e.get("series") or {}).get("count") or 1
    src = (e.get("source") or {}).get("component") or e.get("reportingComponent") or e.get("reportingController") or ""
    where = f"x{count}" + (f", {src}" if src else "")
    return f"event {e.get('type', '')} {e.get('reason', '')} ({where}): {str(e.get('message', '')).strip()}"


def unreadable(entry, what: str, perm: str) -> str | None:
    """Why a policy read gives no answer (for iam.evaluate): not collected, or the failure with the
    permission it needs; None when it was read."""
    if entry is None:
        return f"not collected ({what})"
    if entry.ok:
        return None
    return f"HTTP {entry.status}: {entry.message} (needs {perm})"
