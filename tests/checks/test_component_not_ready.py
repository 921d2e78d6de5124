"""The component-not-ready check (the health floor: each Airflow component runs): its findings on
the fixture scenarios where no specific check knows the cause, and where it stays silent (young pods,
rollouts in progress). How its findings fold under a specific cause: tests/test_floor.py."""
from __future__ import annotations

import re

import pytest

from conftest import findings_of, status_of
from checktools import report
from test_floor import _component_pods_down


def _doc(run_cli, name: str) -> dict:
    return report(run_cli, name, "--extended")


def _floor_findings(run_cli, name: str, check: str = "component-not-ready") -> dict[str, dict]:
    doc = _doc(run_cli, name)
    return {f["resource"]["name"]: f for f in findings_of(doc, check)}


def test_private_nodes_without_nat_unknown_cause_scheduler_triggerer_statsd(run_cli):
    """No specific check knows a missing Cloud NAT: the floor names each component, the Kubernetes
    reason, the duration and the evidence; its fix is the next step with the real names."""
    doc = _doc(run_cli, "private-nodes-no-nat")
    assert [f["check"] for f in doc["findings"]] == ["component-not-ready"] * 3
    fs = _floor_findings(run_cli, "private-nodes-no-nat")
    s, t, st = fs["airflow-scheduler"], fs["airflow-triggerer"], fs["airflow-statsd"]
    for f in (s, t):
        assert f["severity"] == "error"
        assert re.match(r"^(scheduler|triggerer) is not running: init container git-sync-init CrashLoopBackOff for "
                        r"50m \(last log: too many failures, aborting: ssh: connect to host github.com port 22: "
                        r"Connection timed out", f["title"]), f["title"]
        assert any("restartCount 11" in e and "not ready for 50m" in e for e in f["evidence"])
        assert any(e.startswith("event Warning BackOff (x142, kubelet): Back-off restarting failed container "
                                "git-sync-init") for e in f["evidence"])
        pod = next(p for p in f["message"].split() if p.startswith(f["resource"]["name"] + "-"))
        pod = pod.rstrip(".")
        assert f["remediation"]["commands"][0] == (f"kubectl logs {pod} --namespace airflow --container git-sync-init "
                                                   "--previous")
    assert s["resource"]["kind"] == "Deployment" and t["resource"]["kind"] == "StatefulSet"
    assert st["title"].startswith("statsd is not running: container statsd ImagePullBackOff for 50m (Failed to pull "
                                  'image "quay.io/prometheus/statsd-exporter:v0.28.0"')
    assert st["title"].endswith("dial tcp 44.219.83.121:443: i/o timeout)")
    assert any("i/o timeout" in e and e.startswith("event Warning Failed (x11, kubelet)") for e in st["evidence"])
    assert status_of(doc, "gitsync-auth-failed") == "pass" and status_of(doc, "image-pull-denied") == "pass"



def test_gcsfuse_permission_denied_unknown_cause_names_the_mount_event(run_cli):
    fs = _floor_findings(run_cli, "gcsfuse-dags-permission-denied")
    assert sorted(fs) == ["airflow-dag-processor", "airflow-scheduler", "airflow-triggerer"]
    for comp, f in fs.items():
        assert f["severity"] == "error"
        assert f["title"].startswith(f"{comp.removeprefix('airflow-')} is not running: PodInitializing: FailedMount "
                                     "for 47m (MountVolume.SetUp failed for volume \"dags-fuse\"")
        assert any("code = PermissionDenied" in e and e.startswith("event Warning FailedMount (x27, kubelet)")
                   for e in f["evidence"])
        assert any("timed out waiting for the condition" in e for e in f["evidence"])
        assert f["remediation"]["commands"][0].startswith(f"kubectl describe pod {comp}-")



@pytest.mark.parametrize("name", ["healthy-young-scheduler-pod", "healthy-rollout-in-progress"])
def test_young_pods_and_rollouts_in_progress_get_no_floor_finding(name, run_cli):
    down, young = _component_pods_down(name)
    assert young and not down, "the scenario holds not-ready pods, all within the grace"
    doc = _doc(run_cli, name)
    assert doc["findings"] == [] and status_of(doc, "component-not-ready") == "pass"
