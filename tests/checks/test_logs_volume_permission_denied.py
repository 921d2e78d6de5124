"""logs-volume-permission-denied: Airflow may not write under its logs folder (catalogue #14)."""
from __future__ import annotations

import json

from conftest import doctor_json, findings_of, status_of
from checktools import _copy, _edit, report

CHECK = "logs-volume-permission-denied"
SCEN = "logs-filestore-not-writable"
PODS = "k8s/api/v1/namespaces/airflow/pods.json"


def test_errno_13_on_a_filestore_logs_share_is_one_error_on_the_pvc_with_a_root_chgrp(run_cli):
    doc = report(run_cli, SCEN)
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["namespace"], f["resource"]["name"]) == (
        "PersistentVolumeClaim", "airflow", "airflow-logs")
    ev = "\n".join(f["evidence"])
    assert "/scheduler: PermissionError: [Errno 13] Permission denied: '/opt/airflow/logs/scheduler/2026-11-29'" in ev
    assert "airflow-triggerer-0/triggerer: PermissionError: [Errno 13]" in ev
    assert ("/opt/airflow/logs is PVC airflow-logs (ReadWriteMany, StorageClass standard-rwx, provisioner "
            "filestore.csi.storage.gke.io): a shared file system, to which Kubernetes does not apply fsGroup") in ev
    assert "runs as runAsUser 50000, runAsGroup unset (0), fsGroup 0" in ev
    fix, *restarts = [c for c in f["remediation"]["commands"] if not c.startswith("#")]
    assert fix.startswith("kubectl run fix-logs-perms --rm -i --restart=Never --namespace airflow --image=busybox:1.36 "
                          "--overrides='")
    spec = json.loads(fix.split("--overrides=", 1)[1].strip("'"))["spec"]
    assert spec["volumes"] == [{"name": "logs", "persistentVolumeClaim": {"claimName": "airflow-logs"}}]
    assert spec["containers"][0]["command"] == ["sh", "-c", "chgrp -R 0 /logs && chmod -R g+rwX /logs"]
    assert "nodeName" not in spec   # a ReadWriteMany share mounts anywhere
    assert restarts == ["kubectl rollout restart deployment/airflow-scheduler --namespace airflow",
                        "kubectl rollout restart statefulset/airflow-triggerer --namespace airflow",
                        "kubectl rollout restart deployment/airflow-webserver --namespace airflow"]
    assert not any("helm upgrade" in c for c in f["remediation"]["commands"])   # fsGroup 0 is already set


def test_the_crash_loops_name_it_as_their_cause(run_cli):
    doc = report(run_cli, SCEN)
    crashes = findings_of(doc, "component-crashloop")
    assert len(crashes) == 3
    assert all(c["caused_by"] == [f"{CHECK}:PersistentVolumeClaim/airflow/airflow-logs"] for c in crashes)


def test_a_writable_filestore_logs_share_passes(run_cli):
    doc = report(run_cli, "logs-pvc-filestore")
    assert status_of(doc, CHECK) == "pass"


def test_permission_denied_outside_the_logs_folder_is_not_this_check(run_cli, tmp_path):
    snap = _copy(tmp_path, SCEN)
    for log in snap.glob("k8s/api/v1/namespaces/airflow/pods/*/log/*.log"):
        log.write_text(log.read_text().replace("/opt/airflow/logs/scheduler", "/opt/airflow/dags/repo/.cache"))
    _code, doc = doctor_json(run_cli, snap)
    assert status_of(doc, CHECK) == "pass"


def test_on_a_disk_without_fsgroup_the_fix_is_the_securitycontext_values(run_cli, tmp_path):
    snap = _copy(tmp_path, SCEN)

    def no_fsgroup(body):
        for p in body["items"]:
            p["spec"].get("securityContext", {}).pop("fsGroup", None)

    def disk(body):
        for c in body["items"]:
            if c["metadata"]["name"] == "airflow-logs":
                c["spec"]["storageClassName"] = "standard-rwo"
                c["spec"]["accessModes"] = ["ReadWriteOnce"]

    def pd(body):
        for v in body["items"]:
            if (v["spec"].get("claimRef") or {}).get("name") == "airflow-logs":
                v["spec"]["csi"]["driver"] = "pd.csi.storage.gke.io"

    _edit(snap, PODS, no_fsgroup)
    _edit(snap, "k8s/api/v1/namespaces/airflow/persistentvolumeclaims.json", disk)
    _edit(snap, "k8s/api/v1/persistentvolumes.json", pd)
    _code, doc = doctor_json(run_cli, snap)
    (f,) = findings_of(doc, CHECK)
    assert any(e.endswith("runs as runAsUser 50000, runAsGroup unset (0), fsGroup unset") for e in f["evidence"])
    assert f["remediation"]["commands"] == [
        "helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
        "--set securityContexts.pod.fsGroup=0"]


def test_errno_1_and_a_line_only_in_the_previous_log_are_found(run_cli, tmp_path):
    # The logs are searched only when they hold "[Errno 1" (what every match holds): an Errno 1 line,
    # and a line that only the previous log of a container holds, are still found.
    snap = _copy(tmp_path, SCEN)
    logs = snap / "k8s/api/v1/namespaces/airflow/pods"
    for log in logs.glob("*/log/*.log"):
        log.write_text(log.read_text().replace("[Errno 13] Permission denied", "[Errno 1] Operation not permitted"))
    (sched,) = logs.glob("airflow-scheduler-*/log/scheduler.log")
    sched.write_text("".join(ln for ln in sched.read_text().splitlines(keepends=True) if "[Errno" not in ln))
    _code, doc = doctor_json(run_cli, snap)
    (f,) = findings_of(doc, CHECK)
    ev = "\n".join(f["evidence"])
    assert (f"previous log of {sched.parent.parent.name}/scheduler: PermissionError: [Errno 1] Operation not "
            "permitted: '/opt/airflow/logs/scheduler/") in ev
    assert "log of airflow-triggerer-0/triggerer: PermissionError: [Errno 1] Operation not permitted" in ev
