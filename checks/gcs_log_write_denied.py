"""The identities that write Airflow logs cannot create objects under remote_base_log_folder."""
from __future__ import annotations

import re

from airflow_gke.views import Context, DataUnavailable, no_answer_reason
from airflow_gke.views.iam import evaluate, member_roles, membership_lines, membership_of, unless_in_groups
from airflow_gke.views.identity import LOG_WRITERS, Identity, bucket_of, remote_log_folder, resolve
from airflow_gke.model import Finding, Remediation, Result, finding_id, from_findings, skipped
from airflow_gke.registry import Category, after_run, check
from airflow_gke.remediation import (bucket_resource, cluster_resource as _cluster_resource, gsa_resource as
                                     _gsa_resource, gsa_project, node_pool_resource, project, project_resource, q)
from ._identity import wi_binding_denied, workload_pool


CHECK = "gcs-log-write-denied"
PERM = "storage.objects.create"
MISSING = "missing"
_DISABLED = re.compile(r"(?i)SERVICE_DISABLED|accessNotConfigured|has not been used in project \S+ before or it is disabled")
_403 = re.compile(r"(?i)(403|forbidden|access ?denied|insufficient(?: authentication)? ?(?:scopes|permission)|"
                  r"does not have storage\.objects\.create)")
_GCS = re.compile(r"(?i)(storage\.googleapis\.com|gs://|\bgcs\b|google\.cloud\.storage|storage\.objects)")


@check(id="gcs-log-write-denied", title="Airflow can write task logs to its Cloud Storage bucket",
       severity="error", category=Category.LOGGING, needs=("configmaps", "pods", "serviceaccounts", "cluster"),
       uses=("bucket", "bucket_iam", "project_iam", "project", "gsa", "nodes", "logs", "deployments", "statefulsets",
             "group_membership"),
       evidence="config",
       severity_note="warning when IAM could not be read")
def run(ctx: Context) -> Result:
    """The log-writing identity cannot create objects in the gs:// log bucket (IAM, scopes, missing bucket, 403 in logs)."""
    targets: dict[str, list[tuple[Identity, str, str]]] = {}
    for comp in LOG_WRITERS:
        folder, where = remote_log_folder(ctx, comp)
        if not folder:
            continue
        for ident in resolve(ctx, comp):
            targets.setdefault(bucket_of(folder), []).append((ident, folder, where))
    if not targets:
        return skipped("remote logging does not write to gs:// (no [logging] remote_logging with a gs:// "
                       "remote_base_log_folder for any log-writing component)")
    findings, missing = [], []
    for bucket, idents in targets.items():
        f = _check_bucket(ctx, bucket, idents)
        if isinstance(f, Finding):
            findings.append(f)
        elif isinstance(f, DataUnavailable):
            raise f
        elif f == MISSING:
            missing.append(bucket)
    if missing and not findings:
        return skipped(f"gs://{', gs://'.join(missing)} does not exist (HTTP 404): nothing can be written there; "
                       "remote-log-bucket-missing reports it")
    return from_findings(findings)


