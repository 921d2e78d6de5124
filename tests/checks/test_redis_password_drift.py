"""redis-password-drift: Redis refuses the Celery broker password."""
from __future__ import annotations

from conftest import doctor_json, findings_of, status_of

CHECK = "redis-password-drift"


def test_wrongpass_in_worker_logs_is_one_error_on_redis_with_owned_secrets(run_cli):
    code, doc = doctor_json(run_cli, "redis-password-drift-af2")
    assert code == 1
    (f,) = findings_of(doc, CHECK)
    assert f["severity"] == "error"
    assert (f["resource"]["kind"], f["resource"]["namespace"], f["resource"]["name"]) == (
        "StatefulSet", "data-pipelines", "af2-redis")
    ev = "\n".join(f["evidence"])
    assert "log of af2-worker-0/worker:" in ev and "log of af2-worker-1/worker:" in ev
    assert "invalid username-password pair or user is disabled" in ev
    assert "REDIS_PASSWORD from Secret af2-redis-password key password" in ev
    assert "AIRFLOW__CELERY__BROKER_URL from Secret af2-broker-url key connection (values not read)" in ev
    cmds = f["remediation"]["commands"]
    assert cmds[-1] == ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
                        "--set redis.passwordSecretName=airflow-redis-password "
                        "--set data.brokerUrlSecretName=airflow-broker-url")
    assert cmds[-2].startswith("# restarts Redis, the Celery workers and the scheduler")
    assert 'redis://:$REDIS_PASS@af2-redis:6379/0' in cmds[2]
    # the same cause is one finding, however many workers log it
    assert len(findings_of(doc, CHECK)) == 1


def test_a_worker_that_restarted_and_reconnected_passes(run_cli):
    code, doc = doctor_json(run_cli, "redis-worker-restarted-af2")
    assert status_of(doc, CHECK) == "pass"
    assert code == 0


def test_not_applicable_without_celery(run_cli):
    _code, doc = doctor_json(run_cli, "k8s-watcher-410-af2")
    assert status_of(doc, CHECK) == "skip"
