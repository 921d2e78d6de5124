"""The api-server (Airflow 3) or webserver (Airflow 2) cannot read the task logs that the workers
write to Cloud Storage: its identity lacks storage.objects.get/list on the bucket (or its node
scopes forbid reading), or it does not read remote logs at all."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable, no_answer_reason
from airflow_gke.views.iam import evaluate, member_roles, membership_lines, membership_of, unless_in_groups
from airflow_gke.views.identity import LOG_READERS, LOG_WRITERS, Identity, bucket_of, label, remote_log_folder, resolve
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, passed, skipped
from airflow_gke.registry import Category, check
from airflow_gke.remediation import (bucket_resource, CHART_KEY, cluster_resource, excerpt, gsa_resource, helm_upgrade,
                                     node_pool_resource, project, q)


PERMS = ("storage.objects.get", "storage.objects.list")
READ_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",
               "https://www.googleapis.com/auth/devstorage.read_only",
               "https://www.googleapis.com/auth/devstorage.read_write",
               "https://www.googleapis.com/auth/devstorage.full_control")
_READ_ERR = re.compile(r"(?i)unable to read remote log|could not read logs from gs://|403 GET https://storage\.googleapis"
                       r"\.com|does not have storage\.objects\.(?:get|list) access")


@check(id="remote-log-read-denied", title="The api-server/webserver can read the remote task logs", severity="error",
       category=Category.LOGGING, needs=("configmaps", "pods", "serviceaccounts", "cluster"),
       uses=("bucket", "bucket_iam", "project_iam", "project", "gsa", "nodes", "logs", "deployments", "statefulsets",
             "group_membership"),
       evidence="config",
       severity_note="warning when IAM could not be read")
def run(ctx: Context) -> Result:
    """The UI's identity lacks storage.objects.get/list on the gs:// log bucket (or does not read remote logs at all)."""
    written: dict[str, tuple[str, str, str]] = {}
    for comp in LOG_WRITERS:
        folder, where = remote_log_folder(ctx, comp)
        if folder and bucket_of(folder) not in written:
            written[bucket_of(folder)] = (folder, label(comp), where or "?")
    readers: dict[str, list[tuple[Identity, str, str]]] = {}
    split: list[tuple[str, str]] = []
    any_reader = False
    for comp in LOG_READERS:
        idents = resolve(ctx, comp)
        if not idents:
            continue
        any_reader = True
        folder, where = remote_log_folder(ctx, comp)
        if folder:
            for ident in idents:
                readers.setdefault(bucket_of(folder), []).append((ident, folder, where or "?"))
        elif written:
            split.append((comp, _why_off(ctx, comp)))
    if not any_reader:
        return skipped("no api-server or webserver runs in this release")
    if not readers and not split:
        return skipped("remote logging does not use gs:// for the api-server/webserver")
    findings: list[Finding] = []
    for comp, why in split:
        findings.append(_split_finding(ctx, comp, why, written))
    unavailable = None
    for bucket, idents in readers.items():
        r = _judge(ctx, bucket, idents)
        if isinstance(r, Finding):
            findings.append(r)
        elif isinstance(r, DataUnavailable):
            unavailable = unavailable or r
    if findings:
        return from_findings(findings)
    if unavailable is not None:
        raise unavailable
    return passed()


def _why_off(ctx: Context, comp: str) -> str:
    v = ctx.config(comp).lookup("logging", "remote_logging")
    if v is None:
        return "[logging] remote_logging is not set for it (default False)"
    return f"[logging] remote_logging = {v.value} for it ({v.source})"


def _split_finding(ctx: Context, comp: str, why: str, written: dict) -> Finding:
    bucket, (folder, wcomp, wwhere) = next(iter(written.items()))
    evidence = [f"[logging] remote_base_log_folder = {folder} for {wcomp} ({wwhere}), with remote_logging on",
                f"{comp}: {why}"]
    key = CHART_KEY.get(comp, comp)
    return Finding(
        title=f"The {comp} does not read remote logs, while the task logs are written to gs://{bucket}",
        message=(f"Remote logging is switched on only for the components that write ({wcomp}), probably through their "
                 f"own env. The {comp} shows task logs with its own configuration, so once a task pod is gone the UI "
                 f"has nothing to show even though the log is in gs://{bucket}. Set remote logging in airflow.cfg "
                 "(the chart's config:) so every component gets the same [logging] settings."),
        resource=bucket_resource(bucket),
        evidence=evidence,
        remediation=Remediation(
            summary=f"Configure remote logging for every component (config.logging), not only for the writers "
                    f"({key}.env).",
            commands=[helm_upgrade(ctx, "--set-string config.logging.remote_logging=True",
                                   f"--set-string config.logging.remote_base_log_folder={q(folder)}",
                                   "--set-string config.logging.remote_log_conn_id=google_cloud_default")]),
    )