def _check_bucket(ctx: Context, bucket: str, idents: list[tuple[Identity, str, str]]):
    folder, where = idents[0][1], idents[0][2]
    p = project(ctx)
    head = [f"[logging] remote_base_log_folder = {folder} ({where})"]
    b_entry = ctx.entry("bucket", bucket=bucket)
    if b_entry is not None and b_entry.not_found:
        return MISSING   # a bucket that does not exist is remote-log-bucket-missing's finding
    iam_e = ctx.entry("bucket_iam", bucket=bucket)
    proj_e = ctx.entry("project_iam")
    bucket_policy = iam_e.data if iam_e is not None and iam_e.ok else None
    project_policy = proj_e.data if proj_e is not None and proj_e.ok else None
    bucket_why = no_answer_reason(iam_e, f"storage/v1/b/{bucket}/iam", "storage.buckets.getIamPolicy")
    project_why = no_answer_reason(proj_e, f"projects/{p}:getIamPolicy", "resourcemanager.projects.getIamPolicy")
    log_hits = _log_403(ctx, idents)

    problems: list[str] = []   # identities that cannot write
    doubts: list[str] = []
    caveats: list[str] = []    # "unless X is in group G": the only thing that could change the answer
    bind_cmds: list[str] = []  # the cause's fix when no token can be minted (wi-binding-missing)
    wi_pointer: list[str] = []
    confirm: list[str] = []    # the commands that settle those caveats
    unread = False
    evidence = list(head)
    caused_by: list[str] = []
    fix_members: list[str] = []
    groups: dict[tuple, list[Identity]] = {}
    for ident, _folder, _where in idents:
        groups.setdefault((ident.kind, tuple(sorted(ident.members(ctx)))), []).append(ident)
    for (kind, members_t), group in groups.items():
        members = set(members_t)
        annotated: list[str] = []
        ident = group[0]
        who = _describe(ctx, group)
        if kind == "node":
            ro = sorted({pool.name: pool for i in group for pool in i.pools if not pool.can_write_storage}.values(),
                        key=lambda pl: pl.name)
            if ro:
                problems.append(who)
                evidence.append(f"{who}: node pool(s) {', '.join(pl.name for pl in ro)} have read-only Cloud Storage "
                                "scopes, so the token cannot create objects whatever IAM grants")
                caused_by += [finding_id("node-storage-scope-read-only", node_pool_resource(ctx, pl.name)) for pl in ro]
            annotated = sorted({g for i in group if (g := ctx.gsa_of(i.ksa))})
            if annotated:   # annotated, yet on node credentials: no Workload Identity
                caused_by += [finding_id("workload-identity-not-enabled", r) for r in [_cluster_resource(ctx)] + [
                    node_pool_resource(ctx, pl.name) for i in group for pl in i.pools]]
        roles = member_roles(project_policy, members)
        ev = evaluate(PERM, members, [(f"bucket gs://{bucket}", bucket_policy, bucket_why),
                                      (f"project {p}", project_policy, project_why)],
                      project_roles_of_member=roles, project_id=ctx.target.project, membership=membership_of(ctx))
        writable = [m for m in sorted(members) if not m.startswith("principal://")][:1]
        if kind == "node" and annotated:
            # no grant to the node service account: once Workload Identity is on, these pods act as
            # the annotated GSA; it gets the bucket role only if it lacks it
            writable = []
            for g in annotated:
                gev = evaluate(PERM, {f"serviceAccount:{g}"}, [(f"bucket gs://{bucket}", bucket_policy, bucket_why),
                                                               (f"project {p}", project_policy, project_why)])
                if gev.verdict == "granted":
                    evidence.append(f"{who}: the annotated {g} already holds {'; '.join(gev.grants)}: enabling "
                                    "Workload Identity is the whole fix")
                    wi_pointer.append(f"# enable Workload Identity (see workload-identity-not-enabled): the pods then "
                                      f"act as {g}, which already may write to gs://{bucket}")
                else:
                    writable.append(f"serviceAccount:{g}")
            if who not in problems and (ev.verdict != "granted" or log_hits):
                problems.append(who)
        if ev.verdict == "granted":
            evidence.append(f"{who}: IAM grants {PERM} via {'; '.join(ev.grants)}")
            evidence += membership_lines(ev, who)
        elif ev.verdict == "denied" or ev.only_groups:
            if who not in problems:
                problems.append(who)
            evidence.append(f"{who}: no role with {PERM} on bucket gs://{bucket} or project {p} "
                            f"(members checked: {', '.join(sorted(members))})")
            evidence += [f"{who}: {x}" for x in ev.lacking]
            if ev.no_groups:
                evidence.append(f"{who}: {ev.no_groups}")
            evidence += membership_lines(ev, who)
            if ev.only_groups:
                text, cmds_ = unless_in_groups(ev, (writable or sorted(members))[0])
                caveats.append(text)
                confirm += cmds_
                evidence.append(f"{who}: every IAM policy was read; only group membership is unknown: "
                                + "; ".join(f"{r} on {w} to {g}" for g, r, w in ev.groups))
            fix_members += writable
        else:
            unread = unread or bool(ev.unread)
            doubts.append(who)
            evidence.append(f"{who}: unproven: " + "; ".join(ev.doubts))
            fix_members += writable
        if kind == "gsa" and ident.gsa:
            unbound = sorted({i.ksa for i in group if i.ksa and wi_binding_denied(ctx, i.ksa, ident.gsa)})
            if unbound:
                # no token can be minted for these pods: the bucket grant is not what fails
                who_unbound = (", ".join(dict.fromkeys(i.label for i in group if i.ksa in unbound))
                               + f" (KSA {', '.join(unbound)} → {ident.gsa}, no token)")
                if who_unbound not in problems and who not in problems:
                    problems.append(who_unbound)
                evidence.append(f"KSA {', '.join(unbound)} may not impersonate {ident.gsa} (no "
                                "roles/iam.workloadIdentityUser): the pods get no token, whatever the bucket grants")
                caused_by.append(finding_id("wi-binding-missing", _gsa_resource(ctx, ident.gsa)))
                gp = gsa_project(ctx, ident.gsa)
                bind_cmds += [f"gcloud iam service-accounts add-iam-policy-binding {q(ident.gsa)} --project {q(gp)} "
                              f"--role roles/iam.workloadIdentityUser --member "
                              f"{q(f'serviceAccount:{workload_pool(ctx)}[{ctx.target.namespace}/{k}]')}" for k in unbound]
            g = ctx.entry("gsa", email=ident.gsa)
            if g is not None and g.not_found:
                if who not in problems:
                    problems.append(who)
                evidence.append(f"Google service account {ident.gsa} does not exist (HTTP 404)")
                caused_by.append(finding_id("wi-binding-missing", _gsa_resource(ctx, ident.gsa)))
    for line in log_hits:
        evidence.append(line)
    if log_hits and _api_disabled_in_logs(ctx, idents):
        caused_by.append(finding_id("required-api-disabled", project_resource(ctx)))
    if log_hits and not problems:
        problems.append("a log-writing component")
    if not problems and not doubts:
        return None
    severity = "error" if problems else "warning"
    idents_text = ", ".join(problems or doubts)
    cmds = bind_cmds + wi_pointer + list(dict.fromkeys(confirm)) + [
        f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q(m)} --role roles/storage.objectUser"
        for m in dict.fromkeys(fix_members)]
    scope_cause = any(c.startswith("node-storage-scope-read-only:") for c in caused_by)
    if scope_cause and not any(i.kind == "node" and ctx.gsa_of(i.ksa) for i, _f, _w in idents):
        # read-only scopes: no IAM grant to the node service account helps; the cause's fix moves the
        # writers to a Google service account, which then needs the bucket role (unless it holds it)
        gsa = f"airflow@{p}.iam.gserviceaccount.com"
        held = evaluate(PERM, {f"serviceAccount:{gsa}"}, [(f"bucket gs://{bucket}", bucket_policy, bucket_why),
                                                           (f"project {p}", project_policy, project_why)])
        cmds = list(dict.fromkeys(confirm))
        if held.verdict != "granted":
            cmds.append(f"# the node token cannot write: move the writers to Workload Identity (see "
                        f"node-storage-scope-read-only), then let their Google service account write to the bucket\n"
                        f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q('serviceAccount:' + gsa)} "
                        "--role roles/storage.objectUser")
    if severity == "warning":
        title = f"Cannot prove that Airflow may write logs to gs://{bucket}"
        message = ((f"The doctor could not read every IAM policy that decides whether {idents_text} may create "
                    f"objects in gs://{bucket}; the result is unproven, not denied. Grant the reader permissions "
                    "below to the identity running the doctor, or confirm by hand.") if unread else
                   (f"Every IAM policy was read, but {idents_text} holds a custom role whose permissions the doctor "
                    f"does not read, so whether it may create objects in gs://{bucket} is unproven, not denied. "
                    "Confirm the role's permissions by hand."))
        cmds = [f"gcloud storage buckets get-iam-policy gs://{bucket} --format=json",
                f"gcloud projects get-iam-policy {q(p)} --format=json"] + cmds
    else:
        will = ctx.mode == "planned"
        title = (f"{idents_text[0].upper() + idents_text[1:]} {'will not be able to' if will else 'cannot'} write logs to "
                 f"gs://{bucket}" + (f" ({'; '.join(caveats)})" if caveats else ""))
        message = (f"Airflow {'will write' if will else 'writes'} task and component logs under {folder}, but {idents_text} "
                   f"{'will not be able to' if will else 'cannot'} create objects there ({PERM}); uploads "
                   f"{'will fail' if will else 'fail'} with 403 and the logs are lost when the pod goes. "
                   "Grant a storage object role on the bucket to the identity that writes (never roles/editor)."
                   + (f" This holds {' and '.join(caveats)}: every IAM policy was read and no other grant "
                      "exists; the first command settles it." if caveats else ""))
    return Finding(
        title=title, message=message, resource=bucket_resource(bucket), evidence=evidence,
        remediation=Remediation(
            summary=("Grant roles/storage.objectUser on the bucket to the identity the log writers act as"
                     + (" and give it a token that may write (Workload Identity)" if caused_by else "") + "."),
            commands=cmds or [f"gcloud storage buckets get-iam-policy gs://{bucket} --format=json"]),
        caused_by=caused_by, severity=severity,
    )


