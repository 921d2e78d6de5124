"""wi-metadata-server-startup-race: first tries fail without credentials on Workload Identity nodes
while their retries get them (catalogue #7)."""
from __future__ import annotations

import json

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit, report

CHECK = "wi-metadata-server-startup-race"
PODS = "k8s/api/v1/namespaces/airflow/pods.json"


def test_first_tries_failing_in_seconds_with_retries_running_is_one_warning_with_a_wait_init_container(run_cli):
    doc = report(run_cli, "wi-metadata-race-af2")
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "warning"
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("ConfigMap", "airflow-config")
    assert f["count"] == 1 and len(f["evidence"]) == 8
    first = f["evidence"][0]
    assert first.startswith("Pod gcs-to-bq-daily-load-orders-") and "(gcs_to_bq_daily.load_orders, try 1) failed 9s " \
        "after base started, on node gke-airflow-prod-airflow-pool-" in first
    assert "google.auth.exceptions.DefaultCredentialsError: Your default credentials were not found" in first
    assert sum(e.startswith("the next try of gcs_to_bq_daily.") and ", try 2) is Running: it got credentials" in e
               for e in f["evidence"]) == 3
    assert "2 other task pod(s) of the same service account on Workload Identity nodes are Running or Succeeded" \
        in f["evidence"]
    (cmd,) = f["remediation"]["commands"]
    assert cmd.startswith("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set-json "
                          "'workers.extraInitContainers=[")
    assert "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token" in cmd
    assert "GCE_METADATA_TIMEOUT" in f["remediation"]["summary"]


def test_every_try_failing_the_same_way_is_not_the_race(run_cli):
    doc = report(run_cli, "wi-credentials-every-try-af2")
    assert status_of(doc, CHECK) == "pass"
    assert doc["findings"] == []


def test_the_same_failure_on_nodes_without_the_gke_metadata_server_is_not_the_race(run_cli, tmp_path):
    snap = _copy(tmp_path, "wi-metadata-race-af2")
    cluster = next(snap.glob("gcp/container/v1/projects/*/locations/*/clusters/*.json"))
    body = json.loads(cluster.read_text())
    for np_ in body["nodePools"]:
        np_["config"]["workloadMetadataConfig"] = {"mode": "GCE_METADATA"}
    cluster.write_text(json.dumps(body))
    _code, doc = doctor_json(run_cli, snap)
    assert status_of(doc, CHECK) == "pass"


def test_a_task_that_ran_for_minutes_before_failing_is_not_the_start_up_race(run_cli, tmp_path):
    snap = _copy(tmp_path, "wi-metadata-race-af2")

    def long_run(body):
        for p in body["items"]:
            for cs in p["status"].get("containerStatuses") or []:
                t = cs["state"].get("terminated")
                if t and t["exitCode"] == 1:
                    t["startedAt"] = t["startedAt"].replace("T06:0", "T05:4")

    _edit(snap, PODS, long_run)
    _code, doc = doctor_json(run_cli, snap)
    assert status_of(doc, CHECK) == "pass"


def test_not_applicable_without_the_kubernetes_executor(run_cli):
    assert status_of(report(run_cli, "healthy-af2-celery"), CHECK) == "skip"
