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
                "no Ingress or HTTPRoute routes to the api-server")
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


def test_af2_ingress_rewrite_strips_the_prefix_flask_serves_under(doc):
    d = doc("webserver-base-url-ingress-rewrite-af2")
    f = _one(d, "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert f["severity"] == "error" and f["resource"]["namespace"] == "data-pipelines"
    assert f["title"] == ("Ingress af2-ingress strips /airflow before the webserver, which serves only under /airflow/ "
                          "([webserver] base_url): every page answers 404")
    ev = _ev(f)
    assert ("[webserver] base_url = https://airflow.acme-data.example/airflow (airflow.cfg [webserver] base_url): the "
            "webserver (Flask) serves only under /airflow/") in ev
    assert ("Ingress af2-ingress rule host airflow.acme-data.example path /airflow(/|$)(.*) (pathType "
            "ImplementationSpecific) -> Service af2-webserver:airflow-ui") in ev
    assert ("Ingress af2-ingress annotation nginx.ingress.kubernetes.io/rewrite-target: /$2: a request for "
            "/airflow/home reaches the webserver as /home") in ev
    # base_url is right (the probes carry it, the pod is Ready): the fix drops the rewrite from the chart's
    # Ingress values, and does not set the base_url that is already set
    assert _cmds(f) == ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
                        "--set 'ingress.web.annotations.nginx\\.ingress\\.kubernetes\\.io/rewrite-target=null'")
    assert "base_url" not in _cmds(f)
    assert [x["check"] for x in d["findings"]] == ["ui-base-url-path-mismatch"]


def test_httproute_rewrite_with_no_base_url_path_af3(doc):
    d = doc("api-server-base-url-httproute-rewrite-af3")
    f = _one(d, "ui-base-url-path-mismatch", "HTTPRoute", "airflow-ui")
    assert f["severity"] == "error" and f["resource"]["namespace"] == "airflow"
    ev = _ev(f)
    assert ("HTTPRoute airflow-ui match host airflow.acme-data.example path /airflow (type PathPrefix) -> Service "
            "airflow-api-server:8080") in ev
    assert "HTTPRoute airflow-ui filter URLRewrite ReplacePrefixMatch /: the api-server gets the path without /airflow" in ev
    assert "nothing routes airflow.acme-data.example/ to Service airflow-api-server" in ev
    assert _cmds(f) == ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
                        "--set-string config.api.base_url=https://airflow.acme-data.example/airflow/ "
                        "--set-string config.core.execution_api_server_url="
                        "http://airflow-api-server:8080/airflow/execution/")
    assert "The URLRewrite filter may stay" in f["remediation"]["summary"]


def test_base_url_on_another_host_than_the_ingress_is_a_warning(doc):
    d = doc("api-server-base-url-host-mismatch-af3")
    f = _one(d, "ui-base-url-path-mismatch", "Ingress", "airflow-api-server-ingress")
    assert f["severity"] == "warning"
    assert f["title"] == ("[api] base_url names host airflow.acme-data.example, but Ingress airflow-api-server-ingress "
                          "serves the UI only on orchestration.acme-data.example: links and redirects built from "
                          "base_url go to another host")
    ev = _ev(f)
    assert "[api] base_url = https://airflow.acme-data.example/ (airflow.cfg [api] base_url): host airflow.acme-data.example" in ev
    assert ("Ingress airflow-api-server-ingress rule host orchestration.acme-data.example path / (pathType Prefix) -> "
            "Service airflow-api-server:api-server") in ev
    # https: the Ingress has TLS for the host; the path and the Execution API URL are left alone
    assert _cmds(f) == ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
                        "--set-string config.api.base_url=https://orchestration.acme-data.example/")


def test_ingress_and_httproute_look_alikes_pass(doc):
    # Airflow 2 on /airflow (Prefix, no rewrite) under base_url .../airflow on the same host; an HTTPRoute
    # for *.acme-data.example on PathPrefix /airflow under base_url .../airflow/; a healthy release whose
    # cluster has no Gateway API (the HTTPRoute list answers 404)
    for name in ("webserver-base-url-ingress-af2", "api-server-base-url-httproute-af3", "gce-ingress-unhealthy-af2"):
        assert _check(doc(name), "ui-base-url-path-mismatch") == ("pass", None), name