def _describe(ctx: Context, group: list[Identity]) -> str:
    """``task pods, scheduler (node service account X)``: the components sharing one principal."""
    ident = group[0]
    labels = ", ".join(dict.fromkeys(i.label for i in group))
    if ident.kind == "gsa":
        return f"{labels} (Google service account {ident.gsa})"
    if ident.kind == "federated":
        return f"{labels} (KSA {', '.join(dict.fromkeys(i.ksa for i in group))} as federated principal, no annotation)"
    sas = sorted({ctx.node_service_account(pl) for i in group for pl in i.pools})
    return f"{labels} (node service account {', '.join(sas) or 'unknown'})"


def _log_403(ctx: Context, idents) -> list[str]:
    """Log lines of the writers' containers that show a 403 talking to Cloud Storage."""
    out = []
    for ident, _f, _w in idents:
        for pod in ident.pods[:20]:
            for c in pod.containers:
                for previous in (False, True):
                    for line in ctx.log_lines(pod.name, str(c.get("name")), previous)[-200:]:
                        if _403.search(line) and _GCS.search(line):
                            out.append(f"log {pod.name}/{c.get('name')}: {line.strip()[:400]}")
                            break
            if len(out) >= 3:
                return out
    return out


def _api_disabled_in_logs(ctx: Context, idents) -> bool:
    """Whether a writer's log shows Google refusing a call because an API is disabled."""
    for ident, _f, _w in idents:
        for pod in ident.pods[:20]:
            for c in pod.containers:
                if any(_DISABLED.search(line) for line in ctx.log_lines(pod.name, str(c.get("name")))[-200:]):
                    return True
    return False


