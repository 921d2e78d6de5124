"""An Airflow identity that resolves secrets through Airflow's Google Secret Manager backend
(``CloudSecretManagerBackend``) may not read them: it holds ``secretmanager.versions.access``
neither on the project nor on the secrets under the backend's prefixes. The backend logs
``Google Cloud API Call Error (PermissionDenied): No access for Secret ID ...`` and returns nothing,
so the connection or variable is "not defined" at task run time. Judged from the project's and each
secret's IAM policy (secret names from ``secrets.list``; versions and payloads are never read), with
the backend's log lines quoted as evidence. A disabled Secret Manager API is
``required-api-disabled``'s finding, not this one's."""
from __future__ import annotations

import re

from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import excerpt, gsa_resource, project_resource, q
from airflow_gke.views import Context, DataUnavailable, Identity, evaluate, no_answer_reason, resolve
from airflow_gke.views.secrets import (MAX_SECRET_POLICIES, BackendUse, backend_uses, prefixes, project_of,
                                       secret_ids, valid_project)

PERM = "secretmanager.versions.access"
ROLE = "roles/secretmanager.secretAccessor"
_DENIED = re.compile(r"PermissionDenied\)?:? No access for Secret ID|Permission '?secretmanager\.versions\.access'? "
                     r"denied|secretmanager\.versions\.access", re.I)


@check(id="secrets-backend-access-denied",
       title="Airflow's identities may read the secrets the Secret Manager backend looks up",
       severity="error", category=Category.SECRETS, needs=("configmaps",),
       uses=("pods", "deployments", "statefulsets", "serviceaccounts", "cluster", "nodes", "project", "project_iam",
             "services", "sm_secrets", "sm_secret_iam", "sm_project_iam", "logs"),
       evidence="config")
def run(ctx: Context) -> Result:
    """An identity using CloudSecretManagerBackend lacks secretmanager.versions.access on its secrets."""
    uses = [u for u in backend_uses(ctx) if u.kwargs is not None]
    if not uses:
        return skipped("not applicable: no component uses the Secret Manager secrets backend")
    if ctx.target.project is None:
        return skipped("no project given")
    keyed = [u for u in uses if any((u.kwargs or {}).get(k) for k in ("gcp_key_path", "gcp_keyfile_dict",
                                                                       "impersonation_chain"))]
    pods_identity = [u for u in uses if u not in keyed and valid_project(project_of(ctx, u) or "")]
    if not pods_identity:
        return skipped("the backend authenticates with a key or impersonation, not the pods' identity"
                       if keyed else "the backend's project_id names no project (secrets-backend-kwargs-invalid)")
    findings: list[Finding] = []
    doubts: list[str] = []
    judged = False
    for p in dict.fromkeys(project_of(ctx, u) for u in pods_identity):
        here = [u for u in pods_identity if project_of(ctx, u) == p]
        result = _judge_project(ctx, p, here, findings, doubts)
        judged = judged or result
    if findings:
        return from_findings(findings)
    if doubts:
        raise DataUnavailable("error", "; ".join(doubts), ("sm_secret_iam",))
    if not judged:
        return skipped("no component using the backend runs, or its identity cannot be resolved")
    return passed()


