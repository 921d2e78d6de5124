"""The k8s-executor-logs-lost check (KubernetesExecutor task logs outlive their pods): its findings on
the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import GSA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_k8s_executor_logs_lost(doc):
    f = one(doc("k8s-logs-lost"), "k8s-executor-logs-lost")
    assert f["severity"] == "warning"
    assert f["resource"] == {"kind": "ConfigMap", "namespace": "airflow", "name": "airflow-config", "uri": None}
    ev = f["evidence"]
    assert has(ev, "[core] executor = KubernetesExecutor")
    assert has(ev, "[logging] remote_logging = False")
    assert has(ev, "volume logs mounted at /opt/airflow/logs", "emptyDir")
    assert has(ev, "delete_worker_pods = True")
    cmds = f["remediation"]["commands"]
    assert f"gcloud storage buckets create gs://{P}-airflow-logs --project {P} --location europe-west1 " \
           "--uniform-bucket-level-access" in cmds
    assert (f"gcloud storage buckets add-iam-policy-binding gs://{P}-airflow-logs --member serviceAccount:{GSA} "
            "--role roles/storage.objectUser") in cmds
    assert any(c.startswith("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
                            "--set-string config.logging.remote_logging=True") for c in cmds)


def test_k8s_executor_logs_kept_by_remote_logging_or_a_volume_skip_for_celery(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-minimal"):
        assert status_of(doc(name), "k8s-executor-logs-lost") == "pass", name
    assert status_of(doc("healthy-af2-celery"), "k8s-executor-logs-lost") == "skip"   # CeleryExecutor
