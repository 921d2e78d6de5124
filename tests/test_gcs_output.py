"""``doctor --output-file gs://BUCKET/PREFIX/`` (doctor/gcs.py): the JSON report of each target as one
object ``<prefix>/<project>/<cluster>/<namespace>/<timestamp>.json``, written by the real
google-cloud-storage client to the replay server's in-memory object store. The write is create-only
(``ifGenerationMatch=0``), the only request the upload sends, and the session's read-only accounting
(tests/conftest.py ``is_report_write``) accepts exactly it. Failures (403, no bucket, malformed URL)
are one line and exit 2, with the report still on stdout."""
from __future__ import annotations

import json
import os
import re

import pytest

from conftest import SCENARIOS, is_report_write, validate_report
from replay import ReplayServer
from test_fleet import cluster  # noqa: F401 - the three-release cluster fixture

SEED = SCENARIOS / "seed-incident"


@pytest.fixture
def gcs(monkeypatch):
    """``gcs(snapshot=SEED, **kw)`` -> a started replay server with writes allowed, its storage
    endpoint in the environment (and no other endpoint)."""
    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)
    servers = []

    def make(snapshot=SEED, **kw):
        srv = ReplayServer(snapshot, allow_writes=True, **kw).start()
        servers.append(srv)
        monkeypatch.setenv("AIRFLOW_GKE_ENDPOINT_STORAGE", srv.endpoints["storage"])
        return srv

    yield make
    for s in servers:
        s.stop()


def stamp_of(started_at: str) -> str:
    return re.sub(r"[-:]", "", started_at.split(".")[0].rstrip("Z")) + "Z"


def test_one_object_named_after_the_target_and_the_run(run_cli, gcs):
    srv = gcs()
    r = run_cli("doctor", "--snapshot", str(SEED), "--output", "json", "--output-file", "gs://acme-reports/airflow-gke/")
    assert r.code == 1, r.err
    doc = r.json                                   # the report is still printed on stdout
    name = f"airflow-gke/acme-data-prod/airflow-prod/airflow/{stamp_of(doc['run']['started_at'])}.json"
    assert re.fullmatch(r"airflow-gke/acme-data-prod/airflow-prod/airflow/\d{8}T\d{6}Z\.json", name)
    assert list(srv.objects) == [("acme-reports", name)]
    obj = srv.objects["acme-reports", name]
    assert obj.content_type == "application/json" and json.loads(obj.data) == doc
    assert f"wrote json report: gs://acme-reports/{name}" in r.err
    # one request, a create that cannot replace anything; the accounting accepts exactly it
    (req,) = srv.log.entries
    assert (req.method, req.path, req.params["ifGenerationMatch"]) == ("POST", "/upload/storage/v1/b/acme-reports/o", "0")
    assert is_report_write(req, True) and not is_report_write(req, False)


def test_json_prefix_and_no_prefix(run_cli, gcs):
    srv = gcs()
    r = run_cli("doctor", "--snapshot", str(SEED), "--output-file", "json:gs://acme-reports")
    assert r.code == 1, r.err
    (key,) = srv.objects
    assert key[0] == "acme-reports" and re.fullmatch(r"acme-data-prod/airflow-prod/airflow/\d{8}T\d{6}Z\.json", key[1])
    assert "ERROR PVC airflow-logs asks ReadWriteMany" in r.out       # stdout: the terminal report
    validate_report(json.loads(srv.objects[key].data))


def test_a_fleet_run_writes_one_object_per_target(run_cli, gcs, cluster):  # noqa: F811
    srv = gcs(cluster)
    r = run_cli("doctor", "--snapshot", str(cluster), "-A", "--output", "json", "--output-file", "gs://acme-reports/fleet/")
    assert r.code == 1, r.err
    fleet = r.json
    ts = stamp_of(fleet["run"]["started_at"])
    base = "fleet/acme-data-prod/airflow-prod"
    # two releases share namespace data-pipelines: their objects carry the release
    assert sorted(n for _b, n in srv.objects) == [f"{base}/airflow/{ts}.json", f"{base}/data-pipelines/{ts}-af2.json",
                                                  f"{base}/data-pipelines/{ts}-airflow.json"]
    by_release = {(t["run"]["namespace"], t["run"]["release"]): t for t in fleet["targets"]}
    for (_b, n), obj in srv.objects.items():
        doc = json.loads(obj.data)
        validate_report(doc)                          # a single-target report, schema v1
        assert doc == by_release[doc["run"]["namespace"], doc["run"]["release"]]
    assert len(srv.log.mutating()) == 3 and all(is_report_write(e, True) for e in srv.log.mutating())