def _writer_members(ctx: Context, bucket: str, policies, project_policy) -> set[str]:
    """IAM members of the components that write logs to ``bucket`` and may not create objects there
    (gcs-log-write-denied grants them roles/storage.objectUser), with the Google service account its
    fix moves node-token writers to."""
    out: set[str] = set()
    for comp in LOG_WRITERS:
        folder, _where = remote_log_folder(ctx, comp)
        if not folder or bucket_of(folder) != bucket:
            continue
        for ident in resolve(ctx, comp):
            members = set(ident.members(ctx))
            if ident.kind == "node":
                out.add(f"serviceAccount:airflow@{project(ctx)}.iam.gserviceaccount.com")
            ev = evaluate("storage.objects.create", members, policies,
                          project_roles_of_member=member_roles(project_policy, members), project_id=ctx.target.project)
            if ev.verdict != "granted":
                out |= members
    return out


def _describe(ctx: Context, ident: Identity) -> str:
    if ident.kind == "gsa":
        return f"{ident.label} (KSA {ident.ksa} → {ident.gsa})"
    if ident.kind == "federated":
        return f"{ident.label} (KSA {ident.ksa}, federated principal, no annotation)"
    sas = sorted({ctx.node_service_account(pl) for pl in ident.pools})
    return f"{ident.label} (KSA {ident.ksa} → node service account {', '.join(sas) or 'unknown'})"


