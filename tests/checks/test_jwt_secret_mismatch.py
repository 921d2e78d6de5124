"""The jwt-secret-mismatch check (Airflow 3 components sign and verify task tokens with the same JWT
secret): its findings on the fixture scenarios (resource, evidence, commands, links) and where it
stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, findings_of, status_of
from checktools import _check, _cmds, _copy, _edit, _ev, _one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_jwt_api_server_reads_another_secret(doc):
    d = doc("jwt-secret-mismatch-af3")
    f = _one(d, "jwt-secret-mismatch", "HelmRelease", "airflow")
    ev = _ev(f)
    assert "AIRFLOW__API_AUTH__JWT_SECRET from Secret airflow-jwt-v2 key jwt-secret" in ev
    assert "AIRFLOW__API_AUTH__JWT_SECRET from Secret airflow-jwt-secret key jwt-secret" in ev
    assert "verification failed" in ev and "ServerResponseError" in ev
    cmds = _cmds(f)
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set jwtSecretName=airflow-jwt-secret-pinned") in cmds
    assert "kubectl rollout restart deployment,statefulset --namespace airflow -l release=airflow" in cmds


def test_jwt_passes_on_one_secret_and_skips_airflow_2(doc):
    for name in ("healthy-af3-k8s-wi", "execution-api-netpol-af3"):
        assert status_of(doc(name), "jwt-secret-mismatch") == "pass", name
    assert _check(doc("healthy-af2-celery"), "jwt-secret-mismatch")[:2] == (
        "skip", "no task JWTs: Airflow 2 ([api_auth] jwt_secret signs task tokens from Airflow 3 on)")


def test_jwt_missing_on_the_api_server_is_a_mismatch(run_cli, tmp_path):
    root = _copy(tmp_path, "healthy-af3-k8s-wi")

    def drop_env(body):
        for p in body["items"]:
            if p["metadata"]["labels"].get("component") == "api-server":
                c = p["spec"]["containers"][0]
                c["env"] = [e for e in c["env"] if e["name"] != "AIRFLOW__API_AUTH__JWT_SECRET"]
    _edit(root, "k8s/api/v1/namespaces/airflow/pods.json", drop_env)
    _, d = doctor_json(run_cli, root, "--check", "jwt-secret-mismatch")
    [f] = findings_of(d, "jwt-secret-mismatch")
    assert "AIRFLOW__API_AUTH__JWT_SECRET not set and no [api_auth] jwt_secret in airflow.cfg" in _ev(f)
    assert "Some components have no JWT secret at all." in f["message"]
