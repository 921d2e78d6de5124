"""The component-not-ready check (the health floor: each Airflow component runs): its findings on
the fixture scenarios where no specific check knows the cause, and where it stays silent (young pods,
rollouts in progress). How its findings fold under a specific cause: tests/test_floor.py."""
from __future__ import annotations

import re

import pytest

from conftest import doctor_json, findings_of, scenario, status_of
from checktools import report
from test_floor import _component_pods_down


def _doc(run_cli, name: str) -> dict:
    return report(run_cli, name, "--extended")


def _floor_findings(run_cli, name: str, check: str = "component-not-ready", alone: bool = False) -> dict[str, dict]:
    """The floor's findings by resource name; ``alone``: the floor check run by itself (where a specific
    check knows the cause, a full run folds these under it)."""
    doc = report(run_cli, name, "--check", check) if alone else _doc(run_cli, name)
    return {f["resource"]["name"]: f for f in findings_of(doc, check)}


def test_private_nodes_without_nat_scheduler_triggerer_statsd(run_cli):
    """The floor by itself names each component, the Kubernetes reason, the duration and the evidence;
    its fix is the next step with the real names. In a full run the three fold under
    private-nodes-no-egress, which knows the cause."""
    doc = _doc(run_cli, "private-nodes-no-nat")
    assert [f["check"] for f in doc["findings"]] == ["private-nodes-no-egress"]
    assert [s["check"] for s in doc["findings"][0]["symptoms"]] == ["component-not-ready"] * 3
    fs = _floor_findings(run_cli, "private-nodes-no-nat", alone=True)
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



def test_gcsfuse_permission_denied_names_the_mount_event(run_cli):
    fs = _floor_findings(run_cli, "gcsfuse-dags-permission-denied", alone=True)
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


# --- the other Kubernetes reasons, on a copy of the healthy snapshot with one object changed ---------

def _patched(tmp_path, edit) -> dict:
    """``healthy-af3-k8s-wi`` (captured 2026-11-20T10:00:00Z) with ``edit(pods, events, jobs)`` applied."""
    import json
    import shutil

    dst = tmp_path / "snap"
    shutil.copytree(scenario("healthy-af3-k8s-wi"), dst)
    base = dst / "k8s" / "api" / "v1" / "namespaces" / "airflow"
    files = {"pods": base / "pods.json", "events": base / "events.json",
             "jobs": dst / "k8s" / "apis" / "batch" / "v1" / "namespaces" / "airflow" / "jobs.json"}
    bodies = {k: json.loads(p.read_text()) for k, p in files.items()}
    edit({p["metadata"]["name"].rsplit("-", 2)[0] if "-0" not in p["metadata"]["name"] else p["metadata"]["name"]: p
          for p in bodies["pods"]["items"]}, bodies["events"]["items"], bodies["jobs"]["items"])
    for k, p in files.items():
        p.write_text(json.dumps(bodies[k]))
    return dst


def _not_ready(p: dict, since: str, message: str = "containers with unready status") -> None:
    for c in p["status"]["conditions"]:
        if c["type"] in ("Ready", "ContainersReady"):
            c.update(status="False", lastTransitionTime=since, reason="ContainersNotReady", message=message)


def test_running_but_failing_readiness_names_the_probe_event(run_cli, tmp_path):
    def edit(pods, events, jobs):
        p = pods["airflow-api-server"]
        _not_ready(p, "2026-11-20T09:38:00Z")
        for cs in p["status"]["containerStatuses"]:
            cs["ready"] = False
        events.append({"metadata": {"name": "api.1", "namespace": "airflow", "uid": "u-1",
                                    "creationTimestamp": "2026-11-20T09:38:10Z"},
                       "involvedObject": {"kind": "Pod", "namespace": "airflow", "name": p["metadata"]["name"],
                                          "uid": p["metadata"]["uid"], "fieldPath": "spec.containers{api-server}"},
                       "reason": "Unhealthy", "type": "Warning", "count": 131,
                       "message": 'Readiness probe failed: Get "http://10.8.0.12:8080/api/v2/monitor/health": '
                                  "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                       "firstTimestamp": "2026-11-20T09:38:10Z", "lastTimestamp": "2026-11-20T09:59:40Z",
                       "source": {"component": "kubelet"}})

    doc = doctor_json(run_cli, _patched(tmp_path, edit))[1]
    f = findings_of(doc, "component-not-ready")
    assert len(f) == 1 and f[0]["severity"] == "error"
    assert f[0]["title"] == ("api-server is not running: container api-server Running but not Ready for 22m "
                             '(Readiness probe failed: Get "http://10.8.0.12:8080/api/v2/monitor/health": context '
                             "deadline exceeded (Client.Timeout exceeded while awaiting headers))")
    assert any(e.startswith("event Warning Unhealthy (x131, kubelet): Readiness probe failed") for e in f[0]["evidence"])


