"""The executor-slots-blocked check (the executor's health floor: task pods do not hold every
executor slot): its findings on the fixture scenarios and where it stays quiet."""
from __future__ import annotations

from conftest import status_of
from checktools import report


def _doc(run_cli, name: str) -> dict:
    return report(run_cli, name, "--extended")


def test_sidecar_keeps_32_task_pods_running_all_slots_held(run_cli):
    # run alone: its verdict does not depend on the specific check (cloudsql-proxy-sidecar) that explains
    # these pods and under which the full report folds it
    doc = report(run_cli, "task-pods-sidecar-never-exits", "--check", "executor-slots-blocked")
    assert [f["check"] for f in doc["findings"]] == ["executor-slots-blocked"]
    f = doc["findings"][0]
    assert f["severity"] == "error" and f["resource"] == {"kind": "ConfigMap", "namespace": "airflow",
                                                          "name": "airflow-config", "uri": None}
    assert f["title"] == ("32 task pods hold their executor slots after their task ended: base terminated "
                          "8h59m–12h00m ago, cloud-sql-proxy still running (32 of 32 slots in use: nothing new runs)")
    assert f["evidence"][0].startswith("32 task pods Running, not Ready, container base terminated 8h59m–12h00m ago "
                                       "(exit codes: 0 x32); still running: cloud-sql-proxy x32")
    assert f["evidence"][1] == "32 of [core] parallelism 32 slots in use by running task pods: no open slot"
    examples = [e for e in f["evidence"] if e.startswith("Pod ")]
    assert len(examples) == 3 and all("base terminated 12h00m ago" in e or "base terminated 11h" in e
                                      for e in examples), examples



def test_finished_task_pods_never_deleted_with_counts_and_oldest_examples(run_cli):
    doc = _doc(run_cli, "task-pods-not-deleted")
    assert [f["check"] for f in doc["findings"]] == ["executor-slots-blocked"]
    f = doc["findings"][0]
    assert f["resource"]["kind"] == "Deployment" and f["resource"]["name"] == "airflow-scheduler"
    assert f["title"].startswith("18 finished task pods were never deleted although delete_worker_pods=True (oldest "
                                 "finished 6h03m ago; 14 running + 18 never processed = 32 of 32 slots")
    assert "14 running task pods + 18 finished but never processed = 32 of [core] parallelism 32 executor slots: no " \
           "open slot" in f["evidence"]
    assert [e.split(": ")[1] for e in f["evidence"] if e.startswith("Pod ")] == [
        "Succeeded, finished 6h03m ago", "Succeeded, finished 5h49m ago", "Succeeded, finished 5h35m ago"]
    assert "kubectl rollout restart deployment/airflow-scheduler --namespace airflow" in f["remediation"]["commands"]



def test_the_executor_floor_stays_quiet_on_busy_and_healthy_executors(run_cli):
    for name in ("healthy-af3-k8s-wi", "task-pod-init-stuck", "seed-incident", "k8s-logs-lost"):
        assert status_of(_doc(run_cli, name), "executor-slots-blocked") == "pass", name
    assert status_of(_doc(run_cli, "healthy-af2-celery"), "executor-slots-blocked") == "skip"


def test_the_executor_floor_links_to_the_specific_cause_and_folds_under_it(run_cli):
    """The scheduler may not delete pods: executor-rbac-forbidden knows the cause; the floor's finding
    on the pods never deleted links to it (caused_by) and is listed as its symptom, not printed twice."""
    doc = _doc(run_cli, "task-pods-kept-no-delete-rbac")
    assert [f["check"] for f in doc["findings"]] == ["executor-rbac-forbidden"]
    assert status_of(doc, "executor-slots-blocked") == "fail"
    cause = doc["findings"][0]
    assert [s["check"] for s in cause["symptoms"]] == ["executor-slots-blocked"]
    sym = cause["symptoms"][0]
    assert sym["title"].startswith("9 finished task pods were never deleted although delete_worker_pods=True")
    assert sym["resource"]["kind"] == "Deployment" and sym["resource"]["name"] == "airflow-scheduler"


def test_a_dead_pod_watcher_takes_the_floor_finding_as_its_symptom(run_cli):
    """k8s-watcher-410-gone names the cause of the pods never deleted: the floor's view folds under it."""
    doc = _doc(run_cli, "k8s-watcher-410-af2")
    assert "executor-slots-blocked" not in {f["check"] for f in doc["findings"]}
    cause = next(f for f in doc["findings"] if f["check"] == "k8s-watcher-410-gone")
    assert [s["check"] for s in cause.get("symptoms", [])] == ["executor-slots-blocked"]
