"""The evictable-workers check (Pods that run tasks are not on Spot nodes or marked safe to evict): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, status_of
from checktools import _cmds, _ev, _one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_evictable_spot_pool_with_sigterm_evidence(doc):
    d = doc("evictable-task-pods-spot")
    f = _one(d, "evictable-workers", "NodePool", "spot-pool")
    assert f["severity"] == "warning" and f["resource"]["uri"].endswith("/clusters/airflow-prod/nodePools/spot-pool")
    ev = _ev(f)
    assert "config.spot True" in ev and "labelled cloud.google.com/gke-spot=true" in ev
    assert "Received SIGTERM. Terminating subprocesses." in ev
    assert "Pod was terminated in response to imminent node shutdown." in ev
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set-string workers.nodeSelector.cloud\\.google\\.com/gke-nodepool=airflow-pool") in _cmds(f)


def test_evictable_safe_to_evict_celery_workers(doc):
    d = doc("celery-worker-oom-af2")
    f = _one(d, "evictable-workers", "Deployment", "af2-worker")
    assert 'cluster-autoscaler.kubernetes.io/safe-to-evict: "true"' in _ev(f)
    assert "--set workers.safeToEvict=false --set workers.terminationGracePeriodSeconds=3600" in _cmds(f)


def test_evictable_is_extended_only_and_passes_on_healthy(run_cli, doc):
    _, plain = doctor_json(run_cli, "evictable-task-pods-spot")
    assert "evictable-workers" not in {c["id"] for c in plain["checks"]}
    assert status_of(doc("healthy-af3-k8s-wi"), "evictable-workers") == "pass"
