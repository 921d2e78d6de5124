"""Pods cannot pull their image from Artifact Registry / gcr.io because the registry refuses the
node's credentials (403 / unauthorized). Images that do not exist and Docker Hub rate limits are
different failures and are not reported here."""
from __future__ import annotations

import re

from airflow_gke.views import ContainerStatus, Context, DataUnavailable, google_repo, NodePool, Pod, Repo
from airflow_gke.views.iam import member_roles
from airflow_gke.model import Finding, Remediation, Resource, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import cluster_name, gke_flags, project, q, quote_event


PULL = ("ErrImagePull", "ImagePullBackOff")
DENIED = re.compile(r"(?i)\b403\b|forbidden|\b401\b|unauthori[sz]ed|\bdenied\b|permission \"?artifactregistry")
RATE = re.compile(r"(?i)toomanyrequests|\b429\b|rate limit")
READ_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",
               "https://www.googleapis.com/auth/devstorage.read_only",
               "https://www.googleapis.com/auth/devstorage.read_write",
               "https://www.googleapis.com/auth/devstorage.full_control")


@check(id="image-pull-denied", title="Nodes may pull the images from Artifact Registry", severity="error",
       category=Category.IDENTITY, needs=("pods", "events"), uses=("cluster", "nodes", "project", "project_iam"))
def run(ctx: Context) -> Result:
    """Pods in ErrImagePull/ImagePullBackOff on *.pkg.dev or gcr.io with 403/unauthorized (node SA lacks roles/artifactregistry.reader)."""
    by_repo: dict[Repo, list[tuple[Pod, ContainerStatus, str, list[str]]]] = {}
    for pod in ctx.unhealthy_pods:   # a waiting container is unhealthy: the other pods have none
        for cs in pod.init_statuses + pod.container_statuses:
            state, fields = cs.state
            if state != "waiting" or fields.get("reason") not in PULL:
                continue
            image = _image(pod, cs)
            repo = google_repo(image)
            if repo is None:
                continue
            denied, lines = _denial(ctx, pod, cs, image, fields)
            if denied:
                by_repo.setdefault(repo, []).append((pod, cs, image, lines))
    return from_findings([_finding(ctx, repo, hits) for repo, hits in by_repo.items()])


def _image(pod: Pod, cs: ContainerStatus) -> str:
    for c in pod.init_containers + pod.containers:
        if c.get("name") == cs.name and c.get("image"):
            return str(c["image"])
    return cs.image


def _denial(ctx: Context, pod: Pod, cs: ContainerStatus, image: str, fields: dict) -> tuple[bool, list[str]]:
    """(the registry refused the credentials, evidence lines) for one waiting container."""
    texts: list[tuple[str, str]] = []
    msg = str(fields.get("message") or "")
    if msg:
        texts.append((msg, f"{cs.name} state.waiting ({fields.get('reason')}): {msg.strip()[:400]}"))
    for e in ctx.events_for("Pod", pod.name):
        path = str((e.get("involvedObject") or {}).get("fieldPath") or "")
        m = str(e.get("message") or "")
        if (path.endswith("{" + cs.name + "}") or image in m) and ("pull" in m.lower() or e.get("reason") == "Failed"):
            texts.append((m, quote_event(e)))
    denied = [line for text, line in texts if DENIED.search(text) and not RATE.search(text)]
    if not denied:
        return False, []   # "manifest unknown" / "not found" (no such image) or a rate limit: not this check
    return True, denied[-2:]


def _pools(ctx: Context, pods: list[Pod]) -> list[NodePool]:
    try:
        return ctx.pools_of(pods)
    except DataUnavailable:
        return []


