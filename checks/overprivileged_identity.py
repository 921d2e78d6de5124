"""Node or Airflow Google identities hold roles/editor or roles/owner on the project: any DAG (or
anything that gets a shell in an Airflow pod) can change almost everything in the project."""
from __future__ import annotations

import re

from airflow_gke.views import Context, NodePool
from airflow_gke.views.iam import bindings
from airflow_gke.views.identity import (COMPONENTS, LOG_READERS, LOG_WRITERS, annotated_ksas, bucket_of, ksas_in_use,
                                        remote_log_folder)
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import gsa_resource, k8s_resource, project, q

from ._identity import airflow_pools, is_compute_default, wi_members

BROAD = ("roles/owner", "roles/editor")
_DEFAULT_SA = re.compile(r"^serviceAccount:\d+-compute@developer\.gserviceaccount\.com$")


@check(id="overprivileged-identity", title="Node and Airflow Google identities hold no basic Editor/Owner role",
       severity="warning", category=Category.SECURITY, needs=("project_iam", "cluster", "pods", "serviceaccounts"),
       uses=("project", "nodes", "configmaps", "deployments", "statefulsets"),
       evidence="config")
def run(ctx: Context) -> Result:
    """Node or Airflow Google service accounts hold roles/editor or roles/owner at project level."""
    policy = ctx.body("project_iam")
    findings: list[Finding] = []
    pools, tied = airflow_pools(ctx)
    node_sas: dict[str, list[NodePool]] = {}
    for pl in pools:
        node_sas.setdefault(ctx.node_service_account(pl), []).append(pl)
    for sa, sa_pools in sorted(node_sas.items()):
        members = {f"serviceAccount:{sa}"} if "@" in sa else set()
        default = all(is_compute_default(ctx, pl) for pl in sa_pools)
        held = _held(policy, members, default and not members)
        if held:
            findings.append(_node_finding(ctx, sa, sa_pools, tied, held, default))
    for gsa, ksas in sorted(_gsas(ctx).items()):
        held = _held(policy, {f"serviceAccount:{gsa}"}, False)
        if held and gsa not in node_sas:
            findings.append(_gsa_finding(ctx, gsa, ksas, held))
    if ctx.workload_pool:
        ann = annotated_ksas(ctx)
        for ksa, use in sorted(ksas_in_use(ctx).items()):
            if ksa in ann:
                continue
            held = _held(policy, wi_members(ctx, ksa), False)
            if held:
                findings.append(_federated_finding(ctx, ksa, use.labels, held))
    return from_findings(findings)


def _held(policy, members: set[str], any_default_sa: bool) -> list[tuple[str, str, bool]]:
    """(role, member, conditional) for the basic roles the members hold on the project."""
    out = []
    for b in bindings(policy):
        role = b.get("role")
        if role not in BROAD:
            continue
        for m in b.get("members") if isinstance(b.get("members"), list) else []:
            if isinstance(m, str) and (m in members or (any_default_sa and _DEFAULT_SA.match(m))):
                out.append((role, m, bool(b.get("condition"))))
    return out


