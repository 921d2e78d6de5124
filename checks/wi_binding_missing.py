"""An annotated Airflow KSA names a Google service account that does not exist, is disabled, or
does not let that KSA impersonate it (no roles/iam.workloadIdentityUser for
``serviceAccount:<project>.svc.id.goog[<namespace>/<ksa>]``)."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable
from airflow_gke.views.iam import binding_members, bindings
from airflow_gke.model import Finding, Remediation, Result, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import CHART_KEY, excerpt, gsa_project, gsa_resource, helm_sa_annotation, helm_upgrade, q
from airflow_gke.views.identity import KsaUse, annotated_ksas

from ._identity import wi_members, workload_pool

ROLE = "roles/iam.workloadIdentityUser"
# Predefined roles that carry iam.serviceAccounts.getAccessToken on the service account.
GRANTING = {ROLE, "roles/iam.serviceAccountTokenCreator"}
_TOKEN_403 = re.compile(r"(?i)iam\.serviceAccounts\.getAccessToken|unable to generate access token|"
                        r"IAM returned 403")


@check(id="wi-binding-missing", title="Annotated Airflow service accounts may impersonate their Google service account",
       severity="error", category=Category.IDENTITY, needs=("serviceaccounts", "pods"),
       uses=("configmaps", "deployments", "statefulsets", "gsa", "gsa_iam", "project_iam", "project", "cluster", "logs"),
       evidence="config")
def run(ctx: Context) -> Result:
    """The GSA an annotated KSA names is missing, disabled, or lacks roles/iam.workloadIdentityUser for that KSA."""
    ann = annotated_ksas(ctx)
    if not ann:
        return skipped("no Airflow service account is annotated iam.gke.io/gcp-service-account: "
                       "no Google service account to impersonate")
    by_gsa: dict[str, list[tuple[str, KsaUse]]] = {}
    for ksa, (gsa, use) in ann.items():
        by_gsa.setdefault(gsa, []).append((ksa, use))
    findings: list[Finding] = []
    unverified: list[DataUnavailable] = []
    for gsa, ksas in sorted(by_gsa.items()):
        r = _judge(ctx, gsa, ksas)
        if isinstance(r, Finding):
            findings.append(r)
        elif isinstance(r, DataUnavailable):
            unverified.append(r)
    if findings:
        for u in unverified:
            findings[0].evidence.append(f"also unverified: {u.reason}")
        return from_findings(findings)
    if unverified:
        errs = [u for u in unverified if u.status == "error"]
        raise (errs or unverified)[0]
    return passed()


def _judge(ctx: Context, gsa: str, ksas: list[tuple[str, KsaUse]]):
    who = [f"KSA {ctx.target.namespace}/{ksa} ({use.labels}) is annotated iam.gke.io/gcp-service-account: {gsa}"
           for ksa, use in ksas]
    g = ctx.entry("gsa", email=gsa)
    if g is None:
        return ctx.unavailable("gsa", g, email=gsa)
    if g.not_found:
        return _missing(ctx, gsa, ksas, who + [f"GET iam/v1/.../serviceAccounts/{gsa}: HTTP 404 {g.message}"])
    if g.ok and isinstance(g.data, dict) and g.data.get("disabled") is True:
        return _disabled(ctx, gsa, ksas, who + [f"service account {gsa}: disabled: true"])
    pe = ctx.entry("gsa_iam", email=gsa)
    if pe is None or not pe.ok:
        if pe is not None and pe.not_found:
            return _missing(ctx, gsa, ksas, who + [f"getIamPolicy of {gsa}: HTTP 404 {pe.message}"])
        return ctx.unavailable("gsa_iam", pe, email=gsa)
    proj = ctx.entry("project_iam")
    project_policy = proj.data if proj is not None and proj.ok else None
    lacking: list[tuple[str, KsaUse]] = []
    doubts: list[str] = []
    evidence = list(who)
    for ksa, use in ksas:
        verdict, why = _granted(ctx, ksa, gsa, pe.data, project_policy, proj)
        if verdict == "granted":
            continue
        if verdict == "denied":
            lacking.append((ksa, use))
        else:
            doubts.append(why)
    if not lacking:
        if doubts:
            return DataUnavailable("error", f"cannot tell whether the KSAs may impersonate {gsa}: " + "; ".join(doubts))
        return None
    bound = sorted({m for b in bindings(pe.data) if isinstance(b.get("role"), str) and b["role"] in GRANTING
                    for m in binding_members(b)})
    evidence.append(f"IAM policy of {gsa}: " + (f"{ROLE} (or token creator) is granted to {', '.join(bound)}" if bound
                                                 else f"no {ROLE} binding at all"))
    for ksa, _use in lacking:
        evidence.append(f"no binding for serviceAccount:{workload_pool(ctx)}[{ctx.target.namespace}/{ksa}] on {gsa}"
                        + ("" if project_policy is None else " or on the project"))
    evidence += doubts
    evidence += _log_lines(ctx, lacking)
    gp = gsa_project(ctx, gsa)
    cmds = [_bind(ctx, gsa, gp, ksa) for ksa, _u in lacking]
    cmds.append(f"gcloud iam service-accounts get-iam-policy {q(gsa)} --project {q(gp)} --format=json")
    names = ", ".join(k for k, _u in lacking)
    return Finding(
        title=f"KSA(s) {names} may not impersonate {gsa}: no roles/iam.workloadIdentityUser binding",
        message=(f"The KSA annotation tells GKE to exchange the pod's token for one of {gsa}, but the service "
                 f"account's IAM policy does not let {names} do that: the GKE metadata server answers "
                 "`Unable to generate access token; IAM returned 403 Forbidden: Permission "
                 "'iam.serviceAccounts.getAccessToken' denied`, and every Google call from those pods fails. "
                 "The member must name the exact namespace and KSA (the chart creates one KSA per component; "
                 "task pods run as the worker KSA)."),
        resource=gsa_resource(ctx, gsa),
        evidence=evidence,
        remediation=Remediation(summary=f"Let each KSA impersonate {gsa} (roles/iam.workloadIdentityUser on the "
                                        "service account).", commands=cmds),
    )


def _granted(ctx: Context, ksa: str, gsa: str, gsa_policy, project_policy, proj_entry) -> tuple[str, str]:
    members = wi_members(ctx, ksa)
    pool = workload_pool(ctx)
    ns_set = f"/workloadIdentityPools/{pool}/namespace/{ctx.target.namespace}"
    doubts = []
    for where, policy in ((f"service account {gsa}", gsa_policy), (f"project {ctx.target.project}", project_policy)):
        for b in bindings(policy):
            role = str(b.get("role") or "")
            mem = binding_members(b)
            hit = mem & members or {m for m in mem if m.startswith("principalSet://") and m.endswith(ns_set)}
            if not hit:
                continue
            if role in GRANTING:
                return "granted", f"{role} on {where}"
            if not role.startswith("roles/"):
                doubts.append(f"KSA {ksa} holds custom role {role} on {where}; its permissions were not read")
    if project_policy is None:
        why = (f"the project's IAM policy was not read ({'not collected' if proj_entry is None else proj_entry.message}), "
               f"and a project-level {ROLE} grant would also let {ksa} impersonate {gsa}")
        return "unknown", "; ".join(doubts + [why])
    if doubts:
        return "unknown", "; ".join(doubts)
    return "denied", ""


def _bind(ctx: Context, gsa: str, gp: str, ksa: str) -> str:
    member = f"serviceAccount:{workload_pool(ctx)}[{ctx.target.namespace}/{ksa}]"
    return (f"gcloud iam service-accounts add-iam-policy-binding {q(gsa)} --project {q(gp)} "
            f"--role {ROLE} --member {q(member)}")


def _log_lines(ctx: Context, ksas: list[tuple[str, KsaUse]]) -> list[str]:
    out = []
    for _ksa, use in ksas:
        for p in use.pods[:10]:
            for c in p.init_containers + p.containers:
                for prev in (False, True):
                    for line in ctx.log_lines(p.name, str(c.get("name")), prev)[-200:]:
                        m = _TOKEN_403.search(line)
                        if m:
                            out.append(f"log {p.name}/{c.get('name')}: {excerpt(line, m)}")
                            break
                if len(out) >= 3:
                    return out
    return out


def _missing(ctx: Context, gsa: str, ksas, evidence: list[str]) -> Finding:
    gp = gsa_project(ctx, gsa)
    name = gsa.split("@", 1)[0]
    cmds = [f"gcloud iam service-accounts create {q(name)} --project {q(gp)} --display-name 'Airflow on GKE'"]
    cmds += [_bind(ctx, gsa, gp, ksa) for ksa, _u in ksas]
    others = sorted({g for g, _u in annotated_ksas(ctx).values() if g != gsa and _exists(ctx, g)})
    sets = [helm_sa_annotation(CHART_KEY[c], others[0]) for _k, use in ksas for c in use.components
            if c in CHART_KEY] if others else []
    if sets:
        cmds += [f"# or annotate the KSA(s) with {others[0]}, which the other components use (and bind them to it):",
                 helm_upgrade(ctx, *dict.fromkeys(sets))]
    return Finding(
        title=f"Google service account {gsa}, named by {len(ksas)} Airflow KSA(s), does not exist",
        message=(f"The Airflow KSAs are annotated with {gsa}, but IAM answers 404 for it (deleted, a typo, or another "
                 "project): pods get no Google credentials at all. Create it (or fix the annotation), let the KSAs "
                 "impersonate it, and grant it what Airflow uses (the log bucket, Secret Manager ...)."),
        resource=gsa_resource(ctx, gsa),
        evidence=evidence,
        remediation=Remediation(summary="Create the service account and bind the KSAs to it (or correct the "
                                        "annotation to an existing one).", commands=cmds),
    )


def _exists(ctx: Context, gsa: str) -> bool:
    e = ctx.entry("gsa", email=gsa)
    return e is not None and e.ok


def _disabled(ctx: Context, gsa: str, ksas, evidence: list[str]) -> Finding:
    gp = gsa_project(ctx, gsa)
    return Finding(
        title=f"Google service account {gsa}, named by {len(ksas)} Airflow KSA(s), is disabled",
        message=(f"{gsa} exists but is disabled: no token can be minted for it, so every Google call of the pods "
                 "whose KSA names it fails."),
        resource=gsa_resource(ctx, gsa),
        evidence=evidence,
        remediation=Remediation(summary="Enable the service account.",
                                commands=[f"gcloud iam service-accounts enable {q(gsa)} --project {q(gp)}"]),
    )
