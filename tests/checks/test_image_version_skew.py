"""The image-version-skew check (All Airflow components run the same Airflow version): its findings on
the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import _cmds, _ev, _one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_skew_pod_template_and_worker_tag_pinned_to_an_old_version(doc):
    d = doc("image-version-skew-af3")
    f = _one(d, "image-version-skew", "HelmRelease", "airflow")
    assert f["severity"] == "warning" and f["id"] == "image-version-skew:HelmRelease/airflow/airflow"
    ev = _ev(f)
    assert "scheduler (Deployment airflow-scheduler): apache/airflow:3.1.3 (Airflow 3.1.3)" in ev
    assert "worker_container_tag: apache/airflow:3.0.6 (Airflow 3.0.6)  <- differs" in ev
    assert "airflow_version=3.1.3" in ev
    assert ("--set-string images.pod_template.tag=3.1.3 "
            "--set-string config.kubernetes_executor.worker_container_tag=3.1.3") in _cmds(f)


def test_skew_passes_when_every_component_agrees(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "fernet-key-changed-af2"):
        assert status_of(doc(name), "image-version-skew") == "pass", name


def test_airflow_2_values_with_an_airflow_3_image(doc):
    d = doc("af2-values-on-af3-image")
    f = _one(d, "image-version-skew", "HelmRelease", "af2")
    assert f["severity"] == "error"
    assert f["title"].startswith("Airflow 2 values deployed with an Airflow 3.0.6 image")
    ev = _ev(f)
    assert "webserver (Deployment af2-webserver): apache/airflow:3.0.6 (Airflow 3.0.6)" in ev
    assert "Command `airflow webserver` has been removed. Please use `airflow api-server`" in ev
    assert "[scheduler] standalone_dag_processor = False" in ev
    assert "airflow.cfg [webserver] enable_proxy_fix = True: Airflow 3 reads it as [fab] enable_proxy_fix" in ev
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set-string airflowVersion=3.0.6 --set-string defaultAirflowTag=3.0.6 "
            "--set-string apiServer.resources.requests.cpu=250m --set-string apiServer.resources.requests.memory=1536Mi "
            "--set-string apiServer.resources.limits.memory=3Gi "
            "--set-string config.api.base_url=https://airflow.acme-data.example/ --set config.webserver.base_url=null "
            "--set-string config.fab.enable_proxy_fix=True --set config.webserver.enable_proxy_fix=null") in _cmds(f)
    # the crash-looping webserver is a consequence, not a second cause
    web = next(x for x in d["findings"] if x["check"] == "component-crashloop")
    assert web["caused_by"] == ["image-version-skew:HelmRelease/data-pipelines/af2"]


def test_airflow_3_release_with_a_leftover_webserver_option_passes(doc):
    assert status_of(doc("af3-values-with-webserver-leftovers"), "image-version-skew") == "pass"


def test_airflow_2_values_on_a_chart_older_than_airflow_3_upgrade_the_chart_too(run_cli, tmp_path):
    from conftest import doctor_json, findings_of
    from checktools import _copy

    root = _copy(tmp_path, "af2-values-on-af3-image")
    for f in root.glob("k8s/**/*.json"):
        f.write_text(f.read_text().replace("airflow-1.18.0", "airflow-1.15.0"))
    _, d = doctor_json(run_cli, root, "--check", "image-version-skew")
    [f] = findings_of(d, "image-version-skew")
    assert "chart airflow-1.15.0 predates Airflow 3 (the chart supports it from 1.16.0)" in _ev(f)
    assert _cmds(f).startswith("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
                               "--version 1.16.0 --set-string airflowVersion=3.0.6")


def test_airflow_2_values_on_an_old_chart_under_flux_raise_the_chart_in_the_helmrelease(run_cli, tmp_path):
    """`--version` is a helm flag, not a value: under Flux it must not land in the HelmRelease's values."""
    import json
    from conftest import doctor_json, findings_of
    from checktools import _copy

    root = _copy(tmp_path, "af2-values-on-af3-image")
    for f in root.glob("k8s/**/*.json"):
        f.write_text(f.read_text().replace("airflow-1.18.0", "airflow-1.15.0"))
    dep = next(root.glob("k8s/**/deployments.json"))
    body = json.loads(dep.read_text())
    for item in body["items"]:
        item["metadata"].setdefault("labels", {}).update({"helm.toolkit.fluxcd.io/name": "af2",
                                                          "helm.toolkit.fluxcd.io/namespace": "flux-system"})
    dep.write_text(json.dumps(body))
    _, d = doctor_json(run_cli, root, "--check", "image-version-skew")
    [f] = findings_of(d, "image-version-skew")
    cmds = _cmds(f)
    assert cmds.startswith("# also raise the chart version to 1.16.0 where the release pins it (Argo CD: the "
                           "Application's targetRevision; Flux: the HelmRelease's spec.chart.spec.version)\n")
    assert "flux reconcile helmrelease af2 --namespace flux-system" in cmds
    assert "--version" not in cmds
    assert "(the chart needs 1.16.0 or later for Airflow 3)" in f["remediation"]["summary"]
