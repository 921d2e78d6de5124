"""The pvc-access-mode-unsupported check (PVCs ask only for access modes their StorageClass supports):
its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of
from checktools import _all_commands, _blocked_pods


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


def test_the_pending_claim_is_deleted_after_the_workloads_that_mount_it_scale_down(run_cli):
    """The Filestore option's steps in an order that works: a claim a pod references stays
    Terminating (pvc-protection), so the workloads mounting it go to 0 first; each step says what it
    stops or loses on the line before it (a Pending claim holds no data)."""
    _, doc = doctor_json(run_cli, "logs-pvc-rwx-pd-csi")
    [f] = findings_of(doc, "pvc-access-mode-unsupported")
    option_b = f["remediation"]["commands"][1].splitlines()
    assert option_b[3:] == [
        "# stops the pods that mount af2-logs (the helm upgrade below restores them), then deletes af2-logs: it is "
        "Pending and was never bound, so no data is lost",
        "kubectl scale --replicas=0 deployment/af2-scheduler statefulset/af2-triggerer deployment/af2-webserver "
        "statefulset/af2-worker --namespace data-pipelines && kubectl delete pvc af2-logs --namespace data-pipelines",
        "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
        "--set logs.persistence.enabled=true --set logs.persistence.storageClassName=standard-rwx"]
