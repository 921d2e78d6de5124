"""The five seed checks on their positive and negative scenarios: this finding, on this resource,
with this evidence and this command."""
from __future__ import annotations

import json

from conftest import doctor_json, findings_of, scenario, status_of


def _blocked_pods(name: str, claim: str) -> set[str]:
    pods = json.loads((scenario(name) / "k8s/api/v1/namespaces/airflow/pods.json").read_text())["items"]
    return {p["metadata"]["name"] for p in pods if p["status"]["phase"] != "Running"
            and any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim for v in p["spec"].get("volumes", []))}


def _all_commands(f: dict) -> str:
    return "\n".join(f["remediation"]["commands"])


def test_seed_incident_is_the_story_of_the_issue(run_cli):
    code, doc = doctor_json(run_cli, "seed-incident")
    assert code == 1
    assert {f["check"] for f in doc["findings"]} >= {"pvc-access-mode-unsupported", "node-storage-scope-read-only",
                                                      "gcs-log-write-denied"}
    assert findings_of(doc, "executor-pod-stuck-init") == [] and status_of(doc, "executor-pod-stuck-init") == "pass"
    assert doc["run"]["release"] == "airflow" and doc["run"]["airflow_version"] == "3.1.3"
    assert doc["run"]["chart_version"] == "1.22.0" and doc["run"]["mode"] == "snapshot"


def test_pvc_access_mode_names_pvc_class_events_and_blocked_pods(run_cli):
    _, doc = doctor_json(run_cli, "seed-incident")
    [f] = findings_of(doc, "pvc-access-mode-unsupported")
    assert f["resource"] == {"kind": "PersistentVolumeClaim", "namespace": "airflow", "name": "airflow-logs", "uri": None}
    assert f["id"] == "pvc-access-mode-unsupported:PersistentVolumeClaim/airflow/airflow-logs"
    ev = "\n".join(f["evidence"])
    assert "StorageClass standard: provisioner kubernetes.io/gce-pd" in ev
    assert "invalid AccessModes [ReadWriteMany]: only AccessModes [ReadWriteOnce ReadOnlyMany] are supported" in ev
    blocked = _blocked_pods("seed-incident", "airflow-logs")
    assert len(blocked) == 4
    for pod in blocked:
        assert f"Pod {pod}" in ev and pod in f["message"]
    cmds = _all_commands(f)
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set logs.persistence.enabled=false") in cmds
    assert "kubectl delete pvc airflow-logs --namespace airflow" in cmds
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--update-addons=GcpFilestoreCsiDriver=ENABLED") in cmds


def test_pvc_access_mode_on_pd_csi_with_the_csi_wording(run_cli):
    _, doc = doctor_json(run_cli, "logs-pvc-rwx-pd-csi")
    [f] = findings_of(doc, "pvc-access-mode-unsupported")
    assert (f["resource"]["namespace"], f["resource"]["name"]) == ("data-pipelines", "af2-logs")
    assert "standard-rwo" in f["title"] and "pd.csi.storage.gke.io" in f["title"]
    assert any("specified multi writer with mount access type" in e for e in f["evidence"])
    assert "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines" in _all_commands(f)


def test_pvc_pending_for_other_reasons_or_rwx_on_filestore_is_not_this_check(run_cli):
    for name in ("logs-pvc-filestore", "pvc-pending-wffc", "healthy-af3-k8s-wi"):
        _, doc = doctor_json(run_cli, name)
        assert findings_of(doc, "pvc-access-mode-unsupported") == [], name
        assert status_of(doc, "pvc-access-mode-unsupported") == "pass", name


def test_node_scope_read_only_on_the_pool_with_workload_identity_commands(run_cli):
    _, doc = doctor_json(run_cli, "seed-incident")
    [f] = findings_of(doc, "node-storage-scope-read-only")
    assert f["resource"]["kind"] == "NodePool" and f["resource"]["name"] == "default-pool"
    assert f["resource"]["uri"] == ("//container.googleapis.com/projects/acme-data-prod/locations/europe-west1"
                                    "/clusters/airflow-prod/nodePools/default-pool")
    ev = "\n".join(f["evidence"])
    assert "https://www.googleapis.com/auth/devstorage.read_only" in ev and "481516234200-compute@developer" in ev
    assert "gs://acme-airflow-logs/prod" in ev and "no Workload Identity pool" in ev
    cmds = _all_commands(f)
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--workload-pool=acme-data-prod.svc.id.goog") in cmds
    assert "serviceAccount:acme-data-prod.svc.id.goog[airflow/airflow-worker]" in cmds
    assert "--scopes=cloud-platform" in cmds
    assert "roles/editor" not in cmds


def test_node_scope_resolves_remote_logging_from_env_and_ignores_workload_identity(run_cli):
    _, doc = doctor_json(run_cli, "remote-logging-readonly-scope")
    [f] = findings_of(doc, "node-storage-scope-read-only")
    assert any("env AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER" in e and "gs://acme-af2-logs/logs" in e
               for e in f["evidence"])
    _, doc = doctor_json(run_cli, "remote-logging-wi-readonly-scope")
    assert status_of(doc, "node-storage-scope-read-only") == "pass"


