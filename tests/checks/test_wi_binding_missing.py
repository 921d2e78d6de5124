"""The wi-binding-missing check (Annotated Airflow service accounts may impersonate their Google
service account): its findings on the fixture scenarios (resource, evidence, commands, links) and
where it stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import GSA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_wi_binding_missing_for_the_worker_ksa(doc):
    d = doc("wi-binding-gaps")
    [f] = [f for f in findings_of(d, "wi-binding-missing") if f["resource"]["name"] == GSA]
    assert f["resource"]["kind"] == "ServiceAccount"
    assert f["resource"]["uri"] == f"//iam.googleapis.com/projects/{P}/serviceAccounts/{GSA}"
    ev = f["evidence"]
    assert has(ev, f"no binding for serviceAccount:{P}.svc.id.goog[airflow/airflow-worker]")
    assert has(ev, f"serviceAccount:{P}.svc.id.goog[default/airflow-worker]")     # the namespace slip, shown
    assert has(ev, "log ", "iam.serviceAccounts.getAccessToken")
    assert (f"gcloud iam service-accounts add-iam-policy-binding {GSA} --project {P} --role "
            f"roles/iam.workloadIdentityUser --member 'serviceAccount:{P}.svc.id.goog[airflow/airflow-worker]'"
            ) in f["remediation"]["commands"]
    assert "airflow-api-server" not in f["title"] and "airflow-scheduler" not in f["title"]


def test_wi_binding_missing_gsa_that_does_not_exist(doc):
    d = doc("wi-binding-gaps")
    ui = f"airflow-ui@{P}.iam.gserviceaccount.com"
    [f] = [f for f in findings_of(d, "wi-binding-missing") if f["resource"]["name"] == ui]
    assert "does not exist" in f["title"]
    assert has(f["evidence"], "HTTP 404")
    cmds = f["remediation"]["commands"]
    assert f"gcloud iam service-accounts create airflow-ui --project {P} --display-name 'Airflow on GKE'" in cmds
    assert any("apiServer.serviceAccount.annotations" in c and GSA in c for c in cmds)
    r = one(d, "remote-log-read-denied")
    assert f["id"] in r["caused_by"]
    assert any(f"--member serviceAccount:{ui} --role roles/storage.objectViewer" in c for c in r["remediation"]["commands"])


def test_wi_binding_missing_passes_when_every_ksa_is_bound(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "wi-not-enabled-cluster"):
        assert status_of(doc(name), "wi-binding-missing") == "pass", name
