"""The runtime, scheduling, Airflow 3 and secrets checks on their positive and negative scenarios:
this finding, on this resource, with this evidence, these links and this command."""
from __future__ import annotations

import json

import pytest

from conftest import doctor_json, findings_of, scenario, status_of

_DOCS: dict[str, dict] = {}


@pytest.fixture
def doc(run_cli):
    def get(name: str) -> dict:
        if name not in _DOCS:
            _DOCS[name] = doctor_json(run_cli, name, "--extended")[1]
        return _DOCS[name]
    return get


def _pods(name: str) -> list[dict]:
    meta = json.loads((scenario(name) / "meta.json").read_text())
    return json.loads((scenario(name) / f"k8s/api/v1/namespaces/{meta['namespace']}/pods.json").read_text())["items"]


def _pod(name: str, component: str | None = None, dag: str | None = None, task: str | None = None) -> str:
    for p in _pods(name):
        labels = p["metadata"].get("labels") or {}
        if component and labels.get("component") == component and labels.get("kubernetes_executor") != "True":
            return p["metadata"]["name"]
        if task and labels.get("task_id") == task and (dag is None or labels.get("dag_id") == dag):
            return p["metadata"]["name"]
    raise AssertionError(f"{name}: no pod {component or task}")


def _check(doc: dict, check: str) -> tuple[str, str | None]:
    c = next(c for c in doc["checks"] if c["id"] == check)
    return c["status"], c["reason"]


def _one(doc: dict, check: str, kind: str, name: str) -> dict:
    found = [f for f in findings_of(doc, check) if (f["resource"]["kind"], f["resource"]["name"]) == (kind, name)]
    assert len(found) == 1, [f["id"] for f in findings_of(doc, check)]
    return found[0]


def _ev(f: dict) -> str:
    return "\n".join(f["evidence"])


def _cmds(f: dict) -> str:
    return "\n".join(f["remediation"]["commands"])


# --- component-crashloop -----------------------------------------------------------------------
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


# --- liveness-probe-restarts -------------------------------------------------------------------
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


# --- task-pod-unschedulable ----------------------------------------------------------------------
def test_unschedulable_request_larger_than_any_node(doc):
    d = doc("task-pods-oom-unschedulable")
    pod = _pod("task-pods-oom-unschedulable", task="train_model")
    f = _one(d, "task-pod-unschedulable", "Pod", pod)
    assert "requests more memory than any node can allocate" in f["title"]
    ev = _ev(f)
    assert "worker_pods_pending_timeout 300s" in ev and "3 Insufficient memory" in ev
    assert "NotTriggerScaleUp (x4, cluster-autoscaler): pod didn't trigger scale-up: 1 Insufficient memory" in ev
    assert "pod requests: cpu 2, memory 40Gi" in ev and "allocatable: cpu 7.91, memory 27.8Gi" in ev
    assert ("gcloud container node-pools create airflow-tasks-highmem --cluster airflow-prod --location europe-west1 "
            "--project acme-data-prod --machine-type e2-highmem-8") in _cmds(f)


def test_unschedulable_pool_at_max_size(doc):
    d = doc("task-pods-oom-unschedulable")
    pod = _pod("task-pods-oom-unschedulable", task="transform_orders")
    f = _one(d, "task-pod-unschedulable", "Pod", pod)
    assert "not enough free cpu on the nodes" in f["title"]
    assert "max node group size reached" in _ev(f)
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--enable-autoscaling --node-pool airflow-pool --min-nodes 1 --max-nodes 6") in _cmds(f)   # keeps its minimum


def test_unschedulable_young_pending_pods_are_start_up(doc):
    d = doc("task-pods-oom-unschedulable")
    young = _pod("task-pods-oom-unschedulable", task="transform_customers")
    assert young not in {f["resource"]["name"] for f in findings_of(d, "task-pod-unschedulable")}
    assert status_of(doc("healthy-af3-k8s-wi"), "task-pod-unschedulable") == "pass"


