"""``airflow-gke report SOURCE`` (doctor/report/stored.py): the fleet view of stored reports.

A folder of 100 single-target reports of 40 targets (bench/reports.py: real reports of three
scenarios, several per target six hours apart, laid out as ``--output-file gs://`` writes them),
and the same objects under a ``gs://`` prefix of the replay server read by the real
google-cloud-storage client: the latest report per target, its age, every fleet format; invalid
files are skipped with a warning naming them; nothing valid, or a bad SOURCE, is exit 2."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from bench import reports as store
from conftest import validate_fleet
from replay import Fault, ReplayServer

NOW = "2026-12-05T03:15:00Z"


@pytest.fixture(scope="module")
def bases():
    return store.base_reports()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, bases):
    root = tmp_path_factory.mktemp("reports") / "store"
    docs = store.write(root, 100, 40, bases)
    return root, docs


def latest(docs) -> dict:
    """The newest report of each target, by (project, cluster, namespace)."""
    out: dict = {}
    for _rel, d in docs:
        r = d["run"]
        k = (r["project"], r["cluster"], r["namespace"])
        if k not in out or out[k]["run"]["started_at"] < r["started_at"]:
            out[k] = d
    return out


def test_folder_of_100_reports_the_grid_is_the_latest_per_target_with_its_age(run_cli, folder, bases):
    root, docs = folder
    r = run_cli("report", str(root), "--now", NOW)
    assert r.code == 1, r.err                        # the worst target's latest report has errors
    assert r.err == ""
    lines = r.out.splitlines()
    assert lines[0] == f"airflow-gke report {root} · 40 target(s), the latest of 100 report(s)"
    head = lines.index(next(x for x in lines if x.startswith("TARGET")))
    assert lines[head].split() == ["TARGET", "AGE", "ERRORS", "WARNINGS", "INCOMPLETE", "EXIT"]
    rows = {x.split()[0]: x.split()[1:] for x in lines[head + 1:head + 41]}
    assert len(rows) == 40
    want = latest(docs)
    for (project, cluster, ns), doc in want.items():
        row = rows[f"{project}/{cluster}/{ns}/airflow"]
        s = doc["summary"]
        t = int(ns.split("-")[1]) + 4 * int(cluster.split("-")[1]) + 8 * int(project.split("-")[1])
        assert row[0] == f"{t}m" if t else row[0] == "0s"          # the latest ran t minutes before NOW
        assert row[1:4] == [str(s["findings"]["error"]), str(s["findings"]["warning"]),
                            str(s["checks"]["error"])]   # incomplete: checks ended error, as exit 3 counts
    # target 0's latest is the seed incident's report (bases[0]); target 1's the healthy one
    assert rows["acme-0/gke-0/team-0/airflow"][1:] == [str(bases[0]["summary"]["findings"]["error"]),
                                                        str(bases[0]["summary"]["findings"]["warning"]),
                                                        rows["acme-0/gke-0/team-0/airflow"][3], "1"]
    assert rows["acme-0/gke-0/team-1/airflow"][1] == "0" and rows["acme-0/gke-0/team-1/airflow"][-1] == "0"
    # then each target with findings: the report it comes from, and its findings one line each
    part = r.out.split("── acme-0/gke-0/team-0/airflow · ")[1].split("\n── ")[0].splitlines()
    assert part[0] == str(root / "acme-0/gke-0/team-0/20261205T031500Z.json")
    assert [x.split()[1] for x in part[1:] if x.startswith("  ERROR") or x.startswith("  WARN")] == \
        [f["check"] for f in bases[0]["findings"]]
    assert "── acme-0/gke-0/team-1/airflow" not in r.out                # healthy: no findings, no section
    # --full: each target's whole report, as the doctor printed it
    full = run_cli("report", str(root), "--now", NOW, "--full")
    assert full.code == 1 and full.out.startswith(r.out.split("\n\n── ")[0])
    assert "── acme-0/gke-0/team-1/airflow ─" in full.out
    assert "ERROR PVC airflow-logs asks ReadWriteMany" in full.out and "Findings: 3 errors, 2 warnings" in full.out


def test_json_is_a_fleet_document_of_the_stored_reports_unchanged(run_cli, folder):
    root, docs = folder
    r = run_cli("report", str(root), "--output", "json", "--now", NOW)
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    validate_fleet(doc)
    assert doc["run"]["mode"] == "stored" and doc["run"]["source"] == str(root)
    assert doc["summary"] == {"targets": 40, "diagnosed": 40, "unreachable": 0, "exit_code": 1}
    want = latest(docs)
    got = {(t["run"]["project"], t["run"]["cluster"], t["run"]["namespace"]): t for t in doc["targets"]}
    assert got == want                                 # byte for byte what was stored, the latest each


def test_junit_and_markdown(run_cli, folder, tmp_path):
    root, _docs = folder
    r = run_cli("report", str(root), "--now", NOW, "--output", "markdown",
                "--output-file", str(tmp_path / "fleet.xml"), "--output-file", str(tmp_path / "fleet.json"))
    assert r.code == 1, r.err
    # a file took the format: stdout is the terminal view; the Markdown went nowhere, so ask again
    assert r.out.startswith("airflow-gke report ")
    suites = ET.parse(tmp_path / "fleet.xml").getroot().findall("testsuite")
    assert len(suites) == 40 and suites[0].get("name") == "acme-0/gke-0/team-0/airflow"
    md = run_cli("report", str(root), "--now", NOW, "--output", "markdown")
    assert md.code == 1
    assert "| Target | Age | Errors | Warnings | Incomplete | Exit |" in md.out
    assert "| acme-0/gke-0/team-0/airflow | 0s | " in md.out
    assert "### Worst findings (30 of " in md.out and "**ERROR** `acme-0/gke-0/team-0/airflow`" in md.out
    assert len(md.out) <= 65_536


def test_invalid_files_are_skipped_with_a_warning_naming_them(run_cli, tmp_path, bases):
    root = tmp_path / "mixed"
    store.write(root, 4, 2, bases)
    (root / "notes.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "v2.json").write_text(json.dumps(dict(bases[0], schema_version="2")))
    (root / "README.md").write_text("not a report")                  # not .json: not read
    r = run_cli("report", str(root), "--now", NOW)
    assert r.code == 1
    warned = sorted(x for x in r.err.splitlines() if x.startswith("airflow-gke: warning: skipped "))
    assert len(warned) == 3
    assert f"skipped {root / 'list.json'}: not an airflow-gke report (not a JSON object)" in r.err
    assert f"skipped {root / 'notes.json'}: not JSON" in r.err
    assert f"skipped {root / 'v2.json'}: not an airflow-gke report (schema_version '2', not \"1\")" in r.err
    assert "2 target(s), the latest of 4 report(s), 3 file(s) skipped" in r.out


def test_a_fleet_document_counts_and_its_unreachable_line_stays(run_cli, tmp_path, bases):
    root = tmp_path / "fleetdocs"
    root.mkdir()
    t0, t1 = (dict(copy_run(bases[1], ns="a")), dict(copy_run(bases[0], ns="b")))
    fleet = {"schema_version": "1", "kind": "fleet", "tool_version": "0.1.0",
             "run": {"mode": "live", "started_at": "2026-12-05T03:00:00Z", "duration_s": 1.0},
             "summary": {"targets": 3, "diagnosed": 2, "unreachable": 1, "exit_code": 3},
             "targets": [t0, t1],
             "unreachable": [{"target": {"context": "gke_p_l_other", "namespace": None, "release": None},
                              "status": "unreachable", "reason": "the Kubernetes API did not answer"}]}
    validate_fleet(fleet)
    (root / "fleet.json").write_text(json.dumps(fleet))
    r = run_cli("report", str(root), "--now", NOW, "--output", "json")
    doc = json.loads(r.out)
    validate_fleet(doc)
    assert [t["run"]["namespace"] for t in doc["targets"]] == ["a", "b"]
    assert doc["unreachable"] == fleet["unreachable"] and r.code == 1


def copy_run(doc: dict, ns: str) -> dict:
    d = json.loads(json.dumps(doc))
    d["run"].update(namespace=ns, started_at="2026-12-05T03:00:00Z")
    return d


def _folder(p, files: dict):
    p.mkdir()
    for name, text in files.items():
        (p / name).write_text(text)
    return p


@pytest.mark.parametrize("make,says", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: _folder(p / "empty", {}), "no .json file"),
    (lambda p: _folder(p / "bad", {"x.json": "{}"}), "1 .json file(s), none a valid report"),
])
def test_nothing_valid_is_exit_2(run_cli, tmp_path, make, says):
    r = run_cli("report", str(make(tmp_path)))
    assert r.code == 2 and says in r.err and "Traceback" not in r.err, r.err
    assert r.out == ""


def test_bad_options_are_exit_2(run_cli, folder):
    root, _ = folder
    for args in (("--output-file", "gs://b-1/x/"), ("--now", "yesterday"), ("--output", "yaml")):
        r = run_cli("report", str(root), *args)
        assert r.code == 2 and "Traceback" not in r.err, (args, r.err)


# --- gs:// --------------------------------------------------------------------------------------

@pytest.fixture
def bucket(monkeypatch, folder):
    """A replay server holding the 100 reports (and a file that is not one) under gs://acme-reports/airflow-gke/."""
    from conftest import SCENARIOS

    for k in list(os.environ):
        if k.startswith("AIRFLOW_GKE_ENDPOINT_"):
            monkeypatch.delenv(k)
    _root, docs = folder
    with ReplayServer(SCENARIOS / "seed-incident") as srv:
        for rel, d in docs:
            srv.put_object("acme-reports", f"airflow-gke/{rel}", json.dumps(d).encode())
        srv.put_object("acme-reports", "airflow-gke/broken.json", b"\x00garbage")
        srv.put_object("acme-reports", "other/x.json", b"{}")           # outside the prefix: never read
        srv.put_object("acme-reports", "airflow-gke/notes.txt", b"not json")
        monkeypatch.setenv("AIRFLOW_GKE_ENDPOINT_STORAGE", srv.endpoints["storage"])
        yield srv


