"""The health floor (component-not-ready, executor-slots-blocked) and "specific beats generic".

* Across every scenario: no component pod not ready beyond the grace period goes without a
  top-level finding naming it, and each is named by exactly one top-level finding (the floor's
  finding is folded under the specific one when both see it).
* The floor's scenarios: the ERROR names the component, the Kubernetes reason, the duration and the
  evidence; young pods and rollouts in progress produce no floor finding.
* The fold is presentation only: the floor check's verdict is the same alone and with the others.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from conftest import doctor_json, findings_of, scenario, scenario_names, status_of

from airflow_gke.data import Target
from airflow_gke.model import Finding, Remediation, Resource
from airflow_gke.fold import fold
from airflow_gke.model import CheckRun
from airflow_gke.registry import load_checks
from airflow_gke.runner import run_checks
from airflow_gke.snapshot import open_snapshot
from airflow_gke.views import Context

# Beyond any grace the floor allows (5 minutes; 10 while a rollout progresses).
BEYOND_GRACE = timedelta(minutes=10)


def _ts(v) -> datetime | None:
    return datetime.fromisoformat(v.replace("Z", "+00:00")) if isinstance(v, str) else None


def _component_pods_down(name: str) -> tuple[list[str], list[str]]:
    """Independently of the floor's code: (not-ready chart pods beyond the grace, young not-ready ones)."""
    src = open_snapshot(scenario(name))
    m = src.meta
    e = src.get(f"k8s/api/v1/namespaces/{m.namespace}/pods")
    if e is None or not e.ok:
        return [], []
    down, young = [], []
    for p in e.data["items"]:
        md, st = p["metadata"], p.get("status") or {}
        lab = md.get("labels") or {}
        ours = (lab.get("tier") == "airflow" and lab.get("release") == m.release) or \
            (lab.get("app.kubernetes.io/instance") == m.release and lab.get("app.kubernetes.io/name") == "postgresql")
        if not ours or lab.get("kubernetes_executor") == "True" or st.get("phase") in ("Succeeded", "Failed"):
            continue
        if not any(o.get("kind") in ("ReplicaSet", "StatefulSet", "Job") for o in md.get("ownerReferences") or []):
            continue
        ready = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})
        if ready.get("status") == "True" and not md.get("deletionTimestamp"):
            continue
        started = _ts(st.get("startTime")) or _ts(md["creationTimestamp"])
        since = max(filter(None, [started, _ts(ready.get("lastTransitionTime"))]))
        if md.get("deletionTimestamp"):
            since = _ts(md["deletionTimestamp"])
        (down if m.captured_at - since > BEYOND_GRACE and m.captured_at - started > BEYOND_GRACE
         else young).append(md["name"])
    return down, young


def _names(f: dict, pod: str) -> bool:
    text = "\n".join([f["title"], f["message"], *f["evidence"], f["resource"]["name"]])
    return re.search(rf"(?<![\w.-]){re.escape(pod)}(?![\w-])", text) is not None


_DOCS: dict[str, dict] = {}


def _doc(run_cli, name: str) -> dict:
    if name not in _DOCS:
        _DOCS[name] = doctor_json(run_cli, name, "--extended")[1]
    return _DOCS[name]


@pytest.mark.parametrize("name", scenario_names())
def test_each_not_ready_component_pod_is_reported_under_exactly_one_top_level_finding(name, run_cli):
    down, _young = _component_pods_down(name)
    if not down:
        return
    doc = _doc(run_cli, name)
    by_id = {f["id"]: f for f in doc["findings"]}

    def roots(fid: str, seen: set) -> set[str]:
        causes = [c for c in by_id[fid]["caused_by"] if c in by_id and c not in seen]
        if not causes:
            return {fid}
        return set().union(*(roots(c, seen | {fid}) for c in causes))

    for pod in down:
        naming = [f["id"] for f in doc["findings"] if _names(f, pod)]
        assert naming, f"{name}: pod {pod} is not ready beyond the grace period and no finding names it"
        # Findings that explain a symptom of another (caused_by) print under their cause: what must be
        # one is the top-level finding the pod's failure is reported under.
        tops = set().union(*(roots(i, set()) for i in naming))
        assert len(tops) == 1, f"{name}: pod {pod} is named under {len(tops)} top-level findings: {sorted(tops)}"


