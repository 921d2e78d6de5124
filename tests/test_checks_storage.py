"""The storage, DAGs and database checks on their fixture scenarios: each finding names the right
resource, quotes the evidence that proves it, and prints commands filled with the real names; and
each check stays silent (pass) where its failure is absent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, findings_of, scenario, status_of

_DOCS: dict[str, dict] = {}


@pytest.fixture
def doc(run_cli):
    def get(name: str) -> dict:
        if name not in _DOCS:
            _DOCS[name] = doctor_json(run_cli, name)[1]
        return _DOCS[name]

    return get


def only(d: dict, check: str) -> dict:
    fs = findings_of(d, check)
    assert len(fs) == 1, [f["resource"] for f in fs]
    return fs[0]


def text(f: dict) -> str:
    return "\n".join([f["title"], f["message"], *f["evidence"], f["remediation"]["summary"],
                      *f["remediation"]["commands"]])


def cmds(f: dict) -> str:
    return "\n".join(f["remediation"]["commands"])


HEALTHY = ("healthy-af2-celery", "healthy-minimal", "healthy-af3-k8s-wi")


# --- pvc-storageclass-missing -------------------------------------------------------------------

def test_pvc_storageclass_missing_no_default_class(doc):
    f = only(doc("storage-no-default-class"), "pvc-storageclass-missing")
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "PersistentVolumeClaim", "namespace": "data-pipelines",
                             "name": "logs-af2-worker-2", "uri": None}
    t = text(f)
    assert "spec.storageClassName (not set)" in t
    assert "no StorageClass carries storageclass.kubernetes.io/is-default-class=true" in t
    assert "no persistent volumes available for this claim and no storage class is set" in t
    assert "Pod af2-worker-2 (worker) mounts it and cannot start" in t
    c = cmds(f)
    assert ("kubectl patch storageclass standard-rwo -p "
            "'{\"metadata\":{\"annotations\":{\"storageclass.kubernetes.io/is-default-class\":\"true\"}}}'") in c
    assert "kubectl delete statefulset af2-worker --cascade=orphan --namespace data-pipelines" in c
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set workers.persistence.storageClassName=standard-rwo") in c


def test_pvc_storageclass_missing_named_class_absent(doc):
    d = doc("pvc-pending-wffc")
    f = only(d, "pvc-storageclass-missing")
    assert f["resource"]["name"] == "reports-cache"
    t = text(f)
    assert "spec.storageClassName nfs-client" in t
    assert 'storageclass.storage.k8s.io "nfs-client" not found' in t
    assert "kubectl delete pvc reports-cache --namespace airflow" in cmds(f)
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--update-addons=GcpFilestoreCsiDriver=ENABLED") in cmds(f)   # RWX asked, no Filestore class
    assert "scratch-data" not in {x["resource"]["name"] for x in findings_of(d, "pvc-storageclass-missing")}


@pytest.mark.parametrize("name", HEALTHY + ("seed-incident",))
def test_pvc_storageclass_missing_silent(doc, name):
    assert status_of(doc(name), "pvc-storageclass-missing") == "pass"


# --- dags-pvc-multi-attach -----------------------------------------------------------------------

def test_dags_pvc_multi_attach(doc):
    f = only(doc("dags-pvc-rwo-multi-attach"), "dags-pvc-multi-attach")
    assert f["resource"]["kind"] == "PersistentVolumeClaim"
    assert f["resource"]["name"] == "airflow-dags" and f["resource"]["namespace"] == "airflow"
    t = text(f)
    assert "spec.accessModes ['ReadWriteOnce']" in t and "pd.csi.storage.gke.io" in t
    assert "Multi-Attach error for volume" in t
    assert t.count("node gke-airflow-prod-airflow-pool-") == 3
    c = cmds(f)
    assert "# Option A" in c and "# Option B" in c
    assert "--set dags.persistence.enabled=false --set dags.gitSync.enabled=true" in c
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set dags.persistence.accessMode=ReadWriteMany --set dags.persistence.storageClassName=standard-rwx") in c
    assert "gcloud services enable file.googleapis.com --project acme-data-prod" in c


@pytest.mark.parametrize("name", HEALTHY + ("storage-no-default-class",))
def test_dags_pvc_multi_attach_silent(doc, name):
    assert status_of(doc(name), "dags-pvc-multi-attach") == "pass"


# --- pv-zone-affinity-conflict -----------------------------------------------------------------

def test_pv_zone_affinity_conflict(doc):
    f = only(doc("pv-zone-node-pool-moved"), "pv-zone-affinity-conflict")
    assert f["resource"] == {"kind": "PersistentVolumeClaim", "namespace": "data-pipelines",
                             "name": "logs-af2-worker-1", "uri": None}
    t = text(f)
    assert "pinned by spec.nodeAffinity to zone europe-west1-d" in t
    assert "nodes by zone: europe-west1-b:" in t and "europe-west1-d:" not in t.split("nodes by zone:")[1].split("\n")[0]
    assert "volume node affinity conflict" in t and "NotTriggerScaleUp" in t
    c = cmds(f)
    assert ("gcloud container node-pools update default-pool --cluster airflow-prod --location europe-west1 "
            "--project acme-data-prod --node-locations=europe-west1-b,europe-west1-c,europe-west1-d") in c
    assert "--source-disk-zone=europe-west1-d --project acme-data-prod" in c


def test_pv_zone_affinity_conflict_needs_persistent_volumes(doc, run_cli, tmp_path):
    import shutil

    snap = tmp_path / "snap"
    shutil.copytree(scenario("pv-zone-node-pool-moved"), snap)
    (snap / "k8s/api/v1/persistentvolumes.json").unlink()   # an older snapshot without the path
    _code, d = doctor_json(run_cli, snap)
    c = next(c for c in d["checks"] if c["id"] == "pv-zone-affinity-conflict")
    assert c["status"] == "skip" and "persistentvolumes" in c["reason"]
    assert status_of(doc("healthy-af2-celery"), "pv-zone-affinity-conflict") == "pass"
    assert status_of(doc("storage-no-default-class"), "pv-zone-affinity-conflict") == "pass"


# --- ephemeral-storage-eviction ---------------------------------------------------------------------

def test_ephemeral_storage_eviction(doc):
    d = doc("ephemeral-storage-evictions")
    fs = {f["resource"]["kind"]: f for f in findings_of(d, "ephemeral-storage-eviction")}
    task = fs["Pod"]
    assert task["severity"] == "error"
    assert task["resource"]["name"].startswith("ml-feature-refresh-build-features-")
    t = text(task)
    assert "2 KubernetesExecutor task pods evicted for ephemeral storage" in t
    assert "The node was low on resource: ephemeral-storage" in t
    assert "Container base was using 39714348Ki, which exceeds its request of 0." in t
    assert "requests.ephemeral-storage (none)" in t
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set workers.resources.requests.ephemeral-storage=2Gi "
            "--set workers.resources.limits.ephemeral-storage=8Gi") in cmds(task)
    sched = fs["Deployment"]
    assert sched["severity"] == "warning"     # three days old
    assert sched["resource"]["name"] == "airflow-scheduler"
    assert "--set scheduler.logGroomerSidecar.retentionDays=3" in cmds(sched)


@pytest.mark.parametrize("name", HEALTHY + ("dags-pvc-rwo-multi-attach",))
def test_ephemeral_storage_eviction_silent(doc, name):
    assert status_of(doc(name), "ephemeral-storage-eviction") == "pass"


# --- gitsync-auth-failed ------------------------------------------------------------------------

def test_gitsync_auth_failed(doc):
    d = doc("gitsync-deploy-key-revoked")
    fs = {(f["resource"]["kind"], f["resource"]["name"]): f for f in findings_of(d, "gitsync-auth-failed")}
    assert set(fs) == {("Deployment", "airflow-dag-processor"), ("StatefulSet", "airflow-triggerer")}
    f = fs[("Deployment", "airflow-dag-processor")]
    t = text(f)
    assert "CrashLoopBackOff" in t and "Permission denied (publickey)" in t
    assert "repo git@github.com:acme-data/airflow-dags.git" in t
    assert "key volume git-sync-ssh-key from Secret airflow-ssh-secret" in t
    c = cmds(f)
    assert ("kubectl create secret generic airflow-ssh-secret --namespace airflow "
            "--from-file=gitSshKey=$HOME/.ssh/airflow_deploy_key") in c
    assert "kubectl rollout restart deployment airflow-dag-processor --namespace airflow" in c
    # the task pod failing on the same repository points at these findings
    stuck = only(d, "executor-pod-stuck-init")
    assert set(stuck["caused_by"]) == {x["id"] for x in fs.values()}


@pytest.mark.parametrize("name", HEALTHY + ("task-pod-init-stuck", "gitsync-v3-secret-keys"))
def test_gitsync_auth_failed_silent(doc, name):
    # task-pod-init-stuck: only task pods fail (executor-pod-stuck-init's), the components clone fine
    assert status_of(doc(name), "gitsync-auth-failed") == "pass"


# --- gitsync-credentials-mismatch ----------------------------------------------------------------

def test_gitsync_credentials_mismatch(doc):
    f = only(doc("gitsync-v3-secret-keys"), "gitsync-credentials-mismatch")
    assert f["resource"] == {"kind": "Secret", "namespace": "data-pipelines", "name": "git-credentials", "uri": None}
    t = text(f)
    assert "couldn't find key GITSYNC_USERNAME in Secret data-pipelines/git-credentials" in t
    assert "image registry.k8s.io/git-sync/git-sync:v4.4.2" in t
    assert "af2-triggerer-0" in t and "af2-worker-1" in t
    c = cmds(f)
    assert ("kubectl create secret generic git-credentials --namespace data-pipelines "
            "--from-literal=GIT_SYNC_USERNAME=<user> --from-literal=GIT_SYNC_PASSWORD=<token> "
            "--from-literal=GITSYNC_USERNAME=<user> --from-literal=GITSYNC_PASSWORD=<token>") in c
    assert "kubectl rollout restart statefulset af2-worker --namespace data-pipelines" in c


@pytest.mark.parametrize("name", HEALTHY + ("gitsync-deploy-key-revoked",))
def test_gitsync_credentials_mismatch_silent(doc, name):
    assert status_of(doc(name), "gitsync-credentials-mismatch") == "pass"


# --- dags-not-delivered -----------------------------------------------------------------------------

def test_dags_not_delivered(doc):
    f = only(doc("dags-not-in-task-pods"), "dags-not-delivered")
    assert f["resource"] == {"kind": "ConfigMap", "namespace": "airflow", "name": "airflow-config", "uri": None}
    t = text(f)
    assert "[core] dags_folder = /opt/airflow/dags" in t
    assert "image apache/airflow:3.1.7: a stock apache/airflow image" in t
    assert "Dag not found during start up" in t
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set dags.gitSync.enabled=true") in cmds(f)


@pytest.mark.parametrize("name", HEALTHY + ("dags-pvc-rwo-multi-attach",))
def test_dags_not_delivered_silent(doc, name):
    # dags-pvc-rwo-multi-attach: no git-sync and a stock image, but a DAG volume at the DAGs folder
    assert status_of(doc(name), "dags-not-delivered") == "pass"


# --- migrations-not-run ---------------------------------------------------------------------------

def test_migrations_not_run_hook_never_ran(doc):
    f = only(doc("migrations-hook-never-ran"), "migrations-not-run")
    assert f["resource"] == {"kind": "Job", "namespace": "airflow", "name": "airflow-run-airflow-migrations",
                             "uri": None}
    t = text(f)
    assert "Job airflow-run-airflow-migrations: absent" in t
    assert "TimeoutError: There are still unapplied migrations after 60 seconds" in t
    assert "--migration-wait-timeout=60" in t and "Argo CD" in t
    c = cmds(f)
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set migrateDatabaseJob.useHelmHooks=false") in c
    assert "argocd\\.argoproj\\.io/hook=Sync" in c
    assert f["caused_by"] == []


def test_migrations_not_run_links_to_the_database_cause(doc):
    d = doc("bundled-postgres-image-gone")
    f = only(d, "migrations-not-run")
    ids = {x["id"] for x in findings_of(d, "metadata-db-unreachable") + findings_of(d, "postgres-image-unavailable")}
    assert set(f["caused_by"]) == ids and len(ids) == 2


@pytest.mark.parametrize("name", HEALTHY + ("seed-incident", "image-pull-403-ar"))
def test_migrations_not_run_silent(doc, name):
    # healthy-af2-celery: the Job is Complete; seed-incident: the hook Job was deleted but nothing waits;
    # image-pull-403-ar: the wait container never started (its image cannot be pulled)
    assert status_of(doc(name), "migrations-not-run") == "pass"


# --- metadata-db-unreachable -----------------------------------------------------------------------

def test_metadata_db_unreachable_password(doc, run_cli):
    d = doc("metadata-db-password-rotated")
    f = only(d, "metadata-db-unreachable")
    assert f["resource"] == {"kind": "Secret", "namespace": "data-pipelines", "name": "af2-cloudsql-connection",
                             "uri": None}
    t = text(f)
    assert "10.61.0.3:5432" in f["title"]
    assert 'password authentication failed for user "airflow"' in t
    assert "af2-scheduler-" in t and "af2-webserver-" in t
    c = cmds(f)
    assert "gcloud sql users set-password airflow --instance <cloud-sql-instance> --prompt-for-password --project acme-data-prod" in c
    assert "kubectl create secret generic af2-cloudsql-connection --namespace data-pipelines" in c
    assert "kubectl rollout restart deployment af2-scheduler --namespace data-pipelines" in c


def test_metadata_db_unreachable_never_prints_the_password(run_cli):
    import fixtures.build  # noqa: F401  (loads the scenario modules in order)
    from fixtures.scenarios_storage import PLANTED_PASSWORD

    snap = scenario("metadata-db-password-rotated")
    logs = list(snap.glob("k8s/api/v1/namespaces/data-pipelines/pods/af2-scheduler-*/log/scheduler.log"))
    assert logs and PLANTED_PASSWORD in logs[0].read_text()   # the planted secret is in the snapshot
    for fmt in ("json", "table"):
        r = run_cli("doctor", "--snapshot", str(snap), "--output", fmt)
        assert r.code == 1
        assert PLANTED_PASSWORD not in r.out and PLANTED_PASSWORD not in r.err


def test_metadata_db_unreachable_connection_refused_links_to_postgres(doc):
    d = doc("bundled-postgres-image-gone")
    f = only(d, "metadata-db-unreachable")
    assert f["resource"]["name"] == "airflow-metadata"
    assert "airflow-postgresql.airflow:5432" in f["title"]
    assert "Connection refused" in text(f)
    assert f["caused_by"] == [only(d, "postgres-image-unavailable")["id"]]


@pytest.mark.parametrize("name", HEALTHY + ("migrations-hook-never-ran",))
def test_metadata_db_unreachable_silent(doc, name):
    assert status_of(doc(name), "metadata-db-unreachable") == "pass"


# --- bundled-postgres-in-production, postgres-image-unavailable -------------------------------------

def test_bundled_postgres_in_production(doc):
    f = only(doc("bundled-postgres-image-gone"), "bundled-postgres-in-production")
    assert f["severity"] == "warning"
    assert f["resource"] == {"kind": "StatefulSet", "namespace": "airflow", "name": "airflow-postgresql", "uri": None}
    t = text(f)
    assert "helm.sh/chart=postgresql-13.2.24" in t and "Secret airflow-metadata" in t
    c = cmds(f)
    assert ("gcloud sql instances create airflow-metadata --database-version=POSTGRES_16 --region=europe-west1 "
            "--tier=db-custom-2-7680 --network=default --no-assign-ip --availability-type=REGIONAL "
            "--project acme-data-dev") in c
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set postgresql.enabled=false --set data.metadataSecretName=airflow-metadata-cloudsql") in c


def test_postgres_image_unavailable(doc):
    f = only(doc("bundled-postgres-image-gone"), "postgres-image-unavailable")
    assert f["resource"] == {"kind": "Pod", "namespace": "airflow", "name": "airflow-postgresql-0", "uri": None}
    t = text(f)
    assert "ImagePullBackOff" in t and "docker.io/bitnami/postgresql:16.1.0-debian-11-r15" in t
    assert "failed to resolve reference" in t and "bitnamilegacy" in t
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set postgresql.image.registry=docker.io --set postgresql.image.repository=bitnamilegacy/postgresql "
            "--set-string postgresql.image.tag=16.1.0-debian-11-r15") in cmds(f)


@pytest.mark.parametrize("name", HEALTHY + ("image-pull-403-ar",))
def test_bundled_postgres_checks_silent(doc, name):
    d = doc(name)
    assert status_of(d, "bundled-postgres-in-production") == "pass"
    assert status_of(d, "postgres-image-unavailable") == "pass"


# --- pgbouncer-auth-mismatch ---------------------------------------------------------------------------

def test_pgbouncer_auth_mismatch(doc):
    d = doc("pgbouncer-md5-vs-scram")
    f = only(d, "pgbouncer-auth-mismatch")
    assert f["resource"] == {"kind": "Deployment", "namespace": "data-pipelines", "name": "af2-pgbouncer", "uri": None}
    t = text(f)
    assert "server login failed: wrong password type" in t
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set pgbouncer.auth_type=scram-sha-256") in cmds(f)
    assert "kubectl rollout restart deployment af2-pgbouncer --namespace data-pipelines" in cmds(f)
    db = only(d, "metadata-db-unreachable")
    assert db["caused_by"] == [f["id"]]
    assert "af2-pgbouncer.data-pipelines:6543" in db["title"]


@pytest.mark.parametrize("name", HEALTHY + ("metadata-db-password-rotated",))
def test_pgbouncer_auth_mismatch_silent(doc, name):
    # healthy-af2-celery runs a healthy PgBouncer; the password scenario connects directly
    assert status_of(doc(name), "pgbouncer-auth-mismatch") == "pass"
