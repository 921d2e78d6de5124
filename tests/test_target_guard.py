"""The target guard (doctor/target_guard.py): before any check runs, the namespace and release hold
an Airflow deployment of the official chart, or the run ends with exit 2 naming where Airflow was
found. Snapshot and live (real clients against the replay server, which answers empty lists for a
namespace that does not exist, as a real API server does) behave the same."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import scenario
from replay import Fault, ReplayServer

SEED = "seed-incident"


@pytest.fixture(scope="module")
def seed_srv():
    with ReplayServer(scenario(SEED)) as srv:
        yield srv


@pytest.fixture
def live(run_cli, monkeypatch, tmp_path):
    """``live(srv, *args)``: ``airflow-gke doctor`` against the replay server, as a user runs it."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)

    def run(srv: ReplayServer, *args: str, kubeconfig: Path | None = None):
        srv.log.clear()
        kc = kubeconfig or srv.write_kubeconfig(tmp_path / "kubeconfig")
        return run_cli("doctor", "--now", srv.meta["captured_at"], *args, env=srv.env(kubeconfig=kc))

    return run


def _one_line_naming(r, *names: str) -> str:
    assert r.code == 2, (r.code, r.err)
    assert r.out == ""
    (line,) = r.err.strip().splitlines()
    assert line.startswith("airflow-gke: error: ")
    for n in names:
        assert n in line, line
    return line


# --- snapshot -------------------------------------------------------------------------------------
def test_snapshot_unknown_namespace_exits_2_naming_airflow(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--namespace", "nosuch")
    line = _one_line_naming(r, "namespace nosuch", "--namespace airflow")
    assert "this snapshot holds no data for namespace nosuch (--namespace)" in line
    assert "namespace airflow (release airflow: 5 Deployments, 2 ConfigMaps, 12 Pods, 8 ServiceAccounts" in line


def test_snapshot_unknown_release_exits_2_naming_airflow(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--release", "nosuch", "--output", "json")
    line = _one_line_naming(r, "release nosuch (--release) has no objects in namespace airflow",
                            "Pass --release airflow")


def _copy_with_empty_namespace(tmp_path: Path, keep_airflow: bool) -> Path:
    """seed-incident as collected with ``--namespace nosuch`` against a real cluster: every
    namespaced list of ``nosuch`` is an empty list (the API server does not 404 a namespace that
    does not exist); with ``keep_airflow`` the snapshot also still holds namespace airflow."""
    dst = tmp_path / "snap"
    shutil.copytree(scenario(SEED), dst)
    for f in sorted(dst.glob("k8s/**/namespaces/airflow/*.json")):
        body = json.loads(f.read_text())
        empty_file = Path(str(f).replace("/namespaces/airflow/", "/namespaces/nosuch/"))
        empty_file.parent.mkdir(parents=True, exist_ok=True)
        if "items" in body:
            empty_file.write_text(json.dumps({**body, "items": []}))
        else:
            empty_file.write_text(f.read_text())
    if not keep_airflow:
        for d in dst.glob("k8s/**/namespaces/airflow"):
            shutil.rmtree(d)
    meta = json.loads((dst / "meta.json").read_text())
    meta.update(namespace="nosuch", release=None)
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_snapshot_of_empty_lists_is_not_healthy(run_cli, tmp_path):
    """The issue's "30 passed, exit 0": empty lists for a typo'd namespace are no Airflow at all."""
    snap = _copy_with_empty_namespace(tmp_path, keep_airflow=False)
    r = run_cli("doctor", "--snapshot", str(snap))
    line = _one_line_naming(r, "namespace nosuch (the snapshot's meta.json) holds no Airflow of the official chart")
    assert "no object labelled tier=airflow in its deployments, statefulsets, configmaps, pods" in line
    assert "Airflow was found in no other namespace (the cluster-wide look-up (list deployments labelled " \
           "tier=airflow (all namespaces)) was not read)" in line


def test_snapshot_names_the_namespace_it_holds_airflow_in(run_cli, tmp_path):
    snap = _copy_with_empty_namespace(tmp_path, keep_airflow=True)
    r = run_cli("doctor", "--snapshot", str(snap))
    _one_line_naming(r, "namespace nosuch", "Airflow was found in namespace airflow (release airflow:",
                     "pass --namespace airflow")
    r = run_cli("doctor", "--snapshot", str(snap), "--namespace", "airflow", "--output", "json")
    assert r.code == 1
    assert r.json["run"]["target"]["verdict"] == "airflow"


def test_evidence_says_where_it_came_from(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "json")
    t = r.json["run"]["target"]
    assert t == {
        "verdict": "airflow", "namespace_from": "the snapshot's meta.json", "release_from": "the snapshot's meta.json",
        "evidence": ["5 Deployments (airflow-api-server, airflow-dag-processor, airflow-scheduler, +2), 2 ConfigMaps "
                     "(airflow-config, airflow-statsd) labelled tier=airflow, release=airflow, chart airflow-1.22.0"],
        "found_elsewhere": []}
    table = run_cli("doctor", "--snapshot", str(scenario(SEED)))
    assert ("Target: namespace airflow (the snapshot's meta.json), release airflow (the snapshot's meta.json): "
            "5 Deployments (airflow-api-server") in " ".join(x.strip() for x in table.out.splitlines())
    md = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "markdown")
    assert "Target: namespace `airflow` (the snapshot's meta.json), release `airflow`" in md.out


def test_release_detected_from_labels_says_so(run_cli, tmp_path):
    dst = tmp_path / "snap"
    shutil.copytree(scenario(SEED), dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta["release"] = None
    (dst / "meta.json").write_text(json.dumps(meta))
    r = run_cli("doctor", "--snapshot", str(dst), "--namespace", "airflow", "--output", "json")
    assert r.code == 1
    t = r.json["run"]["target"]
    assert (t["namespace_from"], t["release_from"]) == ("--namespace", "detected from the chart's labels")
    assert r.json["run"]["release"] == "airflow"


def test_project_preflight_has_nothing_to_establish(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario("api-disabled-cluster-403")), "--output", "json")
    assert r.code == 1
    assert r.json["run"]["target"]["verdict"] == "no-cluster-data"


def test_unreadable_lists_do_not_decide(run_cli, tmp_path):
    """Every list of the namespace denied: the guard cannot say there is no Airflow; the run goes
    on (the checks report the reads) and says the target was not established."""
    dst = tmp_path / "snap"
    shutil.copytree(scenario(SEED), dst)
    for f in sorted(dst.glob("k8s/**/namespaces/airflow/*.json")):
        f.unlink()
        f.with_name(f.name[:-len(".json")] + ".error.json").write_text(json.dumps(
            {"status": 403, "body": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                                     "code": 403, "message": "forbidden"}}))
    r = run_cli("doctor", "--snapshot", str(dst), "--output", "json")
    assert r.code in (1, 3), r.err
    assert r.json["run"]["target"]["verdict"] == "undetermined"
    (notice,) = [n for n in r.json["notices"] if "could not establish" in n["message"]]
    assert notice["message"].startswith("could not establish that namespace airflow holds Airflow: "
                                        "list deployments in namespace airflow: HTTP 403")


