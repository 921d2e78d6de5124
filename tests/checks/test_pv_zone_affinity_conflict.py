"""The pv-zone-affinity-conflict check (Every zonal volume has a schedulable node in its zone): its
findings on the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import doctor_json, scenario, status_of
from checktools import cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_pv_zone_affinity_conflict(doc):
    f = only(doc("pv-zone-node-pool-moved"), "pv-zone-affinity-conflict")
    assert f["resource"] == {"kind": "PersistentVolumeClaim", "namespace": "data-pipelines",
                             "name": "logs-af2-worker-1", "uri": None}
    t = text(f)
    assert "pinned by spec.nodeAffinity to zone europe-west1-d" in t
    assert "nodes by zone: europe-west1-b:" in t and "europe-west1-d:" not in t.split("nodes by zone:")[1].split("\n")[0]
    assert "volume node affinity conflict" in t and "NotTriggerScaleUp" in t
    c = cmds(f)
    assert ("gcloud container node-pools update default-pool --cluster airflow-prod --location europe-west1 "
            "--project acme-data-prod --node-locations=europe-west1-b,europe-west1-c,europe-west1-d") in c
    assert "--source-disk-zone=europe-west1-d --project acme-data-prod" in c


def test_pv_zone_affinity_conflict_needs_persistent_volumes(doc, run_cli, tmp_path):
    import shutil

    snap = tmp_path / "snap"
    shutil.copytree(scenario("pv-zone-node-pool-moved"), snap)
    (snap / "k8s/api/v1/persistentvolumes.json").unlink()   # an older snapshot without the path
    _code, d = doctor_json(run_cli, snap)
    c = next(c for c in d["checks"] if c["id"] == "pv-zone-affinity-conflict")
    assert c["status"] == "skip" and "persistentvolumes" in c["reason"]
    assert status_of(doc("healthy-af2-celery"), "pv-zone-affinity-conflict") == "pass"
    assert status_of(doc("storage-no-default-class"), "pv-zone-affinity-conflict") == "pass"
