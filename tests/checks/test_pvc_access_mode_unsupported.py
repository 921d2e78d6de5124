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
