"""The served-logs-secret-key-mismatch check (Components share one secret key for served logs): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, status_of
from checktools import has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_served_logs_secret_key_mismatch(doc):
    f = one(doc("served-logs-key-split"), "served-logs-secret-key-mismatch")
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "Deployment", "namespace": "airflow", "name": "af2-webserver", "uri": None}
    ev = f["evidence"]
    assert has(ev, "webserver: [webserver] secret_key", "Secret af2-webserver-secret-key")
    assert has(ev, "triggerer: [webserver] secret_key", "Secret af2-webserver-secret-key")
    assert has(ev, "worker: [webserver] secret_key", "Secret af2-worker-env")
    cmds = f["remediation"]["commands"]
    assert any(c.startswith("kubectl create secret generic af2-webserver-secret --namespace airflow "
                            "--from-literal=webserver-secret-key=") for c in cmds)
    assert ("helm upgrade af2 apache-airflow/airflow --namespace airflow --reuse-values "
            "--set webserverSecretKeySecretName=af2-webserver-secret") in cmds
    assert ("kubectl rollout restart deployment,statefulset --namespace airflow -l release=af2,tier=airflow"
            ) in cmds


def test_served_logs_secret_key_shared(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "healthy-minimal"):
        assert status_of(doc(name), "served-logs-secret-key-mismatch") == "pass", name


def test_served_logs_403_in_the_ui_log_is_evidence_on_its_own(run_cli, tmp_path):
    """Same keys everywhere (healthy-af2-celery), but the webserver's log shows the log server refusing
    its signed request: still a mismatch (a regenerated Secret some pods started before)."""
    import json
    import shutil

    from conftest import scenario

    src = scenario("healthy-af2-celery")
    dst = tmp_path / "snap"
    shutil.copytree(src, dst)
    ns = json.loads((dst / "meta.json").read_text())["namespace"]
    pods = json.loads((dst / "k8s" / "api" / "v1" / "namespaces" / ns / "pods.json").read_text())["items"]
    web = next(p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("component") == "webserver")
    log = dst / "k8s" / "api" / "v1" / "namespaces" / ns / "pods" / web / "log" / "webserver.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    line = ("[2026-11-21T09:12:44.118+0000] {file_task_handler.py:560} ERROR - Could not read served logs: Client "
            "error '403 FORBIDDEN' for url 'http://10.52.0.14:8793/log/dag_id=etl/run_id=r1/task_id=t/attempt=1.log'")
    log.write_text("[2026-11-21T09:12:40.001+0000] {app.py:88} INFO - starting\n" + line + "\n")
    _code, d = doctor_json(run_cli, dst)
    f = one(d, "served-logs-secret-key-mismatch")
    assert f["resource"]["name"] == "af2-webserver"
    assert has(f["evidence"], f"log {web}/webserver:", "403 FORBIDDEN")
    assert "403" in f["message"] and "refused" in f["message"]
