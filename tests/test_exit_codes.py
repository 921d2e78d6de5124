"""The exit-code contract of `airflow-gke doctor`, each code exercised through the entry point."""
from __future__ import annotations

import json
import shutil

from conftest import scenario, validate_report


def _copy(tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(scenario(name), dst)
    return dst


def test_0_when_nothing_reaches_the_threshold(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario("healthy-af3-k8s-wi")))
    assert r.code == 0 and "Findings: 0 errors, 0 warnings, 0 info" in r.out


def test_1_on_findings_at_or_above_fail_on_and_never_overrides(run_cli):
    assert run_cli("doctor", "--snapshot", str(scenario("seed-incident"))).code == 1
    assert run_cli("doctor", "--snapshot", str(scenario("seed-incident")), "--fail-on", "never").code == 0
    unproven = str(scenario("gcs-iam-unreadable"))
    assert run_cli("doctor", "--snapshot", unproven, "--check", "gcs-log-write-denied").code == 0
    assert run_cli("doctor", "--snapshot", unproven, "--check", "gcs-log-write-denied", "--fail-on", "warning").code == 1


def test_2_on_usage_errors(run_cli):
    for args in (["doctor", "--fail-on", "sometimes", "--snapshot", "x"], ["doctor", "--no-such-flag"],
                 ["doctor", "--snapshot", str(scenario("seed-incident")), "--check", "no-such-check"],
                 ["explain", "no-such-check"], ["no-such-command"]):
        r = run_cli(*args)
        assert r.code == 2, args
        assert "Traceback" not in r.err and r.err.strip(), args


def test_3_when_a_check_could_not_run_and_nothing_failed(run_cli, tmp_path):
    snap = _copy(tmp_path, "healthy-af3-k8s-wi")
    pods = snap / "k8s/api/v1/namespaces/airflow/pods.json"
    pods.unlink()
    (snap / "k8s/api/v1/namespaces/airflow/pods.error.json").write_text(json.dumps({"status": 403, "body": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'pods is forbidden: User "doctor@acme-data-prod.iam.gserviceaccount.com" cannot list resource '
                   '"pods" in API group "" in the namespace "airflow"'}}))
    r = run_cli("doctor", "--snapshot", str(snap), "--output", "json")
    assert r.code == 3
    doc = r.json
    errored = {c["id"]: c["reason"] for c in doc["checks"] if c["status"] == "error"}
    assert "executor-pod-stuck-init" in errored
    assert "grant RBAC list on pods" in errored["executor-pod-stuck-init"]
    assert all(e["message"] for e in doc["errors"]) and {e["check"] for e in doc["errors"]} >= set(errored)
    assert any(c["status"] == "pass" for c in doc["checks"])          # the others still ran
    assert run_cli("doctor", "--snapshot", str(snap), "--fail-on", "never").code == 0


def test_1_beats_3_when_findings_reach_the_threshold(run_cli, tmp_path):
    snap = _copy(tmp_path, "seed-incident")
    (snap / "k8s/apis/batch/v1/namespaces/airflow/jobs.json").unlink(missing_ok=True)
    (snap / "k8s/api/v1/namespaces/airflow/events.json").write_text("{truncated")
    r = run_cli("doctor", "--snapshot", str(snap), "--output", "json")
    assert r.code == 1
    assert any(c["status"] == "error" and "invalid JSON" in c["reason"] for c in r.json["checks"])


def test_4_on_internal_error_without_a_traceback(run_cli, monkeypatch):
    import airflow_gke.runner

    def broken(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(airflow_gke.runner, "run_checks", broken)
    r = run_cli("doctor", "--snapshot", str(scenario("healthy-af3-k8s-wi")))
    assert r.code == 4
    assert "internal error: RuntimeError: simulated bug" in r.err and "Traceback" not in r.err


def test_json_goes_to_stdout_alone_and_validates(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario("seed-incident")), "--output", "json", "--verbose")
    doc = json.loads(r.out)
    validate_report(doc)
    assert doc["schema_version"] == "1" and doc["summary"]["findings"]["error"] >= 3
    assert "pvc-access-mode-unsupported" in r.err          # --verbose timings on stderr only


def test_checks_explain_and_version(run_cli):
    r = run_cli("checks", "--output", "json")
    ids = {c["id"] for c in json.loads(r.out)}
    assert {"container-api-disabled", "pvc-access-mode-unsupported", "node-storage-scope-read-only",
            "gcs-log-write-denied", "executor-pod-stuck-init"} <= ids
    r = run_cli("explain", "pvc-access-mode-unsupported")
    assert r.code == 0 and "ReadWriteMany" in r.out and r.out.startswith("# pvc-access-mode-unsupported")
    r = run_cli("--version")
    assert r.code == 0 and r.out.startswith("airflow-gke ")


def test_no_color_and_no_tty_print_plain_text(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario("seed-incident")), env={"NO_COLOR": "1"})
    assert "\x1b[" not in r.out and "ERROR" in r.out
