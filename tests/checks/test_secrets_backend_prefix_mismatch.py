"""secrets-backend-prefix-mismatch: the backend's prefix and sep match no secret while tasks cannot
find a connection."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit, report

CHECK = "secrets-backend-prefix-mismatch"
SHARED = "acme-shared-secrets"
LIST = f"gcp/secretmanager/v1/projects/{SHARED}/secrets.json"


def test_sep_mismatch_names_the_conn_id_the_secret_looked_up_and_the_nearest_names(run_cli):
    doc = report(run_cli, "secrets-backend-sep-mismatch")
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("ConfigMap", "airflow-config")
    ev = f["evidence"]
    assert ev[0].startswith("conn id warehouse_db: the backend looked up secret airflow-connections_warehouse_db in "
                            f"project {SHARED}; log of warehouse-load-load-orders-")
    assert "The conn_id `warehouse_db` isn't defined" in ev[0]
    assert "airflow.cfg [secrets] backend_kwargs: connections_prefix = 'airflow-connections', sep = '_'" in ev
    assert f"project {SHARED}: 223 secret(s), none named airflow-connections_..." in ev
    assert ("nearest existing secret name(s) for warehouse_db: airflow-connections-warehouse_db, "
            "airflow-connections-slack_alerts") in ev
    assert f["remediation"]["summary"].startswith("Set sep '-' in backend_kwargs: the secrets are named "
                                                  "airflow-connections-<conn_id>.")
    assert "(their secrets are named with it too: airflow-variables-env_name)" in f["remediation"]["summary"]
    assert f["remediation"]["commands"][-1] == (
        "helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set-json "
        "'config.secrets.backend_kwargs=\"{\\\"connections_prefix\\\": \\\"airflow-connections\\\", "
        "\\\"variables_prefix\\\": \\\"airflow-variables\\\", \\\"sep\\\": \\\"-\\\", "
        f"\\\"project_id\\\": \\\"{SHARED}\\\"}}\"'")


def test_secrets_under_the_prefix_mean_the_prefix_is_right(run_cli):
    # a conn id with no secret, while others sit under airflow-connections-: it lives elsewhere
    doc = report(run_cli, "secrets-backend-shared-project")
    assert status_of(doc, CHECK) == "pass"
    # the secret the backend looked up exists (access was refused: another check's cause)
    doc = report(run_cli, "secrets-backend-access-denied")
    assert status_of(doc, CHECK) == "pass"
    assert findings_of(doc, "secrets-backend-access-denied")


def test_the_list_unread_is_not_checked_never_a_pass(run_cli, tmp_path):
    root = _copy(tmp_path, "secrets-backend-sep-mismatch")
    (root / LIST).unlink()
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) not in ("pass", "fail")
    assert findings_of(doc, CHECK) == []


def test_no_similar_secret_gets_the_create_command_under_the_name_looked_up(run_cli, tmp_path):
    root = _copy(tmp_path, "secrets-backend-sep-mismatch")

    def only_other_teams(body: dict) -> None:
        body["secrets"] = [s for s in body["secrets"] if "/secrets/airflow-" not in s["name"]]
        body["totalSize"] = len(body["secrets"])
    _edit(root, LIST, only_other_teams)
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert not any(e.startswith("nearest existing") for e in f["evidence"])
    assert f["remediation"]["commands"] == [
        "# the value is the connection's URI or JSON (Airflow's secret format); nothing here reads it\n"
        "printf '%s' \"$CONNECTION_URI\" | gcloud secrets create airflow-connections_warehouse_db --project "
        f"{SHARED} --replication-policy=automatic --data-file=-"]


def test_a_project_that_does_not_exist_is_left_to_the_kwargs_check(run_cli):
    doc = report(run_cli, "secrets-backend-project-id-typo")
    assert status_of(doc, CHECK) == "skip"
    assert findings_of(doc, "secrets-backend-kwargs-invalid")
