"""gce-ingress-unhealthy-backend: a GKE Ingress whose load balancer marks the webserver/api-server UNHEALTHY."""
from __future__ import annotations

import json
import os

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit
from replay import ReplayServer

CHECK = "gce-ingress-unhealthy-backend"
AF2_NS = "data-pipelines"
ING_AF2 = f"k8s/apis/networking.k8s.io/v1/namespaces/{AF2_NS}/ingresses.json"
SVC_AF2 = f"k8s/api/v1/namespaces/{AF2_NS}/services.json"
BC_AF2 = f"k8s/apis/cloud.google.com/v1/namespaces/{AF2_NS}/backendconfigs.json"
ING_AF3 = "k8s/apis/networking.k8s.io/v1/namespaces/airflow/ingresses.json"
BC_AF3 = "k8s/apis/cloud.google.com/v1/namespaces/airflow/backendconfigs.json"
NEG_AF2 = "k8s1-63a73e83-data-pipelines-af2-webserver-8080-184241bb"
NEG_AF3 = "k8s1-63a73e83-airflow-airflow-api-server-8080-0207475a"
HC_AF2 = f"gcp/compute/compute/v1/projects/acme-data-prod/global/healthChecks/{NEG_AF2}.json"
HC_AF3 = f"gcp/compute/compute/v1/projects/acme-data-prod/global/healthChecks/{NEG_AF3}.json"


def _compute_error(root, path: str, code: int, message: str) -> None:
    """Store Compute Engine's answer to the health check read (its legacy error shape) instead of the body."""
    (root / path).unlink()
    reason = {403: "forbidden", 404: "notFound"}[code]
    (root / path.replace(".json", ".error.json")).write_text(json.dumps(
        {"status": code, "body": {"error": {"code": code, "message": message,
                                            "errors": [{"message": message, "domain": "global", "reason": reason}]}}}))


def _only(doc: dict) -> dict:
    (f,) = findings_of(doc, CHECK)
    return f


def test_af2_webserver_unhealthy_health_check_on_root_gets_a_backendconfig_without_hedging(run_cli):
    """The health check GKE made for the backend is read: it asks / on the serving port, which the
    Airflow 2 webserver answers with a redirect: the BackendConfig fix, no 'unless' and no command
    to look the health check up (it was read)."""
    code, doc = doctor_json(run_cli, "gce-ingress-unhealthy-af2")
    assert code == 1
    f = _only(doc)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["namespace"], f["resource"]["name"]) == (
        "Ingress", AF2_NS, "af2-ingress")
    ev = f["evidence"]
    text = "\n".join(ev)
    assert f'"{NEG_AF2}":"UNHEALTHY"' in text and f"backend {NEG_AF2} is Service af2-webserver port 8080" in text
    assert "no cloud.google.com/backend-config annotation" in text
    assert "Airflow's webserver answers health checks on /health ([webserver] base_url not set)" in ev
    assert (f"health check {NEG_AF2} (the load balancer's, compute.healthChecks.get): type HTTP, requestPath /, the "
            "serving port (USE_SERVING_PORT), checkIntervalSec 15, unhealthyThreshold 2; description: Default "
            "kubernetes L7 Loadbalancing health check for NEG.") in ev
    assert ("Airflow 2's webserver answers / with a redirect (302) to its login page, and a health check needs 200"
            in ev)
    assert "1 of 1 webserver pod(s) Ready" in ev
    assert not any("readinessProbe" in e for e in ev)      # the health check was read: no guess from the probe
    assert f["message"].endswith(
        f"Here: no BackendConfig sets the health check of Service af2-webserver, and the load balancer's health check "
        f"{NEG_AF2} asks HTTP GET / on the serving port (USE_SERVING_PORT): Airflow 2's webserver answers / with a "
        "redirect (302) to its login page, and a health check needs 200.")
    assert "unless" not in f["message"]
    cmds = f["remediation"]["commands"]
    assert len(cmds) == 2 and not any("health-checks describe" in c for c in cmds)
    manifest = json.loads(cmds[0].split("'")[1])
    assert manifest == {"apiVersion": "cloud.google.com/v1", "kind": "BackendConfig",
                        "metadata": {"name": "af2-webserver", "namespace": AF2_NS},
                        "spec": {"healthCheck": {"type": "HTTP", "requestPath": "/health", "port": 8080}}}
    assert cmds[0].endswith("| kubectl apply -f -")
    assert cmds[1].splitlines()[-1] == (
        "helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values --set-json "
        "'webserver.service.annotations.cloud\\.google\\.com/backend-config=\"{\\\"default\\\":\\\"af2-webserver\\\"}\"'")
    assert "no pod restarts" in cmds[1]
    assert f["caused_by"] == []
    assert findings_of(doc, "component-not-ready") == []


