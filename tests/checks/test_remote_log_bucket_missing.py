"""The remote-log-bucket-missing check (The remote log bucket exists): its findings on the fixture
scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import GSA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_remote_log_bucket_missing(doc):
    d = doc("gcs-bucket-missing")
    f = one(d, "remote-log-bucket-missing")
    assert f["severity"] == "error"
    assert f["resource"]["kind"] == "Bucket" and f["resource"]["name"] == "acme-airflow-logs-old"
    assert has(f["evidence"], "HTTP 404", "The specified bucket does not exist.")
    assert has(f["evidence"], "remote_base_log_folder = gs://acme-airflow-logs-old/prod", "task pods")
    cmds = f["remediation"]["commands"]
    assert (f"gcloud storage buckets create gs://acme-airflow-logs-old --project {P} --location europe-west1 "
            "--uniform-bucket-level-access") in cmds
    assert (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs-old --member serviceAccount:{GSA} "
            "--role roles/storage.objectUser") in cmds
    # the write check leaves the missing bucket to this one
    assert status_of(d, "gcs-log-write-denied") == "skip" and not findings_of(d, "gcs-log-write-denied")


def test_remote_log_bucket_unreadable_is_unproven(doc):
    d = doc("remote-log-bucket-forbidden")
    f = one(d, "remote-log-bucket-missing")
    assert f["severity"] == "warning" and f["resource"]["name"] == "acme-central-logs"
    assert has(f["evidence"], "HTTP 403", "storage.buckets.get")
    assert ("gcloud storage buckets describe gs://acme-central-logs "
            "--format='value(name,projectNumber,location)'") in f["remediation"]["commands"]


def test_remote_log_bucket_present_or_unused(doc):
    assert status_of(doc("healthy-af3-k8s-wi"), "remote-log-bucket-missing") == "pass"
    assert status_of(doc("healthy-minimal"), "remote-log-bucket-missing") == "skip"
