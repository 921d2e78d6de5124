"""The fernet-key-changed check (Airflow decrypts connections and variables with the key that encrypted
them): its findings on the fixture scenarios (resource, evidence, commands, links) and where it
stays silent."""
from __future__ import annotations

import json
import pytest

from conftest import doctor_json, findings_of, status_of
from checktools import _cmds, _copy, _edit, _ev, _one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli, "--extended")


def test_fernet_invalid_token_in_a_task_log(doc):
    d = doc("fernet-key-changed-af2")
    f = _one(d, "fernet-key-changed", "Secret", "af2-fernet-key")
    assert f["severity"] == "warning" and f["resource"]["namespace"] == "data-pipelines"
    ev = _ev(f)
    assert "cryptography.fernet.InvalidToken" in ev
    assert "AIRFLOW__CORE__FERNET_KEY from Secret af2-fernet-key key fernet-key" in ev
    cmds = _cmds(f)
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set fernetKeySecretName=af2-fernet-key-pinned") in cmds
    assert "airflow rotate-fernet-key" in cmds


def test_fernet_passes_without_evidence(doc):
    for name in ("healthy-af3-k8s-wi", "healthy-af2-celery", "jwt-secret-mismatch-af3"):
        assert status_of(doc(name), "fernet-key-changed") == "pass", name


def test_fernet_components_reading_different_secrets(run_cli, tmp_path):
    root = _copy(tmp_path, "healthy-af2-celery")
    ns = json.loads((root / "meta.json").read_text())["namespace"]

    def other_secret(body):
        for p in body["items"]:
            if p["metadata"]["labels"].get("component") == "scheduler":
                for e in p["spec"]["containers"][0]["env"]:
                    if e["name"] == "AIRFLOW__CORE__FERNET_KEY":
                        e["valueFrom"]["secretKeyRef"]["name"] = "fernet-from-vault"
    _edit(root, f"k8s/api/v1/namespaces/{ns}/pods.json", other_secret)
    _, d = doctor_json(run_cli, root, "--check", "fernet-key-changed")
    [f] = findings_of(d, "fernet-key-changed")
    assert f["resource"]["name"] == "fernet-from-vault" and f["severity"] == "warning"
    assert "components take the fernet key from different places" in f["title"]
