"""Suppressions (configuration file) and `airflow-gke.io/ignore` annotations: a suppressed finding
leaves `findings` (so --fail-on and the summary no longer count it) and is listed in `suppressed`
in every format; expired, stale and unknown suppressions are reported as warnings."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

from conftest import findings_of, scenario

SEED = str(scenario("seed-incident"))
SEED_CHECKS = ("--check", "pvc-access-mode-unsupported", "--check", "node-storage-scope-read-only",
               "--check", "gcs-log-write-denied", "--check", "container-api-disabled")
PVC = "pvc-access-mode-unsupported:PersistentVolumeClaim/airflow/airflow-logs"
BUCKET = "gcs-log-write-denied:Bucket/acme-airflow-logs"
POOL = "node-storage-scope-read-only:NodePool/default-pool"


def cfg(tmp_path, body: str):
    p = tmp_path / "airflow-gke.yaml"
    p.write_text(body)
    return str(p)


def run(run_cli, conf, *extra, snap=SEED):
    r = run_cli("doctor", "--snapshot", snap, "--output", "json", "--config", conf, *SEED_CHECKS, *extra)
    assert r.code in (0, 1, 3), r.err
    return r.code, r.json


def active(doc):
    return {f["id"] for f in doc["findings"]}


def suppressed(doc):
    return {s["finding"]["id"]: s["suppression"] for s in doc.get("suppressed", [])}


def test_no_suppressions_means_no_new_fields(run_cli, tmp_path):
    code, doc = run(run_cli, cfg(tmp_path, "doctor: {}\n"))
    assert code == 1 and "suppressed" not in doc and "notices" not in doc


def test_a_suppression_moves_the_finding_out_of_the_gate(run_cli, tmp_path):
    conf = cfg(tmp_path, """
suppressions:
  - check: pvc-access-mode-unsupported
    resource: PersistentVolumeClaim/airflow/airflow-*
    reason: logs PVC is being replaced by remote logging (PLAT-101)
    expires: 2999-12-31
""")
    code, doc = run(run_cli, conf)
    assert PVC not in active(doc) and {BUCKET, POOL} <= active(doc)
    by = suppressed(doc)[PVC]
    assert by == {"source": "config", "file": conf, "index": 1, "check": "pvc-access-mode-unsupported",
                  "resource": "PersistentVolumeClaim/airflow/airflow-*",
                  "reason": "logs PVC is being replaced by remote logging (PLAT-101)", "expires": "2999-12-31"}
    full = doc["suppressed"][0]["finding"]
    assert full["evidence"] and full["remediation"]["commands"]          # listed whole, not hidden
    assert doc["summary"]["findings"]["error"] == 2
    chk = next(c for c in doc["checks"] if c["id"] == "pvc-access-mode-unsupported")
    assert chk["status"] == "fail" and chk["reason"] == "all findings suppressed (1)"
    assert code == 1                                      # the other two errors still fail the gate
    assert "notices" not in doc


def test_suppressing_every_error_passes_the_gate(run_cli, tmp_path):
    conf = cfg(tmp_path, """
suppressions:
  - {check: pvc-access-mode-unsupported, resource: airflow-logs, reason: moving to remote logging}
  - {check: gcs-log-write-denied, resource: "//storage.googleapis.com/projects/_/buckets/acme-*", reason: WI rollout next sprint}
  - {check: node-storage-scope-read-only, reason: WI rollout next sprint}
""")
    code, doc = run(run_cli, conf)
    assert code == 0 and doc["findings"] == []
    assert set(suppressed(doc)) == {PVC, BUCKET, POOL}
    # the causal link still resolves to the (suppressed) cause
    bucket = next(s["finding"] for s in doc["suppressed"] if s["finding"]["id"] == BUCKET)
    assert POOL in bucket["caused_by"]


def test_expired_unmatched_and_unknown_suppressions_are_warnings(run_cli, tmp_path):
    conf = cfg(tmp_path, """
suppressions:
  - check: pvc-access-mode-unsupported
    reason: was accepted last year
    expires: 2000-01-31
  - check: container-api-disabled
    reason: the API was disabled once
  - check: no-such-check
    reason: typo in the slug
  - check: executor-pod-stuck-init
    reason: not selected in this run, so not judged
