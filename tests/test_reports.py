"""`--output junit`, `--output markdown` and `--output-file`: the same result model in the formats
CI systems and pull requests read. JUnit is validated against tests/data/junit.xsd (the
Jenkins/Ant JUnit format); every JSON written to a file is validated against the report schema."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import scenario, validate_report

XSD = Path(__file__).resolve().parent / "data" / "junit.xsd"
SEED = "seed-incident"
PVC_ID = "pvc-access-mode-unsupported:PersistentVolumeClaim/airflow/airflow-logs"

_schema = None


def junit_valid(xml: str) -> ET.Element:
    """Validate against the XSD and check the counts agree with the test cases."""
    global _schema
    import xmlschema

    if _schema is None:
        _schema = xmlschema.XMLSchema(str(XSD))
    errors = list(_schema.iter_errors(xml))
    assert not errors, "JUnit report does not match tests/data/junit.xsd:\n" + "\n".join(str(e)[:300] for e in errors[:5])
    root = ET.fromstring(xml)
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        got = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
               "errors": sum(c.find("error") is not None for c in cases),
               "skipped": sum(c.find("skipped") is not None for c in cases)}
        assert {k: int(suite.get(k)) for k in got} == got, suite.get("name")
        for k in total:
            total[k] += got[k]
    assert {k: int(root.get(k)) for k in total} == total
    return root


def case(root: ET.Element, name: str) -> ET.Element:
    found = [c for c in root.iter("testcase") if c.get("name") == name]
    assert len(found) == 1, f"{name}: {len(found)} test cases; have {[c.get('name') for c in root.iter('testcase')][:40]}"
    return found[0]


def test_the_xsd_rejects_what_readers_would_not_read():
    """The schema is not a rubber stamp: it catches a missing name, two outcomes, a text count."""
    import xmlschema

    xsd = xmlschema.XMLSchema(str(XSD))
    ok = ('<testsuites><testsuite name="s" tests="1" failures="1" errors="0">'
          '<testcase classname="c" name="n" time="0.1"><failure message="m" type="error">t</failure></testcase>'
          '</testsuite></testsuites>')
    assert xsd.is_valid(ok)
    assert not xsd.is_valid(ok.replace(' name="n"', ""))
    assert not xsd.is_valid(ok.replace("</failure>", "</failure><error/>"))
    assert not xsd.is_valid(ok.replace('tests="1"', 'tests="one"'))
    assert not xsd.is_valid(ok.replace('time="0.1"', 'time="-1"'))


def test_junit_seed_incident_failures_carry_message_evidence_and_commands(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "junit")
    assert r.code == 1, r.err
    root = junit_valid(r.out)
    assert root.tag == "testsuites" and root.get("name") == "airflow-gke doctor"
    pvc = case(root, "pvc-access-mode-unsupported: PersistentVolumeClaim/airflow/airflow-logs")
    assert pvc.get("classname") == "airflow-gke.storage"
    fail = pvc.find("failure")
    assert fail.get("type") == "error"
    assert "airflow-logs asks ReadWriteMany" in fail.get("message")
    body = fail.text
    assert "Evidence:" in body and "ProvisioningFailed" in body                      # quoted event
    assert "$ # Option A" in body and "--set logs.persistence.enabled=false" in body   # the commands
    assert "Runbook: https://" in body and body.rstrip().endswith("pvc-access-mode-unsupported.md")
    gcs = case(root, "gcs-log-write-denied: Bucket/acme-airflow-logs").find("failure")
    assert "Caused by:" in gcs.text and "node-storage-scope-read-only:NodePool/default-pool" in gcs.text
    # a check that passed is one passing test case named by its good state
    ok = case(root, "executor-pod-stuck-init: KubernetesExecutor task pods get through their init containers")
    assert list(ok) == []
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").find("properties")}
    assert props["project"] == "acme-data-prod" and props["fail_on"] == "error" and props["mode"] == "snapshot"


def test_junit_findings_below_fail_on_pass_with_details_and_never_has_no_failure(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario("gcs-iam-unreadable")), "--output", "junit")
    root = junit_valid(r.out)
    tc = case(root, "gcs-log-write-denied: Bucket/acme-airflow-logs")
    assert tc.find("failure") is None
    out = tc.find("system-out").text
    assert out.startswith("warning below --fail-on error (does not fail the run)")
    assert "Cannot prove that Airflow may write logs" in out
    r = run_cli("doctor", "--snapshot", str(scenario("gcs-iam-unreadable")), "--output", "junit", "--fail-on", "warning")
    tc = case(junit_valid(r.out), "gcs-log-write-denied: Bucket/acme-airflow-logs")
    assert tc.find("failure").get("type") == "warning"
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "junit", "--fail-on", "never")
    assert r.code == 0
    root = junit_valid(r.out)
    assert root.get("failures") == "0" and case(root, "pvc-access-mode-unsupported: "
                                                      "PersistentVolumeClaim/airflow/airflow-logs").find("system-out") is not None


def test_junit_skip_and_error_statuses(run_cli, tmp_path):
    # a project-only snapshot: cluster checks skip, saying why
    r = run_cli("doctor", "--snapshot", str(scenario("api-disabled-preflight")), "--output", "junit",
                "--check", "pvc-access-mode-unsupported", "--check", "container-api-disabled")
    root = junit_valid(r.out)
    sk = case(root, "pvc-access-mode-unsupported: PVCs ask only for access modes their StorageClass supports"
              ).find("skipped")
    assert sk is not None and ("not collected" in sk.get("message") or "needs the GKE" in sk.get("message"))
    # an unreadable list (403) ends the check in error: a JUnit <error> with the permission
    snap = copy_scenario(SEED, tmp_path)
    pvcs = snap / "k8s/api/v1/namespaces/airflow/persistentvolumeclaims.json"
    pvcs.unlink()
    (snap / "k8s/api/v1/namespaces/airflow/persistentvolumeclaims.error.json").write_text(json.dumps(
        {"status": 403, "body": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                                 "code": 403, "message": 'persistentvolumeclaims is forbidden: User "ci" cannot list'}}))
    r = run_cli("doctor", "--snapshot", str(snap), "--output", "junit", "--check", "pvc-access-mode-unsupported")
    assert r.code == 3
    err = case(junit_valid(r.out), "pvc-access-mode-unsupported: PVCs ask only for access modes their "
                                   "StorageClass supports").find("error")
    assert err.get("type") == "check-error" and "permission denied to list persistentvolumeclaims" in err.get("message")


def test_junit_strips_characters_xml_cannot_carry():
    from airflow_gke.model import CheckRun, Finding, Remediation, Resource
    from airflow_gke.report import RunInfo, RunReport
    from airflow_gke.report.junit import render

    f = Finding("bad \x1b[31mlog\x00", "m", Resource("Pod", "p", "airflow"), ["line \x07 bell"],
                Remediation("s", ["echo"]), check="x-check", severity="error", runbook="r")
    run = CheckRun("x-check", "Good", "error", "misc", "fail", None, 0.01, [f])
    info = RunInfo("snapshot", None, None, None, None, "airflow", None, None, None, "2026-01-01T00:00:00Z", 0.1)
    xml = render(RunReport("0", info, [run]))
    root = junit_valid(xml)
    fail = case(root, "x-check: Pod/airflow/p").find("failure")
    assert fail.get("message") == "bad \\x1b[31mlog\\x00" and "line \\x07 bell" in fail.text


def test_markdown_seed_incident(run_cli):
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "markdown")
    assert r.code == 1
    md = r.out
    lines = md.splitlines()
    assert lines[0].startswith("## airflow-gke doctor: failed — 3 errors")
    assert "project `acme-data-prod`" in lines[2] and "cluster `europe-west1/airflow-prod`" in lines[2]
    assert "exit code 1 with `--fail-on error`" in md
    # summary table: a row per check that did not simply pass
    row = next(x for x in lines if x.startswith("| `pvc-access-mode-unsupported`"))
    assert "| error | ❌ fail | 1 |" in row
    assert any(x.startswith("Passed (") and "`executor-pod-stuck-init`" in x for x in lines)
    # each finding: heading, evidence and commands in fenced blocks, runbook link
    i = next(n for n, x in enumerate(lines) if x.startswith("#### 🔴 ERROR: PVC airflow-logs asks ReadWriteMany"))
    block = "\n".join(lines[i:i + 60])
    assert "`pvc-access-mode-unsupported` · `PersistentVolumeClaim airflow/airflow-logs`" in block
    ev = block.index("**Evidence**")
    assert block[ev:].split("\n", 3)[2] == "```text"
    assert "```sh\n# Option A: no logs PVC (Helm removes the Pending claim)\nhelm upgrade airflow" in block
    assert "Runbook: [pvc-access-mode-unsupported](https://" in block
    assert md.index("#### 🔴 ERROR") < md.index("#### 🟠 WARNING")   # errors first


def test_markdown_escapes_what_would_break_it():
    from airflow_gke.model import CheckRun, Finding, Remediation, Resource
    from airflow_gke.report import RunInfo, RunReport
    from airflow_gke.report.markdown import render

    f = Finding("title | with pipe <script>", "body <b>x</b>", Resource("Pod", "p", "airflow"),
                ["```", "plain"], Remediation("fix | it", ["echo '```'"]), check="x-check", severity="error",
                runbook="r")
    run = CheckRun("x-check", "Good | state", "error", "misc", "fail", "why | so", 0.01, [f])
    info = RunInfo("snapshot", None, None, None, None, "airflow", None, None, None, "2026-01-01T00:00:00Z", 0.1)
    md = render(RunReport("0", info, [run]))
    assert "| `x-check` Good \\| state |" in md and "why \\| so |" in md
    assert "<script>" not in md and "&lt;script&gt;" in md and "body &lt;b&gt;x&lt;/b&gt;" in md
    assert "````text\n```\nplain\n````" in md          # a longer fence than any inside
    assert "````sh\necho '```'\n````" in md


def test_output_file_writes_the_format_and_the_terminal_report_still_prints(run_cli, tmp_path):
    xml = tmp_path / "out" / "doctor.xml"
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "junit", "--output-file", str(xml))
    assert r.code == 1
    assert r.out.startswith("airflow-gke doctor · snapshot · project acme-data-prod")   # terminal on stdout
    assert "Findings: 3 errors" in r.out
    assert f"wrote junit report: {xml}" in r.err
    root = junit_valid(xml.read_text())
    assert case(root, "pvc-access-mode-unsupported: PersistentVolumeClaim/airflow/airflow-logs").find("failure") is not None


def test_output_file_several_formats_by_prefix_and_extension(run_cli, tmp_path):
    j, m, x, t = (tmp_path / n for n in ("r.json", "r.md", "r.xml", "r.txt"))
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output-file", f"json:{j}", "--output-file", str(m),
                "--output-file", str(x), "--output-file", str(t))
    assert r.code == 1 and "Findings: 3 errors" in r.out
    doc = json.loads(j.read_text())
    validate_report(doc)
    assert PVC_ID in {f["id"] for f in doc["findings"]}
    assert m.read_text().startswith("## airflow-gke doctor: failed")
    junit_valid(x.read_text())
    text = t.read_text()
    assert text.startswith("airflow-gke doctor · snapshot") and "\x1b[" not in text   # plain, no colour
    assert "Runbook: https://" in text


def test_output_file_takes_output_format_over_the_extension(run_cli, tmp_path):
    out = tmp_path / "report.txt"
    r = run_cli("doctor", "--snapshot", str(scenario("healthy-af3-k8s-wi")), "--output", "markdown",
                "--output-file", str(out))
    assert r.code == 0 and out.read_text().startswith("## airflow-gke doctor: passed")


def test_output_file_unwritable_is_exit_2(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output-file", f"junit:{blocker}/sub/r.xml")
    assert r.code == 2 and "cannot write the junit report" in r.err and "Traceback" not in r.err


def copy_scenario(name: str, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / name
    shutil.copytree(scenario(name), dst)
    return dst


def test_every_scenario_renders_in_every_file_format(run_cli, tmp_path):
    """No fixture breaks a format (one run per scenario writes all of them; content is asserted above)."""
    from conftest import scenario_names

    from html_pages import Page

    for name in scenario_names():
        x, m, j = tmp_path / f"{name}.xml", tmp_path / f"{name}.md", tmp_path / f"{name}.json"
        h = tmp_path / f"{name}.html"
        r = run_cli("doctor", "--snapshot", str(scenario(name)), "--fail-on", "never",
                    "--output-file", f"junit:{x}", "--output-file", f"markdown:{m}", "--output-file", f"json:{j}",
                    "--output-file", str(h))
        assert r.code == 0, (name, r.err)
        junit_valid(x.read_text())
        validate_report(json.loads(j.read_text()))
        assert m.read_text().startswith("## airflow-gke doctor: passed"), name
        page = Page(h.read_text())          # every in-page link resolves, ids unique, nothing external
        assert [x for x in page.links if x.startswith("#") and x[1:] not in page.ids] == [], name
        assert len(page.ids) == len(set(page.ids)) and page.external == [] and page.scripts == 1, name


def test_runbook_base_points_every_format_at_the_team_wiki(run_cli, tmp_path):
    base = "https://wiki.example.com/airflow-gke/runbooks/"
    md = tmp_path / "r.md"
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "junit", "--runbook-base", base,
                "--output-file", f"markdown:{md}", "--check", "pvc-access-mode-unsupported")
    assert "Runbook: https://wiki.example.com/airflow-gke/runbooks/pvc-access-mode-unsupported\n" in r.out
    assert "[pvc-access-mode-unsupported](https://wiki.example.com/airflow-gke/runbooks/pvc-access-mode-unsupported)" \
        in md.read_text()
    r = run_cli("doctor", "--snapshot", str(scenario(SEED)), "--output", "json", "--runbook-base", base.rstrip("/"),
                "--check", "pvc-access-mode-unsupported")
    assert [f["runbook"] for f in r.json["findings"]] == [base + "pvc-access-mode-unsupported"]
