"""The gcs-log-write-denied check (Airflow can write task logs to its Cloud Storage bucket): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

from conftest import doctor_json, findings_of
from checktools import _all_commands


def test_gcs_write_denied_links_to_the_scope_and_quotes_the_403(run_cli):
    _, doc = doctor_json(run_cli, "seed-incident")
    [f] = findings_of(doc, "gcs-log-write-denied")
    assert f["resource"] == {"kind": "Bucket", "namespace": None, "name": "acme-airflow-logs",
                             "uri": "//storage.googleapis.com/projects/_/buckets/acme-airflow-logs"}
    assert f["caused_by"] == ["node-storage-scope-read-only:NodePool/default-pool"]
    ev = "\n".join(f["evidence"])
    assert "481516234200-compute@developer.gserviceaccount.com" in ev
    assert "403 POST https://storage.googleapis.com/upload/storage/v1/b/acme-airflow-logs" in ev
    assert "gs://acme-airflow-logs" in _all_commands(f)


def test_gcs_write_denied_names_the_gsa_and_the_missing_grant(run_cli):
    _, doc = doctor_json(run_cli, "gcs-wi-missing-grant")
    [f] = findings_of(doc, "gcs-log-write-denied")
    assert f["severity"] == "error" and f["caused_by"] == []
    ev = "\n".join(f["evidence"])
    assert "airflow@acme-data-prod.iam.gserviceaccount.com" in ev and "no role with storage.objects.create" in ev
    assert ("gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member "
            "serviceAccount:airflow@acme-data-prod.iam.gserviceaccount.com --role roles/storage.objectUser") in _all_commands(f)


def test_gcs_write_unproven_when_iam_unreadable_is_a_warning(run_cli):
    # Only this check: others that need the unreadable project policy end `error` (exit 3), as they should.
    code, doc = doctor_json(run_cli, "gcs-iam-unreadable", "--check", "gcs-log-write-denied")
    [f] = findings_of(doc, "gcs-log-write-denied")
    assert f["severity"] == "warning" and "unproven" in f["message"]
    assert any("storage.buckets.getIamPolicy" in e for e in f["evidence"])
    assert code == 0
    code, _ = doctor_json(run_cli, "gcs-iam-unreadable", "--fail-on", "warning")
    assert code == 1
