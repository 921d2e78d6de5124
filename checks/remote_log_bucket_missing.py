"""``[logging] remote_base_log_folder`` names a Cloud Storage bucket that does not exist (404), or
one the doctor may not even see (403: another project, or no access), so remote logs go nowhere."""
from __future__ import annotations

from airflow_gke.views import Context, DataUnavailable
from airflow_gke.views.identity import LOG_READERS, LOG_WRITERS, bucket_of, label, remote_log_folder, resolve
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import bucket_resource, helm_upgrade, project, q



@check(id="remote-log-bucket-missing", title="The remote log bucket exists", severity="error", category=Category.LOGGING,
       needs=("configmaps", "pods"),
       uses=("bucket", "cluster", "serviceaccounts", "deployments", "statefulsets", "nodes", "project"),
       evidence="config",
       severity_note="warning when the bucket could not be read")
def run(ctx: Context) -> Result:
    """remote_base_log_folder names a bucket that does not exist (404), or one the doctor cannot see (403: unproven)."""
    buckets: dict[str, list[tuple[str, str, str]]] = {}
    for comp in LOG_WRITERS + LOG_READERS:
        folder, where = remote_log_folder(ctx, comp)
        if folder:
            buckets.setdefault(bucket_of(folder), []).append((folder, label(comp), where or "?"))
    if not buckets:
        return skipped("remote logging does not use gs:// (no [logging] remote_logging with a gs:// "
                       "remote_base_log_folder for any component)")
    findings, unknown = [], []
    for bucket, uses in buckets.items():
        e = ctx.entry("bucket", bucket=bucket)
        if e is not None and e.ok:
            continue
        if e is not None and e.not_found:
            findings.append(_missing(ctx, bucket, uses, e))
        elif e is not None and e.status == 403:
            findings.append(_unseen(ctx, bucket, uses, e))
        else:
            unknown.append((bucket, e))
    if findings:
        return from_findings(findings)
    if unknown:
        bucket, e = unknown[0]
        raise ctx.unavailable("bucket", e, bucket=bucket)
    return passed()


def _dedup(uses: list[tuple[str, str, str]]) -> list[str]:
    """One line per folder and source, naming the components that share them."""
    out: dict[tuple[str, str], list[str]] = {}
    for folder, comp, where in uses:
        out.setdefault((folder, where), []).append(comp)
    return [f"[logging] remote_base_log_folder = {folder} for {', '.join(comps)} ({where})"
            for (folder, where), comps in out.items()]


def _members(ctx: Context, comps) -> list[str]:
    out = []
    for comp in comps:
        try:
            idents = resolve(ctx, comp)
        except DataUnavailable:
            return out
        for i in idents:
            for m in sorted(i.members(ctx)):
                if not m.startswith("principal://") and m not in out:
                    out.append(m)
                    break
    return out


def _missing(ctx: Context, bucket: str, uses, e) -> Finding:
    p = project(ctx)
    evidence = _dedup(uses) + [f"GET storage/v1/b/{bucket}: HTTP 404 {e.message}"]
    cmds = [f"gcloud storage buckets create gs://{bucket} --project {q(p)} --location {q(_region(ctx))} "
            "--uniform-bucket-level-access"]
    cmds += [f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q(m)} --role roles/storage.objectUser"
             for m in _members(ctx, LOG_WRITERS)]
    cmds += [f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q(m)} "
             "--role roles/storage.objectViewer" for m in _members(ctx, LOG_READERS)]
    folder = uses[0][0]
    cmds += ["# or point Airflow at an existing bucket:",
             helm_upgrade(ctx, f"--set-string config.logging.remote_base_log_folder={q(folder.replace(bucket, 'EXISTING_BUCKET', 1))}")]
    return Finding(
        title=f"Remote log bucket gs://{bucket} does not exist",
        message=(f"Airflow ships logs to gs://{bucket}, but Cloud Storage answers 404 for it (deleted, never created, or "
                 "a typo). Every upload fails and the UI shows `Unable to read remote log` / `No such object`; task "
                 "logs are lost with their pods. Bucket names are global: create it (or fix the folder), then grant "
                 "the writers object access and the api-server/webserver read access."),
        resource=bucket_resource(bucket),
        evidence=evidence,
        remediation=Remediation(summary="Create the bucket and grant the log writers and readers on it, or point "
                                        "remote_base_log_folder at an existing bucket.", commands=cmds),
    )


def _unseen(ctx: Context, bucket: str, uses, e) -> Finding:
    evidence = _dedup(uses) + [f"GET storage/v1/b/{bucket}: HTTP 403 {e.message}"]
    return Finding(
        title=f"Cannot tell whether remote log bucket gs://{bucket} exists: the doctor may not read it",
        message=(f"Reading gs://{bucket} was refused (403): the bucket may be in another project, or exist but be "
                 "closed to the identity running the doctor. Unproven either way: check it with an identity that "
                 "may see the bucket, and confirm that Airflow's writers and readers are granted on it."),
        resource=bucket_resource(bucket),
        evidence=evidence,
        remediation=Remediation(
            summary="Check the bucket and its project with an identity that may read it (storage.buckets.get).",
            commands=[f"gcloud storage buckets describe gs://{bucket} --format='value(name,projectNumber,location)'",
                      f"gcloud storage buckets get-iam-policy gs://{bucket} --format=json"]),
        severity="warning",
    )


def _region(ctx: Context) -> str:
    loc = ctx.target.location or "LOCATION"
    parts = loc.split("-")
    return "-".join(parts[:2]) if len(parts) == 3 and len(parts[2]) == 1 else loc