# --- task-pod-oomkilled --------------------------------------------------------------------------
def test_oomkilled_task_pod_with_limit_and_pod_override(doc):
    d = doc("task-pods-oom-unschedulable")
    pod = _pod("task-pods-oom-unschedulable", task="compute_features")
    f = _one(d, "task-pod-oomkilled", "Pod", pod)
    assert "(dag ml_feature_refresh, task compute_features, try 1) was OOMKilled (memory limit 1Gi)" in f["title"]
    ev = _ev(f)
    assert "container base state.terminated: reason OOMKilled, exitCode 137" in ev
    assert "requests cpu 1, memory 512Mi; limits cpu none, memory 1Gi" in ev
    assert "pod_override" in f["remediation"]["summary"]
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set workers.resources.requests.memory=2Gi --set workers.resources.limits.memory=2Gi") in _cmds(f)


def test_oomkilled_celery_worker(doc):
    d = doc("celery-worker-oom-af2")
    w = _pod("celery-worker-oom-af2", "worker")
    f = _one(d, "task-pod-oomkilled", "Pod", w)
    assert "Celery worker" in f["title"] and "limit 4Gi" in f["title"]
    assert "lastState.terminated: reason OOMKilled, exitCode 137" in _ev(f)
    assert "--set-string config.celery.worker_concurrency=8" in _cmds(f)
    assert "--set workers.resources.limits.memory=8Gi" in _cmds(f)


def test_oomkilled_passes_without_oom(doc):
    for name in ("healthy-af3-k8s-wi", "component-crashloop-af3"):
        assert status_of(doc(name), "task-pod-oomkilled") == "pass", name


# --- evictable-workers -----------------------------------------------------------------------------
def test_evictable_spot_pool_with_sigterm_evidence(doc):
    d = doc("evictable-task-pods-spot")
    f = _one(d, "evictable-workers", "NodePool", "spot-pool")
    assert f["severity"] == "warning" and f["resource"]["uri"].endswith("/clusters/airflow-prod/nodePools/spot-pool")
    ev = _ev(f)
    assert "config.spot True" in ev and "labelled cloud.google.com/gke-spot=true" in ev
    assert "Received SIGTERM. Terminating subprocesses." in ev
    assert "Pod was terminated in response to imminent node shutdown." in ev
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set-string workers.nodeSelector.cloud\\.google\\.com/gke-nodepool=airflow-pool") in _cmds(f)


def test_evictable_safe_to_evict_celery_workers(doc):
    d = doc("celery-worker-oom-af2")
    f = _one(d, "evictable-workers", "Deployment", "af2-worker")
    assert 'cluster-autoscaler.kubernetes.io/safe-to-evict: "true"' in _ev(f)
    assert "--set workers.safeToEvict=false --set workers.terminationGracePeriodSeconds=3600" in _cmds(f)


def test_evictable_is_extended_only_and_passes_on_healthy(run_cli, doc):
    _, plain = doctor_json(run_cli, "evictable-task-pods-spot")
    assert "evictable-workers" not in {c["id"] for c in plain["checks"]}
    assert status_of(doc("healthy-af3-k8s-wi"), "evictable-workers") == "pass"


# --- executor-rbac-forbidden ---------------------------------------------------------------------
def test_rbac_missing_role_and_403_in_the_scheduler_log(doc):
    d = doc("executor-rbac-forbidden-af2")
    f = _one(d, "executor-rbac-forbidden", "ServiceAccount", "af2-airflow-scheduler")
    assert f["resource"]["namespace"] == "data-pipelines"
    assert "may not list pods in namespace data-pipelines" in f["title"]
    ev = _ev(f)
    assert "missing verbs on pods in namespace data-pipelines: create, get, list, watch, delete, patch" in ev
    assert 'cannot list resource \\"pods\\"' in ev
    cmds = _cmds(f)
    assert ("kubectl auth can-i list pods --as=system:serviceaccount:data-pipelines:af2-airflow-scheduler "
            "--namespace data-pipelines") in cmds
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set rbac.create=true --set allowPodLaunching=true") in cmds
    assert ("kubectl create rolebinding airflow-pod-launcher --namespace data-pipelines --role=airflow-pod-launcher "
            "--serviceaccount=data-pipelines:af2-airflow-scheduler") in cmds