def test_403_is_one_line_with_the_grant_and_exit_2_after_the_report(run_cli, gcs):
    srv = gcs()
    srv.deny_storage_writes("airflow-gke-fleet@acme-data-prod.iam.gserviceaccount.com")
    r = run_cli("doctor", "--snapshot", str(SEED), "--output", "json", "--output-file", "gs://acme-reports/r/")
    assert r.code == 2
    assert json.loads(r.out)["run"]["namespace"] == "airflow"          # printed before the upload
    assert "Traceback" not in r.err and not srv.objects
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("airflow-gke: error: cannot write the JSON report to gs://acme-reports/r/acme-data-prod/")
    assert "permission denied (HTTP 403: airflow-gke-fleet@acme-data-prod.iam.gserviceaccount.com does not have " \
           "storage.objects.create access" in line
    assert "gcloud storage buckets add-iam-policy-binding gs://acme-reports --member " \
           "serviceAccount:airflow-gke-fleet@acme-data-prod.iam.gserviceaccount.com " \
           "--role roles/storage.objectCreator" in line          # the member the 403 names, no placeholder


def test_missing_bucket_is_exit_2_naming_it(run_cli, gcs):
    gcs(SCENARIOS / "gcs-bucket-missing")              # the snapshot says gs://acme-airflow-logs-old is gone
    r = run_cli("doctor", "--snapshot", str(SEED), "--output-file", "gs://acme-airflow-logs-old/reports")
    assert r.code == 2 and "Traceback" not in r.err
    assert "bucket acme-airflow-logs-old does not exist (HTTP 404" in r.err
    assert "Findings: 3 errors" in r.out


@pytest.mark.parametrize("spec,says", [
    ("gs://", "no bucket name after gs://"),
    ("gs:///x", "no bucket name after gs://"),
    ("gs://Reports/", "'Reports' is not a Cloud Storage bucket name"),
    ("gs://a/", "'a' is not a Cloud Storage bucket name"),
    ("gs://reports/a//b", "empty, '.' or '..' segment"),
    ("gs://reports/../b", "empty, '.' or '..' segment"),
    ("GS://reports/", "starts with gs:// (lower case)"),
    ("markdown:gs://reports/x", "a gs:// location takes the JSON report only"),
])
def test_malformed_locations_end_the_run_before_it_reads(run_cli, gcs, spec, says):
    srv = gcs()
    r = run_cli("doctor", "--snapshot", str(SEED), "--output-file", spec)
    assert r.code == 2 and says in r.err and "Traceback" not in r.err, r.err
    assert r.out == "" and not srv.log.entries


def test_an_existing_object_is_never_replaced(gcs):
    from airflow_gke import gcs as g
    from airflow_gke.errors import UserError

    srv = gcs()
    loc = g.parse("gs://acme-reports/p/")
    assert g.upload(loc, [("p/a/b/c/20261205T031500Z.json", b"{}")]) == ["gs://acme-reports/p/a/b/c/20261205T031500Z.json"]
    with pytest.raises(UserError, match=r"the object already exists \(HTTP 412\); reports are never replaced"):
        g.upload(loc, [("p/a/b/c/20261205T031500Z.json", b'{"x": 1}')])
    assert srv.objects["acme-reports", "p/a/b/c/20261205T031500Z.json"].data == b"{}"


def test_object_names():
    from airflow_gke import gcs as g

    loc = g.parse("gs://b-1/team/airflow/")
    assert str(loc) == "gs://b-1/team/airflow/"
    runs = [{"project": "p", "cluster": "c", "namespace": "n", "release": "a"},
            {"project": None, "cluster": None, "namespace": "m", "release": "x"}]
    assert g.object_names(loc, runs, "2026-12-05T03:15:00.123456Z") == [
        "team/airflow/p/c/n/20261205T031500Z.json", "team/airflow/_/_/m/20261205T031500Z.json"]
    assert g.stamp("2026-12-05T04:15:00+01:00") == "20261205T031500Z"


def test_the_accounting_accepts_only_the_report_object():
    from replay import Request

    def post(name, query="uploadType=media&ifGenerationMatch=0"):
        return Request("storage", "POST", "/upload/storage/v1/b/r/o", f"{query}&name={name}", 200, 0.0)

    assert is_report_write(post("x/p/c/n/20261205T031500Z.json"), True)
    assert is_report_write(post("p/c/n/20261205T031500Z-af2.json"), True)
    assert not is_report_write(post("p/c/n/20261205T031500Z.json"), False)           # writes not allowed there
    assert not is_report_write(post("p/c/n/20261205T031500Z.json", "uploadType=media"), True)  # may replace
    assert not is_report_write(post("dags/x.py"), True)
    assert not is_report_write(post("c/n/20261205T031500Z.json"), True)              # not <project>/<cluster>/<ns>/
    delete = Request("storage", "DELETE", "/storage/v1/b/r/o/p/c/n/20261205T031500Z.json", "", 204, 0.0)
    assert not is_report_write(delete, True)