def test_gcs_write_denied_links_to_the_scope_and_quotes_the_403(run_cli):
    _, doc = doctor_json(run_cli, "seed-incident")
    [f] = findings_of(doc, "gcs-log-write-denied")
    assert f["resource"] == {"kind": "Bucket", "namespace": None, "name": "acme-airflow-logs",
                             "uri": "//storage.googleapis.com/projects/_/buckets/acme-airflow-logs"}
    assert f["caused_by"] == ["node-storage-scope-read-only:NodePool/default-pool"]
    ev = "\n".join(f["evidence"])
    assert "481516234200-compute@developer.gserviceaccount.com" in ev
    assert "403 POST https://storage.googleapis.com/upload/storage/v1/b/acme-airflow-logs" in ev
    assert "gs://acme-airflow-logs" in _all_commands(f)


def test_gcs_write_denied_names_the_gsa_and_the_missing_grant(run_cli):
    _, doc = doctor_json(run_cli, "gcs-wi-missing-grant")
    [f] = findings_of(doc, "gcs-log-write-denied")
    assert f["severity"] == "error" and f["caused_by"] == []
    ev = "\n".join(f["evidence"])
    assert "airflow@acme-data-prod.iam.gserviceaccount.com" in ev and "no role with storage.objects.create" in ev
    assert ("gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member "
            "serviceAccount:airflow@acme-data-prod.iam.gserviceaccount.com --role roles/storage.objectUser") in _all_commands(f)


def test_gcs_write_unproven_when_iam_unreadable_is_a_warning(run_cli):
    # Only this check: others that need the unreadable project policy end `error` (exit 3), as they should.
    code, doc = doctor_json(run_cli, "gcs-iam-unreadable", "--check", "gcs-log-write-denied")
    [f] = findings_of(doc, "gcs-log-write-denied")
    assert f["severity"] == "warning" and "unproven" in f["message"]
    assert any("storage.buckets.getIamPolicy" in e for e in f["evidence"])
    assert code == 0
    code, _ = doctor_json(run_cli, "gcs-iam-unreadable", "--fail-on", "warning")
    assert code == 1


def test_container_api_disabled_in_a_project_preflight(run_cli):
    code, doc = doctor_json(run_cli, "api-disabled-preflight")
    assert code == 1
    [f] = findings_of(doc, "container-api-disabled")
    assert f["resource"]["kind"] == "Project" and f["resource"]["name"] == "acme-data-dev"
    assert any("state DISABLED" in e for e in f["evidence"])
    assert "gcloud services enable container.googleapis.com compute.googleapis.com --project acme-data-dev" in f["remediation"]["commands"]
    for c in doc["checks"]:
        if c["id"] in ("pvc-access-mode-unsupported", "executor-pod-stuck-init"):
            assert c["status"] == "skip" and c["reason"]


def test_container_api_disabled_from_the_service_disabled_error(run_cli):
    _, doc = doctor_json(run_cli, "api-disabled-cluster-403")
    [f] = findings_of(doc, "container-api-disabled")
    ev = "\n".join(f["evidence"])
    assert "403 SERVICE_DISABLED" in ev
    assert "activation URL: https://console.developers.google.com/apis/api/container.googleapis.com/overview" in ev
    _, doc = doctor_json(run_cli, "preflight-apis-enabled")
    assert status_of(doc, "container-api-disabled") == "pass"


def test_task_pods_stuck_in_init_with_their_causes_and_young_pods_spared(run_cli):
    _, doc = doctor_json(run_cli, "task-pod-init-stuck")
    by_pod = {f["resource"]["name"]: f for f in findings_of(doc, "executor-pod-stuck-init")}
    assert len(by_pod) == 3
    auth = by_pod["etl-orders-daily-extract-orders-8ybn6h0o"]
    assert "Init:0/1" in auth["title"] and "running for 25m" in auth["evidence"][0]
    assert any("Permission denied (publickey)" in e for e in auth["evidence"])
    assert "likely cause: git SSH authentication failed" in "\n".join(auth["evidence"])
    assert ("kubectl logs etl-orders-daily-extract-orders-8ybn6h0o --namespace airflow --container git-sync-init"
            in auth["remediation"]["commands"])
    hostkey = by_pod["partner-sync-pull-partner-files-biw9joc7"]
    assert "Init:CrashLoopBackOff" in hostkey["title"]
    assert "ssh-keyscan gitlab.acme-data.example > known_hosts" in hostkey["remediation"]["commands"]
    pull = by_pod["ml-feature-refresh-compute-features-s4buobsb"]
    assert "Init:ImagePullBackOff" in pull["title"] and any("git-sync:v4.9.9" in e for e in pull["evidence"])
    _, doc = doctor_json(run_cli, "task-pod-init-young")
    assert status_of(doc, "executor-pod-stuck-init") == "pass"