def test_rbac_granted_by_role_or_cluster_role_binding(doc):
    for name in ("healthy-af3-k8s-wi", "evictable-task-pods-spot"):
        assert status_of(doc(name), "executor-rbac-forbidden") == "pass", name
    # CeleryExecutor launches no task pods: not applicable, which is not a pass
    assert status_of(doc("healthy-af2-celery"), "executor-rbac-forbidden") == "skip"


# --- image-version-skew ----------------------------------------------------------------------------
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


# --- jwt-secret-mismatch ---------------------------------------------------------------------------
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


# --- execution-api-unreachable ---------------------------------------------------------------------
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


# --- external-secret-not-synced ----------------------------------------------------------------------
def test_eso_store_with_wrong_cluster_location(doc):
    d = doc("external-secret-not-synced")
    f = _one(d, "external-secret-not-synced", "SecretStore", "gcp-secret-manager")
    ev = _ev(f)
    assert "clusterLocation is 'europe-west1-b' but this cluster's is 'europe-west1'" in ev
    assert "idbindtoken token, status: 404" in ev
    assert ("kubectl patch secretstore gcp-secret-manager --namespace airflow --type merge -p "
            "'{\"spec\":{\"provider\":{\"gcpsm\":{\"auth\":{\"workloadIdentity\":{\"clusterLocation\":\"europe-west1\","
            "\"clusterName\":\"airflow-prod\",\"clusterProjectID\":\"acme-data-prod\"}}}}}}'") in _cmds(f)


def test_eso_external_secret_lists_the_blocked_pods_and_links_its_store(doc):
    d = doc("external-secret-not-synced")
    f = _one(d, "external-secret-not-synced", "ExternalSecret", "airflow-metadata")
    assert f["caused_by"] == ["external-secret-not-synced:SecretStore/airflow/gcp-secret-manager"]
    assert "4 Airflow pod(s) wait for Secret airflow-metadata" in f["title"]
    sched = _pod("external-secret-not-synced", "scheduler")
    assert f"Pod {sched} (scheduler) waits for Secret airflow-metadata" in _ev(f)


def test_eso_permission_denied_grants_secret_accessor(doc):
    d = doc("external-secret-not-synced")
    f = _one(d, "external-secret-not-synced", "ExternalSecret", "airflow-connections")
    assert "Permission 'secretmanager.versions.access' denied" in _ev(f)
    assert ("gcloud secrets add-iam-policy-binding airflow-conn-bigquery --project acme-data-prod "
            "--member serviceAccount:ESO_GSA_EMAIL --role roles/secretmanager.secretAccessor") in _cmds(f)
    names = {x["resource"]["name"] for x in findings_of(d, "external-secret-not-synced")}
    assert "airflow-fernet-key" not in names


def test_eso_not_installed_is_not_applicable(doc):
    d = doc("healthy-af3-k8s-wi")   # the CRDs answer 404: not applicable, which is not a pass
    assert _check(d, "external-secret-not-synced")[:2] == (
        "skip", "External Secrets Operator is not installed (its CRDs answer 404): not applicable")