def _finding(ctx: Context, repo: Repo, hits) -> Finding:
    pods = list(dict.fromkeys(h[0].name for h in hits))
    images = list(dict.fromkeys(h[2] for h in hits))
    evidence = []
    for pod, cs, image, _lines in hits[:5]:
        state, fields = cs.state
        who = pod.component or ("task pod" if pod.is_task_pod else "pod")
        evidence.append(f"Pod {pod.name} ({who}): {'init ' if cs.init else ''}container {cs.name} waiting "
                        f"{fields.get('reason')}, image {image}")
    if len(hits) > 5:
        evidence.append(f"... and {len(hits) - 5} more container(s) pulling from {repo.path}")
    seen = set()
    for _pod, _cs, _img, lines in hits:
        for line in lines:
            if line not in seen and len(seen) < 3:
                seen.add(line)
                evidence.append(line)
    pools = _pools(ctx, [h[0] for h in hits])
    sas = sorted({ctx.node_service_account(pl) for pl in pools})
    no_scope = [pl for pl in pools if not any(s in READ_SCOPES for s in pl.scopes)]
    for pl in pools:
        evidence.append(f"node pool {pl.name}: image pulls use its service account {ctx.node_service_account(pl)} "
                        f"(scopes: {', '.join(s.rsplit('/', 1)[-1] for s in pl.scopes) or 'none'})")
    for pl in no_scope:
        evidence.append(f"node pool {pl.name} has none of cloud-platform / devstorage.* scopes: its token may not "
                        "read Artifact Registry whatever IAM grants")
    pe = ctx.entry("project_iam")
    if repo.project == ctx.target.project and pe is not None and pe.ok:
        for sa in sas:
            roles = member_roles(pe.data, {f"serviceAccount:{sa}"})
            readers = sorted(r for r in roles if r in ("roles/artifactregistry.reader", "roles/artifactregistry.writer",
                                                       "roles/artifactregistry.repoAdmin", "roles/artifactregistry.admin",
                                                       "roles/editor", "roles/owner", "roles/viewer"))
            evidence.append(f"{sa} on project {repo.project}: "
                            + (f"holds {', '.join(readers)} (so the repository may not exist, or the scope or a "
                               "VPC Service Controls perimeter blocks it)" if readers
                               else "no role with artifactregistry.repositories.downloadArtifacts"))
    elif repo.project != ctx.target.project:
        evidence.append(f"the repository is in project {repo.project}, not the cluster's project {project(ctx)}: "
                        "the grant must be made there")
    members = sas or ["NODE_SERVICE_ACCOUNT"]
    cmds = [f"gcloud artifacts repositories add-iam-policy-binding {q(repo.name)} --project {q(repo.project)} "
            f"--location {q(repo.location)} --member {q('serviceAccount:' + sa)} --role roles/artifactregistry.reader"
            for sa in members]
    cmds.append(f"gcloud artifacts repositories get-iam-policy {q(repo.name)} --project {q(repo.project)} "
                f"--location {q(repo.location)} --format=json")
    for pl in no_scope:
        cmds.append(f"gcloud container node-pools create {q(pl.name + '-v2')} --cluster {q(cluster_name(ctx))} "
                    f"{gke_flags(ctx)} --service-account {q(ctx.node_service_account(pl))} --scopes=cloud-platform")
    return Finding(
        title=f"Artifact Registry refuses the nodes' credentials for {repo.path}: {len(pods)} pod(s) cannot pull "
              f"{', '.join(images[:2])}{' ...' if len(images) > 2 else ''}",
        message=(f"Image pulls are made by the kubelet with the node pool's service account (never with Workload "
                 f"Identity), and {repo.path} answers 403/unauthorized to it: the pods stay in ErrImagePull / "
                 "ImagePullBackOff. The node service account needs roles/artifactregistry.reader on the repository "
                 "(or its project), and the node scopes must allow reading storage. Artifact Registry answers 403 "
                 "also for a repository that does not exist, so check the path if the grant is already there."),
        resource=Resource("Repository", repo.path, None, repo.uri),
        evidence=evidence,
        remediation=Remediation(
            summary="Grant the node service account roles/artifactregistry.reader on the repository; the kubelet "
                    "retries the pulls on its own (back-off up to 5 minutes).",
            commands=cmds),
    )
