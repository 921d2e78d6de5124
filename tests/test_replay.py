"""The replay server, proven with the real client libraries over loopback (no monkeypatching).

Each test builds a small snapshot-v1 directory (objects shaped like real API responses) and talks
to :class:`ReplayServer` with the clients the live reader uses: ``kubernetes``,
``google-cloud-container``, ``google-cloud-service-usage``, ``google-cloud-resource-manager`` and
``google-cloud-storage`` (REST transport, anonymous credentials).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import container_v1, resourcemanager_v3, service_usage_v1, storage
from google.cloud.storage.retry import DEFAULT_RETRY
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

try:
    from replay import (GOOGLE_SERVICES, Fault, ReplayServer, gcs_forbidden, k8s_forbidden,
                        replay_server)  # noqa: F401 - replay_server is a fixture
except ImportError:  # tests/ became a package
    from tests.replay import (GOOGLE_SERVICES, Fault, ReplayServer, gcs_forbidden,  # type: ignore
                              k8s_forbidden, replay_server)  # noqa: F401

PROJECT, LOCATION, CLUSTER, NS = "acme-airflow-prod", "europe-west1", "airflow-prod", "airflow"
BUCKET = "acme-airflow-logs"
CTX = f"gke_{PROJECT}_{LOCATION}_{CLUSTER}"
SCHED = "airflow-scheduler-6f9c7d8b5-x2k4p"
TASK = "example-bash-operator-run-this-last-k7f2m9qx"
CAPTURED = "2024-10-01T10:00:00Z"


# ------------------------------------------------------------------------------------------
# A tiny but realistic snapshot
# ------------------------------------------------------------------------------------------


def _container(name: str, image: str, args: list[str] | None = None) -> dict:
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
         "resources": {}, "terminationMessagePath": "/dev/termination-log",
         "terminationMessagePolicy": "File"}
    if args:
        c["args"] = args
    return c


def _pod(name: str, component: str, containers: list[dict], statuses: list[dict], *,
         init: list[dict] | None = None, init_statuses: list[dict] | None = None,
         phase: str = "Running", extra_labels: dict | None = None, uid: int = 0) -> dict:
    labels = {"tier": "airflow", "component": component, "release": "airflow"}
    labels.update(extra_labels or {})
    spec = {"containers": containers, "nodeName": "gke-airflow-prod-default-pool-3f6a9e1c-7xkq",
            "serviceAccountName": f"airflow-{component}", "restartPolicy": "Always",
            "schedulerName": "default-scheduler", "securityContext": {"runAsUser": 50000, "fsGroup": 0},
            "terminationGracePeriodSeconds": 600, "dnsPolicy": "ClusterFirst"}
    status = {"phase": phase, "hostIP": "10.132.0.7", "podIP": f"10.52.1.{10 + uid}",
              "startTime": "2024-10-01T09:40:00Z", "qosClass": "BestEffort",
              "containerStatuses": statuses}
    if init:
        spec["initContainers"] = init
        status["initContainerStatuses"] = init_statuses or []
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"0b7e6f52-5a1d-4c3e-9f4b-00000000000{uid}",
                     "resourceVersion": str(118200 + uid), "creationTimestamp": "2024-10-01T09:40:00Z",
                     "labels": labels},
        "spec": spec,
        "status": status,
    }


def _running(name: str, image: str, uid: int) -> dict:
    return {"name": name, "ready": True, "restartCount": 0, "image": image,
            "imageID": f"docker.io/{image}@sha256:{'a' * 64}", "started": True,
            "containerID": f"containerd://{uid:064x}",
            "state": {"running": {"startedAt": "2024-10-01T09:41:00Z"}}, "lastState": {}}


def _waiting(name: str, image: str, reason: str, message: str | None = None) -> dict:
    waiting = {"reason": reason}
    if message:
        waiting["message"] = message
    return {"name": name, "ready": False, "restartCount": 0, "image": image, "imageID": "",
            "started": False, "state": {"waiting": waiting}, "lastState": {}}


AIRFLOW_IMAGE = "apache/airflow:2.9.3"
GIT_SYNC = "registry.k8s.io/git-sync/git-sync:v4.1.0"

PODS = [
    _pod(SCHED, "scheduler",
         [_container("scheduler", AIRFLOW_IMAGE, ["bash", "-c", "exec airflow scheduler"]),
          _container("scheduler-log-groomer", AIRFLOW_IMAGE)],
         [_running("scheduler", AIRFLOW_IMAGE, 1), _running("scheduler-log-groomer", AIRFLOW_IMAGE, 2)],
         init=[_container("wait-for-airflow-migrations", AIRFLOW_IMAGE)],
         init_statuses=[{"name": "wait-for-airflow-migrations", "ready": True, "restartCount": 0,
                         "image": AIRFLOW_IMAGE, "imageID": "", "containerID": "containerd://" + "c" * 64,
                         "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                  "containerID": "containerd://" + "c" * 64}}}],
         uid=1),
    _pod("airflow-webserver-5c8d7b9f4-qm7zt", "webserver",
         [_container("webserver", AIRFLOW_IMAGE)], [_running("webserver", AIRFLOW_IMAGE, 3)], uid=2),
    _pod("airflow-triggerer-0", "triggerer",
         [_container("triggerer", AIRFLOW_IMAGE)], [_running("triggerer", AIRFLOW_IMAGE, 4)], uid=3),
    _pod("airflow-postgresql-0", "postgresql",
         [_container("postgresql", "docker.io/bitnami/postgresql:16.1.0-debian-11-r15")],
         [_running("postgresql", "docker.io/bitnami/postgresql:16.1.0-debian-11-r15", 5)], uid=4),
    _pod(TASK, "worker",
         [_container("base", AIRFLOW_IMAGE)], [_waiting("base", AIRFLOW_IMAGE, "PodInitializing")],
         init=[_container("git-sync-init", GIT_SYNC)],
         init_statuses=[_waiting("git-sync-init", GIT_SYNC, "ImagePullBackOff",
                                 f'Back-off pulling image "{GIT_SYNC}"')],
         phase="Pending", extra_labels={"kubernetes_executor": "True", "dag_id": "example_bash_operator",
                                        "task_id": "run_this_last"}, uid=5),
]

SCHEDULER_LOG = "".join(
    f"[2024-10-01T09:5{i}:00.000+0000] {{scheduler_job_runner.py:{800 + i}}} INFO - line {i}\n"
    for i in range(6))

CLUSTER_BODY = {
    "name": CLUSTER, "location": LOCATION, "status": "RUNNING",
    "currentMasterVersion": "1.29.8-gke.1211000", "currentNodeVersion": "1.29.8-gke.1211000",
    "selfLink": f"https://container.googleapis.com/v1/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}",
    "nodePools": [{
        "name": "default-pool", "status": "RUNNING", "version": "1.29.8-gke.1211000",
        "initialNodeCount": 1,
        "config": {"machineType": "e2-standard-4", "diskSizeGb": 100, "imageType": "COS_CONTAINERD",
                   "serviceAccount": "default",
                   "oauthScopes": ["https://www.googleapis.com/auth/devstorage.read_only",
                                   "https://www.googleapis.com/auth/logging.write",
                                   "https://www.googleapis.com/auth/monitoring",
                                   "https://www.googleapis.com/auth/service.management.readonly",
                                   "https://www.googleapis.com/auth/servicecontrol",
                                   "https://www.googleapis.com/auth/trace.append"],
                   "metadata": {"disable-legacy-endpoints": "true"}},
    }],
    "addonsConfig": {"gcePersistentDiskCsiDriverConfig": {"enabled": True}},
}

SERVICE_BODY = {
    "name": "projects/412390871523/services/container.googleapis.com",
    "parent": "projects/412390871523",
    "config": {"name": "container.googleapis.com", "title": "Kubernetes Engine API",
               "documentation": {}, "quota": {}, "authentication": {}, "usage": {}, "monitoring": {}},
    "state": "ENABLED",
}

PROJECT_IAM = {
    "version": 1, "etag": "BwYjH3x4ZkA=",
    "bindings": [
        {"role": "roles/editor", "members": ["serviceAccount:412390871523-compute@developer.gserviceaccount.com",
                                             "serviceAccount:412390871523@cloudservices.gserviceaccount.com"]},
        {"role": "roles/owner", "members": ["user:platform-admin@acme.example"]},
    ],
}

BUCKET_BODY = {
    "kind": "storage#bucket", "selfLink": f"https://www.googleapis.com/storage/v1/b/{BUCKET}",
    "id": BUCKET, "name": BUCKET, "projectNumber": "412390871523", "metageneration": "1",
    "location": "EUROPE-WEST1", "storageClass": "STANDARD", "etag": "CAE=",
    "timeCreated": "2024-09-20T08:00:00.000Z", "updated": "2024-09-20T08:00:00.000Z",
    "iamConfiguration": {"bucketPolicyOnly": {"enabled": True},
                         "uniformBucketLevelAccess": {"enabled": True},
                         "publicAccessPrevention": "enforced"},
    "locationType": "region", "rpo": "DEFAULT",
}

BUCKET_IAM = {
    "kind": "storage#policy", "resourceId": f"projects/_/buckets/{BUCKET}", "version": 1, "etag": "CAE=",
    "bindings": [
        {"role": "roles/storage.legacyBucketOwner", "members": [f"projectEditor:{PROJECT}",
                                                                f"projectOwner:{PROJECT}"]},
        {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{PROJECT}"]},
    ],
}

NODES_FORBIDDEN = {
    "status": 403,
    "body": k8s_forbidden("/api/v1/nodes", "airflow-gke@acme-airflow-prod.iam.gserviceaccount.com"),
}


def _write(root: Path, rel: str, body) -> None:
    f = root / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, (bytes, str)):
        f.write_bytes(body if isinstance(body, bytes) else body.encode())
    else:
        f.write_text(json.dumps(body, indent=1))


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    root = tmp_path / "snap"
    _write(root, "meta.json", {"format": "airflow-gke/snapshot@1", "captured_at": CAPTURED,
                               "tool_version": "0.1.0", "context": CTX, "project": PROJECT,
                               "location": LOCATION, "cluster": CLUSTER, "namespace": NS,
                               "release": "airflow"})
    _write(root, f"k8s/api/v1/namespaces/{NS}/pods.json",
           {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "118342"}, "items": PODS})
    _write(root, f"k8s/api/v1/namespaces/{NS}/pods/{SCHED}/log/scheduler.log", SCHEDULER_LOG)
    _write(root, f"k8s/api/v1/namespaces/{NS}/pods/{SCHED}/log/scheduler.previous.log",
           "previous instance\nOOMKilled\n")
    _write(root, "k8s/api/v1/nodes.error.json", NODES_FORBIDDEN)
    _write(root, f"gcp/container/v1/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}.json",
           CLUSTER_BODY)
    _write(root, f"gcp/serviceusage/v1/projects/{PROJECT}/services/container.googleapis.com.json",
           SERVICE_BODY)
    _write(root, f"gcp/cloudresourcemanager/v3/projects/{PROJECT}:getIamPolicy.json", PROJECT_IAM)
    _write(root, f"gcp/storage/storage/v1/b/{BUCKET}.json", BUCKET_BODY)
    _write(root, f"gcp/storage/storage/v1/b/{BUCKET}/iam.json", BUCKET_IAM)
    return root


@pytest.fixture
def srv(snapshot: Path, replay_server):  # noqa: F811 - the fixture imported above
    return replay_server(snapshot)


@pytest.fixture
def core(srv: ReplayServer, tmp_path: Path):
    """CoreV1Api through ``load_kube_config`` on the generated kubeconfig (global default
    configuration restored afterwards)."""
    saved = k8s.Configuration._default
    kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")
    k8s_config.load_kube_config(config_file=str(kubeconfig))
    try:
        yield k8s.CoreV1Api()
    finally:
        k8s.Configuration._default = saved


def _gapic(cls, srv: ReplayServer, service: str):
    return cls(credentials=AnonymousCredentials(), transport="rest",
               client_options={"api_endpoint": srv.endpoints[service]})


def _gcs(srv: ReplayServer) -> storage.Client:
    return storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": srv.endpoints["storage"]})


def _get(url: str, method: str = "GET", timeout: float = 5) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


# ------------------------------------------------------------------------------------------
# Wiring
# ------------------------------------------------------------------------------------------


def test_kubeconfig_and_env_wiring(srv: ReplayServer, tmp_path: Path):
    path = srv.write_kubeconfig(tmp_path / "kc")
    contexts, current = k8s_config.list_kube_config_contexts(config_file=str(path))
    assert current["name"] == CTX
    assert current["context"]["namespace"] == NS
    assert [c["name"] for c in contexts] == [CTX]
    # An explicit name wins over meta.json.
    other = srv.write_kubeconfig(tmp_path / "kc2", "gke_p_us-central1-a_c")
    assert k8s_config.list_kube_config_contexts(config_file=str(other))[1]["name"] == "gke_p_us-central1-a_c"

    env = srv.env(kubeconfig=path)
    assert env["KUBECONFIG"] == str(path)
    for service in ("CONTAINER", "SERVICEUSAGE", "CLOUDRESOURCEMANAGER", "STORAGE", "IAM",
                    "IAMCREDENTIALS", "SECRETMANAGER"):
        url = env[f"AIRFLOW_GKE_ENDPOINT_{service}"]
        assert url.startswith("http://127.0.0.1:") and url == srv.endpoints[service.lower()]
    ports = {srv.k8s_url, *srv.endpoints.values()}
    assert len(ports) == 1 + len(GOOGLE_SERVICES)  # one port per server


def test_stops_cleanly_even_with_a_hung_request(snapshot: Path):
    s = ReplayServer(snapshot, faults=[Fault(path="/hang", hang=60)]).start()
    assert _get(s.k8s_url + "/version")[0] == 200
    outcome: list = []

    def hung_client() -> None:
        try:
            outcome.append(_get(s.k8s_url + "/hang", timeout=30))
        except Exception as exc:  # noqa: BLE001 - any failure is the expected outcome
            outcome.append(exc)

    t = threading.Thread(target=hung_client)
    t.start()
    deadline = time.monotonic() + 5
    while not s.log.count("/hang") and time.monotonic() < deadline:
        time.sleep(0.01)
    threads = list(s._threads)
    t0 = time.monotonic()
    s.stop()
    t.join(timeout=5)
    assert time.monotonic() - t0 < 3
    assert not any(th.is_alive() for th in threads)
    assert outcome and isinstance(outcome[0], Exception)  # the hung request got no answer


def test_serves_a_tar_gz_snapshot(snapshot: Path, tmp_path: Path):
    archive = tmp_path / "snap.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(snapshot, arcname="snapshot-2024-10-01")  # one top-level folder
    with ReplayServer(archive) as s:
        status, body, _ = _get(s.k8s_url + f"/api/v1/namespaces/{NS}/pods")
        assert status == 200 and len(json.loads(body)["items"]) == 5
        extracted = s.root
    assert not extracted.exists()


def _scenarios() -> list[Path]:
    root = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"
    return sorted(p for p in root.iterdir() if (p / "meta.json").is_file()) if root.is_dir() else []


def _request_for(rel: str) -> tuple[str, str, str] | None:
    """(service, method, url path) of the request a stored snapshot file answers."""
    quote = lambda p: urllib.parse.quote(p, safe="/:@")  # noqa: E731
    stem = rel.removesuffix(".error.json").removesuffix(".json").removesuffix(".log")
    if rel.startswith("k8s/"):
        path = stem[len("k8s"):]
        head, sep, container = path.rpartition("/log/")
        if sep and head.startswith("/api/v1/namespaces/") and "/pods/" in head:
            previous = container.endswith(".previous")
            container = container.removesuffix(".previous")
            return "k8s", "GET", (f"{quote(head)}/log?container={urllib.parse.quote(container)}"
                                  + ("&previous=true" if previous else ""))
        return "k8s", "GET", quote(path)
    if rel.startswith("gcp/"):
        _, service, path = stem.split("/", 2)
        method = "POST" if path.endswith((":getIamPolicy", ":testIamPermissions")) else "GET"
        return service, method, "/" + quote(path) + "?alt=json&prettyPrint=false"
    return None


@pytest.mark.parametrize("which", ["tmp", *(p.name for p in _scenarios())])
def test_every_stored_file_is_served_as_stored(which: str, snapshot: Path):
    """Any snapshot-v1 directory: each file comes back byte for byte, each error with its status."""
    root = snapshot if which == "tmp" else Path(__file__).resolve().parent.parent / "fixtures/scenarios" / which
    if which == "tmp":  # also an error file on a log and on a Google read
        _write(root, f"k8s/api/v1/namespaces/{NS}/pods/{TASK}/log/base.error.json",
               {"status": 400, "body": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Failure", "reason": "BadRequest", "code": 400,
                                        "message": f'container "base" in pod "{TASK}" is waiting to start: '
                                                   "PodInitializing"}})
        _write(root, f"gcp/iam/v1/projects/{PROJECT}/serviceAccounts/x@{PROJECT}.iam.gserviceaccount.com.error.json",
               {"status": 404, "body": {"error": {"code": 404, "status": "NOT_FOUND",
                                                  "message": "Unknown service account"}}})
    files = sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()
                   and f.name.endswith((".json", ".log")) and f.parts[len(root.parts)] in ("k8s", "gcp"))
    assert files
    with ReplayServer(root) as srv:
        for rel in files:
            service, method, path = _request_for(rel)
            base = srv.k8s_url if service == "k8s" else srv.endpoints[service]
            status, body, _ = _get(base + path, method=method)
            stored = (root / rel).read_bytes()
            if rel.endswith(".error.json"):
                doc = json.loads(stored)
                recorded = doc["status"] if isinstance(doc["status"], int) and 100 <= doc["status"] <= 599 else 504
                assert status == recorded, rel  # a failure without HTTP status replays as 504
                assert json.loads(body) == doc["body"], rel
            else:
                assert (status, body) == (200, stored), rel
        assert srv.log.mutating() == []
        assert not srv.log.duplicates()


# ------------------------------------------------------------------------------------------
# Kubernetes
# ------------------------------------------------------------------------------------------


def test_list_pods_in_pages_gets_every_pod_once(core: k8s.CoreV1Api, srv: ReplayServer):
    names, token, pages = [], None, 0
    while True:
        kw = {"limit": 2, "_preload_content": False}
        if token:
            kw["_continue"] = token
        body = json.loads(core.list_namespaced_pod(NS, **kw).data)
        pages += 1
        assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
        assert body["metadata"]["resourceVersion"] == "118342"
        names += [p["metadata"]["name"] for p in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            assert "remainingItemCount" not in body["metadata"]
            break
        assert body["metadata"]["remainingItemCount"] == 5 - len(names)
    assert pages == 3
    assert names == [p["metadata"]["name"] for p in PODS]
    entries = srv.log.select(f"/api/v1/namespaces/{NS}/pods")
    assert [e.params.get("limit") for e in entries] == ["2", "2", "2"]
    assert all(e.headers.get("Authorization") == "Bearer replay-dummy-token" for e in entries)
    assert not srv.log.duplicates()


def test_unpaged_list_is_the_stored_body_and_typed_clients_work(core: k8s.CoreV1Api):
    pods = core.list_namespaced_pod(NS)  # model deserialization too
    assert [p.metadata.name for p in pods.items] == [p["metadata"]["name"] for p in PODS]
    assert pods.items[4].status.init_container_statuses[0].state.waiting.reason == "ImagePullBackOff"


def test_label_and_field_selectors_filter_like_the_api_server(core: k8s.CoreV1Api):
    def names(**kw):
        body = json.loads(core.list_namespaced_pod(NS, _preload_content=False, **kw).data)
        return [p["metadata"]["name"] for p in body["items"]], body["metadata"]

    assert names(label_selector="component=worker,kubernetes_executor=True")[0] == [TASK]
    assert len(names(label_selector="component in (scheduler, triggerer)")[0]) == 2
    assert TASK not in names(label_selector="component!=worker")[0]
    assert names(field_selector="status.phase=Pending")[0] == [TASK]
    assert names(field_selector="metadata.name=airflow-triggerer-0")[0] == ["airflow-triggerer-0"]
    # Pagination under a selector: continue works, no remainingItemCount (as the API server).
    first, md = names(label_selector="tier=airflow", limit=3)
    assert len(first) == 3 and md["continue"] and "remainingItemCount" not in md
    rest, md = names(label_selector="tier=airflow", limit=3, _continue=md["continue"])
    assert len(rest) == 2 and "continue" not in md


def test_malformed_stored_objects_do_not_break_the_server(snapshot: Path, replay_server):  # noqa: F811
    """Fuzzed snapshots (issue 7) go through the live path too: odd shapes must not become 500s."""
    weird = {"kind": "PodList", "apiVersion": "v1", "metadata": "oops",
             "items": [None, 3, "x", {"metadata": {"name": "a", "labels": "tier=airflow"}},
                       {"metadata": None}, {"metadata": {"name": "b", "labels": {"tier": "airflow"}},
                                            "spec": {"containers": "nope"}, "status": []}]}
    _write(snapshot, f"k8s/api/v1/namespaces/{NS}/pods.json", weird)
    srv = replay_server(snapshot)
    base = srv.k8s_url + f"/api/v1/namespaces/{NS}/pods"
    status, raw, _ = _get(base + "?labelSelector=tier%3Dairflow&limit=1")
    assert status == 200 and [p["metadata"]["name"] for p in json.loads(raw)["items"]] == ["b"]
    assert _get(base + "?fieldSelector=status.phase%3DRunning")[0] == 200
    assert _get(base + "?limit=2")[0] == 200
    assert _get(base + "/b/log?container=base")[0] == 400  # not a container of b
    assert _get(base + "/a/log")[0] == 400  # no containers to choose from
    assert _get(base + "/b")[0] == 200
    assert _get(base + "?labelSelector=%28%28bad")[0] == 400


def test_bad_continue_token_is_a_400(core: k8s.CoreV1Api):
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod(NS, limit=2, _continue="not-a-token")
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"].startswith("continue key is not valid")


def test_pod_log_tail_lines_and_previous(core: k8s.CoreV1Api, srv: ReplayServer):
    text = core.read_namespaced_pod_log(SCHED, NS, container="scheduler", tail_lines=2)
    assert text == "".join(SCHEDULER_LOG.splitlines(keepends=True)[-2:])
    assert core.read_namespaced_pod_log(SCHED, NS, container="scheduler") == SCHEDULER_LOG
    assert core.read_namespaced_pod_log(SCHED, NS, container="scheduler",
                                        previous=True) == "previous instance\nOOMKilled\n"
    (entry,) = srv.log.select(f"/api/v1/namespaces/{NS}/pods/{SCHED}/log")[:1]
    assert entry.params == {"container": "scheduler", "tailLines": "2"}
    status, _, headers = _get(srv.k8s_url + f"/api/v1/namespaces/{NS}/pods/{SCHED}/log?container=scheduler")
    assert status == 200 and headers["Content-Type"] == "text/plain"


def test_missing_logs_answer_like_the_api_server(core: k8s.CoreV1Api):
    def error(pod, **kw):
        with pytest.raises(ApiException) as e:
            core.read_namespaced_pod_log(pod, NS, **kw)
        body = json.loads(e.value.body)
        assert body["kind"] == "Status" and body["code"] == e.value.status
        return e.value.status, body["message"]

    assert error(TASK, container="git-sync-init") == (
        400, f'container "git-sync-init" in pod "{TASK}" is waiting to start: trying and failing to pull image')
    assert error(TASK, container="base") == (
        400, f'container "base" in pod "{TASK}" is waiting to start: PodInitializing')
    assert error(TASK, container="base", previous=True) == (
        400, f'previous terminated container "base" in pod "{TASK}" not found')
    assert error(TASK, container="nope") == (400, f"container nope is not valid for pod {TASK}")
    assert error(SCHED) == (400, f"a container name must be specified for pod {SCHED}, choose one of: "
                                 "[scheduler scheduler-log-groomer] or one of the init containers: "
                                 "[wait-for-airflow-migrations]")
    assert error("gone-pod", container="base") == (404, 'pods "gone-pod" not found')


def test_error_file_arrives_as_api_exception(core: k8s.CoreV1Api):
    with pytest.raises(ApiException) as e:
        core.list_node()
    assert e.value.status == 403
    body = json.loads(e.value.body)
    assert body == NODES_FORBIDDEN["body"]
    assert body["reason"] == "Forbidden"
    assert body["message"] == ('nodes is forbidden: User "airflow-gke@acme-airflow-prod.iam.gserviceaccount.com" '
                               'cannot list resource "nodes" in API group "" at the cluster scope: '
                               'requires one of ["container.nodes.list"] permission(s).')


def test_list_of_a_served_type_is_never_404(core: k8s.CoreV1Api, srv: ReplayServer):
    """As a real API server: a list of a type it serves is a list, possibly empty, in any
    namespace, one that does not exist included; an object it does not hold is 404."""
    pvcs = core.list_namespaced_persistent_volume_claim(NS)       # not stored in the snapshot
    assert pvcs.kind == "PersistentVolumeClaimList" and pvcs.items == []
    assert core.list_namespaced_pod(NS).items                      # stored
    nosuch = core.list_namespaced_pod("nosuch")                     # a namespace that does not exist
    assert nosuch.kind == "PodList" and nosuch.items == []
    raw = requests.get(f"{srv.k8s_url}/apis/apps/v1/namespaces/nosuch/deployments", timeout=5)
    assert raw.status_code == 200
    assert raw.json() == {"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "1"},
                          "items": []}
    assert k8s.CoreV1Api(core.api_client).list_persistent_volume_claim_for_all_namespaces().items == []
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("airflow-config", NS)
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == 'configmaps "airflow-config" not found'


def test_unknown_resource_type_is_a_status_not_found(srv: ReplayServer):
    """404 only for what the server does not serve: a custom resource whose CRD is not installed
    (no list of it stored), an unknown group, a cluster-scoped type asked per namespace."""
    for path in ("apis/external-secrets.io/v1/namespaces/airflow/externalsecrets",
                 "apis/external-secrets.io/v1/namespaces/nosuch/externalsecrets",
                 "apis/no.such.group/v1/widgets",
                 "api/v1/namespaces/airflow/nodes",
                 "api/v1/namespaces/airflow/widgets"):
        r = requests.get(f"{srv.k8s_url}/{path}", timeout=5)
        assert r.status_code == 404, path
        assert r.json() == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound",
            "details": {}, "code": 404}, path


def test_custom_resource_stored_in_one_namespace_is_served_in_all(tmp_path: Path):
    """A CRD is cluster-wide: once the snapshot stores a list of it, every namespace lists it."""
    root = tmp_path / "snap"
    eso = root / "k8s/apis/external-secrets.io/v1/namespaces/airflow"
    eso.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps({"format": "airflow-gke/snapshot@1", "captured_at": CAPTURED,
                                                "namespace": "airflow"}))
    (eso / "externalsecrets.json").write_text(json.dumps(
        {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecretList", "metadata": {}, "items": []}))
    with ReplayServer(root) as s:
        r = requests.get(f"{s.k8s_url}/apis/external-secrets.io/v1/namespaces/nosuch/externalsecrets", timeout=5)
        assert r.status_code == 200 and r.json()["kind"] == "ExternalSecretList" and r.json()["items"] == []
        r = requests.get(f"{s.k8s_url}/apis/external-secrets.io/v1/namespaces/nosuch/secretstores", timeout=5)
        assert r.status_code == 404


def test_objects_implied_by_stored_lists(core: k8s.CoreV1Api):
    pod = core.read_namespaced_pod("airflow-triggerer-0", NS)
    assert pod.kind == "Pod" and pod.metadata.labels["component"] == "triggerer"
    all_ns = core.list_pod_for_all_namespaces(label_selector="component=worker")
    assert [p.metadata.name for p in all_ns.items] == [TASK]
    assert core.read_namespace(NS).status.phase == "Active"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("no-such-pod", NS)
    assert e.value.status == 404


def test_discovery_for_kubectl(srv: ReplayServer, tmp_path: Path):
    kubeconfig = srv.write_kubeconfig(tmp_path / "kc")
    api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    version = k8s.VersionApi(api_client).get_code()
    assert version.git_version == "v1.29.8-gke.1211000" and (version.major, version.minor) == ("1", "29")
    assert k8s.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = {g.name for g in k8s.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "batch", "storage.k8s.io", "events.k8s.io"} <= groups
    resources = {r.name: r for r in k8s.CoreV1Api(api_client).get_api_resources().resources}
    assert resources["pods"].namespaced and "list" in resources["pods"].verbs
    assert not resources["nodes"].namespaced


@pytest.mark.replay_sends_writes
def test_non_get_is_refused_405_and_recorded(core: k8s.CoreV1Api, srv: ReplayServer):
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_pod(TASK, NS)
    assert e.value.status == 405
    assert json.loads(e.value.body)["reason"] == "MethodNotAllowed"
    (m,) = srv.log.mutating()
    assert (m.service, m.method, m.path, m.status) == ("k8s", "DELETE", f"/api/v1/namespaces/{NS}/pods/{TASK}", 405)


# ------------------------------------------------------------------------------------------
# Google
# ------------------------------------------------------------------------------------------


def test_container_get_cluster(srv: ReplayServer):
    cm = _gapic(container_v1.ClusterManagerClient, srv, "container")
    cluster = cm.get_cluster(name=f"projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}")
    assert cluster.name == CLUSTER and cluster.status == container_v1.Cluster.Status.RUNNING
    pool = cluster.node_pools[0]
    assert pool.config.service_account == "default"
    assert "https://www.googleapis.com/auth/devstorage.read_only" in pool.config.oauth_scopes
    (e,) = srv.log.select(service="container")
    assert e.path == f"/v1/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}"
    assert "Authorization" not in e.headers  # AnonymousCredentials


def test_service_usage_get_service(srv: ReplayServer):
    su = _gapic(service_usage_v1.ServiceUsageClient, srv, "serviceusage")
    svc = su.get_service(request={"name": f"projects/{PROJECT}/services/container.googleapis.com"})
    assert svc.state == service_usage_v1.State.ENABLED
    assert svc.config.title == "Kubernetes Engine API"


def test_resource_manager_get_iam_policy_is_a_read(srv: ReplayServer):
    projects = _gapic(resourcemanager_v3.ProjectsClient, srv, "cloudresourcemanager")
    policy = projects.get_iam_policy(request={"resource": f"projects/{PROJECT}",
                                              "options": {"requested_policy_version": 3}})
    assert {b.role for b in policy.bindings} == {"roles/editor", "roles/owner"}
    (e,) = srv.log.select(service="cloudresourcemanager")
    assert (e.method, e.path, e.status) == ("POST", f"/v3/projects/{PROJECT}:getIamPolicy", 200)
    assert json.loads(e.body) == {"options": {"requestedPolicyVersion": 3}}  # resource is in the URL
    assert not srv.log.mutating()


def test_storage_bucket_and_bucket_iam(srv: ReplayServer):
    bucket = _gcs(srv).get_bucket(BUCKET)
    assert bucket.name == BUCKET and bucket.iam_configuration.uniform_bucket_level_access_enabled
    policy = bucket.get_iam_policy(requested_policy_version=3)
    assert policy.bindings[0]["role"] == "roles/storage.legacyBucketOwner"
    assert srv.log.paths(service="storage") == {f"/storage/v1/b/{BUCKET}": 1,
                                                f"/storage/v1/b/{BUCKET}/iam": 1}


def test_google_not_found_shapes(srv: ReplayServer):
    cm = _gapic(container_v1.ClusterManagerClient, srv, "container")
    with pytest.raises(gexc.NotFound) as e:
        cm.get_cluster(name=f"projects/{PROJECT}/locations/{LOCATION}/clusters/other")
    assert e.value.code == 404
    assert e.value.response.json() == {"error": {"code": 404, "message": "Requested entity was not found.",
                                                 "status": "NOT_FOUND"}}
    with pytest.raises(gexc.NotFound) as e:
        _gcs(srv).get_bucket("no-such-bucket")
    assert e.value.errors == [{"message": "Not Found", "domain": "global", "reason": "notFound"}]


def test_google_error_file_and_encoded_colon(srv: ReplayServer, snapshot: Path):
    (snapshot / f"gcp/iam/v1/projects/{PROJECT}/serviceAccounts").mkdir(parents=True)
    gsa = f"airflow-logs@{PROJECT}.iam.gserviceaccount.com"
    body = {"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getIamPolicy' denied on "
                                             "resource (or it may not exist).",
                      "status": "PERMISSION_DENIED"}}
    (snapshot / f"gcp/iam/v1/projects/{PROJECT}/serviceAccounts/{gsa}:getIamPolicy.error.json").write_text(
        json.dumps({"status": 403, "body": body}))
    url = srv.endpoints["iam"] + f"/v1/projects/{PROJECT}/serviceAccounts/{gsa.replace('@', '%40')}%3AgetIamPolicy"
    status, raw, _ = _get(url + "?alt=json&prettyPrint=false", method="POST")
    assert (status, json.loads(raw)) == (403, body)
    assert not srv.log.mutating()


@pytest.mark.replay_sends_writes
def test_google_writes_are_refused_405(srv: ReplayServer):
    status, raw, _ = _get(srv.endpoints["serviceusage"] +
                          f"/v1/projects/{PROJECT}/services/container.googleapis.com:enable", method="POST")
    assert status == 405 and json.loads(raw)["error"]["code"] == 405
    blob = _gcs(srv).bucket(BUCKET).blob("probe.txt")
    with pytest.raises(gexc.MethodNotAllowed):
        blob.upload_from_string(b"x", retry=None)
    assert [(m.service, m.method) for m in srv.log.mutating()] == [("serviceusage", "POST"), ("storage", "POST")]


def test_storage_write_cycle_in_memory_and_403_hook(snapshot: Path, replay_server):  # noqa: F811
    srv = replay_server(snapshot, allow_writes=True)
    bucket = _gcs(srv).bucket(BUCKET)
    blob = bucket.blob("airflow-gke-probe/probe-1.txt")
    blob.upload_from_string(b"airflow-gke write probe\n", content_type="text/plain", if_generation_match=0)
    assert (BUCKET, "airflow-gke-probe/probe-1.txt") in srv.objects
    assert bucket.blob("airflow-gke-probe/probe-1.txt").download_as_bytes() == b"airflow-gke write probe\n"
    blob.delete()
    assert not srv.objects
    methods = [(m.method, m.path) for m in srv.log.mutating()]
    assert methods == [("POST", f"/upload/storage/v1/b/{BUCKET}/o"),
                       ("DELETE", f"/storage/v1/b/{BUCKET}/o/airflow-gke-probe/probe-1.txt")]

    principal = "412390871523-compute@developer.gserviceaccount.com"
    srv.deny_storage_writes(principal)
    with pytest.raises(gexc.Forbidden) as e:
        bucket.blob("airflow-gke-probe/probe-2.txt").upload_from_string(b"x", retry=None)
    assert (f"{principal} does not have storage.objects.create access to the Google Cloud Storage object. "
            "Permission 'storage.objects.create' denied on resource (or it may not exist).") in str(e.value)
    assert gcs_forbidden(principal)["error"]["errors"][0]["reason"] == "forbidden"


# ------------------------------------------------------------------------------------------
# Faults, request log
# ------------------------------------------------------------------------------------------


def test_429_then_200(snapshot: Path, replay_server, tmp_path: Path):  # noqa: F811
    pods = f"/api/v1/namespaces/{NS}/pods"
    srv = replay_server(snapshot, faults=[
        Fault(path=pods, status=429, times=1),
        Fault(path=f"{pods}/{TASK}", status=429, retry_after=1, times=1),
        Fault(service="storage", path=f"/storage/v1/b/{BUCKET}", status=429, times=1),
    ])
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(srv.write_kubeconfig(tmp_path / "kc"))))
    with pytest.raises(ApiException) as e:
        api.list_namespaced_pod(NS)
    assert e.value.status == 429
    assert json.loads(e.value.body)["reason"] == "TooManyRequests"
    assert len(api.list_namespaced_pod(NS).items) == 5  # the rule applied once only
    assert [e.status for e in srv.log.select(pods)] == [429, 200]

    # With Retry-After, urllib3 (under the kubernetes client) waits and retries by itself.
    t0 = time.monotonic()
    assert api.read_namespaced_pod(TASK, NS).metadata.name == TASK
    assert time.monotonic() - t0 >= 1
    (first, second) = srv.log.select(f"{pods}/{TASK}")
    assert (first.status, second.status) == (429, 200)

    # google-cloud-storage retries a 429 by itself.
    bucket = _gcs(srv).get_bucket(BUCKET, retry=DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05))
    assert bucket.name == BUCKET
    assert [e.status for e in srv.log.select(f"/storage/v1/b/{BUCKET}")] == [429, 200]


def test_429_bodies_carry_retry_after(snapshot: Path, replay_server):  # noqa: F811
    srv = replay_server(snapshot, faults=[Fault(status=429, retry_after=7)])
    status, raw, headers = _get(srv.k8s_url + f"/api/v1/namespaces/{NS}/pods")
    assert (status, headers["Retry-After"]) == (429, "7")
    assert json.loads(raw)["details"] == {"retryAfterSeconds": 7}
    status, raw, headers = _get(srv.endpoints["container"] + "/v1/projects/p/locations/l/clusters/c")
    assert (status, headers["Retry-After"]) == (429, "7")
    err = json.loads(raw)["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED" and err["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"


def test_connection_reset(snapshot: Path, replay_server, tmp_path: Path):  # noqa: F811
    pods = f"/api/v1/namespaces/{NS}/pods"
    srv = replay_server(snapshot, faults=[{"path": pods, "reset": True}])
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(srv.write_kubeconfig(tmp_path / "kc"))))
    with pytest.raises(Exception) as e:  # urllib3 retried 3 times by itself, then gave up
        api.list_namespaced_pod(NS)
    assert "Connection reset by peer" in str(e.value) or "Connection aborted" in str(e.value)
    entries = srv.log.select(pods)
    assert len(entries) == 4 and all(x.status is None and x.fault == "reset" for x in entries)

    srv.clear_faults()
    srv.add_fault(service="container", path="/v1/*", reset=True, times=1)
    cm = _gapic(container_v1.ClusterManagerClient, srv, "container")
    name = f"projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}"
    # requests does not retry a reset, and the REST transport lets requests' error through
    # unwrapped (not a GoogleAPIError).
    with pytest.raises(requests.exceptions.ConnectionError):
        cm.get_cluster(name=name, retry=None)
    assert cm.get_cluster(name=name).name == CLUSTER


def test_hang_truncate_invalid_json_and_delay(snapshot: Path, replay_server):  # noqa: F811
    srv = replay_server(snapshot, faults=[
        Fault(path="/hang", hang=30),
        Fault(path="/truncated", service="k8s", truncate=True),
        Fault(path="/invalid", invalid_json=True),
        Fault(path="/version", delay=0.3, times=1),
    ])
    base = srv.k8s_url
    t0 = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        _get(base + "/hang", timeout=0.5)
    assert time.monotonic() - t0 < 5

    (snapshot / "k8s/truncated.json").write_text(json.dumps({"kind": "PodList", "items": PODS}))
    (snapshot / "k8s/invalid.json").write_text(json.dumps({"kind": "PodList", "items": PODS}))
    conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=5)
    conn.request("GET", "/truncated")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    status, raw, _ = _get(base + "/invalid")
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)

    t0 = time.monotonic()
    assert _get(base + "/version")[0] == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    assert _get(base + "/version")[0] == 200
    assert time.monotonic() - t0 < 0.3
    assert [e.fault for e in srv.log.faults()] == ["hang", "truncate", "invalid_json", "delay"]


def test_generated_forbidden_bodies(snapshot: Path, replay_server, tmp_path: Path):  # noqa: F811
    srv = replay_server(snapshot, faults=[
        Fault(service="k8s", path=f"/api/v1/namespaces/{NS}/pods/*/log", status=403),
        Fault(service="container", status=403, reason="SERVICE_DISABLED"),
        Fault(service="serviceusage", status=403, permission="serviceusage.services.get"),
        Fault(service="storage", path="*/iam", status=403, permission="storage.buckets.getIamPolicy"),
    ])
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(srv.write_kubeconfig(tmp_path / "kc"))))
    with pytest.raises(ApiException) as e:
        api.read_namespaced_pod_log(SCHED, NS, container="scheduler")
    assert json.loads(e.value.body)["message"] == (
        f'pods "{SCHED}" is forbidden: User "airflow-gke@{PROJECT}.iam.gserviceaccount.com" cannot get '
        f'resource "pods/log" in API group "" in the namespace "{NS}": requires one of '
        '["container.pods.getLogs"] permission(s).')

    with pytest.raises(gexc.Forbidden) as e:
        _gapic(container_v1.ClusterManagerClient, srv, "container").get_cluster(
            name=f"projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}")
    assert e.value.reason == "SERVICE_DISABLED"
    assert e.value.metadata["consumer"] == f"projects/{PROJECT}"
    assert "Kubernetes Engine API has not been used in project" in e.value.message

    with pytest.raises(gexc.Forbidden) as e:
        _gapic(service_usage_v1.ServiceUsageClient, srv, "serviceusage").get_service(
            request={"name": f"projects/{PROJECT}/services/container.googleapis.com"})
    assert (e.value.reason, e.value.metadata["permission"]) == ("IAM_PERMISSION_DENIED",
                                                                "serviceusage.services.get")
    bucket = _gcs(srv).get_bucket(BUCKET)
    with pytest.raises(gexc.Forbidden) as e:
        bucket.get_iam_policy()
    assert e.value.errors[0]["reason"] == "forbidden"
    assert "does not have storage.buckets.getIamPolicy access to the Google Cloud Storage bucket" in e.value.message


def test_request_log_each_path_once_and_read_only(core: k8s.CoreV1Api, srv: ReplayServer):
    core.list_namespaced_pod(NS)
    core.read_namespaced_pod_log(SCHED, NS, container="scheduler", tail_lines=100)
    with pytest.raises(ApiException):
        core.list_node()
    _gapic(container_v1.ClusterManagerClient, srv, "container").get_cluster(
        name=f"projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}")
    _gapic(service_usage_v1.ServiceUsageClient, srv, "serviceusage").get_service(
        request={"name": f"projects/{PROJECT}/services/container.googleapis.com"})
    _gapic(resourcemanager_v3.ProjectsClient, srv, "cloudresourcemanager").get_iam_policy(
        request={"resource": f"projects/{PROJECT}", "options": {"requested_policy_version": 3}})
    bucket = _gcs(srv).get_bucket(BUCKET)
    bucket.get_iam_policy(requested_policy_version=3)

    counts = srv.log.paths()
    assert set(counts.values()) == {1}, counts
    assert len(counts) == 8
    assert srv.log.count(f"/api/v1/namespaces/{NS}/pods") == 1
    assert srv.log.count("/storage/v1/b/*") == 2
    assert srv.log.mutating() == []
    assert not srv.log.duplicates()
    assert {e.service for e in srv.log} == {"k8s", "container", "serviceusage", "cloudresourcemanager", "storage"}


def test_request_log_is_thread_safe_and_server_is_fast(srv: ReplayServer):
    """Four keep-alive clients in parallel; every request is answered and logged once."""
    port = int(srv.k8s_url.rsplit(":", 1)[1])
    per_thread, errors = 500, []

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for n in range(per_thread):
                path = f"/api/v1/namespaces/{NS}/pods?limit=2" if n % 2 else "/version"
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    assert not errors
    assert len(srv.log) == 4 * per_thread
    assert srv.log.count("/version") == 2 * per_thread
    rate = 4 * per_thread / elapsed
    assert rate > 300, f"{rate:.0f} requests/s"  # measured ~3-5k/s on 2 cores; generous for CI


def test_large_list_in_pages(snapshot: Path, replay_server, tmp_path: Path):  # noqa: F811
    """3000 pods read 500 at a time: every pod once, the list parsed once and cached."""
    template = PODS[0]
    items = []
    for i in range(3000):
        pod = json.loads(json.dumps(template))
        pod["metadata"]["name"] = f"task-{i:05d}"
        items.append(pod)
    big = tmp_path / "big"
    (big / f"k8s/api/v1/namespaces/{NS}").mkdir(parents=True)
    (big / "meta.json").write_bytes((snapshot / "meta.json").read_bytes())
    (big / f"k8s/api/v1/namespaces/{NS}/pods.json").write_text(
        json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items}))
    srv = replay_server(big)
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(srv.write_kubeconfig(tmp_path / "kc"))))
    names, token = [], None
    t0 = time.perf_counter()
    while True:
        body = json.loads(api.list_namespaced_pod(NS, limit=500, _continue=token, _preload_content=False).data)
        names += [p["metadata"]["name"] for p in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            break
    elapsed = time.perf_counter() - t0
    assert names == [f"task-{i:05d}" for i in range(3000)]
    assert srv.log.count(f"/api/v1/namespaces/{NS}/pods") == 6
    assert elapsed < 10


def test_continue_token_is_opaque_base64(core: k8s.CoreV1Api):
    body = json.loads(core.list_namespaced_pod(NS, limit=1, _preload_content=False).data)
    token = body["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded["v"] == "meta.k8s.io/v1"

