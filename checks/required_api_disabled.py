"""Google APIs the deployment relies on are disabled in the project (Cloud Storage for remote
logs, IAM and IAM Credentials under Workload Identity, Secret Manager for the secrets backend
or External Secrets, Artifact Registry for images on pkg.dev)."""
from __future__ import annotations

import json
import re

from airflow_gke.views import Context, DataUnavailable, as_dict, dig, error_info, google_repo, unreadable
from airflow_gke.views.identity import COMPONENTS, LOG_READERS, LOG_WRITERS, annotated_ksas, label, remote_log_folder
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt, project, project_resource, q


TITLES = {
    "storage.googleapis.com": "Cloud Storage API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "secretmanager.googleapis.com": "Secret Manager API",
    "artifactregistry.googleapis.com": "Artifact Registry API",
}
_ACTIVATION = re.compile(r"apis/api/([a-z0-9.-]+\.googleapis\.com)/overview\?project=([A-Za-z0-9-]+)")
_ESO_KEYS = ("secretstores", "secretstores_v1beta1")


@check(id="required-api-disabled", title="Google APIs the deployment uses are enabled", severity="error",
       category=Category.PROJECT,
       uses=("configmaps", "pods", "serviceaccounts", "services", "project", "deployments", "statefulsets", "bucket",
             "gsa", "logs") + _ESO_KEYS, evidence="config")
def run(ctx: Context) -> Result:
    """An API the deployment needs (storage, iam, iamcredentials, secretmanager, artifactregistry) is disabled."""
    if ctx.target.project is None:
        return skipped("no project given")
    cluster_data = {k: ctx.entry(k) for k in _CLUSTER_KEYS}
    if all(e is None for e in cluster_data.values()):
        return _preflight(ctx)
    for k, e in cluster_data.items():   # what the deployment uses comes from these: never guess it
        if e is None or not e.ok:
            raise ctx.unavailable(k, e)
    needed = _needed(ctx)
    if not needed:
        return passed()
    p = project(ctx)
    disabled: dict[str, list[str]] = {}
    unknown: list[str] = []
    for service in needed:
        e = ctx.entry("services", service=service)
        state = e.data.get("state") if e is not None and e.ok and isinstance(e.data, dict) else None
        if state == "DISABLED":
            disabled[service] = [f"Service Usage: {e.data.get('name') or f'projects/{p}/services/{service}'} "
                                 "has state DISABLED"]
        elif state != "ENABLED":
            unknown.append(service)
    for service, line in _refused_calls(ctx, needed):
        disabled.setdefault(service, []).append(line)
        if service in unknown:
            unknown.remove(service)
    if disabled:
        return from_findings([_finding(ctx, disabled, needed)])
    if unknown:
        e = ctx.entry("services", service=unknown[0])
        raise ctx.unavailable("services", e, service=unknown[0])
    return passed()


_CLUSTER_KEYS = ("configmaps", "pods", "serviceaccounts")
# What an Airflow deployment on GKE uses each API for, before it exists (project preflight).
_PREFLIGHT_USE = {
    "storage.googleapis.com": "remote task logs on gs:// ([logging] remote_base_log_folder)",
    "iam.googleapis.com": "Workload Identity (KSAs annotated iam.gke.io/gcp-service-account)",
    "iamcredentials.googleapis.com": "Workload Identity tokens for the Google service account the KSAs name",
    "secretmanager.googleapis.com": "the Secret Manager secrets backend or External Secrets",
    "artifactregistry.googleapis.com": "Airflow images on *-docker.pkg.dev",
}