def test_terminating_stuck_and_a_failed_job(run_cli, tmp_path):
    def edit(pods, events, jobs):
        p = pods["airflow-triggerer-0"]
        p["metadata"]["deletionTimestamp"] = "2026-11-20T09:20:00Z"
        p["metadata"]["finalizers"] = ["example.com/log-archiver"]
        job = jobs[0]
        job["status"] = {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit",
                                         "lastProbeTime": "2026-11-20T09:10:00Z",
                                         "lastTransitionTime": "2026-11-20T09:10:00Z"},
                                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit",
                                         "lastProbeTime": "2026-11-20T09:10:00Z",
                                         "lastTransitionTime": "2026-11-20T09:10:00Z"}],
                         "startTime": "2026-11-20T09:00:00Z", "failed": 7, "terminating": 0, "ready": 0,
                         "uncountedTerminatedPods": {}}

    doc = doctor_json(run_cli, _patched(tmp_path, edit))[1]
    fs = {f["resource"]["kind"]: f for f in findings_of(doc, "component-not-ready")}
    t = fs["StatefulSet"]
    assert t["title"].startswith("triggerer is not running: Terminating (deletion not finished) for 40m")
    assert any("finalizers ['example.com/log-archiver']" in e for e in t["evidence"])
    assert t["remediation"]["commands"][0] == ("kubectl get pod airflow-triggerer-0 --namespace airflow -o "
                                               "jsonpath='{.metadata.finalizers}'")
    j = fs["Job"]
    assert j["title"] == "run-airflow-migrations Job airflow-run-airflow-migrations failed (BackoffLimitExceeded)"
    assert j["remediation"]["commands"][0] == "kubectl describe job airflow-run-airflow-migrations --namespace airflow"


def test_a_deployment_that_cannot_create_its_pods(run_cli, tmp_path):
    """No pod at all (a quota refuses it): the floor names the Deployment and the ReplicaFailure message."""
    quota = ('pods "airflow-statsd-n7rvn8wsmd-x2k9p" is forbidden: exceeded quota: compute-resources, requested: '
             "requests.cpu=100m, used: requests.cpu=8, limited: requests.cpu=8")

    import json

    snap = _patched(tmp_path, lambda pods, events, jobs: None)

    path = snap / "k8s" / "apis" / "apps" / "v1" / "namespaces" / "airflow" / "deployments.json"
    body = json.loads(path.read_text())
    d = next(x for x in body["items"] if x["metadata"]["name"] == "airflow-statsd")
    d["status"] = {"observedGeneration": 1, "replicas": 0, "unavailableReplicas": 1, "conditions": [
        {"type": "Available", "status": "False", "lastUpdateTime": "2026-11-20T09:30:00Z",
         "lastTransitionTime": "2026-11-20T09:30:00Z", "reason": "MinimumReplicasUnavailable",
         "message": "Deployment does not have minimum availability."},
        {"type": "ReplicaFailure", "status": "True", "lastUpdateTime": "2026-11-20T09:30:00Z",
         "lastTransitionTime": "2026-11-20T09:30:00Z", "reason": "FailedCreate", "message": quota}]}
    path.write_text(json.dumps(body))
    pods_path = snap / "k8s" / "api" / "v1" / "namespaces" / "airflow" / "pods.json"
    pb = json.loads(pods_path.read_text())
    pb["items"] = [p for p in pb["items"] if not p["metadata"]["name"].startswith("airflow-statsd-")]
    pods_path.write_text(json.dumps(pb))
    doc = doctor_json(run_cli, snap)[1]
    f = findings_of(doc, "component-not-ready")
    assert len(f) == 1 and f[0]["resource"]["name"] == "airflow-statsd"
    assert f[0]["title"].startswith("statsd is not running: Deployment airflow-statsd wants 1 pod and has none "
                                    '(pods "airflow-statsd-n7rvn8wsmd-x2k9p" is forbidden: exceeded quota')
    assert any(e.startswith("Deployment airflow-statsd condition ReplicaFailure (FailedCreate): pods") for e in
               f[0]["evidence"])
