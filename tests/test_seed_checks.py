"""The seed incident end to end: the story of the issue in one report (each check's own behaviour
is tested in tests/checks/test_<check>.py)."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of


def test_seed_incident_is_the_story_of_the_issue(run_cli):
    code, doc = doctor_json(run_cli, "seed-incident")
    assert code == 1
    assert {f["check"] for f in doc["findings"]} >= {"pvc-access-mode-unsupported", "node-storage-scope-read-only",
                                                      "gcs-log-write-denied"}
    assert findings_of(doc, "executor-pod-stuck-init") == [] and status_of(doc, "executor-pod-stuck-init") == "pass"
    assert doc["run"]["release"] == "airflow" and doc["run"]["airflow_version"] == "3.1.3"
    assert doc["run"]["chart_version"] == "1.22.0" and doc["run"]["mode"] == "snapshot"
