"""The ephemeral-storage-eviction check (No Airflow pod is evicted for ephemeral storage): its findings
on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import HEALTHY, cmds, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_ephemeral_storage_eviction(doc):
    d = doc("ephemeral-storage-evictions")
    fs = {f["resource"]["kind"]: f for f in findings_of(d, "ephemeral-storage-eviction")}
    task = fs["Pod"]
    assert task["severity"] == "error"
    assert task["resource"]["name"].startswith("ml-feature-refresh-build-features-")
    t = text(task)
    assert "2 KubernetesExecutor task pods evicted for ephemeral storage" in t
    assert "The node was low on resource: ephemeral-storage" in t
    assert "Container base was using 39714348Ki, which exceeds its request of 0." in t
    assert "requests.ephemeral-storage (none)" in t
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set workers.resources.requests.ephemeral-storage=2Gi "
            "--set workers.resources.limits.ephemeral-storage=8Gi") in cmds(task)
    sched = fs["Deployment"]
    assert sched["severity"] == "warning"     # three days old
    assert sched["resource"]["name"] == "airflow-scheduler"
    assert "--set scheduler.logGroomerSidecar.retentionDays=3" in cmds(sched)


@pytest.mark.parametrize("name", HEALTHY + ("dags-pvc-rwo-multi-attach",))
def test_ephemeral_storage_eviction_silent(doc, name):
    assert status_of(doc(name), "ephemeral-storage-eviction") == "pass"
