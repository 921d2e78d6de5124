"""The runner: one failing check never stops the others; missing data never passes."""
from __future__ import annotations

from datetime import datetime, timezone

from airflow_gke.views import Context
from airflow_gke.data import Target
from airflow_gke.model import Finding, Remediation, Resource, Result, failed, passed
from airflow_gke.registry import Check, load_checks
from airflow_gke.runner import run_checks
from airflow_gke.source import MemorySource

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def ctx(entries=()):
    src = MemorySource(mode="snapshot")
    for path, kw in entries:
        src.put(path, **kw)
    return Context(src, Target(namespace="airflow", project="p"), now=NOW)


def mk(id, func, needs=()):
    return Check(id, "good state", "error", "test", func, tuple(needs))


def test_a_crashing_check_ends_error_and_the_others_run():
    def boom(c):
        raise KeyError("spec")

    def fine(c):
        return passed()

    runs = run_checks(ctx(), [mk("boom", boom), mk("fine", fine)])
    assert [(r.id, r.status) for r in runs] == [("boom", "error"), ("fine", "pass")]
    assert runs[0].reason == "check crashed: KeyError: 'spec'"


def test_needed_data_absent_skips_and_unreadable_errors_with_the_permission():
    called = []

    def f(c):
        called.append(1)
        return passed()

    runs = run_checks(ctx(), [mk("needs-pods", f, ["pods"])])
    assert runs[0].status == "skip" and runs[0].reason == "not collected: k8s/api/v1/namespaces/airflow/pods"
    forbidden = ("k8s/api/v1/namespaces/airflow/pods",
                 {"status": 403, "error": {"kind": "Status", "message": 'pods is forbidden: User "x" cannot list resource "pods"', "code": 403}})
    runs = run_checks(ctx([forbidden]), [mk("needs-pods", f, ["pods"])])
    assert runs[0].status == "error"
    assert "permission denied to list pods in namespace airflow" in runs[0].reason
    assert "grant RBAC list on pods" in runs[0].reason
    assert not called


def test_a_view_over_missing_data_inside_a_check_never_passes():
    def sneaky(c):
        c.pods  # not declared in needs
        return passed()

    runs = run_checks(ctx(), [mk("sneaky", sneaky)])
    assert runs[0].status == "skip" and "not collected" in runs[0].reason


def test_fail_without_findings_is_an_error_and_dangling_causes_are_dropped():
    res = Resource("Pod", "p", "airflow")
    f = Finding("t", "m", res, ["e"], Remediation("s", ["c"]), caused_by=["other:Pod/airflow/q"])
    runs = run_checks(ctx(), [mk("empty-fail", lambda c: Result("fail")), mk("one", lambda c: failed(f))])
    assert runs[0].status == "error" and runs[1].findings[0].caused_by == []
    assert runs[1].findings[0].id == "one:Pod/airflow/p" and runs[1].findings[0].severity == "error"
    assert runs[1].findings[0].runbook.endswith("/docs/runbooks/one.md")


def test_builtin_registry_slugs_titles_and_data_keys():
    reg = load_checks()
    assert {"container-api-disabled", "pvc-access-mode-unsupported", "node-storage-scope-read-only",
            "gcs-log-write-denied", "executor-pod-stuck-init"} <= set(reg)
    for c in reg.values():
        assert c.title[0].isupper() and not c.title.endswith(".")


def test_a_value_shared_between_checks_reports_its_failed_reads_to_every_check_that_uses_it():
    # ctx.derive computes once per run; a read that failed while computing it must still turn
    # every later check that relies on it into an error, as if that check had read it itself.
    calls = []

    def helper(c):
        def compute():
            calls.append(1)
            return c.has("deployments")
        return c.derive("helper", compute)

    def uses_helper(c):
        helper(c)
        return passed()

    c = ctx([("k8s/apis/apps/v1/namespaces/airflow/deployments", {"status": 403, "error": "forbidden"})])
    checks = [Check(f"uses-{i}", "good state", "error", "test", uses_helper, (), ("deployments",)) for i in (1, 2)]
    runs = run_checks(c, checks)
    assert len(calls) == 1
    assert [r.status for r in runs] == ["error", "error"], [(r.status, r.reason) for r in runs]
    assert all("permission denied" in r.reason for r in runs)
