"""The dags-pvc-multi-attach check (Single-node (ReadWriteOnce) volumes are mounted on one node only):
its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_dags_pvc_multi_attach(doc):
    f = only(doc("dags-pvc-rwo-multi-attach"), "dags-pvc-multi-attach")
    assert f["resource"]["kind"] == "PersistentVolumeClaim"
    assert f["resource"]["name"] == "airflow-dags" and f["resource"]["namespace"] == "airflow"
    t = text(f)
    assert "spec.accessModes ['ReadWriteOnce']" in t and "pd.csi.storage.gke.io" in t
    assert "Multi-Attach error for volume" in t
    assert t.count("node gke-airflow-prod-airflow-pool-") == 3
    c = cmds(f)
    assert "# Option A" in c and "# Option B" in c
    assert "--set dags.persistence.enabled=false --set dags.gitSync.enabled=true" in c
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set dags.persistence.accessMode=ReadWriteMany --set dags.persistence.storageClassName=standard-rwx") in c
    assert "gcloud services enable file.googleapis.com --project acme-data-prod" in c


@pytest.mark.parametrize("name", HEALTHY + ("storage-no-default-class",))
def test_dags_pvc_multi_attach_silent(doc, name):
    assert status_of(doc(name), "dags-pvc-multi-attach") == "pass"
