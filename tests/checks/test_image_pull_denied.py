"""The image-pull-denied check (Nodes may pull the images from Artifact Registry): its findings on the
fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import NODE_SA, P, has, one, reports


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_image_pull_denied_groups_the_pods_by_repository(doc):
    d = doc("image-pull-403-ar")
    f = one(d, "image-pull-denied")
    repo = f"europe-west1-docker.pkg.dev/{P}/airflow-images"
    assert f["resource"] == {"kind": "Repository", "namespace": None, "name": repo,
                             "uri": f"//artifactregistry.googleapis.com/projects/{P}/locations/europe-west1/"
                                    "repositories/airflow-images"}
    ev = f["evidence"]
    assert sum(1 for e in ev if e.startswith("Pod airflow-") and "ImagePullBackOff" in e) == 4
    assert has(ev, "event Warning Failed", "403 Forbidden")
    assert has(ev, f"its service account {NODE_SA}")
    assert has(ev, NODE_SA, "no role with artifactregistry.repositories.downloadArtifacts")
    assert (f"gcloud artifacts repositories add-iam-policy-binding airflow-images --project {P} --location "
            f"europe-west1 --member serviceAccount:{NODE_SA} --role roles/artifactregistry.reader"
            ) in f["remediation"]["commands"]
    assert "statsd" not in " ".join(ev)        # its image is not found: a different failure


def test_image_pull_denied_quiet_without_pull_errors(doc):
    for name in ("healthy-af3-k8s-wi", "task-pod-init-young"):
        assert status_of(doc(name), "image-pull-denied") == "pass", name
