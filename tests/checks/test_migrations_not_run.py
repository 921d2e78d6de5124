"""The migrations-not-run check (Database migrations ran, so components get past wait-for-airflow-
migrations): its findings on the fixture scenarios (resource, evidence, commands, links) and where
it stays silent."""
from __future__ import annotations

import pytest

from conftest import findings_of, status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_migrations_not_run_hook_never_ran(doc):
    f = only(doc("migrations-hook-never-ran"), "migrations-not-run")
    assert f["resource"] == {"kind": "Job", "namespace": "airflow", "name": "airflow-run-airflow-migrations",
                             "uri": None}
    t = text(f)
    assert "Job airflow-run-airflow-migrations: absent" in t
    assert "TimeoutError: There are still unapplied migrations after 60 seconds" in t
    assert "--migration-wait-timeout=60" in t and "Argo CD" in t
    # Argo CD manages the release (tracking annotations): the values change goes to the Application,
    # never a helm upgrade (reverted), and hooks off is the fix, not a longer wait
    c = cmds(f)
    assert not any(ln.strip().startswith("helm upgrade") for ln in c.splitlines()) and "migrationsWaitTimeout" not in c
    assert ("argocd app set airflow --helm-set migrateDatabaseJob.useHelmHooks=false --helm-set "
            "migrateDatabaseJob.applyCustomEnv=false --helm-set createUserJob.useHelmHooks=false --helm-set "
            "createUserJob.applyCustomEnv=false\nargocd app sync airflow") in c
    assert f["caused_by"] == []


def test_migrations_not_run_links_to_the_database_cause(doc):
    d = doc("bundled-postgres-image-gone")
    f = only(d, "migrations-not-run")
    ids = {x["id"] for x in findings_of(d, "metadata-db-unreachable") + findings_of(d, "postgres-image-unavailable")}
    assert set(f["caused_by"]) == ids and len(ids) == 2


@pytest.mark.parametrize("name", HEALTHY + ("seed-incident", "image-pull-403-ar"))
def test_migrations_not_run_silent(doc, name):
    # healthy-af2-celery: the Job is Complete; seed-incident: the hook Job was deleted but nothing waits;
    # image-pull-403-ar: the wait container never started (its image cannot be pulled)
    assert status_of(doc(name), "migrations-not-run") == "pass"
