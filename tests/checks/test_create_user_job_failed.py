"""create-user-job-failed: Airflow 3's create-user Job needs FAB (catalogue #47)."""
from __future__ import annotations

import json

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, report

CHECK = "create-user-job-failed"
FAB_DB = "airflow.providers.fab.auth_manager.models.db.FABDBManager"


def _steps(f: dict) -> list[str]:
    return [c for c in f["remediation"]["commands"] if not c.startswith("#")]


def test_fab_tables_missing_is_one_error_on_the_job_that_sets_the_db_manager(run_cli):
    doc = report(run_cli, "create-user-fab-tables-missing")
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("Job", "airflow-create-user")
    assert f["title"].startswith("FAB's tables were never created (ab_user does not exist)")
    assert f["evidence"][0].endswith('/create-user: psycopg2.errors.UndefinedTable: relation "ab_user" does not exist')
    assert ("[core] auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager; [database] "
            "external_db_managers = unset; Airflow 3.1.7, chart 1.19.0") in f["evidence"]
    assert _steps(f) == ["kubectl delete job airflow-create-user --namespace airflow",
                         "helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set "
                         f"config.database.external_db_managers={FAB_DB}"]
    assert [s["check"] for s in f["symptoms"]] == ["component-not-ready"]


def test_a_completed_create_user_job_passes(run_cli):
    doc = report(run_cli, "create-user-fab-ready-af3")
    assert status_of(doc, CHECK) == "pass"
    assert doc["findings"] == []


def test_simple_auth_manager_without_a_users_command_offers_both_ways(run_cli, tmp_path):
    snap = _copy(tmp_path, "create-user-fab-tables-missing")
    for log in snap.glob("k8s/api/v1/namespaces/airflow/pods/airflow-create-user-*/log/*.log"):
        log.write_text("Usage: airflow [-h] GROUP_OR_COMMAND ...\n\nairflow command error: argument GROUP_OR_COMMAND: "
                       "invalid choice: 'users' (choose from api-server, assets, backfill, cheat-sheet, config, "
                       "connections, dag-processor, dags, db, info, jobs, kubernetes, plugins, pools, providers, "
                       "scheduler, standalone, tasks, triggerer, variables, version), see help above.\n")
    cms = snap / "k8s/api/v1/namespaces/airflow/configmaps.json"
    body = json.loads(cms.read_text())
    cfg = next(i for i in body["items"] if i["metadata"]["name"] == "airflow-config")
    text = cfg["data"]["airflow.cfg"]
    assert "auth_manager = airflow.providers.fab" in text
    cfg["data"]["airflow.cfg"] = "\n".join(ln for ln in text.splitlines() if not ln.startswith("auth_manager")) + "\n"
    cms.write_text(json.dumps(body))
    _code, doc = doctor_json(run_cli, snap)
    (f,) = findings_of(doc, CHECK)
    assert f["title"].startswith("Airflow 3 runs SimpleAuthManager, which has no `airflow users` command")
    assert "[core] auth_manager = unset (Airflow 3: SimpleAuthManager)" in f["evidence"][-1]
    steps = _steps(f)
    assert "--set createUserJob.enabled=false --set config.core.simple_auth_manager_users=admin:admin" in steps[1]
    assert ("--set config.core.auth_manager=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager "
            f"--set config.database.external_db_managers={FAB_DB}") in steps[2]


def test_not_applicable_before_airflow_3(run_cli):
    assert status_of(report(run_cli, "healthy-af2-celery"), CHECK) == "skip"