def test_the_survey_sees_not_ready_pods_in_many_scenarios():
    """The property above is not vacuous: many scenarios hold chart pods down beyond the grace."""
    with_down = [n for n in scenario_names() if _component_pods_down(n)[0]]
    assert len(with_down) >= 15, with_down


# --- the fold --------------------------------------------------------------------------------------

def _f(check: str, kind: str, name: str, text: str = "", subjects=(), severity="error", caused_by=()) -> Finding:
    f = Finding(title=f"{check} {name}", message=text or "m", resource=Resource(kind, name, "airflow"),
                evidence=["e"], remediation=Remediation("fix"), subjects=list(subjects), caused_by=list(caused_by))
    f.check, f.severity = check, severity
    return f


def _run(check: str, *findings: Finding) -> CheckRun:
    return CheckRun(check, "t", "error", "runtime", "fail" if findings else "pass", None, 0.0, list(findings))


def test_fold_moves_an_explained_floor_finding_under_its_cause():
    floor = _f("component-not-ready", "Deployment", "airflow-scheduler", subjects=["Pod/airflow/airflow-scheduler-abc-1"])
    cause = _f("gitsync-auth-failed", "Deployment", "airflow-scheduler")
    runs = [_run("component-not-ready", floor), _run("gitsync-auth-failed", cause)]
    fold(runs, {"component-not-ready"})
    assert runs[0].findings == [] and runs[0].folded == [floor]
    assert cause.symptoms == [floor] and floor.caused_by == [cause.id]
    assert cause.to_dict()["symptoms"][0]["id"] == floor.id


def test_fold_by_pod_name_in_the_evidence_but_not_by_a_longer_name():
    floor = _f("component-not-ready", "StatefulSet", "airflow-worker", subjects=["Pod/airflow/airflow-worker-1"])
    other = _f("pvc-storageclass-missing", "PersistentVolumeClaim", "logs", text="pods airflow-worker-10 wait")
    runs = [_run("component-not-ready", floor), _run("pvc-storageclass-missing", other)]
    fold(runs, {"component-not-ready"})
    assert runs[0].findings == [floor], "airflow-worker-10 is not airflow-worker-1"
    other.message = "pods airflow-worker-1, airflow-worker-10 wait"
    fold(runs, {"component-not-ready"})
    assert runs[0].findings == [] and other.symptoms == [floor]


def test_fold_needs_every_pod_explained_and_a_cause_at_least_as_severe():
    floor = _f("component-not-ready", "StatefulSet", "airflow-worker",
               subjects=["Pod/airflow/airflow-worker-0", "Pod/airflow/airflow-worker-1"])
    one = _f("component-crashloop", "Pod", "airflow-worker-0")
    runs = [_run("component-not-ready", floor), _run("component-crashloop", one)]
    fold(runs, {"component-not-ready"})
    assert runs[0].findings == [floor], "worker-1 is unexplained: the floor finding stays"
    warn = _f("liveness-probe-restarts", "Pod", "airflow-worker-1", severity="warning")
    runs.append(_run("liveness-probe-restarts", warn))
    fold(runs, {"component-not-ready"})
    assert runs[0].findings == [floor], "an ERROR is never hidden under a WARN"


def test_fold_follows_the_floor_findings_own_caused_by_chain():
    floor = _f("executor-slots-blocked", "ConfigMap", "airflow-config", caused_by=["a:Pod/airflow/x"])
    a = _f("a", "Pod", "x", caused_by=[])
    runs = [_run("executor-slots-blocked", floor), _run("a", a)]
    fold(runs, {"executor-slots-blocked"})
    assert a.symptoms == [floor]


def test_the_floor_verdict_is_the_same_alone_and_with_every_check():
    """Folding is presentation: the check's findings (top-level + folded) do not depend on the others."""
    checks = list(load_checks().values())
    floor = [c for c in checks if c.floor]
    assert {c.id for c in floor} >= {"component-not-ready"}
    for name in ("migrations-hook-never-ran", "seed-incident", "gitsync-deploy-key-revoked"):
        src = open_snapshot(scenario(name))
        m = src.meta
        t = Target(namespace=m.namespace, project=m.project, location=m.location, cluster=m.cluster,
                   release=m.release, context=m.context)
        together = {r.id: r for r in run_checks(Context(src, t, now=m.captured_at), checks)}
        for c in floor:
            alone = run_checks(Context(src, t, now=m.captured_at), [c])[0]
            both = together[c.id]
            assert alone.status == both.status
            assert sorted(f.id for f in alone.findings) == sorted(f.id for f in both.findings + both.folded)
            assert alone.folded == []
        assert together["component-not-ready"].folded, name


