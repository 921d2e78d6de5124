"""The image-version-skew check (All Airflow components run the same Airflow version): its findings on
the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import _cmds, _ev, _one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_skew_pod_template_and_worker_tag_pinned_to_an_old_version(doc):
    d = doc("image-version-skew-af3")
    f = _one(d, "image-version-skew", "HelmRelease", "airflow")
    assert f["severity"] == "warning" and f["id"] == "image-version-skew:HelmRelease/airflow/airflow"
    ev = _ev(f)
    assert "scheduler (Deployment airflow-scheduler): apache/airflow:3.1.3 (Airflow 3.1.3)" in ev
    assert "worker_container_tag: apache/airflow:3.0.6 (Airflow 3.0.6)  <- differs" in ev
    assert "airflow_version=3.1.3" in ev
    assert ("--set-string images.pod_template.tag=3.1.3 "
            "--set-string config.kubernetes_executor.worker_container_tag=3.1.3") in _cmds(f)


def test_skew_passes_when_every_component_agrees(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "fernet-key-changed-af2"):
        assert status_of(doc(name), "image-version-skew") == "pass", name
