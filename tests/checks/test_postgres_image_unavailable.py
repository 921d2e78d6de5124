"""The postgres-image-unavailable check (The bundled PostgreSQL image can be pulled): its findings on
the fixture scenarios (resource, evidence, commands, links) and where it stays silent."""
from __future__ import annotations

import pytest

from conftest import status_of
from checktools import HEALTHY, cmds, only, reports, text


@pytest.fixture
def doc(run_cli):
    return reports(run_cli)


def test_postgres_image_unavailable(doc):
    f = only(doc("bundled-postgres-image-gone"), "postgres-image-unavailable")
    assert f["resource"] == {"kind": "Pod", "namespace": "airflow", "name": "airflow-postgresql-0", "uri": None}
    t = text(f)
    assert "ImagePullBackOff" in t and "docker.io/bitnami/postgresql:16.1.0-debian-11-r15" in t
    assert "failed to resolve reference" in t and "bitnamilegacy" in t
    assert ("helm upgrade airflow apache-airflow/airflow --namespace airflow --reuse-values "
            "--set postgresql.image.registry=docker.io --set postgresql.image.repository=bitnamilegacy/postgresql "
            "--set-string postgresql.image.tag=16.1.0-debian-11-r15") in cmds(f)


@pytest.mark.parametrize("name", HEALTHY + ("image-pull-403-ar",))
def test_postgres_image_unavailable_silent(doc, name):
    assert status_of(doc(name), "postgres-image-unavailable") == "pass"
