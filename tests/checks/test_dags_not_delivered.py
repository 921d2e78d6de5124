"""The dags-not-delivered check (The pods that run tasks receive the DAG files): its findings on the
fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_dags_not_delivered(doc):
    f = only(doc("dags-not-in-task-pods"), "dags-not-delivered")
    assert f["resource"] == {"kind": "ConfigMap", "namespace": "airflow", "name": "airflow-config", "uri": None}
    t = text(f)
    assert "[core] dags_folder = /opt/airflow/dags" in t
    assert "image apache/airflow:3.1.7: a stock apache/airflow image" in t
    assert "Dag not found during start up" in t
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set dags.gitSync.enabled=true") in cmds(f)


@pytest.mark.parametrize("name", HEALTHY + ("dags-pvc-rwo-multi-attach",))
def test_dags_not_delivered_silent(doc, name):
    # dags-pvc-rwo-multi-attach: no git-sync and a stock image, but a DAG volume at the DAGs folder
    assert status_of(doc(name), "dags-not-delivered") == "pass"