def _region(ctx: Context) -> str:
    loc = ctx.target.location or "LOCATION"
    parts = loc.split("-")
    return "-".join(parts[:2]) if len(parts) == 3 and len(parts[2]) == 1 else loc


# --- doctor --probe: the write probe's result against the IAM inference --------------------------------------

@after_run("gcs-log-write-denied")
def settle_probe(ctx: Context, run, runs: list) -> None:
    """Let a representative write probe (``ctx.probe``, doctor/live/probe.py) override the IAM
    inference of this check, and say so; an unrepresentative one only adds its outcome."""
    res = ctx.probe
    if res is None:
        return
    bucket = res.bucket
    existing = [f for f in run.findings if f.resource.kind == "Bucket" and f.resource.name == bucket]
    if res.verdict == "not-run" or not res.representative:
        line = f"write probe as {res.who()}: {res.outcome()} ({res.note})"
        for f in existing:
            f.evidence.append(line)
        if not existing:
            run.reason = f"{run.reason}; {line}" if run.reason else line
        return
    res.overrides = True
    inferred = existing[0] if existing else None
    if inferred is not None:
        before = f"which had found: {inferred.title}"
    elif run.status in ("skip", "error"):
        before = f"which could not run: {run.reason}"
    else:
        before = f"which had found no problem with gs://{bucket}"
    others = [f for f in run.findings if f not in existing]
    who = res.who()
    if res.verdict == "allowed":
        run.findings = others
        run.status = "fail" if others else "pass"
        run.reason = f"write probe as {who} {res.outcome()}: this overrides the IAM inference, {before}"
        return
    if res.verdict == "bucket-missing":
        dup = [f for r in runs if r.id == "remote-log-bucket-missing" for f in r.findings
               if f.resource.kind == "Bucket" and f.resource.name == bucket]
        if dup:   # the same fact, already a finding: confirm it instead of repeating it
            run.reason = (f"write probe as {who}: {res.outcome()}, which confirms {dup[0].id}"
                          + (f"; {run.reason}" if run.reason else ""))
            return
    title, summary, cmds = _advice(res, ctx, bucket, who)
    evidence = [f"write probe as {who} ({res.note}):"]
    evidence += [f"  {s.step}: {'ok' if s.ok else 'FAILED'}" + (f" HTTP {s.status}" if s.status else "")
                 + f": {s.detail}" for s in res.steps]
    evidence.append(f"the probe's result overrides the IAM inference, {before}")
    if inferred is not None:
        evidence += [f"IAM inference: {e}" for e in inferred.evidence]
        cmds += [c for c in inferred.remediation.commands if c not in cmds]
    caused_by = list(inferred.caused_by) if inferred is not None else []
    if res.scope_problem:
        caused_by += [f.id for r in runs if r.id == "node-storage-scope-read-only" for f in r.findings
                      if f.id not in caused_by]
    finding = Finding(
        title=title,
        message=(f"The doctor wrote a test object under {res.folder} as the identity that writes Airflow's logs, "
                 f"and {res.outcome()}. Airflow's log uploads fail the same way. This result overrides the IAM "
                 f"inference, {before}."),
        resource=bucket_resource(bucket), evidence=evidence,
        remediation=Remediation(summary=summary, commands=cmds), caused_by=caused_by, severity="error",
        check=CHECK)
    run.findings = others + [finding]
    run.status = "fail"
    run.reason = None


