"""secrets-backend-kwargs-invalid: backend_kwargs of the Secret Manager backend cannot work."""
from __future__ import annotations

import json
import shutil

from conftest import doctor_json, findings_of, scenario, status_of

CHECK = "secrets-backend-kwargs-invalid"
BACKEND = "airflow.providers.google.cloud.secrets.secret_manager.CloudSecretManagerBackend"


def _with_kwargs(tmp_path, kwargs: str, base: str = "api-disabled-wi"):
    """A copy of scenario ``base`` (which uses the backend) with another backend_kwargs line."""
    dest = tmp_path / "snap"
    shutil.copytree(scenario(base), dest)
    p = dest / "k8s/api/v1/namespaces/airflow/configmaps.json"
    doc = json.loads(p.read_text())
    for cm in doc["items"]:
        cfg = (cm.get("data") or {}).get("airflow.cfg")
        if cfg:
            lines = [ln if not ln.startswith("backend_kwargs") else f"backend_kwargs = {kwargs}"
                     for ln in cfg.splitlines()]
            assert lines != cfg.splitlines()
            cm["data"]["airflow.cfg"] = "\n".join(lines) + "\n"
    p.write_text(json.dumps(doc))
    return dest


def test_key_path_no_volume_provides_is_one_error_on_the_config_map(run_cli):
    code, doc = doctor_json(run_cli, "secrets-backend-key-path-unmounted")
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["namespace"], f["resource"]["name"]) == (
        "ConfigMap", "airflow", "airflow-config")
    assert f["title"] == ("The Secret Manager backend's gcp_key_path /opt/airflow/secrets/gcp-key.json does not exist "
                          "in scheduler, task pods, api-server, dag-processor, triggerer")
    ev = f["evidence"]
    assert ev[0] == "airflow.cfg [secrets] backend_kwargs: gcp_key_path = /opt/airflow/secrets/gcp-key.json"
    assert any(e.startswith("task pods: no volume of the task pod container is mounted at or above "
                            "/opt/airflow/secrets (its mounts: /opt/airflow/airflow.cfg, /opt/airflow/dags") for e in ev)
    assert f["remediation"]["commands"][-1] == (
        "helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set-json "
        "'config.secrets.backend_kwargs=\"{\\\"connections_prefix\\\": \\\"airflow-connections\\\", "
        "\\\"variables_prefix\\\": \\\"airflow-variables\\\"}\"'")


def test_valid_kwargs_pass_and_no_backend_is_not_applicable(run_cli):
    _code, doc = doctor_json(run_cli, "api-disabled-wi")
    assert status_of(doc, CHECK) == "pass"
    _code, doc = doctor_json(run_cli, "healthy-af3-k8s-wi")
    assert status_of(doc, CHECK) == "skip"
    assert "not applicable" in next(c["reason"] for c in doc["checks"] if c["id"] == CHECK)


def test_a_python_dict_is_invalid_json_and_the_fix_is_the_same_settings_in_json(run_cli, tmp_path):
    snap = _with_kwargs(tmp_path, "{'connections_prefix': 'conn', 'sep': '_', 'project_id': 'acme-secrets'}")
    _code, doc = doctor_json(run_cli, snap)
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert f["title"] == "[secrets] backend_kwargs of the Secret Manager backend is not valid JSON"
    assert any(e.startswith("not valid JSON: Expecting property name enclosed in double quotes") for e in f["evidence"])
    assert f["remediation"]["commands"][-1].endswith(
        "--set-json 'config.secrets.backend_kwargs=\"{\\\"connections_prefix\\\": \\\"conn\\\", \\\"sep\\\": \\\"_\\\", "
        "\\\"project_id\\\": \\\"acme-secrets\\\"}\"'")


def test_a_key_in_gcp_keyfile_dict_is_a_warning_even_as_the_snapshot_masks_it(run_cli, tmp_path):
    # what the snapshot holds after redaction: the private key masked in place (not JSON by itself)
    kwargs = ('{"connections_prefix": "airflow-connections", "gcp_keyfile_dict": {"type": "service_account", '
              '"project_id": "acme-data-prod", "private_key_id": "3f1c0aa6d2", "private_key": <redacted>, '
              '"client_email": "airflow-secrets@acme-data-prod.iam.gserviceaccount.com"}}')
    _code, doc = doctor_json(run_cli, _with_kwargs(tmp_path, kwargs))
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "warning"
    assert "not valid JSON" not in "\n".join(f["evidence"])
    assert f["evidence"][0] == ("airflow.cfg [secrets] backend_kwargs: backend_kwargs has gcp_keyfile_dict for "
                                "airflow-secrets@acme-data-prod.iam.gserviceaccount.com (the key itself is masked "
                                "and never shown)")
    cmds = f["remediation"]["commands"]
    assert cmds[-1] == ("gcloud iam service-accounts keys delete 3f1c0aa6d2 "
                        "--iam-account airflow-secrets@acme-data-prod.iam.gserviceaccount.com")
    assert "project_id" in cmds[1] and "gcp_keyfile_dict" not in cmds[1]