def _judge_project(ctx: Context, p: str, here: list[BackendUse], findings: list[Finding], doubts: list[str]) -> bool:
    """Judge the identities of the components reading secrets from project ``p``; False when none runs."""
    if p == ctx.target.project:
        svc = ctx.entry("services", service="secretmanager.googleapis.com")
        if svc is not None and svc.ok and isinstance(svc.data, dict) and svc.data.get("state") == "DISABLED":
            raise DataUnavailable("skip", f"the Secret Manager API is disabled in project {p}: required-api-disabled "
                                          "reports it (no access can be judged until it is enabled)")
        policy = ctx.body("project_iam")
    else:
        listed = ctx.entry("sm_secrets", project=p)
        if listed is not None and not listed.ok and listed.error_reason == "CONSUMER_INVALID":
            raise DataUnavailable("skip", f"backend_kwargs project_id {p} names no project (CONSUMER_INVALID): "
                                          "secrets-backend-kwargs-invalid reports it")
        policy = ctx.body("sm_project_iam", project=p)
    by_member: dict[frozenset, tuple[Identity, list[BackendUse]]] = {}
    for u in here:
        for ident in resolve(ctx, u.component):
            key = frozenset(ident.members(ctx))
            if key:
                by_member.setdefault(key, (ident, []))[1].append(u)
    if not by_member:
        return False
    pre = prefixes(here)
    under: list[str] | None = None
    for members, (ident, musers) in by_member.items():
        ev = evaluate(PERM, set(members), [(f"project {p}", policy, None)])
        if ev.verdict == "granted":
            continue
        if under is None:
            under = [s for s in secret_ids(ctx, p) if s.startswith(tuple(pre))]   # raises when unreadable
        denied, unknown = [], []
        for s in under[:MAX_SECRET_POLICIES]:
            e = ctx.entry("sm_secret_iam", project=p, secret=s)
            body = e.data if e is not None and e.ok else None
            why = no_answer_reason(e, f"IAM policy of secret {s}", "secretmanager.secrets.getIamPolicy")
            sev = evaluate(PERM, set(members), [(f"secret {s}", body, why)])
            if sev.verdict == "denied" and ev.verdict == "denied":
                denied.append(s)
            elif sev.verdict != "granted":
                unknown.append(s)
        if len(under) > MAX_SECRET_POLICIES:
            unknown += under[MAX_SECRET_POLICIES:]
        if denied:
            findings.append(_finding(ctx, p, ident, musers, denied, under, pre, ev.doubts))
        elif unknown:
            doubts.append(f"{ident.label}: access to {len(unknown)} secret(s) of project {p} could not be decided ("
                          + "; ".join((ev.doubts or ["their IAM policies were not read"])[:2]) + ")")
    return True


def _member(ident: Identity, ctx: Context) -> str:
    ms = sorted(ident.members(ctx))
    sa = [m for m in ms if m.startswith("serviceAccount:") and "svc.id.goog[" not in m]
    return (sa or [m for m in ms if m.startswith("principal://")] or ms)[0]


def _log_lines(ctx: Context, uses: list[BackendUse]) -> list[str]:
    out: list[str] = []
    for comp in dict.fromkeys(u.component for u in uses):
        pods = ctx.task_pods if comp == "task" else [x for x in ctx.pods_by_component.get(comp, []) if not x.is_task_pod]
        for pod in pods[:50]:
            for c in pod.containers:
                name = str(c.get("name") or "")
                for which, ln in ctx.recent_logs(pod, name):
                    m = _DENIED.search(ln)
                    if m:
                        out.append(f"{which} of {pod.name}/{name}: {excerpt(ln, m)}")
                        break
            if len(out) >= 2:
                return out
    return out


def _finding(ctx: Context, p: str, ident: Identity, uses: list[BackendUse], denied: list[str], under: list[str],
             pre: list[str], doubts: list[str]) -> Finding:
    member = _member(ident, ctx)
    who = member.split(":", 1)[1] if member.startswith("serviceAccount:") else member
    comps = ", ".join(dict.fromkeys(u.label for u in uses))
    evidence = list(ident.notes[:3])
    evidence.append(f"project {p} IAM policy: no role with {PERM} for {member}")
    evidence.append(f"{len(denied)} of {len(under)} secret(s) under the backend's prefixes "
                    f"({', '.join(pre)}) grant it nothing: {', '.join(denied[:6])}"
                    + (f" and {len(denied) - 6} more" if len(denied) > 6 else ""))
    evidence += doubts[:2]
    evidence += _log_lines(ctx, uses)
    resource = gsa_resource(ctx, who) if member.startswith("serviceAccount:") else project_resource(ctx)
    if len(denied) <= 5:
        cmds = [f"gcloud secrets add-iam-policy-binding {q(s)} --project {q(p)} --member={q(member)} "
                f"--role={ROLE}" for s in denied]
        how = "on each secret under the backend's prefixes (least privilege)"
    else:
        cmds = [f"gcloud projects add-iam-policy-binding {q(p)} --member={q(member)} --role={ROLE}"]
        how = "on the project (every secret in it; grant per secret to narrow it)"
    return Finding(
        title=f"{ident.label.capitalize() if ident.component == 'task' else comps} ({who}) may not read "
              f"{len(denied)} secret(s) the Secret Manager backend looks up",
        message=(f"{comps} resolve connections and variables through Airflow's Secret Manager backend as {who}, "
                 f"which holds {PERM} neither on project {p} nor on {len(denied)} secret(s) under the backend's "
                 "prefixes. The backend logs `PermissionDenied: No access for Secret ID ...` and returns nothing, so "
                 "tasks fail with the connection or variable not defined."),
        resource=resource,
        evidence=evidence,
        remediation=Remediation(
            summary=f"Grant {who} {ROLE} {how}. It takes effect within a minute; no restart is needed.",
            commands=cmds),
    )
