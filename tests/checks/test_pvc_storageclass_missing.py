"""The pvc-storageclass-missing check (Pending PVCs name a StorageClass that exists, or the cluster has
a default): its findings on the fixture scenarios (resource, evidence, commands, links) and where it
stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_pvc_storageclass_missing_no_default_class(doc):
    f = only(doc("storage-no-default-class"), "pvc-storageclass-missing")
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "PersistentVolumeClaim", "namespace": "data-pipelines",
                             "name": "logs-af2-worker-2", "uri": None}
    t = text(f)
    assert "spec.storageClassName (not set)" in t
    assert "no StorageClass carries storageclass.kubernetes.io/is-default-class=true" in t
    assert "no persistent volumes available for this claim and no storage class is set" in t
    assert "Pod af2-worker-2 (worker) mounts it and cannot start" in t
    c = cmds(f)
    assert ("kubectl patch storageclass standard-rwo -p "
            "'{\"metadata\":{\"annotations\":{\"storageclass.kubernetes.io/is-default-class\":\"true\"}}}'") in c
    assert "kubectl delete statefulset af2-worker --cascade=orphan --namespace data-pipelines" in c
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set workers.persistence.storageClassName=standard-rwo") in c


def test_pvc_storageclass_missing_named_class_absent(doc):
    d = doc("pvc-pending-wffc")
    f = only(d, "pvc-storageclass-missing")
    assert f["resource"]["name"] == "reports-cache"
    t = text(f)
    assert "spec.storageClassName nfs-client" in t
    assert 'storageclass.storage.k8s.io "nfs-client" not found' in t
    assert "kubectl delete pvc reports-cache --namespace airflow" in cmds(f)
    assert ("gcloud container clusters update airflow-prod --location europe-west1 --project acme-data-prod "
            "--update-addons=GcpFilestoreCsiDriver=ENABLED") in cmds(f)   # RWX asked, no Filestore class
    assert "scratch-data" not in {x["resource"]["name"] for x in findings_of(d, "pvc-storageclass-missing")}


@pytest.mark.parametrize("name", HEALTHY + ("seed-incident",))
def test_pvc_storageclass_missing_silent(doc, name):
    assert status_of(doc(name), "pvc-storageclass-missing") == "pass"
