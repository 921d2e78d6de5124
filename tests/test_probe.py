"""`doctor --probe`: the active write probe, over loopback with the real google-cloud-storage client
against the replay server's in-memory object store (`allow_writes=True`), including the 403 a
principal without storage.objects.create gets. The probe's result overrides the IAM inference of
gcs-log-write-denied only when it ran as a log writer's identity, and the report says so."""
from __future__ import annotations

import os

import pytest

from conftest import SCENARIOS, findings_of, status_of
from replay import Fault, ReplayServer

WORKER = {"AIRFLOW_GKE_POD_NAMESPACE": "airflow", "AIRFLOW_GKE_POD_SERVICE_ACCOUNT": "airflow-worker"}
SCHEDULER = {"AIRFLOW_GKE_POD_NAMESPACE": "airflow", "AIRFLOW_GKE_POD_SERVICE_ACCOUNT": "airflow-scheduler"}
GSA = "airflow@acme-data-prod.iam.gserviceaccount.com"
CHECK = "gcs-log-write-denied"


@pytest.fixture
def probe_run(run_cli, monkeypatch, tmp_path):
    """``probe_run(scenario, *args, pod=WORKER, faults=(), deny=None)`` -> (CliResult, server)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith(("AIRFLOW_GKE_ENDPOINT_", "AIRFLOW_GKE_POD_", "AIRFLOW_GKE_NODE_")):
            monkeypatch.delenv(k)
    servers = []

    def run(name, *args, pod=WORKER, faults=(), deny=None):
        srv = ReplayServer(SCENARIOS / name, faults, allow_writes=True).start()
        servers.append(srv)
        if deny:
            srv.deny_storage_writes(deny)
        kc = srv.write_kubeconfig(tmp_path / f"kubeconfig-{name}")
        meta = srv.meta
        out = () if "--output" in args else ("--output", "json")
        rel = ("--release", meta["release"]) if meta.get("release") else ()
        r = run_cli("doctor", "--now", meta["captured_at"], *rel, *out,
                    "--check", CHECK, "--probe", *args, env={**srv.env(kubeconfig=kc), **(pod or {})})
        return r, srv

    yield run
    for s in servers:
        s.stop()


def storage_writes(srv):
    return [(e.method, e.path) for e in srv.log if e.service == "storage" and e.method in ("POST", "DELETE")
            and ":getIamPolicy" not in e.path]


def test_probe_allowed_overrides_a_denied_inference(probe_run):
    """IAM says the workers' GSA has no storage role on the bucket; the write works (a grant the
    doctor cannot see: an org-level role, a condition...): the probe wins, and says so."""
    r, srv = probe_run("gcs-wi-missing-grant", pod=SCHEDULER)
    assert r.code == 0, r.err
    doc = r.json
    assert status_of(doc, CHECK) == "pass" and findings_of(doc, CHECK) == []
    reason = doc["checks"][0]["reason"]
    assert reason.startswith("write probe as KSA airflow/airflow-scheduler (anonymous (loopback endpoint)) created, "
                             "read back and deleted gs://acme-airflow-logs/prod/.airflow-gke-probe/")
    assert "this overrides the IAM inference, which had found: " in reason
    p = doc["probe"]
    assert p["verdict"] == "allowed" and p["overrides"] is True and p["representative"] is True
    assert p["service_account"] == "airflow/airflow-scheduler" and p["missing_permission"] is None
    assert [(s["step"], s["ok"]) for s in p["steps"]] == [("token", True), ("write", True), ("read", True),
                                                          ("delete", True)]
    assert p["object"].startswith("gs://acme-airflow-logs/prod/.airflow-gke-probe/") and p["object"].endswith(".txt")
    assert p["note"] == "the probe ran as KSA airflow/airflow-scheduler, the service account of scheduler"
    # the only writes of the run: one upload, one delete, of that object; nothing is left behind
    writes = storage_writes(srv)
    assert [m for m, _ in writes] == ["POST", "DELETE"]
    assert writes[0][1] == "/upload/storage/v1/b/acme-airflow-logs/o"
    assert not srv.objects
    assert all(e.method == "GET" or e.path.endswith(":getIamPolicy") for e in srv.log
               if (e.method, e.path) not in writes)
    assert "probe: writing one object under gs://acme-airflow-logs/prod/.airflow-gke-probe/" in r.err


def test_probe_403_overrides_an_allowed_inference_with_the_exact_error(probe_run):
    """IAM inference passes on the healthy cluster; the bucket answers 403 to the write (say a deny
    policy): an error finding with the principal and the missing permission."""
    r, srv = probe_run("healthy-af3-k8s-wi", deny=GSA)
    assert r.code == 1, r.err
    doc = r.json
    assert status_of(doc, CHECK) == "fail"
    (f,) = findings_of(doc, CHECK)
    assert f["id"] == "gcs-log-write-denied:Bucket/acme-airflow-logs" and f["severity"] == "error"
    assert f["title"] == ("KSA airflow/airflow-worker (anonymous (loopback endpoint)) cannot write logs to "
                          "gs://acme-airflow-logs (missing storage.objects.create) (write probe: HTTP 403)")
    ev = "\n".join(f["evidence"])
    assert (f"write: FAILED HTTP 403: {GSA} does not have storage.objects.create access to the Google Cloud "
            "Storage object.") in ev
    assert "the probe's result overrides the IAM inference, which had found no problem with gs://acme-airflow-logs" in ev
    assert f["remediation"]["commands"][0] == (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs "
                                               f"--member serviceAccount:{GSA} --role roles/storage.objectUser")
    assert "overrides the IAM inference" in f["message"]
    assert f["runbook"].endswith("gcs-log-write-denied.md")
    p = doc["probe"]
    assert p["verdict"] == "denied" and p["missing_permission"] == "storage.objects.create" and p["overrides"]
    assert [(s["step"], s["ok"], s["status"]) for s in p["steps"]] == [("token", True, None), ("write", False, 403)]
    assert [m for m, _ in storage_writes(srv)] == ["POST"] and not srv.objects


def test_probe_404_bucket(probe_run):
    r, _ = probe_run("gcs-bucket-missing", pod=SCHEDULER)
    assert r.code == 1
    (f,) = findings_of(r.json, CHECK)
    assert f["title"] == "Log bucket gs://acme-airflow-logs-old does not exist (write probe: HTTP 404)"
    assert "write: FAILED HTTP 404: The specified bucket does not exist." in "\n".join(f["evidence"])
    assert r.json["probe"]["verdict"] == "bucket-missing" and r.json["probe"]["overrides"]
    assert f["remediation"]["commands"] == [
        "gcloud storage buckets create gs://acme-airflow-logs-old --project acme-data-prod --uniform-bucket-level-access"]
    # with remote-log-bucket-missing selected, the probe confirms its finding instead of repeating it
    r, _ = probe_run("gcs-bucket-missing", "--check", "remote-log-bucket-missing", pod=SCHEDULER)
    assert findings_of(r.json, CHECK) == [] and findings_of(r.json, "remote-log-bucket-missing")
    reason = next(c["reason"] for c in r.json["checks"] if c["id"] == CHECK)
    assert "which confirms remote-log-bucket-missing:Bucket/acme-airflow-logs-old" in reason


def test_probe_write_allowed_but_delete_denied_is_partial(probe_run):
    deny_delete = Fault(service="storage", method="DELETE", status=403, permission="storage.objects.delete",
                        principal=GSA)
    r, srv = probe_run("healthy-af3-k8s-wi", faults=[deny_delete])
    (f,) = findings_of(r.json, CHECK)
    assert "can create but not delete log objects in gs://acme-airflow-logs (missing storage.objects.delete)" in f["title"]
    assert "not only objectCreator" in f["remediation"]["summary"]
    assert r.json["probe"]["verdict"] == "partial"
    assert [(e.method, e.status) for e in srv.log if e.service == "storage" and e.method == "DELETE"] == [("DELETE", 403)]


def test_probe_as_another_service_account_does_not_override(probe_run):
    pod = {"AIRFLOW_GKE_POD_NAMESPACE": "airflow", "AIRFLOW_GKE_POD_SERVICE_ACCOUNT": "airflow-gke"}
    r, _ = probe_run("gcs-wi-missing-grant", pod=pod)
    assert r.code == 1
    (f,) = findings_of(r.json, CHECK)
    assert "write probe" not in f["title"]                       # the IAM inference stands
    last = f["evidence"][-1]
    assert last.startswith("write probe as KSA airflow/airflow-gke (anonymous (loopback endpoint)): created, read back")
    assert "but Airflow's logs are written by airflow/airflow-dag-processor" in last and "the IAM inference stands" in last
    p = r.json["probe"]
    assert p["verdict"] == "allowed" and p["representative"] is False and p["overrides"] is False


def test_probe_outside_a_pod_reports_but_does_not_override(probe_run):
    r, _ = probe_run("healthy-af3-k8s-wi", pod=None, deny=GSA)
    assert r.code == 0                      # the inference (pass) stands
    assert status_of(r.json, CHECK) == "pass"
    assert "the probe ran outside a pod" in r.json["checks"][0]["reason"]
    assert r.json["probe"]["verdict"] == "denied" and r.json["probe"]["overrides"] is False


def test_probe_is_shown_in_the_terminal_and_markdown(probe_run):
    r, _ = probe_run("healthy-af3-k8s-wi", "--output", "table", deny=GSA)
    assert "Write probe denied as KSA airflow/airflow-worker" in r.out
    assert "write  FAILED" in r.out and "does not have storage.objects.create" in r.out


def test_probe_needs_live_mode_and_the_check(run_cli):
    r = run_cli("doctor", "--snapshot", str(SCENARIOS / "seed-incident"), "--probe")
    assert r.code == 2 and "--probe applies to live mode only" in r.err
    r = run_cli("doctor", "--snapshot", str(SCENARIOS / "seed-incident"), "--probe", "--exclude", CHECK)
    assert r.code == 2 and "--probe proves gcs-log-write-denied, which this run does not select" in r.err


def test_pod_identity_from_the_service_account_token(tmp_path, monkeypatch):
    import base64
    import json

    from airflow_gke.live import probe

    claims = base64.urlsafe_b64encode(json.dumps({"sub": "system:serviceaccount:airflow:airflow-worker"}).encode())
    (tmp_path / "token").write_text(f"e30.{claims.decode().rstrip('=')}.sig")
    monkeypatch.setattr(probe, "SA_DIR", tmp_path)
    got = probe.pod_identity({})
    assert (got.namespace, got.service_account, got.ksa) == ("airflow", "airflow-worker", "airflow/airflow-worker")
    assert probe.pod_identity({"AIRFLOW_GKE_POD_NAMESPACE": "x", "AIRFLOW_GKE_POD_SERVICE_ACCOUNT": "y"}).ksa == "x/y"
    monkeypatch.setattr(probe, "SA_DIR", tmp_path / "absent")
    assert probe.pod_identity({}).ksa is None


def test_probe_object_name_stays_under_the_folder():
    from airflow_gke.live.probe import object_name

    b, n = object_name("gs://logs-bucket/prod/airflow/")
    assert b == "logs-bucket" and n.startswith("prod/airflow/.airflow-gke-probe/") and n.endswith(".txt")
    b, n = object_name("gs://logs-bucket")
    assert b == "logs-bucket" and n.startswith(".airflow-gke-probe/")


def test_probe_403_for_read_only_scopes_links_the_node_scope_finding(probe_run):
    """Node credentials with devstorage.read_only: Cloud Storage refuses the scope, not the IAM role."""
    scope_403 = Fault(service="storage", method="POST", path="/upload/*", status=403, body={"error": {
        "code": 403, "message": "Provided scope(s) are not authorized",
        "errors": [{"message": "Provided scope(s) are not authorized", "domain": "global", "reason": "forbidden"}]}})
    pod = {"AIRFLOW_GKE_POD_NAMESPACE": "airflow", "AIRFLOW_GKE_POD_SERVICE_ACCOUNT": "af2-airflow-worker",
           "AIRFLOW_GKE_NODE_NAME": "gke-data-platform-default-pool-bc885a8d-84ty"}
    r, _ = probe_run("remote-logging-readonly-scope", "--check", "node-storage-scope-read-only", pod=pod,
                     faults=[scope_403])
    (f,) = findings_of(r.json, CHECK)
    assert "the token's OAuth scopes do not allow it (write probe: HTTP 403)" in f["title"]
    assert f["caused_by"] == ["node-storage-scope-read-only:NodePool/default-pool"]
    assert r.json["probe"]["note"] == "the probe ran as KSA airflow/af2-airflow-worker, the service account of worker"
    assert any(e.startswith("IAM inference: ") for e in f["evidence"])


def test_probe_folder_is_used_as_given(probe_run):
    r, srv = probe_run("healthy-af3-k8s-wi", "--probe-folder", "gs://acme-airflow-logs/elsewhere/")
    p = r.json["probe"]
    assert p["folder"] == "gs://acme-airflow-logs/elsewhere/" and p["verdict"] == "allowed"
    assert p["object"].startswith("gs://acme-airflow-logs/elsewhere/.airflow-gke-probe/")
    assert storage_writes(srv)[0][1] == "/upload/storage/v1/b/acme-airflow-logs/o"


def test_probe_without_a_gs_folder_is_not_run_and_says_how(probe_run):
    r, srv = probe_run("logs-pvc-filestore")
    p = r.json["probe"]
    assert p["verdict"] == "not-run" and p["steps"] == [] and p["object"] is None and not p["overrides"]
    assert p["note"].startswith("probe not run: no log writer ships logs to a gs:// remote_base_log_folder")
    assert p["note"].endswith("pass --probe-folder gs://BUCKET/PATH")
    c = r.json["checks"][0]
    assert c["status"] == "skip" and "probe not run" in c["reason"]
    assert storage_writes(srv) == []


def test_probe_is_shown_in_the_html_page(probe_run):
    r, _ = probe_run("healthy-af3-k8s-wi", "--output", "html", deny=GSA)
    assert '<h2 id="probe">Write probe</h2>' in r.out
    assert "<p><strong>denied</strong> as <code>KSA airflow/airflow-worker" in r.out
    assert "write: FAILED" in r.out
