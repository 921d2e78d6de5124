"""The project, identity and logging checks on their fixture scenarios (fixtures/scenarios_identity.py
and the seed scenarios): each finding's resource, key evidence and filled-in commands, and the
scenarios where each check must stay silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, findings_of, status_of

P = "acme-data-prod"
GSA = f"airflow@{P}.iam.gserviceaccount.com"
NODE_SA = f"gke-nodes@{P}.iam.gserviceaccount.com"
COMPUTE_SA = "481516234200-compute@developer.gserviceaccount.com"

_DOCS: dict[tuple, tuple[int, dict]] = {}


@pytest.fixture
def doc(run_cli):
    def get(name: str, *flags: str) -> dict:
        key = (name, flags)
        if key not in _DOCS:
            _DOCS[key] = doctor_json(run_cli, name, *flags)
        return _DOCS[key][1]
    return get


def one(d: dict, check: str) -> dict:
    fs = findings_of(d, check)
    assert len(fs) == 1, [f["resource"] for f in fs]
    return fs[0]


def has(lines: list[str], *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in lines)


# --- required-api-disabled -------------------------------------------------------------------------
def test_required_api_disabled_names_each_api_and_why_it_is_needed(doc):
    d = doc("api-disabled-wi")
    f = one(d, "required-api-disabled")
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "Project", "namespace": None, "name": P,
                             "uri": f"//cloudresourcemanager.googleapis.com/projects/{P}"}
    ev = f["evidence"]
    assert has(ev, "storage.googleapis.com has state DISABLED")
    assert has(ev, "iamcredentials.googleapis.com has state DISABLED")
    assert has(ev, "storage.googleapis.com is needed", "gs://acme-airflow-logs/prod")
    assert has(ev, "iamcredentials.googleapis.com is needed", "iam.gke.io/gcp-service-account", GSA)
    assert has(ev, "log ", "apis/api/storage.googleapis.com/overview?project=481516234200")
    assert not has(ev, "secretmanager.googleapis.com has state")     # enabled, so not reported
    cmds = f["remediation"]["commands"]
    assert f"gcloud services enable iamcredentials.googleapis.com storage.googleapis.com --project {P}" in cmds
    # the write failure it explains links to it
    w = one(d, "gcs-log-write-denied")
    assert w["caused_by"] == [f["id"]]


def test_required_api_disabled_passes_when_every_needed_api_is_enabled(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "image-pull-403-ar"):
        assert status_of(doc(name), "required-api-disabled") == "pass", name


def test_required_api_disabled_judges_the_service_states_a_preflight_read(doc):
    # project preflight: no cluster data, but the states of storage, iam, iamcredentials and
    # secretmanager were read (ENABLED): judged, not skipped
    assert status_of(doc("api-disabled-preflight"), "required-api-disabled") == "pass"
    assert status_of(doc("preflight-apis-enabled"), "required-api-disabled") == "pass"


# --- workload-identity-not-enabled -----------------------------------------------------------------
def test_wi_not_enabled_on_the_cluster(doc):
    d = doc("wi-not-enabled-cluster")
    f = one(d, "workload-identity-not-enabled")
    assert f["resource"]["kind"] == "Cluster" and f["resource"]["name"] == "airflow-stg"
    assert f["resource"]["uri"] == f"//container.googleapis.com/projects/{P}/locations/europe-west1/clusters/airflow-stg"
    assert has(f["evidence"], "no workloadIdentityConfig.workloadPool")
    assert has(f["evidence"], "KSA airflow/airflow-worker (task pods)", GSA)
    cmds = f["remediation"]["commands"]
    assert (f"gcloud container clusters update airflow-stg --location europe-west1 --project {P} "
            f"--workload-pool={P}.svc.id.goog") in cmds
    assert (f"gcloud container node-pools update default-pool --cluster airflow-stg --location europe-west1 "
            f"--project {P} --workload-metadata=GKE_METADATA") in cmds
    for check in ("gcs-log-write-denied", "remote-log-read-denied"):
        assert one(d, check)["caused_by"] == [f["id"]], check


def test_wi_not_enabled_on_one_node_pool(doc):
    d = doc("wi-pool-gce-metadata")
    f = one(d, "workload-identity-not-enabled")
    assert f["resource"]["kind"] == "NodePool" and f["resource"]["name"] == "highmem-pool"
    assert has(f["evidence"], "node pool highmem-pool: no config.workloadMetadataConfig")
    assert has(f["evidence"], "KSA airflow/airflow-triggerer", "airflow-triggerer-0")
    assert not has(f["evidence"], "airflow-scheduler-")      # the scheduler runs on the GKE_METADATA pool
    assert ("gcloud container node-pools update highmem-pool --cluster airflow-prod --location europe-west1 "
            f"--project {P} --workload-metadata=GKE_METADATA") in f["remediation"]["commands"]
    assert one(d, "gcs-log-write-denied")["caused_by"] == [f["id"]]


def test_wi_not_enabled_passes_with_wi_and_skips_without_annotations(doc):
    for name in ("healthy-af3-k8s-wi", "remote-logging-wi-readonly-scope"):
        assert status_of(doc(name), "workload-identity-not-enabled") == "pass", name
    for name in ("seed-incident", "healthy-minimal"):   # no KSA names a GSA: not applicable
        assert status_of(doc(name), "workload-identity-not-enabled") == "skip", name


# --- wi-binding-missing ----------------------------------------------------------------------------
def test_wi_binding_missing_for_the_worker_ksa(doc):
    d = doc("wi-binding-gaps")
    [f] = [f for f in findings_of(d, "wi-binding-missing") if f["resource"]["name"] == GSA]
    assert f["resource"]["kind"] == "ServiceAccount"
    assert f["resource"]["uri"] == f"//iam.googleapis.com/projects/{P}/serviceAccounts/{GSA}"
    ev = f["evidence"]
    assert has(ev, f"no binding for serviceAccount:{P}.svc.id.goog[airflow/airflow-worker]")
    assert has(ev, f"serviceAccount:{P}.svc.id.goog[default/airflow-worker]")     # the namespace slip, shown
    assert has(ev, "log ", "iam.serviceAccounts.getAccessToken")
    assert (f"gcloud iam service-accounts add-iam-policy-binding {GSA} --project {P} --role "
            f"roles/iam.workloadIdentityUser --member 'serviceAccount:{P}.svc.id.goog[airflow/airflow-worker]'"
            ) in f["remediation"]["commands"]
    assert "airflow-api-server" not in f["title"] and "airflow-scheduler" not in f["title"]


def test_wi_binding_missing_gsa_that_does_not_exist(doc):
    d = doc("wi-binding-gaps")
    ui = f"airflow-ui@{P}.iam.gserviceaccount.com"
    [f] = [f for f in findings_of(d, "wi-binding-missing") if f["resource"]["name"] == ui]
    assert "does not exist" in f["title"]
    assert has(f["evidence"], "HTTP 404")
    cmds = f["remediation"]["commands"]
    assert f"gcloud iam service-accounts create airflow-ui --project {P} --display-name 'Airflow on GKE'" in cmds
    assert any("apiServer.serviceAccount.annotations" in c and GSA in c for c in cmds)
    r = one(d, "remote-log-read-denied")
    assert f["id"] in r["caused_by"]
    assert any(f"--member serviceAccount:{ui} --role roles/storage.objectViewer" in c for c in r["remediation"]["commands"])


def test_wi_binding_missing_passes_when_every_ksa_is_bound(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "wi-not-enabled-cluster"):
        assert status_of(doc(name), "wi-binding-missing") == "pass", name


# --- overprivileged-identity -----------------------------------------------------------------------
def test_overprivileged_airflow_gsa(doc):
    d = doc("airflow-gsa-editor")
    f = one(d, "overprivileged-identity")
    assert f["severity"] == "warning"
    assert f["resource"]["kind"] == "ServiceAccount" and f["resource"]["name"] == GSA
    assert has(f["evidence"], "roles/editor is granted to", GSA)
    cmds = f["remediation"]["commands"]
    assert (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member serviceAccount:{GSA} "
            "--role roles/storage.objectUser") in cmds
    assert f"gcloud projects remove-iam-policy-binding {P} --member serviceAccount:{GSA} --role roles/editor" in cmds
    assert not any("roles/editor" in c and "add-iam-policy-binding" in c for c in cmds)


def test_overprivileged_node_sa_in_the_seed_incident(doc):
    f = one(doc("seed-incident"), "overprivileged-identity")
    assert f["resource"]["name"] == COMPUTE_SA
    assert has(f["evidence"], "node pool(s) default-pool", "run Airflow pods")
    cmds = f["remediation"]["commands"]
    assert (f"gcloud projects add-iam-policy-binding {P} --member serviceAccount:{COMPUTE_SA} "
            "--role roles/container.defaultNodeServiceAccount") in cmds
    assert f"gcloud projects remove-iam-policy-binding {P} --member serviceAccount:{COMPUTE_SA} --role roles/editor" in cmds


def test_overprivileged_ignores_editors_that_do_not_run_airflow(doc):
    # airflow-gsa-editor: the compute default SA holds roles/editor but its pool runs no Airflow pod
    assert [f["resource"]["name"] for f in findings_of(doc("airflow-gsa-editor"), "overprivileged-identity")] == [GSA]
    assert status_of(doc("healthy-af3-k8s-wi"), "overprivileged-identity") == "pass"


# --- default-compute-sa-nodes ----------------------------------------------------------------------
def test_default_compute_sa_nodes_in_the_seed_incident(doc):
    f = one(doc("seed-incident"), "default-compute-sa-nodes")
    assert f["severity"] == "warning"
    assert f["resource"]["kind"] == "NodePool" and f["resource"]["name"] == "default-pool"
    assert has(f["evidence"], "config.serviceAccount default", COMPUTE_SA)
    assert has(f["evidence"], "Airflow pods on it", "airflow-scheduler-")
    assert has(f["evidence"], COMPUTE_SA, "roles/editor")
    cmds = f["remediation"]["commands"]
    assert f"gcloud iam service-accounts create gke-nodes --project {P} --display-name 'GKE nodes'" in cmds
    assert any(c.startswith("gcloud container node-pools create default-pool-sa --cluster airflow-prod "
                            f"--location europe-west1 --project {P} --service-account {NODE_SA} "
                            "--machine-type e2-standard-4") for c in cmds)
    assert "kubectl drain -l cloud.google.com/gke-nodepool=default-pool --ignore-daemonsets --delete-emptydir-data" in cmds


def test_default_compute_sa_nodes_quiet_for_pools_without_airflow(doc):
    assert status_of(doc("airflow-gsa-editor"), "default-compute-sa-nodes") == "pass"
    for name in ("healthy-af3-k8s-wi", "healthy-minimal", "healthy-af2-celery"):
        assert status_of(doc(name), "default-compute-sa-nodes") == "pass", name


# --- image-pull-denied -----------------------------------------------------------------------------
def test_image_pull_denied_groups_the_pods_by_repository(doc):
    d = doc("image-pull-403-ar")
    f = one(d, "image-pull-denied")
    repo = f"europe-west1-docker.pkg.dev/{P}/airflow-images"
    assert f["resource"] == {"kind": "Repository", "namespace": None, "name": repo,
                             "uri": f"//artifactregistry.googleapis.com/projects/{P}/locations/europe-west1/"
                                    "repositories/airflow-images"}
    ev = f["evidence"]
    assert sum(1 for e in ev if e.startswith("Pod airflow-") and "ImagePullBackOff" in e) == 4
    assert has(ev, "event Warning Failed", "403 Forbidden")
    assert has(ev, f"its service account {NODE_SA}")
    assert has(ev, NODE_SA, "no role with artifactregistry.repositories.downloadArtifacts")
    assert (f"gcloud artifacts repositories add-iam-policy-binding airflow-images --project {P} --location "
            f"europe-west1 --member serviceAccount:{NODE_SA} --role roles/artifactregistry.reader"
            ) in f["remediation"]["commands"]
    assert "statsd" not in " ".join(ev)        # its image is not found: a different failure


def test_image_pull_denied_quiet_without_pull_errors(doc):
    for name in ("healthy-af3-k8s-wi", "task-pod-init-young"):
        assert status_of(doc(name), "image-pull-denied") == "pass", name


# --- k8s-executor-logs-lost ------------------------------------------------------------------------
def test_k8s_executor_logs_lost(doc):
    f = one(doc("k8s-logs-lost"), "k8s-executor-logs-lost")
    assert f["severity"] == "warning"
    assert f["resource"] == {"kind": "ConfigMap", "namespace": "airflow", "name": "airflow-config", "uri": None}
    ev = f["evidence"]
    assert has(ev, "[core] executor = KubernetesExecutor")
    assert has(ev, "[logging] remote_logging = False")
    assert has(ev, "volume logs mounted at /opt/airflow/logs", "emptyDir")
    assert has(ev, "delete_worker_pods = True")
    cmds = f["remediation"]["commands"]
    assert f"gcloud storage buckets create gs://{P}-airflow-logs --project {P} --location europe-west1 " \
           "--uniform-bucket-level-access" in cmds
    assert (f"gcloud storage buckets add-iam-policy-binding gs://{P}-airflow-logs --member serviceAccount:{GSA} "
            "--role roles/storage.objectUser") in cmds
    assert any(c.startswith("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
                            "--set-string config.logging.remote_logging=True") for c in cmds)


def test_k8s_executor_logs_kept_by_remote_logging_or_a_volume_skip_for_celery(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-minimal"):
        assert status_of(doc(name), "k8s-executor-logs-lost") == "pass", name
    assert status_of(doc("healthy-af2-celery"), "k8s-executor-logs-lost") == "skip"   # CeleryExecutor


# --- remote-log-bucket-missing ---------------------------------------------------------------------
def test_remote_log_bucket_missing(doc):
    d = doc("gcs-bucket-missing")
    f = one(d, "remote-log-bucket-missing")
    assert f["severity"] == "error"
    assert f["resource"]["kind"] == "Bucket" and f["resource"]["name"] == "acme-airflow-logs-old"
    assert has(f["evidence"], "HTTP 404", "The specified bucket does not exist.")
    assert has(f["evidence"], "remote_base_log_folder = gs://acme-airflow-logs-old/prod", "task pods")
    cmds = f["remediation"]["commands"]
    assert (f"gcloud storage buckets create gs://acme-airflow-logs-old --project {P} --location europe-west1 "
            "--uniform-bucket-level-access") in cmds
    assert (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs-old --member serviceAccount:{GSA} "
            "--role roles/storage.objectUser") in cmds
    # the write check leaves the missing bucket to this one
    assert status_of(d, "gcs-log-write-denied") == "skip" and not findings_of(d, "gcs-log-write-denied")


def test_remote_log_bucket_unreadable_is_unproven(doc):
    d = doc("remote-log-bucket-forbidden")
    f = one(d, "remote-log-bucket-missing")
    assert f["severity"] == "warning" and f["resource"]["name"] == "acme-central-logs"
    assert has(f["evidence"], "HTTP 403", "storage.buckets.get")
    assert ("gcloud storage buckets describe gs://acme-central-logs "
            "--format='value(name,projectNumber,location)'") in f["remediation"]["commands"]


def test_remote_log_bucket_present_or_unused(doc):
    assert status_of(doc("healthy-af3-k8s-wi"), "remote-log-bucket-missing") == "pass"
    assert status_of(doc("healthy-minimal"), "remote-log-bucket-missing") == "skip"


# --- remote-log-read-denied ------------------------------------------------------------------------
def test_remote_log_read_denied_with_creator_only(doc):
    d = doc("remote-log-read-creator-only")
    f = one(d, "remote-log-read-denied")
    assert f["severity"] == "error"
    assert f["resource"]["kind"] == "Bucket" and f["resource"]["name"] == "acme-airflow-logs"
    assert has(f["evidence"], "api-server (KSA airflow-api-server", GSA, "no role with storage.objects.get")
    assert (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member serviceAccount:{GSA} "
            "--role roles/storage.objectViewer") in f["remediation"]["commands"]
    assert status_of(d, "gcs-log-write-denied") == "pass"       # objectCreator may write


def test_remote_log_read_denied_when_only_writers_log_remotely(doc):
    d = doc("served-logs-key-split")
    f = one(d, "remote-log-read-denied")
    assert f["resource"]["name"] == "acme-af2-logs"
    assert has(f["evidence"], "gs://acme-af2-logs/logs for worker", "env AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER")
    assert has(f["evidence"], "webserver: [logging] remote_logging = False")
    assert any(c.startswith("helm upgrade af2 apache-airflow/airflow --namespace airflow --reuse-values "
                            "--set-string config.logging.remote_logging=True") for c in f["remediation"]["commands"])


def test_remote_log_read_unproven_when_iam_unreadable(doc):
    f = one(doc("gcs-iam-unreadable"), "remote-log-read-denied")
    assert f["severity"] == "warning" and "unproven" in f["message"]


def test_remote_log_read_allowed(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "remote-logging-readonly-scope"):
        assert status_of(doc(name), "remote-log-read-denied") == "pass", name


# --- served-logs-secret-key-mismatch ---------------------------------------------------------------
def test_served_logs_secret_key_mismatch(doc):
    f = one(doc("served-logs-key-split"), "served-logs-secret-key-mismatch")
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "Deployment", "namespace": "airflow", "name": "af2-webserver", "uri": None}
    ev = f["evidence"]
    assert has(ev, "webserver: [webserver] secret_key", "Secret af2-webserver-secret-key")
    assert has(ev, "triggerer: [webserver] secret_key", "Secret af2-webserver-secret-key")
    assert has(ev, "worker: [webserver] secret_key", "Secret af2-worker-env")
    cmds = f["remediation"]["commands"]
    assert any(c.startswith("kubectl create secret generic af2-webserver-secret --namespace airflow "
                            "--from-literal=webserver-secret-key=") for c in cmds)
    assert ("helm upgrade af2 apache-airflow/airflow --namespace airflow --reuse-values "
            "--set webserverSecretKeySecretName=af2-webserver-secret") in cmds
    assert ("kubectl rollout restart deployment,statefulset --namespace airflow -l release=af2,tier=airflow"
            ) in cmds


def test_served_logs_secret_key_shared(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "healthy-minimal"):
        assert status_of(doc(name), "served-logs-secret-key-mismatch") == "pass", name


def test_served_logs_403_in_the_ui_log_is_evidence_on_its_own(run_cli, tmp_path):
    """Same keys everywhere (healthy-af2-celery), but the webserver's log shows the log server refusing
    its signed request: still a mismatch (a regenerated Secret some pods started before)."""
    import json
    import shutil

    from conftest import scenario

    src = scenario("healthy-af2-celery")
    dst = tmp_path / "snap"
    shutil.copytree(src, dst)
    ns = json.loads((dst / "meta.json").read_text())["namespace"]
    pods = json.loads((dst / "k8s" / "api" / "v1" / "namespaces" / ns / "pods.json").read_text())["items"]
    web = next(p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("component") == "webserver")
    log = dst / "k8s" / "api" / "v1" / "namespaces" / ns / "pods" / web / "log" / "webserver.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    line = ("[2026-11-21T09:12:44.118+0000] {file_task_handler.py:560} ERROR - Could not read served logs: Client "
            "error '403 FORBIDDEN' for url 'http://10.52.0.14:8793/log/dag_id=etl/run_id=r1/task_id=t/attempt=1.log'")
    log.write_text("[2026-11-21T09:12:40.001+0000] {app.py:88} INFO - starting\n" + line + "\n")
    _code, d = doctor_json(run_cli, dst)
    f = one(d, "served-logs-secret-key-mismatch")
    assert f["resource"]["name"] == "af2-webserver"
    assert has(f["evidence"], f"log {web}/webserver:", "403 FORBIDDEN")
    assert "403" in f["message"] and "refused" in f["message"]
