"""The component-crashloop check (Airflow components run without crash-looping): its findings on the
fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import _cmds, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_crashloop_oomkilled_api_server_doubles_its_memory(doc):
    d = doc("component-crashloop-af3")
    api = _pod("component-crashloop-af3", "api-server")
    f = _one(d, "component-crashloop", "Pod", api)
    assert f["severity"] == "error" and f["resource"]["namespace"] == "airflow"
    assert "crash-looping" in f["title"] and "OOMKilled" in f["title"]
    ev = _ev(f)
    assert "container api-server waiting (CrashLoopBackOff), restartCount 9" in ev
    assert "lastState.terminated: exitCode 137, reason OOMKilled" in ev
    assert "event Warning BackOff (x31, kubelet)" in ev
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set apiServer.resources.limits.memory=4Gi --set apiServer.resources.requests.memory=4Gi") in _cmds(f)


def test_crashloop_import_error_quotes_the_log_and_checks_the_module_in_the_image(doc):
    d = doc("component-crashloop-af3")
    dp = _pod("component-crashloop-af3", "dag-processor")
    f = _one(d, "component-crashloop", "Pod", dp)
    assert "ModuleNotFoundError: No module named 'airflow.providers.git'" in f["title"]
    assert "previous log dag-processor: ModuleNotFoundError: No module named 'airflow.providers.git'" in _ev(f)
    assert (f"kubectl logs {dp} --namespace airflow --container dag-processor --previous") in _cmds(f)
    assert ("kubectl run import-check --rm -i --restart=Never --namespace airflow --image=apache/airflow:3.1.3 "
            "--command -- python -c 'import airflow.providers.git'") in _cmds(f)


def test_crashloop_restarts_by_the_liveness_probe_link_to_that_finding(doc):
    d = doc("component-crashloop-af3")
    f = _one(d, "component-crashloop", "Pod", "airflow-triggerer-0")
    assert "restarted 4 times" in f["title"] and "liveness probe" in f["title"]
    assert f["caused_by"] == ["liveness-probe-restarts:Pod/airflow/airflow-triggerer-0"]
    assert "kubectl rollout restart statefulset airflow-triggerer --namespace airflow" in _cmds(f) or \
        "triggerer.livenessProbe.timeoutSeconds=60" in _cmds(f)


def test_crashloop_one_old_restart_is_not_a_loop(doc):
    d = doc("component-crashloop-af3")
    sch = _pod("component-crashloop-af3", "scheduler")
    assert not [f for f in findings_of(d, "component-crashloop") if f["resource"]["name"] == sch]


def test_crashloop_cannot_start_without_the_external_secret_links_to_it(doc):
    d = doc("external-secret-not-synced")
    # four pods that never ran (restartCount 0) for one missing Secret: one "cannot start" finding
    # on the Secret, not four crash loops
    [f] = findings_of(d, "component-crashloop")
    assert f["resource"]["kind"] == "Secret" and f["resource"]["name"] == "airflow-metadata"
    assert f["title"] == "4 pods (api-server, dag-processor, scheduler, triggerer) cannot start: Secret airflow-metadata not found"
    assert "crash" not in f["title"].lower()
    assert 'wait-for-airflow-migrations state.waiting.message: secret "airflow-metadata" not found' in _ev(f)
    assert _ev(f).count("restartCount 0") == 4
    assert f["caused_by"] == ["external-secret-not-synced:ExternalSecret/airflow/airflow-metadata"]
    assert "kubectl describe externalsecret airflow-metadata --namespace airflow" in _cmds(f)


def test_crashloop_on_rbac_403_links_to_executor_rbac(doc):
    d = doc("executor-rbac-forbidden-af2")
    sch = _pod("executor-rbac-forbidden-af2", "scheduler")
    f = _one(d, "component-crashloop", "Pod", sch)
    assert f["caused_by"] == ["executor-rbac-forbidden:ServiceAccount/data-pipelines/af2-airflow-scheduler"]
    assert "kubernetes.client.exceptions.ApiException: (403)" in _ev(f)


def test_crashloop_passes_on_healthy_installs(doc):
    for name in ("healthy-af3-k8s-wi", "celery-worker-oom-af2"):
        assert status_of(doc(name), "component-crashloop") == "pass", name
