"""k8s-watcher-410-gone: the KubernetesExecutor's pod watcher dies on an expired watch (HTTP 410)."""
from __future__ import annotations

import json
import shutil

from conftest import doctor_json, findings_of, scenario, status_of

CHECK = "k8s-watcher-410-gone"


def test_410_with_finished_pods_left_over_is_an_error_on_the_scheduler_with_a_restart(run_cli):
    code, doc = doctor_json(run_cli, "k8s-watcher-410-af2")
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["namespace"], f["resource"]["name"]) == ("Deployment", "airflow", "airflow-scheduler")
    ev = "\n".join(f["evidence"])
    assert "Reason: Expired: too old resource version: 412880116 (415314003)" in ev
    assert "Unknown error in KubernetesJobWatcher. Failing" in ev
    assert "5 `too old resource version` lines" in ev
    assert "11 finished task pod(s) still present although delete_worker_pods = True" in ev
    assert f["remediation"]["commands"][-1] == "kubectl rollout restart deployment/airflow-scheduler --namespace airflow"
    assert "cncf-kubernetes" in f["remediation"]["summary"]


def test_the_same_lines_with_finished_pods_deleted_are_noise_and_pass(run_cli):
    code, doc = doctor_json(run_cli, "k8s-watcher-410-recovered-af2")
    assert status_of(doc, CHECK) == "pass"
    assert findings_of(doc, CHECK) == []


def test_when_the_executor_keeps_finished_pods_recovery_cannot_be_told_and_it_warns(run_cli, tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(scenario("k8s-watcher-410-recovered-af2"), snap)
    cms = snap / "k8s/api/v1/namespaces/airflow/configmaps.json"
    doc = json.loads(cms.read_text())
    cfg = next(i for i in doc["items"] if i["metadata"]["name"] == "airflow-config")
    text = cfg["data"]["airflow.cfg"]
    assert "[kubernetes_executor]" in text
    cfg["data"]["airflow.cfg"] = text.replace("[kubernetes_executor]\n", "[kubernetes_executor]\ndelete_worker_pods = False\n")
    cms.write_text(json.dumps(doc))
    _code, out = doctor_json(run_cli, snap)
    (f,) = findings_of(out, CHECK)
    assert f["severity"] == "warning"
    assert any("delete_worker_pods = False" in e for e in f["evidence"])


def test_not_applicable_without_the_kubernetes_executor(run_cli):
    _code, doc = doctor_json(run_cli, "celery-worker-oom-af2")
    assert status_of(doc, CHECK) == "skip"
