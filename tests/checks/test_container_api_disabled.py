"""The container-api-disabled check (Kubernetes Engine API is enabled): its findings on the fixture
scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of


def test_container_api_disabled_in_a_project_preflight(run_cli):
    code, doc = doctor_json(run_cli, "api-disabled-preflight")
    assert code == 1
    [f] = findings_of(doc, "container-api-disabled")
    assert f["resource"]["kind"] == "Project" and f["resource"]["name"] == "acme-data-dev"
    assert any("state DISABLED" in e for e in f["evidence"])
    assert "gcloud services enable container.googleapis.com compute.googleapis.com --project acme-data-dev" in f["remediation"]["commands"]
    for c in doc["checks"]:
        if c["id"] in ("pvc-access-mode-unsupported", "executor-pod-stuck-init"):
            assert c["status"] == "skip" and c["reason"]


def test_container_api_disabled_from_the_service_disabled_error(run_cli):
    _, doc = doctor_json(run_cli, "api-disabled-cluster-403")
    [f] = findings_of(doc, "container-api-disabled")
    ev = "\n".join(f["evidence"])
    assert "403 SERVICE_DISABLED" in ev
    assert "activation URL: https://console.developers.google.com/apis/api/container.googleapis.com/overview" in ev
    _, doc = doctor_json(run_cli, "preflight-apis-enabled")
    assert status_of(doc, "container-api-disabled") == "pass"
