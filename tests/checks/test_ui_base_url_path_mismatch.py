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
    full = Route("HTTPRoute", o, "", "/airflow", "PathPrefix", "s", "8080", "/", "ReplaceFullPath")
    assert full.received("/airflow/home") == "/" and not full.keeps("/airflow")
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
        shutil.rmtree(root, ignore_errors=True)    # a test may run more than one variant
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


DEP = "apis/apps/v1/namespaces/{ns}/deployments.json"
PODS = "api/v1/namespaces/{ns}/pods.json"
CMS = "api/v1/namespaces/{ns}/configmaps.json"
BASE2 = "https://airflow.acme-data.example/airflow"


def _webserver_containers(body):
    for it in body["items"]:
        if it["metadata"].get("labels", {}).get("component") == "webserver":
            spec = it["spec"]["template"]["spec"] if "template" in it["spec"] else it["spec"]
            yield from (c for c in spec["containers"] if c["name"] == "webserver")


def _base_url_in_env(root, probe_path: str = "/health") -> None:
    """The webserver-base-url-env-af2 mistake on the rewrite scenario: base_url set through env (not
    config.webserver.base_url), so airflow.cfg has none and the chart renders unprefixed probes."""
    def dep(body):
        for c in _webserver_containers(body):
            c.setdefault("env", []).insert(0, {"name": "AIRFLOW__WEBSERVER__BASE_URL", "value": BASE2})
            for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                if p in c:
                    c[p]["httpGet"]["path"] = probe_path

    def pods(body):
        for c in _webserver_containers(body):
            c.setdefault("env", []).insert(0, {"name": "AIRFLOW__WEBSERVER__BASE_URL", "value": BASE2})
            for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                if p in c:
                    c[p]["httpGet"]["path"] = probe_path

    def cms(body):
        for cm in body["items"]:
            cfg = (cm.get("data") or {}).get("airflow.cfg")
            if cfg:
                cm["data"]["airflow.cfg"] = cfg.replace(f"base_url = {BASE2}\n", "")
    _json_edit(root, DEP, dep)
    _json_edit(root, PODS, pods)
    _json_edit(root, CMS, cms)


def _ingress_path(path: str):
    def fn(body):
        body["items"][0]["spec"]["rules"][0]["http"]["paths"][0]["path"] = path
    return fn


def test_probe_and_route_findings_in_one_run_move_base_url_to_the_same_url(variant):
    """base_url (from env) has /airflow, the probes ask /health, and the Ingress serves the UI under /ui
    (with the rewrite that strips it): both findings fire, and both fixes set the one base_url the
    Ingress serves, so applying the two upgrades in either order ends in the same values."""
    def edit(root):
        _base_url_in_env(root)
        _json_edit(root, ING, _ingress_path("/ui(/|$)(.*)"))

    doc = variant(edit)
    fs = findings_of(doc, "ui-base-url-path-mismatch")
    assert [(f["resource"]["kind"], f["resource"]["name"]) for f in fs] == [
        ("Deployment", "af2-webserver"), ("Ingress", "af2-ingress")]
    probe, route = fs
    assert probe["title"] == ("The webserver serves under /airflow/ but its probes ask /health: they get 404 and it "
                              "never gets Ready")
    assert route["title"] == ("The webserver serves only under /airflow/ ([webserver] base_url) but Ingress af2-ingress "
                              "sends it /ui(/|$)(.*): every page answers 404")
    new = "https://airflow.acme-data.example/ui"
    up = "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
    assert route["remediation"]["commands"] == [
        up + f"--set-string config.webserver.base_url={new} "
        "--set 'ingress.web.annotations.nginx\\.ingress\\.kubernetes\\.io/rewrite-target=null'"]
    assert probe["remediation"]["commands"][0] == up + f"--set-string config.webserver.base_url={new}"
    # the probe finding says why its URL is not the one it read, and both send the env variable away
    assert f"this check's Ingress/HTTPRoute finding moves base_url to {new}: the probes follow it" in _ev(probe)
    assert probe["remediation"]["summary"] == (
        f"Give the chart the base_url as config.webserver.base_url ({new}): it then renders every probe as "
        "/ui/health; remove AIRFLOW__WEBSERVER__BASE_URL from env (env overrides airflow.cfg). The upgrade restarts "
        "the webserver.")
    assert "AIRFLOW__WEBSERVER__BASE_URL is set in env and overrides airflow.cfg" in route["remediation"]["summary"]


