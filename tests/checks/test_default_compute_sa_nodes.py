"""The default-compute-sa-nodes check (Node pools running Airflow use a dedicated service account): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import COMPUTE_SA, NODE_SA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_default_compute_sa_nodes_in_the_seed_incident(doc):
    f = one(doc("seed-incident"), "default-compute-sa-nodes")
    assert f["severity"] == "warning"
    assert f["resource"]["kind"] == "NodePool" and f["resource"]["name"] == "default-pool"
    assert has(f["evidence"], "config.serviceAccount default", COMPUTE_SA)
    assert has(f["evidence"], "Airflow pods on it", "airflow-scheduler-")
    assert has(f["evidence"], COMPUTE_SA, "roles/editor")
    cmds = f["remediation"]["commands"]
    assert f"gcloud iam service-accounts create gke-nodes --project {P} --display-name 'GKE nodes'" in cmds
    assert any(c.startswith("gcloud container node-pools create default-pool-sa --cluster airflow-prod "
                            f"--location europe-west1 --project {P} --service-account {NODE_SA} "
                            "--scopes=cloud-platform --workload-metadata=GKE_METADATA "
                            "--machine-type e2-standard-4") for c in cmds)
    assert "kubectl drain -l cloud.google.com/gke-nodepool=default-pool --ignore-daemonsets --delete-emptydir-data" in cmds


def test_default_compute_sa_nodes_quiet_for_pools_without_airflow(doc):
    assert status_of(doc("airflow-gsa-editor"), "default-compute-sa-nodes") == "pass"
    for name in ("healthy-af3-k8s-wi", "healthy-minimal", "healthy-af2-celery"):
        assert status_of(doc(name), "default-compute-sa-nodes") == "pass", name
