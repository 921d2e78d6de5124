"""Planned mode: ``doctor --manifests`` judges the rendered chart against a cluster snapshot.

The manifests are rendered by the fixture factories as ``helm template`` prints them
(fixtures/manifests.py); the cluster and project come from scenario snapshots written by the same
factories. Everything runs through the real CLI.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from fixtures import build as fb
from fixtures import manifests as fm

SEED_CHECKS = {"pvc-access-mode-unsupported", "node-storage-scope-read-only", "gcs-log-write-denied"}


@pytest.fixture(scope="module")
def seed_cluster(tmp_path_factory):
    """standard = kubernetes.io/gce-pd (the default), read-only node scopes, no Workload Identity,
    the default compute SA with roles/editor, an empty namespace (first deploy)."""
    return fm.write(fm.cluster("seed-cluster"), tmp_path_factory.mktemp("seed-cluster"))


@pytest.fixture(scope="module")
def wi_cluster(tmp_path_factory):
    """The seed cluster after the cluster-side steps the planned run prints: a Workload Identity
    pool, the node pool on GKE_METADATA, the Google SA airflow@ bound to the KSAs and allowed to
    write to the bucket."""
    env = fm.SEED_ENV
    gsa = env.sa_email("airflow")
    sc = fm.cluster("seed-cluster-wi", workload_identity=True, pool=fb.Pool(workload_metadata="GKE_METADATA"),
                    bucket_grants={"roles/storage.objectUser": [f"serviceAccount:{gsa}"]}, gsa=gsa)
    return fm.write(sc, tmp_path_factory.mktemp("seed-cluster-wi"))


def planned(run_cli, tmp_path, cluster, text, *extra):
    f = tmp_path / "rendered.yaml"
    f.write_text(text)
    res = run_cli("doctor", "--snapshot", str(cluster), "--manifests", str(f), "--output", "json", *extra)
    return res.code, res.json


def test_seed_values_fail_before_deploy_with_values_level_fixes(run_cli, tmp_path, seed_cluster):
    code, doc = planned(run_cli, tmp_path, seed_cluster, fm.render(fm.seed_values()))
    assert code == 1
    assert doc["run"]["mode"] == "planned"
    assert (doc["run"]["release"], doc["run"]["namespace"], doc["run"]["chart_version"],
            doc["run"]["airflow_version"]) == ("airflow", "airflow", "1.22.0", "3.1.3")
    by = {f["check"]: f for f in doc["findings"]}
    assert SEED_CHECKS <= set(by)
    pvc = by["pvc-access-mode-unsupported"]
    assert pvc["resource"] == {"kind": "PersistentVolumeClaim", "namespace": "airflow", "name": "airflow-logs",
                               "uri": None}
    assert pvc["title"].startswith('PVC airflow-logs will ask ReadWriteMany, which StorageClass "standard"')
    assert "scheduler" in pvc["title"] and "api-server" in pvc["title"] and "will not start" in pvc["title"]
    # Fixes are values changes for the chart version of the plan, never kubectl on objects not yet there.
    for f in by.values():
        for cmd in f["remediation"]["commands"]:
            assert "kubectl" not in cmd, (f["check"], cmd)
            assert "--reuse-values" not in cmd, (f["check"], cmd)
    assert any("--version 1.22.0 -f values.yaml --set logs.persistence.enabled=false" in c
               for c in pvc["remediation"]["commands"])
    scope = by["node-storage-scope-read-only"]
    assert scope["resource"]["name"] == "default-pool"
    assert any(c.startswith("helm upgrade --install airflow apache-airflow/airflow --namespace airflow --version 1.22.0 "
                            "-f values.yaml --set-string 'scheduler.serviceAccount.annotations")
               or "--set-string 'scheduler.serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=" in c
               for c in scope["remediation"]["commands"])
    gcs = by["gcs-log-write-denied"]
    assert gcs["resource"]["name"] == "acme-airflow-logs"
    assert "node-storage-scope-read-only:NodePool/default-pool" in gcs["caused_by"]
    assert "will not be able to write logs" in gcs["title"]
    # No comparison: the namespace holds no release yet.
    assert doc["plan"]["compared_with"] is None and doc["plan"]["cluster"] == "snapshot"


def test_fixed_values_pass_on_the_fixed_cluster(run_cli, tmp_path, seed_cluster, wi_cluster):
    fixed = fm.render(fm.fixed_values())
    code, doc = planned(run_cli, tmp_path, wi_cluster, fixed)
    assert code == 0, [f["title"] for f in doc["findings"]]
    assert not [f for f in doc["findings"] if f["severity"] == "error"]
    passed = {c["id"] for c in doc["checks"] if c["status"] == "pass"}
    assert SEED_CHECKS <= passed
    # The values alone fix the PVC; the scopes need the cluster-side steps the run printed.
    code, doc = planned(run_cli, tmp_path, seed_cluster, fixed)
    assert code == 1
    assert {f["check"] for f in doc["findings"] if f["severity"] == "error"} == {
        "node-storage-scope-read-only", "gcs-log-write-denied"}


def test_runtime_only_checks_skip_in_planned_mode(run_cli, tmp_path, seed_cluster):
    from airflow_gke.registry import load_checks

    registry = load_checks()
    code, doc = planned(run_cli, tmp_path, seed_cluster, fm.render(fm.seed_values()))
    runtime = {c.id for c in registry.values() if not c.on_plan}
    assert runtime, "some checks need runtime evidence"
    for c in doc["checks"]:
        if c["id"] in runtime:
            assert (c["status"], c["reason"]) == ("skip", "runtime only: run after deploy"), c


def test_every_check_declares_its_evidence():
    from airflow_gke.registry import EVIDENCE, load_checks

    for c in load_checks().values():
        assert c.evidence in EVIDENCE, c.id


def test_stdin_and_argo_style_manifests(run_cli, tmp_path, seed_cluster, monkeypatch):
    import io

    text = fm.render(fm.seed_values(), argo=True, test_hook=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    res = run_cli("doctor", "--snapshot", str(seed_cluster), "--manifests", "-", "--output", "json")
    assert res.code == 1
    assert SEED_CHECKS <= {f["check"] for f in res.json["findings"]}
    assert res.json["plan"]["manifests"] == "<stdin>"


def test_kind_list_is_read_like_documents(tmp_path):
    import yaml

    from airflow_gke.manifests import read_plan

    docs = [d for d in yaml.safe_load_all(fm.render(fm.seed_values(), test_hook=True)) if d]
    as_list = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs})
    a = read_plan(fm.render(fm.seed_values(), test_hook=True), "a.yaml")
    b = read_plan(as_list, "b.yaml")
    assert {k: sorted(o["metadata"]["name"] for o in v) for k, v in a.objects.items()} == \
           {k: sorted(o["metadata"]["name"] for o in v) for k, v in b.objects.items()}
    assert a.skipped["Helm test hooks"] == 1 and a.skipped["Secrets (never read)"] == 3
    assert "airflow-test-connection" not in {p["metadata"]["name"] for p in a.items("pods")}
    # A planned pod per workload, the StatefulSet claim per replica, a planned task pod from the template.
    names = {p["metadata"]["name"] for p in a.items("pods")}
    assert {"airflow-scheduler-planned-0", "airflow-api-server-planned-0", "airflow-task-planned"} <= names


def test_secrets_in_manifests_are_never_kept(run_cli, tmp_path, seed_cluster):
    code, doc = planned(run_cli, tmp_path, seed_cluster, fm.render(fm.seed_values()))
    import base64
    import json

    text = json.dumps(doc)
    assert "placeholder" not in text and base64.b64encode(b"rendered-fernet-key-placeholder").decode() not in text


@pytest.mark.parametrize("text, needle", [
    ("kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: x\n    labels: y\ndata: {}\n", "rendered.yaml:5: malformed YAML"),
    ("---\n# Source: other/templates/cm.yaml\nkind: ConfigMap\napiVersion: v1\nmetadata:\n  name: x\n",
     "no object of the Airflow chart"),
    ("- just\n- a list\n", "rendered.yaml:1: a document is a list"),
    ("", "empty: no manifests"),
])
def test_bad_manifests_exit_2_with_file_and_line(run_cli, tmp_path, seed_cluster, text, needle):
    f = tmp_path / "rendered.yaml"
    f.write_text(text)
    res = run_cli("doctor", "--snapshot", str(seed_cluster), "--manifests", str(f))
    assert res.code == 2, res.err
    assert needle in res.err and "Traceback" not in res.err


def test_missing_manifests_file_exits_2(run_cli, tmp_path, seed_cluster):
    res = run_cli("doctor", "--snapshot", str(seed_cluster), "--manifests", str(tmp_path / "nope.yaml"))
    assert res.code == 2 and "cannot read" in res.err


@pytest.mark.parametrize("chart", sorted(fm.CHART_DEFAULTS))
@pytest.mark.parametrize("executor", ["KubernetesExecutor", "CeleryExecutor"])
def test_chart_versions_and_executors_are_read(chart, executor):
    from airflow_gke.manifests import read_plan

    rel = fm.release_for(chart, executor=executor, name="data")
    plan = read_plan(fm.render(rel, "pipelines"), "r.yaml")
    assert (plan.release, plan.namespace, plan.chart_version, plan.airflow_version) == (
        "data", "pipelines", chart, fm.CHART_DEFAULTS[chart])
    comps = {(p["metadata"]["labels"] or {}).get("component") for p in plan.items("pods")}
    assert ("api-server" in comps) == rel.af3 and ("webserver" in comps) == (not rel.af3)
    assert ("worker" in {c for c in comps if c} and any(
        p["metadata"]["name"] == "data-worker-0" for p in plan.items("pods"))) == rel.celery
    task = [p for p in plan.items("pods") if p["metadata"]["labels"].get("kubernetes_executor") == "True"]
    assert bool(task) == rel.kubernetes