def test_gs_prefix_reads_the_same_fleet_as_the_folder(run_cli, bucket, folder):
    root, docs = folder
    r = run_cli("report", "gs://acme-reports/airflow-gke/", "--output", "json", "--now", NOW)
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    validate_fleet(doc)
    want = latest(docs)
    assert {(t["run"]["project"], t["run"]["cluster"], t["run"]["namespace"]): t for t in doc["targets"]} == want
    (warning,) = r.err.strip().splitlines()
    assert warning.startswith("airflow-gke: warning: skipped gs://acme-reports/airflow-gke/broken.json: not JSON (")
    # reads only: one list, one download per .json object under the prefix, nothing else
    log = bucket.log.entries
    assert not bucket.log.mutating()
    lists = [e for e in log if e.path == "/storage/v1/b/acme-reports/o"]
    assert len(lists) == 1 and lists[0].params["prefix"] == "airflow-gke/"
    gets = sorted(e.path for e in log if e.path.startswith("/download/") or "/o/" in e.path)
    assert len(gets) == 101 and not any("other/" in g or g.endswith(".txt") for g in gets)
    assert len(log) == 102


def test_gs_errors_are_one_line_and_exit_2(run_cli, bucket):
    r = run_cli("report", "gs://acme-airflow-logs-old/x/")
    assert r.code == 2 and "bucket acme-airflow-logs-old does not exist (HTTP 404" in r.err, r.err
    bucket.add_fault(Fault(service="storage", path="/storage/v1/b/acme-reports/o", status=403, times=1))
    r = run_cli("report", "gs://acme-reports/airflow-gke/")
    assert r.code == 2 and "Traceback" not in r.err
    assert "cannot list the reports under gs://acme-reports/airflow-gke/: permission denied (HTTP 403" in r.err
    assert "storage.objects.list and storage.objects.get" in r.err and "roles/storage.objectViewer" in r.err
    r = run_cli("report", "gs://Bad_Bucket/")
    assert r.code == 2 and "is not a Cloud Storage bucket name" in r.err
    r = run_cli("report", "gs://acme-reports/nothing-here/")
    assert r.code == 2 and "no .json file" in r.err


def test_html_page_of_stored_reports_with_their_age(run_cli, folder, tmp_path):
    """`report --output-file x.html`: the page of the fleet, one grid row and one section per
    target (the latest report), the summary with each report's age; every link resolves."""
    from html_pages import Page

    root, docs = folder
    out = tmp_path / "fleet.html"
    r = run_cli("report", str(root), "--now", NOW, "--output-file", str(out))
    assert r.code == 1, r.err
    html = out.read_text()
    assert html.count('<th class="row">') == 40 and html.count('<section class="target"') == 40
    assert f"airflow-gke report {root} · 40 target(s), the latest of 100 report(s)" in html
    assert "<th>Age</th>" in html and '<td class="num">0s</td>' in html
    page = Page(html)
    assert [x for x in page.links if x.startswith("#") and x[1:] not in page.ids] == []
    assert len(page.ids) == len(set(page.ids))
