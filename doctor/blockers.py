"""One cause, one line: what kept checks from running, named once with the checks it blocked.

A disabled API, a missing permission or a server that did not answer usually blocks many checks.
Each check keeps a meaningful ``reason`` of its own; the reports group the checks that were not
checked by *cause* (``Cause.id``) so the "not checked" part names each cause once, with its fix
and the API's answer once, instead of repeating a 400-character error body per check.

``classify`` decides what a failed or absent read means, from the answer itself and never by
matching the wording of a check's reason:

- ``service-disabled``: a Google API answered 403 with ``SERVICE_DISABLED`` (or the legacy
  ``accessNotConfigured``): the fix is to enable that API, not to grant a permission;
- ``billing-disabled``: 403 ``BILLING_DISABLED``: the project has no billing account;
- ``scope-insufficient``: 403 ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``: the credentials' OAuth scopes
  are too narrow (node or VM scopes), granting a role does not help;
- ``unauthenticated``: 401: the credentials were rejected;
- ``permission``: any other 401/403: grant that RBAC verb or IAM permission;
- ``no-answer``: no HTTP answer (timeout, refused, reset), per API;
- ``http-error``: another status (404 cluster not found, 400, 5xx ...), per read;
- ``not-read``: the source left a whole side out on purpose (a project preflight reads no cluster);
- ``not-collected``: absent from the snapshot, per side (Kubernetes, Google Cloud);
- ``needs-target``: the target lacks a field the read needs (no cluster given).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .data import KEYS, Target
from .source import Entry, error_info

# The check that reports a disabled API as a finding of its own.
API_CHECK = {"container.googleapis.com": "container-api-disabled"}
DEFAULT_API_CHECK = "required-api-disabled"
_MESSAGE_MAX = 400


@dataclass(frozen=True)
class Cause:
    id: str                       # stable: the same cause gets the same id in every check
    kind: str
    status: str                   # "error" (a read failed) or "skip" (nothing was read)
    summary: str                  # what happened, one line, without the API's body
    fix: str                      # what to do about it
    message: str | None = None    # the API's answer (shown once per cause)
    service: str | None = None    # the Google API, for service-disabled
    command: str | None = None    # the fix's command, when there is one to paste

    @property
    def fix_text(self) -> str:
        return f"{self.fix}: {self.command}" if self.command else self.fix


@dataclass
class Blocker:
    """A cause with every read it explains and every check it blocked (for the reports)."""

    cause: Cause
    reads: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        c = self.cause
        return {"id": c.id, "kind": c.kind, "status": c.status, "summary": c.summary, "fix": c.fix,
                "command": c.command, "message": c.message, "reads": list(self.reads), "checks": list(self.checks)}


def _short(msg: str | None) -> str | None:
    if not msg:
        return None
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= _MESSAGE_MAX else msg[:_MESSAGE_MAX - 1] + "…"


def _google_service(key_name: str, entry: Entry) -> str:
    md = error_info(entry.error).get("metadata") or {}
    svc = md.get("service") if isinstance(md, dict) else None
    if isinstance(svc, str) and svc:
        return svc
    return f"{KEYS[key_name].template.split('/')[1]}.googleapis.com"   # gcp/<service>/...


def classify(key_name: str, entry: Entry | None, target: Target, params: dict | None = None,
             unread: dict | None = None) -> tuple[Cause, str] | None:
    """(the cause, the read it explains as text) of a read that did not give data, or None when it
    did (or when a 404 is an answer for that key)."""
    k = KEYS[key_name]
    params = dict(params or {})
    missing = [f for f in k.requires if getattr(target, f) is None]
    if missing:
        fields = ", ".join(missing)
        flags = " ".join(f"--{f}" for f in missing)
        return (Cause(f"needs-target:{fields}", "needs-target", "skip", f"no GKE {fields} given: reads that need it "
                      "were not made", f"pass {flags} (or use a gke_<project>_<location>_<cluster> kube context)"),
                k.name)
    path = k.path(target, **params)
    what = k.resource_text(target, **params)
    if entry is None:
        why = (unread or {}).get(k.scope)
        if why:
            return Cause(f"not-read:{k.scope}", "not-read", "skip", why,
                         "run with a kube context of the cluster to diagnose it" if k.scope == "k8s"
                         else "pass --project"), path
        side = "Kubernetes" if k.scope == "k8s" else "Google Cloud"
        return (Cause(f"not-collected:{k.scope}", "not-collected", "skip",
                      f"not collected: the snapshot holds no {side} data for these reads",
                      "collect a new snapshot (airflow-gke collect reads every path of snapshot v1)"), path)
    if entry.ok or (entry.not_found and k.not_found_is_data):
        return None
    reason = entry.error_reason
    message = _short(entry.message)
    project = target.project
    if entry.status == 403 and reason in ("SERVICE_DISABLED", "accessNotConfigured"):
        svc = _google_service(key_name, entry)
        md = error_info(entry.error).get("metadata") or {}
        title = md.get("serviceTitle") if isinstance(md, dict) and md.get("serviceTitle") else svc
        consumer = md.get("consumer") if isinstance(md, dict) else None
        where = project or (consumer.split("/", 1)[1] if isinstance(consumer, str) and "/" in consumer else None)
        name = f"{title} ({svc})" if title != svc else svc
        return (Cause(f"service-disabled:{svc}", "service-disabled", "error",
                      f"the {name} is disabled" + (f" in project {where}" if where else "")
                      + " (HTTP 403 SERVICE_DISABLED): not a missing permission",
                      "enable the API, then wait a few minutes for it to propagate", message, svc,
                      f"gcloud services enable {svc}" + (f" --project {where}" if where else "")), what)
    if entry.status == 403 and reason == "BILLING_DISABLED":
        return (Cause("billing-disabled", "billing-disabled", "error",
                      f"billing is disabled for project {project or '(unknown)'} (HTTP 403 BILLING_DISABLED)",
                      "link a billing account to the project", message, None,
                      f"gcloud billing projects link {project or 'PROJECT_ID'} --billing-account ACCOUNT_ID"), what)
    if entry.status == 403 and reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT":
        return (Cause(f"scope-insufficient:{k.scope}", "scope-insufficient", "error",
                      "the credentials' OAuth scopes do not cover this API (HTTP 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT): "
                      "granting a role does not help", "use credentials with the cloud-platform scope (gcloud auth "
                      "application-default login, or a node pool / VM with the cloud-platform scope)", message), what)
    if entry.status == 401:
        side = "Kubernetes API server" if k.scope == "k8s" else "Google Cloud APIs"
        if k.scope == "k8s":
            fix = "refresh the kubeconfig's credentials (and check gke-gcloud-auth-plugin)"
            cmd = (f"gcloud container clusters get-credentials {target.cluster} --location {target.location}"
                   + (f" --project {project}" if project else "")) if target.cluster and target.location else None
        else:
            fix, cmd = "refresh Application Default Credentials", "gcloud auth application-default login"
        return (Cause(f"unauthenticated:{k.scope}", "unauthenticated", "error",
                      f"the {side} rejected the credentials (HTTP 401): not a missing permission", fix, message,
                      None, cmd), what)
    if entry.status == 403:
        if k.rbac:
            grp = f" (apiGroup {k.rbac[0]})" if k.rbac[0] else ""
            scope = f" in namespace {target.namespace}" if "namespace" in k.requires else " cluster-wide"
            perm = f"RBAC {k.rbac[2]} on {k.rbac[1]}{grp}{scope}"
        else:
            perm = f"IAM permission {k.iam}"
        return (Cause(f"permission:{perm}", "permission", "error", f"permission denied (HTTP 403): {perm} is missing",
                      f"grant {perm} (airflow-gke permissions prints the Role and custom IAM role)", message), what)
    if entry.status is None:
        api = "k8s" if k.scope == "k8s" else _google_service(key_name, entry)
        side = "the Kubernetes API server" if k.scope == "k8s" else api
        return (Cause(f"no-answer:{api}", "no-answer", "error", f"{side} did not answer",
                      "check connectivity to it (proxy, firewall, private endpoint) or raise --timeout / "
                      "--request-timeout", message), what)
    return (Cause(f"http-error:{path}", "http-error", "error", f"could not {what}: HTTP {entry.status}",
                  "see the API's answer", message), what)


def group(runs: list, findings_by_check: dict[str, int] | None = None) -> tuple[list[Blocker], list]:
    """(blockers, the skipped/errored runs no cause explains) over the check runs, each blocker
    listing the checks it blocked, errors before skips, most checks first."""
    by_id: dict[str, Blocker] = {}
    alone = []
    for r in runs:
        if r.status not in ("skip", "error"):
            continue
        causes = getattr(r, "causes", None) or []
        if not causes:
            alone.append(r)
            continue
        for cause, read in causes:
            b = by_id.get(cause.id)
            if b is None:
                b = by_id[cause.id] = Blocker(cause)
            if read not in b.reads:
                b.reads.append(read)
            if r.id not in b.checks:
                b.checks.append(r.id)
    blockers = sorted(by_id.values(), key=lambda b: (b.cause.status != "error", -len(b.checks), b.cause.id))
    return blockers, alone


def reported_by(cause: Cause, finding_checks: set[str]) -> str | None:
    """The check whose finding reports this cause (a disabled API), when it did."""
    if cause.kind != "service-disabled":
        return None
    chk = API_CHECK.get(cause.service or "", DEFAULT_API_CHECK)
    return chk if chk in finding_checks else None
