"""The gitsync-credentials-mismatch check (The git-sync credentials use the key and env names of the
git-sync version in use): its findings on the fixture scenarios (resource, evidence, commands,
links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_gitsync_credentials_mismatch(doc):
    f = only(doc("gitsync-v3-secret-keys"), "gitsync-credentials-mismatch")
    assert f["resource"] == {"kind": "Secret", "namespace": "data-pipelines", "name": "git-credentials", "uri": None}
    t = text(f)
    assert "couldn't find key GITSYNC_USERNAME in Secret data-pipelines/git-credentials" in t
    assert "image registry.k8s.io/git-sync/git-sync:v4.4.2" in t
    assert "af2-triggerer-0" in t and "af2-worker-1" in t
    c = cmds(f)
    assert ("kubectl create secret generic git-credentials --namespace data-pipelines "
            "--from-literal=GIT_SYNC_USERNAME=USER --from-literal=GIT_SYNC_PASSWORD=TOKEN "
            "--from-literal=GITSYNC_USERNAME=USER --from-literal=GITSYNC_PASSWORD=TOKEN") in c
    assert "kubectl rollout restart statefulset af2-worker --namespace data-pipelines" in c


@pytest.mark.parametrize("name", HEALTHY + ("gitsync-deploy-key-revoked",))
def test_gitsync_credentials_mismatch_silent(doc, name):
    assert status_of(doc(name), "gitsync-credentials-mismatch") == "pass"
