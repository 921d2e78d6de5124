"""Airflow configuration as Airflow itself resolves it for one component.

Sources, in Airflow's order: environment variables of the component's container
(``AIRFLOW__SECTION__KEY``, then its ``_CMD`` / ``_SECRET`` variants) before the ``airflow.cfg``
file of the chart's ``<release>-config`` ConfigMap; for each, the current key before its
deprecated name (``[core] remote_logging`` → ``[logging] remote_logging`` in Airflow 2.0,
``[core] sql_alchemy_conn`` → ``[database]`` in 2.3, ``[kubernetes]`` → ``[kubernetes_executor]``
in 2.5, ``[webserver] secret_key`` → ``[api] secret_key`` in 3.0).
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass

_LOGGING_MOVED = (
    "remote_logging", "remote_base_log_folder", "remote_log_conn_id", "encrypt_s3_logs",
    "google_key_path", "base_log_folder", "logging_level", "fab_logging_level", "logging_config_class",
    "colored_console_log", "task_log_reader", "log_format", "log_filename_template",
    "dag_processor_manager_log_location", "delete_local_logs",
)
_DATABASE_MOVED = (
    "sql_alchemy_conn", "sql_engine_encoding", "sql_alchemy_pool_enabled", "sql_alchemy_pool_size",
    "sql_alchemy_max_overflow", "sql_alchemy_pool_recycle", "sql_alchemy_pool_pre_ping",
    "sql_alchemy_schema", "sql_alchemy_connect_args", "load_default_connections", "max_db_retries",
)


def deprecated_names(section: str, key: str) -> list[tuple[str, str]]:
    """Older (section, key) names that Airflow still reads for ``section.key``."""
    out = []
    if section == "logging" and key in _LOGGING_MOVED:
        out.append(("core", key))
    if section == "database" and key in _DATABASE_MOVED:
        out.append(("core", key))
    if section == "kubernetes_executor":
        out.append(("kubernetes", key))
    if section == "api" and key in ("secret_key", "base_url", "workers", "port", "host"):
        out.append(("webserver", key if key != "port" else "web_server_port"))
    if section == "dag_processor" and key == "refresh_interval":
        out.append(("scheduler", "dag_dir_list_interval"))
    return out


@dataclass(frozen=True)
class Value:
    """A resolved option. ``value`` is None when it is only known to come from a Secret or a
    command (the doctor does not read them); ``source`` says where it came from."""

    value: str | None
    source: str                # "env AIRFLOW__LOGGING__REMOTE_LOGGING", "airflow.cfg [logging]", ...
    opaque: bool = False       # set from a Secret / command: present, value unknown


class AirflowConfig:
    def __init__(self, cfg_text: str | None, env: dict[str, Value] | None = None,
                 cfg_name: str = "airflow.cfg") -> None:
        self.cfg_name = cfg_name
        self.env = env or {}
        self.parser = configparser.ConfigParser(interpolation=None, strict=False,
                                                delimiters=("=",), comment_prefixes=("#", ";"),
                                                inline_comment_prefixes=None)
        self.parse_error: str | None = None
        if cfg_text:
            try:
                self.parser.read_string(cfg_text)
            except configparser.Error as e:
                self.parse_error = str(e).splitlines()[0]

    def lookup(self, section: str, key: str) -> Value | None:
        names = [(section, key)] + deprecated_names(section, key)
        for s, k in names:
            base = f"AIRFLOW__{s.upper()}__{k.upper()}"
            for suffix in ("", "_CMD", "_SECRET"):
                v = self.env.get(base + suffix)
                if v is not None:
                    if suffix:
                        return Value(None, f"env {base + suffix}", opaque=True)
                    return v
        for s, k in names:
            if self.parser.has_option(s, k):
                return Value(self.parser.get(s, k).strip(), f"{self.cfg_name} [{s}] {k}")
            for suffix in ("_cmd", "_secret"):
                if self.parser.has_option(s, k + suffix):
                    return Value(None, f"{self.cfg_name} [{s}] {k + suffix}", opaque=True)
        return None

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        v = self.lookup(section, key)
        if v is None or v.value is None:
            return default
        return v.value

    def getboolean(self, section: str, key: str, default: bool = False) -> bool:
        v = self.get(section, key)
        if v is None:
            return default
        return v.strip().strip("'\"").lower() in ("true", "t", "1", "yes", "y", "on")

    def source(self, section: str, key: str) -> str | None:
        v = self.lookup(section, key)
        return v.source if v else None


def env_of_container(container: dict) -> dict[str, Value]:
    """``AIRFLOW__*`` variables of a container spec; secret-backed ones are opaque."""
    out: dict[str, Value] = {}
    env = container.get("env") if isinstance(container, dict) else None
    for e in env if isinstance(env, list) else []:
        if not isinstance(e, dict):
            continue
        name = e.get("name")
        if not isinstance(name, str) or not name.startswith("AIRFLOW"):
            continue
        if "value" in e:
            v = e.get("value")
            out[name] = Value(v if isinstance(v, str) else ("" if v is None else str(v)), f"env {name}")
        elif isinstance(e.get("valueFrom"), dict):
            vf = e["valueFrom"]
            ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
            ref = ref if isinstance(ref, dict) else {}
            what = "Secret" if "secretKeyRef" in vf else "ConfigMap" if "configMapKeyRef" in vf else "field"
            out[name] = Value(None, f"env {name} (from {what} {ref.get('name', '?')}/{ref.get('key', '?')})",
                              opaque=True)
    return out
