"""The liveness-probe-restarts check (Airflow containers are not restarted by their liveness probes):
its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import _cmds, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_liveness_repeated_kills_are_an_error_with_probe_and_cpu_fix(doc):
    d = doc("component-crashloop-af3")
    f = _one(d, "liveness-probe-restarts", "Pod", "airflow-triggerer-0")
    assert f["severity"] == "error"
    ev = _ev(f)
    assert "event Normal Killing (x4, kubelet): Container triggerer failed liveness probe, will be restarted" in ev
    assert "event Warning Unhealthy (x18, kubelet): Liveness probe failed:" in ev
    assert "--job-type TriggererJob" in ev and "timeoutSeconds 20" in ev and "requests cpu 100m" in ev
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set triggerer.livenessProbe.timeoutSeconds=60 --set triggerer.livenessProbe.failureThreshold=10 "
            "--set triggerer.resources.requests.cpu=1") in _cmds(f)


def test_liveness_single_kill_of_a_recovered_webserver_is_a_warning(doc):
    d = doc("celery-worker-oom-af2")
    web = _pod("celery-worker-oom-af2", "webserver")
    f = _one(d, "liveness-probe-restarts", "Pod", web)
    assert f["severity"] == "warning"
    assert "httpGet /health port 8080" in _ev(f) and "HTTP endpoint did not answer" in f["message"]
    assert "--set webserver.startupProbe.failureThreshold=30" in _cmds(f)
    assert f"kubectl logs {web} --namespace data-pipelines --container webserver --previous" in _cmds(f)


def test_liveness_does_not_claim_crashes_or_oom_restarts(doc):
    d = doc("component-crashloop-af3")
    names = {f["resource"]["name"] for f in findings_of(d, "liveness-probe-restarts")}
    assert names == {"airflow-triggerer-0"}
    assert status_of(doc("healthy-af3-k8s-wi"), "liveness-probe-restarts") == "pass"