def test_route_semantics():
    """What the judgement rests on: which requests a rule routes, and what path the UI then gets."""
    from airflow_gke.checks.ui_base_url_path_mismatch import Route
    from airflow_gke.views import Obj

    o = Obj({"metadata": {"name": "x"}})
    nginx = Route("Ingress", o, "", "/airflow(/|$)(.*)", "ImplementationSpecific", "s", "p", "/$2")
    assert nginx.covers("/airflow/") and not nginx.covers("/")
    assert nginx.received("/airflow/home") == "/home" and not nginx.keeps("/airflow")
    kept = Route("Ingress", o, "", "/airflow(/|$)(.*)", "ImplementationSpecific", "s", "p", "/airflow/$2")
    assert kept.received("/airflow/home") == "/airflow/home" and kept.keeps("/airflow")
    assert nginx.keeps("")        # no base_url path: nothing to keep
    strip = Route("HTTPRoute", o, "", "/airflow", "PathPrefix", "s", "8080", "/", "ReplacePrefixMatch")
    assert strip.received("/airflow/home") == "/home" and not strip.keeps("/airflow")
    move = Route("HTTPRoute", o, "", "/airflow", "PathPrefix", "s", "8080", "/airflow", "ReplacePrefixMatch")
    assert move.keeps("/airflow")
    exact = Route("HTTPRoute", o, "", "/airflow", "Exact", "s", "8080")
    assert exact.covers("/airflow/") and not exact.covers("/airflow/home")
    # wildcards: an Ingress's matches one DNS label, an HTTPRoute's any number
    ing = Route("Ingress", o, "*.acme-data.example", "/", "Prefix", "s", "p")
    hr = Route("HTTPRoute", o, "*.acme-data.example", "/", "PathPrefix", "s", "8080")
    assert ing.serves("airflow.acme-data.example") and not ing.serves("a.b.acme-data.example")
    assert hr.serves("a.b.acme-data.example") and not hr.serves("acme-data.example")
    assert Route("Ingress", o, "", "/", "Prefix", "s", "p").serves("anything.example")


# --- variants of the Airflow 2 rewrite scenario, edited as a user's cluster would differ ----------------
AF2_REWRITE = "webserver-base-url-ingress-rewrite-af2"
NS2 = "data-pipelines"


@pytest.fixture
def variant(run_cli, tmp_path):
    """``run(edit)``: the doctor's report (this check only) on a copy of the Airflow 2 rewrite scenario
    changed by ``edit(root)``."""
    import shutil

    from conftest import doctor_json, scenario

    def run(edit) -> dict:
        root = tmp_path / "snap"
        shutil.copytree(scenario(AF2_REWRITE), root)
        edit(root)
        return doctor_json(run_cli, root, "--check", "ui-base-url-path-mismatch")[1]
    return run


def _json_edit(root, rel: str, fn) -> None:
    import json

    p = root / "k8s" / rel.format(ns=NS2)
    body = json.loads(p.read_text())
    fn(body)
    p.write_text(json.dumps(body, indent=2))


ING = "apis/networking.k8s.io/v1/namespaces/{ns}/ingresses.json"


def test_a_rewrite_on_an_ingress_the_chart_did_not_render_is_removed_with_kubectl(variant):
    def edit(root):
        def fn(body):
            for label in ("component", "heritage", "chart", "release", "tier"):
                body["items"][0]["metadata"]["labels"].pop(label, None)
            body["items"][0]["metadata"]["labels"]["app.kubernetes.io/name"] = "airflow-ui"
        _json_edit(root, ING, fn)

    f = _one(variant(edit), "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert f["remediation"]["commands"] == [
        "kubectl annotate ingress af2-ingress nginx.ingress.kubernetes.io/rewrite-target- --namespace data-pipelines"]