""")
    code, doc = run(run_cli, conf)
    assert PVC in active(doc) and code == 1                # expired: the finding counts again
    assert "suppressed" not in doc
    msgs = [n["message"] for n in doc["notices"]]
    assert all(n["level"] == "warning" for n in doc["notices"])
    assert msgs == [
        f"suppression #1 in {conf} (check pvc-access-mode-unsupported, resource *) expired on 2000-01-31; "
        f"the finding it matched counts again: {PVC}",
        f"suppression #2 in {conf} (check container-api-disabled, resource *) matched no finding: "
        "remove it if the problem is gone",
        f"suppression #3 in {conf} (check no-such-check, resource *) names no known check; see `airflow-gke checks`",
    ]
    assert doc["notices"][0]["suppression"]["expires"] == "2000-01-31"
    # notices never change the exit code: only the expired suppression's finding does
    r = run_cli("doctor", "--snapshot", SEED, "--config", conf, "--check", "container-api-disabled")
    assert r.code == 0 and "warning suppression #2" in r.out and "matched no finding" in r.out


def with_annotation(tmp_path, value: str) -> str:
    snap = tmp_path / "seed"
    shutil.copytree(SEED, snap)
    p = snap / "k8s/api/v1/namespaces/airflow/persistentvolumeclaims.json"
    body = json.loads(p.read_text())
    pvc = next(i for i in body["items"] if i["metadata"]["name"] == "airflow-logs")
    pvc["metadata"].setdefault("annotations", {})["airflow-gke.io/ignore"] = value
    p.write_text(json.dumps(body))
    return str(snap)


def test_an_ignore_annotation_suppresses_and_can_be_refused(run_cli, tmp_path):
    snap = with_annotation(tmp_path, "node-storage-scope-read-only, pvc-access-mode-unsupported")
    conf = cfg(tmp_path, "doctor: {}\n")
    _, doc = run(run_cli, conf, snap=snap)
    assert PVC not in active(doc)
    assert suppressed(doc)[PVC] == {
        "source": "annotation", "object": "PersistentVolumeClaim/airflow/airflow-logs",
        "annotation": "airflow-gke.io/ignore", "value": "node-storage-scope-read-only, pvc-access-mode-unsupported",
        "reason": "annotation airflow-gke.io/ignore: 'node-storage-scope-read-only, pvc-access-mode-unsupported' "
                  "on PersistentVolumeClaim/airflow/airflow-logs"}
    assert POOL in active(doc)          # the annotation is on the PVC, not on the node pool
    _, doc = run(run_cli, conf, "--no-annotation-ignores", snap=snap)
    assert PVC in active(doc) and "suppressed" not in doc
    assert doc["notices"] == [{"level": "info", "message":
                               "1 finding(s) carry the airflow-gke.io/ignore annotation, not honoured "
                               f"(--no-annotation-ignores): {PVC} (airflow-gke.io/ignore: 'node-storage-scope-read-only,"
                               " pvc-access-mode-unsupported' on PersistentVolumeClaim/airflow/airflow-logs)"}]
    # the config key does the same as the flag
    _, doc = run(run_cli, cfg(tmp_path, "doctor:\n  annotation-ignores: false\n"), snap=snap)
    assert PVC in active(doc)


def test_an_annotation_for_another_check_does_nothing(run_cli, tmp_path):
    snap = with_annotation(tmp_path, "executor-pod-stuck-init")
    _, doc = run(run_cli, cfg(tmp_path, "{}\n"), snap=snap)
    assert PVC in active(doc) and "suppressed" not in doc


def test_suppressed_findings_in_terminal_markdown_and_junit(run_cli, tmp_path):
    conf = cfg(tmp_path, """
suppressions:
  - check: pvc-access-mode-unsupported
    reason: moving to remote logging | PLAT-101
    expires: 2999-12-31
""")
    r = run_cli("doctor", "--snapshot", SEED, "--config", conf, *SEED_CHECKS)
    assert "Suppressed (accepted: not counted by --fail-on)" in r.out
    assert (f"suppressed by {conf} #1, until 2999-12-31: moving to remote logging | PLAT-101") in r.out
    assert "Findings: 2 errors, 0 warnings, 0 info, 1 suppressed" in r.out
    r = run_cli("doctor", "--snapshot", SEED, "--config", conf, *SEED_CHECKS, "--output", "markdown")
    assert "### Suppressed findings" in r.out
    row = next(x for x in r.out.splitlines() if x.startswith("| `pvc-access-mode-unsupported` PVC airflow-logs"))
    assert row.endswith(f"| {conf} #1 | moving to remote logging \\| PLAT-101 | 2999-12-31 |")
    assert "(+1 suppressed)" in r.out
    r = run_cli("doctor", "--snapshot", SEED, "--config", conf, *SEED_CHECKS, "--output", "junit")
    root = ET.fromstring(r.out)
    tc = next(c for c in root.iter("testcase") if c.get("name") == "pvc-access-mode-unsupported: "
              "PersistentVolumeClaim/airflow/airflow-logs")
    sk = tc.find("skipped")
    assert sk.get("message") == "suppressed: moving to remote logging | PLAT-101 (until 2999-12-31)"
    assert "ReadWriteMany" in sk.text


def test_findings_of_unrelated_checks_are_untouched(run_cli, tmp_path):
    conf = cfg(tmp_path, "suppressions:\n  - {check: 'gcs-*', resource: 'Bucket/other-*', reason: other bucket}\n")
    _, doc = run(run_cli, conf)
    assert findings_of(doc, "gcs-log-write-denied") and "suppressed" not in doc
    assert doc["notices"][0]["message"].endswith("matched no finding: remove it if the problem is gone")
