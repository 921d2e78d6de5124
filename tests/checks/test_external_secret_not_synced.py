"""The external-secret-not-synced check (External Secrets that Airflow needs are synced): its findings
on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, findings_of
from checktools import _check, _cmds, _copy, _ev, _one, _pod, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_eso_store_with_wrong_cluster_location(doc):
    d = doc("external-secret-not-synced")
    f = _one(d, "external-secret-not-synced", "SecretStore", "gcp-secret-manager")
    ev = _ev(f)
    assert "clusterLocation is 'europe-west1-b' but this cluster's is 'europe-west1'" in ev
    assert "idbindtoken token, status: 404" in ev
    assert ("kubectl patch secretstore gcp-secret-manager --namespace airflow --type merge -p "
            "'{\"spec\":{\"provider\":{\"gcpsm\":{\"auth\":{\"workloadIdentity\":{\"clusterLocation\":\"europe-west1\","
            "\"clusterName\":\"airflow-prod\",\"clusterProjectID\":\"acme-data-prod\"}}}}}}'") in _cmds(f)


def test_eso_external_secret_lists_the_blocked_pods_and_links_its_store(doc):
    d = doc("external-secret-not-synced")
    f = _one(d, "external-secret-not-synced", "ExternalSecret", "airflow-metadata")
    assert f["caused_by"] == ["external-secret-not-synced:SecretStore/airflow/gcp-secret-manager"]
    assert "4 Airflow pod(s) wait for Secret airflow-metadata" in f["title"]
    sched = _pod("external-secret-not-synced", "scheduler")
    assert f"Pod {sched} (scheduler) waits for Secret airflow-metadata" in _ev(f)


def test_eso_permission_denied_grants_secret_accessor(doc):
    d = doc("external-secret-not-synced")
    f = _one(d, "external-secret-not-synced", "ExternalSecret", "airflow-connections")
    assert "Permission 'secretmanager.versions.access' denied" in _ev(f)
    assert ("gcloud secrets add-iam-policy-binding airflow-conn-bigquery --project acme-data-prod "
            "--member serviceAccount:ESO_GSA_EMAIL --role roles/secretmanager.secretAccessor") in _cmds(f)
    names = {x["resource"]["name"] for x in findings_of(d, "external-secret-not-synced")}
    assert "airflow-fernet-key" not in names


def test_eso_not_installed_is_not_applicable(doc):
    d = doc("healthy-af3-k8s-wi")   # the CRDs answer 404: not applicable, which is not a pass
    assert _check(d, "external-secret-not-synced")[:2] == (
        "skip", "External Secrets Operator is not installed (its CRDs answer 404): not applicable")


def test_eso_v1beta1_is_read_when_v1_is_not_served(run_cli, tmp_path):
    root = _copy(tmp_path, "external-secret-not-synced")
    base = root / "k8s/apis/external-secrets.io"
    for kind in ("externalsecrets", "secretstores"):
        v1, beta = base / f"v1/namespaces/airflow/{kind}.json", base / f"v1beta1/namespaces/airflow/{kind}.json"
        text = v1.read_text().replace("external-secrets.io/v1\"", "external-secrets.io/v1beta1\"")
        (base / f"v1beta1/namespaces/airflow/{kind}.error.json").rename(v1.with_name(f"{kind}.error.json"))
        v1.unlink()
        beta.write_text(text)
    _, d = doctor_json(run_cli, root, "--check", "external-secret-not-synced")
    names = sorted((f["resource"]["kind"], f["resource"]["name"]) for f in findings_of(d, "external-secret-not-synced"))
    assert names == [("ExternalSecret", "airflow-connections"), ("ExternalSecret", "airflow-metadata"),
                     ("SecretStore", "gcp-secret-manager")]
    assert all("(v1beta1)" in f["evidence"][0] for f in findings_of(d, "external-secret-not-synced"))