def _ingress_host(host: str, path: str = "/airflow", path_type: str = "Prefix"):
    """The chart's Ingress on ``host`` (TLS for it), ``path`` without the rewrite."""
    def fn(body):
        ing = body["items"][0]
        ing["metadata"]["annotations"] = {}
        ing["spec"]["rules"][0]["host"] = host
        ing["spec"]["rules"][0]["http"]["paths"][0].update(path=path, pathType=path_type)
        ing["spec"]["tls"][0]["hosts"] = [host]
    return fn


def test_a_wildcard_ingress_host_on_another_domain_names_the_host_to_fill_in(variant):
    """The only served host is a wildcard: the snapshot holds no concrete name, so the fix keeps a
    quoted <host> placeholder and says plainly what replaces it."""
    doc = variant(lambda root: _json_edit(root, ING, _ingress_host("*.orchestration.example")))
    f = _one(doc, "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert f["severity"] == "warning"
    assert f["title"] == ("[webserver] base_url names host airflow.acme-data.example, but Ingress af2-ingress serves "
                          "the UI only on *.orchestration.example: links and redirects built from base_url go to "
                          "another host")
    assert ("no rule that routes to Service af2-webserver is for airflow.acme-data.example: the UI is browsed at "
            "*.orchestration.example") in _ev(f)
    assert f["remediation"]["summary"] == (
        "Set [webserver] base_url to the name users browse under *.orchestration.example (Ingress af2-ingress serves "
        "only that wildcard, which this snapshot cannot resolve to a name): "
        "https://<host>.orchestration.example/airflow, with <host> replaced by one DNS label before the command is "
        "run (or add airflow.acme-data.example to its rules if that is the name users browse). The upgrade restarts "
        "the webserver.")
    # quoted: pasted unedited, the shell does not read <host> as a redirection
    assert f["remediation"]["commands"] == [
        "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
        "--set-string config.webserver.base_url='https://<host>.orchestration.example/airflow'"]


def test_a_wildcard_tls_host_makes_the_new_base_url_https(variant):
    """An http base_url on another domain than the Ingress's wildcard host, whose TLS is the wildcard
    certificate: the base_url the fix writes is https (the wildcard covers the host filled in)."""
    def edit(root):
        _json_edit(root, ING, _ingress_host("*.orchestration.example"))

        def cms(body):
            for cm in body["items"]:
                cfg = (cm.get("data") or {}).get("airflow.cfg")
                if cfg:
                    cm["data"]["airflow.cfg"] = cfg.replace(f"base_url = {BASE2}",
                                                            "base_url = http://airflow.acme-data.example/airflow")
        _json_edit(root, CMS, cms)

    f = _one(variant(edit), "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert _cmds(f).endswith("--set-string config.webserver.base_url='https://<host>.orchestration.example/airflow'")


def test_a_wildcard_host_that_matches_base_url_host_passes(variant):
    """*.acme-data.example covers airflow.acme-data.example (one label): no host warning. Two labels
    below it (an Ingress wildcard matches exactly one) is not covered: the warning, with the placeholder."""
    assert _check(variant(lambda root: _json_edit(root, ING, _ingress_host("*.acme-data.example"))),
                  "ui-base-url-path-mismatch") == ("pass", None)

    def deeper(root):
        _json_edit(root, ING, _ingress_host("*.acme-data.example"))

        def cms(body):
            for cm in body["items"]:
                cfg = (cm.get("data") or {}).get("airflow.cfg")
                if cfg:
                    cm["data"]["airflow.cfg"] = cfg.replace(f"base_url = {BASE2}",
                                                            "base_url = https://ui.eu.acme-data.example/airflow")
        _json_edit(root, CMS, cms)

    f = _one(variant(deeper), "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert f["severity"] == "warning"
    assert _cmds(f).endswith("--set-string config.webserver.base_url='https://<host>.acme-data.example/airflow'")


def _probes_edited(root, path: str = "/health") -> None:
    """The webserver's probes changed after the chart rendered them (base_url stays in config)."""
    def fn(body):
        for c in _webserver_containers(body):
            for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                if p in c:
                    c[p]["httpGet"]["path"] = path
    _json_edit(root, DEP, fn)
    _json_edit(root, PODS, fn)


def test_probes_edited_after_rendering_with_a_stripping_ingress_fixes_that_do_not_collide(variant):
    """base_url in config.webserver.base_url (/airflow), probes edited to /health, the Ingress strips
    /airflow: the route fix drops the rewrite and keeps base_url; the probe fix does not set the base_url
    that is already set but renders the release again (which restores the chart's probes). Neither touches
    the other's keys, and with --reuse-values either order ends with both applied."""
    doc = variant(_probes_edited)
    fs = findings_of(doc, "ui-base-url-path-mismatch")
    assert [(f["resource"]["kind"], f["resource"]["name"]) for f in fs] == [
        ("Deployment", "af2-webserver"), ("Ingress", "af2-ingress")]
    probe, route = fs
    up = "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values"
    assert probe["remediation"]["commands"] == [
        up, "kubectl get deployment af2-webserver --namespace data-pipelines "
            "-o jsonpath='{.spec.template.spec.containers[0].livenessProbe.httpGet.path}'"]
    assert probe["remediation"]["summary"] == (
        f"config.webserver.base_url is already {BASE2}, from which the chart renders every probe as /airflow/health: "
        "the probes were changed after the chart rendered them (a post-renderer, a kustomize patch in Argo CD or "
        "Flux, kubectl edit). Remove that change; rendering the release again with the same values restores the "
        "chart's probes over an edit made in the cluster. The webserver restarts.")
    assert route["remediation"]["commands"] == [
        up + " --set 'ingress.web.annotations.nginx\\.ingress\\.kubernetes\\.io/rewrite-target=null'"]
    assert not any("base_url" in c for f in fs for c in f["remediation"]["commands"])


def test_probes_edited_after_rendering_and_an_ingress_elsewhere_move_to_one_base_url(variant):
    """base_url in config (/airflow), probes edited to /health, the Ingress on /ui: both findings set
    the base_url the Ingress serves."""
    def edit(root):
        _probes_edited(root)
        _json_edit(root, ING, _ingress_path("/ui(/|$)(.*)"))

    probe, route = findings_of(variant(edit), "ui-base-url-path-mismatch")
    new = "https://airflow.acme-data.example/ui"
    assert probe["remediation"]["commands"][0] == (
        f"helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
        f"--set-string config.webserver.base_url={new}")
    assert route["remediation"]["commands"][0].startswith(probe["remediation"]["commands"][0] + " --set ")
    assert probe["remediation"]["summary"].startswith(
        f"Set config.webserver.base_url {new} (the base_url the Ingress/HTTPRoute fix moves to): the chart renders "
        "every probe as /ui/health from it.")


def test_a_wrong_path_on_a_wildcard_host_of_another_domain_does_not_move_base_url_to_an_unserved_host(variant):
    """The Ingress serves /ui on *.orchestration.example only; base_url is .../airflow on acme-data.example.
    The path fix must not keep base_url's host (the rule does not serve it: the next run would warn
    about the host): it takes the rule's wildcard with the <host> placeholder, said plainly."""
    doc = variant(lambda root: _json_edit(root, ING, _ingress_host("*.orchestration.example", "/ui")))
    f = _one(doc, "ui-base-url-path-mismatch", "Ingress", "af2-ingress")
    assert f["severity"] == "error"
    assert f["title"] == ("The webserver serves only under /airflow/ ([webserver] base_url) but Ingress af2-ingress "
                          "sends it /ui: every page answers 404")
    assert "no rule of these Ingresses is for the base_url's host airflow.acme-data.example" in _ev(f)
    assert f["remediation"]["commands"] == [
        "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
        "--set-string config.webserver.base_url='https://<host>.orchestration.example/ui'"]
    assert f["remediation"]["summary"] == (
        "Serve the UI where Ingress af2-ingress sends it: [webserver] base_url https://<host>.orchestration.example/ui. "
        "The chart renders the webserver's probes under the new path; the upgrade restarts the webserver. Ingress "
        "af2-ingress serves only *.orchestration.example, which this snapshot cannot resolve to a name: replace "
        "<host> in the command by the DNS label of the name users browse before running it.")
    # a wildcard that covers base_url's host keeps that host
    doc = variant(lambda root: _json_edit(root, ING, _ingress_host("*.acme-data.example", "/ui")))
    assert _cmds(_one(doc, "ui-base-url-path-mismatch", "Ingress", "af2-ingress")).endswith(
        "--set-string config.webserver.base_url=https://airflow.acme-data.example/ui")


def test_probes_edited_after_rendering_under_flux_or_argo_cd_render_the_release_again(variant):
    """The same re-render through the tool that applies the release: Flux forces an upgrade with the
    unchanged values, Argo CD syncs the Application."""
    def flux(root):
        _probes_edited(root)

        def fn(body):
            for it in body["items"]:
                it["metadata"]["labels"].update({"helm.toolkit.fluxcd.io/name": "airflow",
                                                 "helm.toolkit.fluxcd.io/namespace": "flux-system"})
        _json_edit(root, DEP, fn)

    probe = _one(variant(flux), "ui-base-url-path-mismatch", "Deployment", "af2-webserver")
    assert probe["remediation"]["commands"][0] == "flux reconcile helmrelease airflow --namespace flux-system --force"

    def argo(root):
        _probes_edited(root)

        def fn(body):
            for it in body["items"]:
                it["metadata"].setdefault("annotations", {})["argocd.argoproj.io/tracking-id"] = (
                    "data-airflow:apps/Deployment:data-pipelines/" + it["metadata"]["name"])
        _json_edit(root, DEP, fn)

    probe = _one(variant(argo), "ui-base-url-path-mismatch", "Deployment", "af2-webserver")
    assert probe["remediation"]["commands"][0] == "argocd app sync data-airflow"


def test_an_env_base_url_moved_onto_a_wildcard_host_names_the_placeholder_in_both_fixes(variant):
    def edit(root):
        _base_url_in_env(root)
        _json_edit(root, ING, _ingress_host("*.orchestration.example", "/ui"))

    probe, route = findings_of(variant(edit), "ui-base-url-path-mismatch")
    want = "--set-string config.webserver.base_url='https://<host>.orchestration.example/ui'"
    assert probe["remediation"]["commands"][0].endswith(want) and route["remediation"]["commands"][0].endswith(want)
    assert probe["remediation"]["summary"].endswith(
        "Replace <host> in the command by the name the Ingress/HTTPRoute finding asks for.")


def test_an_ingress_default_backend_to_the_webserver_routes_every_path(variant):
    """An Ingress with only a defaultBackend to the webserver (no rules, no rewrite) hands it every path
    unchanged: /airflow/ under base_url .../airflow is served, on any host."""
    def edit(root):
        def fn(body):
            ing = body["items"][0]
            ing["metadata"]["annotations"] = {}
            ing["spec"] = {"ingressClassName": "nginx", "defaultBackend": {"service": {
                "name": "af2-webserver", "port": {"name": "airflow-ui"}}}}
        _json_edit(root, ING, fn)
    assert _check(variant(edit), "ui-base-url-path-mismatch") == ("pass", None)
