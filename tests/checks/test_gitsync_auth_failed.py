"""The gitsync-auth-failed check (The git-sync containers of the Airflow components can clone the DAG
repository): its findings on the fixture scenarios (resource, evidence, commands, links) and where
it stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_gitsync_auth_failed(doc):
    d = doc("gitsync-deploy-key-revoked")
    fs = {(f["resource"]["kind"], f["resource"]["name"]): f for f in findings_of(d, "gitsync-auth-failed")}
    assert set(fs) == {("Deployment", "airflow-dag-processor"), ("StatefulSet", "airflow-triggerer")}
    f = fs[("Deployment", "airflow-dag-processor")]
    t = text(f)
    assert "CrashLoopBackOff" in t and "Permission denied (publickey)" in t
    assert "repo git@github.com:acme-data/airflow-dags.git" in t
    assert "key volume git-sync-ssh-key from Secret airflow-ssh-secret" in t
    c = cmds(f)
    assert ("kubectl create secret generic airflow-ssh-secret --namespace airflow "
            "--from-file=gitSshKey=$HOME/.ssh/airflow_deploy_key") in c
    assert "kubectl rollout restart deployment airflow-dag-processor --namespace airflow" in c
    # the task pod failing on the same repository points at these findings
    stuck = only(d, "executor-pod-stuck-init")
    assert set(stuck["caused_by"]) == {x["id"] for x in fs.values()}


@pytest.mark.parametrize("name", HEALTHY + ("task-pod-init-stuck", "gitsync-v3-secret-keys"))
def test_gitsync_auth_failed_silent(doc, name):
    # task-pod-init-stuck: only task pods fail (executor-pod-stuck-init's), the components clone fine
    assert status_of(doc(name), "gitsync-auth-failed") == "pass"
