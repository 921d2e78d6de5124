"""The executor-rbac-forbidden check (The scheduler may create, watch and delete task pods): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, status_of
from checktools import _cmds, _copy, _ev, _one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


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


def test_rbac_unknown_without_cluster_bindings_or_logs_is_a_skip_not_a_pass(run_cli, tmp_path):
    root = _copy(tmp_path, "executor-rbac-forbidden-af2")
    (root / "k8s/apis/rbac.authorization.k8s.io/v1/clusterrolebindings.json").unlink()
    for log in root.glob("k8s/api/v1/namespaces/data-pipelines/pods/*/log/scheduler*.log"):
        log.write_text("")
    _, d = doctor_json(run_cli, root, "--check", "executor-rbac-forbidden")
    assert status_of(d, "executor-rbac-forbidden") == "skip"
    assert "clusterrolebindings" in next(c["reason"] for c in d["checks"] if c["id"] == "executor-rbac-forbidden")