def test_an_httproute_rewrite_in_front_of_airflow_2_is_removed_at_its_position(variant):
    import json

    def edit(root):
        _json_edit(root, ING, lambda body: body.update(items=[]))
        gw = root / "k8s/apis/gateway.networking.k8s.io/v1/namespaces" / NS2
        (gw / "httproutes.error.json").unlink()
        route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                 "metadata": {"name": "af2-ui", "namespace": NS2, "uid": "5b0c7c2e-0d7e-4f61-9d8e-2f1f0c6a1b11",
                              "resourceVersion": "81234", "generation": 2,
                              "creationTimestamp": "2026-11-24T06:00:00Z"},
                 "spec": {"parentRefs": [{"name": "external-https", "namespace": "gateway-infra"}],
                          "hostnames": ["airflow.acme-data.example"],
                          "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/healthz"}}],
                                     "backendRefs": [{"name": "af2-webserver", "port": 8080}]},
                                    {"matches": [{"path": {"type": "PathPrefix", "value": "/airflow"}}],
                                     "filters": [{"type": "RequestHeaderModifier",
                                                  "requestHeaderModifier": {"set": [{"name": "X-Forwarded-Proto",
                                                                                     "value": "https"}]}},
                                                 {"type": "URLRewrite", "urlRewrite": {"path": {
                                                     "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                                     "backendRefs": [{"name": "af2-webserver", "port": 8080}]}]}}
        (gw / "httproutes.json").write_text(json.dumps({"apiVersion": "gateway.networking.k8s.io/v1",
                                                        "kind": "HTTPRouteList", "metadata": {"resourceVersion": "81300"},
                                                        "items": [route]}))

    f = _one(variant(edit), "ui-base-url-path-mismatch", "HTTPRoute", "af2-ui")
    assert ("HTTPRoute af2-ui filter URLRewrite ReplacePrefixMatch /: a request for /airflow/home reaches the "
            "webserver as /home") in _ev(f)
    assert f["remediation"]["commands"] == [
        "kubectl patch httproute af2-ui --type json -p '[{\"op\":\"remove\",\"path\":\"/spec/rules/1/filters/1\"}]' "
        "--namespace data-pipelines"]


def test_airflow_2_without_a_base_url_path_behind_a_prefix_moves_base_url_and_drops_the_rewrite(variant):
    def edit(root):
        def fn(body):
            for cm in body["items"]:
                cfg = (cm.get("data") or {}).get("airflow.cfg")
                if cfg:
                    cm["data"]["airflow.cfg"] = cfg.replace(
                        "base_url = https://airflow.acme-data.example/airflow", "base_url = https://airflow.acme-data.example")
        _json_edit(root, "api/v1/namespaces/{ns}/configmaps.json", fn)

    f = _one(variant(edit), "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert f["title"] == ("Ingress af2-ingress serves the UI under /airflow/ but [webserver] base_url has no path: its "
                          "links and redirects leave the prefix and answer 404")
    # base_url takes the Ingress's path (no trailing slash: Flask mounts the app at exactly that path), and
    # the rewrite goes, or /airflow/home would still reach the webserver as /home
    assert _cmds(f) == ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
                        "--set-string config.webserver.base_url=https://airflow.acme-data.example/airflow "
                        "--set 'ingress.web.annotations.nginx\\.ingress\\.kubernetes\\.io/rewrite-target=null'")


def test_a_snapshot_without_the_httproutes_read_is_incomplete_not_passed(variant):
    """A snapshot taken before HTTPRoutes were read (no file at the path, not the CRD's 404) cannot
    say that no HTTPRoute routes base_url's path: not checked, blocked by the read it lacks (as for
    any other read), never passed."""
    def edit(root):
        _json_edit(root, ING, lambda body: body.update(items=[]))
        gw = root / "k8s/apis/gateway.networking.k8s.io/v1/namespaces" / NS2
        (gw / "httproutes.error.json").unlink()

    doc = variant(edit)
    row = next(c for c in doc["checks"] if c["id"] == "ui-base-url-path-mismatch")
    assert row["status"] == "skip" and row["blocked_by"] == ["not-collected:k8s"]
    assert row["reason"] == "not collected: k8s/apis/gateway.networking.k8s.io/v1/namespaces/data-pipelines/httproutes"
    assert findings_of(doc, "ui-base-url-path-mismatch") == []