def test_health_check_read_denied_keeps_the_hedge_names_the_permission_and_the_command(run_cli, tmp_path):
    """403 on compute.healthChecks.get: the backend is still UNHEALTHY (a finding, never a pass), the
    wording stays hedged, says the health check was not read and why, and the first command reads it."""
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")
    _compute_error(root, HC_AF2, 403, f"Required 'compute.healthChecks.get' permission for "
                                      f"'projects/acme-data-prod/global/healthChecks/{NEG_AF2}'")
    code, doc = doctor_json(run_cli, root)
    assert code == 1 and status_of(doc, CHECK) == "fail"
    f = _only(doc)
    assert "(unless GKE copied a qualifying readinessProbe when it created the backend), not /health" in f["message"]
    assert "the health check itself was not read (" in f["message"] and "compute.healthChecks.get" in f["message"]
    assert any(e.startswith(f"the load balancer's health check {NEG_AF2} was not read: ") and
               "compute.healthChecks.get" in e for e in f["evidence"])
    assert any(e.startswith("the webserver readinessProbe GETs /health on port 8080") for e in f["evidence"])
    cmds = f["remediation"]["commands"]
    assert cmds[0] == ("# the health check GKE made for the backend (its request path now):\n"
                       f"gcloud compute health-checks describe {NEG_AF2} --global --project acme-data-prod "
                       "--format='value(httpHealthCheck.requestPath,httpHealthCheck.port)'")
    assert json.loads(cmds[1].split("'")[1])["kind"] == "BackendConfig"


