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
    for f in (by[c] for c in SEED_CHECKS):
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
        "node-storage-scope-read-only", "gcs-log-write-denied", "workload-identity-not-enabled"}


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


@pytest.fixture(scope="module")
def planned_runs(tmp_path_factory):
    """Every planned scenario run once through the CLI: name -> (exit code, JSON report)."""
    from _pytest.monkeypatch import MonkeyPatch

    from conftest import validate_report
    from airflow_gke.cli import main

    import contextlib
    import io
    import json

    out = {}
    clusters = {}
    for name, (make_cluster, values, _want, _not) in fm.PLANNED.items():
        if isinstance(make_cluster, str):   # a committed scenario snapshot
            from conftest import scenario

            where = scenario(make_cluster)
        else:
            sc = make_cluster()
            if sc.name not in clusters:
                clusters[sc.name] = fm.write(sc, tmp_path_factory.mktemp(sc.name))
            where = clusters[sc.name]
        f = tmp_path_factory.mktemp("plan") / f"{name}.yaml"
        f.write_text(fm.render(values()))
        buf = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            try:
                main(["doctor", "--snapshot", str(where), "--manifests", str(f), "--output", "json"])
            except SystemExit as e:
                code = e.code
        doc = json.loads(buf.getvalue())
        validate_report(doc)
        out[name] = (code, doc)
    return out


@pytest.mark.parametrize("name", sorted(fm.PLANNED))
def test_planned_scenario(planned_runs, name):
    _make, _values, want, must_not = fm.PLANNED[name]
    code, doc = planned_runs[name]
    fired = {f["check"] for f in doc["findings"]}
    assert want <= fired, (name, fired)
    if must_not is None:
        assert fired == want, (name, fired)
    else:
        assert not (fired & must_not), (name, fired & must_not)
    assert code == (1 if any(f["severity"] == "error" for f in doc["findings"]) else 0)
    for f in doc["findings"]:
        for cmd in f["remediation"]["commands"]:
            assert "--reuse-values" not in cmd, (name, f["check"], cmd)
            for verb in ("kubectl delete", "kubectl describe pvc", "kubectl create role", "kubectl annotate"):
                assert verb not in cmd, (name, f["check"], cmd)


def test_every_config_check_fires_on_a_plan_and_no_runtime_check_passes(planned_runs):
    from airflow_gke.registry import load_checks

    registry = load_checks()
    fired = {f["check"] for _code, doc in planned_runs.values() for f in doc["findings"]}
    config = {c.id for c in registry.values() if c.on_plan}
    assert config - fired == set(), "config-level checks no planned scenario makes fire"
    for name, (_code, doc) in planned_runs.items():
        for c in doc["checks"]:
            if not registry[c["id"]].on_plan:
                assert c["status"] == "skip" and c["reason"] == "runtime only: run after deploy", (name, c)
    healthy = planned_runs["healthy"][1]
    assert healthy["findings"] == [] and planned_runs["healthy"][0] == 0
    assert {c["id"] for c in healthy["checks"] if c["status"] == "pass"} >= {
        "pvc-access-mode-unsupported", "gcs-log-write-denied", "node-storage-scope-read-only"}


def test_upgrade_plan_says_what_it_introduces_and_fixes(run_cli, tmp_path):
    """The namespace runs the release with a Pending RWX logs PVC; the new values drop the PVC and
    turn on remote logging through read-only node scopes: the review sees both."""
    cluster = fm.write(fm.cluster("upgrade-cluster", running=fm.UPGRADE_RUNNING), tmp_path / "cluster")
    f = tmp_path / "upgrade.yaml"
    f.write_text(fm.render(fm.UPGRADE_VALUES))
    res = run_cli("doctor", "--snapshot", str(cluster), "--manifests", str(f), "--output", "json")
    assert res.code == 1
    plan = res.json["plan"]
    assert plan["compared_with"] == "snapshot"
    ids = {k: [x["id"] for x in plan[k]] for k in ("introduced", "fixed", "unchanged")}
    assert ids["fixed"] == ["pvc-access-mode-unsupported:PersistentVolumeClaim/airflow/airflow-logs"]
    assert ids["introduced"] == ["gcs-log-write-denied:Bucket/acme-airflow-logs",
                                 "node-storage-scope-read-only:NodePool/default-pool"]
    assert "default-compute-sa-nodes:NodePool/default-pool" in ids["unchanged"]
    assert "pvc-access-mode-unsupported" not in {x["check"] for x in res.json["findings"]}
    # Every format says it.
    table = run_cli("doctor", "--snapshot", str(cluster), "--manifests", str(f)).out
    assert "introduces 2, fixes 1" in table and "+ introduces error node-storage-scope-read-only" in table
    md = run_cli("doctor", "--snapshot", str(cluster), "--manifests", str(f), "--output", "markdown").out
    assert "- fixes error pvc-access-mode-unsupported" in md
    junit = run_cli("doctor", "--snapshot", str(cluster), "--manifests", str(f), "--output", "junit").out
    assert '<property name="plan.introduced" value="2" />' in junit and '<property name="mode" value="planned" />' in junit