# --- fernet-key-changed ------------------------------------------------------------------------------
def test_fernet_invalid_token_in_a_task_log(doc):
    d = doc("fernet-key-changed-af2")
    f = _one(d, "fernet-key-changed", "Secret", "af2-fernet-key")
    assert f["severity"] == "warning" and f["resource"]["namespace"] == "data-pipelines"
    ev = _ev(f)
    assert "cryptography.fernet.InvalidToken" in ev
    assert "AIRFLOW__CORE__FERNET_KEY from Secret af2-fernet-key key fernet-key" in ev
    cmds = _cmds(f)
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set fernetKeySecretName=af2-fernet-key-pinned") in cmds
    assert "airflow rotate-fernet-key" in cmds


def test_fernet_passes_without_evidence(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "jwt-secret-mismatch-af3"):
        assert status_of(doc(name), "fernet-key-changed") == "pass", name


# --- branches on edited copies of the scenarios ------------------------------------------------------
def _copy(tmp_path, name: str):
    import shutil

    dst = tmp_path / name
    shutil.copytree(scenario(name), dst)
    return dst


def _edit(root, rel: str, fn) -> None:
    path = root / rel
    body = json.loads(path.read_text())
    fn(body)
    path.write_text(json.dumps(body))


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


def test_fernet_components_reading_different_secrets(run_cli, tmp_path):
    root = _copy(tmp_path, "healthy-af2-celery")
    ns = json.loads((root / "meta.json").read_text())["namespace"]

    def other_secret(body):
        for p in body["items"]:
            if p["metadata"]["labels"].get("component") == "scheduler":
                for e in p["spec"]["containers"][0]["env"]:
                    if e["name"] == "AIRFLOW__CORE__FERNET_KEY":
                        e["valueFrom"]["secretKeyRef"]["name"] = "fernet-from-vault"
    _edit(root, f"k8s/api/v1/namespaces/{ns}/pods.json", other_secret)
    _, d = doctor_json(run_cli, root, "--check", "fernet-key-changed")
    [f] = findings_of(d, "fernet-key-changed")
    assert f["resource"]["name"] == "fernet-from-vault" and f["severity"] == "warning"
    assert "components take the fernet key from different places" in f["title"]


def test_rbac_unknown_without_cluster_bindings_or_logs_is_a_skip_not_a_pass(run_cli, tmp_path):
    root = _copy(tmp_path, "executor-rbac-forbidden-af2")
    (root / "k8s/apis/rbac.authorization.k8s.io/v1/clusterrolebindings.json").unlink()
    for log in root.glob("k8s/api/v1/namespaces/data-pipelines/pods/*/log/scheduler*.log"):
        log.write_text("")
    _, d = doctor_json(run_cli, root, "--check", "executor-rbac-forbidden")
    assert status_of(d, "executor-rbac-forbidden") == "skip"
    assert "clusterrolebindings" in next(c["reason"] for c in d["checks"] if c["id"] == "executor-rbac-forbidden")


def test_eso_v1beta1_is_read_when_v1_is_not_served(run_cli, tmp_path):
    root = _copy(tmp_path, "external-secret-not-synced")
    base = root / "k8s/apis/external-secrets.io"
    for kind in ("externalsecrets", "secretstores"):
        v1, beta = base / f"v1/namespaces/airflow/{kind}.json", base / f"v1beta1/namespaces/airflow/{kind}.json"
        text = v1.read_text().replace("external-secrets.io/v1\"", "external-secrets.io/v1beta1\"")
        (base / f"v1beta1/namespaces/airflow/{kind}.error.json").rename(v1.with_name(f"{kind}.error.json"))
        v1.unlink()
        beta.write_text(text)
    _, d = doctor_json(run_cli, root, "--check", "external-secret-not-synced")
    names = sorted((f["resource"]["kind"], f["resource"]["name"]) for f in findings_of(d, "external-secret-not-synced"))
    assert names == [("ExternalSecret", "airflow-connections"), ("ExternalSecret", "airflow-metadata"),
                     ("SecretStore", "gcp-secret-manager")]
    assert all("(v1beta1)" in f["evidence"][0] for f in findings_of(d, "external-secret-not-synced"))


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