# --- the floor's scenarios ----------------------------------------------------------------------------

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


def test_known_causes_keep_the_floor_as_a_symptom_in_json(run_cli):
    doc = _doc(run_cli, "migrations-hook-never-ran")
    assert findings_of(doc, "component-not-ready") == []
    cause = findings_of(doc, "migrations-not-run")[0]
    folded = {s["resource"]["name"]: s for s in cause["symptoms"]}
    assert sorted(folded) == ["airflow-api-server", "airflow-dag-processor", "airflow-scheduler", "airflow-triggerer"]
    assert all(s["check"] == "component-not-ready" and "wait-for-airflow-migrations CrashLoopBackOff" in s["title"]
               for s in folded.values())
    assert doc["summary"]["findings"]["error"] == len([f for f in doc["findings"] if f["severity"] == "error"])
    text = run_cli("doctor", "--snapshot", str(scenario("migrations-hook-never-ran"))).out
    assert "Also seen as" in text and text.count("ERROR scheduler is not running") == 0


def test_sidecar_keeps_32_task_pods_running_all_slots_held(run_cli):
    doc = _doc(run_cli, "task-pods-sidecar-never-exits")
    assert [f["check"] for f in doc["findings"]] == ["executor-slots-blocked"]
    f = doc["findings"][0]
    assert f["severity"] == "error" and f["resource"] == {"kind": "ConfigMap", "namespace": "airflow",
                                                          "name": "airflow-config", "uri": None}
    assert f["title"] == ("32 task pods hold their executor slots after their task ended: base terminated "
                          "8h59m–12h00m ago, cloud-sql-proxy still running (32 of 32 slots in use: nothing new runs)")
    assert f["evidence"][0].startswith("32 task pods Running, not Ready, container base terminated 8h59m–12h00m ago "
                                       "(exit codes: 0 x32); still running: cloud-sql-proxy x32")
    assert f["evidence"][1] == "32 of [core] parallelism 32 slots in use by running task pods: no open slot"
    examples = [e for e in f["evidence"] if e.startswith("Pod ")]
    assert len(examples) == 3 and all("base terminated 12h00m ago" in e or "base terminated 11h" in e
                                      for e in examples), examples


def test_finished_task_pods_never_deleted_with_counts_and_oldest_examples(run_cli):
    doc = _doc(run_cli, "task-pods-not-deleted")
    assert [f["check"] for f in doc["findings"]] == ["executor-slots-blocked"]
    f = doc["findings"][0]
    assert f["resource"]["kind"] == "Deployment" and f["resource"]["name"] == "airflow-scheduler"
    assert f["title"].startswith("18 finished task pods were never deleted although delete_worker_pods=True (oldest "
                                 "finished 6h03m ago; 14 running + 18 never processed = 32 of 32 slots")
    assert "14 running task pods + 18 finished but never processed = 32 of [core] parallelism 32 executor slots: no " \
           "open slot" in f["evidence"]
    assert [e.split(": ")[1] for e in f["evidence"] if e.startswith("Pod ")] == [
        "Succeeded, finished 6h03m ago", "Succeeded, finished 5h49m ago", "Succeeded, finished 5h35m ago"]
    assert "kubectl rollout restart deployment/airflow-scheduler --namespace airflow" in f["remediation"]["commands"]


def test_the_executor_floor_stays_quiet_on_busy_and_healthy_executors(run_cli):
    for name in ("healthy-af3-k8s-wi", "task-pod-init-stuck", "seed-incident", "k8s-logs-lost"):
        assert status_of(_doc(run_cli, name), "executor-slots-blocked") == "pass", name
    assert status_of(_doc(run_cli, "healthy-af2-celery"), "executor-slots-blocked") == "skip"
