"""The task-pod-unschedulable check (KubernetesExecutor task pods get a node within the pending
timeout): its findings on the fixture scenarios (resource, evidence, commands, links) and where it
stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import _cmds, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_unschedulable_request_larger_than_any_node(doc):
    d = doc("task-pods-oom-unschedulable")
    pod = _pod("task-pods-oom-unschedulable", task="train_model")
    f = _one(d, "task-pod-unschedulable", "Pod", pod)
    assert "requests more memory than any node can allocate" in f["title"]
    ev = _ev(f)
    assert "worker_pods_pending_timeout 300s" in ev and "3 Insufficient memory" in ev
    assert "NotTriggerScaleUp (x4, cluster-autoscaler): pod didn't trigger scale-up: 1 Insufficient memory" in ev
    assert "pod requests: cpu 2, memory 40Gi" in ev and "allocatable: cpu 7.91, memory 27.8Gi" in ev
    assert ("gcloud container node-pools create airflow-tasks-highmem --cluster airflow-prod --location europe-west1 "
            "--project acme-data-prod --machine-type e2-highmem-8") in _cmds(f)


def test_unschedulable_pool_at_max_size(doc):
    d = doc("task-pods-oom-unschedulable")
    pod = _pod("task-pods-oom-unschedulable", task="transform_orders")
    f = _one(d, "task-pod-unschedulable", "Pod", pod)
    assert "not enough free cpu on the nodes" in f["title"]
    assert "max node group size reached" in _ev(f)
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--enable-autoscaling --node-pool airflow-pool --min-nodes 1 --max-nodes 6") in _cmds(f)   # keeps its minimum


def test_unschedulable_young_pending_pods_are_start_up(doc):
    d = doc("task-pods-oom-unschedulable")
    young = _pod("task-pods-oom-unschedulable", task="transform_customers")
    assert young not in {f["resource"]["name"] for f in findings_of(d, "task-pod-unschedulable")}
    assert status_of(doc("healthy-af3-k8s-wi"), "task-pod-unschedulable") == "pass"
