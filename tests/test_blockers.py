"""One cause, one line (doctor/blockers.py): when one failed read or a disabled API blocks many
checks, the "not checked" part of every report names it once with the checks it blocked, shows the
API's answer at most once, and never advises a grant when the cause is not a permission. Each
check keeps its own meaningful reason in JSON, with ``blocked_by`` pointing at the cause."""
from __future__ import annotations

import os

import pytest

from conftest import scenario
from replay import Fault, ReplayServer

from airflow_gke.blockers import classify
from airflow_gke.data import Target
from airflow_gke.source import Entry

DISABLED = "api-disabled-cluster-403"
BODY = "Kubernetes Engine API has not been used in project 902177345108 before or it is disabled"
BLOCKED_BY_CLUSTER = ["default-compute-sa-nodes", "gcs-log-write-denied", "node-storage-scope-read-only",
                      "overprivileged-identity", "private-nodes-no-egress", "remote-log-read-denied",
                      "workload-identity-not-enabled"]


def _section(out: str, start: str, end: str = "\nFindings:") -> str:
    return out.split(start, 1)[1].split(end, 1)[0]


def test_disabled_api_is_one_cause_with_its_checks_terminal(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(DISABLED)), env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert r.code == 1
    assert r.out.count(BODY) == 1          # once, in the container-api-disabled finding's evidence
    nc = _section(r.out, "Not checked")
    lines = nc.splitlines()
    flat = " ".join(ln.strip() for ln in lines)
    assert ("error The Kubernetes Engine API (container.googleapis.com) is disabled in project acme-data-dev (HTTP 403 "
            "SERVICE_DISABLED): not a missing permission; reported above (container-api-disabled) Read: get cluster "
            "projects/acme-data-dev/locations/europe-west1/clusters/airflow-dev Fix: enable the API, then wait a few "
            "minutes for it to propagate $ gcloud services enable container.googleapis.com --project acme-data-dev "
            f"Blocks {len(BLOCKED_BY_CLUSTER)} checks: " + ", ".join(BLOCKED_BY_CLUSTER)) in flat
    # the command is whole on a line of its own
    assert "          $ gcloud services enable container.googleapis.com --project acme-data-dev" in lines
    assert "grant" not in nc and "container.clusters.get" not in nc
    assert flat.count("SERVICE_DISABLED") == 1
    # the missing Kubernetes data is one more cause, not 30 lines
    assert sum(1 for ln in lines if ln.startswith("  skip ") or ln.startswith("  error")) == 2


def test_disabled_api_json_reason_and_blockers(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(DISABLED)), "--output", "json")
    doc = r.json
    (b,) = [b for b in doc["blockers"] if b["kind"] == "service-disabled"]
    assert b["id"] == "service-disabled:container.googleapis.com" and b["status"] == "error"
    assert b["checks"] == BLOCKED_BY_CLUSTER
    assert b["reads"] == ["get cluster projects/acme-data-dev/locations/europe-west1/clusters/airflow-dev"]
    assert b["message"].startswith(BODY)
    assert b["command"] == "gcloud services enable container.googleapis.com --project acme-data-dev"
    assert "grant" not in b["fix"]
    checks = {c["id"]: c for c in doc["checks"]}
    for cid in BLOCKED_BY_CLUSTER:
        c = checks[cid]
        assert c["status"] == "error" and b["id"] in c["blocked_by"]
        # its own reason still says what and why, without the 400-character body or a grant
        assert ("could not get cluster projects/acme-data-dev/locations/europe-west1/clusters/airflow-dev: the "
                "Kubernetes Engine API (container.googleapis.com) is disabled") in c["reason"]
        assert BODY not in c["reason"] and "grant" not in c["reason"]
    (nc,) = [b for b in doc["blockers"] if b["kind"] == "not-collected"]
    assert nc["id"] == "not-collected:k8s" and len(nc["checks"]) >= 30
    assert nc["checks"] == [c["id"] for c in doc["checks"] if nc["id"] in c.get("blocked_by", ())]
    assert "k8s/api/v1/namespaces/airflow/pods" in nc["reads"]
    assert all(set(c.get("blocked_by", ())) <= {b["id"], nc["id"]} for c in doc["checks"])


def test_markdown_names_the_cause_once(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(DISABLED)), "--output", "markdown")
    assert r.out.count(BODY) == 1
    assert r.out.count("- Command: `gcloud services enable container.googleapis.com --project acme-data-dev`") == 1
    row = next(ln for ln in r.out.splitlines() if ln.startswith("| `default-compute-sa-nodes`"))
    assert "blocked: the Kubernetes Engine API (container.googleapis.com) is disabled" in row
    assert "grant" not in r.out.split("### Not checked", 1)[1]


