"""The autopilot-resources-adjusted check (Autopilot runs Airflow containers with the limits the chart
set): its finding on the Autopilot scenarios (resource, evidence, commands, the OOM it causes) and
where it stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, findings_of, status_of
from checktools import _check, _cmds, _copy, _edit, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_lowered_limits_and_the_ooms_they_cause(doc):
    d = doc("autopilot-limits-lowered-af3")
    f = _one(d, "autopilot-resources-adjusted", "HelmRelease", "airflow")
    assert f["severity"] == "error"
    ev = _ev(f)
    assert ("Deployment airflow-scheduler container scheduler: the chart asked requests cpu 500m, memory 1Gi; limits "
            "memory 2Gi; Autopilot set requests cpu 500m, memory 1Gi, ephemeral-storage 1Gi; limits cpu 500m, memory "
            "1Gi, ephemeral-storage 1Gi") in ev
    assert "limits lowered: memory 2Gi -> 1Gi" in ev
    task = _pod("autopilot-limits-lowered-af3", task="compute_features")
    sched = _pod("autopilot-limits-lowered-af3", component="scheduler")
    assert f"task pod {task} container base" in ev and "limits lowered: memory 4Gi -> 2Gi" in ev
    assert f"Pod {sched}: container scheduler terminated OOMKilled (exit 137) 38m ago at the lowered memory limit 1Gi" in ev
    assert "runs GKE 1.29.10-gke.1227000" in ev and "1.30.2-gke.1394000" in ev
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set-string apiServer.resources.requests.memory=2Gi --set-string apiServer.resources.limits.memory=2Gi "
            "--set-string scheduler.resources.requests.memory=2Gi --set-string scheduler.resources.limits.memory=2Gi "
            "--set-string workers.resources.requests.memory=4Gi --set-string workers.resources.limits.memory=4Gi"
            ) in _cmds(f)
    # the cut limit the chart set is restored, not doubled: both OOM checks agree on 4Gi for the task pods
    oom = _one(d, "task-pod-oomkilled", "Pod", task)
    assert oom["caused_by"] == ["autopilot-resources-adjusted:HelmRelease/airflow/airflow"]
    assert "workers.resources.limits.memory=4Gi" in _cmds(oom)
    assert "Autopilot lowered this container's memory limit at admission" in _ev(oom)


def test_warning_without_an_oom(run_cli, tmp_path):
    root = _copy(tmp_path, "autopilot-limits-lowered-af3")

    def healthy(body):
        for p in body["items"]:
            for cs in p["status"].get("containerStatuses") or []:
                cs.pop("lastState", None)
                cs["restartCount"] = 0
        body["items"] = [p for p in body["items"] if p["metadata"]["labels"].get("kubernetes_executor") != "True"]
    _edit(root, "k8s/api/v1/namespaces/airflow/pods.json", healthy)
    for log in root.glob("k8s/api/v1/namespaces/airflow/pods/*/log/*"):
        log.unlink()
    _, d = doctor_json(run_cli, root, "--check", "autopilot-resources-adjusted")
    [f] = findings_of(d, "autopilot-resources-adjusted")
    assert f["severity"] == "warning" and "OOMKilled" not in f["title"]
    assert "workers.resources" not in _cmds(f) and "scheduler.resources.requests.memory=2Gi" in _cmds(f)


def test_silent_when_autopilot_only_adds_requests_and_defaults(doc):
    d = doc("autopilot-requests-match-limits-af3")
    assert status_of(d, "autopilot-resources-adjusted") == "pass"
    assert not findings_of(d, "autopilot-resources-adjusted")


def test_skips_on_standard_and_passes_without_annotations(doc):
    assert _check(doc("healthy-af3-k8s-wi"), "autopilot-resources-adjusted") == ("skip", "not an Autopilot cluster")
    assert status_of(doc("task-pods-oom-unschedulable"), "autopilot-resources-adjusted") == "skip"
    oom = findings_of(doc("task-pods-oom-unschedulable"), "task-pod-oomkilled")
    assert oom and all(not f["caused_by"] for f in oom)
