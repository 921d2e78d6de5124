"""Check selection (--include/--exclude by slug glob, category:, severity:; --min-severity) and the
configuration file (.airflow-gke.yaml / --config): defaults for flags, validated by a JSON Schema
that rejects unknown keys with a message naming the key, the line and the likely intended key."""
from __future__ import annotations

import json

import pytest

from conftest import scenario, validate_report

SEED = str(scenario("seed-incident"))


def ids(doc: dict) -> list[str]:
    return [c["id"] for c in doc["checks"]]


def registry() -> dict:
    from airflow_gke.registry import load_checks

    return load_checks()


# --- selection ------------------------------------------------------------------------------
def fake_registry():
    from airflow_gke.registry import Check

    def f(ctx):  # pragma: no cover - never run
        raise AssertionError

    cs = [Check("gcs-a", "A", "error", "logging", f), Check("gcs-b", "B", "warning", "logging", f),
          Check("pvc-a", "C", "error", "storage", f), Check("db-a", "D", "info", "database", f),
          Check("gcs-heur", "E", "warning", "logging", f, extended=True)]
    return {c.id: c for c in cs}


@pytest.mark.parametrize("include,exclude,extended,min_sev,want", [
    ((), (), False, None, ["gcs-a", "gcs-b", "pvc-a", "db-a"]),
    (("gcs-*",), (), False, None, ["gcs-a", "gcs-b"]),                  # globs stay in the default tier
    (("gcs-*",), (), True, None, ["gcs-a", "gcs-b", "gcs-heur"]),
    (("gcs-heur",), (), False, None, ["gcs-heur"]),                     # named exactly: runs
    (("category:logging",), ("gcs-b",), False, None, ["gcs-a"]),
    (("category:stor*", "severity:info"), (), False, None, ["pvc-a", "db-a"]),
    ((), ("category:database",), False, None, ["gcs-a", "gcs-b", "pvc-a"]),
    ((), ("severity:error",), False, None, ["gcs-b", "db-a"]),
    # --min-severity filters findings by their own severity, never checks by their declared one
    ((), (), False, "error", ["gcs-a", "gcs-b", "pvc-a", "db-a"]),
    ((), ("category:nothing-here", "zzz-*"), False, None, ["gcs-a", "gcs-b", "pvc-a", "db-a"]),
])
def test_select(include, exclude, extended, min_sev, want):
    from airflow_gke.selection import select

    assert [c.id for c in select(fake_registry(), include, exclude, extended, min_sev)] == want


@pytest.mark.parametrize("include,exclude,message", [
    (("gcs-c",), (), "unknown check gcs-c"),
    (("zz-*",), (), "no check matches 'zz-*'"),
    (("category:network",), (), "no check in category:network (categories: database, logging, storage)"),
    (("severity:fatal",), (), "severity must be one of error, warning, info"),
    (("owner:me",), (), "a prefix must be category: or severity:"),
    ((), ("gcs-c",), "unknown check gcs-c"),
])
def test_select_rejects(include, exclude, message):
    from airflow_gke.errors import UserError
    from airflow_gke.selection import select

    with pytest.raises(UserError) as e:
        select(fake_registry(), include, exclude)
    assert message in str(e.value) and e.value.usage


def test_cli_include_exclude_and_category(run_cli):
    r = run_cli("doctor", "--snapshot", SEED, "--output", "json", "--include", "gcs-*")
    assert ids(r.json) and all(i.startswith("gcs-") for i in ids(r.json)) and "gcs-log-write-denied" in ids(r.json)
    r = run_cli("doctor", "--snapshot", SEED, "--output", "json", "--include", "category:storage",
                "--exclude", "pvc-access-mode-unsupported")
    cats = {c.id: c.category for c in registry().values()}
    assert ids(r.json) and {cats[i] for i in ids(r.json)} == {"storage"}
    assert "pvc-access-mode-unsupported" not in ids(r.json)
    r = run_cli("doctor", "--snapshot", SEED, "--output", "json", "--exclude", "category:logging")
    assert "gcs-log-write-denied" not in ids(r.json) and "pvc-access-mode-unsupported" in ids(r.json)
    r = run_cli("doctor", "--snapshot", SEED, "--output", "json", "--include", "severity:warning")
    sev = {c.id: c.severity for c in registry().values()}
    assert ids(r.json) and {sev[i] for i in ids(r.json)} == {"warning"}


def test_cli_selection_errors_exit_2(run_cli):
    for args, text in ((("--include", "category:no-such-category"), "no check in category:no-such-category"),
                       (("--include", "severity:fatal"), "severity must be one of"),
                       (("--exclude", "no-such-check"), "unknown check no-such-check")):
        r = run_cli("doctor", "--snapshot", SEED, *args)
        assert r.code == 2 and text in r.err, (args, r.err)


def test_min_severity_drops_lower_findings_and_says_so(run_cli):
    """gcs-log-write-denied (an error check) reports 'unproven' as a warning: --min-severity error
    leaves it out of the findings and the check's reason counts it."""
    snap = str(scenario("gcs-iam-unreadable"))
    r = run_cli("doctor", "--snapshot", snap, "--output", "json", "--check", "gcs-log-write-denied",
                "--fail-on", "warning")
    assert r.code == 1 and [f["severity"] for f in r.json["findings"]] == ["warning"]
    r = run_cli("doctor", "--snapshot", snap, "--output", "json", "--check", "gcs-log-write-denied",
                "--fail-on", "warning", "--min-severity", "error")
    assert r.code == 0 and r.json["findings"] == []
    c = r.json["checks"][0]
    assert c["status"] == "fail" and c["reason"] == "1 finding below --min-severity error not shown"
    r = run_cli("doctor", "--snapshot", SEED, "--output", "json", "--min-severity", "error")
    assert {f["severity"] for f in r.json["findings"]} == {"error"}
    warned = {c["id"]: c for c in r.json["checks"] if c["severity"] == "warning"}
    assert warned["default-compute-sa-nodes"]["reason"] == "1 finding below --min-severity error not shown"