def test_ci_example_plans_before_the_upgrade():
    """docs/ci/plan-before-deploy.yml pipes helm template into doctor --manifests - (a command line
    the real CLI accepts) in a job the upgrade needs."""
    import re
    import shlex
    from pathlib import Path

    import yaml

    from airflow_gke.cli import cli

    wf = yaml.safe_load((Path(__file__).resolve().parent.parent / "docs/ci/plan-before-deploy.yml").read_text())
    run = next(s for s in wf["jobs"]["plan"]["steps"] if s.get("id") == "plan")["run"]
    line = next(ln for ln in run.splitlines() if ln.startswith("helm template"))
    helm, doctor = (shlex.split(x) for x in line.split(" | "))
    assert helm[:2] == ["helm", "template"] and "--version" in helm and "--values" in helm
    assert "set -o pipefail" in run
    env = wf["env"]
    filled = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], a) for a in doctor[2:]]
    params = cli.commands["doctor"].make_context("doctor", filled).params
    assert params["manifests"] == "-" and params["fail_on"] == "error"
    assert wf["jobs"]["deploy"]["needs"] == "plan"
    assert any("helm upgrade --install" in s.get("run", "") for s in wf["jobs"]["deploy"]["steps"])


@pytest.mark.parametrize("name", ["bucket-missing", "seed"])
def test_live_planned_run_matches_the_snapshot_run(run_cli, tmp_path, monkeypatch, name):
    """Live mode through the real clients and the loopback replay server: the cluster and project are
    read live, the per-item reads (the log bucket, the Google service accounts) include those only
    the plan names, and the findings equal those of the snapshot run."""
    import os

    from replay import ReplayServer

    make, values, want, _ = fm.PLANNED[name]
    root = fm.write(make(), tmp_path / "cluster")
    f = tmp_path / "plan.yaml"
    f.write_text(fm.render(values()))
    _code, snap = planned(run_cli, tmp_path, root, f.read_text())
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)
    srv = ReplayServer(root).start()
    try:
        kc = srv.write_kubeconfig(tmp_path / "kubeconfig")
        extra = ["--now", srv.meta["captured_at"]]
        if srv.context_name == "replay":
            extra += [x for k in ("project", "location", "cluster") for x in (f"--{k}", srv.meta[k])]
        res = run_cli("doctor", *extra, "--manifests", str(f), "--output", "json", env=srv.env(kubeconfig=kc))
    finally:
        srv.stop()
    assert res.code == (1 if any(x["severity"] == "error" for x in snap["findings"]) else 0), res.err
    doc = res.json
    assert doc["run"]["mode"] == "planned" and doc["plan"]["cluster"] == "live"
    assert want <= {x["check"] for x in doc["findings"]}
    assert sorted(x["id"] for x in doc["findings"]) == sorted(x["id"] for x in snap["findings"])
    assert {c["id"]: c["status"] for c in doc["checks"]} == {c["id"]: c["status"] for c in snap["checks"]}


def test_docs_name_the_checks_that_run_on_a_plan(run_cli):
    import json
    import re
    from pathlib import Path

    from airflow_gke.registry import load_checks

    conf = {c.id for c in load_checks().values() if c.on_plan}
    deploy = (Path(__file__).resolve().parent.parent / "docs/deploy.md").read_text()
    line = next(ln for ln in deploy.splitlines() if "Checks that run on a plan:" in ln)
    assert set(re.findall(r"`([a-z0-9-]+)`", line.split("Checks that run on a plan:")[1])) == conf
    listed = json.loads(run_cli("checks", "--output", "json").out)
    assert {c["id"] for c in listed if c["evidence"] == "config"} == conf


def test_the_plan_lines_in_the_html_page(run_cli, tmp_path, seed_cluster):
    f = tmp_path / "rendered.yaml"
    f.write_text(fm.render(fm.seed_values()))
    res = run_cli("doctor", "--snapshot", str(seed_cluster), "--manifests", str(f), "--output", "html")
    assert res.code == 1, res.err
    assert ('<div class="plan"><p><strong>Plan ' in res.out
            and "the namespace does not run release airflow yet (first deploy): every finding is new." in res.out)
