"""The health floor (component-not-ready, executor-slots-blocked) and "specific beats generic".

* Across every scenario: no component pod not ready beyond the grace period goes without a
  top-level finding naming it, and each is named by exactly one top-level finding (the floor's
  finding is folded under the specific one when both see it).
* The floor checks' own scenarios (the ERROR names the component, the Kubernetes reason, the
  duration and the evidence; young pods and rollouts in progress produce no floor finding) are in
  tests/checks/test_component_not_ready.py and test_executor_slots_blocked.py.
* The fold is presentation only: the floor check's verdict is the same alone and with the others.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from conftest import doctor_json, findings_of, scenario, scenario_names

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


# --- the fold in the report -----------------------------------------------------------------------

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
