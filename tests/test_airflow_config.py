"""Airflow configuration resolves as Airflow resolves it: env before file, current key before
its deprecated name, secrets and commands opaque."""
from __future__ import annotations

from airflow_gke.airflow_config import AirflowConfig, env_of_container

CFG = """\
[core]
executor = KubernetesExecutor
remote_logging = True
remote_base_log_folder = gs://old-style/logs
sql_alchemy_conn = postgresql://airflow:pw@db/airflow

[logging]
remote_logging = False

[kubernetes]
namespace = legacy-ns
"""


def cfg(env=None):
    container = {"env": [{"name": k, "value": v} if not isinstance(v, dict) else {"name": k, "valueFrom": v}
                         for k, v in (env or {}).items()]}
    return AirflowConfig(CFG, env_of_container(container))


def test_file_current_key_beats_deprecated_key():
    c = cfg()
    assert c.getboolean("logging", "remote_logging") is False
    assert c.source("logging", "remote_logging") == "airflow.cfg [logging] remote_logging"


def test_deprecated_core_key_is_read_when_current_absent():
    c = cfg()
    assert c.get("logging", "remote_base_log_folder") == "gs://old-style/logs"
    assert c.source("logging", "remote_base_log_folder") == "airflow.cfg [core] remote_base_log_folder"
    assert c.get("database", "sql_alchemy_conn") == "postgresql://airflow:pw@db/airflow"
    assert c.get("kubernetes_executor", "namespace") == "legacy-ns"


def test_env_beats_file_and_deprecated_env_beats_file():
    c = cfg({"AIRFLOW__LOGGING__REMOTE_LOGGING": "True", "AIRFLOW__CORE__REMOTE_BASE_LOG_FOLDER": "gs://env/x"})
    assert c.getboolean("logging", "remote_logging") is True
    assert c.source("logging", "remote_logging") == "env AIRFLOW__LOGGING__REMOTE_LOGGING"
    assert c.get("logging", "remote_base_log_folder") == "gs://env/x"


def test_secret_and_cmd_values_are_opaque():
    c = cfg({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": {"secretKeyRef": {"name": "airflow-metadata", "key": "connection"}},
             "AIRFLOW__CORE__FERNET_KEY_CMD": "cat /secret"})
    v = c.lookup("database", "sql_alchemy_conn")
    assert v.opaque and v.value is None and "Secret airflow-metadata/connection" in v.source
    f = c.lookup("core", "fernet_key")
    assert f.opaque and f.source == "env AIRFLOW__CORE__FERNET_KEY_CMD"


def test_broken_ini_does_not_raise():
    c = AirflowConfig("no section header\nkey = value\n")
    assert c.parse_error and c.get("core", "executor") is None
