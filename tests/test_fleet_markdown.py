"""Fleet Markdown (report/markdown.py render_fleet): one pull-request comment whatever the fleet's
size: the summary table (worst targets first) and the worst findings, cut with a pointer to the
full report."""
from __future__ import annotations

from html_pages import fleet

LIMIT = 65_536      # GitHub's limit for one comment


def test_a_small_fleet_is_listed_whole():
    from airflow_gke.report.markdown import render_fleet

    f = fleet(6, unreachable=1)
    text = render_fleet(f, "error", html_path="fleet.html")
    assert "Shortened" not in text
    rows = [x for x in text.splitlines() if x.startswith("| cluster-")]
    assert len(rows) == 6
    assert rows[0].startswith("| cluster-01/airflow/airflow | 3 | 2 |")           # seed: most errors
    gone = next(x for x in rows if x.startswith("| cluster-06/?/?"))
    assert "| - | - | - | 3 (not diagnosed: unreachable: Kubernetes API" in gone
    assert rows.index(gone) < rows.index(next(x for x in rows if "cluster-02/" in x))   # before the healthy one
    findings = [x for x in text.splitlines() if x.startswith("- ")]
    errors = sum(r.summary()["findings"]["error"] for r in f.reports)
    warnings = sum(r.summary()["findings"]["warning"] for r in f.reports)
    assert len(findings) == errors + warnings < 30
    assert f"### Worst findings ({len(findings)} of {len(findings)})" in text
    assert all(x.startswith("- **ERROR**") for x in findings[:errors])
    assert all(x.startswith("- **WARNING**") for x in findings[errors:])
    assert findings[0].startswith("- **ERROR** `cluster-01/airflow/airflow` · `pvc-access-mode-unsupported`: PVC airflow-logs")
    assert "— fix: Option A" in findings[0]
    assert text.rstrip().endswith("Every finding with its evidence and fix: `fleet.html`.")


def test_a_large_fleet_fits_one_comment_and_points_at_the_full_report():
    from airflow_gke.report.markdown import render_fleet

    cache: dict = {}
    f = fleet(1500, unreachable=40, reports=cache)
    text = render_fleet(f, "error", html_path="airflow-gke-fleet.html", json_path="airflow-gke-fleet.json")
    assert len(text) <= LIMIT
    assert len(text) > LIMIT * 0.5                 # the table takes its half
    note = next(x for x in text.splitlines() if x.startswith("> **Shortened to fit one comment (65,536 characters)**"))
    listed = [x for x in text.splitlines() if x.startswith("| cluster-")]
    more = int(note.split("**: ")[1].split(" of 1500 targets")[0])
    assert len(listed) + more == 1500 and listed and more > 0
    assert listed[0].startswith("| cluster-01/airflow/airflow | 3 | 2 |")
    assert note.endswith("every target and finding is in `airflow-gke-fleet.html` (the page) and `airflow-gke-fleet.json`.")
    shown = [x for x in text.splitlines() if x.startswith("- ")]
    total = sum(r.summary()["findings"]["error"] + r.summary()["findings"]["warning"] for r in f.reports)
    assert f"### Worst findings (30 of {total})" in text and len(shown) == 30
    assert all(x.startswith("- **ERROR**") for x in shown)           # errors first: warnings did not fit
    # a tight limit cuts the findings too, says so, and still fits
    small = render_fleet(f, "error", limit=8_000)
    assert len(small) <= 8_000
    assert "of the 30 worst findings listed" in small
    assert small.rstrip().endswith("or the JSON report (`--output-file json:airflow-gke.json`).")