@pytest.fixture
def live(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def run(srv: ReplayServer, *args: str, kube: bool = True):
        m = srv.meta
        env = srv.env(kubeconfig=srv.write_kubeconfig(tmp_path / "kc")) if kube else \
            {**srv.env(), "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
        extra = [] if kube else [x for k in ("project", "location", "cluster") for x in (f"--{k}", m[k])]
        return run_cli("doctor", "--now", m["captured_at"], *extra, *args, env=env)

    return run


def test_live_disabled_api_is_one_cause(live):
    with ReplayServer(scenario(DISABLED)) as srv:
        r = live(srv, "--output", "json", kube=False)
    kinds = {b["kind"]: b for b in r.json["blockers"]}
    assert set(kinds) == {"service-disabled", "not-read"}
    assert kinds["service-disabled"]["checks"] == BLOCKED_BY_CLUSTER
    assert kinds["not-read"]["summary"].startswith("project preflight, no Kubernetes cluster was read")


def test_live_denied_list_is_one_permission_cause(live):
    """RBAC denies listing pods: one cause, the grant once, the 403 body once, every check that
    needed pods listed under it."""
    with ReplayServer(scenario("seed-incident")) as srv:
        srv.add_fault(Fault(service="k8s", path="/api/v1/namespaces/airflow/pods", status=403))
        r = live(srv)
        j = live(srv, "--output", "json").json
    (b,) = [b for b in j["blockers"] if b["kind"] == "permission"]
    assert b["id"] == "permission:RBAC list on pods in namespace airflow"
    assert b["fix"].startswith("grant RBAC list on pods in namespace airflow")
    assert len(b["checks"]) >= 20
    forbidden = 'pods is forbidden: User "airflow-gke@acme-data-prod.iam.gserviceaccount.com" cannot list'
    assert b["message"].startswith(forbidden)
    nc = " ".join(x.strip() for x in _section(r.out, "Not checked").splitlines())
    assert nc.count(forbidden[:60]) == 1
    assert nc.count("grant RBAC list on pods in namespace airflow") == 1
    assert f"Blocks {len(b['checks'])} checks: " in nc


@pytest.mark.parametrize("status,body,kind,fix", [
    (403, {"error": {"code": 403, "message": "This API method requires billing to be enabled.", "status":
                     "PERMISSION_DENIED", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                       "reason": "BILLING_DISABLED", "domain": "googleapis.com",
                                                       "metadata": {"service": "container.googleapis.com"}}]}},
     "billing-disabled", "gcloud billing projects link p1 --billing-account"),
    (403, {"error": {"code": 403, "message": "Request had insufficient authentication scopes.", "status":
                     "PERMISSION_DENIED", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                       "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                                                       "domain": "googleapis.com", "metadata": {}}]}},
     "scope-insufficient", "cloud-platform scope"),
    (403, {"error": {"code": 403, "message": "Access Not Configured. Kubernetes Engine API has not been used",
                     "errors": [{"reason": "accessNotConfigured", "domain": "usageLimits"}]}},
     "service-disabled", "gcloud services enable container.googleapis.com --project p1"),
    (401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                     "status": "UNAUTHENTICATED"}},
     "unauthenticated", "gcloud auth application-default login"),
    (403, {"error": {"code": 403, "message": "Permission 'container.clusters.get' denied", "status":
                     "PERMISSION_DENIED"}},
     "permission", "grant IAM permission container.clusters.get"),
    (None, {"message": "not read: the run's --timeout of 60 s ran out"}, "no-answer", "--timeout"),
    (404, {"error": {"code": 404, "message": "Not found: projects/p1/locations/l1/clusters/c1.",
                     "status": "NOT_FOUND"}}, "http-error", "see the API's answer"),
])
def test_what_a_failed_cluster_read_means(status, body, kind, fix):
    t = Target(namespace="airflow", project="p1", location="l1", cluster="c1")
    cause, read = classify("cluster", Entry("x", None, status, body), t)
    assert cause.kind == kind and fix in cause.fix_text
    assert read == "get cluster projects/p1/locations/l1/clusters/c1"
    assert ("grant" in cause.fix) == (kind == "permission")


def test_not_found_that_is_data_is_no_cause():
    t = Target(namespace="airflow", project="p1")
    assert classify("bucket", Entry("x", None, 404, {"error": {"code": 404}}), t, {"bucket": "b"}) is None
    cause, _ = classify("cluster", None, t)
    assert cause.kind == "needs-target" and "--location --cluster" in cause.fix