def _preflight(ctx: Context) -> Result:
    """A project preflight (no cluster was read): judge the API states that were read. What the
    deployment will use is not known yet, so a disabled API is a warning naming what needs it."""
    p = project(ctx)
    states: dict[str, str] = {}
    failed = None
    for service in _PREFLIGHT_USE:
        e = ctx.entry("services", service=service)
        if e is None or (e.not_found and not unreadable(e)):
            continue   # not collected, or no such service in this project: nothing to judge
        if not e.ok:
            if not e.not_found:   # a 404 answers that no state is recorded: like not collected
                failed = failed or ctx.unavailable("services", e, service=service)
            continue
        state = e.data.get("state") if isinstance(e.data, dict) else None
        if state in ("ENABLED", "DISABLED"):
            states[service] = state
    disabled = sorted(s for s, st in states.items() if st == "DISABLED")
    if disabled:
        evidence = [f"Service Usage: projects/{p}/services/{s} has state DISABLED; needed for {_PREFLIGHT_USE[s]}"
                    for s in disabled]
        evidence.append("project preflight: no cluster or Airflow release was read, so which of these the "
                        "deployment will use is not known yet")
        return from_findings([Finding(
            title=f"{len(disabled)} API(s) an Airflow deployment on GKE usually needs are disabled in project {p}: "
                  f"{', '.join(disabled)}",
            message=("Project preflight: " + "; ".join(f"{TITLES[s]} ({s}) is disabled, needed for {_PREFLIGHT_USE[s]}"
                                                       for s in disabled)
                     + ". Enable the ones the deployment will use before installing it."),
            resource=project_resource(ctx), evidence=evidence, severity="warning",
            remediation=Remediation(
                summary="Enable the APIs the deployment will use (it takes a few minutes).",
                commands=[f"gcloud services enable {' '.join(disabled)} --project {q(p)}"]))])
    if failed is not None:
        raise failed
    if not states:
        return skipped("project preflight: the state of no API the deployment uses was read")
    return passed()


def _needed(ctx: Context) -> dict[str, list[str]]:
    """API -> why the deployment needs it (evidence lines)."""
    out: dict[str, list[str]] = {}
    for comp in LOG_WRITERS + LOG_READERS:
        folder, where = remote_log_folder(ctx, comp)
        if folder:
            why = f"remote logging writes/reads {folder} ({label(comp)}: {where})"
            out.setdefault("storage.googleapis.com", [])
            if not any(folder in w for w in out["storage.googleapis.com"]):
                out["storage.googleapis.com"].append(why)
    ann = annotated_ksas(ctx)
    if ann:
        first = next(iter(ann.items()))
        why = (f"Workload Identity: KSA {ctx.target.namespace}/{first[0]} ({first[1][1].labels}) is annotated "
               f"iam.gke.io/gcp-service-account: {first[1][0]}"
               + (f" (and {len(ann) - 1} more annotated KSA(s))" if len(ann) > 1 else "")
               + "; the GKE metadata server mints its tokens through IAM Service Account Credentials")
        out["iam.googleapis.com"] = [why]
        out["iamcredentials.googleapis.com"] = [why]
    sm = _secret_manager_uses(ctx)
    if sm:
        out["secretmanager.googleapis.com"] = sm
    ar = _registry_uses(ctx)
    if ar:
        out["artifactregistry.googleapis.com"] = ar
    return out


def _secret_manager_uses(ctx: Context) -> list[str]:
    out = []
    for comp in COMPONENTS:
        cfg = ctx.config(comp)
        backend = cfg.get("secrets", "backend") or ""
        if "CloudSecretManagerBackend" not in backend:
            continue
        kwargs = cfg.get("secrets", "backend_kwargs") or ""
        other = None
        try:
            other = as_dict(json.loads(kwargs)).get("project_id") if kwargs.strip() else None
        except ValueError:
            other = None
        if other and other != ctx.target.project:
            continue   # secrets live in another project, whose APIs this snapshot does not show
        out.append(f"[secrets] backend = {backend.strip()} ({label(comp)}: {cfg.source('secrets', 'backend')})")
        break
    for key in _ESO_KEYS:
        try:
            body = ctx.body(key)
        except DataUnavailable:
            continue
        for st in (body or {}).get("items") or []:
            gcpsm = dig(st, "spec", "provider", "gcpsm")
            if not isinstance(gcpsm, dict):
                continue
            pid = gcpsm.get("projectID")
            if pid and pid != ctx.target.project:
                continue
            out.append(f"External Secrets SecretStore {dig(st, 'metadata', 'name')} uses provider gcpsm "
                       f"(projectID {pid or 'unset'})")
            return out
    return out


