"""Redaction where data enters: what the doctor masks, and what it must keep readable."""
from __future__ import annotations

from airflow_gke.redact import MASK, Redactor


def test_airflow_cfg_masks_sensitive_keys_and_keeps_ids():
    r = Redactor()
    out = r.ini("[database]\nsql_alchemy_conn = postgresql://a:hunter2@db/af\n[core]\nfernet_key = abc=\n"
                "[logging]\nremote_log_conn_id = google_cloud_default\nremote_base_log_folder = gs://b/l\n"
                "[api]\nsecret_key = k\n[celery]\nbroker_url = redis://:pw@redis:6379/0\n", "cfg")
    assert "hunter2" not in out and "abc=" not in out and "pw@" not in out and "secret_key = k" not in out
    assert "remote_log_conn_id = google_cloud_default" in out and "gs://b/l" in out
    assert any("fernet_key" in m for m in r.masked) and all("hunter2" not in m for m in r.masked)


def test_env_values_of_connections_variables_commands_and_uris():
    r = Redactor()
    pod = {"metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...pw...}"}},
           "spec": {"containers": [{"name": "base", "env": [
               {"name": "AIRFLOW_CONN_WAREHOUSE", "value": "postgres://u:p4ss@h/db"},
               {"name": "AIRFLOW_VAR_API_TOKEN", "value": "tok123"},
               {"name": "AIRFLOW__CORE__FERNET_KEY", "value": "fernet-value"},
               {"name": "AIRFLOW__SECRETS__BACKEND_KWARGS", "value": '{"token": "tkn-abcdef"}'},
               {"name": "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "value": "gs://bucket/logs"},
               {"name": "DB_URL", "value": "mysql://root:rootpw@mysql:3306/x"},
               {"name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "valueFrom": {"secretKeyRef": {"name": "m", "key": "c"}}},
           ], "args": ["--password=argpw"]}]}}
    r.workload(pod)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    text = str(pod)
    for secret in ("p4ss", "tok123", "fernet-value", "tkn-abcdef", "rootpw", "argpw", "...pw..."):
        assert secret not in text
    assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "gs://bucket/logs"
    assert env["DB_URL"] == f"mysql://root:{MASK}@mysql:3306/x"
    assert "valueFrom" in pod["spec"]["containers"][0]["env"][6]


def test_log_lines_lose_credentials_keep_diagnosis():
    r = Redactor()
    line = ('psycopg2.OperationalError: connection to server at "10.0.0.3", port 5432 failed: FATAL: password '
            'authentication failed for user "airflow" password=Sup3rS3cret Authorization: Bearer ya29.a0AfH6SMBx1234567890abc')
    out = r.log(line)
    assert "Sup3rS3cret" not in out and "ya29.a0AfH6SMBx1234567890abc" not in out
    assert "password authentication failed" in out and "10.0.0.3" in out


def test_pod_template_yaml_in_configmap():
    r = Redactor()
    cm = {"metadata": {"name": "airflow-config"}, "data": {
        "pod_template_file.yaml": "spec:\n  containers:\n    - name: base\n      env:\n"
                                  "        - name: AIRFLOW_CONN_X\n          value: http://u:pw1@x\n"
                                  "        - name: AIRFLOW__CORE__FERNET_KEY\n          value: 'fk'\n",
        "webserver_secret_key": "plain-secret"}}
    r.configmap(cm)
    text = str(cm)
    assert "pw1" not in text and "'fk'" not in text and "plain-secret" not in text


def test_free_text_rules_stay_on_the_line_and_spare_prose():
    r = Redactor()
    tpl = "volumes:\n- name: git-sync-ssh-key\n  secret:\n    secretName: airflow-ssh-secret\n"
    assert r.text(tpl) == tpl            # a YAML mapping opened by `secret:` is not a secret
    assert r.text("Invalid auth token: Signature verification failed") == \
        "Invalid auth token: Signature verification failed"
    assert r.text('{"password": "two words", "user": "bob"}') == '{"password": ' + MASK + ', "user": "bob"}'
    assert r.text("token: abcdef123456") == "token: " + MASK
