"""The bundled-postgres-in-production check (The metadata database is not the chart's bundled
PostgreSQL): its findings on the fixture scenarios (resource, evidence, commands, links) and where
it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_bundled_postgres_in_production(doc):
    f = only(doc("bundled-postgres-image-gone"), "bundled-postgres-in-production")
    assert f["severity"] == "warning"
    assert f["resource"] == {"kind": "StatefulSet", "namespace": "airflow", "name": "airflow-postgresql", "uri": None}
    t = text(f)
    assert "helm.sh/chart=postgresql-13.2.24" in t and "Secret airflow-metadata" in t
    c = cmds(f)
    assert ("gcloud sql instances create airflow-metadata --database-version=POSTGRES_16 --region=europe-west1 "
            "--tier=db-custom-2-7680 --network=default --no-assign-ip --availability-type=REGIONAL "
            "--project acme-data-dev") in c
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set postgresql.enabled=false --set data.metadataSecretName=airflow-metadata-cloudsql") in c


@pytest.mark.parametrize("name", HEALTHY + ("image-pull-403-ar",))
def test_bundled_postgres_in_production_silent(doc, name):
    assert status_of(doc(name), "bundled-postgres-in-production") == "pass"
