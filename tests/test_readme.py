"""The README stays true: its check table is the registry's, its two commands are the ones CI and
users run."""
from __future__ import annotations

from conftest import ROOT

from airflow_gke import gendocs
from airflow_gke.registry import load_checks

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_check_table_is_generated_from_the_registry():
    assert gendocs.render(README) == README, "run: python -m airflow_gke.gendocs"
    for cid, chk in load_checks().items():
        assert f"| `{cid}`" in README and chk.title in README


def test_the_two_setup_commands_are_there():
    assert ("pip install . && airflow-gke doctor --snapshot fixtures/scenarios/seed-incident") in README
    assert "pip install -e '.[test]' && pytest" in README
    assert (ROOT / "fixtures/scenarios/seed-incident/meta.json").is_file()
    ci = (ROOT / ".ci/run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and "pytest" in ci


def test_runbook_headers_are_generated_from_the_registry():
    books = gendocs.runbooks()
    assert len(books) == len(load_checks())
    for path, text in books.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run python -m airflow_gke.gendocs"
    on_disk = {p.stem for p in gendocs.RUNBOOKS.glob("*.md")}
    assert on_disk == set(load_checks()), f"runbooks without a check: {sorted(on_disk - set(load_checks()))}"


def test_runbook_header_says_severity_notes_category_and_tier():
    chk = load_checks()["evictable-workers"]
    assert gendocs.runbook_header(chk) == (
        "# evictable-workers: Pods that run tasks are not on Spot nodes or marked safe to evict\n\n"
        "**Severity:** warning · **Category:** runtime · **Tier:** extended (`--extended`)\n")
    chk = load_checks()["gcs-log-write-denied"]
    assert "**Severity:** error (warning when IAM could not be read) · **Category:** logging" \
        in gendocs.runbook_header(chk)


def test_docs_read_tables_are_generated_from_the_data_keys():
    """docs/security.md and docs/snapshot-format.md list every read of doctor/data.py."""
    for path, text in gendocs.data_docs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run python -m airflow_gke.gendocs"
    from airflow_gke.data import KEYS

    paths = (ROOT / "docs" / "snapshot-format.md").read_text(encoding="utf-8")
    for k in KEYS.values():
        assert f"`{gendocs.snapshot_path(k)}`" in paths


def test_the_sample_output_is_what_the_doctor_prints(run_cli):
    """README's 'What it prints' block is the terminal report of seed-incident at 120 columns: each
    line it shows is printed, in that order ('...' marks what it leaves out; the timing varies)."""
    import re

    start = README.index("```text\n", README.index("## What it prints")) + len("```text\n")
    sample = README[start:README.index("\n```\n", start)].splitlines()
    r = run_cli("doctor", "--snapshot", str(ROOT / "fixtures/scenarios/seed-incident"),
                env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert r.code == 1
    printed = r.out.rstrip("\n").splitlines()
    at = 0
    for line in sample:
        if line.strip() == "...":
            continue
        want = re.sub(r"· [0-9.]+s$", "", line)
        while at < len(printed) and re.sub(r"· [0-9.]+s$", "", printed[at]) != want:
            at += 1
        assert at < len(printed), f"README sample line not printed (in this order): {line!r}"
        at += 1


def test_the_catalogue_table_has_49_rows_and_names_only_registered_checks():
    import re
    from pathlib import Path

    from airflow_gke.registry import load_checks

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = text.split("<!-- catalogue:start -->", 1)[1].split("<!-- catalogue:end -->", 1)[0]
    rows = [ln for ln in table.splitlines() if re.match(r"^\| \d+ \|", ln)]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 50))
    registry = load_checks()
    named = {s for r in rows for s in re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", r.split("|")[3])}
    assert named and named <= set(registry), named - set(registry)
    for r in rows:   # a row names a check, or says honestly that none covers it
        by = r.split("|")[3]
        assert re.search(r"`[a-z0-9-]+`", by) or "not covered" in by, r
    assert "Secrets" in next(r for r in rows if r.startswith("| 15 |"))
