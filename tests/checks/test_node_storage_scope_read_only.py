"""The node-storage-scope-read-only check (Nodes running Airflow can write to Cloud Storage): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of
from checktools import _all_commands


def test_node_scope_read_only_on_the_pool_with_workload_identity_commands(run_cli):
    _, doc = doctor_json(run_cli, "seed-incident")
    [f] = findings_of(doc, "node-storage-scope-read-only")
    assert f["resource"]["kind"] == "NodePool" and f["resource"]["name"] == "default-pool"
    assert f["resource"]["uri"] == ("//container.googleapis.com/projects/acme-data-prod/locations/europe-west1"
                                    "/clusters/airflow-prod/nodePools/default-pool")
    ev = "\n".join(f["evidence"])
    assert "https://www.googleapis.com/auth/devstorage.read_only" in ev and "481516234200-compute@developer" in ev
    assert "gs://acme-airflow-logs/prod" in ev and "no Workload Identity pool" in ev
    cmds = _all_commands(f)
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--workload-pool=acme-data-prod.svc.id.goog") in cmds
    assert "serviceAccount:acme-data-prod.svc.id.goog[airflow/airflow-worker]" in cmds
    assert "--scopes=cloud-platform" in cmds
    assert "roles/editor" not in cmds


def test_node_scope_resolves_remote_logging_from_env_and_ignores_workload_identity(run_cli):
    _, doc = doctor_json(run_cli, "remote-logging-readonly-scope")
    [f] = findings_of(doc, "node-storage-scope-read-only")
    assert any("env AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER" in e and "gs://acme-af2-logs/logs" in e
               for e in f["evidence"])
    _, doc = doctor_json(run_cli, "remote-logging-wi-readonly-scope")
    assert status_of(doc, "node-storage-scope-read-only") == "pass"
