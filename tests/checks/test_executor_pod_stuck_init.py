"""The executor-pod-stuck-init check (KubernetesExecutor task pods get through their init containers):
its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of


def test_task_pods_stuck_in_init_with_their_causes_and_young_pods_spared(run_cli):
    _, doc = doctor_json(run_cli, "task-pod-init-stuck")
    by_pod = {f["resource"]["name"]: f for f in findings_of(doc, "executor-pod-stuck-init")}
    assert len(by_pod) == 3
    auth = by_pod["etl-orders-daily-extract-orders-8ybn6h0o"]
    assert "Init:0/1" in auth["title"] and "running for 25m" in auth["evidence"][0]
    assert any("Permission denied (publickey)" in e for e in auth["evidence"])
    assert "likely cause: git SSH authentication failed" in "\n".join(auth["evidence"])
    assert ("kubectl logs etl-orders-daily-extract-orders-8ybn6h0o --namespace airflow --container git-sync-init"
            in auth["remediation"]["commands"])
    hostkey = by_pod["partner-sync-pull-partner-files-biw9joc7"]
    assert "Init:CrashLoopBackOff" in hostkey["title"]
    assert "ssh-keyscan gitlab.acme-data.example > known_hosts" in hostkey["remediation"]["commands"]
    pull = by_pod["ml-feature-refresh-compute-features-s4buobsb"]
    assert "Init:ImagePullBackOff" in pull["title"] and any("git-sync:v4.9.9" in e for e in pull["evidence"])
    _, doc = doctor_json(run_cli, "task-pod-init-young")
    assert status_of(doc, "executor-pod-stuck-init") == "pass"
