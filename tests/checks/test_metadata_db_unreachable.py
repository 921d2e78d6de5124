"""The metadata-db-unreachable check (Airflow components reach and log in to the metadata database):
its findings on the fixture scenarios (resource, evidence, commands, links) and where it stays
silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, scenario, status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_metadata_db_unreachable_password(doc, run_cli):
    d = doc("metadata-db-password-rotated")
    f = only(d, "metadata-db-unreachable")
    assert f["resource"] == {"kind": "Secret", "namespace": "data-pipelines", "name": "af2-cloudsql-connection",
                             "uri": None}
    t = text(f)
    assert "10.61.0.3:5432" in f["title"]
    assert 'password authentication failed for user "airflow"' in t
    assert "af2-scheduler-" in t and "af2-webserver-" in t
    c = cmds(f)
    assert "gcloud sql users set-password airflow --instance CLOUD_SQL_INSTANCE --prompt-for-password --project acme-data-prod" in c
    assert "kubectl create secret generic af2-cloudsql-connection --namespace data-pipelines" in c
    assert "kubectl rollout restart deployment af2-scheduler --namespace data-pipelines" in c


def test_metadata_db_unreachable_never_prints_the_password(run_cli):
    import fixtures.build  # noqa: F401  (loads the scenario modules in order)
    from fixtures.scenarios_storage import PLANTED_PASSWORD

    snap = scenario("metadata-db-password-rotated")
    logs = list(snap.glob("k8s/api/v1/namespaces/data-pipelines/pods/af2-scheduler-*/log/scheduler.log"))
    assert logs and PLANTED_PASSWORD in logs[0].read_text()   # the planted secret is in the snapshot
    for fmt in ("json", "table"):
        r = run_cli("doctor", "--snapshot", str(snap), "--output", fmt)
        assert r.code == 1
        assert PLANTED_PASSWORD not in r.out and PLANTED_PASSWORD not in r.err


def test_metadata_db_unreachable_connection_refused_links_to_postgres(doc):
    d = doc("bundled-postgres-image-gone")
    f = only(d, "metadata-db-unreachable")
    assert f["resource"]["name"] == "airflow-metadata"
    assert "airflow-postgresql.airflow:5432" in f["title"]
    assert "Connection refused" in text(f)
    assert f["caused_by"] == [only(d, "postgres-image-unavailable")["id"]]


@pytest.mark.parametrize("name", HEALTHY + ("migrations-hook-never-ran",))
def test_metadata_db_unreachable_silent(doc, name):
    assert status_of(doc(name), "metadata-db-unreachable") == "pass"


def test_a_password_with_an_unencoded_at_sign_is_named_as_the_cause_and_never_printed(run_cli):
    """Catalogue #27: the URL parser takes the tail of the password for the host."""
    r = run_cli("doctor", "--snapshot", str(scenario("metadata-url-not-encoded-af2")), "--output", "json")
    assert "Xk9" not in r.out
    table = run_cli("doctor", "--snapshot", str(scenario("metadata-url-not-encoded-af2")))
    assert "Xk9" not in table.out
    (f,) = findings_of(r.json, "metadata-db-unreachable")
    assert f["severity"] == "error"
    assert f["resource"]["name"] == "af2-cloudsql-connection"
    assert f["title"].startswith("The metadata connection URL in Secret af2-cloudsql-connection is not URL-encoded")
    assert any("DB_HOST=<redacted>@10.61.0.3" in e for e in f["evidence"])
    assert any("host in the errors: 10.61.0.3" in e for e in f["evidence"])
    cmds = f["remediation"]["commands"]
    assert cmds[1].startswith("ENC=$(python3 -c 'import sys, urllib.parse;")
    assert cmds[2] == ('kubectl create secret generic af2-cloudsql-connection --namespace data-pipelines '
                       '--from-literal=connection="postgresql://$DB_USER:$ENC@10.61.0.3:5432/$DB_NAME" '
                       "--dry-run=client -o yaml | kubectl apply -f -")
    assert [c for c in cmds if not c.startswith("#")][-2:] == [
                         "kubectl rollout restart deployment af2-scheduler --namespace data-pipelines",
                         "kubectl rollout restart deployment af2-webserver --namespace data-pipelines"]
    (m,) = findings_of(r.json, "migrations-not-run")
    assert m["caused_by"] == [f["id"]]


def test_too_many_clients_without_pgbouncer_adds_up_the_connections_the_pods_may_open(doc):
    d = doc("metadata-db-too-many-clients")
    f = only(d, "metadata-db-unreachable")
    assert (f["resource"]["kind"], f["resource"]["name"]) == ("Secret", "af2-cloudsql-connection")
    assert ("no PgBouncer: 9 Airflow pods connect to the database directly; each process's pool holds up to 15 "
            "connections (sql_alchemy_pool_size 5 + sql_alchemy_max_overflow 10)") in f["evidence"]
    budget = next(e for e in f["evidence"] if e.startswith("connections they may open: "))
    assert "webserver 1 pod(s) x 4 workers x 15 = 60" in budget
    assert "worker 6 pod(s) x (15 + worker_concurrency 16 tasks x 2) = 282" in budget
    assert "; 372 in all, against PostgreSQL's default max_connections 100" in budget
    assert "--set pgbouncer.enabled=true" in cmds(f)


def test_the_arithmetic_appears_only_for_exhausted_slots(doc):
    f = only(doc("metadata-db-password-rotated"), "metadata-db-unreachable")
    assert not any(e.startswith(("no PgBouncer", "connections they may open")) for e in f["evidence"])
