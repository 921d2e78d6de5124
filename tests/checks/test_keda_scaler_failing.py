"""The keda-scaler-failing check (KEDA can query the metadata database to scale the Celery
workers): the PgBouncer prepared-statement failure of apache/airflow#32590 with its fix grounded in
the release (values key by chart line, your own metadata Secret, Argo CD), the look-alike that
bypasses PgBouncer, KEDA not installed (404) and the variants of the ScaledObject's state."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import doctor_json, findings_of, scenario, status_of
from checktools import HEALTHY, cmds, only, reports, text

CHECK = "keda-scaler-failing"
FIRES = "keda-workers-through-pgbouncer"
LOOKALIKE = "keda-workers-direct-connection"
NS = "orchestration"
SO_PATH = f"k8s/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects.json"
UPGRADE = f"helm upgrade af2 apache-airflow/airflow --namespace {NS} --reuse-values --set workers.keda.usePgbouncer=false"


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def _copy(tmp_path: Path, name: str = FIRES) -> Path:
    snap = tmp_path / "snap"
    shutil.copytree(scenario(name), snap)
    return snap


def _edit(path: Path, fn) -> None:
    body = json.loads(path.read_text())
    fn(body)
    path.write_text(json.dumps(body))


def _set_ready(body: dict, status: str, reason: str, message: str) -> None:
    for c in body["items"][0]["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status=status, reason=reason, message=message)


def test_keda_through_pgbouncer_is_the_cause_and_the_fix_bypasses_pgbouncer(doc):
    d = doc(FIRES)
    f = only(d, CHECK)
    assert f["severity"] == "error"
    assert f["resource"] == {"kind": "ScaledObject", "namespace": NS, "name": "af2-worker", "uri": None}
    t = text(f)
    assert "prepared statement \"stmtcache_47605\" does not exist (SQLSTATE 26000)" in t
    assert "Ready=False (TriggerError: Triggers defined in ScaledObject are not working correctly)" in t
    assert "Active=False (ScalerNotActive)" in t
    assert "env AIRFLOW_CONN_AIRFLOW_DB of StatefulSet af2-worker" in t
    assert "Deployment af2-pgbouncer" in t and "Secret af2-metadata, key connection" in t
    assert "StatefulSet af2-worker: 0 replicas wanted, 0 ready; min 0, max 10 (HPA keda-hpa-af2-worker)" in t
    assert "x611, keda-operator" in t
    assert cmds(f).splitlines()[0] == UPGRADE
    assert "kedaConnection" not in cmds(f)   # the chart's own metadata Secret: the chart writes kedaConnection
    assert "pods roll" in f["remediation"]["summary"]
    assert f["blocks"] == [f"StatefulSet/{NS}/af2-worker"]
    assert d["findings"] == [f]   # nothing else in this install is wrong


def test_the_lookalike_with_use_pgbouncer_false_passes(doc):
    d = doc(LOOKALIKE)
    assert status_of(d, CHECK) == "pass"
    assert d["findings"] == []


@pytest.mark.parametrize("name", HEALTHY)
def test_without_keda_the_crd_404_is_not_applicable(doc, name):
    c = next(c for c in doc(name)["checks"] if c["id"] == CHECK)
    assert c["status"] == "skip"
    assert c["reason"] == "KEDA is not installed (the ScaledObject CRD answers 404): not applicable"


def test_keda_installed_without_a_chart_scaled_object_is_not_applicable(run_cli, tmp_path):
    snap = _copy(tmp_path)
    _edit(snap / SO_PATH, lambda b: b.update(items=[]))
    _code, d = doctor_json(run_cli, snap)
    c = next(c for c in d["checks"] if c["id"] == CHECK)
    assert (c["status"], c["reason"]) == ("skip", "KEDA is installed but release af2 has no ScaledObject "
                                                  "(workers.keda.enabled=false): not applicable")


def test_ready_but_failing_polls_is_a_warning(run_cli, tmp_path):
    """KEDA's retry without the statement cache succeeded (the report of #32590): scaling works, late."""
    snap = _copy(tmp_path)
    _edit(snap / SO_PATH, lambda b: _set_ready(b, "True", "ScaledObjectReady",
                                               "ScaledObject is defined correctly and is ready for scaling"))
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert f["severity"] == "warning"
    assert "retries without the cache" in f["message"]
    assert cmds(f).splitlines()[0] == UPGRADE


def test_expired_events_still_name_the_known_cause_and_say_so(run_cli, tmp_path):
    snap = _copy(tmp_path)
    _edit(snap / f"k8s/api/v1/namespaces/{NS}/events.json",
          lambda b: b.update(items=[e for e in b["items"] if e["involvedObject"]["kind"] != "ScaledObject"]))
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert f["severity"] == "error"
    assert "have expired" in f["message"] and "KEDA operator's log" in f["message"]
    assert cmds(f).splitlines()[0] == UPGRADE