def _gsas(ctx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ksa, (gsa, _use) in annotated_ksas(ctx).items():
        out.setdefault(gsa, []).append(ksa)
    return out


def _held_lines(ctx: Context, held) -> list[str]:
    return [f"project {project(ctx)} IAM policy: {role} is granted to {m}" + (" (with an IAM condition)" if c else "")
            for role, m, c in held]


def _remove(ctx: Context, held) -> list[str]:
    return [f"gcloud projects remove-iam-policy-binding {q(project(ctx))} --member {q(m)} --role {role}"
            + (" --all" if c else "") for role, m, c in held]


def _node_finding(ctx: Context, sa: str, pools: list[NodePool], tied: bool, held, default: bool) -> Finding:
    p = project(ctx)
    email = held[0][1].split(":", 1)[1]
    names = ", ".join(pl.name for pl in pools)
    evidence = _held_lines(ctx, held)
    evidence.append(f"{email} is the service account of node pool(s) {names}"
                    + (", which run Airflow pods" if tied else " (no Airflow pod could be tied to a pool)"))
    for pl in pools:
        wi = "GKE_METADATA (pods on Workload Identity cannot get its token)" if pl.gke_metadata else \
            "GCE metadata: every pod on it that is not on Workload Identity acts with this token"
        evidence.append(f"node pool {pl.name}: scopes {', '.join(s.rsplit('/', 1)[-1] for s in pl.scopes) or 'none'}; "
                        f"{wi}")
    cmds = [f"gcloud projects add-iam-policy-binding {q(p)} --member {q('serviceAccount:' + email)} "
            "--role roles/container.defaultNodeServiceAccount",
            f"gcloud projects add-iam-policy-binding {q(p)} --member {q('serviceAccount:' + email)} "
            "--role roles/artifactregistry.reader"] + _remove(ctx, held)
    caveat = (" It is the Compute Engine default service account, which other VMs and services of the project may "
              "use too: prefer moving the node pools to a dedicated service account (default-compute-sa-nodes) and "
              "removing the basic role once nothing relies on it." if default else "")
    return Finding(
        title=f"Node service account {email} holds {', '.join(sorted({r for r, _m, _c in held}))} on project {p}",
        message=(f"Nodes of {names} run as {email}, which holds a basic role on the whole project. Any pod on those "
                 "nodes that uses the node's credentials (every pod not on Workload Identity, within the node's "
                 "scopes) can modify or delete resources across the project. Nodes need only "
                 "roles/container.defaultNodeServiceAccount (plus read access to their image registry)." + caveat),
        resource=gsa_resource(ctx, email),
        evidence=evidence,
        remediation=Remediation(
            summary="Grant the node service account the minimal node role (and registry read), then remove the "
                    "basic role. Never fix an Airflow permission problem with roles/editor.",
            commands=cmds),
    )


def _needs(ctx: Context) -> tuple[list[str], list[str]]:
    """(log buckets, whether Secret Manager is used) for least-privilege grants."""
    buckets: list[str] = []
    for comp in LOG_WRITERS + LOG_READERS:
        folder, _w = remote_log_folder(ctx, comp)
        if folder and bucket_of(folder) not in buckets:
            buckets.append(bucket_of(folder))
    sm = [c for c in COMPONENTS if "CloudSecretManagerBackend" in (ctx.config(c).get("secrets", "backend") or "")]
    return buckets, sm


def _grants(ctx: Context, member: str) -> list[str]:
    buckets, sm = _needs(ctx)
    cmds = [f"gcloud storage buckets add-iam-policy-binding gs://{b} --member {q(member)} --role roles/storage.objectUser"
            for b in buckets]
    if sm:
        cmds.append(f"gcloud projects add-iam-policy-binding {q(project(ctx))} --member {q(member)} "
                    "--role roles/secretmanager.secretAccessor")
    return cmds


def _gsa_finding(ctx: Context, gsa: str, ksas: list[str], held) -> Finding:
    p = project(ctx)
    evidence = _held_lines(ctx, held)
    evidence.append(f"{gsa} is named (iam.gke.io/gcp-service-account) by Airflow KSA(s) "
                    f"{', '.join(ctx.target.namespace + '/' + k for k in ksas)}")
    member = f"serviceAccount:{gsa}"
    return Finding(
        title=f"Airflow's Google service account {gsa} holds {', '.join(sorted({r for r, _m, _c in held}))} on project {p}",
        message=(f"Airflow pods act as {gsa}, which holds a basic role on project {p}: any DAG can read, change or "
                 "delete nearly every resource of the project. Grant it only what Airflow uses (object access on the "
                 "log bucket, the secrets it reads, the data its DAGs touch) and remove the basic role."),
        resource=gsa_resource(ctx, gsa),
        evidence=evidence,
        remediation=Remediation(summary="Grant the narrow roles Airflow needs, then remove the basic role.",
                                commands=_grants(ctx, member) + _remove(ctx, held)),
    )


def _federated_finding(ctx: Context, ksa: str, labels: str, held) -> Finding:
    p = project(ctx)
    evidence = _held_lines(ctx, held)
    evidence.append(f"KSA {ctx.target.namespace}/{ksa} ({labels}) is not annotated; under Workload Identity it "
                    "acts as its own principal, which the project policy names")
    member = sorted(wi_members(ctx, ksa))[0]
    return Finding(
        title=f"Airflow KSA {ksa} holds {', '.join(sorted({r for r, _m, _c in held}))} on project {p} through "
              "Workload Identity",
        message=(f"The project's IAM policy grants a basic role to the Workload Identity principal of KSA {ksa}: "
                 "every pod running as it (any DAG) can change nearly everything in the project."),
        resource=k8s_resource(ctx, "ServiceAccount", ksa),
        evidence=evidence,
        remediation=Remediation(summary="Grant the narrow roles Airflow needs, then remove the basic role.",
                                commands=_grants(ctx, member) + _remove(ctx, held)),
    )

