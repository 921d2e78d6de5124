"""The execution-api-unreachable check (Airflow 3 task pods can reach the api-server's Execution API):
its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, findings_of, status_of
from checktools import _check, _cmds, _copy, _edit, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_execution_api_blocked_by_network_policy(doc):
    d = doc("execution-api-netpol-af3")
    f = _one(d, "execution-api-unreachable", "Service", "airflow-api-server")
    ev = _ev(f)
    assert "NetworkPolicy airflow-api-server-policy selects the api-server pods" in ev
    assert "'kubernetes.io/metadata.name': 'ingress-nginx'" in ev and "does not admit the task pods" in ev
    assert "1 ready endpoint(s) of 1" in ev and "httpx.ConnectTimeout: timed out" in ev
    [apply] = [c for c in f["remediation"]["commands"] if c.endswith("| kubectl apply -f -")]
    assert '"podSelector":{"matchLabels":{"kubernetes_executor":"True","release":"airflow"}}' in apply
    assert "\n" not in apply


def test_execution_api_without_ready_endpoints_links_the_crashing_api_server(doc):
    d = doc("component-crashloop-af3")
    f = _one(d, "execution-api-unreachable", "Service", "airflow-api-server")
    api = _pod("component-crashloop-af3", "api-server")
    assert "0 ready endpoint(s) of 1" in _ev(f) and "httpx.ConnectError: [Errno 111] Connection refused" in _ev(f)
    assert f["caused_by"] == [f"component-crashloop:Pod/airflow/{api}"]
    assert "kubectl get endpointslices --namespace airflow -l kubernetes.io/service-name=airflow-api-server" in _cmds(f)


def test_execution_api_passes_when_reachable_and_skips_airflow_2(doc):
    for name in ("healthy-af3-k8s-wi", "jwt-secret-mismatch-af3"):
        assert status_of(doc(name), "execution-api-unreachable") == "pass", name
    assert _check(doc("healthy-af2-celery"), "execution-api-unreachable")[:2] == (
        "skip", "no Execution API: Airflow 2 (task pods talk to the Execution API from Airflow 3 on)")


def test_execution_api_url_missing_falls_back_to_localhost(run_cli, tmp_path):
    root = _copy(tmp_path, "healthy-af3-k8s-wi")

    def drop_url(body):
        for cm in body["items"]:
            if cm["metadata"]["name"] == "airflow-config":
                cm["data"]["airflow.cfg"] = "\n".join(ln for ln in cm["data"]["airflow.cfg"].splitlines()
                                                      if not ln.startswith("execution_api_server_url")) + "\n"
    _edit(root, "k8s/api/v1/namespaces/airflow/configmaps.json", drop_url)
    _, d = doctor_json(run_cli, root, "--check", "execution-api-unreachable")
    [f] = findings_of(d, "execution-api-unreachable")
    assert "missing or points at localhost" in f["title"]
    assert "Airflow falls back to http://localhost:8080/execution/" in _ev(f)
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set-string "
            "config.core.execution_api_server_url=http://airflow-api-server.airflow.svc.cluster.local:8080/execution/"
            ) in _cmds(f)


def test_execution_api_url_without_the_execution_path(run_cli, tmp_path):
    root = _copy(tmp_path, "healthy-af3-k8s-wi")

    def bad_path(body):
        for cm in body["items"]:
            if cm["metadata"]["name"] == "airflow-config":
                cm["data"]["airflow.cfg"] = cm["data"]["airflow.cfg"].replace(
                    "execution_api_server_url = http://airflow-api-server:8080/execution/",
                    "execution_api_server_url = http://airflow-api-server:8080/")
    _edit(root, "k8s/api/v1/namespaces/airflow/configmaps.json", bad_path)
    _, d = doctor_json(run_cli, root, "--check", "execution-api-unreachable")
    [f] = findings_of(d, "execution-api-unreachable")
    assert "does not end in /execution/" in _ev(f)
    assert "config.core.execution_api_server_url=http://airflow-api-server.airflow.svc.cluster.local:8080/execution/" \
        in _cmds(f)
