"""cloudsql-proxy-sidecar: a Cloud SQL Auth Proxy added as a regular container keeps task pods and
Jobs alive after their main container ended (catalogue #30)."""
from __future__ import annotations

import json

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit, cmds, report

CHECK = "cloudsql-proxy-sidecar"
PROXY = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1"


def _doc(run_cli, name: str, *flags: str) -> dict:
    return report(run_cli, name, "--extended", *flags)


def test_task_pods_held_by_the_proxy_are_one_error_on_the_pod_template_with_the_native_sidecar_values(run_cli):
    doc = _doc(run_cli, "task-pods-sidecar-never-exits")
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["namespace"], f["resource"]["name"]) == ("ConfigMap", "airflow",
                                                                                          "airflow-config")
    assert f["title"] == ("The Cloud SQL Auth Proxy sidecar cloud-sql-proxy never exits: 32 task pods stay Running "
                          "after their task ended and hold all 32 executor slots")
    assert f["evidence"][0] == (f"32 task pods Running with base terminated 8h59m–12h00m ago while container "
                                f"cloud-sql-proxy (image {PROXY}, a regular container in spec.containers, not a native "
                                "sidecar) keeps running")
    assert "32 of [core] parallelism 32 executor slots held by running task pods: no open slot" in f["evidence"]
    assert any(e.startswith("the pod template (pod_template_file.yaml in airflow-config) lists cloud-sql-proxy under "
                            "containers") for e in f["evidence"])
    assert "native sidecars: oldest kubelet v1.35.3-gke.1245000 (1.29+: supported)" in f["evidence"]
    upgrade, comment, delete = f["remediation"]["commands"]
    assert upgrade.startswith("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
                              "--set-json 'workers.extraContainers=[]' --set-json 'workers.extraInitContainers=[")
    init = json.loads(upgrade.split("workers.extraInitContainers=", 1)[1].rstrip("'"))
    assert init == [{"name": "cloud-sql-proxy", "image": PROXY,
                     "args": ["--structured-logs", "--port=5432", "--private-ip",
                              "acme-data-prod:europe-west1:airflow-metadata"],
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                     "securityContext": {"runAsNonRoot": True}, "restartPolicy": "Always"}]
    assert delete == "kubectl delete pods --namespace airflow -l kubernetes_executor=True --field-selector=status.phase=Running"


def test_the_floor_finding_for_the_same_pods_is_folded_under_it_not_a_second_finding(run_cli):
    doc = _doc(run_cli, "task-pods-sidecar-never-exits")
    assert [f["check"] for f in doc["findings"]] == [CHECK]
    (sym,) = doc["findings"][0]["symptoms"]
    assert sym["check"] == "executor-slots-blocked"
    assert status_of(doc, "executor-slots-blocked") == "fail"   # its verdict stands; only the report folds it


def test_a_job_held_by_the_proxy_is_one_error_on_the_job_with_delete_and_values(run_cli):
    doc = _doc(run_cli, "migration-job-proxy-hang")
    (f,) = findings_of(doc, CHECK)
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("Job", "airflow-run-airflow-migrations")
    ev = "\n".join(f["evidence"])
    assert "run-airflow-migrations exit code 0, Completed 46m ago; cloud-sql-proxy" in ev
    assert "Job airflow-run-airflow-migrations: active 1, succeeded 0, started 47m ago" in ev
    c = cmds(f)
    steps = [c for c in f["remediation"]["commands"] if not c.startswith("#")]
    assert steps[0] == "kubectl delete job airflow-run-airflow-migrations --namespace airflow"
    assert "--set-json 'migrateDatabaseJob.extraContainers=[]'" in c
    assert '"restartPolicy":"Always"' in c and "kube-api-access" not in c
    assert [s["check"] for s in doc["findings"][0]["symptoms"]] == ["component-not-ready"]


def test_a_native_sidecar_that_stopped_with_base_passes(run_cli):
    doc = _doc(run_cli, "healthy-cloudsql-native-sidecar")
    assert status_of(doc, CHECK) == "pass"
    assert doc["findings"] == []


def test_a_task_still_running_next_to_its_proxy_is_not_held(run_cli, tmp_path):
    snap = _copy(tmp_path, "task-pods-sidecar-never-exits")

    def still_running(body):
        for p in body["items"]:
            for cs in p["status"].get("containerStatuses") or []:
                if cs["name"] == "base":
                    cs["state"] = {"running": {"startedAt": cs["state"]["terminated"]["startedAt"]}}
                    cs["ready"] = True

    _edit(snap, "k8s/api/v1/namespaces/airflow/pods.json", still_running)
    doc = doctor_json(run_cli, snap)[1]
    assert status_of(doc, CHECK) == "pass"


def test_on_nodes_older_than_1_29_it_does_not_offer_a_native_sidecar(run_cli, tmp_path):
    snap = _copy(tmp_path, "task-pods-sidecar-never-exits")

    def old(body):
        for n in body["items"]:
            n["status"]["nodeInfo"]["kubeletVersion"] = "v1.28.15-gke.1020000"

    _edit(snap, "k8s/api/v1/nodes.json", old)
    (f,) = findings_of(doctor_json(run_cli, snap)[1], CHECK)
    assert "native sidecars: oldest kubelet v1.28.15-gke.1020000 (older than 1.29: not supported)" in f["evidence"]
    assert not any(c.startswith("helm upgrade") for c in f["remediation"]["commands"])
    assert "older than 1.29" in f["remediation"]["summary"]