def test_health_check_not_found_says_so_and_keeps_the_hedge(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")
    _compute_error(root, HC_AF2, 404, f"The resource 'projects/acme-data-prod/global/healthChecks/{NEG_AF2}' was "
                                      "not found")
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert (f"the load balancer's health check {NEG_AF2} was not read: project acme-data-prod has no health check "
            f"named {NEG_AF2} (compute.healthChecks.get answered 404)") in f["evidence"]
    assert "unless GKE copied" in f["message"]
    assert "health-checks describe" in f["remediation"]["commands"][0]


def test_af3_health_check_on_the_airflow2_path_gets_the_backendconfig_without_hedging(run_cli):
    """Airflow 3, no BackendConfig: the read health check asks /health, which Airflow 3 answers 404."""
    code, doc = doctor_json(run_cli, "gce-ingress-hc-path-af3")
    assert code == 1
    f = _only(doc)
    assert f["resource"]["name"] == "airflow-ingress"
    ev = f["evidence"]
    assert (f"health check {NEG_AF3} (the load balancer's, compute.healthChecks.get): type HTTP, requestPath /health, "
            "the serving port (USE_SERVING_PORT), checkIntervalSec 15, unhealthyThreshold 2; description: Default "
            "kubernetes L7 Loadbalancing health check for NEG.") in ev
    assert ("Airflow 3's api-server answers /health with 404 (\"Moved in Airflow 3. Please change config to check "
            "`/api/v2/monitor/health`\")") in ev
    assert f["message"].endswith(
        f"Here: no BackendConfig sets the health check of Service airflow-api-server, and the load balancer's health "
        f"check {NEG_AF3} asks HTTP GET /health on the serving port (USE_SERVING_PORT): Airflow 3's api-server answers "
        "/health with 404 (\"Moved in Airflow 3. Please change config to check `/api/v2/monitor/health`\").")
    cmds = f["remediation"]["commands"]
    assert len(cmds) == 2
    assert json.loads(cmds[0].split("'")[1]) == {
        "apiVersion": "cloud.google.com/v1", "kind": "BackendConfig",
        "metadata": {"name": "airflow-api-server", "namespace": "airflow"},
        "spec": {"healthCheck": {"type": "HTTP", "requestPath": "/api/v2/monitor/health", "port": 8080}}}
    assert cmds[1].splitlines()[-1] == (
        "helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set-json "
        "'apiServer.service.annotations.cloud\\.google\\.com/backend-config=\"{\\\"default\\\":\\\"airflow-api-server\\\"}\"'")
    assert f["caused_by"] == [] and findings_of(doc, "component-not-ready") == []


def test_af3_right_health_check_points_at_the_network_policies_not_a_backendconfig(run_cli):
    """The look-alike: the read health check asks /api/v2/monitor/health (taken from the readiness
    probe); the pods are Ready; a default-deny NetworkPolicy admits no health-check range."""
    code, doc = doctor_json(run_cli, "gce-ingress-hc-right-af3")
    assert code == 1
    f = _only(doc)
    ev = f["evidence"]
    assert "/api/v2/monitor/health is Airflow's health endpoint of the api-server: it answers 200" in ev
    assert any(e.startswith("NetworkPolicy default-deny-ingress selects the UI pods; ipBlocks it admits: none") for e in ev)
    assert ("NetworkPolicy allow-same-namespace, default-deny-ingress select the api-server pods and none admits "
            "Google's health checkers (130.211.0.0/22, 35.191.0.0/16)") in f["message"]
    cmds = f["remediation"]["commands"]
    assert not any("BackendConfig" in c for c in cmds)
    pol = json.loads(cmds[0].split("'")[1])
    assert pol["metadata"] == {"name": "airflow-api-server-gce-health-checks", "namespace": "airflow"}
    assert pol["spec"] == {"podSelector": {"matchLabels": {"component": "api-server", "release": "airflow",
                                                           "tier": "airflow"}},
                           "policyTypes": ["Ingress"],
                           "ingress": [{"from": [{"ipBlock": {"cidr": "130.211.0.0/22"}},
                                                 {"ipBlock": {"cidr": "35.191.0.0/16"}}],
                                        "ports": [{"protocol": "TCP", "port": 8080}]}]}
    assert cmds[1] == f"gcloud compute backend-services get-health {NEG_AF3} --global --project acme-data-prod"
    assert f["caused_by"] == []


def test_af3_health_check_on_root_is_answered_by_the_ui_page_so_the_cause_is_elsewhere(run_cli, tmp_path):
    """Airflow 3's api-server answers / with its UI page (200): a default health check on / is not the cause."""
    root = _copy(tmp_path, "gce-ingress-hc-path-af3")

    def root_path(body: dict) -> None:
        body["httpHealthCheck"]["requestPath"] = "/"
    _edit(root, HC_AF3, root_path)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert ("Airflow 3's api-server answers / with its UI page (200: the UI's catch-all route), though "
            "/api/v2/monitor/health is its health endpoint") in f["evidence"]
    assert "Google's health checkers (130.211.0.0/22, 35.191.0.0/16) are blocked or time out" in f["message"]
    assert f["remediation"]["commands"][1] == (
        "gcloud compute firewall-rules list --project acme-data-prod --filter='sourceRanges:(130.211.0.0/22 "
        "35.191.0.0/16)'")


def test_health_check_on_a_fixed_port_the_pods_do_not_serve_is_the_cause(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-hc-right-af3")

    def fixed_port(body: dict) -> None:
        body["httpHealthCheck"].update(port=80, portSpecification="USE_FIXED_PORT")
    _edit(root, HC_AF3, fixed_port)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert ("it probes port 80, but the api-server is served on 8080 (its container port: container-native load "
            "balancing probes the pods)") in f["evidence"]
    manifest = json.loads(f["remediation"]["commands"][0].split("'")[1])
    assert manifest["spec"]["healthCheck"] == {"type": "HTTP", "requestPath": "/api/v2/monitor/health", "port": 8080}


def test_af3_backendconfig_kept_from_af2_is_patched_to_the_prefixed_health_path(run_cli):
    code, doc = doctor_json(run_cli, "gce-ingress-wrong-path-af3")
    assert code == 1
    f = _only(doc)
    assert f["resource"]["name"] == "airflow-ingress"
    ev = "\n".join(f["evidence"])
    assert ("Airflow's api-server answers health checks on /airflow/api/v2/monitor/health "
            "([api] base_url https://airflow.acme-data.example/airflow)") in ev
    assert 'BackendConfig airflow-api-server-hc: spec.healthCheck {"checkIntervalSec": 15, "port": 8080, "requestPath": "/health"' in ev
    assert "makes the health check ask /health, not Airflow's /airflow/api/v2/monitor/health" in f["message"]
    # the BackendConfig exists: patched, never created again, and no values change
    assert f["remediation"]["commands"] == [
        "kubectl patch backendconfig airflow-api-server-hc --namespace airflow --type merge -p "
        "'{\"spec\":{\"healthCheck\":{\"type\":\"HTTP\",\"requestPath\":\"/airflow/api/v2/monitor/health\",\"port\":8080}}}'"]


def test_healthy_airflow_backend_and_another_teams_unhealthy_ingress_pass(run_cli):
    code, doc = doctor_json(run_cli, "gce-ingress-healthy-af3")
    assert code == 0
    assert status_of(doc, CHECK) == "pass"


def test_unknown_backend_state_is_not_judged(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def unknown(body: dict) -> None:
        ann = body["items"][0]["metadata"]["annotations"]
        ann["ingress.kubernetes.io/backends"] = ann["ingress.kubernetes.io/backends"].replace("UNHEALTHY", "Unknown")
    _edit(root, ING_AF2, unknown)
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) == "pass" and findings_of(doc, CHECK) == []


def test_instance_group_backend_is_matched_by_node_port(run_cli, tmp_path):
    """Without NEGs the backend is k8s-be-<nodePort>--<uid>: the Service's nodePort names it."""
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def node_port(body: dict) -> None:
        svc = next(s for s in body["items"] if s["metadata"]["name"] == "af2-webserver")
        for k in ("cloud.google.com/neg", "cloud.google.com/neg-status"):
            svc["metadata"]["annotations"].pop(k)
        svc["spec"]["type"] = "NodePort"
        svc["spec"]["ports"][0]["nodePort"] = 31151

    def ig_backend(body: dict) -> None:
        ann = body["items"][0]["metadata"]["annotations"]
        ann["ingress.kubernetes.io/backends"] = json.dumps(
            {"k8s-be-30724--63a73e83ca1ab339": "HEALTHY", "k8s-be-31151--63a73e83ca1ab339": "UNHEALTHY"})
    _edit(root, SVC_AF2, node_port)
    _edit(root, ING_AF2, ig_backend)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "backend k8s-be-31151--63a73e83ca1ab339 is Service af2-webserver port 8080" in "\n".join(f["evidence"])
    manifest = json.loads(f["remediation"]["commands"][1].split("'")[1])
    assert manifest["spec"]["healthCheck"] == {"type": "HTTP", "requestPath": "/health"}   # serving port: the nodePort


def test_service_naming_a_missing_backendconfig_gets_that_one_created_without_a_values_change(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def name_one(body: dict) -> None:
        svc = next(s for s in body["items"] if s["metadata"]["name"] == "af2-webserver")
        svc["metadata"]["annotations"]["cloud.google.com/backend-config"] = '{"ports": {"8080": "airflow-ui-hc"}}'
    _edit(root, SVC_AF2, name_one)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "BackendConfig airflow-ui-hc named by the Service does not exist" in "\n".join(f["evidence"])
    (cmd,) = f["remediation"]["commands"]
    assert json.loads(cmd.split("'")[1])["metadata"]["name"] == "airflow-ui-hc"
    assert "helm" not in cmd


def _right_path(root) -> None:
    """The BackendConfig asks the prefixed health endpoint, and GKE carried it into the health check."""
    def right_path(body: dict) -> None:
        body["items"][0]["spec"]["healthCheck"]["requestPath"] = "/airflow/api/v2/monitor/health"

    def applied(body: dict) -> None:
        body["httpHealthCheck"]["requestPath"] = "/airflow/api/v2/monitor/health"
    _edit(root, BC_AF3, right_path)
    _edit(root, HC_AF3, applied)


def test_right_backendconfig_that_gke_has_not_carried_into_the_health_check_says_so(run_cli, tmp_path):
    """The BackendConfig is right, the health check the load balancer uses (read) still asks /health:
    not 'the health check is set right', but where GKE says why it did not apply it."""
    root = _copy(tmp_path, "gce-ingress-wrong-path-af3")

    def right_path(body: dict) -> None:
        body["items"][0]["spec"]["healthCheck"]["requestPath"] = "/airflow/api/v2/monitor/health"
    _edit(root, BC_AF3, right_path)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert f["message"].endswith(
        f"Here: BackendConfig airflow-api-server-hc asks /airflow/api/v2/monitor/health as Airflow expects, but the load "
        f"balancer's health check {NEG_AF3} still asks HTTP GET /health on port 8080: Airflow 3's api-server answers "
        "/health with 404 (\"Moved in Airflow 3. Please change config to check `/api/v2/monitor/health`\"); GKE's "
        "ingress controller has not carried the BackendConfig into it.")
    assert "set right" not in f["remediation"]["summary"]
    assert f["remediation"]["commands"] == ["kubectl describe ingress airflow-ingress --namespace airflow",
                                            "kubectl describe service airflow-api-server --namespace airflow"]


def test_right_health_check_with_no_ready_pod_is_caused_by_the_component(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-wrong-path-af3")
    _right_path(root)

    def not_ready(body: dict) -> None:
        for p in body["items"]:
            if p["metadata"]["labels"].get("component") == "api-server":
                for c in p["status"]["conditions"]:
                    if c["type"] in ("Ready", "ContainersReady"):
                        c["status"] = "False"
                for cs in p["status"]["containerStatuses"]:
                    cs["ready"] = False
    _edit(root, "k8s/api/v1/namespaces/airflow/pods.json", not_ready)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "no api-server pod is Ready" in f["message"]
    assert f["caused_by"] == ["component-not-ready:Deployment/airflow/airflow-api-server"]


def test_right_health_check_and_ready_pods_points_at_the_health_check_ranges(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-wrong-path-af3")
    _right_path(root)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "130.211.0.0/22, 35.191.0.0/16" in f["message"]
    assert f["remediation"]["commands"][0] == (
        "gcloud compute backend-services get-health k8s1-63a73e83-airflow-airflow-api-server-8080-0207475a --global "
        "--project acme-data-prod")


def test_backendconfig_crd_not_installed_is_not_applicable(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")
    (root / BC_AF2).unlink()
    (root / BC_AF2.replace(".json", ".error.json")).write_text(json.dumps(
        {"status": 404, "body": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": "the server could not find the requested resource",
                                 "reason": "NotFound", "code": 404}}))
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) == "skip"


def test_ingresses_not_collected_is_never_a_pass(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")
    (root / ING_AF2).unlink()
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) not in ("pass", "fail")


def test_live_reads_ingresses_and_backendconfigs_once_and_a_missing_crd_is_404(run_cli, monkeypatch, tmp_path):
    """Through the real Kubernetes client against the replay server: the Ingress list and the
    BackendConfig list are read once each; where the snapshot holds no BackendConfig list the server
    answers 404 (an unknown type, as a real API server without the CRD) and the check skips."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")
    with ReplayServer(root) as srv:
        kc = srv.write_kubeconfig(tmp_path / "kubeconfig")
        env = {**os.environ, **srv.env(kubeconfig=kc)}
        r = run_cli("doctor", "--now", srv.meta["captured_at"], "--release", "af2", "--check", CHECK,
                    "--output", "json", env=env)
        assert r.code == 1, r.err
        assert [f["check"] for f in r.json["findings"]] == [CHECK]
        paths = [e.path for e in srv.log.entries if e.service == "k8s"]
        assert paths.count(f"/apis/networking.k8s.io/v1/namespaces/{AF2_NS}/ingresses") == 1
        assert paths.count(f"/apis/cloud.google.com/v1/namespaces/{AF2_NS}/backendconfigs") == 1
    (root / BC_AF2).unlink()
    with ReplayServer(root) as srv:
        kc = srv.write_kubeconfig(tmp_path / "kubeconfig2")
        env = {**os.environ, **srv.env(kubeconfig=kc)}
        r = run_cli("doctor", "--now", srv.meta["captured_at"], "--release", "af2", "--check", CHECK,
                    "--output", "json", env=env)
        assert r.code == 0, r.err
        st = {c["id"]: c for c in r.json["checks"]}[CHECK]
        assert st["status"] == "skip" and "BackendConfig CRD answers 404" in st["reason"]
        bc = [e for e in srv.log.entries if e.path.endswith("/backendconfigs")]
        assert [e.status for e in bc] == [404]


def test_under_argo_cd_the_values_go_to_the_application_and_the_backendconfig_to_git(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def tracked(body: dict) -> None:
        for d in body["items"]:
            d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = f"airflow-prod:apps/Deployment:{AF2_NS}/x"
    _edit(root, f"k8s/apis/apps/v1/namespaces/{AF2_NS}/deployments.json", tracked)
    _code, doc = doctor_json(run_cli, root)
    cmds = _only(doc)["remediation"]["commands"]
    assert cmds[0].startswith("# Argo CD manages release af2 (Application airflow-prod): commit this BackendConfig")
    lines = cmds[1].splitlines()
    assert not any(ln.startswith("helm upgrade") for ln in lines) and "argocd app set" not in cmds[1]
    assert "commit these values to the Application's source in Git (JSON values): " in lines[1]
    assert lines[-1] == "argocd app sync airflow-prod"


def test_a_service_the_chart_does_not_render_is_annotated_in_place(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def own_service(body: dict) -> None:
        svc = next(s for s in body["items"] if s["metadata"]["name"] == "af2-webserver")
        svc["metadata"]["labels"] = {"app": "airflow-ui"}
        for k in ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace"):
            svc["metadata"]["annotations"].pop(k)
    _edit(root, SVC_AF2, own_service)
    _code, doc = doctor_json(run_cli, root)
    rem = _only(doc)["remediation"]
    cmds = rem["commands"]
    assert "where the Service is defined" in rem["summary"] and "through the chart's" not in rem["summary"]
    assert cmds[1] == ("kubectl annotate service af2-webserver --namespace data-pipelines --overwrite "
                       "'cloud.google.com/backend-config={\"default\":\"af2-webserver\"}'")


def test_af3_without_backendconfig_gets_one_on_the_prefixed_path_and_the_api_server_values(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-wrong-path-af3")

    def unannotated(body: dict) -> None:
        svc = next(s for s in body["items"] if s["metadata"]["name"] == "airflow-api-server")
        svc["metadata"]["annotations"].pop("cloud.google.com/backend-config")

    def none(body: dict) -> None:
        body["items"] = []
    _edit(root, "k8s/api/v1/namespaces/airflow/services.json", unannotated)
    _edit(root, BC_AF3, none)
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "redirect" not in f["message"]        # said of Airflow 2's webserver only
    assert "answers /health with 404" in f["message"]   # the health check the old BackendConfig left, read
    cmds = f["remediation"]["commands"]
    manifest = json.loads(cmds[0].split("'")[1])
    assert manifest["metadata"]["name"] == "airflow-api-server"
    assert manifest["spec"]["healthCheck"] == {"type": "HTTP", "requestPath": "/airflow/api/v2/monitor/health",
                                               "port": 8080}
    assert cmds[1].splitlines()[-1] == (
        "helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values --set-json "
        "'apiServer.service.annotations.cloud\\.google\\.com/backend-config=\"{\\\"default\\\":\\\"airflow-api-server\\\"}\"'")


def test_internal_ingress_reads_the_regional_health_check(run_cli, tmp_path):
    """class gce-internal: the health check is regional (compute.regionHealthChecks.get in the
    cluster's region); not collected, the hedge names the --region command; read, it decides."""
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def internal(body: dict) -> None:
        body["items"][0]["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "gce-internal"
    _edit(root, ING_AF2, internal)
    body = json.loads((root / HC_AF2).read_text())
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "unless GKE copied" in f["message"]          # the global health check is not the internal one's
    assert f"gcloud compute health-checks describe {NEG_AF2} --region europe-west1 --project acme-data-prod" in \
        f["remediation"]["commands"][0]
    regional = root / HC_AF2.replace("/global/", "/regions/europe-west1/")
    regional.parent.mkdir(parents=True)
    body["selfLink"] = body["selfLink"].replace("/global/", "/regions/europe-west1/")
    body["region"] = "https://www.googleapis.com/compute/v1/projects/acme-data-prod/regions/europe-west1"
    regional.write_text(json.dumps(body))
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "unless" not in f["message"] and "asks HTTP GET / on the serving port" in f["message"]
    assert json.loads(f["remediation"]["commands"][0].split("'")[1])["kind"] == "BackendConfig"


def test_an_ingress_of_another_class_is_not_judged(run_cli, tmp_path):
    root = _copy(tmp_path, "gce-ingress-unhealthy-af2")

    def nginx(body: dict) -> None:
        body["items"][0]["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "nginx"
    _edit(root, ING_AF2, nginx)
    _code, doc = doctor_json(run_cli, root)
    assert status_of(doc, CHECK) == "skip" and findings_of(doc, CHECK) == []


def test_right_health_check_with_pods_unread_does_not_blame_the_network(run_cli, tmp_path):
    """Pods 403: whether any api-server pod is Ready is unknown, so the finding says so and reads them
    first, rather than concluding that Google's health checkers are blocked."""
    root = _copy(tmp_path, "gce-ingress-wrong-path-af3")
    _right_path(root)
    pods = root / "k8s/api/v1/namespaces/airflow/pods.json"
    pods.unlink()
    pods.with_name("pods.error.json").write_text(json.dumps(
        {"status": 403, "body": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": 'pods is forbidden: User "doctor" cannot list resource "pods"',
                                 "reason": "Forbidden", "code": 403}}))
    _code, doc = doctor_json(run_cli, root)
    f = _only(doc)
    assert "the api-server pods were not read (" in f["message"]
    assert "are blocked or time out" not in f["message"]
    assert any(e.startswith("the api-server pods were not read: ") for e in f["evidence"])
    assert f["remediation"]["commands"][0] == "kubectl get pods --namespace airflow -l component=api-server,release=airflow"
