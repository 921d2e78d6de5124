"""The pgbouncer-auth-mismatch check (PgBouncer's auth type matches the database's password
encryption): its findings on the fixture scenarios (resource, evidence, commands, links) and where
it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_pgbouncer_auth_mismatch(doc):
    d = doc("pgbouncer-md5-vs-scram")
    f = only(d, "pgbouncer-auth-mismatch")
    assert f["resource"] == {"kind": "Deployment", "namespace": "data-pipelines", "name": "af2-pgbouncer", "uri": None}
    t = text(f)
    assert "server login failed: wrong password type" in t
    assert ("helm upgrade af2 apache-airflow/airflow --namespace data-pipelines --reuse-values "
            "--set pgbouncer.auth_type=scram-sha-256") in cmds(f)
    assert "kubectl rollout restart deployment af2-pgbouncer --namespace data-pipelines" in cmds(f)
    db = only(d, "metadata-db-unreachable")
    assert db["caused_by"] == [f["id"]]
    assert "af2-pgbouncer.data-pipelines:6543" in db["title"]


@pytest.mark.parametrize("name", HEALTHY + ("metadata-db-password-rotated",))
def test_pgbouncer_auth_mismatch_silent(doc, name):
    # healthy-af2-celery runs a healthy PgBouncer; the password scenario connects directly
    assert status_of(doc(name), "pgbouncer-auth-mismatch") == "pass"