def _registry_uses(ctx: Context) -> list[str]:
    seen: dict[str, str] = {}
    for img, p in ctx.airflow_images.items():   # each image once, with the first pod using it
        repo = google_repo(img)
        if repo and repo.host.endswith(".pkg.dev") and repo.project == ctx.target.project:
            seen[img] = p.name
    if not seen:
        tpl = ctx.pod_template
        for c in (as_dict(tpl.get("spec")).get("containers") or []) if tpl else []:
            img = str(as_dict(c).get("image") or "")
            repo = google_repo(img)
            if repo and repo.host.endswith(".pkg.dev") and repo.project == ctx.target.project:
                seen[img] = "the KubernetesExecutor pod template"
    return [f"image {img} (pod {who})" if not who.startswith("the ") else f"image {img} ({who})"
            for img, who in list(seen.items())[:3]]


def _refused_calls(ctx: Context, needed: dict) -> list[tuple[str, str]]:
    """(API, evidence) from reads and component logs that were refused with SERVICE_DISABLED for
    the diagnosed project."""
    mine = {ctx.target.project, ctx.project_number}
    out: list[tuple[str, str]] = []
    entries = []
    for ksa, (gsa, _use) in annotated_ksas(ctx).items():
        entries.append(ctx.entry("gsa", email=gsa))
    for comp in LOG_WRITERS:
        folder, _w = remote_log_folder(ctx, comp)
        if folder:
            entries.append(ctx.entry("bucket", bucket=folder[5:].split("/", 1)[0]))
    for e in entries:
        if e is None or e.ok or e.status != 403:
            continue
        info = error_info(e.error)
        md = info.get("metadata") or {}
        service = md.get("service")
        consumer = str(md.get("consumer") or "").split("/", 1)[-1]
        if info.get("reason") == "SERVICE_DISABLED" and service in needed and consumer in mine:
            out.append((service, f"GET {e.path.split('/', 1)[1]} returned 403 SERVICE_DISABLED: {e.message[:300]}"))
    scanned = 0
    for p in ctx.pods:
        if scanned >= 200:
            break   # every later pod would be skipped
        if not ctx.is_airflow_pod(p):
            continue
        for cs in p.container_statuses:
            if cs.ready and not cs.restarts:
                continue   # logs are collected for containers not ready, finished or restarted
            scanned += 1
            for line in ctx.log_lines(p.name, cs.name)[-300:]:
                m = _ACTIVATION.search(line)
                if m and m.group(1) in needed and m.group(2) in mine:
                    out.append((m.group(1), f"log {p.name}/{cs.name}: {excerpt(line, m)}"))
                    break
        if len(out) >= 6:
            break
    return out


def _finding(ctx: Context, disabled: dict[str, list[str]], needed: dict[str, list[str]]) -> Finding:
    p = project(ctx)
    names = sorted(disabled)
    evidence = []
    for s in names:
        evidence += disabled[s][:1] + [f"{s} is needed: {why}" for why in needed.get(s, [])] + disabled[s][1:]
    titles = ", ".join(f"{TITLES.get(s, s)} ({s})" for s in names)
    effects = {
        "storage.googleapis.com": "log uploads and reads of gs:// fail with 403 SERVICE_DISABLED",
        "iam.googleapis.com": "Workload Identity cannot mint Google service account tokens",
        "iamcredentials.googleapis.com": "pods on Workload Identity get no token for their Google service account",
        "secretmanager.googleapis.com": "connections and variables from Secret Manager cannot be read",
        "artifactregistry.googleapis.com": "nodes cannot pull the Airflow image from Artifact Registry",
    }
    return Finding(
        title=f"{len(names)} API(s) the deployment needs are disabled in project {p}: {', '.join(names)}",
        message=(f"The deployment relies on {titles}, disabled in project {p}: "
                 + "; ".join(effects[s] for s in names if s in effects)
                 + ". Enabling an API takes effect within a few minutes; nothing else needs to change."),
        resource=project_resource(ctx),
        evidence=evidence,
        remediation=Remediation(
            summary="Enable the APIs in the project, wait a few minutes, then restart the failing pods.",
            commands=[f"gcloud services enable {' '.join(names)} --project {q(p)}",
                      f"gcloud services list --enabled --project {q(p)} "
                      f"--filter={q('name:(' + ' OR '.join(names) + ')')}"]),
    )
