"""gcp-quota-exceeded: a Compute Engine regional quota keeps nodes or disks from being created."""
from __future__ import annotations

import copy

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit, report

CHECK = "gcp-quota-exceeded"
REGION = "gcp/compute/compute/v1/projects/acme-data-prod/regions/europe-west1.json"
EVENTS = "k8s/api/v1/namespaces/airflow/events.json"
PVCS = "k8s/api/v1/namespaces/airflow/persistentvolumeclaims.json"
CLAIM = "logs-airflow-triggerer-0"
SSD_MSG = ('failed to provision volume with StorageClass "standard-rwo": rpc error: code = ResourceExhausted desc = '
           "CreateVolume failed to create single zonal disk \"pvc-4c1f0e2a\": googleapi: Error 403: Quota "
           "'SSD_TOTAL_GB' exceeded.  Limit: 500.0 in region europe-west1., quotaExceeded")


def _quota(root, **metrics: tuple[float, float]) -> None:
    def set_quota(body: dict) -> None:
        for row in body["quotas"]:
            if row["metric"] in metrics:
                row["limit"], row["usage"] = map(float, metrics[row["metric"]])
    _edit(root, REGION, set_quota)


def test_cpus_used_up_is_one_error_on_the_region_with_the_quota_preference(run_cli):
    doc = report(run_cli, "task-pods-cpu-quota")
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "Region", "namespace": None, "name": "europe-west1",
                             "uri": "//compute.googleapis.com/projects/acme-data-prod/regions/europe-west1"}
    assert f["title"] == "Compute Engine quota CPUS exhausted in europe-west1: 2 pods cannot come up"
    ev = "\n".join(f["evidence"])
    assert "region europe-west1 quota CPUS: usage 24 of limit 24 (0 left); one more node takes 8" in ev
    assert "GCE quota exceeded. Pod is at risk of not being scheduled." in f["evidence"][0]
    assert "node pool airflow-pool (e2-standard-8, 100 GB pd-balanced boot disk, external IP)" in ev
    assert "SSD_TOTAL_GB" not in ev   # 200 GB left for a 100 GB boot disk: not short
    cmds = f["remediation"]["commands"]
    assert cmds[0].splitlines()[1] == (
        "gcloud quotas preferences create --service=compute.googleapis.com --project=acme-data-prod "
        "--quota-id=CPUS-per-project-region --preferred-value=40 --dimensions=region=europe-west1 "
        "--email=\"$(gcloud config get-value account)\"")
    assert "https://console.cloud.google.com/iam-admin/quotas?usage=USED&project=acme-data-prod" in cmds[0]
    assert cmds[1].startswith("# Option B: free quota in europe-west1")
    assert not any("disks list" in c for c in cmds)
    assert sorted(f["blocks"]) == ["Pod/airflow/etl-orders-daily-transform-orders-ewb30fcj",
                                   "Pod/airflow/finance-ledger-reconcile-ledger-0clsk6w0"]


def test_the_task_pods_name_the_quota_as_their_cause_and_stop_asking_for_a_larger_pool(run_cli):
    doc = report(run_cli, "task-pods-cpu-quota")
    (f,) = findings_of(doc, "task-pod-unschedulable")
    assert f["caused_by"] == ["gcp-quota-exceeded:Region/europe-west1"]
    assert not any("--max-nodes" in c for c in f["remediation"]["commands"])


def test_a_scale_up_out_of_resources_with_room_in_every_quota_is_not_a_quota(run_cli):
    doc = report(run_cli, "task-pods-scale-up-stockout")
    assert status_of(doc, CHECK) == "pass"
    (f,) = findings_of(doc, "task-pod-unschedulable")
    assert f["caused_by"] == []


def test_a_back_off_with_the_quotas_unread_is_not_checked_never_a_pass(run_cli, tmp_path):
    root = _copy(tmp_path, "task-pods-scale-up-stockout")
    (root / REGION).unlink()
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) not in ("pass", "fail")
    assert findings_of(doc, CHECK) == []


def test_gce_quota_exceeded_with_the_quotas_unread_is_reported_from_the_event(run_cli, tmp_path):
    root = _copy(tmp_path, "task-pods-cpu-quota")
    (root / REGION).unlink()
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert f["title"].startswith("A Compute Engine quota stops node scale-up in europe-west1")
    assert "they were not read (not collected" in f["message"]
    assert any(c.startswith("gcloud compute regions describe europe-west1 --project acme-data-prod")
               for c in f["remediation"]["commands"])


