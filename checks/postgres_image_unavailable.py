"""The chart's bundled PostgreSQL pod cannot pull its image: Bitnami removed the versioned
``docker.io/bitnami/postgresql`` tags the older charts pin (they moved to ``bitnamilegacy``), or
Docker Hub rate-limits or refuses the pull."""
from __future__ import annotations

import re

from airflow_gke.views import all_statuses, Context, human_age, image_repo, image_tag, Pod
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, ns, q, project, quote_event, region, registry_path, release

from ._db import postgres_pods

PULL = ("ErrImagePull", "ImagePullBackOff")
NOT_FOUND = re.compile(r"(?i)not found|manifest unknown|no such manifest|failed to resolve reference")
RATE = re.compile(r"(?i)toomanyrequests|rate limit")
DENIED = re.compile(r"(?i)\b403\b|unauthorized|denied|forbidden")


@check(id="postgres-image-unavailable", title="The bundled PostgreSQL image can be pulled",
       severity="error", category=Category.DATABASE, needs=("pods", "events"))
def run(ctx: Context) -> Result:
    """The postgresql subchart's pod is stuck in ErrImagePull / ImagePullBackOff."""
    rel = release(ctx)
    findings = []
    for pod in postgres_pods(ctx, rel):
        for cs in all_statuses(pod):
            state, f = cs.state
            if state == "waiting" and f.get("reason") in PULL:
                findings.append(_finding(ctx, rel, pod, cs))
                break
    return from_findings(findings)


def _finding(ctx: Context, rel: str, pod: Pod, cs) -> Finding:
    state, f = cs.state
    image = cs.image or next((str(c.get("image")) for c in pod.containers if c.get("name") == cs.name), "")
    texts = [str(f.get("message") or "")]
    evidence = [f"Pod {pod.name}: container {cs.name} waiting {f.get('reason')} for {human_age(ctx.age(pod.started))}, "
                f"image {image}"]
    if f.get("message"):
        evidence.append(f"state.waiting.message: {str(f['message']).strip()[:300]}")
    for e in ctx.events_for("Pod", pod.name)[-4:]:
        if e.get("type") == "Warning":
            evidence.append(quote_event(e))
            texts.append(str(e.get("message") or ""))
    blob = "\n".join(texts)
    repo, tag = image_repo(image), image_tag(image)
    n = q(ns(ctx))
    if RATE.search(blob):
        cause = "Docker Hub rate-limits anonymous pulls from the nodes"
        summary = ("Pull through a mirror: an Artifact Registry remote repository for Docker Hub, and point "
                   "postgresql.image.registry at it; better, move the metadata DB to Cloud SQL.")
        commands = ["gcloud artifacts repositories create dockerhub --repository-format=docker --mode=remote-repository "
                    f"--remote-docker-repo=DOCKER-HUB --location={q(region(ctx))} --project {q(project(ctx))}",
                    helm_upgrade(ctx, f"--set postgresql.image.registry={registry_path(ctx)}/dockerhub")]
    elif NOT_FOUND.search(blob) or not DENIED.search(blob):
        cause = (f"the tag {repo}:{tag} no longer exists: Bitnami withdrew its versioned images from docker.io/bitnami "
                 "(they live on, unmaintained, under bitnamilegacy)")
        summary = ("Short term: pull the same version from bitnamilegacy. Long term: turn the bundled database off and "
                   "use Cloud SQL (postgresql.enabled=false, data.metadataSecretName).")
        commands = [helm_upgrade(ctx, "--set postgresql.image.registry=docker.io",
                                 "--set postgresql.image.repository=bitnamilegacy/postgresql",
                                 f"--set-string postgresql.image.tag={q(tag)}"),
                    f"kubectl delete pod {q(pod.name)} --namespace {n}"]
    else:
        cause = "the registry refuses the pull (credentials or permissions)"
        summary = "Give the nodes access to the registry that holds the image, or use Cloud SQL."
        commands = [f"kubectl describe pod {q(pod.name)} --namespace {n}"]
    return Finding(
        title=f"Bundled PostgreSQL pod {pod.name} cannot pull {image}",
        message=(f"The chart's PostgreSQL pod {pod.name} cannot start: {cause}. Without it the metadata database is down, "
                 "so every Airflow component waits in wait-for-airflow-migrations and the migration Job cannot run."),
        resource=k8s_resource(ctx, "Pod", pod.name),
        evidence=evidence,
        remediation=Remediation(summary, commands),
    )
