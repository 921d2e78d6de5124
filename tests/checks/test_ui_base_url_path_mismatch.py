"""The ui-base-url-path-mismatch check (the webserver's probes and base_url agree on its path prefix):
its finding on the env-set base_url scenario (resource, evidence, command, the restarts it causes), its
look-alikes, and a plan."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import _check, _cmds, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_base_url_from_env_with_unprefixed_probes(doc):
    d = doc("webserver-base-url-env-af2")
    f = _one(d, "ui-base-url-path-mismatch", "Deployment", "af2-webserver")
    assert f["severity"] == "error"
    ev = _ev(f)
    assert ("[webserver] base_url = https://data.acme-data.example/airflow (env AIRFLOW__WEBSERVER__BASE_URL): the "
            "webserver serves under /airflow/") in ev
    assert "startupProbe httpGet /health, readinessProbe httpGet /health, livenessProbe httpGet /health" in ev
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in ev
    assert '"GET /health HTTP/1.1" 404' in ev
    assert _cmds(f).startswith("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
                               "--set-string config.webserver.base_url=https://data.acme-data.example/airflow\n")
    web = _pod("webserver-base-url-env-af2", component="webserver")
    probe = _one(d, "liveness-probe-restarts", "Pod", web)
    assert probe["caused_by"] == ["ui-base-url-path-mismatch:Deployment/data-pipelines/af2-webserver"]
    assert "timeoutSeconds" not in _cmds(probe)   # a longer probe budget does not fix a 404


def test_look_alikes_stay_silent(doc):
    assert status_of(doc("webserver-base-url-config-af2"), "ui-base-url-path-mismatch") == "pass"
    assert _check(doc("api-server-base-url-path-af3"), "ui-base-url-path-mismatch") == (
        "skip", "Airflow 3: the api-server answers its health endpoint with and without the base_url path; "
                "no Ingress routes to the api-server")
    assert status_of(doc("api-server-base-url-path-af3"), "execution-api-unreachable") == "pass"
    assert status_of(doc("healthy-af2-celery"), "ui-base-url-path-mismatch") == "pass"
    for name in ("webserver-base-url-config-af2", "celery-worker-oom-af2"):
        assert not [f for f in findings_of(doc(name), "liveness-probe-restarts") if f["caused_by"]], name


def test_af3_ingress_path_base_url_does_not_cover(doc):
    d = doc("api-server-base-url-ingress-rewrite-af3")
    f = _one(d, "ui-base-url-path-mismatch", "Ingress", "airflow-api-server-ingress")
    assert f["resource"]["namespace"] == "airflow"
    ev = _ev(f)
    assert ("[api] base_url = https://airflow.acme-data.example/ (airflow.cfg [api] base_url): the UI's pages name "
            "their assets and API calls under /") in ev
    assert ("Ingress airflow-api-server-ingress rule host airflow.acme-data.example path /airflow(/|$)(.*) "
            "(pathType ImplementationSpecific) -> Service airflow-api-server:api-server") in ev
    assert "annotation nginx.ingress.kubernetes.io/rewrite-target: /$2: the api-server gets the path without /airflow" in ev
    assert "nothing routes airflow.acme-data.example/ to Service airflow-api-server" in ev
    # the Ingress is what users browse (TLS for its host): base_url takes its host and path, and the
    # Execution API URL set in the config moves under the same prefix so the two fixes agree
    assert _cmds(f) == ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
                        "--set-string config.api.base_url=https://airflow.acme-data.example/airflow/ "
                        "--set-string config.core.execution_api_server_url="
                        "http://airflow-api-server:8080/airflow/execution/")
    assert status_of(d, "execution-api-unreachable") == "pass"


def test_af3_ingress_look_alikes_pass(doc):
    # /airflow (Prefix, no rewrite) under base_url .../airflow/; GKE's /airflow/* glob likewise
    for name in ("api-server-base-url-ingress-af3", "gce-ingress-healthy-af3", "gce-ingress-wrong-path-af3"):
        assert _check(doc(name), "ui-base-url-path-mismatch") == ("pass", None), name


def test_on_a_plan_the_fix_is_a_values_change(tmp_path):
    import contextlib
    import io
    import json

    import fixtures.manifests as fm
    from airflow_gke.cli import main

    make, values, _want, _not = fm.PLANNED["webserver-base-url-env"]
    where = fm.write(make(), tmp_path / "cluster")
    plan = tmp_path / "plan.yaml"
    plan.write_text(fm.render(values()))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        main(["doctor", "--snapshot", str(where), "--manifests", str(plan), "--output", "json",
              "--check", "ui-base-url-path-mismatch"])
    [f] = [f for f in json.loads(buf.getvalue())["findings"] if f["check"] == "ui-base-url-path-mismatch"]
    assert f["resource"]["kind"] == "Deployment" and f["resource"]["name"] == "airflow-webserver"
    assert f["remediation"]["commands"] == [
        "helm upgrade --install airflow apache-airflow/airflow --namespace airflow --version 1.15.0 -f values.yaml "
        "--set-string config.webserver.base_url=https://data.acme-data.example/airflow"]
