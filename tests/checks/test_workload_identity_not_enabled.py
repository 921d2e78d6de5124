"""The workload-identity-not-enabled check (Workload Identity is enabled where annotated Airflow pods
run): its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import GSA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_wi_not_enabled_on_the_cluster(doc):
    d = doc("wi-not-enabled-cluster")
    f = one(d, "workload-identity-not-enabled")
    assert f["resource"]["kind"] == "Cluster" and f["resource"]["name"] == "airflow-stg"
    assert f["resource"]["uri"] == f"//container.googleapis.com/projects/{P}/locations/europe-west1/clusters/airflow-stg"
    assert has(f["evidence"], "no workloadIdentityConfig.workloadPool")
    assert has(f["evidence"], "KSA airflow/airflow-worker (task pods)", GSA)
    cmds = f["remediation"]["commands"]
    assert (f"gcloud container clusters update airflow-stg --location europe-west1 --project {P} "
            f"--workload-pool={P}.svc.id.goog") in cmds
    assert (f"gcloud container node-pools update default-pool --cluster airflow-stg --location europe-west1 "
            f"--project {P} --workload-metadata=GKE_METADATA") in cmds
    for check in ("gcs-log-write-denied", "remote-log-read-denied"):
        assert one(d, check)["caused_by"] == [f["id"]], check


def test_wi_not_enabled_on_one_node_pool(doc):
    d = doc("wi-pool-gce-metadata")
    f = one(d, "workload-identity-not-enabled")
    assert f["resource"]["kind"] == "NodePool" and f["resource"]["name"] == "highmem-pool"
    assert has(f["evidence"], "node pool highmem-pool: no config.workloadMetadataConfig")
    assert has(f["evidence"], "KSA airflow/airflow-triggerer", "airflow-triggerer-0")
    assert not has(f["evidence"], "airflow-scheduler-")      # the scheduler runs on the GKE_METADATA pool
    assert ("gcloud container node-pools update highmem-pool --cluster airflow-prod --location europe-west1 "
            f"--project {P} --workload-metadata=GKE_METADATA") in f["remediation"]["commands"]
    assert one(d, "gcs-log-write-denied")["caused_by"] == [f["id"]]


def test_wi_not_enabled_passes_with_wi_and_skips_without_annotations(doc):
    for name in ("healthy-af3-k8s-wi", "remote-logging-wi-readonly-scope"):
        assert status_of(doc(name), "workload-identity-not-enabled") == "pass", name
    for name in ("seed-incident", "healthy-minimal"):   # no KSA names a GSA: not applicable
        assert status_of(doc(name), "workload-identity-not-enabled") == "skip", name