def test_gce_quota_exceeded_with_room_in_every_regional_quota_points_at_a_project_wide_quota(run_cli, tmp_path):
    root = _copy(tmp_path, "task-pods-cpu-quota")
    _quota(root, CPUS=(72, 24))
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert "every regional quota has room: the limit is project-wide" in f["message"]
    assert any("project-wide (CPUS_ALL_REGIONS)" in e for e in f["evidence"])
    assert any(c.startswith("gcloud compute project-info describe --project acme-data-prod")
               for c in f["remediation"]["commands"])
    assert not any("quotas preferences create" in c for c in f["remediation"]["commands"])


def _pending_claim(root) -> None:
    def pend(body: dict) -> None:
        pvc = next(i for i in body["items"] if i["metadata"]["name"] == CLAIM)
        pvc["spec"].pop("volumeName", None)
        pvc["status"] = {"phase": "Pending"}
        pvc["spec"]["resources"]["requests"]["storage"] = "200Gi"
    _edit(root, PVCS, pend)

    def add_event(body: dict) -> None:
        ev = copy.deepcopy(next(e for e in body["items"] if e["reason"] == "FailedScaleUp"))
        ev["metadata"]["name"] = f"{CLAIM}.17f2a9c05d3b1e44"
        ev["involvedObject"] = {"kind": "PersistentVolumeClaim", "namespace": "airflow", "name": CLAIM,
                                "uid": "0b3c8f4e-1d2a-4c5b-9e8f-7a6b5c4d3e2f", "apiVersion": "v1",
                                "resourceVersion": "418223"}
        ev["reason"], ev["message"], ev["count"] = "ProvisioningFailed", SSD_MSG, 14
        ev["source"] = {"component": "pd.csi.storage.gke.io_gke-4f1e2d3c-csi"}
        body["items"].append(ev)
    _edit(root, EVENTS, add_event)


def test_a_claim_the_disk_quota_cannot_hold_is_reported_with_its_size(run_cli, tmp_path):
    """The pods' back-off is not this quota (the next node's boot disk fits); the claim's 200Gi does not."""
    root = _copy(tmp_path, "task-pods-scale-up-stockout")
    _pending_claim(root)
    _quota(root, SSD_TOTAL_GB=(500, 350))   # 150 GB left: a node's 100 GB boot disk fits, the 200Gi claim not
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert f["title"] == f"Compute Engine quota SSD_TOTAL_GB exhausted in europe-west1: claim {CLAIM} cannot come up"
    assert ("region europe-west1 quota SSD_TOTAL_GB: usage 350 of limit 500 (150 left); claim "
            f"{CLAIM} asks 200 GB") in f["evidence"]
    cmds = f["remediation"]["commands"]
    assert "--quota-id=SSD-TOTAL-GB-per-project-region --preferred-value=550 " in cmds[0]
    assert any("gcloud compute disks list --project acme-data-prod --filter='zone ~ ^europe-west1- AND -users:*'" in c
               for c in cmds)
    assert f["blocks"] == ["Pod/airflow/airflow-triggerer-0"]   # the pod that mounts the claim


def test_a_named_quota_with_room_now_is_past(run_cli, tmp_path):
    root = _copy(tmp_path, "task-pods-scale-up-stockout")
    _pending_claim(root)
    _quota(root, SSD_TOTAL_GB=(1000, 350))
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) == "pass"


def test_a_kubernetes_resource_quota_is_not_a_compute_engine_quota(run_cli, tmp_path):
    root = _copy(tmp_path, "task-pods-scale-up-stockout")

    def resource_quota(body: dict) -> None:
        for e in body["items"]:
            if e["reason"] == "FailedScaleUp":
                e["message"] = ('pods "x" is forbidden: exceeded quota: compute-resources, requested: cpu=6, used: '
                                "cpu=18, limited: cpu=20")
            if e["reason"] == "NotTriggerScaleUp":
                e["message"] = "pod didn't trigger scale-up: 1 Insufficient cpu"
    _edit(root, EVENTS, resource_quota)
    (root / REGION).unlink()   # nothing implicates a Compute Engine quota: not even read
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) == "pass"