def test_min_severity_keeps_an_error_of_a_check_declared_warning(run_cli):
    """liveness-probe-restarts declares warning but reports an error when the probe keeps the
    triggerer down: --min-severity error filters by the finding's own severity, so it stays."""
    snap = str(scenario("component-crashloop-af3"))
    r = run_cli("doctor", "--snapshot", snap, "--output", "json", "--min-severity", "error")
    live = [f for f in r.json["findings"] if f["check"] == "liveness-probe-restarts"]
    assert [(f["severity"], f["resource"]["name"]) for f in live] == [("error", "airflow-triggerer-0")]
    assert {c["id"]: c["severity"] for c in r.json["checks"]}["liveness-probe-restarts"] == "warning"


# --- configuration file ---------------------------------------------------------------------
def write(tmp_path, text: str, name: str = ".airflow-gke.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_config_gives_defaults_and_flags_win(run_cli, tmp_path):
    cfg = write(tmp_path, "version: 1\ndoctor:\n  fail-on: never\n  output: json\n"
                          "  include: [pvc-access-mode-unsupported, gcs-log-write-denied]\n"
                          "  runbook-base: https://wiki.example.com/airflow-gke/\n")
    r = run_cli("doctor", "--snapshot", SEED, "--config", str(cfg))
    assert r.code == 0                                    # fail-on: never
    doc = json.loads(r.out)                               # output: json
    validate_report(doc)
    assert sorted(ids(doc)) == ["gcs-log-write-denied", "pvc-access-mode-unsupported"]
    assert {f["runbook"] for f in doc["findings"]} == {
        "https://wiki.example.com/airflow-gke/pvc-access-mode-unsupported",
        "https://wiki.example.com/airflow-gke/gcs-log-write-denied"}
    r = run_cli("doctor", "--snapshot", SEED, "--config", str(cfg), "--fail-on", "error", "--output", "table",
                "--check", "pvc-access-mode-unsupported")
    assert r.code == 1 and r.out.startswith("airflow-gke doctor ·")
    assert "pvc-access-mode-unsupported" in r.out and "gcs-log-write-denied ·" not in r.out


def test_config_found_in_the_working_directory(run_cli, tmp_path, monkeypatch):
    write(tmp_path, "doctor:\n  fail-on: never\n  exclude: category:logging\n")
    monkeypatch.chdir(tmp_path)
    r = run_cli("doctor", "--snapshot", SEED, "--output", "json")
    assert r.code == 0 and "gcs-log-write-denied" not in ids(r.json)


def test_config_live_keys_are_ignored_with_a_snapshot(run_cli, tmp_path):
    cfg = write(tmp_path, "doctor:\n  project: other-project\n  cluster: c\n  probe: true\n  timeout: 30\n")
    r = run_cli("doctor", "--snapshot", SEED, "--config", str(cfg), "--output", "json")
    assert r.code == 1 and r.json["run"]["project"] == "acme-data-prod" and "probe" not in r.json


@pytest.mark.parametrize("text,needles", [
    ("doctor:\n  fail-on: error\n  fial-on: warning\n",
     ["unknown key 'fial-on' in doctor (line 3): did you mean 'fail-on'?", "Known keys: annotation-ignores,"]),
    ("supressions: []\n", ["unknown key 'supressions' (line 1): did you mean 'suppressions'?"]),
    ("suppressions:\n  - check: gcs-log-write-denied\n    resource: Bucket/x\n",
     ["suppressions[1] (line 2) is missing 'reason' (say why the finding is accepted)"]),
    ("suppressions:\n  - check: gcs-log-write-denied\n    reason: legacy bucket\n    expires: 31/12/2026\n",
     ["suppressions[1].expires (line 4): '31/12/2026' is not a date (YYYY-MM-DD)"]),
    ("doctor:\n  fail-on: sometimes\n", ["doctor.fail-on (line 2): 'sometimes' is not one of error, warning, never"]),
    ("doctor:\n  include: {a: 1}\n", ["doctor.include (line 2): expected a string or a list of strings"]),
    ("doctor: [\n", ["not valid YAML (line 2"]),
    ("- just\n- a list\n", ["the top level must be a mapping"]),
])
def test_config_errors_are_clear_and_exit_2(run_cli, tmp_path, text, needles):
    cfg = write(tmp_path, text, "team.yaml")
    r = run_cli("doctor", "--snapshot", SEED, "--config", str(cfg))
    assert r.code == 2, r.out[:300]
    assert r.err.startswith(f"airflow-gke: error: config {cfg}: "), r.err
    for n in needles:
        assert n in r.err, r.err
    assert "Traceback" not in r.err and r.out == ""


def test_config_missing_file_is_exit_2(run_cli, tmp_path):
    r = run_cli("doctor", "--snapshot", SEED, "--config", str(tmp_path / "nope.yaml"))
    assert r.code == 2 and "nope.yaml: no such file" in r.err


def test_config_schema_covers_every_key_the_loader_maps():
    """The schema and the flag mapping cannot drift: every `doctor:` key maps to a doctor option."""
    from airflow_gke import config
    from airflow_gke.cli import doctor

    props = set(config.schema()["properties"]["doctor"]["properties"])
    assert props == set(config.DOCTOR_KEYS)
    params = {p.name for p in doctor.params}
    assert set(config.DOCTOR_KEYS.values()) <= params
