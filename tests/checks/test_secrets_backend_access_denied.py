"""secrets-backend-access-denied: the Secret Manager backend's identity may not read its secrets."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of

CHECK = "secrets-backend-access-denied"
GSA = "airflow@acme-data-prod.iam.gserviceaccount.com"


def test_no_grant_on_project_or_secrets_is_one_error_on_the_gsa_with_per_secret_grants(run_cli):
    code, doc = doctor_json(run_cli, "secrets-backend-access-denied")
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("ServiceAccount", GSA)
    ev = f["evidence"]
    assert f"project acme-data-prod IAM policy: no role with secretmanager.versions.access for serviceAccount:{GSA}" in ev
    assert ("3 of 3 secret(s) under the backend's prefixes (airflow-connections-, airflow-variables-, airflow-config-) "
            "grant it nothing: airflow-connections-slack_alerts, airflow-connections-warehouse_db, "
            "airflow-variables-env_name") in ev
    assert any(e.startswith("log of warehouse-load-load-orders-") and "No access for Secret ID "
               "airflow-connections-warehouse_db" in e for e in ev)
    assert "billing-api-token" not in "\n".join(ev)   # outside the prefixes
    assert f["remediation"]["commands"] == [
        f"gcloud secrets add-iam-policy-binding {s} --project acme-data-prod --member=serviceAccount:{GSA} "
        "--role=roles/secretmanager.secretAccessor"
        for s in ("airflow-connections-slack_alerts", "airflow-connections-warehouse_db", "airflow-variables-env_name")]


def test_secret_level_grants_on_every_secret_under_the_prefixes_pass(run_cli):
    code, doc = doctor_json(run_cli, "secrets-backend-secret-level-grants")
    assert status_of(doc, CHECK) == "pass"
    assert code == 0


def test_a_project_level_grant_passes_without_reading_secrets(run_cli):
    # api-disabled-wi: the backend is on, the GSA holds roles/secretmanager.secretAccessor on the project,
    # and no secret list was collected (none is needed)
    _code, doc = doctor_json(run_cli, "api-disabled-wi")
    assert status_of(doc, CHECK) == "pass"


def test_not_applicable_without_the_backend(run_cli):
    _code, doc = doctor_json(run_cli, "healthy-af3-k8s-wi")
    assert status_of(doc, CHECK) == "skip"


def test_key_file_credentials_are_not_judged_here(run_cli):
    _code, doc = doctor_json(run_cli, "secrets-backend-key-path-unmounted")
    assert status_of(doc, CHECK) == "skip"
    assert "key" in next(c["reason"] for c in doc["checks"] if c["id"] == CHECK)


def test_secrets_in_another_project_are_judged_on_that_projects_policy(run_cli):
    """backend_kwargs project_id acme-shared-secrets: the GSA of acme-data-prod holds the accessor role
    there (its project policy, read as sm_project_iam): a pass, though acme-data-prod grants nothing."""
    _code, doc = doctor_json(run_cli, "secrets-backend-shared-project")
    assert status_of(doc, CHECK) == "pass"


def test_a_denial_in_another_project_is_granted_in_that_project(run_cli, tmp_path):
    from checktools import _copy, _edit

    root = _copy(tmp_path, "secrets-backend-shared-project")

    def no_grant(body: dict) -> None:
        body["bindings"] = [b for b in body["bindings"] if b["role"] != "roles/secretmanager.secretAccessor"]
    _edit(root, "gcp/cloudresourcemanager/v3/projects/acme-shared-secrets:getIamPolicy.json", no_grant)
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert "project acme-shared-secrets IAM policy: no role with secretmanager.versions.access for "\
           "serviceAccount:airflow@acme-data-prod.iam.gserviceaccount.com" in f["evidence"]
    assert f["remediation"]["commands"] == [
        f"gcloud secrets add-iam-policy-binding {s} --project acme-shared-secrets "
        "--member=serviceAccount:airflow@acme-data-prod.iam.gserviceaccount.com "
        "--role=roles/secretmanager.secretAccessor"
        for s in ("airflow-connections-warehouse_db", "airflow-connections-slack_alerts", "airflow-variables-env_name")]