def _judge(ctx: Context, bucket: str, idents: list[tuple[Identity, str, str]]):
    b = ctx.entry("bucket", bucket=bucket)
    if b is not None and b.not_found:
        return None   # remote-log-bucket-missing reports it
    p = project(ctx)
    folder, where = idents[0][1], idents[0][2]
    iam_e, proj_e = ctx.entry("bucket_iam", bucket=bucket), ctx.entry("project_iam")
    bucket_policy = iam_e.data if iam_e is not None and iam_e.ok else None
    project_policy = proj_e.data if proj_e is not None and proj_e.ok else None
    policies = [(f"bucket gs://{bucket}", bucket_policy, no_answer_reason(iam_e, f"storage/v1/b/{bucket}/iam",
                                                              "storage.buckets.getIamPolicy")),
                (f"project {p}", project_policy, no_answer_reason(proj_e, f"projects/{p}:getIamPolicy",
                                                      "resourcemanager.projects.getIamPolicy"))]
    evidence = [f"[logging] remote_base_log_folder = {folder} ({where})"]
    problems, doubts, fix, caused_by = [], [], [], []
    caveats: list[str] = []
    confirm: list[str] = []
    unread = False
    seen = set()
    for ident, _f, _w in idents:
        members = ident.members(ctx)
        if (ident.kind, tuple(sorted(members))) in seen:
            continue
        seen.add((ident.kind, tuple(sorted(members))))
        who = _describe(ctx, ident)
        if ident.kind == "node":
            shut = [pl for pl in ident.pools if not any(s in READ_SCOPES for s in pl.scopes)]
            if shut:
                problems.append(who)
                evidence.append(f"{who}: node pool(s) {', '.join(pl.name for pl in shut)} have no Cloud Storage "
                                "scope, so the token cannot read objects whatever IAM grants")
            if ctx.gsa_of(ident.ksa):
                caused_by.append(finding_id("workload-identity-not-enabled", cluster_resource(ctx)))
                caused_by += [finding_id("workload-identity-not-enabled", node_pool_resource(ctx, pl.name))
                              for pl in ident.pools]
        if ident.kind == "gsa" and ident.gsa:
            g = ctx.entry("gsa", email=ident.gsa)
            if g is not None and g.not_found:
                problems.append(who)
                evidence.append(f"Google service account {ident.gsa} does not exist (HTTP 404)")
                caused_by.append(finding_id("wi-binding-missing", gsa_resource(ctx, ident.gsa)))
                fix.append(f"serviceAccount:{ident.gsa}")   # once it is created (see wi-binding-missing)
                continue
        roles = member_roles(project_policy, members)
        verdicts = {perm: evaluate(perm, members, policies, project_roles_of_member=roles,
                                   project_id=ctx.target.project, membership=membership_of(ctx)) for perm in PERMS}
        for ev in verdicts.values():
            evidence += [x for x in membership_lines(ev, who) if x not in evidence]
        missing = [perm for perm, ev in verdicts.items() if ev.verdict == "denied" or ev.only_groups]
        unsure = [perm for perm, ev in verdicts.items() if ev.verdict == "unknown" and not ev.only_groups]
        member = sorted(m for m in members if not m.startswith("principal://"))[:1]
        gsa_later = ctx.gsa_of(ident.ksa) if ident.kind == "node" else None
        if gsa_later:
            # no grant to the node service account: once Workload Identity is on, the pods act as the
            # annotated GSA, which gets the read role only if it lacks it
            gv = [evaluate(perm, {f"serviceAccount:{gsa_later}"}, policies) for perm in PERMS]
            if all(v.verdict == "granted" for v in gv):
                member = []
                pointer = (f"# enable Workload Identity (see workload-identity-not-enabled): the api-server then acts "
                           f"as {gsa_later}, which already may read gs://{bucket}")
                if pointer not in confirm:
                    confirm.append(pointer)
            else:
                member = [f"serviceAccount:{gsa_later}"]
        if missing:
            if who not in problems:
                problems.append(who)
            evidence.append(f"{who}: no role with {' / '.join(missing)} on bucket gs://{bucket} or project {p} "
                            f"(members checked: {', '.join(sorted(members))})")
            for perm in missing:
                ev = verdicts[perm]
                evidence += [f"{who}: {x}" for x in ev.lacking]
                if ev.no_groups and f"{who}: {ev.no_groups}" not in evidence:
                    evidence.append(f"{who}: {ev.no_groups}")
                if ev.only_groups and not any(verdicts[x].verdict == "denied" for x in missing):
                    text, cmds_ = unless_in_groups(ev, (member or sorted(members))[0])
                    if text not in caveats:
                        caveats.append(text)
                        confirm.extend(c for c in cmds_ if c not in confirm)
                        evidence.append(f"{who}: every IAM policy was read; only group membership is unknown: "
                                        + "; ".join(f"{r} on {w} to {g}" for g, r, w in ev.groups))
            fix += member
        elif unsure:
            unread = unread or any(verdicts[perm].unread for perm in unsure)
            doubts.append(who)
            evidence.append(f"{who}: unproven: " + "; ".join(d for perm in unsure for d in verdicts[perm].doubts))
            fix += member
        else:
            grants = sorted({g for ev in verdicts.values() for g in ev.grants})
            evidence.append(f"{who}: IAM grants read via {'; '.join(grants)}")
    evidence += _log_lines(ctx, idents)
    if not problems and not doubts:
        return None
    names = ", ".join(problems or doubts)
    # one role per member and bucket in a report: a reader that also writes the logs gets the writers'
    # role (roles/storage.objectUser, which reads too), the one gcs-log-write-denied grants it
    writers = _writer_members(ctx, bucket, policies, project_policy)
    cmds = confirm + [f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q(m)} --role "
                      + ("roles/storage.objectUser" if m in writers else "roles/storage.objectViewer")
                      for m in dict.fromkeys(fix)]
    if problems:
        return Finding(
            title=(f"{names[0].upper() + names[1:]} cannot read the task logs in gs://{bucket}"
                   + (f" ({'; '.join(caveats)})" if caveats else "")),
            message=(f"The UI reads finished tasks' logs from {folder} with the identity of the "
                     f"{'api-server' if any(i.component == 'api-server' for i, _f, _w in idents) else 'webserver'}, "
                     f"which may not get and list objects there (storage.objects.get and storage.objects.list): the "
                     "log pane shows `*** Unable to read remote log from gs://...` (403) although the writers "
                     "uploaded it. Grant it roles/storage.objectViewer on the bucket (never roles/editor)."
                     + (f" This holds {' and '.join(caveats)}: every IAM policy was read and no other grant exists; "
                        "the first command settles it." if caveats else "")),
            resource=bucket_resource(bucket), evidence=evidence, caused_by=caused_by,
            remediation=Remediation(summary="Grant roles/storage.objectViewer on the bucket to the identity the "
                                            "api-server/webserver acts as.",
                                    commands=cmds or [f"gcloud storage buckets get-iam-policy gs://{bucket} --format=json"]),
        )
    return Finding(
        title=f"Cannot prove that the api-server/webserver may read the task logs in gs://{bucket}",
        message=((f"The doctor could not read every IAM policy that decides whether {names} may read objects in "
                  f"gs://{bucket}; the result is unproven, not denied.") if unread else
                 (f"Every IAM policy was read, but {names} holds a custom role whose permissions the doctor does not "
                  f"read, so whether it may read objects in gs://{bucket} is unproven, not denied.")),
        resource=bucket_resource(bucket), evidence=evidence, severity="warning",
        remediation=Remediation(summary="Confirm the grant by hand (or give the doctor the IAM reader permissions).",
                                commands=[f"gcloud storage buckets get-iam-policy gs://{bucket} --format=json",
                                          f"gcloud projects get-iam-policy {q(p)} --format=json"] + cmds),
    )


def _log_lines(ctx: Context, idents) -> list[str]:
    out = []
    for ident, _f, _w in idents:
        for pod in ident.pods[:10]:
            for c in pod.containers:
                for prev in (False, True):
                    for line in ctx.log_lines(pod.name, str(c.get("name")), prev)[-300:]:
                        m = _READ_ERR.search(line)
                        if m and re.search(r"(?i)403|forbidden|denied|does not have", line):
                            out.append(f"log {pod.name}/{c.get('name')}: {excerpt(line, m)}")
                            break
            if len(out) >= 2:
                return out
    return out
