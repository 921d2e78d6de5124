"""The overprivileged-identity check (Node and Airflow Google identities hold no basic Editor/Owner
role): its findings on the fixture scenarios (resource, evidence, commands, links) and where it
stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import COMPUTE_SA, GSA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_overprivileged_airflow_gsa(doc):
    d = doc("airflow-gsa-editor")
    f = one(d, "overprivileged-identity")
    assert f["severity"] == "warning"
    assert f["resource"]["kind"] == "ServiceAccount" and f["resource"]["name"] == GSA
    assert has(f["evidence"], "roles/editor is granted to", GSA)
    cmds = f["remediation"]["commands"]
    assert (f"gcloud storage buckets add-iam-policy-binding gs://acme-airflow-logs --member serviceAccount:{GSA} "
            "--role roles/storage.objectUser") in cmds
    assert f"gcloud projects remove-iam-policy-binding {P} --member serviceAccount:{GSA} --role roles/editor" in cmds
    assert not any("roles/editor" in c and "add-iam-policy-binding" in c for c in cmds)


def test_overprivileged_node_sa_in_the_seed_incident(doc):
    f = one(doc("seed-incident"), "overprivileged-identity")
    assert f["resource"]["name"] == COMPUTE_SA
    assert has(f["evidence"], "node pool(s) default-pool", "run Airflow pods")
    cmds = f["remediation"]["commands"]
    assert (f"gcloud projects add-iam-policy-binding {P} --member serviceAccount:{COMPUTE_SA} "
            "--role roles/container.defaultNodeServiceAccount") in cmds
    assert f"gcloud projects remove-iam-policy-binding {P} --member serviceAccount:{COMPUTE_SA} --role roles/editor" in cmds


def test_overprivileged_ignores_editors_that_do_not_run_airflow(doc):
    # airflow-gsa-editor: the compute default SA holds roles/editor but its pool runs no Airflow pod
    assert [f["resource"]["name"] for f in findings_of(doc("airflow-gsa-editor"), "overprivileged-identity")] == [GSA]
    assert status_of(doc("healthy-af3-k8s-wi"), "overprivileged-identity") == "pass"
