"""The task-pod-oomkilled check (Task containers stay within their memory limit): its findings on the
fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import _cmds, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_oomkilled_task_pod_with_limit_and_pod_override(doc):
    d = doc("task-pods-oom-unschedulable")
    pod = _pod("task-pods-oom-unschedulable", task="compute_features")
    f = _one(d, "task-pod-oomkilled", "Pod", pod)
    assert "(dag ml_feature_refresh, task compute_features, try 1) was OOMKilled (memory limit 1Gi)" in f["title"]
    ev = _ev(f)
    assert "container base state.terminated: reason OOMKilled, exitCode 137" in ev
    assert "requests cpu 1, memory 512Mi; limits cpu none, memory 1Gi" in ev
    assert "pod_override" in f["remediation"]["summary"]
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set workers.resources.requests.memory=2Gi --set workers.resources.limits.memory=2Gi") in _cmds(f)


def test_oomkilled_celery_worker(doc):
    d = doc("celery-worker-oom-af2")
    w = _pod("celery-worker-oom-af2", "worker")
    f = _one(d, "task-pod-oomkilled", "Pod", w)
    assert "Celery worker" in f["title"] and "limit 4Gi" in f["title"]
    assert "lastState.terminated: reason OOMKilled, exitCode 137" in _ev(f)
    assert "--set-string config.celery.worker_concurrency=8" in _cmds(f)
    assert "--set workers.resources.limits.memory=8Gi" in _cmds(f)


def test_oomkilled_passes_without_oom(doc):
    for name in ("healthy-af3-k8s-wi", "component-crashloop-af3"):
        assert status_of(doc(name), "task-pod-oomkilled") == "pass", name
