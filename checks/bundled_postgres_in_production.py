"""The metadata database lives in the chart's own PostgreSQL (the Bitnami subchart,
``postgresql.enabled=true``, the chart default): one pod on one zonal disk, no backups, no HA,
images the chart pins and Bitnami may withdraw. The chart documents it as not for production."""
from __future__ import annotations

from airflow_gke.views import as_list, Context, image_repo
from airflow_gke.model import Finding, Remediation, Result, from_findings
from airflow_gke.registry import Category, check
from airflow_gke.remediation import helm_upgrade, k8s_resource, location, ns, project, q, release

from ._db import bundled_postgres, metadata_secret


@check(id="bundled-postgres-in-production", title="The metadata database is not the chart's bundled PostgreSQL",
       severity="warning", category=Category.DATABASE, needs=("statefulsets", "pods"), uses=("pvcs",))
def run(ctx: Context) -> Result:
    """The chart's own PostgreSQL StatefulSet (<release>-postgresql, Bitnami) holds the metadata DB."""
    rel = release(ctx)
    findings = []
    for sts in bundled_postgres(ctx, rel):
        secret = None
        for comp in ("scheduler", "api-server", "webserver"):
            for p in ctx.pods_by_component.get(comp, []):
                secret = secret or metadata_secret(p)
        if secret and secret not in (f"{rel}-metadata", f"{rel}-airflow-metadata"):
            continue   # the components read a user-provided connection: the bundled DB may not hold the metadata
        findings.append(_finding(ctx, rel, sts, secret))
    return from_findings(findings)


def _finding(ctx: Context, rel: str, sts, secret: str | None) -> Finding:
    tpl = sts.spec.get("template") or {}
    images = [str(c.get("image")) for c in as_list((tpl.get("spec") or {}).get("containers")) if isinstance(c, dict)]
    claims = [str((t.get("metadata") or {}).get("name")) for t in as_list(sts.spec.get("volumeClaimTemplates"))
              if isinstance(t, dict)]
    evidence = [f"StatefulSet {sts.name}: labels app.kubernetes.io/name={sts.labels.get('app.kubernetes.io/name')}, "
                f"helm.sh/chart={sts.labels.get('helm.sh/chart')}, replicas {sts.spec.get('replicas')}, "
                f"image {', '.join(images) or '(unknown)'}"]
    for c in claims:
        pvc = ctx.pvcs.get(f"{c}-{sts.name}-0") if ctx.has("pvcs") else None
        if pvc is not None:
            evidence.append(f"PersistentVolumeClaim {pvc.name}: {pvc.access_modes}, class {pvc.storage_class_name}, "
                            f"{(pvc.spec.get('resources') or {}).get('requests', {}).get('storage')} (one zonal disk)")
    if secret:
        evidence.append(f"Airflow reads its connection from Secret {secret} (chart-generated: host "
                        f"{rel}-postgresql.{ns(ctx)} or its PgBouncer)")
    region = location(ctx).rsplit("-", 1)[0] if location(ctx).count("-") == 2 else location(ctx)
    n = q(ns(ctx))
    p = q(project(ctx))
    pod = f"{sts.name}-0"
    commands = [
        f"gcloud sql instances create airflow-metadata --database-version=POSTGRES_16 --region={q(region)} "
        f"--tier=db-custom-2-7680 --network=default --no-assign-ip --availability-type=REGIONAL --project {p}",
        f"gcloud sql databases create airflow --instance airflow-metadata --project {p}",
        f"gcloud sql users create airflow --instance airflow-metadata --prompt-for-password --project {p}",
        f"kubectl exec {q(pod)} --namespace {n} -- sh -c 'PGPASSWORD=\"$POSTGRES_PASSWORD\" pg_dump -U postgres -Fc postgres' > airflow-metadata.dump",
        f"kubectl create secret generic airflow-metadata-cloudsql --namespace {n} "
        "--from-literal=connection='postgresql://airflow:<url-encoded password>@<cloud-sql-private-ip>:5432/airflow'",
        helm_upgrade(ctx, "--set postgresql.enabled=false", "--set data.metadataSecretName=airflow-metadata-cloudsql"),
    ]
    bitnami = any(image_repo(i).endswith("bitnami/postgresql") for i in images)
    return Finding(
        title=f"The metadata database runs in the chart's bundled PostgreSQL ({sts.name})",
        message=(f"Airflow's metadata database is the chart's own PostgreSQL StatefulSet {sts.name} "
                 "(postgresql.enabled=true, the chart default): a single pod on a single zonal disk, without backups, "
                 "failover or maintenance, and the chart's docs say it is not for production."
                 + (" Its Bitnami images are pinned by the chart and have been withdrawn from Docker Hub before "
                    "(bitnami -> bitnamilegacy)." if bitnami else "")
                 + " Use Cloud SQL for PostgreSQL (or another managed PostgreSQL)."),
        resource=k8s_resource(ctx, "StatefulSet", sts.name),
        evidence=evidence,
        remediation=Remediation("Move the metadata database to Cloud SQL: create the instance with a private IP, "
                                "dump and restore the data, store the connection URL in a Secret and turn the "
                                "bundled PostgreSQL off.", commands),
    )