def test_a_mounted_key_file_passes(run_cli, tmp_path):
    snap = _with_kwargs(tmp_path, '{"gcp_key_path": "/opt/airflow/logs/key.json"}')   # under a mounted volume
    _code, doc = doctor_json(run_cli, snap)
    assert status_of(doc, CHECK) == "pass"


def test_a_project_id_secret_manager_cannot_find_is_an_error_and_the_fix_drops_it(run_cli):
    code, doc = doctor_json(run_cli, "secrets-backend-project-id-typo")
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["title"] == "The Secret Manager backend's project_id acme-data-prd names no project"
    assert f["evidence"][:2] == [
        "airflow.cfg [secrets] backend_kwargs: project_id = acme-data-prd",
        "Secret Manager answered HTTP 403 CONSUMER_INVALID for project acme-data-prd (Permission denied on resource "
        "project acme-data-prd.): the project cannot be found, or was deleted"]
    assert ("project acme-data-prod (the pods' own) holds 3 secret(s) under the backend's prefixes "
            "(airflow-connections-, airflow-variables-, airflow-config-)") in f["evidence"]
    cmd = f["remediation"]["commands"][-1]
    assert "project_id" not in cmd and "airflow-connections" in cmd   # dropped, the prefixes kept
    # the other Secret Manager checks leave that project to this finding
    st = {c["id"]: c for c in doc["checks"]}
    assert st["secrets-backend-access-denied"]["status"] == "skip"
    assert "CONSUMER_INVALID" in st["secrets-backend-access-denied"]["reason"]


def test_a_project_resource_name_is_not_a_project_id(run_cli, tmp_path):
    root = _with_kwargs(tmp_path, '{"connections_prefix": "airflow-connections", "project_id": "projects/acme-data-prod"}',
                        base="secrets-backend-secret-level-grants")
    _code, doc = doctor_json(run_cli, root)
    (f,) = findings_of(doc, CHECK)
    assert f["title"] == "The Secret Manager backend's project_id projects/acme-data-prod names no project"
    assert "'projects/acme-data-prod' is not a project id" in f["evidence"][1]
    assert "project acme-data-prod (the pods' own) holds 3 secret(s)" in "\n".join(f["evidence"])
    assert "project_id" not in f["remediation"]["commands"][-1]


def test_a_bare_403_for_the_project_is_undecided_and_says_what_settles_it(run_cli, tmp_path):
    root = _with_kwargs(tmp_path, '{"connections_prefix": "airflow-connections", "project_id": "acme-data-prd"}',
                        base="secrets-backend-project-id-typo")
    err = root / "gcp/secretmanager/v1/projects/acme-data-prd/secrets.error.json"
    body = json.loads(err.read_text())
    inner = body.get("body", body)
    inner["error"]["message"] = ("Permission 'secretmanager.secrets.list' denied for resource "
                                 "'projects/acme-data-prd' (or it may not exist).")
    inner["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                                  "domain": "secretmanager.googleapis.com",
                                  "metadata": {"permission": "secretmanager.secrets.list",
                                               "resource": "projects/acme-data-prd"}}]
    err.write_text(json.dumps(body))
    _code, doc = doctor_json(run_cli, root)
    assert findings_of(doc, CHECK) == []
    c = next(c for c in doc["checks"] if c["id"] == CHECK)
    assert c["status"] == "error"
    assert "project_id acme-data-prd" in c["reason"] and "gcloud projects describe acme-data-prd" in c["reason"]


def test_an_empty_project_id_is_the_pods_own_project_and_passes(run_cli, tmp_path):
    # the provider only uses project_id when it is set (`if project_id:`): "" means the credentials' project
    snap = _with_kwargs(tmp_path, '{"connections_prefix": "airflow-connections", "project_id": ""}')
    _code, doc = doctor_json(run_cli, snap)
    assert findings_of(doc, CHECK) == []
    assert status_of(doc, CHECK) == "pass"
