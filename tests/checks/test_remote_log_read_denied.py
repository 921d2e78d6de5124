"""The remote-log-read-denied check (The api-server/webserver can read the remote task logs): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import GSA, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_remote_log_read_denied_with_creator_only(doc):
    d = doc("remote-log-read-creator-only")
    f = one(d, "remote-log-read-denied")
    assert f["severity"] == "error"
    assert f["resource"]["kind"] == "Bucket" and f["resource"]["name"] == "acme-airflow-logs"
    assert has(f["evidence"], "api-server (KSA airflow-api-server", GSA, "no role with storage.objects.get")
    assert (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member serviceAccount:{GSA} "
            "--role roles/storage.objectViewer") in f["remediation"]["commands"]
    assert status_of(d, "gcs-log-write-denied") == "pass"       # objectCreator may write


def test_remote_log_read_denied_when_only_writers_log_remotely(doc):
    d = doc("served-logs-key-split")
    f = one(d, "remote-log-read-denied")
    assert f["resource"]["name"] == "acme-af2-logs"
    assert has(f["evidence"], "gs://acme-af2-logs/logs for worker", "env AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER")
    assert has(f["evidence"], "webserver: [logging] remote_logging = False")
    assert any(c.startswith("helm upgrade af2 apache-airflow/airflow --namespace airflow --reuse-values "
                            "--set-string config.logging.remote_logging=True") for c in f["remediation"]["commands"])


def test_remote_log_read_unproven_when_iam_unreadable(doc):
    f = one(doc("gcs-iam-unreadable"), "remote-log-read-denied")
    assert f["severity"] == "warning" and "unproven" in f["message"]


def test_remote_log_read_allowed(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "remote-logging-readonly-scope"):
        assert status_of(doc(name), "remote-log-read-denied") == "pass", name