def _principal(res) -> str | None:
    """The identity to grant: the service account the probe acted as, or the one the 403 names."""
    if "@" in res.identity:
        return f"serviceAccount:{res.identity}"
    st = res.failed_step
    m = re.match(r"\s*([\w.+-]+@[\w.-]+)\s+does not have", st.detail) if st else None
    return f"serviceAccount:{m.group(1)}" if m else None


def _advice(res, ctx: Context, bucket: str, who: str) -> tuple[str, str, list[str]]:
    member = _principal(res) or "serviceAccount:GSA_EMAIL"
    grant = (f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member {q(member)} "
             "--role roles/storage.objectUser")
    perm = f" (missing {res.missing_permission})" if res.missing_permission else ""
    if res.verdict == "bucket-missing":
        return (f"Log bucket gs://{bucket} does not exist (write probe: HTTP 404)",
                "Create the bucket, or point remote_base_log_folder at an existing one.",
                [f"gcloud storage buckets create gs://{bucket} --project {q(project(ctx))} --uniform-bucket-level-access"])
    if res.verdict == "no-token":
        pod = res.pod
        gsa = None
        try:
            gsa = ctx.gsa_of(pod.service_account) if pod.service_account else None
        except Exception:  # noqa: BLE001 - service accounts not readable
            gsa = None
        p = project(ctx)
        wi_member = f"serviceAccount:{p}.svc.id.goog[{pod.ksa or 'NAMESPACE/KSA'}]"
        cmds = [f"gcloud iam service-accounts add-iam-policy-binding {q(gsa or 'GSA_EMAIL')} --project {q(p)} "
                f"--role roles/iam.workloadIdentityUser --member {q(wi_member)}"]
        return (f"{who} cannot get a Google access token, so it cannot write logs to gs://{bucket} (write probe)",
                "Give the Kubernetes service account a Google identity: with Workload Identity, let it impersonate "
                "its Google service account (roles/iam.workloadIdentityUser) and annotate it.", cmds)
    if res.verdict == "partial":
        failed = ", ".join(s.step for s in res.steps if not s.ok)
        return (f"{who} can create but not {failed} log objects in gs://{bucket}{perm} (write probe)",
                "Airflow reads its log objects back and overwrites them: grant roles/storage.objectUser (not only "
                "objectCreator) on the bucket.", [grant])
    if res.verdict == "denied":
        if res.scope_problem:
            return (f"{who} cannot write logs to gs://{bucket}: the token's OAuth scopes do not allow it "
                    "(write probe: HTTP 403)",
                    "The node pool's scopes are read-only for Cloud Storage: move the log writers to Workload "
                    "Identity (see node-storage-scope-read-only), then grant the bucket role.", [grant])
        return (f"{who} cannot write logs to gs://{bucket}{perm} (write probe: HTTP 403)",
                "Grant a storage object role on the bucket to the identity the log writers act as "
                "(never roles/editor).", [grant])
    return (f"Write probe to gs://{bucket} as {who} failed: {res.outcome()}",
            "Check that the pods can reach storage.googleapis.com (Private Google Access, egress firewall, proxy) "
            "and retry.", [f"gcloud storage ls gs://{bucket}/ --project {q(project(ctx))}"])
