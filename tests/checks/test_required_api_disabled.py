"""The required-api-disabled check (Google APIs the deployment uses are enabled): its findings on the
fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import GSA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_required_api_disabled_names_each_api_and_why_it_is_needed(doc):
    d = doc("api-disabled-wi")
    f = one(d, "required-api-disabled")
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "Project", "namespace": None, "name": P,
                             "uri": f"//cloudresourcemanager.googleapis.com/projects/{P}"}
    ev = f["evidence"]
    assert has(ev, "storage.googleapis.com has state DISABLED")
    assert has(ev, "iamcredentials.googleapis.com has state DISABLED")
    assert has(ev, "storage.googleapis.com is needed", "gs://acme-airflow-logs/prod")
    assert has(ev, "iamcredentials.googleapis.com is needed", "iam.gke.io/gcp-service-account", GSA)
    assert has(ev, "log ", "apis/api/storage.googleapis.com/overview?project=481516234200")
    assert not has(ev, "secretmanager.googleapis.com has state")     # enabled, so not reported
    cmds = f["remediation"]["commands"]
    assert f"gcloud services enable iamcredentials.googleapis.com storage.googleapis.com --project {P}" in cmds
    # the write failure it explains links to it
    w = one(d, "gcs-log-write-denied")
    assert w["caused_by"] == [f["id"]]


def test_required_api_disabled_passes_when_every_needed_api_is_enabled(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "image-pull-403-ar"):
        assert status_of(doc(name), "required-api-disabled") == "pass", name


def test_required_api_disabled_judges_the_service_states_a_preflight_read(doc):
    # project preflight: no cluster data, but the states of storage, iam, iamcredentials and
    # secretmanager were read (ENABLED): judged, not skipped
    assert status_of(doc("api-disabled-preflight"), "required-api-disabled") == "pass"
    assert status_of(doc("preflight-apis-enabled"), "required-api-disabled") == "pass"