# --- live, against the replay server ---------------------------------------------------------------
def test_live_unknown_namespace_exits_2_naming_airflow(live, seed_srv):
    r = live(seed_srv, "--namespace", "nosuch")
    line = _one_line_naming(r, "namespace nosuch (--namespace) holds no Airflow of the official chart",
                            "Airflow was found in namespace airflow (release airflow: 5 Deployments)",
                            "pass --namespace airflow")
    # the real clients got empty lists for the namespace that does not exist, not 404
    # (the External Secrets, KEDA and Gateway API CRDs are not installed in this cluster: 404 in every namespace)
    ns_reads = {e.path: e.status for e in seed_srv.log.entries if "/namespaces/nosuch/" in e.path}
    eso = {p: st for p, st in ns_reads.items()
           if "/external-secrets.io/" in p or "/keda.sh/" in p or "/gateway.networking.k8s.io/" in p}
    assert len(ns_reads) > 10 and set(eso.values()) == {404}
    assert {st for p, st in ns_reads.items() if p not in eso} == {200}
    (lookup,) = [e for e in seed_srv.log.entries if e.path == "/apis/apps/v1/deployments"]
    assert lookup.status == 200 and "labelSelector=tier%3Dairflow" in lookup.query
    assert not seed_srv.log.mutating()


def test_live_unknown_release_exits_2_naming_airflow(live, seed_srv):
    r = live(seed_srv, "--release", "nosuch")
    _one_line_naming(r, "release nosuch (--release) has no objects in namespace airflow", "Pass --release airflow")


def test_live_lookup_not_permitted_says_so(live, seed_srv):
    seed_srv.add_fault(Fault(service="k8s", path="/apis/apps/v1/deployments", status=403))
    try:
        r = live(seed_srv, "--namespace", "nosuch")
    finally:
        seed_srv.clear_faults()
    line = _one_line_naming(r, "namespace nosuch")
    assert "Airflow was found in no other namespace (the cluster-wide look-up (list deployments labelled " \
           "tier=airflow (all namespaces)) was not permitted (HTTP 403)" in line


def test_live_discovers_the_namespace_with_one_lookup(live, seed_srv, tmp_path):
    kc = seed_srv.write_kubeconfig(tmp_path / "kc-nons")
    doc = json.loads(kc.read_text())
    doc["contexts"][0]["context"].pop("namespace")
    kc.write_text(json.dumps(doc))
    r = live(seed_srv, "--output", "json", "--verbose", kubeconfig=kc)
    assert r.code == 1, r.err
    assert r.json["run"]["namespace"] == "airflow"
    assert r.json["run"]["target"]["namespace_from"] == "discovered: it holds the chart's tier=airflow Deployments"
    assert seed_srv.log.count("/apis/apps/v1/deployments", "k8s") == 1
    assert not seed_srv.log.duplicates()


def test_live_equals_snapshot_target(live, seed_srv, run_cli):
    snap = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "json").json["run"]["target"]
    lv = live(seed_srv, "--output", "json", "--release", "airflow").json["run"]["target"]
    assert lv["evidence"] == snap["evidence"]
    assert lv["namespace_from"] == f"the namespace of kube context {seed_srv.context_name}"


def test_collect_stores_the_lookup_filtered(live, seed_srv, run_cli, tmp_path, monkeypatch):
    out = tmp_path / "collected"
    kc = seed_srv.write_kubeconfig(tmp_path / "kc")
    r = run_cli("collect", "--now", seed_srv.meta["captured_at"], "-o", str(out), env=seed_srv.env(kubeconfig=kc))
    assert r.code == 0, r.err
    body = json.loads((out / "k8s/apis/apps/v1/deployments.json").read_text())
    assert body["kind"] == "DeploymentList" and body["items"]
    assert all(d["metadata"]["labels"]["tier"] == "airflow" for d in body["items"])
    r = run_cli("doctor", "--snapshot", str(out), "--namespace", "nosuch")
    _one_line_naming(r, "Airflow was found in namespace airflow (release airflow: 5 Deployments", "pass --namespace airflow")


def test_permissions_name_the_lookup(run_cli):
    r = run_cli("permissions")
    assert "list deployments (apiGroup apps) cluster-wide" in r.out