def test_own_metadata_secret_needs_keda_connection_first(run_cli, tmp_path):
    """data.metadataSecretName: the chart reads KEDA_DB_CONN from that Secret's kedaConnection."""
    snap = _copy(tmp_path)

    def rename(b: dict) -> None:
        for sts in b["items"]:
            for c in sts["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
                    if ref.get("name") == "af2-metadata":
                        ref["name"] = "af2-cloudsql-connection"
    _edit(snap / f"k8s/apis/apps/v1/namespaces/{NS}/statefulsets.json", rename)
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    c = f["remediation"]["commands"]
    patch = next(i for i, x in enumerate(c) if x.startswith("kubectl patch secret af2-cloudsql-connection"))
    assert "kedaConnection" in c[patch] and c.index(UPGRADE) > patch
    assert "Secret af2-cloudsql-connection is yours" in f["remediation"]["summary"]


def _relabel(snap: Path, old: str, new: str) -> None:
    for p in snap.rglob("*.json"):
        t = p.read_text()
        if old in t:
            p.write_text(t.replace(old, new))


def test_old_chart_upgrades_to_1_12_with_the_key(run_cli, tmp_path):
    snap = _copy(tmp_path)
    _relabel(snap, "airflow-1.16.0", "airflow-1.10.0")
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert (f"helm upgrade af2 apache-airflow/airflow --namespace {NS} --version 1.12.0 --reset-then-reuse-values "
            "--set workers.keda.usePgbouncer=false") in cmds(f)
    assert "Chart 1.10.0 predates a working usePgbouncer" in f["remediation"]["summary"]


def test_chart_1_11_direct_url_bug(run_cli, tmp_path):
    """usePgbouncer=false on 1.11.0: the direct URL kept PgBouncer's port and database (apache/airflow#34740)."""
    snap = _copy(tmp_path, LOOKALIKE)
    _relabel(snap, "airflow-1.16.0", "airflow-1.11.0")
    _edit(snap / SO_PATH, lambda b: _set_ready(b, "False", "TriggerError",
                                               "Triggers defined in ScaledObject are not working correctly"))
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert "chart 1.11.0" in f["title"] and "34740" in f["message"]
    assert "--version 1.12.0" in cmds(f)


def test_chart_2_uses_the_celery_keda_key(run_cli, tmp_path):
    snap = _copy(tmp_path)
    _relabel(snap, "airflow-1.16.0", "airflow-2.0.0")
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert "--set workers.celery.keda.usePgbouncer=false" in cmds(f)


def test_argo_cd_gets_the_value_on_the_application(run_cli, tmp_path):
    snap = _copy(tmp_path)
    for p in (snap / f"k8s/apis/apps/v1/namespaces/{NS}").glob("*.json"):
        _edit(p, lambda b: [i["metadata"].setdefault("annotations", {}).update(
            {"argocd.argoproj.io/tracking-id": f"airflow-af2:apps/Workload:{NS}/{i['metadata']['name']}"})
            for i in b["items"]])
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert "argocd app set airflow-af2 --helm-set workers.keda.usePgbouncer=false" in cmds(f)
    assert "helm upgrade af2" not in cmds(f)


def test_other_failures_quote_keda_and_do_not_blame_pgbouncer(run_cli, tmp_path):
    snap = _copy(tmp_path, LOOKALIKE)
    _edit(snap / SO_PATH, lambda b: _set_ready(b, "False", "ScaledObjectCheckFailed",
                                               "ScaledObject doesn't have correct scaleTargetRef specification"))
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert "is not working" in f["title"]
    assert "ScaledObject doesn't have correct scaleTargetRef specification" in text(f)
    assert "usePgbouncer" not in cmds(f)
    assert cmds(f).splitlines()[0] == f"kubectl describe scaledobject af2-worker --namespace {NS}"


def test_prepared_statements_with_use_pgbouncer_false_already_do_not_repeat_the_fix(run_cli, tmp_path):
    """KEDA_DB_CONN still reaching a pooler: usePgbouncer=false is set, so it is not proposed again."""
    snap = _copy(tmp_path, LOOKALIKE)
    _edit(snap / SO_PATH, lambda b: _set_ready(b, "False", "TriggerError",
                                               "Triggers defined in ScaledObject are not working correctly"))
    src = json.loads((scenario(FIRES) / f"k8s/api/v1/namespaces/{NS}/events.json").read_text())
    failed = [e for e in src["items"] if e["reason"] == "KEDAScalerFailed"]
    _edit(snap / f"k8s/api/v1/namespaces/{NS}/events.json", lambda b: b["items"].extend(failed))
    _code, d = doctor_json(run_cli, snap)
    (f,) = findings_of(d, CHECK)
    assert "usePgbouncer" not in cmds(f)
    assert "already reads KEDA_DB_CONN" in f["message"]


def test_a_scaled_object_keda_has_not_reconciled_yet_is_not_failing(run_cli, tmp_path):
    snap = _copy(tmp_path, LOOKALIKE)

    def fresh(b: dict) -> None:
        b["items"][0]["status"] = {"conditions": [{"type": t, "status": "Unknown"}
                                                  for t in ("Ready", "Active", "Fallback", "Paused")]}
    _edit(snap / SO_PATH, fresh)
    _code, d = doctor_json(run_cli, snap)
    assert status_of(d, CHECK) == "pass"
