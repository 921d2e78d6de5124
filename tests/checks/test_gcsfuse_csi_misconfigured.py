"""gcsfuse-csi-misconfigured: Cloud Storage FUSE volumes without the add-on, the sidecar annotation or bucket access."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit

CHECK = "gcsfuse-csi-misconfigured"
DENIED = "gcsfuse-dags-permission-denied"
CLUSTER = "gcp/container/v1/projects/acme-data-prod/locations/europe-west1/clusters/airflow-prod.json"
PODS = "k8s/api/v1/namespaces/airflow/pods.json"
GSA = "airflow@acme-data-prod.iam.gserviceaccount.com"


def test_a_denied_mount_is_one_error_on_the_bucket_with_the_read_only_grant_for_the_gsa(run_cli):
    code, doc = doctor_json(run_cli, DENIED)
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("Bucket", "acme-airflow-dags")
    ev = "\n".join(f["evidence"])
    assert "code = PermissionDenied desc = failed to get GCS bucket \"acme-airflow-dags\"" in ev
    assert "3 pod(s) cannot mount volume dags-fuse (bucket acme-airflow-dags)" in ev
    assert f"-> GSA {GSA} (iam.gke.io/gcp-service-account)" in ev
    assert f["remediation"]["commands"] == [
        f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-dags --member=serviceAccount:{GSA} "
        "--role=roles/storage.objectViewer"]
    # the floor's three component findings are this failure: folded under it
    assert findings_of(doc, "component-not-ready") == []
    assert len(f["symptoms"]) == 3


def test_a_mount_that_works_is_not_reported(run_cli):
    code, doc = doctor_json(run_cli, "gcsfuse-dags-healthy")
    assert status_of(doc, CHECK) == "pass"
    assert doc["findings"] == [] and code == 0


def test_the_add_on_off_is_the_cause_before_anything_else(run_cli, tmp_path):
    root = _copy(tmp_path, DENIED)
    _edit(root, CLUSTER, lambda c: c["addonsConfig"].pop("gcsFuseCsiDriverConfig"))
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("Cluster", "airflow-prod")
    assert f["remediation"]["commands"] == [
        "gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
        "--update-addons GcsFuseCsiDriver=ENABLED"]


def test_pods_without_the_sidecar_annotation_get_the_values_change(run_cli, tmp_path):
    root = _copy(tmp_path, DENIED)

    def drop(body: dict) -> None:
        for p in body["items"]:
            p["metadata"].get("annotations", {}).pop("gke-gcsfuse/volumes", None)
    _edit(root, PODS, drop)
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)   # one cause, one fix: the three workloads merge into one finding
    assert {(r["kind"], r["name"]) for r in f["resources"]} == {
        ("Deployment", "airflow-scheduler"), ("Deployment", "airflow-dag-processor"), ("StatefulSet", "airflow-triggerer")}
    cmd = f["remediation"]["commands"][0]
    assert cmd.endswith("--reuse-values --set-string airflowPodAnnotations.gke-gcsfuse/volumes=true")
    assert "annotation gke-gcsfuse/volumes is absent" in str(f)


def test_not_applicable_without_fuse_volumes(run_cli):
    _code, doc = doctor_json(run_cli, "seed-incident")
    assert status_of(doc, CHECK) == "skip"
